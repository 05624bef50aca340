# shellcheck shell=bash
# Helpers shared by the scripts in this folder; source it, don't run it.
#
# Tests count with `check` and end with `report`, which prints the plain
# "N passed, M failed" line and fails the script if anything failed.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Debian's 20.10 client: it has BuildKit built in (the newer client on this
# kind of machine needs a buildx plugin that is not installed). On a fresh
# machine it appears only when docker_up installs the engine, which then
# chooses again, unless DOCKER was given.
docker_client() { command -v /usr/bin/docker || command -v docker || echo docker; }
DOCKER_GIVEN=${DOCKER:-}
DOCKER=${DOCKER:-$(docker_client)}
export DOCKER_BUILDKIT=1
# Offline stand-ins for Docker Hub and gcr.io, for machines that cannot reach
# them. Only our tests use it; the Dockerfile names the public images.
KIT_DIR=${KIT_DIR:-$REPO_ROOT/../shared/container-kit}
CACHE_DIR=${API_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/api-ci}

PASSED=0
FAILED=0

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# check DESCRIPTION COMMAND...: runs COMMAND, counts and prints the outcome.
check() {
  local description=$1
  shift
  if "$@"; then
    PASSED=$((PASSED + 1))
    printf 'ok   %s\n' "$description"
  else
    FAILED=$((FAILED + 1))
    printf 'FAIL %s\n' "$description"
  fi
}

# fails COMMAND...: succeeds when COMMAND fails (for `check`).
fails() { ! "$@"; }

report() {
  printf '\n%d passed, %d failed\n' "$PASSED" "$FAILED"
  [[ $FAILED -eq 0 ]]
}

# apt_tool COMMAND [PACKAGE]: installs PACKAGE (default COMMAND) if COMMAND is missing.
apt_tool() {
  command -v "$1" >/dev/null && return
  log "installing ${2:-$1} (apt)"
  if [[ -z ${APT_UPDATED:-} ]]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${2:-$1}" >/dev/null
}

# python_tool NAME REQUIREMENT...: a venv of its own per tool (their pins
# clash), cached between runs; prints the venv's bin directory.
python_tool() {
  local venv=$CACHE_DIR/venv-$1
  shift
  if [[ ! -f $venv/.installed || $(cat "$venv/.installed") != "$*" ]]; then
    log "installing $* (pip, into $venv)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
    printf '%s' "$*" >"$venv/.installed"
  fi
  printf '%s/bin' "$venv"
}

# cargo_tool NAME VERSION: a crates.io tool (cargo-deny, rust-audit-info),
# `cargo install --locked` into a folder of its own per version, cached
# between runs (a few minutes, once); prints the path of its binary. One
# already on PATH at that version is used as it is.
cargo_tool() {
  local root=$CACHE_DIR/cargo/$1-$2 found
  found=$(command -v "$1" || true)
  if [[ -n $found && $("$found" --version 2>/dev/null) == *" $2"* ]]; then
    printf '%s\n' "$found"
    return
  fi
  if [[ ! -x $root/bin/$1 ]]; then
    log "installing $1 $2 (cargo install --locked, into $root; a few minutes, once)"
    cargo install --locked --quiet --root "$root" "$1@$2" >&2
  fi
  printf '%s\n' "$root/bin/$1"
}

