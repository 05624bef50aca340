#!/usr/bin/env bash
# Tests scripts/push.sh against a real registry with a login: one of its own
# (Debian's docker-registry, CNCF distribution 2.8, as the container kit's:
# TLS with a CA made for the run, htpasswd login, on a free loopback port,
# its data in the run's folder), or the one API_TEST_REGISTRY names
# (HOST:PORT, with REGISTRY_USER and REGISTRY_PASSWORD). Runs push.sh from a
# fresh clone of HEAD, on an image built from that clone with the release
# build arguments, and its SBOM; finds the SBOM again from the image digest
# alone. Needs root (apt, /etc/docker/certs.d).
#
#   scripts/test-push.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ECR logins always use the user name AWS: so does our registry, so that the
# --ecr login below runs the real `docker login` against it.
export REGISTRY_USER=${REGISTRY_USER:-AWS} REGISTRY_PASSWORD=${REGISTRY_PASSWORD:-ecr-stand-in-password}
REGISTRY=${API_TEST_REGISTRY:-}
REGISTRY_PID="" FAKE_PID=""
WORK=$(mktemp -d)
LOCAL_IMAGES=()
cleanup() {
  "$DOCKER" rm -f "api-test-pulled-$$" >/dev/null 2>&1 || true
  [[ -z $FAKE_PID ]] || kill "$FAKE_PID" 2>/dev/null || true
  # The images push.sh tagged or docker pulled, in every repository of this run.
  while read -r image; do LOCAL_IMAGES+=("$image"); done < <("$DOCKER" images --no-trunc \
    --format '{{.Repository}} {{.ID}}' | grep -F "${REGISTRY:-none}/${REPOSITORY:-none}" | cut -d' ' -f2 | sort -u)
  for image in ${LOCAL_IMAGES[@]+"${LOCAL_IMAGES[@]}"}; do "$DOCKER" rmi -f "$image" >/dev/null 2>&1 || true; done
  if [[ -n $REGISTRY_PID ]]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    "$DOCKER" logout "$REGISTRY" >/dev/null 2>&1 || true
    rm -rf "/etc/docker/certs.d/$REGISTRY"
  elif [[ -n $REGISTRY ]]; then
    # Leave the machine logged in to the registry it was given.
    printf '%s\n' "$REGISTRY_PASSWORD" |
      "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_registry: our own registry, for this run only; sets REGISTRY and
# REGISTRY_PID, and logs docker in.
start_registry() {
  local dir=$WORK/registry port policy=0
  if ! command -v docker-registry >/dev/null; then
    # The package's init script would start a registry of its own, on :5000
    # with the stock configuration: refused while it installs.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
    fi
    apt_tool docker-registry
    ((!policy)) || rm -f /usr/sbin/policy-rc.d
  fi
  apt_tool htpasswd apache2-utils
  apt_tool openssl
  port=$(free_port)
  REGISTRY=127.0.0.1:$port
  mkdir -p "$dir/data"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=api push test CA $$" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -sha256 -subj /CN=127.0.0.1 -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 -sha256 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "$dir/server.crt" 2>/dev/null
  # bcrypt: the only scheme distribution's htpasswd accepts.
  htpasswd -Bbc "$dir/htpasswd" "$REGISTRY_USER" "$REGISTRY_PASSWORD" 2>/dev/null
  cat >"$dir/config.yml" <<CONFIG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/data}
http:
  addr: $REGISTRY
  secret: $(openssl rand -hex 16)
  tls: {certificate: $dir/server.crt, key: $dir/server.key}
auth:
  htpasswd: {realm: api-push-test, path: $dir/htpasswd}
CONFIG
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REGISTRY_PID=$!
  # dockerd trusts /etc/docker/certs.d/<host:port>/ca.crt (loopback
  # registries it reaches without verifying anyway); so does push.sh.
  install -D -m 0644 "$dir/ca.crt" "/etc/docker/certs.d/$REGISTRY/ca.crt"
  local deadline=$((SECONDS + 30))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/ca.crt" "https://$REGISTRY/v2/") == 401 ]]; do
    if ((SECONDS >= deadline)) || ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
      cat "$dir/log" >&2
      die "the registry did not start"
    fi
    sleep 0.2
  done
  REGISTRY_CA=$dir/ca.crt
}

docker_up
if [[ -n $REGISTRY ]]; then
  log "logging in to $REGISTRY"
  REGISTRY_CA=/etc/docker/certs.d/$REGISTRY/ca.crt
else
  log "starting a registry of our own (docker-registry, TLS, htpasswd)"
  start_registry
  log "registry: https://$REGISTRY (pid $REGISTRY_PID)"
fi
printf '%s\n' "$REGISTRY_PASSWORD" | "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >&2

