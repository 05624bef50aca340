"""Writes the monitoring pack, from the tables in this file:

- rules/api.rules.yml: per-route recording rules (the dashboard's traffic);
- rules/api-slo.rules.yml: the two SLOs' recording rules and their
  multiwindow, multi-burn-rate alerts (Google SRE workbook, chapter 5), one
  alert per window pair and per environment;
- rules/api.alerts.yml: the alerts on the process, per environment;
- dashboards/api.json: the Grafana dashboard;
- deploy/k8s/monitoring/{prometheusrule,grafana-dashboard}.yaml: the same
  rules and dashboard for the Prometheus Operator and Grafana's dashboard
  sidecar, applied once per cluster.

    python3 deploy/monitoring/generate.py           write them
    python3 deploy/monitoring/generate.py --check   fail if any is stale (CI)
    python3 deploy/monitoring/generate.py --out DIR [--job NAME]
        write the rules and their unit tests (rules/, tests/) into DIR for
        the scrape job NAME (default: JOB below), leaving the repository
        as it is: what scripts/test-monitoring.sh runs promtool on

The unit tests in tests/ are written for the job `api` and the runbooks of
OWNER/REPO; --out retargets them to JOB and RUNBOOKS, so they follow the
configuration.

Standard library only, so that it runs anywhere Python does.
"""

import argparse
import json
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RULES = HERE / "rules"
TESTS = HERE / "tests"
CLUSTER = ROOT / "deploy/k8s/monitoring"


@dataclass(frozen=True)
class Environment:
    """An environment one Prometheus watches, told apart from the others
    by its `namespace` label, and the severity of a page and of a ticket
    there."""

    name: str
    namespace: str
    page: str
    ticket: str

    @property
    def where(self):
        return f"{self.name} (namespace {self.namespace})" if self.namespace else self.name


# ---- Configuration: edit here, then run this script ---------------------

# The scrape job's name: every rule selects job="<JOB>". With the
# repository's PodMonitor it is the pods' app.kubernetes.io/name label.
JOB = "api"

# Where every alert's runbook_url points: docs/runbooks.md of your fork.
RUNBOOKS = "https://github.com/OWNER/REPO/blob/main/docs/runbooks.md"

# Every environment gets alerts of its own, so that one healthy environment
# never hides another that is down (`absent()` can only tell "never scraped"
# for an environment it names), with the severities that environment pages
# and tickets at. Kubernetes adds `namespace` to every series (the
# overlays' namespaces below); elsewhere, add a `namespace` label in the
# scrape configuration, or name an environment with namespace "" to
# select the series that have none.
ENVIRONMENTS = [
    Environment("production", namespace="api", page="critical", ticket="warning"),
    Environment("staging", namespace="api-staging", page="warning", ticket="info"),
]

# Health probes are not users: their always-fast 200s would dilute both
# SLOs, and a stopping instance's 503s would spend the budget.
PROBE_ROUTES = ["/healthcheck"]

# ---- The SLOs ------------------------------------------------------------

PERIOD = "30d"
PERIOD_DAYS = 30
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]

# `{sel}` stands for the label matchers a rule selects with (so a selector
# reads `metric{{sel},le="0.025"}`) and `{w}` for a window; `bad` and
# `total` are rates per (namespace, job).
SLOS = [
    {
        "name": "availability",
        "alert": "ApiErrorBudgetBurn",
        "record": "http_requests_errors",
        "objective": 0.999,
        "statement": "99.9% of requests are answered without a server error (5xx) or a timeout (408); "
                     "other 4xx are the client's, and health probes do not count",
        "bad": 'sum by (namespace, job) (rate(http_requests_total{{sel},status=~"5..|408"}[{w}]))',
        "total": "sum by (namespace, job) (rate(http_requests_total{{sel}}[{w}]))",
    },
    {
        "name": "latency",
        "alert": "ApiLatencyBudgetBurn",
        "record": "http_requests_slow",
        "objective": 0.99,
        "statement": "99% of requests are answered within 25 ms (the histogram's le=\"0.025\" bucket), "
                     "measured in the process; health probes do not count",
        "bad": "sum by (namespace, job) (rate(http_request_duration_seconds_count{{sel}}[{w}]))\n"
               '- sum by (namespace, job) (rate(http_request_duration_seconds_bucket{{sel},le="0.025"}[{w}]))',
        "total": "sum by (namespace, job) (rate(http_request_duration_seconds_count{{sel}}[{w}]))",
    },
]

