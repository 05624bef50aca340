"""Mutation tests for the alerting and recording rules: does every unit test
earn its keep?

Each break below names a rule file, the rules it applies to and a text
substitution. It is applied to one rule instance at a time (a rule of one
environment's file: each SLO's, each window pair's, each environment's copy
is an instance of its own), in a copy of the rule files written by
`deploy/monitoring/generate.py --out DIR`; then the unit test cases that
load that file run (`promtool test rules`, one case at a time, cheapest
first, stopping at the first that fails). A mutant is caught when one
fails. The suite fails unless every mutant is caught, and if a break
applies to no rule at all (its text is gone: update the list).

    python3 tests/monitoring/mutations.py DIR

Prints one line per mutant, and "caught N of M mutants (K breaks)".
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


@dataclass(frozen=True)
class Break:
    name: str
    file: str
    rule: str  # regex on the rule's name (alert or record)
    pattern: str  # regex, replaced in the rule's text
    replacement: str
    where: str = ""  # only rules whose text holds this


@dataclass(frozen=True)
class Mutant:
    brk: Break
    environment: str
    index: int  # of the rule in its file
    rule: str  # the rule's name and the labels that tell its instances apart


SHORT_CLAUSE = r"\n\s*and\n\s*environment_job:\w+:ratio_rate\w+\{[^}]*\} > \([^)]*\)"
LONG_CLAUSE = r"(expr: \|\n\s*)environment_job:\w+:ratio_rate\w+\{[^}]*\} > \([^)]*\)\n\s*and\n(\s*)"
TIMED = ("ApiTargetDown", "ApiMemoryNearLimit", "ApiFileDescriptorsNearLimit", "ApiConnectionsNearLimit",
         "ApiRequestsInFlightHigh", "ApiSaturated", "ApiCapacityLow")

BREAKS = [
    # The multiwindow logic, per window pair of each SLO.
    Break("short-window clause removed", SLO, "Budget", SHORT_CLAUSE, ""),
    Break("long-window clause removed", SLO, "Budget", LONG_CLAUSE, r"\1"),
    Break("14.4x -> 144x", SLO, "Budget", r"\(14\.4 \*", "(144 *"),
    Break("6x -> 60x", SLO, "Budget", r"\(6 \*", "(60 *"),
    Break("3x -> 100x", SLO, "Budget", r"\(3 \*", "(100 *"),
    Break("1x -> 100x", SLO, "Budget", r"\(1 \*", "(100 *"),
    Break("`and` of the pair -> `or`", SLO, "Budget", r"^(\s*)and$", r"\1or"),
    *(Break(f"the {w} window reads [{other}]", SLO, f":ratio_rate{w}$", rf"\[{w}\]", f"[{other}]")
      for w, other in (("5m", "10m"), ("30m", "1h"), ("1h", "30m"), ("2h", "1h"), ("6h", "5m"),
                       ("1d", "6h"), ("3d", "1h"))),
    Break("availability budget 0.1% -> 1% in its alerts", SLO, "ApiErrorBudget", r"\* 0\.001\)", "* 0.01)"),
    Break("latency budget 1% -> 10% in its alerts", SLO, "ApiLatencyBudget", r"\* 0\.01\)", "* 0.1)"),
    Break("page for: 2m -> 3m", SLO, "BudgetBurn$", r"for: 2m", "for: 3m"),
    Break("page for: 2m -> 1m", SLO, "BudgetBurn$", r"for: 2m", "for: 1m"),
    Break("ticket for: 15m -> 30m", SLO, "BudgetBurnSlow$", r"for: 15m", "for: 30m"),
    Break("ticket for: 15m -> 10m", SLO, "BudgetBurnSlow$", r"for: 15m", "for: 10m"),
    # What the SLIs count.
    Break("408 not counted as bad", SLO, "errors|sli_bad", r"5\.\.\|408", "5.."),
    Break("probes counted", SLO, ".", r',route!~"/healthcheck"', ""),
    Break("latency threshold le=0.025 -> 0.1", SLO, ".", r'le="0\.025"', 'le="0.1"'),
    # (Availability only: latency's bad count, `_count - _bucket`, is never
    # missing where its total is not.)
    *(Break("no bad request recorded as no data (`or 0 *` removed)", file, "errors|sli_bad", r"\n\s*or 0 \* [^\n]*",
            "", where="status=~") for file in (SLO, ROUTES)),
    # The 30-day budget.
    Break("30-day budget over [1d]", SLO, "ratio_rate30d", r"\[30d\]", "[1d]"),
    Break("30-day budget as an average of 5m ratios (unweighted)", SLO, "ratio_rate30d",
          r"sum_over_time\((environment_job_slo:sli_bad:rate5m\{[^}]*\})\[30d\]\)\n\s*/ sum_over_time\("
          r"(environment_job_slo:sli_events:rate5m\{[^}]*\})\[30d\]\)",
          r"avg_over_time((\1 / \2)[30d:1h])"),
    Break("budget remaining against 10x the budget", SLO, "error_budget_remaining", r"/ 0\.0(0*1)$",
          r"/ 0.\1"),
    # ApiSLIMissing.
    Break("ApiSLIMissing: for 5m -> 6m", SLO, "ApiSLIMissing", r"for: 5m", "for: 6m"),
    Break("ApiSLIMissing: for 5m -> 4m", SLO, "ApiSLIMissing", r"for: 5m", "for: 4m"),
    Break("ApiSLIMissing: fires while nothing is up", SLO, "ApiSLIMissing", r"\n\s*unless on \(\) absent\([^\n]*", ""),
    # Every rule, in every file: its own environment only; pages and
    # tickets at their severity.
    *(Break("reads every environment", file, ".", r',environment="[^"]*"', "") for file in (SLO, ALERTS, ROUTES)),
    *(Break("a page at warning", file, ".", r"severity: critical", "severity: warning") for file in (SLO, ALERTS)),
    *(Break("a ticket at critical", file, ".", r"severity: warning", "severity: critical") for file in (SLO, ALERTS)),
    # The alerts on the process and its capacity: conditions, thresholds,
    # windows and `for:`.
    Break("ApiDown: one absent() for every environment (the old bug)", ALERTS, "ApiDown",
          r'absent\(up\{job="([^"]*)",environment="[^"]*"\}', r'absent(up{job="\1"}'),
    Break("ApiDown: for 2m -> 3m", ALERTS, "ApiDown", r"for: 2m", "for: 3m"),
    Break("ApiDown: for 2m -> 1m", ALERTS, "ApiDown", r"for: 2m", "for: 1m"),
    Break("ApiUnavailable: for 2m -> 3m", ALERTS, "ApiUnavailable", r"for: 2m", "for: 3m"),
    Break("ApiUnavailable: for 2m -> 1m", ALERTS, "ApiUnavailable", r"for: 2m", "for: 1m"),
    Break("ApiUnavailable: == 0 -> <= 1", ALERTS, "ApiUnavailable", r"== 0$", "<= 1"),
    Break("kube-state-metrics alerts read every namespace", ALERTS, "ApiUnavailable|ApiCapacityLow",
          r'namespace="[^"]*",', ""),
    Break("ApiCapacityLow: 0.5 -> 0.7 of minReplicas", ALERTS, "ApiCapacityLow", r"\) 0\.5 \*", ") 0.7 *"),
    Break("ApiCapacityLow: 0.5 -> 0.3 of minReplicas", ALERTS, "ApiCapacityLow", r"\) 0\.5 \*", ") 0.3 *"),
    Break("ApiCapacityLow: [5m] -> [15m]", ALERTS, "ApiCapacityLow", r"\[5m\]", "[15m]"),
    Break("ApiCapacityLow: [5m] -> [2m]", ALERTS, "ApiCapacityLow", r"\[5m\]", "[2m]"),
    Break("ApiSaturated: >= 0.5 -> > 0.5", ALERTS, "ApiSaturated", r">= 0\.5$", "> 0.5"),
    Break("ApiSaturated: >= 0.5 -> >= 0.4", ALERTS, "ApiSaturated", r">= 0\.5$", ">= 0.4"),
    Break("ApiSaturated: [5m] -> [10m]", ALERTS, "ApiSaturated", r"\[5m\]", "[10m]"),
    Break("ApiSaturated: instances at the limit now not counted", ALERTS, "ApiSaturated",
          r"\n\s*or http_connections_open[^\n]*", ""),
    Break("ApiTargetDown: == 0 -> < 0", ALERTS, "ApiTargetDown", r"== 0", "< 0"),
    *(Break(f"for 5m -> {hold}", ALERTS, "|".join(TIMED), r"for: 5m", f"for: {hold}") for hold in ("6m", "4m")),
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
    # The per-route rules of the dashboard.
    Break("per-route bad answers without 408", ROUTES, "errors", r"5\.\.\|408", "5.."),
]

RULE_START = re.compile(r"^      - (?:alert|record): (\S+)$", re.M)
# What tells instances of one rule name apart within a file.
INSTANCE_LABELS = re.compile(r"^          (slo|long|quantile): (\S+)$", re.M)


def rules_of(text):
    """[(start, end, name, body)] of every rule in a rule file; a rule ends
    where the next one, a comment, or a new group starts."""
    starts = [m.start() for m in RULE_START.finditer(text)] + [len(text)]
    rules = []
    for start, end in zip(starts, starts[1:]):
        tail = re.search(r"\n(?=      #|  #|  - name:|\n)", text[start:end])
        stop = start + tail.start() + 1 if tail else end
        rules.append((start, stop, RULE_START.match(text, start).group(1), text[start:stop]))
    return rules


def mutants(source):
    """Every (break, environment, rule) the breaks apply to; and the breaks
    that apply to none."""
    found, unused = [], []
    for brk in BREAKS:
        count = 0
        for directory in sorted((source / "rules").iterdir()):
            for index, (_, _, name, body) in enumerate(rules_of((directory / brk.file).read_text())):
                if re.search(brk.rule, name) and brk.where in body and \
                        re.sub(brk.pattern, brk.replacement, body, flags=re.M) != body:
                    labels = ",".join(f"{k}={v.strip(chr(34))}" for k, v in INSTANCE_LABELS.findall(body))
                    found.append(Mutant(brk, directory.name, index, name + (f"{{{labels}}}" if labels else "")))
                    count += 1
        if not count:
            unused.append(brk)
    return found, unused


def apply(text, mutant):
    start, stop, _, body = rules_of(text)[mutant.index]
    return text[:start] + re.sub(mutant.brk.pattern, mutant.brk.replacement, body, flags=re.M) + text[stop:]


def split_cases(test_text):
    """A promtool test file as one file per test case (its header, then one
    case and the comment above it), so that a mutant runs only as many
    cases as it takes to fail one."""
    head, _, cases = test_text.partition("\ntests:\n")
    parts = re.split(r"\n(?=(?:  #[^\n]*\n)*  - interval:)", cases)
    return [f"{head}\ntests:\n{part.strip(chr(10))}\n" for part in parts if "- interval:" in part]


def promtool_passes(test_file):
    return subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True).returncode == 0


def timed_passes(test_file):
    began = time.monotonic()
    return promtool_passes(test_file), time.monotonic() - began


def generic(case, environment):
    """A case's name with its environment left out: the same case of
    another environment's copy of the tests."""
    return case.replace(f".{environment}.", ".{}.")


