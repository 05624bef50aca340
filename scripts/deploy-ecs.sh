#!/usr/bin/env bash
# Deploys an image to the ECS service that deploy/aws made: registers a new
# revision of the service's task definition with the new image, points the
# service at it, waits for a steady state, and fails if ECS rolled the
# deployment back (its circuit breaker does when new tasks keep failing).
# See --help.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy-ecs.sh --cluster NAME --service NAME --image IMAGE [options]

  --cluster NAME     the ECS cluster (terraform output cluster_name), e.g. api-production
  --service NAME     the ECS service (terraform output service_name), e.g. api
  --image IMAGE      the image to run, <registry>/api:production-<version>
  --container NAME   the container to change (default: api)
  --timeout SECONDS  how long to wait for the steady state (default: 900)
  -h, --help         this help

The new revision is based on the latest revision of the service's task
definition family, so changes Terraform registered since the last release
ship with this one. Needs the AWS CLI and jq; AWS_ENDPOINT_URL is honoured
(tests point it at an emulator).
USAGE
}

cluster="" service="" image="" container=api timeout=900
while (($#)); do
  case $1 in
    --cluster) cluster=${2:?--cluster needs a value}; shift ;;
    --service) service=${2:?--service needs a value}; shift ;;
    --image) image=${2:?--image needs a value}; shift ;;
    --container) container=${2:?--container needs a value}; shift ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ -n $cluster && -n $service && -n $image ]] || { usage >&2; die "--cluster, --service and --image are required"; }
command -v aws >/dev/null || die "the AWS CLI (aws) is needed"
command -v jq >/dev/null || die "jq is needed"

service_field() {
  aws ecs describe-services --cluster "$cluster" --services "$service" --query "services[0].$1" --output text
}

running=$(service_field taskDefinition)
[[ $running == arn:* ]] || die "no service $service in cluster $cluster"
family=${running##*/}
family=${family%:*}
log "service $cluster/$service runs $running; basing the new revision on the latest of family $family"

# Everything describe-task-definition returns but register-task-definition
# refuses, dropped; the container's image replaced.
definition=$(aws ecs describe-task-definition --task-definition "$family" --include TAGS --output json)
jq -e --arg container "$container" 'any(.taskDefinition.containerDefinitions[]; .name == $container)' \
  <<<"$definition" >/dev/null || die "the task definition has no container named $container"
new_definition=$(jq --arg container "$container" --arg image "$image" '
  .taskDefinition
  | del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
        .registeredAt, .registeredBy, .deregisteredAt)
  | .containerDefinitions |= map(if .name == $container then .image = $image else . end)
  | if ($tags | length) > 0 then .tags = $tags else . end
' --argjson tags "$(jq '.tags // []' <<<"$definition")" <<<"$definition")
revision=$(aws ecs register-task-definition --cli-input-json "$new_definition" \
  --query taskDefinition.taskDefinitionArn --output text)
log "registered $revision with $image"

aws ecs update-service --cluster "$cluster" --service "$service" --task-definition "$revision" >/dev/null
log "service updated; waiting up to ${timeout}s for a steady state"
# Steady as `aws ecs wait services-stable` means it: one deployment left,
# running all the tasks it wants.
deadline=$((SECONDS + timeout))
until [[ $(service_field '[length(deployments), runningCount, desiredCount]' | awk '{ print ($1 == 1 && $2 == $3) }') == 1 ]]; do
  ((SECONDS < deadline)) || die "no steady state after ${timeout}s: see the service's events"
  sleep 10
done

# Steady, but on which revision? The circuit breaker rolls back to the old one.
now=$(service_field taskDefinition)
[[ $now == "$revision" ]] ||
  die "ECS rolled the deployment back to $now: the new tasks failed (see the service's events and logs)"
printf 'deployed %s to %s/%s (%s)\n' "$image" "$cluster" "$service" "$revision"