git clone -q "$REPO_ROOT" "$WORK/clone"
CLONE=$WORK/clone
PUSH=$CLONE/scripts/push.sh
VERSION=$(crate_version)
HEAD=$(git -C "$CLONE" rev-parse HEAD)
SHA=${HEAD:0:7}
# The registry keeps its data between runs: a repository of our own per run.
REPOSITORY=api-test-$(date +%s)-$$
IMAGE=api:push-test-$$
LOCAL_IMAGES+=("$IMAGE")

log "building $IMAGE from the clone, with the release build arguments"
image_build_args "$CLONE"
image_build "$CLONE" -t "$IMAGE" "${IMAGE_BUILD_ARGS[@]}" ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} >&2
IMAGE_ID=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE")
log "its SBOM: docker build --target sbom, with the same arguments"
SBOM=$WORK/sbom.cdx.json
image_sbom "$SBOM" production "$CLONE" "${IMAGE_BUILD_ARGS[@]}" ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} >&2
# The same commit and arguments, the SBOM step run again (SBOM_RERUN keeps it
# out of the build cache): the same bytes.
image_sbom "$WORK/sbom-again.cdx.json" production "$CLONE" "${IMAGE_BUILD_ARGS[@]}" \
  ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} --build-arg "SBOM_RERUN=$$" >&2
check "the SBOM is reproducible: its step run again gives the same bytes" cmp "$SBOM" "$WORK/sbom-again.cdx.json"
SUPPLY=$(python_tool supply-chain "cyclonedx-python-lib[json-validation]==11.12.0" "oras==0.2.43")
AUDIT_INFO=$(cargo_tool rust-audit-info 0.5.4)

