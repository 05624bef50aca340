#!/usr/bin/env bash
# Deploys an image to the ECS service that deploy/aws made: registers a new
# revision of the task definition the service runs, with the new image,
# points the service at it, and follows the deployment ECS starts until it
# completes; fails as soon as ECS marks it FAILED (its circuit breaker then
# rolls back), or if another deployment replaces it. See --help.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy-ecs.sh --cluster NAME --service NAME --image IMAGE [options]

  --cluster NAME         the ECS cluster (terraform output cluster_name), e.g. api-production
  --service NAME         the ECS service (terraform output service_name), e.g. api
  --image IMAGE          the image to run, <registry>/api:production-<version>
  --container NAME       the container to change (default: api)
  --base-revision ARN    the revision to copy (default: the one the service runs now);
                         `terraform output -raw task_definition_arn` ships what
                         Terraform changed in the task definition
  --timeout SECONDS      how long to wait for the deployment (default: 900)
  -h, --help             this help

The new revision copies the base revision (the one the service runs, unless
--base-revision names another of the same family) with only the image
changed, tags included. It never starts from the family's latest revision:
anyone allowed to register task definitions (ECS allows that on "*" only)
could have put one there. Needs the AWS CLI and jq; AWS_ENDPOINT_URL is
honoured (tests point it at an emulator).
USAGE
}

cluster="" service="" image="" container=api base="" timeout=900
while (($#)); do
  case $1 in
    --cluster) cluster=${2:?--cluster needs a value}; shift ;;
    --service) service=${2:?--service needs a value}; shift ;;
    --image) image=${2:?--image needs a value}; shift ;;
    --container) container=${2:?--container needs a value}; shift ;;
    --base-revision) base=${2:?--base-revision needs a value}; shift ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ -n $cluster && -n $service && -n $image ]] || { usage >&2; die "--cluster, --service and --image are required"; }
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
command -v aws >/dev/null || die "the AWS CLI (aws) is needed"
command -v jq >/dev/null || die "jq is needed"

# The service as ECS describes it (JSON), or nothing when there is none.
describe_service() {
  aws ecs describe-services --cluster "$cluster" --services "$service" --output json |
    jq -c '.services[0] // empty'
}
family_of() { local name=${1##*/}; printf '%s' "${name%:*}"; }

running=$(describe_service | jq -r '.taskDefinition // empty')
[[ $running == arn:* ]] || die "no service $service in cluster $cluster"
base=${base:-$running}
[[ $(family_of "$base") == "$(family_of "$running")" ]] ||
  die "--base-revision $base is not of the service's family $(family_of "$running")"
log "service $cluster/$service runs $running; the new revision copies $base"

# Everything describe-task-definition returns but register-task-definition
# refuses, dropped; the container's image replaced; the tags kept.
definition=$(aws ecs describe-task-definition --task-definition "$base" --include TAGS --output json)
jq -e --arg container "$container" 'any(.taskDefinition.containerDefinitions[]; .name == $container)' \
  <<<"$definition" >/dev/null || die "the task definition has no container named $container"
new_definition=$(jq --arg container "$container" --arg image "$image" '
  (.tags // []) as $tags
  | .taskDefinition
  | del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
        .registeredAt, .registeredBy, .deregisteredAt)
  | .containerDefinitions |= map(if .name == $container then .image = $image else . end)
  | if ($tags | length) > 0 then .tags = $tags else . end
' <<<"$definition")
revision=$(aws ecs register-task-definition --cli-input-json "$new_definition" \
  --query taskDefinition.taskDefinitionArn --output text)
log "registered $revision with $image"

aws ecs update-service --cluster "$cluster" --service "$service" --task-definition "$revision" >/dev/null
log "service updated; following its deployment of $revision for up to ${timeout}s"

# deployment_state SERVICE_JSON: what ECS says of the deployment of our
# revision, as one word: completed, failed:<reason>, waiting, or gone:<what
# runs instead>. ECS keeps rolloutState on each deployment of a rolling
# update (IN_PROGRESS, COMPLETED, FAILED); without it (an older API),
# "steady" is as `aws ecs wait services-stable` means it: one deployment,
# ours, running all the tasks it wants.
deployment_state() {
  jq -r --arg revision "$revision" '
    (.deployments // []) as $all
    | ($all | map(select(.taskDefinition == $revision)) | first) as $ours
    | if $ours == null or $ours.status != "PRIMARY" then
        if $ours.rolloutState == "FAILED" then "failed:\($ours.rolloutStateReason // "no reason given")"
        else "gone:\(.taskDefinition)" end
      elif $ours.rolloutState == "FAILED" then "failed:\($ours.rolloutStateReason // "no reason given")"
      elif $ours.rolloutState == "COMPLETED" then "completed"
      elif $ours.rolloutState == null and ($all | length) == 1 and .runningCount == .desiredCount then "completed"
      else "waiting" end' <<<"$1"
}

deadline=$((SECONDS + timeout))
while :; do
  state=$(deployment_state "$(describe_service)")
  case $state in
    completed) break ;;
    failed:*) die "ECS marked the deployment of $revision FAILED: ${state#failed:} (its circuit breaker rolls the service back; see the service's events and logs)" ;;
    gone:*) die "the service no longer deploys $revision but ${state#gone:}: rolled back, or replaced by another deployment" ;;
  esac
  ((SECONDS < deadline)) || die "the deployment of $revision did not complete in ${timeout}s: see the service's events"
  sleep "$(((deadline - SECONDS) < 10 ? (deadline - SECONDS > 0 ? deadline - SECONDS : 1) : 10))"
done

now=$(describe_service | jq -r '.taskDefinition')
[[ $now == "$revision" ]] || die "the deployment completed, but the service runs $now, not $revision"
printf 'deployed %s to %s/%s (%s)\n' "$image" "$cluster" "$service" "$revision"
