#!/usr/bin/env bash
# Deploys an image to the ECS service that deploy/aws made: registers a new
# revision of the task definition the service runs, with the new image,
# points the service at it, and follows the deployment ECS starts until it
# completes; fails as soon as ECS marks it FAILED (its circuit breaker then
# rolls back), or if another deployment replaces it. With --follow, only
# follows the deployment the service is in. See --help.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy-ecs.sh --cluster NAME --service NAME --image IMAGE [options]
       scripts/deploy-ecs.sh --cluster NAME --service NAME --follow [--timeout SECONDS]

  --cluster NAME         the ECS cluster (terraform output cluster_name), e.g. api-production
  --service NAME         the ECS service (terraform output service_name), e.g. api
  --image IMAGE          the image to run, <registry>/api:production-<version>
  --container NAME       the container to change (default: api)
  --base-revision ARN    the revision to copy (default: the one the service runs now);
                         `terraform output -raw task_definition_arn` ships what
                         Terraform changed in the task definition
  --follow               register nothing: follow the deployment of the revision
                         the service runs (deploy/aws/bootstrap.sh does, once it
                         has created the service)
  --timeout SECONDS      how long to wait for the deployment (default: 900)
  -h, --help             this help

The new revision copies the base revision (the one the service runs, unless
--base-revision names another of the same family) with only the image
changed, tags included. It never starts from the family's latest revision:
anyone allowed to register task definitions (ECS allows that on "*" only)
could have put one there.

When the service does not exist yet (no such cluster, or no such service in
it), nothing is deployed and the exit code is 0, with a message saying so:
that is the first release, which comes before the service (docs/deploy.md,
"From an empty account to a running service"). With --follow, that is an
error.

On a failure (FAILED, rolled back or replaced, timed out, the service gone)
it prints the service's newest events. Needs the AWS CLI and jq;
AWS_ENDPOINT_URL is honoured (tests point it at an emulator).
USAGE
}

cluster="" service="" image="" container=api base="" timeout=900 follow=0
while (($#)); do
  case $1 in
    --cluster) cluster=${2:?--cluster needs a value}; shift ;;
    --service) service=${2:?--service needs a value}; shift ;;
    --image) image=${2:?--image needs a value}; shift ;;
    --container) container=${2:?--container needs a value}; shift ;;
    --base-revision) base=${2:?--base-revision needs a value}; shift ;;
    --follow) follow=1 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ -n $cluster && -n $service ]] || { usage >&2; die "--cluster and --service are required"; }
if ((follow)); then
  [[ -z $image && -z $base ]] || die "--follow registers nothing: it takes no --image or --base-revision"
else
  [[ -n $image ]] || { usage >&2; die "--image is required (or --follow)"; }
fi
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
command -v aws >/dev/null || die "the AWS CLI (aws) is needed"
command -v jq >/dev/null || die "jq is needed"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

# describe_service: SERVICE is the service as ECS describes it (JSON), or,
# when it returns 1, ABSENT says why there is none: "cluster" (ECS has no
# such cluster), "service" (none by that name, or deleted: INACTIVE), or
# the CLI's own error (no access, no network, throttled).
describe_service() {
  local answer
  SERVICE="" ABSENT=""
  if ! answer=$(aws ecs describe-services --cluster "$cluster" --services "$service" --output json 2>"$errors"); then
    ABSENT=$(tr -s '\n' ' ' <"$errors")
    [[ $ABSENT != *ClusterNotFoundException* ]] || ABSENT=cluster
    return 1
  fi
  SERVICE=$(jq -c '.services[0] // empty | select(.status != "INACTIVE")' <<<"$answer") ||
    { ABSENT="an answer that is not JSON: ${answer:0:200}"; return 1; }
  [[ -n $SERVICE ]] || { ABSENT=service; return 1; }
}
family_of() { local name=${1##*/}; printf '%s' "${name%:*}"; }

# events: the service's five newest events (ECS keeps the last 100, newest
# first), which say why tasks did not start or were stopped. The AWS CLI v1
# writes their times as epoch seconds, v2 as ISO 8601.
events() {
  [[ -n ${SERVICE:-} ]] || return 0
  printf 'the newest events of %s/%s:\n' "$cluster" "$service" >&2
  jq -r '(.events // [])[:5][]
    | "  \(.createdAt | if type == "number" then (floor | todate) else . end)  \(.message)"' <<<"$SERVICE" >&2
}
fail() { events; die "$1"; }

if ! describe_service; then
  case $ABSENT in
    cluster | service)
      what=$([[ $ABSENT == cluster ]] && echo "there is no cluster $cluster" || echo "cluster $cluster has no service $service")
      ((!follow)) || die "$what: nothing to follow"
      # The first release runs before the service step of the bootstrap.
      message="nothing deployed: $what yet. That is the first release, made before the service exists (docs/deploy.md, \"From an empty account to a running service\"): the image is pushed; now create the service with it, image_tag = \"${image##*:}\": deploy/aws/bootstrap.sh deploy/aws/<root> service. If the service does exist, --cluster/--service (the GitHub environment's ECS_CLUSTER, ECS_SERVICE) name another."
      [[ ${GITHUB_ACTIONS:-} != true ]] || printf '::warning title=Nothing deployed to %s/%s::%s\n' "$cluster" "$service" "$message"
      printf '%s\n' "$message" >&2
      printf 'nothing deployed to %s/%s: no such service yet\n' "$cluster" "$service"
      exit 0
      ;;
    *) die "cannot describe service $service of cluster $cluster: $ABSENT" ;;
  esac