# (kind, for, alert name suffix, [(long window, short window, burn rate)]):
# the workbook's page (2% of a 30-day budget in an hour, 5% in 6 hours) and
# ticket (10% in 3 days, 100% over 30 days at 1x) conditions. Each pair is
# an alert of its own, labelled `long` and `short`, as pyrra does: the page
# says which pair fired.
BURN_ALERTS = [
    ("page", "2m", "", [("1h", "5m", 14.4), ("6h", "30m", 6)]),
    ("ticket", "15m", "Slow", [("1d", "2h", 3), ("3d", "6h", 1)]),
]

# ---- The alerts on the process ------------------------------------------

# `{sel}` is the environment's selector; `{threshold}`, `{for}`, `{who}` and
# `{where}` are filled in the texts.
WHO = "{{ with $labels.pod }}Pod {{ . }}{{ else }}Instance {{ $labels.instance }}{{ end }}"
PROCESS_ALERTS = [
    {
        "alert": "ApiDown",
        "kind": "page",
        "comment": ["No instance is up, or Prometheus has none to scrape at all (never scraped,",
                    "or the targets disappeared): `absent()` of this environment's series only,",
                    "so that another environment being up cannot hide it."],
        "expr": "absent(up{{sel}} == 1)",
        "for": "2m",
        "summary": "{env}: no instance of the api is up.",
        "description": "Prometheus has scraped no healthy api instance in {where} for {for}: the service is "
                       "down there, or its targets have disappeared (or were never found).",
    },
    {
        "alert": "ApiTargetDown",
        "kind": "ticket",
        "expr": "up{{sel}} == 0",
        "for": "5m",
        "summary": "{env}: an api instance cannot be scraped.",
        "description": "{who} in {where} has failed its scrapes for {for}: the process is gone, hung, or "
                       "its metrics port is unreachable.",
    },
    {
        "alert": "ApiMemoryNearLimit",
        "kind": "ticket",
        "comment": ["api_memory_limit_bytes is the container's limit, read by the process itself;",
                    "it is absent (and so is this alert) without one."],
        "expr": "process_resident_memory_bytes{{sel}}\n  / api_memory_limit_bytes{{sel}} > {threshold}",
        "threshold": 0.8,
        "for": "5m",
        "summary": "{env}: an api instance uses over {threshold:.0%} of its memory limit.",
        "description": "{who} in {where} has used {{ $value | humanizePercentage }} of its container's "
                       "memory limit for {for}; past the limit it is OOM-killed.",
    },
    {
        "alert": "ApiFileDescriptorsNearLimit",
        "kind": "ticket",
        "expr": "process_open_fds{{sel}} / process_max_fds{{sel}} > {threshold}",
        "threshold": 0.8,
        "for": "5m",
        "summary": "{env}: an api instance uses over {threshold:.0%} of its file descriptors.",
        "description": "{who} in {where} has had {{ $value | humanizePercentage }} of its open-files "
                       "limit in use for {for}; at the limit, new connections fail.",
    },
    {
        "alert": "ApiConnectionsNearLimit",
        "kind": "ticket",
        "expr": "http_connections_open{{sel}} / http_connections_limit{{sel}} > {threshold}",
        "threshold": 0.9,
        "for": "5m",
        "summary": "{env}: an api instance holds over {threshold:.0%} of --max-connections.",
        "description": "{who} in {where} has had {{ $value | humanizePercentage }} of its connection "
                       "limit open for {for}; at the limit, new clients and readiness probes wait (liveness, "
                       "on the metrics port, does not).",
    },
    {
        "alert": "ApiConnectionLimitReached",
        "kind": "ticket",
        "expr": "increase(http_connections_limit_reached_total{{sel}}[10m]) > 0",
        "summary": "{env}: an api instance made clients wait at --max-connections.",
        "description": "{who} in {where} stopped accepting in the last 10 minutes because all its "
                       "connections were open: new clients and readiness probes waited in the backlog.",
    },
    {
        "alert": "ApiAcceptErrors",
        "kind": "ticket",
        "expr": "increase(http_accept_errors_total{{sel}}[5m]) > 0",
        "summary": "{env}: an api instance fails to accept connections.",
        "description": "{who} in {where} failed to accept connections in the last 5 minutes (usually out "
                       "of file descriptors); those clients waited.",
    },
    {
        "alert": "ApiRequestsInFlightHigh",
        "kind": "ticket",
        "comment": ["Answers take well under a millisecond: at 10,000 requests a second about",
                    "10 are in flight. 100 for 5 minutes means requests wait."],
        "expr": "http_requests_in_flight{{sel}} > {threshold}",
        "threshold": 100,
        "for": "5m",
        "summary": "{env}: requests pile up in an api instance.",
        "description": "{who} in {where} has had {{ $value }} requests in flight for {for}: it is "
                       "starved of CPU, or requests are stuck.",
    },
    {
        "alert": "ApiRestarted",
        "kind": "ticket",
        "comment": ["A new pod is a new instance; this sees a process restarted in the same place",
                    "(a crash, an OOM kill, a failed liveness probe)."],
        "expr": "changes(process_start_time_seconds{{sel}}[15m]) > 0",
        "summary": "{env}: an api process restarted.",
        "description": "{who} in {where} restarted {{ $value }} times in the last 15 minutes.",
    },
]


