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
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO_ROOT"

readonly LIVE_URL=https://github.com/rustsec/advisory-db
readonly MUTATION='protobuf = "=2.28.0"' MUTATION_ADVISORY=RUSTSEC-2024-0437
SNAPSHOT=$(realpath -m "${ADVISORY_SNAPSHOT:-$REPO_ROOT/../shared/advisory-db}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

apt_tool git
CARGO_DENY=$(cargo_tool cargo-deny 0.20.2)

log "the advisory database"
mode=${ADVISORY_DB:-auto}
if [[ $mode == auto ]]; then
  if timeout 30 git ls-remote --exit-code "$LIVE_URL" HEAD >/dev/null 2>&1; then
    mode=live
  elif [[ -d $SNAPSHOT/crates ]]; then
    mode=snapshot
  else
    die "neither the live RustSec database ($LIVE_URL) nor a snapshot ($SNAPSHOT) can be read"
  fi
fi
case $mode in
  live) url=$LIVE_URL ;;
  snapshot)
    [[ -d $SNAPSHOT/crates ]] || die "no RustSec snapshot in $SNAPSHOT"
    # cargo-deny opens the database with git: a throwaway repository of the
    # snapshot's files, which it clones like the real one. It wants a URL
    # with a host name: git's insteadOf maps this one to the repository.
    cp -r "$SNAPSHOT" "$WORK/snapshot"
    git -C "$WORK/snapshot" init -q -b main
    git -C "$WORK/snapshot" add -A
    git -C "$WORK/snapshot" -c user.name=snapshot -c user.email=snapshot@invalid commit -q -m "RustSec snapshot"
    url=https://rustsec-snapshot.invalid/advisory-db
    export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$WORK/snapshot.insteadOf" GIT_CONFIG_VALUE_0=$url ;;
  *) die "ADVISORY_DB is live, snapshot or auto, not '$mode'" ;;
esac

# deny_config DIR: deny.toml with the database set to $url, cloned into a
# folder of this run's (so that what is checked is what was fetched now).
deny_config() {
  sed "/^\[advisories\]$/a db-urls = [\"$url\"]\ndb-path = \"$WORK/advisory-dbs\"" deny.toml >"$1/deny.toml"
  grep -q "^db-urls = \[\"$url\"\]$" "$1/deny.toml" || die "deny.toml has no [advisories] section"
}
deny_config "$WORK"
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
  local code=0 database
  deny "$REPO_ROOT" || code=$?
  database=$(find "$WORK/advisory-dbs" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  if [[ $mode == live ]]; then
    printf '     advisory database: live, %s at commit %s\n' "$LIVE_URL" \
      "$(git -C "$database" log -1 --format='%h of %cs' 2>/dev/null || echo '(not fetched)')"
  else
    printf '     advisory database: the offline snapshot in %s, %s: only as current as that date\n' "$SNAPSHOT" \
      "$(sed -n 's/.*as of its commit \([0-9a-f]\{7\}\)[0-9a-f]* (\([0-9-]*\)).*/commit \1 of \2/p' "$SNAPSHOT/SNAPSHOT.md")"
  fi
  printf '     %s advisories in it\n' "$(find "$database/crates" -name 'RUSTSEC-*.md' 2>/dev/null | wc -l)"
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
