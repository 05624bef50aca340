"""Checks on rendered manifests (`kubectl kustomize` output) that a schema
cannot make; scripts/validate-deploy.sh runs them. Each prints why it
fails and exits 1; PyYAML is its one dependency.

    checks.py replicas RENDERED        no `replicas` in a Deployment an HPA scales
    checks.py probes RENDERED          liveness on /livez (metrics), readiness on /healthcheck (http)
    checks.py stop RENDERED            terminationGracePeriodSeconds covers preStop + drain + margin
    checks.py readiness-gate RENDERED  the namespace asks the AWS Load Balancer Controller for readiness gates
    checks.py metrics-from RENDERED NS the metrics port admits the namespace NS only (and node subnets)
    checks.py once RENDERED...         each environment's rules once, one dashboard, one scrape per namespace
    checks.py environments RENDERED... each namespace's rules are those of the environment its pods carry
    checks.py release RENDERED...      every Prometheus Operator object has the same `release` label
    checks.py tracing RENDERED         the OTLP endpoint is reachable through the NetworkPolicy, $(VARS) defined first
    checks.py selftest RENDERED CLUSTER NS
        breaks RENDERED (an overlay with its monitoring component) and
        CLUSTER (deploy/k8s/monitoring) in each way a check above exists to
        catch, and requires each break to fail its check
"""

import copy
import ipaddress
import re
import sys
import tempfile
from pathlib import Path

import yaml

# Seconds left for the process to exit after its drain: its last log lines.
EXIT_MARGIN_SECONDS = 5
# The shortest preStop sleep that lets the AWS Load Balancer Controller's IP
# targets go before SIGTERM (25 s to 60 s reported; kube-proxy and
# ingress-nginx need seconds): base/deployment.yaml has the arithmetic.
MIN_PRESTOP_SECONDS = 60
METRICS_PORT = 9000
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"


def objects(path):
    with open(path) as f:
        return [o for o in yaml.safe_load_all(f) if o]