# ---- Writing rule files ----------------------------------------------------

def selector(job, environment=None, *extra):
    matchers = [f'job="{job}"']
    if environment is not None:
        matchers.append(f'namespace="{environment.namespace}"')
    return ",".join([*matchers, *extra])


def sli_selector(job):
    return selector(job, None, 'route!~"{}"'.format("|".join(re.escape(r) for r in PROBE_ROUTES)))


def fill(promql, sel, window=None):
    promql = promql.replace("{sel}", sel)
    return promql.replace("{w}", window) if window else promql


def duration_words(duration):
    number, unit = int(duration[:-1]), {"m": "minute", "h": "hour", "d": "day"}[duration[-1]]
    return f"{number} {unit}{'s' if number != 1 else ''}"


def percent(ratio):
    return f"{ratio * 100:g}%"


def block(key, text, indent, folded=False):
    """`key: |` (or `>-`, wrapped) and `text` as a YAML block scalar."""
    pad = " " * (indent + 2)
    if folded:
        # Never break inside a {{ template }}: its spaces become NBSPs while wrapping.
        text = re.sub(r"\{\{.*?\}\}", lambda m: m.group(0).replace(" ", "\xa0"), text)
        lines = textwrap.wrap(text, width=110 - len(pad), break_long_words=False, break_on_hyphens=False)
        return [f"{' ' * indent}{key}: >-", *(pad + line.replace("\xa0", " ") for line in lines)]
    return [f"{' ' * indent}{key}: |", *(pad + line if line else "" for line in text.splitlines())]


def scalar(value):
    """A label value as a YAML scalar: plain where that reads the same."""
    return value if re.fullmatch(r"[A-Za-z][A-Za-z0-9_./-]*", value) else json.dumps(value)


def rule_lines(rule):
    """One rule of a group (a dict in the order Prometheus documents)."""
    out = [f"      # {line}" for line in rule.get("comment", [])]
    kind = "record" if "record" in rule else "alert"
    out.append(f"      - {kind}: {rule[kind]}")
    out += block("expr", rule["expr"], 8)
    if rule.get("for"):
        out.append(f"        for: {rule['for']}")
    if rule.get("labels"):
        out.append("        labels:")
        out += [f"          {key}: {scalar(value)}" for key, value in rule["labels"].items()]
    if rule.get("annotations"):
        out.append("        annotations:")
        for key, value in rule["annotations"].items():
            out += [f"          {key}: {value}"] if key == "runbook_url" else block(key, value, 10, folded=True)
    return out


