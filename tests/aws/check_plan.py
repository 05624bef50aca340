"""Assertions on a root's plan (`terraform show -json`): what deploy/aws
promises, read from what Terraform would create.

    python3 tests/aws/check_plan.py PLAN.json ENVIRONMENT GITHUB_ENVIRONMENT
    python3 tests/aws/check_plan.py --registry-only PLAN.json
    python3 tests/aws/check_plan.py --fargate-spot PLAN.json BASE ON_DEMAND_WEIGHT SPOT_WEIGHT
    python3 tests/aws/check_plan.py --trust PLAN.json ENVIRONMENT OPERATOR SUBJECT
    python3 tests/aws/check_plan.py --xray-tracing PLAN.json SAMPLING_RATIO

The second form checks the bootstrap's first plan (deploy/aws/bootstrap.sh
ROOT registry): the repository and the role, and nothing that runs the
image; the third, a plan with fargate_spot set; the fourth, that the
release role trusts exactly SUBJECT (OPERATOR StringEquals or StringLike);
the fifth, a plan with xray_tracing = true. Prints one line per check and
"N passed, N failed"; exits 1 on a failure.
"""

import json
import re
import sys


def resources(module):
    """Every planned resource of a module and its children."""
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from resources(child)


class Plan:
    def __init__(self, path):
        data = json.load(open(path))
        self.resources = list(resources(data["planned_values"]["root_module"]))
        service = data["configuration"]["root_module"]["module_calls"]["service"]["module"]
        self.depends_on = {r["address"]: r.get("depends_on", []) for r in service["resources"]}
        # What each of the service module's resources refers to, by attribute
        # (a security group's id is unknown until apply; its expression is not).
        self.references = {r["address"]: {k: v.get("references", []) for k, v in r.get("expressions", {}).items()
                                          if isinstance(v, dict)} for r in service["resources"]}

    def all(self, kind):
        return [r["values"] for r in self.resources if r["type"] == kind]

    def one(self, kind):
        found = self.all(kind)
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind} planned, expected 1")
        return found[0]