def remember(hints, key, name):
    hints[key] = [name] + [n for n in hints.get(key, []) if n != name]


def run(mutant, source, cases, scratch, hints):
    """Runs the cases that load the mutated file until one fails: first the
    ones that caught this break's other mutants, then those that caught
    other breaks of the same rule (`hints`, shared between mutants), then
    the others, cheapest first. The order only saves time: every case that
    loads the file is tried before a mutant is called not caught."""
    work = Path(tempfile.mkdtemp(dir=scratch))
    shutil.copytree(source / "rules", work / "rules")
    (work / "cases").symlink_to(cases[0][0].parent)
    target = work / "rules" / mutant.environment / mutant.brk.file
    target.write_text(apply(target.read_text(), mutant))
    loads = f"../rules/{mutant.environment}/{mutant.brk.file}"
    keys = [("break", mutant.brk.name), ("rule", mutant.brk.file, mutant.rule)]
    hinted = [name.format(mutant.environment) for key in keys for name in hints.get(key, [])]
    ordered = sorted((case for case in cases if loads in case[1]),
                     key=lambda case: hinted.index(case[0].name) if case[0].name in hinted else len(hinted))
    began = time.monotonic()
    outcome = "NOT CAUGHT"
    for case, _ in ordered:
        if not promtool_passes(work / "cases" / case.name):
            outcome = f"caught by {case.stem}"
            for key in keys:
                remember(hints, key, generic(case.name, mutant.environment))
            break
    shutil.rmtree(work)
    return mutant, outcome, time.monotonic() - began