fi
[[ $(jq -r .status <<<"$SERVICE") == ACTIVE ]] ||
  die "service $cluster/$service is $(jq -r .status <<<"$SERVICE"): it is being deleted"
running=$(jq -r '.taskDefinition // empty' <<<"$SERVICE")
[[ $running == arn:* ]] || die "ECS names no task definition for service $cluster/$service"

if ((follow)); then
  revision=$running
  log "following the deployment of $revision in $cluster/$service for up to ${timeout}s"
else
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
fi

# deployment_state SERVICE_JSON: what ECS says of the deployment of our
# revision, as one word: completed, failed:<reason>, waiting, or gone:<what
# runs instead>. ECS keeps rolloutState on each deployment of a rolling
# update (IN_PROGRESS, COMPLETED, FAILED); when its circuit breaker rolls
# back, ours stays ACTIVE and FAILED beside the PRIMARY deployment that
# restores the last good revision. Without rolloutState (an older API),
# "steady" is as `aws ecs wait services-stable` means it: one deployment,
# ours, running all the tasks it wants.
deployment_state() {
  jq -r --arg revision "$revision" '
    (.deployments // []) as $all
    | ($all | map(select(.taskDefinition == $revision)) | first) as $ours
    | def failure: "failed:\($ours.rolloutStateReason // "no reason given") (\($ours.failedTasks // 0) tasks failed)";
      if $ours == null or $ours.status != "PRIMARY" then
        if $ours.rolloutState == "FAILED" then failure else "gone:\(.taskDefinition)" end
      elif $ours.rolloutState == "FAILED" then failure
      elif $ours.rolloutState == "COMPLETED" then "completed"
      elif $ours.rolloutState == null and ($all | length) == 1 and .runningCount == .desiredCount then "completed"
      else "waiting" end' <<<"$1"
}

# A describe-services that fails (throttled, the network) is retried; three
# in a row end the wait, with what the CLI said. A service that ECS no
# longer has (deleted, its cluster gone) ends it at once.
readonly MAX_MISSES=3
misses=0
deadline=$((SECONDS + timeout))
while :; do
  if describe_service; then
    misses=0
    [[ $(jq -r .status <<<"$SERVICE") == ACTIVE ]] ||
      fail "service $cluster/$service became $(jq -r .status <<<"$SERVICE") while it deployed $revision: it is being deleted"
    state=$(deployment_state "$SERVICE")
  elif [[ $ABSENT == cluster || $ABSENT == service ]]; then
    die "ECS no longer has service $cluster/$service ($([[ $ABSENT == cluster ]] && echo "no cluster $cluster" || echo "no such service")) while it deployed $revision: deleted?"
  else
    misses=$((misses + 1))
    ((misses < MAX_MISSES)) || die "ECS did not describe service $cluster/$service $MAX_MISSES times in a row while it deployed $revision: $ABSENT"
    state=waiting
  fi
  case $state in
    completed) break ;;
    failed:*) fail "ECS marked the deployment of $revision FAILED: ${state#failed:}; its circuit breaker rolls the service back to the last deployment that completed, if there is one" ;;
    gone:*) fail "the service no longer deploys $revision but ${state#gone:}: rolled back, or replaced by another deployment" ;;
  esac
  ((SECONDS < deadline)) || fail "the deployment of $revision did not complete in ${timeout}s"
  sleep "$(((deadline - SECONDS) < 10 ? (deadline - SECONDS > 0 ? deadline - SECONDS : 1) : 10))"
done

now=$(jq -r '.taskDefinition' <<<"$SERVICE")
[[ $now == "$revision" ]] || fail "the deployment completed, but the service runs $now, not $revision"
if ((follow)); then
  printf 'the deployment of %s to %s/%s completed\n' "$revision" "$cluster" "$service"
else
  printf 'deployed %s to %s/%s (%s)\n' "$image" "$cluster" "$service" "$revision"
fi