# advisory_db DIR: the RustSec advisory database, as a git repository in DIR
# (cargo-deny and cargo-audit open it with git): a fresh clone of the live
# one where GitHub answers, else the offline snapshot (ADVISORY_SNAPSHOT,
# default ../shared/advisory-db, a copy without history) committed into a
# throwaway repository. ADVISORY_DB=live or =snapshot forces either: on
# GitHub, live, so that nothing older is ever used there. Sets
# ADVISORY_DB_SAID: which database, of what commit and date.
advisory_db() {
  local dir=$1 live=https://github.com/rustsec/advisory-db mode=${ADVISORY_DB:-auto} snapshot
  snapshot=$(realpath -m "${ADVISORY_SNAPSHOT:-$REPO_ROOT/../shared/advisory-db}")
  apt_tool git
  if [[ $mode != snapshot ]] && timeout 120 git clone -q --depth 1 "$live" "$dir" 2>/dev/null; then
    ADVISORY_DB_SAID="the live RustSec database, $live at commit $(git -C "$dir" log -1 --format='%h of %cs')"
  elif [[ $mode == live ]]; then
    die "ADVISORY_DB=live, but $live cannot be cloned"
  elif [[ -d $snapshot/crates ]]; then
    cp -r "$snapshot" "$dir"
    git -C "$dir" init -q -b main
    git -C "$dir" add -A
    git -C "$dir" -c user.name=snapshot -c user.email=snapshot@invalid commit -q -m "RustSec snapshot"
    # shellcheck disable=SC2034 # for the scripts that source this file
    ADVISORY_DB_SAID="the offline snapshot in $snapshot, $(sed -n 's/.*as of its commit \([0-9a-f]\{7\}\)[0-9a-f]* (\([0-9-]*\)).*/commit \1 of \2/p' "$snapshot/SNAPSHOT.md"): only as current as that date"
  else
    die "neither the live RustSec database ($live) nor a snapshot ($snapshot) can be read"
  fi
}

# Starts the Docker engine and makes the base images available: through the
# container kit where there is one, else the engine must already run.
docker_up() {
  if [[ -d $KIT_DIR ]]; then
    log "starting the Docker engine and base images (container kit)"
    "$KIT_DIR/install-engine.sh" >&2
    "$KIT_DIR/make-base-images.sh" >&2
    BASE_IMAGE_ARGS=(--build-arg RUST_DIGEST= --build-arg RUNTIME_DIGEST=)
    [[ -n $DOCKER_GIVEN ]] || DOCKER=$(docker_client)
  fi
  "$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_http URL [SECONDS]: until URL answers 200.
wait_for_http() {
  local deadline=$((SECONDS + ${2:-30}))
  until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# fetch URL: GETs URL (decoding gzip); sets STATUS and BODY.
fetch() {
  local answer
  STATUS='' BODY=''
  answer=$(curl -sS --compressed --max-time 5 -w '\n%{http_code}' "$1") || return 1
  STATUS=${answer##*$'\n'}
  BODY=${answer%$'\n'*}
}

# unexpected URL: reports what URL answered, and fails.
unexpected() {
  printf '     %s answered %s %s\n' "$1" "${STATUS:-nothing}" "${BODY:-}" | head -c 400
  return 1
}

# http_is URL STATUS BODY: the answer has exactly this status and body.
http_is() {
  { fetch "$1" && [[ $STATUS == "$2" && $BODY == "$3" ]]; } || unexpected "$1"
}

# http_matches URL STATUS REGEX: the status, and a body matching REGEX.
http_matches() {
  { fetch "$1" && [[ $STATUS == "$2" && $BODY =~ $3 ]]; } || unexpected "$1"
}

# check_contract BASE_URL: every promise of the README's endpoint table.
check_contract() {
  local base=$1 what=$2
  check "$what: GET /hello_world" http_is "$base/hello_world" 200 '{"message":"Hello World!"}'
  check "$what: GET /current_time?name=a+b" \
    http_matches "$base/current_time?name=a+b" 200 '^\{"timestamp":[0-9]+,"message":"Hello a b"\}$'
  check "$what: GET /current_time without name is 422" http_is "$base/current_time" 422 \
    '{"detail":[{"type":"missing","loc":["query","name"],"msg":"Field required","input":null}]}'
  check "$what: GET /healthcheck" http_is "$base/healthcheck" 200 '{"status":"ok"}'
  check "$what: HEAD /healthcheck" curl -fsS -I --max-time 5 -o /dev/null "$base/healthcheck"
  check "$what: unknown path is 404" http_is "$base/nope" 404 '{"detail":"Not Found"}'
  check "$what: GET /openapi.json" http_matches "$base/openapi.json" 200 '"openapi":"3\.1'
  check "$what: GET /docs" http_matches "$base/docs" 200 'swagger-ui-bundle\.js'
  check "$what: GET /docs/swagger-ui-bundle.js" http_matches "$base/docs/swagger-ui-bundle.js" 200 'SwaggerUIBundle'
  check "$what: GET /redoc" http_matches "$base/redoc" 200 'Redoc\.init\("/openapi\.json"'
}

# The version in Cargo.toml.
crate_version() {
  sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1
}

# ecr_registry ACCOUNT REGION: the host name of ACCOUNT's ECR registry in
# REGION. The domain is the region's partition's (botocore's partitions.json):
# China's regions are in aws-cn (amazonaws.com.cn), the European Sovereign
# Cloud in aws-eusc (amazonaws.eu), the isolated partitions have their own.
ecr_registry() {
  local domain
  case $2 in
    cn-*) domain=amazonaws.com.cn ;;
    eusc-*) domain=amazonaws.eu ;;
    us-iso-*) domain=c2s.ic.gov ;;
    us-isob-*) domain=sc2s.sgov.gov ;;
    us-isof-*) domain=csp.hci.ic.gov ;;
    eu-isoe-*) domain=cloud.adc-e.uk ;;
    *) domain=amazonaws.com ;;
  esac
  printf '%s.dkr.ecr.%s.%s\n' "$1" "$2" "$domain"
}