OUT=$WORK/out
# The kit's stand-in bases are not pinned by digest: images built from them
# need --allow-unpinned-base (its refusal is tested on its own below).
UNPINNED=()
((${#BASE_IMAGE_ARGS[@]} == 0)) || UNPINNED=(--allow-unpinned-base)
# push ARGS...: runs push.sh into $REPOSITORY, on $IMAGE with $SBOM unless
# ARGS name other images or SBOMs; output in $OUT; its exit code is the result.
push() {
  local defaults=()
  [[ " $* " == *" --local-image "* ]] || defaults+=(--local-image "$IMAGE")
  [[ " $* " == *" --sbom "* || " $* " == *" --no-sbom "* ]] || defaults+=(--sbom "$SBOM")
  "$PUSH" --registry "$REGISTRY" --repository "$REPOSITORY" ${defaults[@]+"${defaults[@]}"} \
    ${UNPINNED[@]+"${UNPINNED[@]}"} "$@" >"$OUT" 2>&1
}
# run COMMAND...: runs COMMAND with its output in $OUT.
run() { "$@" >"$OUT" 2>&1; }
output_has() { grep -qF -- "$1" "$OUT" || { sed 's/^/     | /' "$OUT"; return 1; }; }
# exits CODE COMMAND...: COMMAND exits with exactly CODE.
exits() {
  local want=$1 code=0
  shift
  "$@" || code=$?
  [[ $code == "$want" ]] || { printf '     exit %s, not %s\n' "$code" "$want"; sed 's/^/     | /' "$OUT"; return 1; }
}
REF=$REGISTRY/$REPOSITORY:production-$VERSION
SHA_REF=$REGISTRY/$REPOSITORY:production-$SHA
sha256() { [[ $1 =~ ^sha256:[0-9a-f]{64}$ ]]; }

log "push to a registry we are logged in to"
check "push.sh --registry pushes" push --digest-file "$WORK/digest"
DIGEST=$(sed -n "s|^pushed $REF@||p" "$OUT")
check "it prints the pushed version reference with a sha256 digest ($DIGEST)" sha256 "$DIGEST"
check "it pushes the git sha tag with the same digest" output_has "pushed $SHA_REF@$DIGEST"
check "--digest-file holds that digest" test "$(cat "$WORK/digest")" = "$DIGEST"
SBOM_REFERRER=$(sed -n "s|^sbom $REGISTRY/$REPOSITORY@$DIGEST ||p" "$OUT")
check "it attaches the SBOM to that digest ($SBOM_REFERRER)" sha256 "$SBOM_REFERRER"
check "... through the referrers tag (distribution 2.8 has no referrers API)" \
  output_has "attached the SBOM of api production $VERSION, linux/amd64 to $DIGEST: $SBOM_REFERRER (the referrers tag ${DIGEST/:/-})"

log "pull it back: every blob from the registry, then docker pull of the removed image"
# Docker keeps the layers its build cache references even once the image is
# removed, so `docker pull` may download none: the whole image is fetched
# from the registry without Docker first, each blob checked against its
# digest, and the binary in it run.
check "the registry serves the manifest and every blob of $DIGEST" python3 "$REPO_ROOT/tests/images/registry_pull.py" \
  "$REGISTRY" "$REPOSITORY" "$DIGEST" "$REGISTRY_USER" "$REGISTRY_PASSWORD" "$WORK/pulled"
check "... and the binary in its layers is the one built: $("$WORK/pulled/api" --version 2>&1)" \
  test "$("$WORK/pulled/api" --version 2>&1)" = "api $VERSION ($HEAD)"
"$DOCKER" rmi "$REF" "$SHA_REF" "$IMAGE" >/dev/null
image_gone() { ! "$DOCKER" image inspect "$IMAGE_ID" >/dev/null 2>&1; }
check "the pushed image is gone from the local store" image_gone
quiet_pull() { "$DOCKER" pull -q "$1" >/dev/null; }
check "docker pull by digest brings it back" quiet_pull "$REGISTRY/$REPOSITORY@$DIGEST"
check "the pulled image is the pushed one (same image id)" \
  test "$("$DOCKER" image inspect -f '{{.Id}}' "$REGISTRY/$REPOSITORY@$DIGEST")" = "$IMAGE_ID"
tag_digest() { "$DOCKER" pull "$1" | sed -n 's/^Digest: //p'; }
check "pull by tag resolves to the reported digest" test "$(tag_digest "$REF")" = "$DIGEST"
port=$(free_port)
"$DOCKER" run -d --name "api-test-pulled-$$" -p "127.0.0.1:$port:8000" "$REGISTRY/$REPOSITORY@$DIGEST" >/dev/null
wait_for_http "http://127.0.0.1:$port/healthcheck" 30 || true
check "the pulled image serves /hello_world" \
  http_is "http://127.0.0.1:$port/hello_world" 200 '{"message":"Hello World!"}'
"$DOCKER" tag "$REGISTRY/$REPOSITORY@$DIGEST" "$IMAGE"
LOCAL_IMAGES+=("$REF" "$SHA_REF")

log "the SBOM, from the image digest alone (ORAS, not push.sh's code)"
# find_sbom DIGEST DIR [COUNT] [REPOSITORY]: the SBOMs whose subject is DIGEST, into DIR.
find_sbom() {
  mkdir -p "$2"
  "$SUPPLY/python" "$REPO_ROOT/tests/supply_chain/find_sbom.py" "$REGISTRY" "${4:-$REPOSITORY}" "$1" \
    "$REGISTRY_USER" "$REGISTRY_PASSWORD" "$REGISTRY_CA" "$2" "${3:-1}" | sed 's/^/     /'
  [[ ${PIPESTATUS[0]} == 0 ]]
}
check "found from $DIGEST: one CycloneDX SBOM, its blob and referrer checked against their digests" \
  find_sbom "$DIGEST" "$WORK/found"
check "... the very file push.sh attached" cmp "$SBOM" "$WORK/found/sbom-1.cdx.json"
# What it must describe: the pulled image's binary, its crate list, its packages.
mkdir "$WORK/dpkg"
container=$("$DOCKER" create "$REGISTRY/$REPOSITORY@$DIGEST" /x)
"$DOCKER" cp "$container:/var/lib/dpkg/status.d" - | tar -x -C "$WORK/dpkg"
"$DOCKER" rm "$container" >/dev/null
"$AUDIT_INFO" "$WORK/pulled/api" >"$WORK/audit.json"
describes() {
  "$SUPPLY/python" "$REPO_ROOT/tests/supply_chain/check_sbom.py" "$1" "$WORK/audit.json" "$WORK/dpkg/status.d" \
    --image production --platform linux/amd64 --revision "$HEAD" \
    --source "$("$DOCKER" image inspect -f '{{index .Config.Labels "org.opencontainers.image.source"}}' "$IMAGE")" \
    --binary-sha256 "$(sha256sum "$WORK/pulled/api" | cut -d' ' -f1)" \
    --rust "$(sed -n 's/^ARG RUST_IMAGE=.*:\([0-9.]*\)-.*/\1/p' "$CLONE/Dockerfile")" | sed 's/^/     /'
  [[ ${PIPESTATUS[0]} == 0 ]]
}
check "... valid CycloneDX 1.5, every crate of the pulled binary with its exact version, its packages, its hash" \
  describes "$WORK/found/sbom-1.cdx.json"

log "re-runs: the tags already hold this image"
check "a second push of the same image succeeds" push
check "... pushing nothing" fails grep -q '^+ .* push ' "$OUT"
check "... reporting the registry's digest for both tags" \
  grep -qxF "present $REF@$DIGEST" "$OUT"
check "... the sha tag too" grep -qxF "present $SHA_REF@$DIGEST" "$OUT"
check "... and the same SBOM referrer" grep -qxF "sbom $REGISTRY/$REPOSITORY@$DIGEST $SBOM_REFERRER" "$OUT"
check "... still the only SBOM of the image" find_sbom "$DIGEST" "$WORK/found-again"
results_on_stdout() {
  "$PUSH" --registry "$REGISTRY" --repository "$REPOSITORY" --local-image "$IMAGE" --sbom "$SBOM" \
    ${UNPINNED[@]+"${UNPINNED[@]}"} 2>/dev/null >"$WORK/stdout"
  printf '%s\n' "present $REF@$DIGEST" "present $SHA_REF@$DIGEST" "sbom $REGISTRY/$REPOSITORY@$DIGEST $SBOM_REFERRER" |
    cmp -s - "$WORK/stdout"
}
check "... and stdout holds just those three lines (progress goes to stderr)" results_on_stdout

log "the image's identity is its config digest, from docker save (not docker image inspect's .Id)"
# Under the containerd image store, `docker image inspect`'s .Id is the
# digest of the image's manifest or index, not of its config, which is what
# the registry's manifest names. A docker that answers as that store does:
cat >"$WORK/containerd-docker" <<DOCKER
#!/usr/bin/env bash
if [[ \$1 == image && \$2 == inspect && " \$* " == *" {{.Id}} "* ]]; then
  echo sha256:$(printf 'the digest of a manifest' | sha256sum | cut -d' ' -f1)
  exit 0
fi
exec "$DOCKER" "\$@"
DOCKER
chmod +x "$WORK/containerd-docker"
check "a re-run where .Id is not the config digest (containerd's store) succeeds" \
  run env DOCKER="$WORK/containerd-docker" "$PUSH" --registry "$REGISTRY" --repository "$REPOSITORY" \
  --local-image "$IMAGE" --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... finding the tags holding this very image" output_has "present $REF@$DIGEST"

log "an image with other bytes under the same tags"
OTHER=api:push-test-other-$$
LOCAL_IMAGES+=("$OTHER")
# FROM the pushed image, with one label changed: the same HEAD, version and
# platform (push.sh accepts it), but another config, so another image.
derive() { # derive TAG DOCKER_BUILD_OPTIONS...: an image FROM $IMAGE
  local tag=$1
  shift
  printf 'FROM %s\n' "$IMAGE" | "$DOCKER" build -q -t "$tag" "$@" - >/dev/null
  LOCAL_IMAGES+=("$tag")
}
derive "$OTHER" --label org.opencontainers.image.source=https://example.invalid/another-build
OTHER_ID=$("$DOCKER" image inspect -f '{{.Id}}' "$OTHER")
check "it really differs (image ids $IMAGE_ID vs $OTHER_ID)" test "$OTHER_ID" != "$IMAGE_ID"
check "pushing it under the existing tags fails with exit 3" exits 3 push --local-image "$OTHER"
check "... naming the registry's digest" output_has "the registry has $DIGEST"
check "... and the local image's" output_has "$OTHER is $OTHER_ID"
check "... and the registry still has the first image" test "$(tag_digest "$REF")" = "$DIGEST"
check "--force overwrites it" push --local-image "$OTHER" --force
NEW_DIGEST=$(sed -n "s|^pushed $REF@||p" "$OUT")
check "... the tag now resolves to the new digest ($NEW_DIGEST)" \
  test "$(tag_digest "$REF")" = "$NEW_DIGEST" -a "$NEW_DIGEST" != "$DIGEST"
check "... which holds the other image" \
  test "$("$DOCKER" image inspect -f '{{.Id}}' "$REGISTRY/$REPOSITORY@$NEW_DIGEST")" = "$OTHER_ID"

log "refused before anything is pushed: images that are not what the tags say"
# refused DESCRIPTION MESSAGE PUSH_ARGS...: push.sh exits 1 saying MESSAGE,
# and the repository it would push to stays empty.
refused() {
  local description=$1 message=$2 repository
  shift 2
  REFUSALS=$((REFUSALS + 1))
  repository=$REPOSITORY-refused-$REFUSALS
  check "$description: refused (exit 1)" exits 1 run "$PUSH" --registry "$REGISTRY" --repository "$repository" "$@"
  check "... saying: $message" output_has "$message"
  check "... and nothing was pushed" fails grep -q '^pushed' "$OUT"
}
REFUSALS=0
unset_label() { derive "$1" --label "org.opencontainers.image.$2=$3"; }
unset_label "api:push-test-unlabelled-$$" revision ""
refused "an image built without the build arguments" "built without the build arguments" \
  --local-image "api:push-test-unlabelled-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
OLDER=$(git -C "$CLONE" rev-parse HEAD~1)
unset_label "api:push-test-stale-$$" revision "$OLDER"
refused "a stale image from the previous commit" "was built from $OLDER, but HEAD is $HEAD" \
  --local-image "api:push-test-stale-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
unset_label "api:push-test-dirty-$$" revision "$HEAD-dirty"
refused "an image built from uncommitted changes" "built from uncommitted changes" \
  --local-image "api:push-test-dirty-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
# tags_of REPOSITORY: the tags the registry lists for REPOSITORY, sorted, one a line.
tags_of() {
  curl -fsS --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "https://$REGISTRY/v2/$1/tags/list" |
    python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin).get("tags") or [])))'
}
check "that image with --allow-dirty pushes" push --repository "$REPOSITORY-dirty" \
  --local-image "api:push-test-dirty-$$" --allow-dirty --no-sbom