def report(mutant, outcome, seconds):
    ok = outcome.startswith("caught")
    print(f"{'ok  ' if ok else 'FAIL'} {mutant.environment}/{mutant.brk.file} {mutant.rule}: "
          f"{mutant.brk.name}: {outcome} ({seconds:.1f} s)", flush=True)
    return ok


def main(source):
    source = Path(source).resolve()
    began = time.monotonic()
    found, unused = mutants(source)
    with tempfile.TemporaryDirectory(prefix="mutations-") as scratch, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        case_dir = Path(scratch, "cases")
        case_dir.mkdir()
        (Path(scratch) / "rules").symlink_to(source / "rules")
        cases = []
        for test in sorted((source / "tests").glob("*.yml")):
            for i, text in enumerate(split_cases(test.read_text())):
                path = case_dir / f"{test.stem}.case{i + 1}.yml"
                path.write_text(text)
                cases.append((path, text))
        # Every case passes on the unbroken rules (the cases, split, say
        # what the files say), and how long each takes: cheapest first.
        timings = dict(zip(cases, pool.map(lambda case: timed_passes(case[0]), cases)))
        failing = [case[0].name for case, (ok, _) in timings.items() if not ok]
        if failing or not cases:
            print(f"FAIL the unbroken rules fail {failing or 'no case at all'}: fix that first")
            return 1
        cases.sort(key=lambda case: timings[case][1])
        print(f"     {len(cases)} test cases, {sum(t for _, t in timings.values()):.0f} s in all; "
              f"{len(found)} mutants of {len(BREAKS)} breaks", flush=True)
        hints = {}
        results = [report(*result) for result in
                   pool.map(lambda mutant: run(mutant, source, cases, scratch, hints), found)]
    for brk in unused:
        print(f"FAIL {brk.file}: {brk.name}: applies to no rule (update the list)")
    caught = sum(results)
    print(f"\ncaught {caught} of {len(found)} mutants ({len(BREAKS)} breaks, each applied to one rule "
          f"instance at a time) in {time.monotonic() - began:.0f} s")
    return 0 if caught == len(found) and not unused else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
