#!/usr/bin/env bash
# A stand-in for the AWS CLI, first on PATH in scripts/test-aws.sh: every
# call goes to the real CLI (and so to the emulator), but `ecs
# describe-services` reports the service's deployment as ECS does after an
# update-service, which the emulator does not: moto keeps the deployment it
# made when the service was created and never records another. The one
# deployment it reports is of the revision the service now runs, in the
# rollout state the test asks for:
#
#   REAL_AWS         the real `aws`
#   ROLLOUT_STATE    COMPLETED (default), IN_PROGRESS or FAILED
#   DROP_UPDATES=1   update-service does nothing: the service stays on its
#                    revision, as after a rollback
set -euo pipefail
: "${REAL_AWS:?the real aws CLI}"

case "${1:-} ${2:-}" in
  "ecs update-service")
    [[ -z ${DROP_UPDATES:-} ]] || exit 0
    ;;
  "ecs describe-services")
    "$REAL_AWS" "$@" | jq --arg state "${ROLLOUT_STATE:-COMPLETED}" '
      .services |= map(. as $service | .deployments = [{
        id: "ecs-svc/0123456789012345678", status: "PRIMARY", taskDefinition: $service.taskDefinition,
        desiredCount: $service.desiredCount,
        runningCount: (if $state == "COMPLETED" then $service.desiredCount else 0 end),
        rolloutState: $state,
        rolloutStateReason: (if $state == "FAILED" then "ECS deployment circuit breaker: tasks failed to start."
                             else "ECS deployment ecs-svc/0123456789012345678 \($state | ascii_downcase)." end)
      }])'
    exit
    ;;
esac
exec "$REAL_AWS" "$@"
