#!/usr/bin/env bash
# One environment's part of a release, as release.yml's staging and
# production jobs run it with the environment's role: pushes the images the
# build job made (release_images in scripts/lib.sh) for each TARGET to the
# environment's ECR repository, each with its SBOM attached, production as
# one index of its platforms (scripts/push.sh skips a tag that already holds
# the same image, and fails when it holds another); then deploys the
# production image to the environment's ECS service by the digest push.sh
# reported, not by tag (scripts/deploy-ecs.sh).
#
#   deploy/aws/release.sh TARGET...     e.g. staging production
#
# From the environment: ACCOUNT, AWS_REGION, VERSION (from Cargo.toml),
# RELEASE_DIR (the build job's folder: the SBOMs), and ECS_CLUSTER with
# ECS_SERVICE where the environment runs on ECS; without both, the images
# are pushed and nothing is deployed (Kubernetes: apply the overlay). Where GITHUB_OUTPUT is set, writes there what the attestation
# steps need: image (<registry>/api), <target>-digest, and for each platform
# <target>-<os>-<arch>-digest.
set -euo pipefail
: "${ACCOUNT:?the AWS account id}" "${AWS_REGION:?the AWS region}" "${VERSION:?the version released}"
: "${RELEASE_DIR:?the folder of the build job}"
if [[ -n ${ECS_CLUSTER:-} && -z ${ECS_SERVICE:-} || -z ${ECS_CLUSTER:-} && -n ${ECS_SERVICE:-} ]]; then
  echo "error: ECS_CLUSTER and ECS_SERVICE go together: set both (ECS) or neither (push only)" >&2
  exit 2
fi
(($#)) || { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

registry=$(ecr_registry "$ACCOUNT" "$AWS_REGION")
outputs=${GITHUB_OUTPUT:-/dev/null}
pushed=$(mktemp -d)
trap 'rm -rf "$pushed"' EXIT
printf 'image=%s\n' "$registry/api" >>"$outputs"
for target in "$@"; do
  platforms=() images=()
  while read -r of platform image; do
    [[ $of == "$target" ]] || continue
    platforms+=("$platform")
    images+=(--local-image "$image" --sbom "$(release_sbom "$RELEASE_DIR" "$image")")
  done < <(release_images)
  ((${#platforms[@]})) || { echo "error: a release has no $target image (release_images)" >&2; exit 2; }
  scripts/push.sh --ecr --registry "$registry" --account "$ACCOUNT" --region "$AWS_REGION" --target "$target" \
    --platform "$(IFS=,; echo "${platforms[*]}")" "${images[@]}" \
    --digest-file "$pushed/$target" --platform-digests-file "$pushed/$target.platforms"
  printf '%s-digest=%s\n' "$target" "$(cat "$pushed/$target")" >>"$outputs"
  while read -r platform digest; do
    printf '%s-%s-digest=%s\n' "$target" "${platform//\//-}" "$digest"
  done <"$pushed/$target.platforms" >>"$outputs"
done
[[ -f $pushed/production ]] || { echo "error: nothing to deploy: production is not among $*" >&2; exit 2; }
if [[ -z ${ECS_CLUSTER:-} ]]; then
  echo "nothing deployed: this environment names no ECS service (ECS_CLUSTER, ECS_SERVICE); the production image is $registry/api@$(cat "$pushed/production")"
  exit 0
fi
scripts/deploy-ecs.sh --cluster "$ECS_CLUSTER" --service "$ECS_SERVICE" --image "$registry/api@$(cat "$pushed/production")"
