#!/usr/bin/env bash
# A stand-in for the AWS CLI, first on PATH in scripts/test-aws.sh: every
# call goes to the real CLI (and so to the emulator), but `ecs
# describe-services` reports the service's deployments as ECS does, which
# the emulator does not: moto keeps the deployment it made when the service
# was created and never records another, nor events. "Ours" is the
# deployment of the revision the service runs (after an update-service, the
# new one). The shapes, from the ECS API reference (Deployment,
# DeploymentCircuitBreaker) and the Developer Guide's rolling updates:
#
#   REAL_AWS         the real `aws`
#   ROLLOUT_STATE    ours is the one deployment, PRIMARY, in this rollout
#                    state: COMPLETED (default), IN_PROGRESS or FAILED
#   DROP_UPDATES=1   update-service does nothing: the service stays on its
#                    revision, as after a rollback
#   AFTER_UPDATE     what ECS reports once update-service has run (before
#                    it, ROLLOUT_STATE's shape), with STUB_STATE a directory
#                    of the test's where the stub notes the update:
#     circuit-breaker  the circuit breaker has rolled back: ours ACTIVE and
#                      FAILED, beside a PRIMARY deployment of the revision
#                      the service ran before, which it runs again
#     replaced         another deployment (of a newer revision) is PRIMARY,
#                      ours ACTIVE and IN_PROGRESS beside it
#     vanished         the service is gone: MISSING, as after its deletion
#
# A deployment that is not COMPLETED comes with the events ECS would have
# written, newest first.
set -euo pipefail
: "${REAL_AWS:?the real aws CLI}"

case "${1:-} ${2:-}" in
  "ecs update-service")
    if [[ -n ${AFTER_UPDATE:-} ]]; then
      # The revision the service ran before: a rollback goes back to it.
      cluster="" service="" args=("${@:3}")
      for ((i = 0; i < ${#args[@]} - 1; i++)); do
        case ${args[i]} in
          --cluster) cluster=${args[i + 1]} ;;
          --service) service=${args[i + 1]} ;;
        esac
      done
      "$REAL_AWS" ecs describe-services --cluster "$cluster" --services "$service" \
        --query 'services[0].taskDefinition' --output text >"${STUB_STATE:?a directory for the stub}/before"
    fi
    [[ -z ${DROP_UPDATES:-} ]] || exit 0
    ;;
  "ecs describe-services")
    shape=ours before=""
    if [[ -n ${AFTER_UPDATE:-} && -f ${STUB_STATE:?a directory for the stub}/before ]]; then
      shape=$AFTER_UPDATE before=$(cat "$STUB_STATE/before")
    fi
    if [[ $shape == vanished ]]; then
      "$REAL_AWS" "$@" | jq '.failures = [.services[] | {arn: .serviceArn, reason: "MISSING"}] | .services = []'
      exit
    fi
    "$REAL_AWS" "$@" | jq --arg state "${ROLLOUT_STATE:-COMPLETED}" --arg shape "$shape" --arg before "$before" '
      def revision($ours; $offset): $ours | sub(":[0-9]+$"; ":\(($ours | split(":") | last | tonumber) + $offset)");
      def deployment($id; $status; $definition; $rollout; $reason; $desired; $running; $failed): {
        id: "ecs-svc/\($id)", status: $status, taskDefinition: $definition, desiredCount: $desired,
        runningCount: $running, failedTasks: $failed, rolloutState: $rollout, rolloutStateReason: $reason};
      def event($message): {createdAt: 1796000000.123, message: "(service api) \($message)"};
      .services |= map(. as $service | $service.taskDefinition as $ours | $service.desiredCount as $desired
        | if $shape == "circuit-breaker" then
            .taskDefinition = $before
            | .deployments = [
                deployment("2222222222222222222"; "PRIMARY"; $before; "IN_PROGRESS";
                  "ECS deployment ecs-svc/2222222222222222222 in progress."; $desired; 0; 0),
                deployment("1111111111111111111"; "ACTIVE"; $ours; "FAILED";
                  "ECS deployment circuit breaker: tasks failed to start."; 0; 0; 3)]
            | .events = [event("rolling back to deployment ecs-svc/2222222222222222222."),
                event("(deployment ecs-svc/1111111111111111111) deployment failed: tasks failed to start."),
                event("has started 1 tasks: (task 0123456789abcdef0123456789abcdef).")]
          elif $shape == "replaced" then
            .taskDefinition = revision($ours; 1)
            | .deployments = [
                deployment("3333333333333333333"; "PRIMARY"; revision($ours; 1); "IN_PROGRESS";
                  "ECS deployment ecs-svc/3333333333333333333 in progress."; $desired; 0; 0),
                deployment("1111111111111111111"; "ACTIVE"; $ours; "IN_PROGRESS";
                  "ECS deployment ecs-svc/1111111111111111111 in progress."; $desired; 0; 0)]
            | .events = [event("has begun draining connections on 1 tasks.")]
          else
            .deployments = [deployment("1111111111111111111"; "PRIMARY"; $ours; $state;
              (if $state == "FAILED" then "ECS deployment circuit breaker: tasks failed to start."
               else "ECS deployment ecs-svc/1111111111111111111 \($state | ascii_downcase)." end);
              $desired; (if $state == "COMPLETED" then $desired else 0 end); (if $state == "FAILED" then 3 else 0 end))]
            | .events = (if $state == "COMPLETED" then [event("has reached a steady state.")]
                elif $state == "FAILED" then
                  [event("(deployment ecs-svc/1111111111111111111) deployment failed: tasks failed to start."),
                   event("has started 1 tasks: (task 0123456789abcdef0123456789abcdef).")]
                else [event("has started 1 tasks: (task 0123456789abcdef0123456789abcdef).")] end)
          end)'
    exit
    ;;
esac
exec "$REAL_AWS" "$@"
