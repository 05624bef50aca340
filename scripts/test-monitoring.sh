#!/usr/bin/env bash
# The monitoring suite: the generated files are current; the rule files
# check and pass their unit tests, for the configured scrape job and
# environments and for another job; every mutant in the mutation list (a
# break applied to one rule instance) is caught by a unit test; the
# dashboard's queries are instant where they must be and name their
# environment; the documented Alertmanager routes send each environment's
# pages and tickets where the docs say; every alert has a test and a
# runbook; and the whole pack works against a real Prometheus scraping the
# release binary with the documented scrape (tests/monitoring/live.py).
# Installs Debian's prometheus, and unpacks amtool from Debian's
# prometheus-alertmanager.
#
#   scripts/test-monitoring.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
MONITORING=deploy/monitoring
# A job name unlike "api", with a character that must survive quoting.
readonly OTHER_JOB=monitoring/api-canary
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# amtool only, unpacked from Debian's package, not installed: installing it
# would also start an Alertmanager wherever services start on install.
AMTOOL=$CACHE_DIR/alertmanager/usr/bin/amtool
amtool_unpacked() {
  [[ -x $AMTOOL ]] && return
  log "unpacking amtool from Debian's prometheus-alertmanager (into $CACHE_DIR/alertmanager)"
  (cd "$WORK" && { apt-get download -qq prometheus-alertmanager 2>/dev/null ||
    { apt-get update -qq && apt-get download -qq prometheus-alertmanager; }; })
  mkdir -p "$CACHE_DIR/alertmanager"
  dpkg-deb -x "$WORK"/prometheus-alertmanager_*.deb "$CACHE_DIR/alertmanager"
}

apt_tool promtool prometheus

log "generated files"
check "rules, dashboard and Kubernetes objects match deploy/monitoring/generate.py" \
  python3 "$MONITORING/generate.py" --check

log "promtool"
check "promtool check rules: every rule file" promtool check rules "$MONITORING"/rules/*/*.yml
# The unit tests are written for the job `api` and the environment
# production (and staging, where they load both); generate.py --out writes
# them, with the rules, for the job and environments the generator is
# configured with: a test of one environment once for each.
check "generate.py --out: the rules and unit tests for the configured job and environments" \
  python3 "$MONITORING/generate.py" --out "$WORK/configured"
for test in "$WORK"/configured/tests/*.yml; do
  check "promtool test rules: ${test##*/}" promtool test rules "$test"
done

log "another scrape job, end to end: $OTHER_JOB"
# without_job_api DIR: no rule in DIR selects job="api" any more.
without_job_api() { ! grep -rn 'job="api"' "$1"/rules; }
# tests_fail_on RULES: the unit tests as written (for job api) fail on the
# rules in RULES: they follow the job, so a rename cannot pass unnoticed.
tests_fail_on() {
  mkdir -p "$WORK/mismatch"
  cp -r "$1" "$WORK/mismatch/rules"
  ln -s "$REPO_ROOT/$MONITORING/tests" "$WORK/mismatch/tests"
  fails promtool test rules "$WORK"/mismatch/tests/*.yml >/dev/null
}
check "generate.py --job $OTHER_JOB --out: written" \
  python3 "$MONITORING/generate.py" --job "$OTHER_JOB" --out "$WORK/other"
check "its rules select job=\"$OTHER_JOB\", never job=\"api\"" without_job_api "$WORK/other"
check "its unit tests, retargeted, all pass" promtool test rules "$WORK"/other/tests/*.yml
check "the unit tests for job api fail on its rules" tests_fail_on "$WORK/other/rules"

log "mutations: every break of the rules, in each rule instance, fails a unit test"
check "tests/monitoring/mutations.py: all caught" python3 tests/monitoring/mutations.py "$WORK/configured"

log "dashboard"
check "instant stats and tables, no long ranges per step, environments and pods in legends, every window, retention stated" \
  python3 tests/monitoring/dashboard.py

log "routing: the Alertmanager routes of docs/monitoring.md"
amtool_unpacked
check "each environment's pages and tickets reach the documented receiver; no info severity" \
  python3 tests/monitoring/routing.py "$AMTOOL"

log "every alert: a unit test, a runbook section, a runbook_url that points to it"
alerts=$(sed -n 's/^ *- alert: *//p' "$MONITORING"/rules/*/*.yml | sort -u)
printf '     %s alerts\n' "$(wc -w <<<"$alerts")"
for alert in $alerts; do
  anchor=$(tr '[:upper:]' '[:lower:]' <<<"$alert")
  check "$alert: has a promtool test" grep -q "alertname: $alert\$" "$MONITORING"/tests/*.yml
  check "$alert: has a section in docs/runbooks.md" grep -q "^## $alert\$" docs/runbooks.md
  check "$alert: its runbook_url points to that section" \
    grep -q "runbook_url: .*/docs/runbooks.md#$anchor\$" "$MONITORING"/rules/*/*.yml
done
# deploy_query FILE: the runbook's "did it start with a deploy?" query in
# FILE, its selector left out.
deploy_query() {
  grep -o 'count by (version, revision) (count_over_time(api_build_info{[^}]*}\[1h\]))' "$1" | sed 's/{[^}]*}/{}/' | sort -u
}
same_deploy_query() {
  local runbook tested
  runbook=$(deploy_query docs/runbooks.md) tested=$(deploy_query "$MONITORING/tests/api.test.yml")
  [[ -n $runbook && $runbook == "$tested" ]] || { printf '     runbook: %s\n     tested: %s\n' "$runbook" "$tested"; return 1; }
}
check "the runbooks' deploy query is the one api.test.yml shows to see a rollout" same_deploy_query

log "live: the release binary and Prometheus on 127.0.0.1"
cargo build --release --bin api
check "every rule healthy, every recording rule, alert signal and dashboard query has data" \
  python3 tests/monitoring/live.py target/release/api

report