def rule_file(header, groups):
    """A rule file: header comment lines, then (name, comment, rules) groups."""
    out = ["# GENERATED by deploy/monitoring/generate.py: edit that, then run it.", "#",
           *(f"# {line}" if line else "#" for line in header),
           "# Expressions and templates are as long as they are:",
           "# yamllint disable rule:line-length", "groups:"]
    for i, (name, comment, rules) in enumerate(groups):
        if i:
            out.append("")
        out += [f"  # {line}" for line in comment]
        out += [f"  - name: {name}", "    rules:"]
        for rule in rules:
            out += rule_lines(rule)
    return "\n".join(out) + "\n"


def runbook(alert):
    return f"{RUNBOOKS}#{alert.lower()}"


def route_rules(job):
    """rules/api.rules.yml: per-route rate, bad-answer ratio, quantiles."""
    sel = selector(job)
    quantiles = [{
        "record": "namespace_job_route_quantile:http_request_duration_seconds:histogram_quantile",
        "expr": f"histogram_quantile({q},\n  sum by (namespace, job, route, le) "
                f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
        "labels": {"quantile": q},
    } for q in ("0.99", "0.5")]
    rules = [
        {"record": "namespace_job_route:http_requests:rate5m",
         "expr": f"sum by (namespace, job, route) (rate(http_requests_total{{{sel}}}[5m]))"},
        {"record": "namespace_job_route:http_requests_errors:ratio_rate5m",
         "expr": "(\n"
                 f'  sum by (namespace, job, route) (rate(http_requests_total{{{sel},status=~"5..|408"}}[5m]))\n'
                 "  or 0 * namespace_job_route:http_requests:rate5m\n"
                 ")\n/ namespace_job_route:http_requests:rate5m"},
        *quantiles,
    ]
    return rule_file(
        ["Per-route recording rules for the dashboard (Prometheus 2.x rule file).",
         "",
         "Names follow level:metric:operations; the level lists the labels kept.",
         f'Every rule selects job="{job}" (JOB in the generator). `namespace` is kept,',
         "so that one Prometheus can watch several environments apart.",
         "Ratios say 0, not \"no data\", when nothing failed: `or 0 * <denominator>`",
         "gives every series that has traffic a zero, with the same labels.",
         "A bad answer is a 5xx or a 408 (the server's own request timeout)."],
        [("api.rules", [], rules)])


def ratio_expr(slo, sel, window):
    bad, total = fill(slo["bad"], sel, window), fill(slo["total"], sel, window)
    return f"(\n{textwrap.indent(bad, '  ')}\n  or 0 * {total}\n)\n/ {total}"


def budget_of(slo):
    return round(1 - slo["objective"], 6)


def slo_recording_rules(job):
    sel = sli_selector(job)
    windows = [{"record": f"namespace_job:{slo['record']}:ratio_rate{w}", "expr": ratio_expr(slo, sel, w)}
               for slo in SLOS for w in WINDOWS]
    period = []
    for slo in SLOS:
        only = {"slo": slo["name"]}
        match = f'{{slo="{slo["name"]}"}}'
        bad, total = fill(slo["bad"], sel, "5m"), fill(slo["total"], sel, "5m")
        period += [
            {"record": "namespace_job_slo:sli_events:rate5m", "expr": total, "labels": only},
            {"record": "namespace_job_slo:sli_bad:rate5m", "expr": f"{bad}\nor 0 * {total}", "labels": only},
            {"record": f"namespace_job_slo:sli_bad:ratio_rate{PERIOD}",
             "expr": f"sum_over_time(namespace_job_slo:sli_bad:rate5m{match}[{PERIOD}])\n"
                     f"/ sum_over_time(namespace_job_slo:sli_events:rate5m{match}[{PERIOD}])",
             "labels": only},
            {"record": "namespace_job_slo:error_budget_remaining:ratio",
             "expr": f"1 - namespace_job_slo:sli_bad:ratio_rate{PERIOD}{match} / {budget_of(slo)}",
             "labels": only},
        ]
    return windows, period