check "... as production-$SHA-dirty" output_has "pushed $REGISTRY/$REPOSITORY-dirty:production-$SHA-dirty@sha256:"
check "... and under no other tag: not the release's production-$VERSION" \
  test "$(tags_of "$REPOSITORY-dirty")" = "production-$SHA-dirty"
unset_label "api:push-test-version-$$" version 0.0.1
refused "an image of another version" "is version 0.0.1, but Cargo.toml says $VERSION" \
  --local-image "api:push-test-version-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
unset_label "api:push-test-created-$$" created 1970-01-01T00:00:00Z
refused "an image with no build time" "has no build time" \
  --local-image "api:push-test-created-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
unset_label "api:push-test-unpinned-$$" base.digest ""
refused "an image whose base is not pinned, without --allow-unpinned-base" "not pinned by digest" \
  --local-image "api:push-test-unpinned-$$"
# An arm64 image with the same labels, as an Apple-silicon laptop builds it.
labels=()
# shellcheck disable=SC2016 # a Go template, not shell
while IFS= read -r entry; do labels+=(--label "$entry"); done < <(
  "$DOCKER" image inspect -f '{{range $k, $v := .Config.Labels}}{{printf "%s=%s\n" $k $v}}{{end}}' "$IMAGE" | sed '/^$/d')