def of_kind(docs, kind):
    return [o for o in docs if o["kind"] == kind]


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def seconds(duration):
    """A Go duration as the server takes them (5s, 500ms, 1m) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)


def fail(reason):
    print(f"     {reason}")
    return 1


def replicas(path):
    docs = objects(path)
    scaled = {(h["metadata"].get("namespace"), h["spec"]["scaleTargetRef"]["name"])
              for h in of_kind(docs, "HorizontalPodAutoscaler")
              if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"}
    if not scaled:
        return fail("no HorizontalPodAutoscaler scales a Deployment here")
    bad = [d["metadata"]["name"] for d in of_kind(docs, "Deployment")
           if (d["metadata"].get("namespace"), d["metadata"]["name"]) in scaled and "replicas" in d["spec"]]
    return fail(f"Deployment {', '.join(bad)}: sets `replicas`, which its HPA owns") if bad else 0


def probes(path):
    failures = 0
    for deployment in of_kind(objects(path), "Deployment"):
        for container in containers(deployment):
            for probe, want in (("livenessProbe", ("/livez", "metrics")), ("startupProbe", ("/livez", "metrics")),
                                ("readinessProbe", ("/healthcheck", "http"))):
                get = container.get(probe, {}).get("httpGet", {})
                if (get.get("path"), get.get("port")) != want:
                    failures += fail(f"{container['name']}: {probe} is {get.get('path')} on {get.get('port')}, "
                                     f"expected {want[0]} on {want[1]}")
    return 1 if failures else 0


def stop(path):
    failures = 0
    for deployment in of_kind(objects(path), "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for container in containers(deployment):
            sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            drain = seconds(env.get("API_SHUTDOWN_TIMEOUT", "5s"))
            needed = sleep + drain + EXIT_MARGIN_SECONDS
            print(f"     {container['name']}: preStop {sleep} s + drain {drain:g} s + margin "
                  f"{EXIT_MARGIN_SECONDS} s = {needed:g} s; terminationGracePeriodSeconds {grace}")
            if grace < needed:
                failures += fail("the grace period ends before the pod has stopped: SIGKILL mid-drain")
            if sleep < MIN_PRESTOP_SECONDS:
                failures += fail(f"preStop sleeps {sleep} s, under {MIN_PRESTOP_SECONDS} s: load balancers "
                                 "may still send requests when SIGTERM comes")
    return 1 if failures else 0


def readiness_gate(path):
    namespaces = of_kind(objects(path), "Namespace")
    if not namespaces:
        return fail("no Namespace here")
    bad = [n["metadata"]["name"] for n in namespaces
           if n["metadata"].get("labels", {}).get(READINESS_GATE_LABEL) != "enabled"]
    return fail(f"namespace {', '.join(bad)}: no `{READINESS_GATE_LABEL}: enabled`, so a rollout behind "
                "the AWS Load Balancer Controller may stop old pods before the new ones are healthy targets") \
        if bad else 0


def admits_metrics_port(rule):
    """Whether an ingress rule's ports include the metrics port: a rule with
    no ports admits every port; so does a port entry without a port; and
    a numeric port with an endPort admits the range."""
    ports = rule.get("ports") or []
    if not ports:
        return True
    for entry in ports:
        port = entry.get("port")
        if port is None or port in ("metrics", METRICS_PORT):
            return True
        if isinstance(port, int) and port <= METRICS_PORT <= entry.get("endPort", port):
            return True
    return False


def peer_is_allowed(peer, namespace):
    """A peer the metrics port may admit: the namespace `namespace`
    (narrowed by a podSelector or more labels, or not), or an address block
    short of everything (the nodes' subnets, for the kubelet's probes)."""
    if "ipBlock" in peer:
        return ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False).prefixlen > 0
    wanted = {"kubernetes.io/metadata.name": namespace}
    labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return "namespaceSelector" in peer and wanted.items() <= labels.items()


def metrics_from(path, namespace):
    failures = 0
    policies = of_kind(objects(path), "NetworkPolicy")
    if not policies:
        return fail("no NetworkPolicy: the metrics port is open to the whole cluster")
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if not admits_metrics_port(rule):
                continue
            peers = rule.get("from") or []
            bad = [peer for peer in peers if not peer_is_allowed(peer, namespace)]
            if not peers or bad:
                failures += fail(f"NetworkPolicy {policy['metadata']['name']}: the metrics port admits "
                                 f"{bad or 'anyone'}, not only namespace {namespace}")
            for peer in peers:
                if "ipBlock" in peer and not bad:
                    print(f"     the metrics port also admits {peer['ipBlock']['cidr']} (the nodes, for probes)")
    return 1 if failures else 0


def rule_environment(rule):
    """The environment a PrometheusRule's groups are for (their names end
    in `.<environment>`), or None if they disagree."""
    names = {g["name"].rsplit(".", 1)[-1] for g in rule["spec"]["groups"]}
    return names.pop() if len(names) == 1 else None


def once(*paths):
    """Across everything a cluster gets: each environment's rules once, one
    dashboard, each namespace scraped by one PodMonitor or ServiceMonitor."""
    docs = [o for p in paths for o in objects(p)]
    failures = 0
    rules = of_kind(docs, "PrometheusRule")
    if not rules:
        failures += fail("no PrometheusRule at all")
    environments = [rule_environment(r) for r in rules]
    if None in environments or len(environments) != len(set(environments)):
        failures += fail(f"PrometheusRules per environment: {environments}: each environment's rules must be "
                         "loaded exactly once (twice, every alert fires twice)")
    for rule in rules:
        groups = [g["name"] for g in rule["spec"]["groups"]]
        if len(groups) != len(set(groups)):
            failures += fail(f"rule groups named twice: {sorted(g for g in set(groups) if groups.count(g) > 1)}")
    dashboards = [c for c in of_kind(docs, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard")]
    if len(dashboards) != 1:
        failures += fail(f"{len(dashboards)} dashboard ConfigMaps: Grafana would load the dashboard that often")
    scrapes = [(o["kind"], o["metadata"].get("namespace")) for o in docs if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    if len(scrapes) != len(set(scrapes)) or not scrapes:
        failures += fail(f"scrape objects per namespace: {scrapes}")
    return 1 if failures else 0


def environments(*paths):
    """Each namespace's PrometheusRule is for the environment its pods are
    labelled with (the label the scrape copies onto their series), and
    selects that environment only."""
    docs = [o for p in paths for o in objects(p)]
    failures = 0
    pods = {d["metadata"].get("namespace"): d["spec"]["template"]["metadata"].get("labels", {}).get("environment")
            for d in of_kind(docs, "Deployment")}
    for rule in of_kind(docs, "PrometheusRule"):
        namespace, environment = rule["metadata"].get("namespace"), rule_environment(rule)
        print(f"     namespace {namespace}: pods of environment {pods.get(namespace)}, rules for {environment}")
        if pods.get(namespace) != environment:
            failures += fail(f"PrometheusRule {rule['metadata']['name']} in {namespace}: rules for {environment}, "
                             f"beside pods of environment {pods.get(namespace)}")
        selected = {m for g in rule["spec"]["groups"] for r in g["rules"]
                    for m in re.findall(r'environment="([^"]*)"', r["expr"])}
        if selected != {environment}:
            failures += fail(f"PrometheusRule {rule['metadata']['name']}: selects environments {sorted(selected)}")
    return 1 if failures else 0


def release(*paths):
    docs = [o for p in paths for o in objects(p)]
    operator = [o for o in docs if o["apiVersion"].startswith("monitoring.coreos.com/")]
    labels = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")):
              o["metadata"].get("labels", {}).get("release") for o in operator}
    values = set(labels.values())
    print(f"     release labels: {sorted(map(str, values))} on {len(operator)} Operator objects")
    if None in values or len(values) != 1:
        return fail(f"kube-prometheus-stack selects by one `release` label: {labels}")
    return 0


def egress_allows(policies, namespace, port, protocol="TCP"):
    """Whether an egress rule of `policies` admits `port` to pods of `namespace`."""
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            ports = {(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", [])}
            peers = [peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                     for peer in rule.get("to", [])]
            if (port, protocol) in ports and namespace in peers:
                return True
    return False


def tracing(path):
    """With an OTLP endpoint set (deploy/k8s/components/tracing): the base
    NetworkPolicy denies all egress, so the collector's namespace and port,
    and the cluster DNS that resolves its name, must be let through; and
    every $(NAME) in a variable's value must name one defined before it
    (Kubernetes leaves any other as literal text, silently)."""
    docs = objects(path)
    policies = [p for p in of_kind(docs, "NetworkPolicy") if "Egress" in p["spec"].get("policyTypes", [])]
    failures = endpoints = 0
    for deployment in of_kind(docs, "Deployment"):
        for container in containers(deployment):
            defined = set()
            env = {}
            for variable in container.get("env", []):
                for used in re.findall(r"\$\((\w+)\)", variable.get("value", "")):
                    if used not in defined:
                        failures += fail(f"{container['name']}: {variable['name']} uses $({used}), not defined before it")
                defined.add(variable["name"])
                env[variable["name"]] = variable.get("value", "")
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            if not endpoint:
                continue
            endpoints += 1
            match = re.fullmatch(r"http://([\w-]+)\.([\w-]+)\.svc(?:\.cluster\.local)?:(\d+)(/.*)?", endpoint)
            if not match:
                failures += fail(f"{container['name']}: {endpoint} is not http://SERVICE.NAMESPACE.svc:PORT, "
                                 "which this check (and the component's NetworkPolicy) knows how to allow")
                continue
            namespace, port = match.group(2), int(match.group(3))
            print(f"     {container['name']}: spans to {endpoint}")
            if policies and not egress_allows(policies, namespace, port):
                failures += fail(f"no egress rule lets the pods reach namespace {namespace} on port {port}")
            if policies and not egress_allows(policies, "kube-system", 53, "UDP"):
                failures += fail("no egress rule lets the pods ask the cluster DNS (kube-system, 53/UDP)")
    if not endpoints:
        failures += fail("no container has OTEL_EXPORTER_OTLP_ENDPOINT: traces are off")
    return 1 if failures else 0



# ---- selftest: every check catches what it exists for ----------------------

def first(docs, kind):
    return of_kind(docs, kind)[0]


def container(docs):
    return containers(first(docs, "Deployment"))[0]


def policy_rules(docs):
    return first(docs, "NetworkPolicy")["spec"]["ingress"]


def break_(name, check, edit, *, cluster=False):
    return name, check, edit, cluster


BREAKS = [
    break_("a `replicas` under the HPA", "replicas", lambda d: first(d, "Deployment")["spec"].update(replicas=3)),
    break_("liveness on the API port", "probes",
           lambda d: container(d)["livenessProbe"]["httpGet"].update(path="/healthcheck", port="http")),
    break_("startup on the API port", "probes",
           lambda d: container(d)["startupProbe"]["httpGet"].update(port="http")),
    break_("readiness on the metrics port", "probes",
           lambda d: container(d)["readinessProbe"]["httpGet"].update(path="/livez", port="metrics")),
    break_("a grace period shorter than the stop sequence", "stop",
           lambda d: first(d, "Deployment")["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=40)),
    break_("a 30 s preStop", "stop", lambda d: container(d)["lifecycle"]["preStop"]["sleep"].update(seconds=30)),
    break_("no readiness-gate label on the namespace", "readiness-gate",
           lambda d: first(d, "Namespace")["metadata"]["labels"].pop(READINESS_GATE_LABEL)),
    break_("a rule without ports, from every namespace", "metrics-from",
           lambda d: policy_rules(d).append({"from": [{"namespaceSelector": {}}]})),
    break_("a rule with a port range over 9000, from anywhere", "metrics-from",
           lambda d: policy_rules(d).append({"ports": [{"port": 8000, "endPort": 9100, "protocol": "TCP"}]})),
    break_("a port entry without a port (every port), from this namespace", "metrics-from",
           lambda d: policy_rules(d).append({"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP"}]})),
    break_("the metrics port from every namespace", "metrics-from",
           lambda d: policy_rules(d)[1]["from"].append({"namespaceSelector": {}})),
    break_("the metrics port from 0.0.0.0/0", "metrics-from",
           lambda d: policy_rules(d)[1]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}})),
    break_("the metrics port from anyone (no `from`)", "metrics-from", lambda d: policy_rules(d)[1].pop("from")),
    break_("no NetworkPolicy", "metrics-from", lambda d: d.remove(first(d, "NetworkPolicy"))),
    break_("the environment's rules twice", "once", lambda d: d.append(copy.deepcopy(first(d, "PrometheusRule")))),
    break_("a second PodMonitor in the namespace", "once",
           lambda d: d.append(dict(copy.deepcopy(first(d, "PodMonitor")), metadata={
               **first(d, "PodMonitor")["metadata"], "name": "api-again"}))),
    break_("the dashboard twice", "once",
           lambda d: d.append(copy.deepcopy(first(d, "ConfigMap"))), cluster=True),
    break_("pods of another environment than the rules", "environments",
           lambda d: first(d, "Deployment")["spec"]["template"]["metadata"]["labels"].update(environment="other")),
    break_("rules that select another environment", "environments",
           lambda d: first(d, "PrometheusRule")["spec"]["groups"][0]["rules"][0].update(
               expr='up{environment="other"}')),
    break_("another release label on the PrometheusRule", "release",
           lambda d: first(d, "PrometheusRule")["metadata"]["labels"].update(release="other")),
]


def selftest(rendered, cluster, namespace):
    checks = {"replicas": lambda p, _: replicas(p), "probes": lambda p, _: probes(p), "stop": lambda p, _: stop(p),
              "readiness-gate": lambda p, _: readiness_gate(p), "metrics-from": lambda p, _: metrics_from(p, namespace),
              "once": once, "environments": environments, "release": release}
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted({b[1] for b in BREAKS}):
            if checks[name](rendered, cluster) != 0:
                print(f"FAIL {name}: fails on the manifests as they are")
                failures += 1
        for i, (what, name, edit, on_cluster) in enumerate(BREAKS):
            docs = objects(cluster if on_cluster else rendered)
            edit(docs)
            broken = Path(scratch, f"{i}.yaml")
            broken.write_text(yaml.safe_dump_all(docs))
            args = (rendered, broken) if on_cluster else (broken, cluster)
            caught = checks[name](*args) != 0
            failures += not caught
            print(f"{'ok  ' if caught else 'FAIL'} {name} fails on: {what}")
    print(f"\n{len(BREAKS) - failures} of {len(BREAKS)} breaks caught")
    return 1 if failures else 0


CHECKS = {"replicas": replicas, "probes": probes, "stop": stop, "readiness-gate": readiness_gate,
          "metrics-from": metrics_from, "once": once, "environments": environments, "release": release,
          "tracing": tracing, "selftest": selftest}

if __name__ == "__main__":
    sys.exit(CHECKS[sys.argv[1]](*sys.argv[2:]))
