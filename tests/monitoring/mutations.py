"""Mutation tests for the alerting and recording rules: does every unit test
earn its keep?

Each break below is applied, one at a time, to a copy of the rule files
written by `deploy/monitoring/generate.py --out DIR`; then the unit tests
that load the broken file run (`promtool test rules`, quickest file first,
stopping at the first that fails). A break is caught when they fail. The
suite fails unless every break is caught, and if a break no longer applies
to the rules (its text is gone: update the list).

    python3 tests/monitoring/mutations.py DIR

Prints one line per break and "caught N of M".
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SLO = "api-slo.rules.yml"
ALERTS = "api.alerts.yml"
ROUTES = "api.rules.yml"

# The unit test files, quickest first: a break is usually caught by the first.
TEST_ORDER = ["api.test.yml", "api-slo-recovery.test.yml", "api-slo.test.yml", "api-slo-period.test.yml",
              "api-slo-pairs.test.yml"]


@dataclass(frozen=True)
class Break:
    name: str
    file: str
    rule: str  # regex on the rule's name (alert or record)
    pattern: str  # regex, replaced in the rule's text
    replacement: str
    where: str = ""  # only rules whose text holds this


def pair(long):
    return f'long: "{long}"'


SHORT_CLAUSE = r"\n\s*and\n\s*namespace_job:\w+:ratio_rate\w+\{[^}]*\} > \([^)]*\)"
LONG_CLAUSE = r"(expr: \|\n\s*)namespace_job:\w+:ratio_rate\w+\{[^}]*\} > \([^)]*\)\n\s*and\n(\s*)"

BREAKS = [
    # The eight, and their siblings: the multiwindow logic.
    Break("every short-window clause removed", SLO, "Budget", SHORT_CLAUSE, ""),
    *(Break(f"{long}/{short}: short-window clause removed", SLO, "Budget", SHORT_CLAUSE, "", pair(long))
      for long, short in (("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h"))),
    *(Break(f"{long}/{short}: long-window clause removed", SLO, "Budget", LONG_CLAUSE, r"\1", pair(long))
      for long, short in (("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h"))),
    Break("14.4x -> 144x", SLO, "Budget", r"\(14\.4 \*", "(144 *"),
    Break("6x -> 60x", SLO, "Budget", r"\(6 \*", "(60 *"),
    Break("3x -> 100x", SLO, "Budget", r"\(3 \*", "(100 *"),
    Break("1x -> 100x", SLO, "Budget", r"\(1 \*", "(100 *"),
    Break("page pairs' `and` -> `or`", SLO, "BudgetBurn$", r"^(\s*)and$", r"\1or"),
    Break("ticket pairs' `and` -> `or`", SLO, "BudgetBurnSlow$", r"^(\s*)and$", r"\1or"),
    *(Break(f"the {w} window reads [{other}]", SLO, f":ratio_rate{w}$", rf"\[{w}\]", f"[{other}]")
      for w, other in (("5m", "10m"), ("30m", "1h"), ("1h", "30m"), ("2h", "1h"), ("6h", "5m"),
                       ("1d", "6h"), ("3d", "1h"))),
    Break("availability budget 0.1% -> 1% in its alerts", SLO, "ApiErrorBudget", r"\* 0\.001\)", "* 0.01)"),
    Break("latency budget 1% -> 10% in its alerts", SLO, "ApiLatencyBudget", r"\* 0\.01\)", "* 0.1)"),
    Break("page for: 2m -> 3m", SLO, "BudgetBurn$", r"for: 2m", "for: 3m"),
    Break("page for: 2m -> 1m", SLO, "BudgetBurn$", r"for: 2m", "for: 1m"),
    Break("ticket for: 15m -> 30m", SLO, "BudgetBurnSlow$", r"for: 15m", "for: 30m"),
    Break("ticket for: 15m -> 10m", SLO, "BudgetBurnSlow$", r"for: 15m", "for: 10m"),
    Break("staging pages at critical", SLO, "BudgetBurn$", r"severity: warning", "severity: critical",
          'namespace="api-staging"'),
    Break("production tickets at info", SLO, "BudgetBurnSlow$", r"severity: warning", "severity: info", 'namespace="api"'),
    Break("alerts read every namespace", SLO, "Budget", r',namespace="[^"]*"', ""),
    # What the SLIs count.
    Break("408 not counted as bad", SLO, "errors|sli_bad", r"5\.\.\|408", "5.."),
    Break("probes counted", SLO, ".", r',route!~"/healthcheck"', ""),
    Break("latency threshold le=0.025 -> 0.1", SLO, ".", r'le="0\.025"', 'le="0.1"'),
    # The 30-day budget.
    Break("30-day budget over [1d]", SLO, "ratio_rate30d", r"\[30d\]", "[1d]"),
    Break("30-day budget as an average of 5m ratios (unweighted)", SLO, "ratio_rate30d",
          r"sum_over_time\((namespace_job_slo:sli_bad:rate5m\{[^}]*\})\[30d\]\)\n\s*/ sum_over_time\("
          r"(namespace_job_slo:sli_events:rate5m\{[^}]*\})\[30d\]\)",
          r"avg_over_time((\1 / \2)[30d:1h])"),
    Break("budget remaining against 10x the budget", SLO, "error_budget_remaining", r"/ 0\.0(0*1)$",
          r"/ 0.\1"),
    # The alerts on the process: their conditions, thresholds and `for:`.
    Break("ApiDown: one absent() for every environment (the old bug)", ALERTS, "ApiDown",
          r'absent\(up\{job="([^"]*)",namespace="[^"]*"\}', r'absent(up{job="\1"}'),
    Break("ApiDown: for 2m -> 3m", ALERTS, "ApiDown", r"for: 2m", "for: 3m"),
    Break("ApiDown: for 2m -> 1m", ALERTS, "ApiDown", r"for: 2m", "for: 1m"),
    Break("ApiDown: production pages at warning", ALERTS, "ApiDown", r"severity: critical", "severity: warning"),
    Break("ApiTargetDown: == 0 -> < 0", ALERTS, "ApiTargetDown", r"== 0", "< 0"),
    *(Break(f"{alert}: for 5m -> {hold}", ALERTS, alert, r"for: 5m", f"for: {hold}")
      for alert in ("ApiTargetDown", "ApiMemoryNearLimit", "ApiFileDescriptorsNearLimit",
                    "ApiConnectionsNearLimit", "ApiRequestsInFlightHigh")
      for hold in ("6m", "4m")),
    Break("ApiMemoryNearLimit: 0.8 -> 0.9", ALERTS, "ApiMemoryNearLimit", r"> 0\.8$", "> 0.9"),
    Break("ApiMemoryNearLimit: 0.8 -> 0.7", ALERTS, "ApiMemoryNearLimit", r"> 0\.8$", "> 0.7"),
    Break("ApiFileDescriptorsNearLimit: 0.8 -> 0.95", ALERTS, "ApiFileDescriptorsNearLimit", r"> 0\.8$", "> 0.95"),
    Break("ApiFileDescriptorsNearLimit: 0.8 -> 0.75", ALERTS, "ApiFileDescriptorsNearLimit", r"> 0\.8$", "> 0.75"),
    Break("ApiConnectionsNearLimit: 0.9 -> 0.99", ALERTS, "ApiConnectionsNearLimit", r"> 0\.9$", "> 0.99"),
    Break("ApiConnectionsNearLimit: 0.9 -> 0.85", ALERTS, "ApiConnectionsNearLimit", r"> 0\.9$", "> 0.85"),
    Break("ApiRequestsInFlightHigh: 100 -> 200", ALERTS, "ApiRequestsInFlightHigh", r"> 100$", "> 200"),
    Break("ApiRequestsInFlightHigh: 100 -> 90", ALERTS, "ApiRequestsInFlightHigh", r"> 100$", "> 90"),
    Break("ApiConnectionLimitReached: [10m] -> [5m]", ALERTS, "ApiConnectionLimitReached", r"\[10m\]", "[5m]"),
    Break("ApiConnectionLimitReached: [10m] -> [15m]", ALERTS, "ApiConnectionLimitReached", r"\[10m\]", "[15m]"),
    Break("ApiConnectionLimitReached: > 0 -> > 5", ALERTS, "ApiConnectionLimitReached", r"> 0$", "> 5"),
    Break("ApiAcceptErrors: [5m] -> [1m]", ALERTS, "ApiAcceptErrors", r"\[5m\]", "[1m]"),
    Break("ApiAcceptErrors: [5m] -> [10m]", ALERTS, "ApiAcceptErrors", r"\[5m\]", "[10m]"),
    Break("ApiAcceptErrors: > 0 -> > 10", ALERTS, "ApiAcceptErrors", r"> 0$", "> 10"),
    Break("ApiRestarted: [15m] -> [10m]", ALERTS, "ApiRestarted", r"\[15m\]", "[10m]"),
    Break("ApiRestarted: [15m] -> [20m]", ALERTS, "ApiRestarted", r"\[15m\]", "[20m]"),
    Break("ApiRestarted: > 0 -> > 1", ALERTS, "ApiRestarted", r"> 0$", "> 1"),
    Break("process alerts read every namespace", ALERTS, ".", r',namespace="[^"]*"', ""),
    Break("staging tickets at warning", ALERTS, ".", r"severity: info", "severity: warning"),
    # The per-route rules of the dashboard.
    Break("per-route bad answers without 408", ROUTES, "errors", r"5\.\.\|408", "5.."),
]

RULE_START = re.compile(r"^      - (?:alert|record): (\S+)$", re.M)


def mutate(text, brk):
    """`text` with the break applied to every rule it names; and how many
    rules it changed."""
    starts = [m.start() for m in RULE_START.finditer(text)] + [len(text)]
    out, changed, position = [], 0, 0
    for start, end in zip(starts, starts[1:]):
        out.append(text[position:start])
        rule = text[start:end]
        # A rule ends where the next one, a comment, or a new group starts.
        tail = re.search(r"\n(?=      #|  #|  - name:|\n)", rule)
        body, rest = (rule[:tail.start() + 1], rule[tail.start() + 1:]) if tail else (rule, "")
        name = RULE_START.match(body).group(1)
        if re.search(brk.rule, name) and brk.where in body:
            new = re.sub(brk.pattern, brk.replacement, body, flags=re.M)
            changed += new != body
            body = new
        out.append(body + rest)
        position = end
    return "".join(out), changed


def tests_loading(tests_dir, rule_file):
    loading = [p.name for p in tests_dir.glob("*.yml") if f"../rules/{rule_file}" in p.read_text()]
    return sorted(loading, key=lambda n: TEST_ORDER.index(n) if n in TEST_ORDER else len(TEST_ORDER))


def promtool_passes(test_file):
    return subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True).returncode == 0


def run(brk, source, scratch):
    work = Path(tempfile.mkdtemp(dir=scratch))
    shutil.copytree(source / "rules", work / "rules")
    (work / "tests").symlink_to(source / "tests")
    target = work / "rules" / brk.file
    text, changed = mutate(target.read_text(), brk)
    if not changed:
        return brk, "does not apply", 0.0
    target.write_text(text)
    began = time.monotonic()
    for test in tests_loading(source / "tests", brk.file):
        if not promtool_passes(work / "tests" / test):
            return brk, f"caught by {test}", time.monotonic() - began
    return brk, "NOT CAUGHT", time.monotonic() - began


def main(source):
    source = Path(source).resolve()
    began = time.monotonic()
    for test in sorted((source / "tests").glob("*.yml")):
        if not promtool_passes(test):
            print(f"FAIL the unbroken rules fail {test.name}: fix that first")
            return 1
    with tempfile.TemporaryDirectory(prefix="mutations-") as scratch, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda brk: run(brk, source, scratch), BREAKS))
    caught = 0
    for brk, outcome, seconds in results:
        ok = outcome.startswith("caught")
        caught += ok
        print(f"{'ok  ' if ok else 'FAIL'} {brk.file}: {brk.name}: {outcome} ({seconds:.1f} s)")
    print(f"\ncaught {caught} of {len(BREAKS)} breaks in {time.monotonic() - began:.0f} s")
    return 0 if caught == len(BREAKS) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