# (Its /usr/local/bin/api is a stand-in: nothing here can build for arm64.)
ARM64=api:push-test-arm64-$$
mkdir "$WORK/arm64"
printf 'an arm64 stand-in, %s\n' "$$" >"$WORK/arm64/api"
printf 'FROM scratch\nCOPY api /usr/local/bin/api\n' >"$WORK/arm64/Dockerfile"
"$DOCKER" build -q --platform linux/arm64 -t "$ARM64" "${labels[@]}" "$WORK/arm64" >/dev/null
LOCAL_IMAGES+=("$ARM64")
refused "an arm64 image, for linux/amd64" "is built for linux/arm64, not linux/amd64" \
  --local-image "$ARM64" ${UNPINNED[@]+"${UNPINNED[@]}"}
refused "a missing local image" "no local image api:no-such-image" --local-image api:no-such-image

log "the SBOM must describe the image"
# sbom_with FILE CHANGES: $SBOM edited by a Python expression on `bom`.
sbom_with() {
  python3 -c '
import json, sys
bom = json.load(open(sys.argv[1]))
said = {p["name"]: p for p in bom["metadata"]["component"]["properties"]}
binary = next(c for c in bom["components"] if {"name": "api:path", "value": "/usr/local/bin/api"} in c.get("properties", []))
exec(sys.argv[3])
json.dump(bom, open(sys.argv[2], "w"), sort_keys=True)' "$SBOM" "$1" "$2"
}
sbom_with "$WORK/sbom-other-binary.cdx.json" 'binary["hashes"][0]["content"] = "0" * 64'
refused "an SBOM listing another binary" "no SBOM describes $IMAGE" --local-image "$IMAGE" \
  --sbom "$WORK/sbom-other-binary.cdx.json" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... saying why" output_has "not this image's $(sha256sum "$WORK/pulled/api" | cut -d' ' -f1)"
sbom_with "$WORK/sbom-staging.cdx.json" 'said["api:image"]["value"] = "staging"'
refused "the SBOM of the staging image" "image 'staging', not 'production'" --local-image "$IMAGE" \
  --sbom "$WORK/sbom-staging.cdx.json" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "--no-sbom pushes without one" push --repository "$REPOSITORY-no-sbom" --no-sbom
check "... attaching nothing" fails grep -q '^sbom ' "$OUT"
NO_SBOM_DIGEST=$(sed -n "s|^pushed $REGISTRY/$REPOSITORY-no-sbom:production-$VERSION@||p" "$OUT")
check "... so none is found from its digest" \
  fails find_sbom "$NO_SBOM_DIGEST" "$WORK/found-none" 1 "$REPOSITORY-no-sbom"

log "two platforms under one index: amd64 (the image built) and arm64 (the stand-in above)"
ARM64_SHA256=$(sha256sum "$WORK/arm64/api" | cut -d' ' -f1)
sbom_with "$WORK/sbom-arm64.cdx.json" "said['api:platform']['value'] = 'linux/arm64'; binary['hashes'][0]['content'] = '$ARM64_SHA256'"
MULTI=$REPOSITORY-multi
multi_push() {
  push --repository "$MULTI" --platform linux/amd64,linux/arm64 --local-image "$IMAGE" --local-image "$ARM64" \
    --sbom "$SBOM" --sbom "$WORK/sbom-arm64.cdx.json" --digest-file "$WORK/index-digest" \
    --platform-digests-file "$WORK/platform-digests"
}
check "push.sh --platform linux/amd64,linux/arm64 with an image and an SBOM each pushes" multi_push
INDEX_DIGEST=$(cat "$WORK/index-digest")
AMD64_DIGEST=$(sed -n 's|^linux/amd64 ||p' "$WORK/platform-digests")
ARM64_DIGEST=$(sed -n 's|^linux/arm64 ||p' "$WORK/platform-digests")
check "... each image under its own tag (production-$VERSION-<arch>)" \
  output_has "pushed $REGISTRY/$MULTI:production-$VERSION-arm64@$ARM64_DIGEST"