def burn_alerts(environment, job):
    alerts = []
    for slo in SLOS:
        budget = budget_of(slo)
        for kind, hold, suffix, pairs in BURN_ALERTS:
            name = slo["alert"] + suffix
            for long, short, rate in pairs:
                threshold = f"({rate:g} * {budget:g})"
                sel = selector(job, environment)
                days = f"about {round(PERIOD_DAYS / rate)} days"
                alerts.append({
                    "alert": name,
                    "expr": f"namespace_job:{slo['record']}:ratio_rate{long}{{{sel}}} > {threshold}\nand\n"
                            f"namespace_job:{slo['record']}:ratio_rate{short}{{{sel}}} > {threshold}",
                    "for": hold,
                    "labels": {"severity": getattr(environment, kind), "slo": slo["name"],
                               "long": long, "short": short},
                    "annotations": {
                        "summary": f"{environment.name}: the {slo['name']} error budget burns over {rate:g}x "
                                   f"the sustainable pace, over {long} and {short}; at that pace it is gone in {days}.",
                        "description": "{{ $value | humanizePercentage }} of requests in "
                                       f"{environment.where} were bad over the last {long}, and over "
                                       f"{percent(rate * budget)} over the last {short}: over {rate:g}x the "
                                       f"{percent(budget)} that lasts {PERIOD_DAYS} days. SLO: {slo['statement']}.",
                        "runbook_url": runbook(name),
                    },
                })
    return alerts


def slo_rules(job):
    """rules/api-slo.rules.yml, as text."""
    windows, period = slo_recording_rules(job)
    groups = [
        ("api-slo.rules", ["Each SLO's bad-request ratio over every window its alerts use."], windows),
        ("api-slo.period",
         [f"The {PERIOD} figures (sloth's way: from the recorded 5m rates, not a {PERIOD} range",
          "over raw counters at every evaluation), weighted by traffic. They cover only the",
          f"data Prometheus keeps: its retention must be {PERIOD} or more (Prometheus keeps 15d",
          "by default, kube-prometheus-stack 10d)."],
         period),
    ]
    for environment in ENVIRONMENTS:
        groups.append((f"api-slo.alerts.{environment.name}",
                       [f"{environment.name}: pages at {environment.page}, tickets at {environment.ticket}."],
                       burn_alerts(environment, job)))
    return rule_file(
        ["The SLOs, over 30 days:",
         *(line for slo in SLOS for line in textwrap.wrap(
             f"{slo['name']}: {slo['statement']}.", width=90, initial_indent="  ", subsequent_indent="    ")),
         "Recording rules give each SLO's bad-request ratio over every window the",
         "alerts use; the alerts fire when the budget burns fast over both a long",
         "and a short window (Google SRE workbook, chapter 5), one alert per window",
         "pair (labels long, short) and per environment (ENVIRONMENTS in the generator)."],
        groups)


def process_alerts(environment, job):
    alerts = []
    for spec in PROCESS_ALERTS:
        values = {"env": environment.name, "where": environment.where, "who": WHO,
                  "threshold": spec.get("threshold"),
                  "for": duration_words(spec["for"]) if spec.get("for") else ""}
        labels = {"severity": getattr(environment, spec["kind"])}
        if spec["expr"].startswith("absent("):
            # absent() keeps no label: say which environment and job it is.
            labels = {"namespace": environment.namespace, "job": job, **labels}
        alerts.append({
            "comment": spec.get("comment", []),
            "alert": spec["alert"],
            "expr": fill(spec["expr"], selector(job, environment)).replace("{threshold}", f"{spec.get('threshold')}"),
            "for": spec.get("for"),
            "labels": labels,
            "annotations": {"summary": format_keeping_templates(spec["summary"], values),
                            "description": format_keeping_templates(spec["description"], values),
                            "runbook_url": runbook(spec["alert"])},
        })
    return alerts


def format_keeping_templates(text, values):
    """str.format for our `{name}` fields, leaving Prometheus' `{{ ... }}`
    templates alone."""
    parts = re.split(r"(\{\{.*?\}\})", text)
    return "".join(part if part.startswith("{{") else part.format_map(values) for part in parts)


def alert_rules(job):
    """rules/api.alerts.yml, as text."""
    return rule_file(
        ["Alerts on the api's process, not on its SLOs (those are in api-slo.rules.yml).",
         "One copy per environment (ENVIRONMENTS in the generator), each selecting only",
         "its namespace, with that environment's severity: a page (critical in",
         "production) or a ticket. Every alert links its section of docs/runbooks.md."],
        [(f"api.alerts.{environment.name}",
          [f"{environment.name}: pages at {environment.page}, tickets at {environment.ticket}."],
          process_alerts(environment, job)) for environment in ENVIRONMENTS])


