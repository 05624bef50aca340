#!/usr/bin/env bash
# Pushes a locally built image to a registry, as <registry>/<repository>:<target>-<version>
# and <target>-<git short sha>, once it has checked that the image is what those tags
# say, with its SBOM attached; or several images, one per platform, under one
# multi-platform index. See --help and docs/images.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Exit codes (also in --help and docs/images.md).
readonly EXIT_REFUSED=1 EXIT_USAGE=2 EXIT_TAG_HOLDS_OTHER=3 EXIT_NOT_AUTHORISED=4 EXIT_UNREACHABLE=5 EXIT_NO_REPOSITORY=6
readonly SBOM_TYPE=application/vnd.cyclonedx+json

usage() {
  cat <<'USAGE'
Usage: scripts/push.sh (--registry HOST[:PORT] | --ecr) [options]

Pushes the local image api:<target> as
  <registry>/<repository>:<target>-<version>     version from Cargo.toml
  <registry>/<repository>:<target>-<git sha>     the commit it was built from (7 characters)
with its SBOM attached (an OCI referrer: an artifact whose subject is the
image's digest), then prints each pushed reference with the digest the push
reported, and the SBOM's.

With several platforms (--platform linux/amd64,linux/arm64, one
--local-image for each), each image is pushed as <target>-<version>-<arch>,
and the two tags above hold the index of them all; each image gets its own
SBOM, and the index all of them.

Steps: 1. check the local images and their SBOMs, 2. login (with --ecr
only; otherwise log in yourself first with `docker login`), 3. look each
tag up in the registry, 4. tag and push, 5. the index, 6. attach the SBOMs.

The local image must be what the tags say, or it is refused: its labels
(set by the build arguments, docs/images.md) must name HEAD's full commit
SHA as org.opencontainers.image.revision, Cargo.toml's version, an RFC 3339
build time and a base image digest, and it must be built for --platform.
The files it is built from (the build context, Dockerfile, .dockerignore)
must be committed; other local files do not matter. Its SBOM must describe
it: the same image (staging or production), platform and revision, and the
SHA-256 of its /usr/local/bin/api. Without --sbom, push.sh builds the SBOM
from this checkout (`docker build --target sbom`, reusing the image build's
cache) with the arguments the labels name.

Each tag is looked up first: a tag that is absent is pushed; a tag that
already holds this very image (same image id; for an index, the same
index) is left as it is and counts as pushed, so that a re-run succeeds; a
tag that holds another image is an error naming both, unless --force. An
SBOM already attached is not attached again. "This very image" is its
config digest, read from `docker save` (manifest.json and the config it
names; under the containerd image store `docker image inspect`'s .Id is
another digest). Platforms compare as the registries do: linux/arm64/v8 is
linux/arm64, linux/amd64/v1 linux/amd64.

Where to:
  --registry HOST[:PORT]  any registry you are logged in to (docker.io: Docker Hub,
                          whose API is registry-1.docker.io and whose credentials
                          docker keeps under https://index.docker.io/v1/)
  --ecr                   Amazon ECR: the host is <account>.dkr.ecr.<region>.amazonaws.com
                          (.amazonaws.com.cn in China's cn-* regions; unless --registry
                          names another) and the login runs
                          `aws ecr get-login-password --region R | docker login
                          --username AWS --password-stdin HOST`, except where docker's
                          configuration names docker-credential-ecr-login for HOST
                          (credHelpers or credsStore): that helper needs no login
  --account ID            AWS account id (default: $AWS_ACCOUNT_ID)
  --region REGION         AWS region (default: $AWS_REGION, then $AWS_DEFAULT_REGION)

What:
  --target NAME           staging or production (default: production)
  --local-image IMAGE     local image to push (default: api:<target>); once per
                          platform with several platforms
  --repository NAME       repository in the registry (default: api)
  --platform OS/ARCH[,OS/ARCH...]
                          the platforms the images must be built for, one image
                          each (default: linux/amd64)
  --sbom FILE             the CycloneDX SBOM of an image (docker build --target sbom,
                          docs/supply-chain.md); once per image. Default: built here
  --no-sbom               push without an SBOM
  --digest-file FILE      also write the pushed digest (sha256:...) to FILE: the
                          index's with several platforms
  --platform-digests-file FILE
                          also write "<platform> <digest>" for each image to FILE

Safety:
  --dry-run               print every command, run none: needs neither Docker nor
                          AWS; with --ecr and no account or region, prints
                          <account> and <region> in their place
  --force                 overwrite tags that hold another image (not with --ecr:
                          ECR repositories are usually tag-immutable)
  --allow-dirty           push an image built from uncommitted changes (revision
                          <sha>-dirty) as <target>-<sha>-dirty only: never under
                          the release's <target>-<version>
  --allow-unpinned-base   push an image whose base was not pinned by digest
  -h, --help              this help

Exit codes:
  0  every tag holds the image: pushed now, or already there; SBOMs attached
  1  refused before pushing: the local image (missing, unlabelled, another
     revision or version, another platform, unpinned base), its SBOM (missing,
     or describing another image), uncommitted sources, --ecr without account
     or region; or another failure
  2  wrong usage
  3  a tag already holds another image (both digests are named)
  4  not authorised: not logged in, wrong credentials, or no permission
  5  registry unreachable: name, connection, TLS, or the registry failing (5xx)
  6  the repository does not exist (the registry answered NAME_UNKNOWN, as ECR
     does): nothing was pushed
USAGE
}

# fail CODE MESSAGE: prints MESSAGE as an error and exits with CODE.
fail() {
  printf 'error: %s\n' "$2" >&2
  exit "$1"
}
usage_error() {
  usage >&2
  fail "$EXIT_USAGE" "$1"
}
# say MESSAGE: progress, on stderr (stdout carries only the results).
say() { printf '%s\n' "$*" >&2; }

target=production registry="" ecr=0 account=${AWS_ACCOUNT_ID:-} region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
repository=api platform_list=linux/amd64 digest_file="" platform_digests_file=""
dry_run=0 force=0 allow_dirty=0 allow_unpinned_base=0 no_sbom=0
local_images=() sbom_files=()
while (($#)); do
  case $1 in
    --target | --registry | --account | --region | --local-image | --repository | --platform | --digest-file | \
      --platform-digests-file | --sbom)
      (($# >= 2)) || usage_error "$1 needs a value" ;;
  esac
  case $1 in
    --target) target=$2; shift ;;
    --registry) registry=$2; shift ;;
    --ecr) ecr=1 ;;
    --account) account=$2; shift ;;
    --region) region=$2; shift ;;
    --local-image) local_images+=("$2"); shift ;;
    --repository) repository=$2; shift ;;
    --platform) platform_list=$2; shift ;;
    --sbom) sbom_files+=("$2"); shift ;;
    --no-sbom) no_sbom=1 ;;
    --digest-file) digest_file=$2; shift ;;
    --platform-digests-file) platform_digests_file=$2; shift ;;
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    --allow-dirty) allow_dirty=1 ;;
    --allow-unpinned-base) allow_unpinned_base=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
  shift
