#!/usr/bin/env bash
# One environment's part of a release, as release.yml's staging and
# production jobs run it with the environment's role: pushes the local
# images api:<target> for each TARGET to the environment's ECR repository
# (scripts/push.sh skips a tag that already holds the same image, and fails
# when it holds another), then deploys the production image to the
# environment's ECS service (scripts/deploy-ecs.sh).
#
#   deploy/aws/release.sh TARGET...     e.g. staging production
#
# From the environment: ACCOUNT, AWS_REGION, VERSION (from Cargo.toml),
# ECS_CLUSTER, ECS_SERVICE.
set -euo pipefail
: "${ACCOUNT:?the AWS account id}" "${AWS_REGION:?the AWS region}" "${VERSION:?the version released}"
: "${ECS_CLUSTER:?the ECS cluster}" "${ECS_SERVICE:?the ECS service}"
(($#)) || { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# ECR's host name in the region's partition (China: amazonaws.com.cn).
case $AWS_REGION in
  cn-*) registry=$ACCOUNT.dkr.ecr.$AWS_REGION.amazonaws.com.cn ;;
  *) registry=$ACCOUNT.dkr.ecr.$AWS_REGION.amazonaws.com ;;
esac
for target in "$@"; do
  scripts/push.sh --ecr --registry "$registry" --account "$ACCOUNT" --region "$AWS_REGION" --target "$target"
done
scripts/deploy-ecs.sh --cluster "$ECS_CLUSTER" --service "$ECS_SERVICE" --image "$registry/api:production-$VERSION"