def rule_files(job):
    return {"api.rules.yml": route_rules(job), "api-slo.rules.yml": slo_rules(job),
            "api.alerts.yml": alert_rules(job)}


# What the unit tests in tests/ are written with; --out retargets them to
# the job and runbook address the rules are written with.
TESTS_JOB = "api"
TESTS_RUNBOOKS = "https://github.com/OWNER/REPO/blob/main/docs/runbooks.md"


def retarget_tests(text, job):
    """A unit test written for TESTS_JOB and TESTS_RUNBOOKS, for `job` and
    RUNBOOKS instead."""
    text = text.replace(f'job="{TESTS_JOB}"', f'job="{job}"').replace(TESTS_RUNBOOKS, RUNBOOKS)
    return re.sub(rf"\bjob: {re.escape(TESTS_JOB)}(?=[,}}\s])", "job: " + json.dumps(job), text)


# ---- the dashboard -------------------------------------------------------

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
FILTER = 'job=~"$job",namespace=~"$namespace"'


def target(expr, legend, ref):
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(kind, title, description, exprs, grid, unit="short", **options):
    """A panel; `exprs` are (PromQL, legend) pairs. Stats and tables query
    one instant only: a range query would recompute them at every step."""
    targets = [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(exprs)]
    if kind in ("stat", "table"):
        for t in targets:
            t.update({"instant": True, "range": False})
    if kind == "table":
        for t in targets:
            t["format"] = "table"
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": dict(zip("xywh", grid)),
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **options.pop("defaults", {})}, "overrides": []},
        "options": options,
    }


def row(title, y):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def query_variable(name, label, query, **options):
    """A dashboard variable whose values come from a Prometheus query."""
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
            "current": {}, "hide": 0, **options}


RETENTION_NOTE = (f"It covers the data Prometheus keeps: with less than {PERIOD} of retention "
                  "(Prometheus keeps 15d by default, kube-prometheus-stack 10d) it is the budget of "
                  "those days only; \"Data behind it\" says how much there is.")


