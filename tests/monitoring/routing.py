"""The Alertmanager route tree of docs/monitoring.md ("Severity and routing"),
checked with amtool: the configuration is valid, and every alert the rules
can send reaches the receiver the docs promise, by environment and
severity. Also: the rules use no severity but `critical` and `warning` (an
`info` alert is silenced by kube-prometheus-stack's InfoInhibitor), and
every alert says its environment.

    python3 tests/monitoring/routing.py AMTOOL

Prints one line per check and "N passed, N failed"; exits 1 on a failure.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs/monitoring.md"
RULES = ROOT / "deploy/monitoring/rules"
# (environment, severity): the receiver docs/monitoring.md promises.
EXPECTED = {
    ("production", "critical"): "pager",
    ("production", "warning"): "tickets",
    ("staging", "critical"): "team-channel",
    ("staging", "warning"): "team-channel",
}


def documented_routes():
    section = DOCS.read_text().split("\n### Severity and routing\n", 1)[1].split("\n## ", 1)[0]
    return next(block for block in re.findall(r"```yaml\n(.*?)```", section, re.S) if "route:" in block)


def main(amtool):
    passed = failed = 0

    def check(what, ok, detail=""):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))

    with tempfile.NamedTemporaryFile("w", suffix=".yml") as config:
        config.write(documented_routes())
        config.flush()
        run = subprocess.run([amtool, "check-config", config.name], capture_output=True, text=True)
        check("amtool check-config accepts the documented configuration", run.returncode == 0, run.stdout + run.stderr)
        for (environment, severity), receiver in EXPECTED.items():
            run = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config.name}",
                                  f"--verify.receivers={receiver}", "alertname=ApiDown",
                                  f"environment={environment}", f"severity={severity}"],
                                 capture_output=True, text=True)
            check(f"{environment} at {severity} goes to {receiver}", run.returncode == 0,
                  (run.stdout + run.stderr).strip())

    texts = [path.read_text() for path in sorted(RULES.glob("*/*.yml"))]
    severities = {s for text in texts for s in re.findall(r"^\s+severity: (\S+)$", text, re.M)}
    check(f"the rules' severities are critical and warning only ({', '.join(sorted(severities))})",
          severities == {"critical", "warning"})
    for path in sorted(RULES.glob("*/*.yml")):
        environment = path.parent.name
        for alert, body in re.findall(r"^      - alert: (\S+)\n(.*?)(?=^      - |^  - name:|\Z)",
                                      path.read_text(), re.M | re.S):
            says = f'environment="{environment}"' in body or f"environment: {environment}" in body
            check(f"{environment} {alert}: says its environment (a selector or a label)", says)
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