# The build context's files (the `!` lines of .dockerignore), plus the
# Dockerfile and .dockerignore: what an image is built from.
image_sources() {
  local dir=${1:-$REPO_ROOT}
  printf '%s\n' Dockerfile .dockerignore
  sed -n 's/^!//p' "$dir/.dockerignore"
}

# image_sources_changed [DIR]: lists what of the image's sources differs from
# HEAD (nothing when clean); other local files, ignored or not, do not count.
image_sources_changed() {
  local dir=${1:-$REPO_ROOT} sources=() source
  while IFS= read -r source; do sources+=("$source"); done < <(image_sources "$dir")
  git -C "$dir" status --porcelain -- "${sources[@]}"
}

# image_build_args [DIR]: sets IMAGE_BUILD_ARGS to the --build-arg options
# that make an image's labels, `api --version` and `api_build_info` true for
# the checkout in DIR (default: this one). Version from Cargo.toml; the full
# HEAD SHA, with -dirty when the image's sources differ from it; the commit's
# time, or SOURCE_DATE_EPOCH's, in RFC 3339 (UTC), so that rebuilds of a
# commit agree; the repository's web URL, without any credentials in it.
image_build_args() {
  local dir=${1:-$REPO_ROOT} revision created source
  revision=$(git -C "$dir" rev-parse HEAD)
  [[ -z $(image_sources_changed "$dir") ]] || revision+=-dirty
  if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null ||
      date -u -r "$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ) # GNU, then BSD (macOS) date
  else
    created=$(TZ=UTC0 git -C "$dir" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
  fi
  if [[ -n ${GITHUB_SERVER_URL:-} && -n ${GITHUB_REPOSITORY:-} ]]; then
    source=$GITHUB_SERVER_URL/$GITHUB_REPOSITORY
  else
    source=$(git -C "$dir" remote get-url origin 2>/dev/null || true)
    source=$(printf '%s' "$source" | sed -E \
      -e 's#^git@([^:]+):#https://\1/#' -e 's#^ssh://(git@)?#https://#' \
      -e 's#^(https?://)[^/@]*@#\1#' -e 's#\.git$##')
    [[ $source == http://* || $source == https://* ]] || source=""
  fi
  # shellcheck disable=SC2034 # for the scripts that source this file
  IMAGE_BUILD_ARGS=(
    --build-arg "VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n 1)"
    --build-arg "GIT_REVISION=$revision"
    --build-arg "CREATED=$created"
    --build-arg "SOURCE=$source"
  )
}

# Where the base images are the container kit's local stand-ins (public names,
# other digests), builds drop the Dockerfile's digest pins: docker_up sets
# this to the two --build-arg options that do it.
# shellcheck disable=SC2034 # for the scripts that source this file
BASE_IMAGE_ARGS=()

# image_build DOCKER_BUILD_ARGS...: `docker build`; with API_BUILDX_CACHE set
# (CI on GitHub: e.g. type=gha,scope=images), `docker buildx build` on the
# builder API_BUILDX_BUILDER names (docker/setup-buildx-action's, whose
# docker-container driver can export a cache), importing and exporting that
# layer cache, which outlives the runner, and loading the image into docker
# (--load) unless the arguments say where the result goes (--output).
# BuildKit's default provenance attestation is off (a newer buildx reads
# BUILDX_NO_DEFAULT_ATTESTATIONS, older clients ignore it): with the
# containerd image store it turns each image into an index of the image and
# an attestation, which push.sh would then push as a nested index. A
# release's provenance comes from actions/attest (release.yml).
image_build() {
  local -x BUILDX_NO_DEFAULT_ATTESTATIONS=1
  if [[ -n ${API_BUILDX_CACHE:-} ]]; then
    local options=(--load) arg
    for arg in "$@"; do [[ $arg != --output && $arg != --output=* && $arg != -o ]] || options=(); done
    [[ -z ${API_BUILDX_BUILDER:-} ]] || options+=(--builder "$API_BUILDX_BUILDER")
    "$DOCKER" buildx build ${options[@]+"${options[@]}"} --cache-from "$API_BUILDX_CACHE" \
      --cache-to "$API_BUILDX_CACHE,mode=max,ignore-error=true" "$@"
  else
    "$DOCKER" build "$@"
  fi
}

# image_sbom FILE IMAGE DOCKER_BUILD_ARGS...: writes the CycloneDX SBOM of
# the image IMAGE (staging or production) built with DOCKER_BUILD_ARGS (the
# context, --platform, the build arguments: the image's own) to FILE. It is
# the Dockerfile's `sbom` target, so it reuses the image build's cache.
image_sbom() {
  local file=$1 of=$2 out
  shift 2
  out=$(mktemp -d)
  if image_build --target sbom --build-arg "SBOM_OF=$of" --output "type=local,dest=$out" "$@"; then
    mv "$out/sbom.cdx.json" "$file"
    rm -rf "$out"
  else
    rm -rf "$out"
    return 1
  fi
}

# The images a release ships, one line each: TARGET PLATFORM LOCAL_IMAGE.
# Production runs on x86_64 and Graviton; staging is the debugging image,
# x86_64 only. release_build makes them, deploy/aws/release.sh pushes them.
release_images() {
  printf '%s\n' "staging linux/amd64 api:staging" \
    "production linux/amd64 api:production" "production linux/arm64 api:production-arm64"
}

# release_sbom DIR LOCAL_IMAGE: where release_build puts an image's SBOM.
release_sbom() { printf '%s/%s.cdx.json\n' "$1" "${2//:/-}"; }

# release_build DIR: builds every image of release_images from this checkout
# with the release build arguments, and its SBOM into DIR (release_sbom);
# then saves the images to DIR/images.tar.gz, for the jobs that push them.
release_build() {
  local dir=$1 target platform image stage
  mkdir -p "$dir"
  image_build_args "$REPO_ROOT"
  while read -r target platform image; do
    stage=production
    [[ $target == production ]] || stage=builder
    log "building $image ($target, $platform) and its SBOM"
    image_build "$REPO_ROOT" --platform "$platform" --target "$stage" -t "$image" \
      "${IMAGE_BUILD_ARGS[@]}" ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"}
    image_sbom "$(release_sbom "$dir" "$image")" "$target" "$REPO_ROOT" --platform "$platform" \
      "${IMAGE_BUILD_ARGS[@]}" ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"}
  done < <(release_images)
  # shellcheck disable=SC2046 # one word per image
  "$DOCKER" save $(release_images | cut -d' ' -f3) | gzip >"$dir/images.tar.gz"
}
