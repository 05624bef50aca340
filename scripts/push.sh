#!/usr/bin/env bash
# Pushes a locally built image to a registry, as <registry>/<repository>:<target>-<version>
# and <target>-<git short sha>. See --help.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/push.sh (--registry HOST[:PORT] | --ecr) [options]

Pushes the local image api:<target> as
  <registry>/<repository>:<target>-<version>     version from Cargo.toml
  <registry>/<repository>:<target>-<git sha>     the commit it was built from
then prints the pushed reference and its digest.

Steps: 1. login (with --ecr only; otherwise log in yourself first with
`docker login`), 2. tag, 3. push.

Where to:
  --registry HOST[:PORT]  any registry you are logged in to
  --ecr                   Amazon ECR: the host is <account>.dkr.ecr.<region>.amazonaws.com
                          (unless --registry names another) and the login runs
                          `aws ecr get-login-password --region R | docker login
                          --username AWS --password-stdin HOST`
  --account ID            AWS account id (default: $AWS_ACCOUNT_ID)
  --region REGION         AWS region (default: $AWS_REGION, then $AWS_DEFAULT_REGION)

What:
  --target NAME           staging or production (default: production)
  --local-image IMAGE     local image to push (default: api:<target>)
  --repository NAME       repository in the registry (default: api)

Safety:
  --dry-run               print every command, run none (needs neither Docker nor AWS)
  --force                 overwrite tags that already exist (not with --ecr:
                          ECR repositories are usually tag-immutable)
  --allow-dirty           push from a git tree with uncommitted changes
  -h, --help              this help

It refuses, and exits non-zero, when a tag already exists, the tree is dirty,
the local image is missing, or --ecr lacks an account or region. A failed
step stops it with the step's name; nothing unpushed is reported as pushed.
USAGE
}

target=production registry="" ecr=0 account=${AWS_ACCOUNT_ID:-} region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
local_image="" repository=api dry_run=0 force=0 allow_dirty=0
while (($#)); do
  case $1 in
    --target) target=${2:?--target needs a value}; shift ;;
    --registry) registry=${2:?--registry needs a value}; shift ;;
    --ecr) ecr=1 ;;
    --account) account=${2:?--account needs a value}; shift ;;
    --region) region=${2:?--region needs a value}; shift ;;
    --local-image) local_image=${2:?--local-image needs a value}; shift ;;
    --repository) repository=${2:?--repository needs a value}; shift ;;
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    --allow-dirty) allow_dirty=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

[[ $target == staging || $target == production ]] || die "--target must be staging or production, not '$target'"
local_image=${local_image:-api:$target}
if ((ecr)); then
  [[ -n $account && -n $region ]] ||
    die "--ecr needs an AWS account and region: --account/--region or AWS_ACCOUNT_ID/AWS_REGION"
  ((!force)) || die "--force is refused with --ecr: ECR tags are meant to be immutable; push a new version instead"
  registry=${registry:-$account.dkr.ecr.$region.amazonaws.com}
fi
[[ -n $registry ]] || die "say where to push: --registry HOST[:PORT] or --ecr (see --help)"

cd "$REPO_ROOT"
if ((!allow_dirty)) && [[ -n $(git status --porcelain) ]]; then
  die "the git tree has uncommitted changes: the image would not match any commit (--allow-dirty to push anyway)"
fi
version=$(crate_version)
sha=$(git rev-parse --short=7 HEAD)
refs=("$registry/$repository:$target-$version" "$registry/$repository:$target-$sha")

# step NAME COMMAND...: runs (or, with --dry-run, prints) one command of step NAME.
step() {
  local name=$1
  shift
  printf '+ %s\n' "$*"
  ((dry_run)) && return
  "$@" || die "step '$name' failed: $*"
}

if ((!dry_run)); then
  "$DOCKER" image inspect "$local_image" >/dev/null 2>&1 ||
    die "no local image $local_image: build it first (see the README), or name another with --local-image"
fi

if ((ecr)); then
  printf '+ aws ecr get-login-password --region %s | %s login --username AWS --password-stdin %s\n' \
    "$region" "$DOCKER" "$registry"
  if ((!dry_run)); then
    aws ecr get-login-password --region "$region" |
      "$DOCKER" login --username AWS --password-stdin "$registry" ||
      die "step 'login' failed: aws ecr get-login-password --region $region | docker login ... $registry"
  fi
fi

# A tag that already exists is never overwritten by accident.
for ref in "${refs[@]}"; do
  printf '+ %s manifest inspect %s   # must not exist yet\n' "$DOCKER" "$ref"
  ((dry_run)) && continue
  if answer=$(DOCKER_CLI_EXPERIMENTAL=enabled "$DOCKER" manifest inspect "$ref" 2>&1); then
    ((force)) || die "$ref already exists in the registry; refusing to overwrite it (--force to overwrite)"
    printf '  %s exists; overwriting it (--force)\n' "$ref"
  elif [[ $answer != *"no such manifest"* ]]; then
    die "step 'check' failed: cannot tell whether $ref exists: $answer"
  fi
done

for ref in "${refs[@]}"; do
  step tag "$DOCKER" tag "$local_image" "$ref"
done
for ref in "${refs[@]}"; do
  step push "$DOCKER" push "$ref"
done

if ((dry_run)); then
  printf 'dry run: nothing was pushed; would push %s\n' "${refs[*]}"
  exit 0
fi
digest=$("$DOCKER" image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "${refs[0]}" |
  sed -n "s|^$registry/$repository@||p" | head -n 1)
[[ -n $digest ]] || die "pushed, but the registry reported no digest for ${refs[0]}"
for ref in "${refs[@]}"; do
  printf 'pushed %s@%s\n' "$ref" "$digest"
done