def checks(plan, environment, github_environment):
    """(description, test) pairs; a test returns truthy or raises."""
    repository = lambda: plan.one("aws_ecr_repository")
    lifecycle = lambda: json.loads(plan.one("aws_ecr_lifecycle_policy")["policy"])["rules"]
    trust = lambda: json.loads(
        next(r for r in plan.all("aws_iam_role") if r["name"] == f"api-release-{environment}")["assume_role_policy"])
    task = lambda: plan.one("aws_ecs_task_definition")
    container = lambda: json.loads(task()["container_definitions"])[0]
    environ = lambda: {e["name"]: e["value"] for e in container()["environment"]}
    service = lambda: plan.one("aws_ecs_service")
    target_group = lambda: plan.one("aws_lb_target_group")
    alb = lambda: plan.one("aws_lb")
    listeners = lambda: {l["port"]: l for l in plan.all("aws_lb_listener")}
    seconds = lambda text: int(text.rstrip("s"))

    def trust_condition(name, operator="StringEquals"):
        statement = trust()["Statement"][0]
        return statement["Condition"][operator][f"token.actions.githubusercontent.com:{name}"]

    def ingress(port):
        return [r for r in plan.all("aws_vpc_security_group_ingress_rule") if r["from_port"] == port]

    def refers(address, attribute, target):
        return f"{target}.id" in plan.references[address].get(attribute, [])

    def health_check():
        return target_group()["health_check"][0]

    yield "ECR: tags are immutable", lambda: repository()["image_tag_mutability"] == "IMMUTABLE"
    yield "ECR: every image is scanned on push", lambda: repository()["image_scanning_configuration"][0]["scan_on_push"]
    yield "ECR: images are encrypted with KMS", lambda: repository()["encryption_configuration"][0]["encryption_type"] == "KMS"
    # The referrers (SBOMs, attestations) are untagged: a rule that selects
    # untagged images would expire them under images still kept.
    yield "ECR lifecycle: no rule selects untagged images (the SBOMs and attestations)", lambda: all(
        r["selection"]["tagStatus"] == "tagged" for r in lifecycle())
    yield "ECR lifecycle: the last N staging-* and production-* images are kept", lambda: sorted(
        r["selection"]["tagPrefixList"][0] for r in lifecycle() if r["selection"].get("countType") == "imageCountMoreThan"
    ) == ["production-", "staging-"]
    yield "GitHub OIDC provider for token.actions.githubusercontent.com, audience sts.amazonaws.com", lambda: (
        plan.one("aws_iam_openid_connect_provider")["url"] == "https://token.actions.githubusercontent.com"
        and plan.one("aws_iam_openid_connect_provider")["client_id_list"] == ["sts.amazonaws.com"])
    # trust_release_tags_only (the default): the subject's template has the ref.
    subject = f"repo:OWNER/REPO:environment:{github_environment}:ref:refs/tags/v*"
    yield f"release role trusts {subject} only (StringLike: release tags)", lambda: (
        trust_condition("sub", "StringLike") == subject
        and "token.actions.githubusercontent.com:sub" not in trust()["Statement"][0]["Condition"]["StringEquals"])
    yield "release role trusts the audience sts.amazonaws.com", lambda: trust_condition("aud") == "sts.amazonaws.com"
    yield "release role: assumed with a web identity, nothing else", lambda: trust()["Statement"][0]["Action"] == (
        "sts:AssumeRoleWithWebIdentity")
    yield "task definition: Fargate, awsvpc, Linux on x86_64", lambda: (
        task()["requires_compatibilities"] == ["FARGATE"] and task()["network_mode"] == "awsvpc"
        and task()["runtime_platform"][0] == {"cpu_architecture": "X86_64", "operating_system_family": "LINUX"})
    yield "container: the production image by tag", lambda: container()["image"].endswith(
        ".amazonaws.com/api:production-0.1.0")
    yield 'container: healthCheck runs ["CMD", "/usr/local/bin/api", "healthcheck"]', lambda: container()[
        "healthCheck"]["command"] == ["CMD", "/usr/local/bin/api", "healthcheck"]
    yield "container: read-only root filesystem, uid 65532, every capability dropped", lambda: (
        container()["readonlyRootFilesystem"] is True and container()["user"] == "65532:65532"
        and container()["linuxParameters"]["capabilities"]["drop"] == ["ALL"])
    yield "container: ports 8000 and 9000", lambda: sorted(
        p["containerPort"] for p in container()["portMappings"]) == [8000, 9000]
    yield "container: PORT and API_METRICS_PORT name those ports (the health check reads them)", lambda: (
        environ()["PORT"] == "8000" and environ()["API_METRICS_PORT"] == "9000")
    yield "container: JSON logs to CloudWatch Logs", lambda: (
        environ()["API_LOG_FORMAT"] == "json" and container()["logConfiguration"]["logDriver"] == "awslogs")
    yield "container: stopTimeout above the shutdown timeout, at most 120 s", lambda: seconds(
        environ()["API_SHUTDOWN_TIMEOUT"]) < container()["stopTimeout"] <= 120
    yield "ALB idle timeout below API_HEADER_READ_TIMEOUT", lambda: alb()["idle_timeout"] < seconds(
        environ()["API_HEADER_READ_TIMEOUT"])
    yield "ALB drops invalid header fields", lambda: alb()["drop_invalid_header_fields"] is True
    yield "HTTPS listener on 443 with a TLS 1.3 policy", lambda: (
        listeners()[443]["protocol"] == "HTTPS" and "TLS13" in listeners()[443]["ssl_policy"])
    yield "HTTP on 80 redirects to HTTPS", lambda: listeners()[80]["default_action"][0]["redirect"][0][
        "protocol"] == "HTTPS"
    # ECS replaces a task that fails its target group's check: that check is
    # liveness, outside --max-connections (/livez on the metrics port), or a
    # saturated task is replaced (tests/e2e/probes.py).
    yield "target group: traffic to port 8000; health check GET /livez over HTTP on port 9000, expects 200", lambda: (
        target_group()["port"] == 8000 and target_group()["protocol"] == "HTTP"
        and health_check()["path"] == "/livez" and health_check()["port"] == "9000"
        and health_check()["protocol"] == "HTTP" and health_check()["matcher"] == "200")
    yield "target group: least outstanding requests (a saturated task gets new requests last)", lambda: (
        target_group()["load_balancing_algorithm_type"] == "least_outstanding_requests")
    yield "ALB reaches the tasks' health-check port: egress to 9000 of the tasks' group, ingress on 9000 from the ALB's", lambda: (
        refers("aws_vpc_security_group_egress_rule.alb_to_tasks_health", "referenced_security_group_id",
               "aws_security_group.tasks")
        and refers("aws_vpc_security_group_egress_rule.alb_to_tasks_health", "security_group_id",
                   "aws_security_group.alb")
        and refers("aws_vpc_security_group_ingress_rule.metrics_from_alb", "referenced_security_group_id",
                   "aws_security_group.alb")
        and refers("aws_vpc_security_group_ingress_rule.metrics_from_alb", "security_group_id",
                   "aws_security_group.tasks")
        and [(r["from_port"], r["to_port"]) for r in plan.all("aws_vpc_security_group_egress_rule")
             if r["from_port"] == 9000] == [(9000, 9000)])
    yield "no listener forwards to the metrics port (the ALB only health-checks it)", lambda: all(
        l.get("port") != 9000 for l in plan.all("aws_lb_listener")) and target_group()["port"] != 9000
    yield "target group: deregistration delay covers the 10 s request timeout", lambda: int(target_group()[
        "deregistration_delay"]) >= 10
    yield "ECS service on Fargate with a health-check grace period", lambda: (
        service()["launch_type"] == "FARGATE" and service()["health_check_grace_period_seconds"] > 0)
    yield "ECS service: deployment circuit breaker rolls back", lambda: service()["deployment_circuit_breaker"][0] == {
        "enable": True, "rollback": True}
    yield "ECS service: minimum healthy 100%, maximum 200%", lambda: (
        service()["deployment_minimum_healthy_percent"] == 100 and service()["deployment_maximum_percent"] == 200)
    yield "ECS cluster: Container Insights on", lambda: plan.one("aws_ecs_cluster")["setting"] == [
        {"name": "containerInsights", "value": "enabled"}]
    yield "autoscaling: target tracking on CPU and on ALB requests per target", lambda: sorted(
        p["target_tracking_scaling_policy_configuration"][0]["predefined_metric_specification"][0]["predefined_metric_type"]
        for p in plan.all("aws_appautoscaling_policy")) == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
    yield "autoscaling: between min and max tasks", lambda: (
        plan.one("aws_appautoscaling_target")["min_capacity"] <= plan.one("aws_appautoscaling_target")["max_capacity"])
    yield "tasks: port 8000 only from the ALB's security group", lambda: [
        r.get("cidr_ipv4") for r in ingress(8000)] == [None]
    # With the example variables (scrapers by network, none by group), the
    # one rule on 9000 without a CIDR is the ALB's (checked above: it refers
    # to the ALB's group); every other names a scraper's network.
    yield "tasks: port 9000 only from the configured scrapers and the ALB's group, never from anywhere", lambda: (
        ingress(9000) and [r.get("cidr_ipv4") for r in ingress(9000)].count(None) == 1
        and all(r.get("cidr_ipv4") != "0.0.0.0/0" and r.get("cidr_ipv6") != "::/0" for r in ingress(9000)))
    yield "ALB: 443 and 80 open to the internet, IPv4 and IPv6", lambda: sorted(
        (r["from_port"], r.get("cidr_ipv4") or r.get("cidr_ipv6")) for r in ingress(443) + ingress(80)) == [
        (80, "0.0.0.0/0"), (80, "::/0"), (443, "0.0.0.0/0"), (443, "::/0")]
    yield "log group: retention set", lambda: plan.one("aws_cloudwatch_log_group")["retention_in_days"] > 0
    yield "traces off by default: one container, no OTEL_* variable, no X-Ray policy", lambda: (
        len(json.loads(task()["container_definitions"])) == 1
        and not any(name.startswith("OTEL_") for name in environ())
        and not [r for r in plan.all("aws_iam_role_policy") if r["name"] == "xray-write"])
    # First-apply races: nothing else orders these.
    yield "task definition waits for the execution role's policy (the first tasks pull with it)", lambda: (
        "aws_iam_role_policy_attachment.execution" in plan.depends_on["aws_ecs_task_definition.this"])
    yield "service waits for both halves of the ALB-to-task rules (traffic and health checks) and the listeners", lambda: {
        "aws_vpc_security_group_ingress_rule.api_from_alb", "aws_vpc_security_group_egress_rule.alb_to_tasks",
        "aws_vpc_security_group_ingress_rule.metrics_from_alb",
        "aws_vpc_security_group_egress_rule.alb_to_tasks_health",
        "aws_lb_listener.http", "aws_lb_listener.https"} <= set(plan.depends_on["aws_ecs_service.this"])


