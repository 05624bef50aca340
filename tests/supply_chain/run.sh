#!/usr/bin/env bash
# The advisory gate: `cargo deny check` in full (advisories, bans, licenses,
# sources) on our tree, against the live RustSec database where GitHub is
# reachable and otherwise against the offline snapshot in
# ../shared/advisory-db, saying which and of what date; then the proof that
# the gate bites: a copy of the project that depends on a crate version with
# a known vulnerability (protobuf 2.28.0, RUSTSEC-2024-0437) must fail it.
#
#   tests/supply_chain/run.sh
#   ADVISORY_DB=live tests/supply_chain/run.sh       # fail rather than use a snapshot
#   ADVISORY_DB=snapshot tests/supply_chain/run.sh   # the snapshot even where GitHub answers
#   ADVISORY_SNAPSHOT=DIR                            # another copy (default ../shared/advisory-db)
# (advisory_db in scripts/lib.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO_ROOT"

readonly MUTATION='protobuf = "=2.28.0"' MUTATION_ADVISORY=RUSTSEC-2024-0437
# cargo-deny clones the database from a URL, which must name a host: git's
# insteadOf maps this one to the repository advisory_db made.
readonly DB_URL=https://rustsec-advisory-db.invalid/advisory-db
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

CARGO_DENY=$(cargo_tool cargo-deny 0.20.2)
log "the advisory database"
advisory_db "$WORK/advisory-db"
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$WORK/advisory-db.insteadOf" GIT_CONFIG_VALUE_0=$DB_URL
# deny.toml with that database, cloned into a folder of this run's.
sed "/^\[advisories\]$/a db-urls = [\"$DB_URL\"]\ndb-path = \"$WORK/advisory-dbs\"" deny.toml >"$WORK/deny.toml"
grep -q "^db-urls = \[\"$DB_URL\"\]$" "$WORK/deny.toml" || die "deny.toml has no [advisories] section"
# deny DIR: cargo deny check, in full, on the project in DIR; output in $WORK/deny.log.
deny() {
  "$CARGO_DENY" --color never --manifest-path "$1/Cargo.toml" --config "$WORK/deny.toml" check >"$WORK/deny.log" 2>&1
}

# findings: cargo-deny's verdict line, and each error or warning it reported.
findings() {
  grep -E '^(error|warning)\[' "$WORK/deny.log" | sort | uniq -c | sed 's/^ */     | /' | head -n 20
  grep -E '^(advisories|bans|licenses|sources) ' "$WORK/deny.log" | sed 's/^/     | /'
}

log "cargo deny check (advisories, bans, licenses, sources) on our tree"
gate() {
  local code=0
  deny "$REPO_ROOT" || code=$?
  printf '     advisory database: %s\n' "$ADVISORY_DB_SAID"
  printf '     %s advisories in it\n' "$(find "$WORK/advisory-db/crates" -name 'RUSTSEC-*.md' | wc -l)"
  findings
  [[ $code == 0 ]]
}
check "cargo deny check: every check passes on our tree" gate
check "... the advisories check ran (not skipped)" grep -q '^advisories ok' "$WORK/deny.log"

log "mutation: a copy of the project depending on $MUTATION ($MUTATION_ADVISORY)"
mkdir "$WORK/mutant"
git ls-files -z -- Cargo.toml Cargo.lock build.rs src examples | xargs -0 cp --parents -t "$WORK/mutant"
sed -i "/^\[dependencies\]$/a $MUTATION" "$WORK/mutant/Cargo.toml"
# Adds protobuf to the copy's lock file, leaving every other version as locked.
cargo metadata --format-version 1 --manifest-path "$WORK/mutant/Cargo.toml" >/dev/null 2>"$WORK/metadata.log" ||
  { cat "$WORK/metadata.log" >&2; die "cargo metadata failed on the copy"; }
check "the copy locks protobuf 2.28.0" grep -qx 'version = "2.28.0"' <(grep -A1 '^name = "protobuf"$' "$WORK/mutant/Cargo.lock")
mutant_fails() { ! deny "$WORK/mutant" && findings; }
check "cargo deny check fails on it" mutant_fails
check "... naming $MUTATION_ADVISORY" grep -q "$MUTATION_ADVISORY" "$WORK/deny.log"
check "... in the advisories check (bans, licenses and sources still pass)" \
  grep -qE '^advisories FAILED, bans ok, licenses ok, sources ok$' "$WORK/deny.log"

report