def dashboard():
    panels, y = [], 0
    panels.append(row(f"SLOs ({PERIOD_DAYS} days)", y))
    y += 1
    for i, slo in enumerate(SLOS):
        budget = budget_of(slo)
        only = f'{FILTER},slo="{slo["name"]}"'
        panels.append(panel(
            "stat", f"{slo['name'].capitalize()} error budget left",
            f"SLO: {slo['statement']}. Share of the {PERIOD_DAYS}-day error budget not yet spent "
            f"(below 0: SLO missed), from namespace_job_slo:error_budget_remaining:ratio. {RETENTION_NOTE}",
            [(f"namespace_job_slo:error_budget_remaining:ratio{{{only}}}", "{{namespace}}")],
            (i * 12, y, 4, 5), "percentunit",
            defaults={"thresholds": {"mode": "absolute", "steps": [
                {"color": "red", "value": None}, {"color": "orange", "value": 0}, {"color": "green", "value": 0.25}]}},
            reduceOptions={"calcs": ["lastNotNull"]}))
        panels.append(panel(
            "stat", "Data behind it",
            f"How much of the {PERIOD_DAYS} days the budget figure rests on: the samples recorded "
            f"over {PERIOD} against the {PERIOD_DAYS * 24} hours' worth the last hour's pace would "
            f"give. Below 100%, Prometheus' retention is shorter than {PERIOD}, or the SLO's "
            "recording rules (or the service) are younger.",
            [(f"clamp_max(count_over_time(namespace_job_slo:sli_events:rate5m{{{only}}}[{PERIOD}])\n"
              f"  / (count_over_time(namespace_job_slo:sli_events:rate5m{{{only}}}[1h]) * {PERIOD_DAYS * 24}), 1)",
              "{{namespace}}")],
            (i * 12 + 4, y, 2, 5), "percentunit", reduceOptions={"calcs": ["lastNotNull"]}))
        panels.append(panel(
            "timeseries", f"{slo['name'].capitalize()} burn rate",
            "How many times faster than sustainable the budget burns. Pages at 14.4x (1h and 5m) "
            "and 6x (6h and 30m); tickets at 3x (1d and 2h) and 1x (3d and 6h).",
            [(f"namespace_job:{slo['record']}:ratio_rate{window}{{{FILTER}}} / {budget}",
              f"{{{{namespace}}}} {window}") for window in ("5m", "1h", "6h", "3d")],
            (i * 12 + 6, y, 6, 5), "x"))
    y += 5
    panels.append(row("Traffic", y))
    y += 1
    panels += [
        panel("timeseries", "Requests per second, by route", "Answered requests, 5-minute rate.",
              [(f"sum by (namespace, route) (namespace_job_route:http_requests:rate5m{{{FILTER}}})",
                "{{namespace}} {{route}}")],
              (0, y, 8, 7), "reqps"),
        panel("timeseries", "Bad answers (5xx, 408), share by route",
              "Share of answers that are a 5xx or the request timeout's 408, 5-minute rate.",
              [(f"max by (namespace, route) (namespace_job_route:http_requests_errors:ratio_rate5m{{{FILTER}}})",
                "{{namespace}} {{route}}")],
              (8, y, 8, 7), "percentunit"),
        panel("timeseries", "Latency p50 and p99, by route", "Time to answer, measured in the process (5-minute window).",
              [(f'max by (namespace, route) (namespace_job_route_quantile:http_request_duration_seconds:histogram_quantile{{{FILTER},quantile="0.99"}})',
                "p99 {{namespace}} {{route}}"),
               (f'max by (namespace, route) (namespace_job_route_quantile:http_request_duration_seconds:histogram_quantile{{{FILTER},quantile="0.5"}})',
                "p50 {{namespace}} {{route}}")],
              (16, y, 8, 7), "s"),
    ]
    y += 7
    panels += [
        panel("timeseries", "Answers by status", "Every answer, 4xx included.",
              [(f"sum by (namespace, status) (rate(http_requests_total{{{FILTER}}}[$__rate_interval]))",
                "{{namespace}} {{status}}")],
              (0, y, 8, 7), "reqps"),
        panel("timeseries", "Requests in flight", "Requests being answered now, per instance.",
              [(f"http_requests_in_flight{{{FILTER}}}", "{{namespace}} {{instance}}")], (8, y, 8, 7)),
        panel("timeseries", "Open connections and their limit",
              "Client connections per instance, against --max-connections; waits at the limit and accept errors.",
              [(f"http_connections_open{{{FILTER}}}", "open {{namespace}} {{instance}}"),
               (f"http_connections_limit{{{FILTER}}}", "limit {{namespace}} {{instance}}"),
               (f"increase(http_connections_limit_reached_total{{{FILTER}}}[$__rate_interval])",
                "limit reached {{namespace}} {{instance}}"),
               (f"increase(http_accept_errors_total{{{FILTER}}}[$__rate_interval])",
                "accept errors {{namespace}} {{instance}}")],
              (16, y, 8, 7)),
    ]
    y += 7
    panels.append(row("Process", y))
    y += 1
    panels += [
        panel("timeseries", "Resident memory and the container's limit", "RSS per instance; the limit is the cgroup's.",
              [(f"process_resident_memory_bytes{{{FILTER}}}", "RSS {{namespace}} {{instance}}"),
               (f"api_memory_limit_bytes{{{FILTER}}}", "limit {{namespace}} {{instance}}")],
              (0, y, 6, 7), "bytes"),
        panel("timeseries", "CPU", "Cores used per instance.",
              [(f"rate(process_cpu_seconds_total{{{FILTER}}}[$__rate_interval])", "{{namespace}} {{instance}}")],
              (6, y, 6, 7), "short"),
        panel("timeseries", "File descriptors", "Open descriptors against the (raised) open-files limit.",
              [(f"process_open_fds{{{FILTER}}}", "open {{namespace}} {{instance}}"),
               (f"process_max_fds{{{FILTER}}}", "limit {{namespace}} {{instance}}")],
              (12, y, 6, 7)),
        panel("table", "Versions running", "Instances per namespace, version and git revision (api_build_info).",
              [(f"count by (namespace, version, revision) (api_build_info{{{FILTER}}})", "")],
              (18, y, 6, 7), "short", showHeader=True),
    ]
    return {
        "uid": "api-overview",
        "title": "api",
        "description": f"The api's SLOs, traffic and process (deploy/monitoring/generate.py). {RETENTION_NOTE}",
        "tags": ["api"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            query_variable("job", "Job", "label_values(api_build_info, job)"),
            # Absent outside Kubernetes: "All" is `.*`, which matches no label too.
            query_variable("namespace", "Namespace", 'label_values(api_build_info{job=~"$job"}, namespace)',
                           includeAll=True, allValue=".*"),
        ]},
        "panels": [dict(p, id=i + 1) for i, p in enumerate(panels)],
    }