# What runs the image, or serves it: none of it may be in the registry's plan.
RUNS_THE_IMAGE = ["aws_ecs_cluster", "aws_ecs_service", "aws_ecs_task_definition", "aws_lb", "aws_lb_listener",
                  "aws_lb_target_group", "aws_appautoscaling_target"]


def registry_checks(path):
    changes = json.load(open(path))["resource_changes"]
    created = lambda: [c for c in changes if "create" in c["change"]["actions"]]
    yield "registry plan: creates the repository, the OIDC provider, the role and its policy", lambda: {
        c["type"] for c in created()} >= {"aws_ecr_repository", "aws_iam_openid_connect_provider", "aws_iam_role",
                                          "aws_iam_role_policy"}
    yield "registry plan: everything in it is module.registry's", lambda: all(
        c["address"].startswith("module.registry.") for c in changes)
    for kind in RUNS_THE_IMAGE:
        yield f"registry plan: no {kind}", lambda kind=kind: not [c for c in changes if c["type"] == kind]


def trust_checks(path, environment, operator, subject):
    plan = Plan(path)
    statement = lambda: json.loads(next(r for r in plan.all("aws_iam_role") if r["name"] == (
        f"api-release-{environment}"))["assume_role_policy"])["Statement"][0]
    yield f"the release role trusts {subject} ({operator}), and no other subject", lambda: [
        (op, tests["token.actions.githubusercontent.com:sub"]) for op, tests in statement()["Condition"].items()
        if "token.actions.githubusercontent.com:sub" in tests] == [(operator, subject)]


