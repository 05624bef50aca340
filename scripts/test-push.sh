#!/usr/bin/env bash
# Tests scripts/push.sh against a real registry with TLS and a login: the
# container kit's, on 127.0.0.1:5000. Runs push.sh from a fresh clone, so the
# tree is clean whatever state this checkout is in. Needs root.
#
#   scripts/test-push.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly REGISTRY=127.0.0.1:5000
# ECR logins always use the user name AWS: so does our registry, so that the
# --ecr login below runs the real `docker login` against it.
export REGISTRY_USER=AWS REGISTRY_PASSWORD=ecr-stand-in-password
WORK=$(mktemp -d)
CONTAINERS=()
cleanup() {
  for container in "${CONTAINERS[@]}"; do "$DOCKER" rm -f "$container" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

docker_up
[[ -d $KIT_DIR ]] || die "needs the container kit's registry ($KIT_DIR)"
log "starting the local registry"
"$KIT_DIR/start-registry.sh" >&2
"$DOCKER" image inspect api:production >/dev/null 2>&1 || {
  log "building api:production"
  (cd "$REPO_ROOT" && "$DOCKER" build . -t api:production >&2)
}

git clone -q "$REPO_ROOT" "$WORK/clone"
PUSH=$WORK/clone/scripts/push.sh
VERSION=$(crate_version)
SHA=$(git -C "$WORK/clone" rev-parse --short=7 HEAD)
# The registry keeps its data between runs: a repository of our own per run.
REPOSITORY=api-test-$(date +%s)-$$
OUT=$WORK/out

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
export AWS_CALLS=$WORK/aws-calls

# push ARGS...: runs push.sh, output in $OUT; its exit code is the result.
push() { "$PUSH" "$@" >"$OUT" 2>&1; }
push_without_aws_settings() { env -u AWS_ACCOUNT_ID -u AWS_REGION -u AWS_DEFAULT_REGION "$PUSH" "$@" >"$OUT" 2>&1; }
output_has() { grep -qF -- "$1" "$OUT" || { sed 's/^/     | /' "$OUT"; return 1; }; }

log "push to a registry we are logged in to"
check "push.sh --registry pushes" push --registry "$REGISTRY" --repository "$REPOSITORY"
REF=$REGISTRY/$REPOSITORY:production-$VERSION
check "it prints the pushed version reference with its digest" output_has "pushed $REF@sha256:"
check "it also pushes the git sha tag" output_has "pushed $REGISTRY/$REPOSITORY:production-$SHA@sha256:"
DIGEST=$(sed -n "s|^pushed $REF@||p" "$OUT")

log "pull it back by tag and by digest, and run it"
"$DOCKER" rmi "$REF" "$REGISTRY/$REPOSITORY:production-$SHA" >/dev/null
local_image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
check "the local tag is gone" fails local_image_exists "$REF"
pull() { "$DOCKER" pull -q "$1" >/dev/null; }
check "pull by tag" pull "$REF"
check "pull by digest" pull "$REGISTRY/$REPOSITORY@$DIGEST"
has_pushed_digest() { "$DOCKER" image inspect -f '{{json .RepoDigests}}' "$REF" | grep -qF "$DIGEST"; }
check "the pulled image has the pushed digest" has_pushed_digest
port=$(free_port)
CONTAINERS+=("$("$DOCKER" run -d -p "127.0.0.1:$port:8000" "$REGISTRY/$REPOSITORY@$DIGEST")")
wait_for_http "http://127.0.0.1:$port/healthcheck" 30 || true
check "the pulled image serves /hello_world" \
  http_is "http://127.0.0.1:$port/hello_world" 200 '{"message":"Hello World!"}'

log "refusals"
check "a second push of the same tag is refused" fails push --registry "$REGISTRY" --repository "$REPOSITORY"
check "... saying the tag exists" output_has "already exists in the registry"
check "--force overwrites it" push --registry "$REGISTRY" --repository "$REPOSITORY" --force
check "a missing local image is refused" fails push --registry "$REGISTRY" --local-image api:no-such-image
check "... naming the image" output_has "no local image api:no-such-image"
check "--ecr without account and region is refused" \
  fails push_without_aws_settings --ecr --dry-run
check "... saying what is missing" output_has "--ecr needs an AWS account and region"
check "--ecr with --force is refused" fails push --ecr --account 1 --region r --force --dry-run
touch "$WORK/clone/uncommitted"
check "a dirty tree is refused" fails push --registry "$REGISTRY" --repository "$REPOSITORY-dirty"
check "... saying why" output_has "uncommitted changes"
check "--allow-dirty lets it through" push --registry "$REGISTRY" --repository "$REPOSITORY-dirty" --allow-dirty
rm "$WORK/clone/uncommitted"

log "ECR: dry run"
dry_run_ecr() {
  DOCKER=/nonexistent/docker PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=unused \
    "$PUSH" --ecr --account 123456789012 --region eu-west-1 --dry-run >"$OUT" 2>&1
}
check "--ecr --dry-run succeeds without Docker" dry_run_ecr
ECR_HOST=123456789012.dkr.ecr.eu-west-1.amazonaws.com
check "it names the ECR image" output_has "would push $ECR_HOST/api:production-$VERSION $ECR_HOST/api:production-$SHA"
check "it prints the ECR login command" \
  output_has "+ aws ecr get-login-password --region eu-west-1 | /nonexistent/docker login --username AWS --password-stdin $ECR_HOST"
check "it ran no command" test ! -e "$AWS_CALLS"

log "ECR: the login wiring, against the local registry"
"$DOCKER" logout "$REGISTRY" >/dev/null
ecr_push() {
  PATH="$WORK/bin:$PATH" STANDIN_PASSWORD=$1 \
    "$PUSH" --ecr --registry "$REGISTRY" --account 123456789012 --region eu-west-1 --repository "$REPOSITORY-ecr" >"$OUT" 2>&1
}
check "a wrong password fails" fails ecr_push wrong-password
check "... naming the login step" output_has "step 'login' failed"
check "... and reports nothing as pushed" fails grep -q '^pushed' "$OUT"
check "the AWS CLI was asked for the region's password" grep -qx "ecr get-login-password --region eu-west-1" "$AWS_CALLS"
check "with the right password, --ecr logs in and pushes" ecr_push "$REGISTRY_PASSWORD"
check "... and prints the pushed reference" output_has "pushed $REGISTRY/$REPOSITORY-ecr:production-$VERSION@sha256:"

log "--help"
check "--help explains the naming scheme" push --help
check "... the naming scheme" output_has "<registry>/<repository>:<target>-<version>"

# Leave the machine logged in, as start-registry.sh left it.
printf '%s\n' "$REGISTRY_PASSWORD" | "$DOCKER" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" >/dev/null 2>&1 || true
report