check "... both tags holding the index ($INDEX_DIGEST)" output_has "pushed $REGISTRY/$MULTI:production-$SHA@$INDEX_DIGEST"
# index_platforms TAG: "<os>/<arch> <digest>" for each manifest of the index TAG holds.
index_platforms() {
  curl -fsS --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:$REGISTRY_PASSWORD" \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "https://$REGISTRY/v2/$MULTI/manifests/$1" |
    python3 -c 'import json, sys; [print(m["platform"]["os"] + "/" + m["platform"]["architecture"], m["digest"]) for m in json.load(sys.stdin)["manifests"]]'
}
check "... which lists exactly the two images, by platform" \
  test "$(index_platforms "production-$VERSION")" = "$(cat "$WORK/platform-digests")"
pulls_amd64() {
  "$DOCKER" pull -q --platform linux/amd64 "$REGISTRY/$MULTI:production-$VERSION" >/dev/null &&
    [[ $("$DOCKER" image inspect -f '{{.Id}}' "$REGISTRY/$MULTI:production-$VERSION") == "$IMAGE_ID" ]]
}
check "docker pull --platform linux/amd64 of the tag gets the amd64 image (same image id)" pulls_amd64
LOCAL_IMAGES+=("$REGISTRY/$MULTI:production-$VERSION")
check "the amd64 image's SBOM, found from its digest" find_sbom "$AMD64_DIGEST" "$WORK/found-amd64" 1 "$MULTI"
check "... is the amd64 SBOM" cmp "$SBOM" "$WORK/found-amd64/sbom-1.cdx.json"
check "the arm64 image's, from its digest" find_sbom "$ARM64_DIGEST" "$WORK/found-arm64" 1 "$MULTI"
check "... is the arm64 SBOM" cmp "$WORK/sbom-arm64.cdx.json" "$WORK/found-arm64/sbom-1.cdx.json"
check "both, from the index digest" find_sbom "$INDEX_DIGEST" "$WORK/found-index" 2 "$MULTI"
check "a re-run succeeds" multi_push
check "... pushing nothing" fails grep -q '^pushed' "$OUT"
check "... finding the same index under both tags" output_has "present $REGISTRY/$MULTI:production-$SHA@$INDEX_DIGEST"
check "--platform linux/amd64,linux/arm64/v8 (arm64's default variant, said) is the same push" \
  push --repository "$MULTI" --platform linux/amd64,linux/arm64/v8 --local-image "$IMAGE" --local-image "$ARM64" \
  --sbom "$SBOM" --sbom "$WORK/sbom-arm64.cdx.json"
check "... finding the same index, pushing nothing" output_has "present $REGISTRY/$MULTI:production-$SHA@$INDEX_DIGEST"
check "... and no tag of its own for the variant" fails grep -q 'arm64-v8' "$OUT"
check "an index of other images under the same tags fails with exit 3" exits 3 push --repository "$MULTI" \
  --platform linux/amd64,linux/arm64 --local-image "$OTHER" --local-image "$ARM64" \
  --sbom "$SBOM" --sbom "$WORK/sbom-arm64.cdx.json"
check "two platforms and one --local-image is a usage error (exit 2)" exits 2 push --repository "$MULTI" \
  --platform linux/amd64,linux/arm64 --local-image "$IMAGE"

log "the git tree: only the image's sources count"
touch "$CLONE/terraform.tfvars" "$CLONE/target-untracked.log"
mkdir -p "$CLONE/target" && touch "$CLONE/target/ignored"
check "untracked and ignored files elsewhere do not stop a push" push --local-image "$OTHER"
check "... (which found the tags holding the forced image)" output_has "present $REF@$NEW_DIGEST"
printf '\n// an uncommitted change\n' >>"$CLONE/src/main.rs"
refused "uncommitted changes to src/" "uncommitted changes" --local-image "$IMAGE" ${UNPINNED[@]+"${UNPINNED[@]}"}
git -C "$CLONE" checkout -q -- src/main.rs

log "the registry's answers: absent, not authorised, unreachable"
"$DOCKER" logout "$REGISTRY" >/dev/null
check "logged out: exit 4" exits 4 push --repository "$REPOSITORY-logged-out"
check "... saying so, not 'absent'" output_has "not logged in to $REGISTRY"
check "... and nothing was pushed" fails grep -q '^pushed' "$OUT"
mkdir "$WORK/wrong-credentials"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" "$(printf 'AWS:wrong-password' | base64)" \
  >"$WORK/wrong-credentials/config.json"