def spot_checks(path, base, on_demand_weight, spot_weight):
    """A plan with fargate_spot = {on_demand_base, on_demand_weight, spot_weight}."""
    plan = Plan(path)
    service = lambda: plan.one("aws_ecs_service")
    strategy = lambda: {s["capacity_provider"]: (s["base"], s["weight"]) for s in service()["capacity_provider_strategy"]}
    yield "Fargate Spot: the service has a capacity provider strategy, no launch type", lambda: (
        service().get("launch_type") in (None, "") and strategy())
    yield f"Fargate Spot: {base} task(s) on demand, then {on_demand_weight}:{spot_weight} on demand:Spot", lambda: strategy() == {
        "FARGATE": (base, on_demand_weight), "FARGATE_SPOT": (0, spot_weight)}
    yield "Fargate Spot: the cluster offers FARGATE and FARGATE_SPOT", lambda: sorted(
        plan.one("aws_ecs_cluster_capacity_providers")["capacity_providers"]) == ["FARGATE", "FARGATE_SPOT"]
    yield "Fargate Spot: x86_64 tasks (Spot runs no ARM64)", lambda: plan.one("aws_ecs_task_definition")[
        "runtime_platform"][0]["cpu_architecture"] == "X86_64"


# The collector sidecar of xray_tracing, as modules/service/ecs.tf runs it.
COLLECTOR = "aws-otel-collector"
COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector"