# ---- Kubernetes ---------------------------------------------------------

def indent(text, spaces):
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def prometheus_rule(rule_texts):
    """One PrometheusRule holding the groups of every rule file, given as
    (name, text) pairs, comments and all."""
    groups = []
    for name, text in rule_texts:
        body = text[text.index("\ngroups:\n") + len("\ngroups:\n"):]
        groups.append(f"    # from deploy/monitoring/rules/{name}\n" + indent(body.rstrip("\n"), 2))
    return (
        "# GENERATED by deploy/monitoring/generate.py from deploy/monitoring/rules/: edit that.\n"
        "# Applied once per cluster (deploy/k8s/monitoring/): the rules cover every\n"
        "# environment the generator lists, each alert selecting its own namespace.\n"
        "# Their expressions and templates are as long as they are:\n"
        "# yamllint disable rule:line-length\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: api\n"
        "spec:\n"
        "  groups:\n" + "\n".join(groups) + "\n"
    )


def dashboard_configmap(dashboard_json):
    return (
        "# GENERATED by deploy/monitoring/generate.py: the dashboard of\n"
        "# deploy/monitoring/dashboards/api.json, for Grafana's dashboard sidecar.\n"
        "# Its JSON strings (queries, descriptions) are as long as they are:\n"
        "# yamllint disable rule:line-length\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: api-grafana-dashboard\n"
        "  labels:\n"
        '    grafana_dashboard: "1"\n'
        "data:\n"
        "  api.json: |\n" + indent(dashboard_json.rstrip("\n"), 4) + "\n"
    )


def outputs():
    """Every generated file of the repository and its text."""
    rules = rule_files(JOB)
    dashboard_json = json.dumps(dashboard(), indent=2) + "\n"
    return {
        **{RULES / name: text for name, text in rules.items()},
        HERE / "dashboards/api.json": dashboard_json,
        CLUSTER / "prometheusrule.yaml": prometheus_rule(sorted(rules.items())),
        CLUSTER / "grafana-dashboard.yaml": dashboard_configmap(dashboard_json),
    }


def write_for_tests(out, job):
    """The rules for `job` and the unit tests retargeted to it, in `out`."""
    if not re.fullmatch(r'[^"\\\n]+', job):
        raise SystemExit(f"job {job!r}: quotes, backslashes and newlines are not supported")
    for name, text in rule_files(job).items():
        (out / "rules").mkdir(parents=True, exist_ok=True)
        (out / "rules" / name).write_text(text)
    if (out / "tests").exists():
        shutil.rmtree(out / "tests")
    (out / "tests").mkdir(parents=True)
    for test in sorted(TESTS.glob("*.yml")):
        (out / "tests" / test.name).write_text(retarget_tests(test.read_text(), job))
    print(f"wrote the rules and unit tests for job {job!r} into {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file differs from what is on disk")
    parser.add_argument("--out", type=Path, help="write the rules and unit tests here instead (for promtool)")
    parser.add_argument("--job", default=JOB, help="with --out: the scrape job to write them for (default: JOB)")
    args = parser.parse_args()
    if args.out:
        write_for_tests(args.out, args.job)
        return 0
    if args.job != JOB:
        parser.error("--job needs --out: the repository's files follow JOB in the generator")
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"stale: {path} (run python3 deploy/monitoring/generate.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
