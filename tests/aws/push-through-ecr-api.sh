#!/usr/bin/env bash
# A stand-in for scripts/push.sh, in the copy of the tree where
# scripts/test-aws.sh runs deploy/aws/release.sh against the AWS emulator.
# moto has no registry API (what `docker push` speaks), so each tag push.sh
# would push, <target>-<version> and <target>-<git short sha>, goes through
# the ECR API calls a push is authorised with (tests/aws/release_calls.py
# walk-ecr), as the credentials in the environment. A tag already in the
# repository is left as it is, as push.sh leaves a tag that holds the same
# image. Prints each pushed reference, as push.sh does, and writes
# --digest-file and --platform-digests-file as push.sh does (the digest ECR
# holds for <target>-<version>; moto keeps no index, so each platform is
# given that one digest). The images and SBOMs (--local-image, --sbom,
# --platform) are accepted and not read. scripts/push.sh itself is tested
# against a registry by scripts/test-push.sh.
#
#   PUSH_WALK_PYTHON   a python with boto3 (moto's)
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"
: "${PUSH_WALK_PYTHON:?a python with boto3}"

registry="" repository=api target=production ecr=0 platforms=linux/amd64 digest_file="" platform_digests_file=""
while (($#)); do
  case $1 in
    --ecr) ecr=1 ;;
    --registry) registry=$2; shift ;;
    --repository) repository=$2; shift ;;
    --target) target=$2; shift ;;
    --account | --region | --local-image | --sbom) shift ;;
    --platform) platforms=$2; shift ;;
    --digest-file) digest_file=$2; shift ;;
    --platform-digests-file) platform_digests_file=$2; shift ;;
    *) die "push stand-in: unexpected argument $1" ;;
  esac
  shift
done
if ((!ecr)) || [[ -z $registry ]]; then
  die "push stand-in: release.sh is expected to call push.sh --ecr --registry HOST"
fi

for tag in "$target-$(crate_version)" "$target-$(git -C "$REPO_ROOT" rev-parse --short=7 HEAD)"; do
  held=$(aws ecr batch-get-image --repository-name "$repository" --image-ids "imageTag=$tag" \
    --query 'images[0].imageId.imageDigest' --output text)
  if [[ $held == None ]]; then
    "$PUSH_WALK_PYTHON" "$here/release_calls.py" walk-ecr "$repository" "$tag" >&2
  else
    printf '%s/%s:%s already holds %s: left as it is\n' "$registry" "$repository" "$tag" "$held" >&2
  fi
  printf 'pushed %s/%s:%s\n' "$registry" "$repository" "$tag"
done
digest=$(aws ecr batch-get-image --repository-name "$repository" --image-ids "imageTag=$target-$(crate_version)" \
  --query 'images[0].imageId.imageDigest' --output text)
[[ -z $digest_file ]] || printf '%s\n' "$digest" >"$digest_file"
if [[ -n $platform_digests_file ]]; then
  IFS=, read -ra each <<<"$platforms"
  for platform in "${each[@]}"; do printf '%s %s\n' "$platform" "$digest"; done >"$platform_digests_file"
fi