check "wrong credentials: exit 4" exits 4 run env DOCKER_CONFIG="$WORK/wrong-credentials" "$PUSH" \
  --registry "$REGISTRY" --repository "$REPOSITORY-wrong" --local-image "$IMAGE" --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... saying the registry refused them" output_has "HTTP 401 from $REGISTRY"
unreachable=127.0.0.1:$(free_port)
check "a registry nobody listens on: exit 5" exits 5 run "$PUSH" --registry "$unreachable" \
  --local-image "$IMAGE" --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... saying it is unreachable" output_has "registry unreachable: cannot reach $unreachable"
printf '%s\n' "$REGISTRY_PASSWORD" | "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1
check "logged in again, the same push finds the tags absent and pushes" push --repository "$REPOSITORY-logged-out"
check "... saying they were absent" output_has "is not in the registry yet"

log "a registry that redirects blob requests to its storage (ECR and ghcr.io to S3, Docker Hub to a CDN)"
check "the SBOM is attached, the token never reaches the storage host, no blob is uploaded twice" \
  python3 "$REPO_ROOT/tests/supply_chain/registry_redirects.py" "$CLONE/scripts/registry_api.py"

log "Docker Hub: its API is registry-1.docker.io, docker keeps its credentials under https://index.docker.io/v1/"
check "--registry docker.io --dry-run asks registry-1.docker.io" \
  run "$PUSH" --registry docker.io --repository someone/api --local-image "$IMAGE" --dry-run
check "... for each tag" output_has "GET https://registry-1.docker.io/v2/someone/api/manifests/production-$VERSION"
# Docker Hub cannot be reached from here: PUSH_DOCKER_HUB_API puts its API on
# our registry, where the tags already hold the image, so that the lookups
# (which need the credentials) are all a run does besides the SBOM.
mkdir "$WORK/hub-config"
printf '{"auths": {"https://index.docker.io/v1/": {"auth": "%s"}}}\n' \
  "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASSWORD" | base64 | tr -d '\n')" >"$WORK/hub-config/config.json"
check "--registry docker.io with the credentials under https://index.docker.io/v1/: logged in" \
  run env DOCKER_CONFIG="$WORK/hub-config" PUSH_DOCKER_HUB_API="$REGISTRY" "$PUSH" --registry docker.io \
  --repository "$REPOSITORY-logged-out" --local-image "$IMAGE" --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... finding the tags holding the image" output_has "present docker.io/$REPOSITORY-logged-out:production-$VERSION@"

log "what a registry answers when things are wrong (tests/supply_chain/fake_registry.py)"
FAKE_PORT=$(free_port)
FAKE=127.0.0.1:$FAKE_PORT
python3 "$REPO_ROOT/tests/supply_chain/fake_registry.py" "$FAKE_PORT" AWS fake-secret "$WORK/fake.log" &
FAKE_PID=$!
for _ in $(seq 50); do curl -fs -u AWS:fake-secret "http://$FAKE/v2/" >/dev/null && break; sleep 0.1; done
mkdir "$WORK/fake-config"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$FAKE" "$(printf 'AWS:fake-secret' | base64)" >"$WORK/fake-config/config.json"
fake_push() {
  run env DOCKER_CONFIG="$WORK/fake-config" "$PUSH" --registry "$FAKE" --repository "$1" --local-image "$IMAGE" \
    --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
}
check "403 with credentials: not authorised (exit 4), not 'absent'" exits 4 fake_push forbidden
check "... saying so" output_has "HTTP 403 from $FAKE"
check "a manifest that is not JSON: exit 1" exits 1 fake_push garbage
check "... saying so" output_has "is not a JSON object"
check "NAME_UNKNOWN, the repository missing: exit 6" exits 6 fake_push missing
check "... saying so, and that nothing was pushed" output_has "does not exist in $FAKE"
check "... asked with the credentials" grep -q '^GET /v2/missing/manifests/.* AWS$' "$WORK/fake.log"
check "none of them wrote anything to the registry (no PUT, POST, PATCH)" fails grep -qE '^(PUT|POST|PATCH) ' "$WORK/fake.log"

log "ECR: dry runs"
export AWS_CALLS=$WORK/aws-calls
# A stand-in for the AWS CLI, first on PATH: it records its arguments and
# prints $STANDIN_PASSWORD as the ECR login password.
mkdir "$WORK/bin"
cat >"$WORK/bin/aws" <<'AWS'
#!/usr/bin/env bash
printf '%s\n' "$*" >>"$AWS_CALLS"
[[ "$1 $2" == "ecr get-login-password" ]] || exit 2
printf '%s\n' "$STANDIN_PASSWORD"
AWS
chmod +x "$WORK/bin/aws"
dry_run_ecr() {
  env -u AWS_ACCOUNT_ID -u AWS_REGION -u AWS_DEFAULT_REGION DOCKER=/nonexistent/docker \
    PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=unused "$PUSH" --ecr --dry-run "$@" >"$OUT" 2>&1
}
check "--ecr --dry-run, as docs/images.md writes it (no account, no region), succeeds" dry_run_ecr
PLACEHOLDER_HOST='<account>.dkr.ecr.<region>.amazonaws.com'
check "... with placeholders, said so" output_has "shown as <account> and <region>"
check "... naming the images" output_has "would push $PLACEHOLDER_HOST/api:production-$VERSION $PLACEHOLDER_HOST/api:production-$SHA"
check "--ecr --dry-run with an account and region succeeds without Docker" \
  dry_run_ecr --account 123456789012 --region eu-west-1
