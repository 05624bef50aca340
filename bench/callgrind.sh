#!/usr/bin/env bash
# Instructions per request, counted by callgrind: deterministic, unlike
# timings on a shared machine, so it compares two versions of the code
# exactly. Runs a server binary under valgrind twice, with 0 and with N
# requests, and divides the difference by N.
#
#   bench/callgrind.sh [N] [PATH]      (defaults: 2000 /hello_world)
#   SERVER="target/release/examples/floor {port}" bench/callgrind.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"

requests=${1:-2000}
path=${2:-/hello_world}
server=${SERVER:-"target/release/api --host 127.0.0.1 --port {port} --metrics-port 0"}
apt_tool valgrind
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# instructions COUNT: total instructions of a server run that answers COUNT requests.
instructions() {
  local port pid
  port=$(free_port)
  # shellcheck disable=SC2086 # the server command is split into words on purpose
  valgrind --tool=callgrind --callgrind-out-file="$WORK/out.$1" ${server//\{port\}/$port} >/dev/null 2>&1 &
  pid=$!
  wait_for_http "http://127.0.0.1:$port$path" 60 >/dev/null
  python3 bench/requests.py "$port" "$1" "$path"
  kill -TERM "$pid"
  wait "$pid" || true
  callgrind_annotate "$WORK/out.$1" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

base=$(instructions 0)
loaded=$(instructions "$requests")
echo "$(( (loaded - base) / requests )) instructions per request ($requests x GET $path)"
