"""Checks on rendered manifests (`kubectl kustomize` output) that a schema
cannot make; scripts/validate-deploy.sh runs them. Each prints why it
fails and exits 1; PyYAML is its one dependency.

    checks.py replicas RENDERED        no `replicas` in a Deployment an HPA scales
    checks.py probes RENDERED          liveness on /livez (metrics), readiness on /healthcheck (http)
    checks.py stop RENDERED            terminationGracePeriodSeconds covers preStop + drain + margin
    checks.py metrics-from RENDERED NS the metrics port admits the namespace NS only
    checks.py once RENDERED...         rules, dashboards and scrapes appear once per cluster
    checks.py release RENDERED...      every Prometheus Operator object has the same `release` label
    checks.py tracing RENDERED         the OTLP endpoint is reachable through the NetworkPolicy, $(VARS) defined first
"""

import re
import sys

import yaml

# Seconds left for the process to exit after its drain: its last log lines.
EXIT_MARGIN_SECONDS = 5
# The shortest preStop sleep that lets the AWS Load Balancer Controller's IP
# targets go before SIGTERM (25 s to 60 s reported; kube-proxy and
# ingress-nginx need seconds): base/deployment.yaml has the arithmetic.
MIN_PRESTOP_SECONDS = 30


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


def metrics_from(path, namespace):
    failures = 0
    for policy in of_kind(objects(path), "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            if not any(p.get("port") in ("metrics", 9000) for p in rule.get("ports", [])):
                continue
            peers = rule.get("from", [])
            wanted = {"kubernetes.io/metadata.name": namespace}
            if not peers or any(p.get("namespaceSelector", {}).get("matchLabels") != wanted for p in peers):
                failures += fail(f"NetworkPolicy {policy['metadata']['name']}: the metrics port admits {peers or 'anyone'}, "
                                 f"not only namespace {namespace}")
    return 1 if failures else 0


def once(*paths):
    """Across everything a cluster gets: one PrometheusRule, one dashboard,
    and each environment scraped by one PodMonitor or ServiceMonitor."""
    docs = [o for p in paths for o in objects(p)]
    failures = 0
    rules = of_kind(docs, "PrometheusRule")
    if len(rules) != 1:
        failures += fail(f"{len(rules)} PrometheusRules: the rules must be loaded exactly once")
    groups = [g["name"] for r in rules for g in r["spec"]["groups"]]
    if len(groups) != len(set(groups)):
        failures += fail(f"rule groups named twice: {sorted(g for g in set(groups) if groups.count(g) > 1)}")
    dashboards = [c for c in of_kind(docs, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard")]
    if len(dashboards) != 1:
        failures += fail(f"{len(dashboards)} dashboard ConfigMaps: Grafana would load the dashboard that often")
    scrapes = [(o["kind"], o["metadata"].get("namespace")) for o in docs if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    if len(scrapes) != len(set(scrapes)) or not scrapes:
        failures += fail(f"scrape objects per namespace: {scrapes}")
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


CHECKS = {"replicas": replicas, "probes": probes, "stop": stop, "metrics-from": metrics_from,
          "once": once, "release": release, "tracing": tracing}

if __name__ == "__main__":
    sys.exit(CHECKS[sys.argv[1]](*sys.argv[2:]))
