"""The monitoring pack against a real Prometheus scraping the real binary.

Starts the api (in a 64 MiB memory cgroup, as a container would run it, so
that api_memory_limit_bytes exists) and Prometheus on 127.0.0.1, with a
1 s scrape and evaluation interval and the repository's rule files. The
scrape configuration is docs/monitoring.md's, from its "Scraping" section,
with only its addresses, interval and rule file paths replaced: the one api
is scraped once per environment that block lists, each with the
`environment` label the block adds, so that every environment's rules
(deploy/monitoring/generate.py) have series to read. Sends bounded traffic
to every route, 404s, 405s and 422s included; then requires that:

- `promtool check metrics` accepts the live /metrics;
- before any request, /metrics already holds, at 0, the series the SLOs
  read for every route (200, 408 and 500 answers, and the latency
  histogram), so that a new instance's first errors are a rise rate() sees;
- every metric family the binary exposes is read by a rule or a dashboard
  query (a few, listed with why, are there to be read by hand);
- every rule Prometheus loaded reports health "ok";
- every recording rule returns data;
- every alert's signal returns data: its expression with each comparison
  made a `bool` comparison, which keeps every series whatever its value.
  `absent()` alerts have no signal: they must return nothing, since the
  binary is up and scraped; the alerts on kube-state-metrics' series are
  excepted (there is no cluster here);
- every query of the dashboard returns data, with its variables filled in.

    python3 tests/monitoring/live.py API_BINARY

Prints one line per check and "N passed, N failed"; exits 1 on a failure.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests/e2e"))
from harness import free_port, wait_healthy  # noqa: E402

MEMORY_LIMIT = 64 * 1024 * 1024
DASHBOARD_VARIABLES = {"$job": "api", "$environment": ".+", "$__rate_interval": "1m"}
TRAFFIC_SECONDS = 8
DOCS = ROOT / "docs/monitoring.md"
# The statuses whose series the server creates at 0 for every route.
INITIALIZED_STATUSES = ("200", "408", "500")
# Exposed for people to read, not for rules or panels.
READ_BY_HAND = {
    "process_threads": "diagnostics, with process_virtual_memory_bytes, when memory looks odd",
    "process_virtual_memory_bytes": "diagnostics: RSS is what the limit counts",
}


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))


def memory_cgroup(name):
    """A new memory cgroup limited to MEMORY_LIMIT (v2, else v1): its
    cgroup.procs path, or None with the reason printed."""
    for root, limit_file in (("/sys/fs/cgroup", "memory.max"), ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")):
        if not Path(root, limit_file).exists() and not Path(root, "cgroup.subtree_control").exists():
            continue
        group = Path(root, name)
        try:
            group.mkdir()
            (group / limit_file).write_text(str(MEMORY_LIMIT))
            return group
        except OSError as error:
            print(f"     cannot make a memory cgroup under {root}: {error}")
            if group.exists():
                group.rmdir()
    return None


def start_api(binary, port, metrics_port, group):
    # The shell moves itself into the cgroup, then becomes the api.
    enter = f"echo $$ > {group}/cgroup.procs && " if group else ""
    return subprocess.Popen(
        ["sh", "-c", f'{enter}exec "$0" "$@"', binary, "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL)


def documented_scrape():
    """docs/monitoring.md's scrape configuration: the first YAML block of its
    "Scraping" section that holds `scrape_configs:`."""
    section = DOCS.read_text().split("\n## Scraping\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return next(block for block in blocks if "scrape_configs:" in block)


def scrape_config(metrics_port):
    """The documented scrape, for the live binary: every target list is its
    address, the interval a second, the rule files the repository's. Also
    the environments it labels."""
    config, targets = re.subn(r"targets: \[[^\]]*\]", f'targets: ["127.0.0.1:{metrics_port}"]', documented_scrape())
    config, intervals = re.subn(r"scrape_interval: \S+", "scrape_interval: 1s", config)
    config, rules = re.subn(r"^(\s*- )rules/", rf"\g<1>{ROOT}/deploy/monitoring/rules/", config, flags=re.M)
    environments = re.findall(r"^\s*environment: (\S+)$", config, re.M)
    if not (targets and intervals and rules and len(environments) == targets):
        raise SystemExit(f"docs/monitoring.md's scrape block has changed shape: {targets} target lists, "
                         f"{intervals} intervals, {rules} rule files, environments {environments}")
    return "global:\n  evaluation_interval: 1s\n" + config, environments


def start_prometheus(work, config, port):
    path = work / "prometheus.yml"
    path.write_text(config)
    return subprocess.Popen(
        ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))


def send_traffic(port, seconds):
    """Every route and every client error, a few times a second, bounded."""
    requests = ([("GET", "/hello_world")] * 10 + [("GET", "/current_time?name=live")] * 5
                + [("GET", "/current_time")] * 2 + [("GET", "/nope")] * 2 + [("POST", "/hello_world")]
                + [("GET", "/healthcheck"), ("HEAD", "/healthcheck"), ("GET", "/openapi.json"), ("GET", "/docs")])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for method, path in requests:
            connection.request(method, path)
            connection.getresponse().read()
            sent += 1
        time.sleep(0.1)
    connection.close()
    return sent


def series_at_zero(exposition):
    """The routes of the api's counter, and which of the series the SLOs
    read for them are not there at 0."""
    labels = r'\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\}'  # a route template may hold braces
    samples = dict(re.findall(rf"^(\S+?{labels}) (\S+)$", exposition, re.M))
    routes = set(re.findall(r'^http_requests_total\{.*?route="([^"]*)"', exposition, re.M))
    missing = []
    for route in sorted(routes):
        wanted = [f'http_requests_total{{method="GET",route="{route}",status="{status}"}}'
                  for status in INITIALIZED_STATUSES]
        wanted.append(f'http_request_duration_seconds_count{{route="{route}"}}')
        missing += [name for name in wanted if samples.get(name) != "0"]
    return routes, missing


def query(prometheus_port, promql):
    url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.load(answer)
    if body["status"] != "success":
        raise RuntimeError(body.get("error", body))
    return body["data"]["result"]


def wait_for_data(prometheus_port, promql, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if query(prometheus_port, promql):
                return True
        except (OSError, RuntimeError):
            pass
        time.sleep(0.5)
    return False


def with_bool(expr):
    """`expr` with every comparison outside label matchers and strings made
    a `bool` comparison: 0 or 1 for every series, instead of a filter."""
    parts = re.split(r'(\{[^}]*\}|"(?:[^"\\]|\\.)*")', expr)
    for i in range(0, len(parts), 2):  # even parts are outside {…} and "…"
        parts[i] = re.sub(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)", r"\1 bool", parts[i])
    return "".join(parts)


def metric_families(exposition):
    return set(re.findall(r"^# TYPE (\S+) \S+$", exposition, re.M))


def metrics_read(expressions):
    """Every metric name the PromQL `expressions` read (a histogram's
    family counts as read through its _bucket, _count or _sum)."""
    names = set()
    for expr in expressions:
        expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no names inside strings
        names |= set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr))
    return names | {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def dashboard_queries():
    dashboard = json.loads((ROOT / "deploy/monitoring/dashboards/api.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield f"{panel['title']} / {target['legendFormat'] or target['refId']}", expr


def main(binary):
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="monitoring-live-"))
    group = memory_cgroup(f"api-live-{os.getpid()}")
    if group is None:
        print("SKIPPED the memory limit: no cgroup could be made, so api_memory_limit_bytes "
              "and ApiMemoryNearLimit's signal are not checked")
    port, metrics_port, prometheus_port = free_port(), free_port(), free_port()
    processes = []
    try:
        api = start_api(binary, port, metrics_port, group)
        processes.append(api)
        # Waits on liveness (the metrics port), so that the API has answered
        # nothing yet when its series are read.
        checks.check("the api starts", wait_healthy(metrics_port, path="/livez"))
        config, environments = scrape_config(metrics_port)
        print(f"     docs/monitoring.md's scrape, as environments {', '.join(environments)}")
        prometheus = start_prometheus(work, config, prometheus_port)
        processes.append(prometheus)

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        lint = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True)
        checks.check("promtool check metrics accepts the live /metrics", lint.returncode == 0,
                     (lint.stdout + lint.stderr).decode().strip())
        routes, missing = series_at_zero(metrics.decode())
        checks.check(f"before any request, the SLOs' series exist at 0 for all {len(routes)} routes "
                     f"({', '.join(INITIALIZED_STATUSES)} and the histogram)",
                     len(routes) >= 8 and not missing, f"routes {sorted(routes)}, missing {missing}")
        if group is not None:
            checks.check("api_memory_limit_bytes is the cgroup's 64 MiB",
                         f"\napi_memory_limit_bytes {MEMORY_LIMIT}\n".encode() in metrics)

        began = time.monotonic()
        sent = send_traffic(port, TRAFFIC_SECONDS)
        print(f"     sent {sent} requests in {time.monotonic() - began:.1f} s")
        checks.check("Prometheus scrapes the api",
                     wait_for_data(prometheus_port, 'up{job="api"} == 1'))
        checks.check("recording rules have data",
                     wait_for_data(prometheus_port, "environment_job:http_requests_errors:ratio_rate5m"))
        time.sleep(2)  # every group evaluated at least once more

        with urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/api/v1/rules", timeout=10) as answer:
            groups = json.load(answer)["data"]["groups"]
        rules = [rule for group_ in groups for rule in group_["rules"]]
        checks.check(f"Prometheus loaded the rule files ({len(rules)} rules in {len(groups)} groups)", len(rules) > 0)
        unread = metric_families(metrics.decode()) - metrics_read(
            [rule["query"] for rule in rules] + [expr for _, expr in dashboard_queries()])
        checks.check("every metric family /metrics exposes is read by a rule or a dashboard panel",
                     unread <= set(READ_BY_HAND), f"unread: {sorted(unread - set(READ_BY_HAND))}")
        for rule in rules:
            name = rule["name"]
            checks.check(f"rule {name}: health ok", rule["health"] == "ok", rule.get("lastError", ""))
            if rule["type"] == "recording":
                checks.check(f"recording rule {name} returns data", bool(query(prometheus_port, name)))
            elif "absent(" in rule["query"]:
                result = query(prometheus_port, rule["query"])
                checks.check(f"alert {name} ({rule['labels'].get('environment')}"
                             f"{', ' + rule['labels']['slo'] if 'slo' in rule['labels'] else ''}): "
                             "absent() finds nothing missing while the api is up", not result, str(result))
            elif "kube_" in rule["query"]:
                print(f"     alert {name}: reads kube-state-metrics, which is not here (excepted)")
            elif name == "ApiMemoryNearLimit" and group is None:
                print(f"SKIPPED alert {name}: no memory limit (see above)")
            else:
                signal = with_bool(rule["query"])
                checks.check(f"alert {name}: its signal returns data", bool(query(prometheus_port, signal)), signal)
        for title, expr in dashboard_queries():
            try:
                result = query(prometheus_port, expr)
                checks.check(f"dashboard {title}: returns data", bool(result), expr)
            except RuntimeError as error:
                checks.check(f"dashboard {title}: returns data", False, f"{error}: {expr}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        if group is not None:
            group.rmdir()
    print(f"\n{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