def xray_checks(path, sampling_ratio):
    """A plan with xray_tracing = true and xray_sampling_ratio = SAMPLING_RATIO."""
    plan = Plan(path)
    containers = lambda: {c["name"]: c for c in json.loads(plan.one("aws_ecs_task_definition")["container_definitions"])}
    api = lambda: containers()["api"]
    collector = lambda: containers()[COLLECTOR]
    environ = lambda: {e["name"]: e["value"] for e in api()["environment"]}
    task_role = lambda: next(r for r in plan.all("aws_iam_role") if r["name"].endswith("-task"))
    xray_policy = lambda: json.loads(next(
        r for r in plan.all("aws_iam_role_policy") if r["name"] == "xray-write")["policy"])
    yield "X-Ray: the task runs the api and the ADOT collector", lambda: sorted(containers()) == ["api", COLLECTOR]
    yield "X-Ray: the collector's image is AWS's, pinned by version or digest", lambda: re.fullmatch(
        re.escape(COLLECTOR_IMAGE) + r"(:v\d+\.\d+\.\d+)?(@sha256:[0-9a-f]{64})?", collector()["image"]) and (
        collector()["image"] != COLLECTOR_IMAGE)
    yield "X-Ray: the collector runs its built-in ECS X-Ray pipeline", lambda: collector()["command"] == [
        "--config=/etc/ecs/ecs-xray.yaml"]
    yield "X-Ray: the api is essential, the collector is not (a failed collector costs traces, not requests)", lambda: (
        api()["essential"] is True and collector()["essential"] is False)
    yield "X-Ray: the api starts once the collector has, so ECS stops it first (its last spans reach the collector)", lambda: (
        api()["dependsOn"] == [{"containerName": COLLECTOR, "condition": "START"}])
    yield "X-Ray: the collector's root filesystem is read-only, every capability dropped", lambda: (
        collector()["readonlyRootFilesystem"] is True
        and collector()["linuxParameters"]["capabilities"]["drop"] == ["ALL"])
    yield "X-Ray: the collector has a health check and logs to CloudWatch Logs", lambda: (
        collector()["healthCheck"]["command"] == ["CMD", "/healthcheck"]
        and collector()["logConfiguration"]["logDriver"] == "awslogs")
    yield "X-Ray: the api exports to the collector on 127.0.0.1:4318 (OTLP/HTTP, inside the task)", lambda: (
        environ()["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318")
    yield "X-Ray: the service is named, the environment said", lambda: (
        environ()["OTEL_SERVICE_NAME"] == "api"
        and environ()["OTEL_RESOURCE_ATTRIBUTES"].startswith("deployment.environment.name="))
    yield f"X-Ray: parent-based ratio sampling at {sampling_ratio}", lambda: (
        environ()["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        and float(environ()["OTEL_TRACES_SAMPLER_ARG"]) == float(sampling_ratio))
    yield "X-Ray: the task role may put trace segments and telemetry records, and nothing else", lambda: [
        (sorted(statement["Action"]), statement["Effect"], statement["Resource"])
        for statement in xray_policy()["Statement"]] == [
        (["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Allow", "*")]
    yield "X-Ray: the task role's description says so", lambda: "X-Ray" in task_role()["description"]
    yield "X-Ray: the task definition waits for the X-Ray policy (the first tasks send with it)", lambda: (
        "aws_iam_role_policy.xray" in plan.depends_on["aws_ecs_task_definition.this"])


def main(path, environment, github_environment):
    plan = Plan(path)
    return run(checks(plan, environment, github_environment), environment)


def run(all_checks, label):
    passed = failed = 0
    for description, test in all_checks:
        try:
            ok = bool(test())
            detail = ""
        except (AssertionError, KeyError, IndexError, StopIteration, TypeError, ValueError) as error:
            ok, detail = False, f": {error!r}"
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {label} plan: {description}{detail}")
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1] == "--registry-only":
        sys.exit(run(registry_checks(sys.argv[2]), "bootstrap"))
    if sys.argv[1] == "--trust":
        sys.exit(run(trust_checks(*sys.argv[2:6]), "trust"))
    if sys.argv[1] == "--fargate-spot":
        sys.exit(run(spot_checks(sys.argv[2], *map(int, sys.argv[3:6])), "Fargate Spot"))
    if sys.argv[1] == "--xray-tracing":
        sys.exit(run(xray_checks(sys.argv[2], sys.argv[3]), "X-Ray"))
    sys.exit(main(*sys.argv[1:4]))
