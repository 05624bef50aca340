#!/usr/bin/env bash
# The hardening suite: the release binary under contract fuzzing, a real
# browser, SIGTERM under load, a slowloris crowd, a slow-read crowd, httplint
# on every kind of answer, liveness and readiness probes at the connection
# limit, traces to a real OpenTelemetry collector, 10,000 connections under a
# container's open-files limit, the connection limit, rolling restarts
# behind HAProxy and a soak, plus the supply-chain checks. Installs what it
# needs; docs/reliability.md says how long it took last.
#
#   tests/e2e/run.sh                                everything
#   SOAK_SECONDS=30 tests/e2e/run.sh                a shorter soak
#   SCREENSHOTS=docs tests/e2e/run.sh              refresh the docs' screenshots
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO_ROOT"
E2E=tests/e2e
readonly SOAK_SECONDS=${SOAK_SECONDS:-180}
WORK=$(mktemp -d)
SERVERS=()
cleanup() {
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "tools"
apt_tool wrk
apt_tool haproxy
apt_tool prlimit util-linux
apt_tool chromium
apt_tool node nodejs
apt_tool npm
SCHEMATHESIS=$(python_tool schemathesis schemathesis==4.32.5)/schemathesis
HTTPLINT_PYTHON=$(python_tool httplint httplint==2026.10.4)/python
# PyPI's rotel ships the collector binary inside the package.
ROTEL_PYTHON=$(python_tool rotel rotel==0.0.1a15)/python
ROTEL_AGENT=$("$ROTEL_PYTHON" -c 'import pathlib, rotel; print(pathlib.Path(rotel.__file__).parent / "rotel-agent")')
if [[ ! -f $CACHE_DIR/node/node_modules/playwright-core/package.json ]]; then
  log "installing playwright-core (npm, into $CACHE_DIR/node)"
  npm install --silent --no-audit --no-fund --prefix "$CACHE_DIR/node" playwright-core@1.65.1 >&2
fi
if ! command -v cargo-deny >/dev/null; then
  log "installing cargo-deny (cargo install; a few minutes, once)"
  cargo install --locked cargo-deny@0.20.2 >&2
fi
cargo build --release --bin api
API=$REPO_ROOT/target/release/api
ulimit -n "$(ulimit -Hn)"

# serve NAME [OPTIONS...]: starts the api on free ports; sets URL, PORT,
# METRICS_PORT and PID.
serve() {
  PORT=$(free_port)
  METRICS_PORT=$(free_port)
  "$API" --host 127.0.0.1 --port "$PORT" --metrics-port "$METRICS_PORT" "${@:2}" >"$WORK/$1.log" &
  PID=$!
  SERVERS+=("$PID")
  URL=http://127.0.0.1:$PORT
  wait_for_http "$URL/healthcheck" 10
}

log "contract fuzzing: schemathesis, every check, fixed seed"
serve schemathesis
# From $WORK: schemathesis keeps a cache in ./.schemathesis, which must not
# land in the repository.
fuzz() {
  (cd "$WORK" && "$SCHEMATHESIS" run "$URL/openapi.json" --checks all --seed 20261127 --max-examples 200 \
    --no-color --report-dir "$WORK/schemathesis")
}
check "schemathesis finds no failure" fuzz

log "the docs pages in a real browser"
check "/docs: Try it out works; /redoc renders every operation; nothing leaves 127.0.0.1" \
  env NODE_PATH="$CACHE_DIR/node/node_modules" node "$E2E/docs_browser.cjs" "$URL" "${SCREENSHOTS:-$WORK}"

log "SIGTERM under load"
check "exit 0 within the drain time, no wrong or truncated answer" \
  python3 "$E2E/shutdown_under_load.py" "$API"

log "slowloris: 300 connections, headers a byte a second, for 40 s"
serve slowloris
check "the server keeps answering and cuts the slow clients off" python3 "$E2E/slowloris.py" "$PORT" 40

log "slow readers: --max-connections clients that pipeline 1.4 MB answers and never read"
check "every place free again within the write timeout, each counted, /livez up, RSS flat" \
  python3 "$E2E/slow_read.py" "$API"

log "HTTP conformance: httplint on every kind of answer"
serve httplint
check "no WARN or BAD note on any route, status, coding, 304 or HEAD" \
  "$HTTPLINT_PYTHON" "$E2E/http_lint.py" "$PORT" "$METRICS_PORT"

log "capacity: 10,000 keep-alive connections, started with a soft open-files limit of 1024"
check "every connection answered, /healthcheck within 1 s meanwhile" \
  python3 "$E2E/capacity.py" "$API" many-connections
log "capacity: past --max-connections"
check "the excess waits unanswered, memory flat, then every client is served" \
  python3 "$E2E/capacity.py" "$API" over-the-limit

log "probes: liveness green for a minute at the connection limit and through the drain; readiness red"
check "kubelet liveness, api healthcheck --url and plain api healthcheck green; readiness red; metrics up while draining" \
  python3 "$E2E/probes.py" "$API"

log "traces: OTLP/HTTP to a real collector (rotel)"
check "trace continued with the HTTP conventions; new roots; sampling 0; collector down or hung changes nothing; SIGTERM flushes" \
  python3 "$E2E/traces.py" "$API" "$ROTEL_AGENT"

log "rolling restart of 3 replicas behind HAProxy, under load"
check "balancer retries failed connects and empty answers: 0 requests fail" \
  python3 "$E2E/rolling_restart.py" "$API" retries
check "balancer retries nothing, replicas use --shutdown-delay 2s: 0 requests fail" \
  python3 "$E2E/rolling_restart.py" "$API" no-retries 2s

log "soak: $SOAK_SECONDS s of steady load"
serve soak
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status"; }
taskset -c 1 wrk -t1 -c32 -d"${SOAK_SECONDS}s" --latency "$URL/current_time?name=soak" >"$WORK/soak.txt" &
WRK=$!
sleep 30
rss_early=$(rss_kb)
wait "$WRK"
rss_late=$(rss_kb)
grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|99%' "$WORK/soak.txt" | sed 's/^/     /'
printf '     RSS after 30 s: %s kB; at the end: %s kB\n' "$rss_early" "$rss_late"
soak_clean() { ! grep -qE 'Non-2xx|Socket errors' "$WORK/soak.txt"; }
check "soak: no errors and no non-2xx answers" soak_clean
rss_held() { [[ -n $rss_early && -n $rss_late ]] && ((rss_late <= rss_early * 110 / 100)); }
check "soak: RSS at the end within 10% of RSS after 30 s" rss_held
check "soak: the server is still healthy" http_is "$URL/healthcheck" 200 '{"status":"ok"}'

log "supply chain"
# cargo deny check in full, advisories too (live RustSec database, or the
# offline snapshot where GitHub cannot be reached), and its mutation test.
check "the advisory gate: tests/supply_chain/run.sh" tests/supply_chain/run.sh
forbids_unsafe() {
  local root
  for root in src/lib.rs src/main.rs examples/floor.rs; do
    grep -q '^#!\[forbid(unsafe_code)\]' "$root" || { echo "     $root"; return 1; }
  done
}
check "no unsafe code: every crate root says #![forbid(unsafe_code)]" forbids_unsafe

report