ECR_HOST=123456789012.dkr.ecr.eu-west-1.amazonaws.com
check "... naming the ECR images" output_has "would push $ECR_HOST/api:production-$VERSION $ECR_HOST/api:production-$SHA"
check "... and the login command" \
  output_has "+ aws ecr get-login-password --region eu-west-1 | /nonexistent/docker login --username AWS --password-stdin $ECR_HOST"
check "--ecr --dry-run in China (cn-north-1): the registry is in amazonaws.com.cn" \
  dry_run_ecr --account 123456789012 --region cn-north-1
check "... naming it" output_has "would push 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/api:production-$VERSION"
check "... the SBOM step among the commands" output_has "+ attach <sbom> to 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/api@"
check "it ran no command" test ! -e "$AWS_CALLS"
check "--ecr without account and region, not a dry run, is refused" \
  exits 1 run env -u AWS_ACCOUNT_ID -u AWS_REGION -u AWS_DEFAULT_REGION "$PUSH" --ecr
check "--ecr with --force is refused" exits 1 run "$PUSH" --ecr --account 1 --region r --force --dry-run

log "ECR: the login wiring, against the local registry"
"$DOCKER" logout "$REGISTRY" >/dev/null
ecr_push() {
  PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=$1 "$PUSH" --ecr --registry "$REGISTRY" --account 123456789012 \
    --region eu-west-1 --repository "$REPOSITORY-ecr" --local-image "$IMAGE" --sbom "$SBOM" \
    ${UNPINNED[@]+"${UNPINNED[@]}"} >"$OUT" 2>&1
}
check "a wrong password fails with exit 4" exits 4 ecr_push wrong-password
check "... naming the login step" output_has "step 'login' failed"
check "... and reports nothing as pushed" fails grep -q '^pushed' "$OUT"
check "the AWS CLI was asked for the region's password" grep -qx "ecr get-login-password --region eu-west-1" "$AWS_CALLS"
check "with the right password, --ecr logs in and pushes" ecr_push "$REGISTRY_PASSWORD"
check "... and prints the pushed reference" output_has "pushed $REGISTRY/$REPOSITORY-ecr:production-$VERSION@sha256:"

log "ECR with Amazon's credential helper (credHelpers: ecr-login): no login step"
rm -f "$AWS_CALLS"
# A stand-in for docker-credential-ecr-login: the registry's credentials.
cat >"$WORK/bin/docker-credential-ecr-login" <<HELPER
#!/usr/bin/env bash
read -r server
printf '%s %s\n' "\$1" "\$server" >>"$WORK/ecr-login-calls"
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$server" "$REGISTRY_USER" "$REGISTRY_PASSWORD"
HELPER
chmod +x "$WORK/bin/docker-credential-ecr-login"
mkdir "$WORK/ecr-login-config"
printf '{"credHelpers": {"%s": "ecr-login"}}\n' "$REGISTRY" >"$WORK/ecr-login-config/config.json"
ecr_login_push() {
  run env DOCKER_CONFIG="$WORK/ecr-login-config" PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=wrong-password \
    "$PUSH" --ecr --registry "$REGISTRY" --account 123456789012 --region eu-west-1 \
    --repository "$REPOSITORY-ecr-login" --local-image "$IMAGE" --sbom "$SBOM" ${UNPINNED[@]+"${UNPINNED[@]}"}
}
check "--ecr with docker-credential-ecr-login configured pushes" ecr_login_push
check "... the reference" output_has "pushed $REGISTRY/$REPOSITORY-ecr-login:production-$VERSION@sha256:"
check "... saying there is no login step" output_has "no login step"
check "... never asking the AWS CLI for a password" test ! -e "$AWS_CALLS"
check "... the helper gave the credentials" grep -q "^get $REGISTRY\$" "$WORK/ecr-login-calls"

log "--help and usage"
check "--help explains the naming scheme" run "$PUSH" --help
check "... the naming scheme" output_has "<registry>/<repository>:<target>-<version>"
for code in 1 2 3 4 5 6; do
  check "... exit code $code" grep -qE "^  $code  " "$OUT"
done
check "an unknown option is a usage error (exit 2)" exits 2 run "$PUSH" --registry "$REGISTRY" --no-such-option

report