done

[[ $target == staging || $target == production ]] || usage_error "--target must be staging or production, not '$target'"
# normal_platform OS/ARCH[/VARIANT]: the platform as containerd and the
# registries compare it: arm64 is arm64/v8 and amd64 amd64/v1, their
# default variants, so linux/arm64/v8 and linux/arm64 are one platform.
normal_platform() {
  local p
  p=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')
  p=${p/\/aarch64/\/arm64} p=${p/\/x86_64/\/amd64}
  case $p in */arm64/v8 | */amd64/v1) p=${p%/*} ;; esac
  printf '%s\n' "$p"
}
IFS=, read -ra given_platforms <<<"$platform_list"
platforms=()
for platform in ${given_platforms[@]+"${given_platforms[@]}"}; do
  [[ $platform =~ ^[a-zA-Z0-9_]+/[a-zA-Z0-9_]+(/[a-zA-Z0-9_]+)?$ ]] ||
    usage_error "--platform: '$platform' is not OS/ARCH or OS/ARCH/VARIANT"
  platforms+=("$(normal_platform "$platform")")
done
((${#platforms[@]})) || usage_error "--platform names no platform"
((${#local_images[@]})) || local_images=("api:$target")
((${#local_images[@]} == ${#platforms[@]})) ||
  usage_error "${#platforms[@]} platforms ($platform_list) need as many --local-image, one each, not ${#local_images[@]}"
((!no_sbom || ${#sbom_files[@]} == 0)) || usage_error "--sbom and --no-sbom contradict each other"
multi=0
((${#platforms[@]} == 1)) || multi=1
if ((ecr)); then
  ((!force)) || fail "$EXIT_REFUSED" "--force is refused with --ecr: ECR tags are meant to be immutable; push a new version instead"
  if [[ -z $account || -z $region ]]; then
    ((dry_run)) || fail "$EXIT_REFUSED" "--ecr needs an AWS account and region: --account/--region or AWS_ACCOUNT_ID/AWS_REGION"
    say "dry run: no AWS account or region given; shown as <account> and <region>"
    account=${account:-<account>} region=${region:-<region>}
  fi
  registry=${registry:-$(ecr_registry "$account" "$region")}
fi
[[ -n $registry ]] || usage_error "say where to push: --registry HOST[:PORT] or --ecr (see --help)"
# Where the registry API is: Docker Hub's is registry-1.docker.io.
case $registry in
  docker.io | index.docker.io | registry-1.docker.io) api_host=${PUSH_DOCKER_HUB_API:-registry-1.docker.io} ;;
  *) api_host=$registry ;;
esac

cd "$REPO_ROOT"
head=$(git rev-parse HEAD)
version=$(crate_version)
changed=$(image_sources_changed)
if [[ -n $changed ]] && ((!allow_dirty)); then
  fail "$EXIT_REFUSED" "the files the image is built from have uncommitted changes, so it would match no commit (--allow-dirty to push anyway):
$changed"
fi
# The revision the image must name: HEAD, or with --allow-dirty, HEAD-dirty.
revision=$head
[[ -z $changed ]] || revision+=-dirty

# show COMMAND...: prints a command as it runs (or, with --dry-run, would run).
show() { say "+ $*"; }

# label IMAGE NAME: the local image's org.opencontainers.image.NAME label.
label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$2\"}}" "$1"; }

# check_local_image IMAGE PLATFORM: the image exists and is what the tags will say it is.
check_local_image() {
  local local_image=$1 platform=$2
  "$DOCKER" image inspect "$local_image" >/dev/null 2>&1 ||
    fail "$EXIT_REFUSED" "no local image $local_image: build it first (docs/images.md), or name another with --local-image"
  local built_revision built_version created base_digest built_for facts
  built_revision=$(label "$local_image" revision) built_version=$(label "$local_image" version)
  created=$(label "$local_image" created) base_digest=$(label "$local_image" base.digest)
  [[ -n $built_revision && -n $built_version ]] ||
    fail "$EXIT_REFUSED" "$local_image was built without the build arguments (no revision or version label), so nothing says which commit it is: build it as docs/images.md shows"
  if [[ $built_revision == "$head-dirty" ]] && ((allow_dirty)); then
    revision=$built_revision
  elif [[ $built_revision == "$head-dirty" ]]; then
    fail "$EXIT_REFUSED" "$local_image was built from uncommitted changes to $head (--allow-dirty to push it anyway)"
  elif [[ $built_revision != "$revision" ]]; then
    fail "$EXIT_REFUSED" "$local_image was built from $built_revision, but HEAD is $revision: rebuild it, or check out the commit it was built from"
  fi
  [[ $built_version == "$version" ]] ||
    fail "$EXIT_REFUSED" "$local_image is version $built_version, but Cargo.toml says $version: rebuild it"
  [[ $created =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ &&
    $created != 1970-01-01T00:00:00Z ]] ||
    fail "$EXIT_REFUSED" "$local_image has no build time (org.opencontainers.image.created is '$created'): build it as docs/images.md shows"
  if [[ -z $base_digest ]] && ((!allow_unpinned_base)); then
    fail "$EXIT_REFUSED" "$local_image was built from a base image not pinned by digest (org.opencontainers.image.base.digest is empty): build it from the Dockerfile's pins, or --allow-unpinned-base"
  fi
  facts=$(image_facts "$local_image" "$platform") ||
    fail "$EXIT_REFUSED" "cannot read $local_image's manifest and config (docker save $local_image failed)"
  read -r IMAGE_CONFIG built_for <<<"$facts"
  [[ $built_for == "$platform" ]] ||
    fail "$EXIT_REFUSED" "$local_image is built for $built_for, not $platform: it would not start there (exec format error); build it for $platform (docker build --platform $platform), or name another --platform"
}

# image_facts IMAGE PLATFORM: "<config digest> <platform>" of IMAGE, the
# image for PLATFORM where IMAGE holds several, read from `docker save`: its
# manifest.json and the config blobs it names, hashed here. Not `docker image
# inspect`'s .Id: under the containerd image store that is the digest of the
# manifest or index, not of the config, and the registry's manifests name
# their config; .Os/.Architecture there are of one platform of an index.
image_facts() {
  "$DOCKER" save "$1" | python3 -c '
import hashlib, json, sys, tarfile

want = sys.argv[1]
small = {}
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as archive:
    for member in archive:
        if member.isfile() and member.size < 1 << 20:
            small[member.name] = archive.extractfile(member).read()


def normal(config):
    arch = config.get("architecture", "")
    arch = {"aarch64": "arm64", "x86_64": "amd64"}.get(arch, arch)
    variant = config.get("variant", "")
    if (arch, variant) in (("arm64", "v8"), ("amd64", "v1")):
        variant = ""
    return "/".join(part for part in (config.get("os", ""), arch, variant) if part)


try:
    found = []
    for entry in json.loads(small["manifest.json"]):
        blob = small[entry["Config"]]
        found.append(("sha256:" + hashlib.sha256(blob).hexdigest(), normal(json.loads(blob))))
except (KeyError, ValueError, TypeError, AttributeError) as error:
    sys.exit(f"docker save gave no readable manifest.json and config: {error!r}")
matching = [entry for entry in found if entry[1] == want]
if matching or len(found) == 1:
    print(*(matching or found)[0])
else:
    print("-", ",".join(platform for _, platform in found) or "nothing")
' "$2"
}

# binary_sha256 IMAGE: the SHA-256 of the image's /usr/local/bin/api.
binary_sha256() {
  local container sum
  container=$("$DOCKER" create "$1" /usr/local/bin/api 2>/dev/null) ||
    fail "$EXIT_REFUSED" "cannot read $1's files (docker create failed)"
  sum=$("$DOCKER" cp "$container:/usr/local/bin/api" - 2>/dev/null | tar -xO | sha256sum | cut -d' ' -f1) || true
  "$DOCKER" rm "$container" >/dev/null
  [[ $sum =~ ^[0-9a-f]{64}$ && $sum != e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b854 ]] ||
    fail "$EXIT_REFUSED" "$1 has no /usr/local/bin/api to describe"
  printf '%s\n' "$sum"
}

# sbom_describing IMAGE PLATFORM SHA256 FILE...: the FILE that is this
# image's CycloneDX SBOM (target, platform, revision, the binary's hash), or
# what is wrong with each, on stderr.
sbom_describing() {
  python3 - "$target" "$2" "$revision" "$3" "${@:4}" <<'PYTHON'
import json, sys

image, platform, revision, sha256, *files = sys.argv[1:]
for path in files:
    try:
        with open(path) as file:
            bom = json.load(file)
        component = bom["metadata"]["component"]
        said = {p["name"]: p["value"] for p in component.get("properties", [])}
        binaries = [c for c in bom.get("components", [])
                    if {"name": "api:path", "value": "/usr/local/bin/api"} in c.get("properties", [])]
        hashes = {h["content"] for c in binaries for h in c.get("hashes", []) if h["alg"] == "SHA-256"}
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"  {path}: not a CycloneDX SBOM of ours ({error})", file=sys.stderr)
        continue
    wrong = [f"{what} {said.get(key)!r}, not {want!r}" for what, key, want in (
        ("image", "api:image", image), ("platform", "api:platform", platform), ("revision", "api:revision", revision))
        if said.get(key) != want]
    if bom.get("bomFormat") != "CycloneDX":
        wrong.append("bomFormat is not CycloneDX")
    if sha256 not in hashes:
        wrong.append(f"the binary it lists is {', '.join(sorted(hashes)) or 'none'}, not this image's {sha256}")
    if not wrong:
        print(path)
        sys.exit(0)
    print(f"  {path}: {'; '.join(wrong)}", file=sys.stderr)
sys.exit(1)
PYTHON
}

# build_sbom IMAGE PLATFORM FILE: makes the image's SBOM from this checkout,
# with the build arguments its labels name.
build_sbom() {
  local image=$1 args=() name
  for name in VERSION:version GIT_REVISION:revision CREATED:created SOURCE:source; do
    args+=(--build-arg "${name%%:*}=$(label "$image" "${name#*:}")")
  done
  [[ -n $(label "$image" base.digest) ]] || args+=(--build-arg RUST_DIGEST= --build-arg RUNTIME_DIGEST=)
  say "  building the SBOM of $image ($2) from this checkout: docker build --target sbom"
  image_sbom "$3" "$target" "$REPO_ROOT" --platform "$2" "${args[@]}" >&2 ||
    fail "$EXIT_REFUSED" "could not build the SBOM of $image (docker build --target sbom failed)"
}

# registry_api COMMAND HOST REPOSITORY ARGS...: the registry's API, with
# docker's credentials for HOST; scripts/registry_api.py says what each
# command prints.
registry_api() {
  python3 "$REPO_ROOT/scripts/registry_api.py" "$@"
}

# push_failure OUTPUT: the exit code and meaning of a failed `docker push`.
push_failure() {
  case $(tr '[:upper:]' '[:lower:]' <<<"$1") in
    *"cannot be overwritten"* | *"tag invalid"* | *imagetagalreadyexists*)
      printf '%s\n' "$EXIT_TAG_HOLDS_OTHER the tag already exists and the repository refuses to overwrite it" ;;
    *unauthorized* | *"authentication required"* | *"no basic auth credentials"* | *denied*)
      printf '%s\n' "$EXIT_NOT_AUTHORISED not authorised to push there (docker login, or the role's permissions)" ;;
    *"name unknown"* | *"does not exist in the registry"*)
      printf '%s\n' "$EXIT_NO_REPOSITORY the repository $repository does not exist there: create it first (deploy/aws makes ECR's)" ;;
    *"dial tcp"* | *"no such host"* | *"connection refused"* | *"i/o timeout"* | *x509* | *tls* | *"connection reset"*)
      printf '%s\n' "$EXIT_UNREACHABLE cannot reach $registry" ;;
    *) printf '%s\n' "$EXIT_REFUSED the push failed" ;;
  esac
}

# registry_state COMMAND ARGS...: runs `registry_api`, sets STATE and DETAIL,
# and fails with the exit code of an error state.
registry_state() {
  read -r STATE DETAIL < <(registry_api "$1" "$registry" "$repository" "${@:2}")
  case $STATE in
    not-authorised) fail "$EXIT_NOT_AUTHORISED" "not authorised ($1 ${2:-}): $DETAIL" ;;
    no-repository) fail "$EXIT_NO_REPOSITORY" "the repository $repository does not exist in $registry ($DETAIL): nothing was pushed; create it first (deploy/aws makes ECR's)" ;;
    unreachable) fail "$EXIT_UNREACHABLE" "registry unreachable: $DETAIL" ;;
    failed | "") fail "$EXIT_REFUSED" "$1 ${2:-} failed: ${DETAIL:-no answer}" ;;
  esac
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# 1. The images, and the SBOM of each.
image_ids=() image_sboms=()
for i in "${!platforms[@]}"; do
  image=${local_images[i]} platform=${platforms[i]}
  if ((dry_run)); then
    show "$DOCKER image inspect $image   # labels: revision $revision, version $version; platform $platform"
    ((no_sbom)) || show "match an SBOM to $image: $target, $platform, $revision, the SHA-256 of its /usr/local/bin/api"
    image_ids+=("<image id>") image_sboms+=("<sbom>")
    continue
  fi
  check_local_image "$image" "$platform"
  image_ids+=("$IMAGE_CONFIG")
  if ((no_sbom)); then
    image_sboms+=("")
    continue
  fi
  sha256=$(binary_sha256 "$image")
  candidates=(${sbom_files[@]+"${sbom_files[@]}"})
  if ((${#candidates[@]} == 0)); then
    build_sbom "$image" "$platform" "$WORK/sbom-$i.cdx.json"
    candidates=("$WORK/sbom-$i.cdx.json")
  fi
  sbom=$(sbom_describing "$image" "$platform" "$sha256" "${candidates[@]}") ||
    fail "$EXIT_REFUSED" "no SBOM describes $image ($target, $platform, $revision, binary $sha256): make it with docs/supply-chain.md's command, or --no-sbom"
  say "  $image: its SBOM is $sbom"
  image_sboms+=("$sbom")
done

# The tags: <target>-<version> and <target>-<short sha>; an image built from
# uncommitted changes (--allow-dirty) only ever gets <target>-<short sha>-dirty,
# never the release's version tag.
if [[ $revision == *-dirty ]]; then
  tags=("$target-${revision:0:7}-dirty")
else
  tags=("$target-$version" "$target-${revision:0:7}")
fi

# credential_helper HOST: the credential helper docker's configuration names
# for HOST (credHelpers, else credsStore), or nothing.
credential_helper() {
  python3 -c '
import json, os, sys
path = os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")
try:
    with open(path) as file:
        config = json.load(file)
    print(config.get("credHelpers", {}).get(sys.argv[1]) or config.get("credsStore") or "")
except (OSError, ValueError, AttributeError):
    print("")
' "$1"
}

# 2. Login.
if ((ecr)) && [[ $(credential_helper "$registry") == ecr-login ]]; then
  # Amazon's docker-credential-ecr-login gets ECR's tokens itself, from the
  # AWS credentials, for docker and for push.sh's registry calls alike.
  say "  docker's configuration has docker-credential-ecr-login for $registry: no login step"
elif ((ecr)); then
  show "aws ecr get-login-password --region $region | $DOCKER login --username AWS --password-stdin $registry"
  if ((!dry_run)); then
    aws ecr get-login-password --region "$region" |
      "$DOCKER" login --username AWS --password-stdin "$registry" >&2 ||
      fail "$EXIT_NOT_AUTHORISED" "step 'login' failed: aws ecr get-login-password --region $region | docker login ... $registry"
  fi
fi

# 3. and 4. publish IMAGE IMAGE_ID TAG...: pushes IMAGE under each TAG that
# does not hold it yet (every tag is looked up before any is pushed: what is
# there decides what to push); sets DIGEST to its manifest digest, and adds
# a line per tag to RESULTS.
RESULTS=()
publish() {
  local image=$1 image_id=$2 tag ref to_push=() digests=() output config
  shift 2
  for tag in "$@"; do
    ref=$registry/$repository:$tag
    show "GET https://$api_host/v2/$repository/manifests/$tag   # absent, or already this image"
    ((dry_run)) && { to_push+=("$ref"); continue; }
    registry_state lookup "$tag"
    case $STATE in
      absent) say "  $tag is not in the registry yet"; to_push+=("$ref") ;;
      present)
        read -r DIGEST config _ <<<"$DETAIL"
        if [[ $config == "$image_id" ]]; then
          say "  $tag already holds this image ($image_id): nothing to push"
          RESULTS+=("present $ref@$DIGEST") digests+=("$DIGEST")
        elif ((force)); then
          say "  $tag holds another image ($ref@$DIGEST, image $config); overwriting it with $image_id (--force)"
          to_push+=("$ref")
        else
          fail "$EXIT_TAG_HOLDS_OTHER" "$ref already holds another image: the registry has $DIGEST (image $config), the local $image is $image_id; refusing to overwrite it (a new version, or --force where tags may change)"
        fi ;;
    esac
  done
  # ${a[@]+"${a[@]}"}: an empty array under `set -u` in bash before 4.4 (macOS's 3.2).
  for ref in ${to_push[@]+"${to_push[@]}"}; do
    show "$DOCKER tag $image $ref"
    ((dry_run)) || "$DOCKER" tag "$image" "$ref"
  done
  for ref in ${to_push[@]+"${to_push[@]}"}; do
    show "$DOCKER push $ref"
    ((dry_run)) && continue
    if ! output=$("$DOCKER" push "$ref" 2>&1); then
      printf '%s\n' "$output" | tail -n 5 >&2
      read -r code meaning < <(push_failure "$output")
      fail "$code" "step 'push' failed: $ref: $meaning"
    fi
    # The last line of a push: "<tag>: digest: sha256:<64 hex> size: <bytes>".
    DIGEST=$(printf '%s\n' "$output" | sed -nE 's/^.*: digest: (sha256:[0-9a-f]{64}) size: [0-9]+$/\1/p' | tail -n 1)
    [[ -n $DIGEST ]] || fail "$EXIT_REFUSED" "pushed $ref, but the push reported no digest: $(printf '%s' "$output" | tail -n 1)"
    RESULTS+=("pushed $ref@$DIGEST") digests+=("$DIGEST")
  done
  ((dry_run)) && { DIGEST="<digest of $image>"; return; }
  # Every tag must name one manifest: the image the deployment will pull by digest.
  [[ $(printf '%s\n' "${digests[@]}" | sort -u | wc -l) == 1 ]] ||
    say "warning: the tags hold one image under different manifest digests (compressed differently): ${digests[*]}"
  DIGEST=${digests[0]}
}

# 5. publish_index TAG...: the index of the platform images (DIGESTS), under
# each TAG; sets DIGEST to its digest. The index is made from the images'
# manifests as the registry has them, so the same images give the same index.
publish_index() {
  local tag ref index=$WORK/index.json platform_of=$WORK/platforms i
  for i in "${!platforms[@]}"; do
    printf '%s %s\n' "${DIGESTS[i]}" "${platforms[i]}"
  done >"$platform_of"
  show "PUT https://$registry/v2/$repository/manifests/<each tag>   # the index of ${platforms[*]}"
  ((dry_run)) && { DIGEST="<digest of the index>"; return; }
  while read -r digest platform; do
    registry_state lookup "$digest"
    [[ $STATE == present ]] || fail "$EXIT_REFUSED" "the registry has no $digest, pushed just now: $DETAIL"
    read -r _ _ media_type size <<<"$DETAIL"
    printf '%s %s %s %s\n' "$digest" "$media_type" "$size" "$platform"
  done <"$platform_of" | python3 -c '
import json, sys
lists = {"application/vnd.docker.distribution.manifest.v2+json": "application/vnd.docker.distribution.manifest.list.v2+json"}
entries = []
for line in sys.stdin:
    digest, media_type, size, platform = line.split()
    os_, arch, *variant = platform.split("/")
    entries.append({"mediaType": media_type, "digest": digest, "size": int(size),
                    "platform": {"architecture": arch, "os": os_, **({"variant": variant[0]} if variant else {})}})
# Docker manifests go in a Docker manifest list, OCI ones in an OCI index.
kind = lists.get(entries[0]["mediaType"], "application/vnd.oci.image.index.v1+json")
json.dump({"schemaVersion": 2, "mediaType": kind, "manifests": entries}, sys.stdout, sort_keys=True, separators=(",", ":"))
' >"$index"
  media_type=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mediaType"])' "$index")
  DIGEST=sha256:$(sha256sum "$index" | cut -d' ' -f1)
  for tag in "$@"; do
    ref=$registry/$repository:$tag
    registry_state lookup "$tag"
    if [[ $STATE == present && ${DETAIL%% *} == "$DIGEST" ]]; then
      say "  $tag already holds this index: nothing to push"
      RESULTS+=("present $ref@$DIGEST")
      continue
    elif [[ $STATE == present ]] && ((!force)); then
      fail "$EXIT_TAG_HOLDS_OTHER" "$ref already holds another image: the registry has ${DETAIL%% *}, the index of the local images is $DIGEST; refusing to overwrite it (a new version, or --force where tags may change)"
    fi
    registry_state put-manifest "$tag" "$media_type" "$index"
    RESULTS+=("pushed $ref@$DIGEST")
  done
}

# 6. attach_sbom SUBJECT_DIGEST FILE WHAT: the SBOM as a referrer of SUBJECT.
attach_sbom() {
  local created
  show "attach $2 to $registry/$repository@$1   # an OCI artifact ($SBOM_TYPE) whose subject is $1"
  ((dry_run)) && return
  created=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metadata"]["timestamp"])' "$2")
  registry_state attach "$1" "$2" "$SBOM_TYPE" "$created" "CycloneDX SBOM of $3"
  read -r referrer how <<<"$DETAIL"
  say "  attached the SBOM of $3 to $1: $referrer (${how/tag:/the referrers tag })"
  RESULTS+=("sbom $registry/$repository@$1 $referrer")
}

DIGESTS=()
for i in "${!platforms[@]}"; do
  if ((multi)); then
    arch=${platforms[i]#*/}
    publish "${local_images[i]}" "${image_ids[i]}" "${tags[0]}-${arch//\//-}"
  else
    publish "${local_images[i]}" "${image_ids[i]}" "${tags[@]}"
  fi
  DIGESTS+=("$DIGEST")
done
if ((multi)); then
  publish_index "${tags[@]}"
fi
pushed=$DIGEST
if ((!no_sbom)); then
  for i in "${!platforms[@]}"; do
    attach_sbom "${DIGESTS[i]}" "${image_sboms[i]}" "api $target $version, ${platforms[i]}"
    ((!multi)) || attach_sbom "$pushed" "${image_sboms[i]}" "api $target $version, ${platforms[i]}"
  done
fi

if ((dry_run)); then
  say "dry run: nothing was pushed; would push $(printf "$registry/$repository:%s " "${tags[@]}")"
  exit 0
fi
printf '%s\n' "${RESULTS[@]}"
[[ -z $digest_file ]] || printf '%s\n' "$pushed" >"$digest_file"
if [[ -n $platform_digests_file ]]; then
  for i in "${!platforms[@]}"; do printf '%s %s\n' "${platforms[i]}" "${DIGESTS[i]}"; done >"$platform_digests_file"
fi
