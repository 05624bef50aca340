"""After `terraform apply` against the AWS emulator (moto): reads back what
was created, through the same APIs a user's tools would call.

    python3 tests/aws/check_apply.py ENVIRONMENT GITHUB_ENVIRONMENT

Uses boto3 with AWS_ENDPOINT_URL pointing at the emulator. Where moto does
not keep a property (it accepts the call and drops the value), the line says
so and the property counts as verified by the plan only. Prints one line per
check and "N passed, N failed"; exits 1 on a failure.
"""

import json
import sys

import boto3

NOT_KEPT = "not kept by moto: verified by the plan only"


def main(environment, github_environment):
    ecr, iam, ecs = boto3.client("ecr"), boto3.client("iam"), boto3.client("ecs")
    elbv2, logs = boto3.client("elbv2"), boto3.client("logs")
    name = f"api-{environment}"
    passed = failed = 0

    def check(description, test):
        nonlocal passed, failed
        try:
            ok, detail = bool(test()), ""
        except Exception as error:  # an API error is a failed check, with its reason
            ok, detail = False, f": {error!r}"
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {environment} apply: {description}{detail}")

    def dropped(description):
        print(f"     {environment} apply: {description}: {NOT_KEPT}")

    repository = lambda: ecr.describe_repositories(repositoryNames=["api"])["repositories"][0]
    check("ECR repository api: immutable tags, scan on push, KMS", lambda: (
        repository()["imageTagMutability"] == "IMMUTABLE"
        and repository()["imageScanningConfiguration"]["scanOnPush"]
        and repository()["encryptionConfiguration"]["encryptionType"] == "KMS"))
    check("ECR lifecycle policy: the staging-* and production-* rules only", lambda: sorted(
        rule["selection"]["tagPrefixList"][0] for rule in json.loads(
            ecr.get_lifecycle_policy(repositoryName="api")["lifecyclePolicyText"])["rules"]) == ["production-", "staging-"])

    role = lambda: iam.get_role(RoleName=f"api-release-{environment}")["Role"]
    subject = f"repo:OWNER/REPO:environment:{github_environment}:ref:refs/tags/v*"
    check(f"release role trusts {subject} (release tags only)", lambda: role()[
        "AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringLike"][
        "token.actions.githubusercontent.com:sub"] == subject)
    policy = lambda: {s["Sid"]: s for s in iam.get_role_policy(
        RoleName=f"api-release-{environment}", PolicyName="push-and-deploy")["PolicyDocument"]["Statement"]}
    check("release role: pushes to the api repository only", lambda: policy()["EcrPushAndCheckTags"][
        "Resource"].endswith(":repository/api"))
    check(f"release role: updates the service {name}/api only", lambda: policy()["EcsDeployOneService"][
        "Resource"].endswith(f":service/{name}/api"))
    check("release role: passes only the service's two roles, only to ECS tasks", lambda: (
        sorted(r.rsplit("/", 1)[1] for r in policy()["PassOnlyTheServiceRolesToEcs"]["Resource"])
        == [f"{name}-execution", f"{name}-task"]
        and policy()["PassOnlyTheServiceRolesToEcs"]["Condition"]["StringEquals"]["iam:PassedToService"]
        == "ecs-tasks.amazonaws.com"))
    check("GitHub OIDC provider exists for audience sts.amazonaws.com", lambda: any(
        "sts.amazonaws.com" in iam.get_open_id_connect_provider(OpenIDConnectProviderArn=p["Arn"])["ClientIDList"]
        for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]))

    cluster = ecs.describe_clusters(clusters=[name], include=["SETTINGS"])["clusters"][0]
    if cluster.get("settings"):
        check("ECS cluster: Container Insights on", lambda: {"name": "containerInsights", "value": "enabled"} in cluster[
            "settings"])
    else:
        dropped("ECS cluster: Container Insights setting")
    task = lambda: ecs.describe_task_definition(taskDefinition=name)["taskDefinition"]
    container = lambda: task()["containerDefinitions"][0]
    check("task definition: Fargate, health check by the binary, read-only, uid 65532", lambda: (
        task()["requiresCompatibilities"] == ["FARGATE"]
        and container()["healthCheck"]["command"] == ["CMD", "/usr/local/bin/api", "healthcheck"]
        and container()["readonlyRootFilesystem"] and container()["user"] == "65532:65532"))
    service = ecs.describe_services(cluster=name, services=["api"])["services"][0]
    check("ECS service exists on Fargate", lambda: service["launchType"] == "FARGATE")
    breaker = (service.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker")
    if breaker:
        check("ECS service: circuit breaker with rollback", lambda: breaker == {"enable": True, "rollback": True})
    else:
        dropped("ECS service: deployment circuit breaker and minimum/maximum percent")

    balancer = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"])["Attributes"]}
    check("ALB: idle timeout 60 s, invalid header fields dropped", lambda: (
        attributes["idle_timeout.timeout_seconds"] == "60"
        and attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"))
    group = elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]
    group_attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(
        TargetGroupArn=group["TargetGroupArn"])["Attributes"]}
    check("target group: port 8000; health check GET /livez on port 9000, 200", lambda: (
        group["Port"] == 8000 and group["HealthCheckPath"] == "/livez" and group["HealthCheckPort"] == "9000"
        and group["Matcher"]["HttpCode"] == "200"))
    check("target group: least outstanding requests", lambda: (
        group_attributes["load_balancing.algorithm.type"] == "least_outstanding_requests"))
    listeners = {l["Port"]: l for l in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]}
    check("listeners: HTTPS on 443, HTTP on 80 redirecting to it", lambda: (
        listeners[443]["Protocol"] == "HTTPS"
        and listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"))
    check("log group with retention", lambda: logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{name}")[
        "logGroups"][0]["retentionInDays"] > 0)
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
