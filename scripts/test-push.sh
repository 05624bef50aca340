#!/usr/bin/env bash
# Tests scripts/push.sh against a real registry with a login: the container
# kit's (TLS, on 127.0.0.1:5000) where there is one, else the one named by
# API_TEST_REGISTRY (HOST:PORT on loopback; CI on GitHub starts a registry:2
# container), with REGISTRY_USER and REGISTRY_PASSWORD. Runs push.sh from a
# fresh clone of HEAD, on an image built from that clone with the release
# build arguments. Needs root.
#
#   scripts/test-push.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ECR logins always use the user name AWS: so does our registry, so that the
# --ecr login below runs the real `docker login` against it.
export REGISTRY_USER=${REGISTRY_USER:-AWS} REGISTRY_PASSWORD=${REGISTRY_PASSWORD:-ecr-stand-in-password}
REGISTRY=${API_TEST_REGISTRY:-127.0.0.1:5000}
WORK=$(mktemp -d)
LOCAL_IMAGES=()
cleanup() {
  "$DOCKER" rm -f "api-test-pulled-$$" >/dev/null 2>&1 || true
  # The images push.sh tagged or docker pulled, in every repository of this run.
  while read -r image; do LOCAL_IMAGES+=("$image"); done < <("$DOCKER" images --no-trunc \
    --format '{{.Repository}} {{.ID}}' | grep -F "$REGISTRY/${REPOSITORY:-none}" | cut -d' ' -f2 | sort -u)
  for image in ${LOCAL_IMAGES[@]+"${LOCAL_IMAGES[@]}"}; do "$DOCKER" rmi -f "$image" >/dev/null 2>&1 || true; done
  # Leave the machine logged in, as start-registry.sh left it.
  printf '%s\n' "$REGISTRY_PASSWORD" |
    "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

docker_up
if [[ -n ${API_TEST_REGISTRY:-} ]]; then
  log "logging in to $REGISTRY"
  printf '%s\n' "$REGISTRY_PASSWORD" | "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >&2
elif [[ -d $KIT_DIR ]]; then
  log "starting the local registry"
  "$KIT_DIR/start-registry.sh" >&2
else
  die "needs a registry: the container kit's ($KIT_DIR), or API_TEST_REGISTRY=HOST:PORT with REGISTRY_USER and REGISTRY_PASSWORD"
fi

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

OUT=$WORK/out
# The kit's stand-in bases are not pinned by digest: images built from them
# need --allow-unpinned-base (its refusal is tested on its own below).
UNPINNED=()
((${#BASE_IMAGE_ARGS[@]} == 0)) || UNPINNED=(--allow-unpinned-base)
# push ARGS...: runs push.sh on $IMAGE into $REPOSITORY; output in $OUT; its
# exit code is the result.
push() {
  "$PUSH" --registry "$REGISTRY" --repository "$REPOSITORY" --local-image "$IMAGE" \
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

log "re-runs: the tags already hold this image"
check "a second push of the same image succeeds" push
check "... pushing nothing" fails grep -q '^+ .* push ' "$OUT"
check "... reporting the registry's digest for both tags" \
  grep -qxF "present $REF@$DIGEST" "$OUT"
check "... the sha tag too" grep -qxF "present $SHA_REF@$DIGEST" "$OUT"
results_on_stdout() {
  "$PUSH" --registry "$REGISTRY" --repository "$REPOSITORY" --local-image "$IMAGE" \
    ${UNPINNED[@]+"${UNPINNED[@]}"} 2>/dev/null >"$WORK/stdout"
  printf '%s\n' "present $REF@$DIGEST" "present $SHA_REF@$DIGEST" | cmp -s - "$WORK/stdout"
}
check "... and stdout holds just those two lines (progress goes to stderr)" results_on_stdout

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
printf 'FROM scratch\n' | "$DOCKER" build -q --platform linux/arm64 -t "api:push-test-arm64-$$" "${labels[@]}" - >/dev/null
LOCAL_IMAGES+=("api:push-test-arm64-$$")
refused "an arm64 image, for linux/amd64" "is built for linux/arm64, not linux/amd64" \
  --local-image "api:push-test-arm64-$$" ${UNPINNED[@]+"${UNPINNED[@]}"}
refused "a missing local image" "no local image api:no-such-image" --local-image api:no-such-image

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
  --registry "$REGISTRY" --repository "$REPOSITORY-wrong" --local-image "$IMAGE" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... saying the registry refused them" output_has "HTTP 401 from $REGISTRY"
unreachable=127.0.0.1:$(free_port)
check "a registry nobody listens on: exit 5" exits 5 run "$PUSH" --registry "$unreachable" \
  --local-image "$IMAGE" ${UNPINNED[@]+"${UNPINNED[@]}"}
check "... saying it is unreachable" output_has "registry unreachable: cannot reach $unreachable"
printf '%s\n' "$REGISTRY_PASSWORD" | "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1
check "logged in again, the same push finds the tags absent and pushes" push --repository "$REPOSITORY-logged-out"
check "... saying they were absent" output_has "is not in the registry yet"

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
check "--ecr --dry-run, as the README writes it (no account, no region), succeeds" dry_run_ecr
PLACEHOLDER_HOST='<account>.dkr.ecr.<region>.amazonaws.com'
check "... with placeholders, said so" output_has "shown as <account> and <region>"
check "... naming the images" output_has "would push $PLACEHOLDER_HOST/api:production-$VERSION $PLACEHOLDER_HOST/api:production-$SHA"
check "--ecr --dry-run with an account and region succeeds without Docker" \
  dry_run_ecr --account 123456789012 --region eu-west-1
ECR_HOST=123456789012.dkr.ecr.eu-west-1.amazonaws.com
check "... naming the ECR images" output_has "would push $ECR_HOST/api:production-$VERSION $ECR_HOST/api:production-$SHA"
check "... and the login command" \
  output_has "+ aws ecr get-login-password --region eu-west-1 | /nonexistent/docker login --username AWS --password-stdin $ECR_HOST"
check "it ran no command" test ! -e "$AWS_CALLS"
check "--ecr without account and region, not a dry run, is refused" \
  exits 1 run env -u AWS_ACCOUNT_ID -u AWS_REGION -u AWS_DEFAULT_REGION "$PUSH" --ecr
check "--ecr with --force is refused" exits 1 run "$PUSH" --ecr --account 1 --region r --force --dry-run

log "ECR: the login wiring, against the local registry"
"$DOCKER" logout "$REGISTRY" >/dev/null
ecr_push() {
  PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=$1 "$PUSH" --ecr --registry "$REGISTRY" --account 123456789012 \
    --region eu-west-1 --repository "$REPOSITORY-ecr" --local-image "$IMAGE" ${UNPINNED[@]+"${UNPINNED[@]}"} >"$OUT" 2>&1
}
check "a wrong password fails with exit 4" exits 4 ecr_push wrong-password
check "... naming the login step" output_has "step 'login' failed"
check "... and reports nothing as pushed" fails grep -q '^pushed' "$OUT"
check "the AWS CLI was asked for the region's password" grep -qx "ecr get-login-password --region eu-west-1" "$AWS_CALLS"
check "with the right password, --ecr logs in and pushes" ecr_push "$REGISTRY_PASSWORD"
check "... and prints the pushed reference" output_has "pushed $REGISTRY/$REPOSITORY-ecr:production-$VERSION@sha256:"

log "--help and usage"
check "--help explains the naming scheme" run "$PUSH" --help
check "... the naming scheme" output_has "<registry>/<repository>:<target>-<version>"
for code in 1 2 3 4 5 6; do
  check "... exit code $code" grep -qE "^  $code  " "$OUT"
done
check "an unknown option is a usage error (exit 2)" exits 2 run "$PUSH" --registry "$REGISTRY" --no-such-option

report
