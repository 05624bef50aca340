"""What the dashboard's queries must be, checked on its JSON (no Grafana
server is needed; tests/monitoring/live.py runs every query against a real
Prometheus):

- a stat or a table shows one value per series: its queries are instant,
  or Grafana would compute them at every step of the time range;
- no query of a graph reaches further back than an hour at every step (a
  `[30d]` there would be computed for every point); the 30-day figures come
  from recorded series;
- with the environment variable at "All", every series says which
  environment it is: legends name {{environment}}, tables keep the label;
- a per-instance series says which pod it is (and, outside Kubernetes,
  which address): its legend names {{pod}} and {{instance}};
- each SLO's burn-rate panel shows every window its alerts use (the
  windows the rules record, in rules/<environment>/api-slo.rules.yml);
- the metrics listener's connection errors are on a panel;
- the dashboard states its retention assumption.

    python3 tests/monitoring/dashboard.py [DASHBOARD_JSON]

Prints one line per check and "N passed, N failed"; exits 1 on a failure.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT = ROOT / "deploy/monitoring/dashboards/api.json"
RULES = ROOT / "deploy/monitoring/rules"
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def longest_range_seconds(expr):
    """The longest range (or subquery range) in `expr`, in seconds; Grafana's
    $__rate_interval and friends count as short."""
    ranges = re.findall(r"\[(\d+)([smhdwy])(?::[^\]]*)?\]", expr)
    return max((int(n) * SECONDS[unit] for n, unit in ranges), default=0)


def main(path):
    dashboard = json.loads(Path(path).read_text())
    passed = failed = 0

    def check(what, ok, detail=""):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))

    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            what = f"{panel['title']} / {target.get('legendFormat') or target['refId']}"
            expr = target["expr"]
            if panel["type"] in ("stat", "table"):
                check(f"{what}: instant", target.get("instant") is True and target.get("range") is not True)
            else:
                check(f"{what}: no range over an hour at every step", longest_range_seconds(expr) <= 3600, expr)
            legend = target.get("legendFormat", "")
            if panel["type"] == "table":
                check(f"{what}: keeps the environment label",
                      re.search(r"by \([^)]*\benvironment\b", expr) is not None, expr)
            else:
                check(f"{what}: the legend names the environment", "{{environment}}" in legend)
            if not re.match(r"\s*\w+ (by|without) \(", expr) and "_quantile" not in expr \
                    and not expr.startswith(("environment_job", "clamp_max")):
                check(f"{what}: a per-instance series, its legend names the pod and the instance",
                      "{{pod}}" in legend and "{{instance}}" in legend, legend)
    windows = set(re.findall(r"^      - record: environment_job:\w+:ratio_rate(\w+)$",
                             next(RULES.glob("*/api-slo.rules.yml")).read_text(), re.M))
    for panel in dashboard["panels"]:
        if panel["title"].endswith("burn rate"):
            shown = {re.search(r"ratio_rate(\w+)\{", t["expr"]).group(1) for t in panel["targets"]}
            check(f"{panel['title']}: every window the rules record ({', '.join(sorted(windows))})",
                  windows and shown == windows, f"shown: {sorted(shown)}")
    check("the metrics listener's connection errors are on a panel",
          any("http_connection_errors_total" in t["expr"] and "listener" in t["expr"]
              for p in dashboard["panels"] for t in p.get("targets", [])))
    check("the dashboard states its retention assumption", "retention" in dashboard.get("description", ""))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
