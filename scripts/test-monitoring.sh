#!/usr/bin/env bash
# The monitoring suite: the rule files check and pass their unit tests,
# every alert has a test and a runbook, the generated files are current,
# and the whole pack works against a real Prometheus scraping the release
# binary (tests/monitoring/live.py). Installs Debian's prometheus.
#
#   scripts/test-monitoring.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
MONITORING=deploy/monitoring

apt_tool promtool prometheus

log "generated files"
check "rules, dashboard and Kubernetes component match deploy/monitoring/generate.py" \
  python3 "$MONITORING/generate.py" --check

log "promtool"
check "promtool check rules: every rule file" promtool check rules "$MONITORING"/rules/*.yml
check "promtool test rules: every unit test" promtool test rules "$MONITORING"/tests/*.yml

log "every alert: a unit test, a runbook section, a runbook_url that points to it"
alerts=$(sed -n 's/^ *- alert: *//p' "$MONITORING"/rules/*.yml)
printf '     %s alerts\n' "$(wc -w <<<"$alerts")"
for alert in $alerts; do
  anchor=$(tr '[:upper:]' '[:lower:]' <<<"$alert")
  check "$alert: has a promtool test" grep -q "alertname: $alert\$" "$MONITORING"/tests/*.yml
  check "$alert: has a section in docs/runbooks.md" grep -q "^## $alert\$" docs/runbooks.md
  check "$alert: its runbook_url points to that section" \
    grep -q "runbook_url: .*/docs/runbooks.md#$anchor\$" "$MONITORING"/rules/*.yml
done

log "live: the release binary and Prometheus on 127.0.0.1"
cargo build --release --bin api
check "every rule healthy, every recording rule, alert signal and dashboard query has data" \
  python3 tests/monitoring/live.py target/release/api

report
