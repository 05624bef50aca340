"""What the dashboard's queries must be, checked on its JSON (no Grafana
server is needed; tests/monitoring/live.py runs every query against a real
Prometheus):

- a stat or a table shows one value per series: its queries are instant,
  or Grafana would compute them at every step of the time range;
- no query of a graph reaches further back than an hour at every step (a
  `[30d]` there would be computed for every point); the 30-day figures come
  from recorded series;
- with the namespace variable at "All", every series says which namespace
  it is: legends name {{namespace}}, tables keep the namespace label;
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
            if panel["type"] == "table":
                check(f"{what}: keeps the namespace label", re.search(r"by \([^)]*\bnamespace\b", expr) is not None,
                      expr)
            else:
                check(f"{what}: the legend names the namespace", "{{namespace}}" in target.get("legendFormat", ""))
    check("the dashboard states its retention assumption", "retention" in dashboard.get("description", ""))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
