"""What a real AWS account would refuse that the emulator (moto) accepts:
every planned value that an AWS API constrains, against AWS's own
constraints, and the Terraform sources against what they need.

    python3 tests/aws/check_constraints.py plan [--every-rule] PLAN.json...
    python3 tests/aws/check_constraints.py tree DEPLOY_AWS_DIR

`plan` reads `terraform show -json` output; with --every-rule each rule
must have found something to check in each plan (a rule that checks
nothing passes by accident). `tree` reads the .tf files and backend
examples. Prints one line per rule and plan, then "N passed, M failed";
exits 1 on a failure.

Where the constraints come from, rule by rule:
  - botocore's service models (aws_models.py): patterns, lengths, ranges,
    and the prose the model carries where AWS states a limit only in words
    (the same sentence as the API reference page of that field);
  - AWS documentation, for the two rules no model holds (IAM statement
    ids, partitions), and Terraform's changelog for the version floor: the
    page is named beside each rule.
Run with a Python that has botocore and regex (moto[server]'s venv has both).
"""

import json
import pathlib
import re
import sys

import aws_models
from aws_models import field, tag_constraints

# Every resource type deploy/aws plans, by the API call that creates it,
# for the tags that call takes (tags_all: default_tags included).
TAGS_OF = {
    "aws_appautoscaling_target": ("application-autoscaling", "RegisterScalableTarget.Tags"),
    "aws_cloudwatch_log_group": ("logs", "CreateLogGroup.tags"),
    "aws_ecr_repository": ("ecr", "CreateRepository.tags"),
    "aws_ecs_cluster": ("ecs", "CreateCluster.tags"),
    "aws_ecs_service": ("ecs", "CreateService.tags"),
    "aws_ecs_task_definition": ("ecs", "RegisterTaskDefinition.tags"),
    "aws_iam_openid_connect_provider": ("iam", "CreateOpenIDConnectProvider.Tags"),
    "aws_iam_role": ("iam", "CreateRole.Tags"),
    "aws_lb": ("elbv2", "CreateLoadBalancer.Tags"),
    "aws_lb_listener": ("elbv2", "CreateListener.Tags"),
    "aws_lb_target_group": ("elbv2", "CreateTargetGroup.Tags"),
    "aws_security_group": ("ec2", "CreateSecurityGroup.TagSpecifications"),
    "aws_vpc_security_group_egress_rule": ("ec2", "AuthorizeSecurityGroupEgress.TagSpecifications"),
    "aws_vpc_security_group_ingress_rule": ("ec2", "AuthorizeSecurityGroupIngress.TagSpecifications"),
}


# (resource type, what, where in the planned values, service, model path).
# A path steps through keys and list indexes; "*" is every element of a
# list, "json" reads a string as JSON (container definitions are one).
# A description of a security group rule is checked as the kind of source
# the rule has: EC2 allows & in address-range rules, not in rules that name
# a group. The last element, when there is one, is the key that decides.
CONTAINERS = ("container_definitions", "json", "*")
FIELDS = [
    ("aws_lb", "name", ("name",), "elbv2", "CreateLoadBalancer.Name"),
    ("aws_lb_target_group", "name", ("name",), "elbv2", "CreateTargetGroup.Name"),
    ("aws_lb_target_group", "port", ("port",), "elbv2", "CreateTargetGroup.Port"),
    *[("aws_lb_target_group", f"health check {key}", ("health_check", 0, key), "elbv2", f"CreateTargetGroup.{member}")
      for key, member in (("path", "HealthCheckPath"), ("interval", "HealthCheckIntervalSeconds"),
                          ("timeout", "HealthCheckTimeoutSeconds"), ("healthy_threshold", "HealthyThresholdCount"),
                          ("unhealthy_threshold", "UnhealthyThresholdCount"))],
    ("aws_iam_role", "name", ("name",), "iam", "CreateRole.RoleName"),
    ("aws_iam_role", "description", ("description",), "iam", "CreateRole.Description"),
    ("aws_iam_role", "max session duration", ("max_session_duration",), "iam", "CreateRole.MaxSessionDuration"),
    ("aws_iam_role_policy", "name", ("name",), "iam", "PutRolePolicy.PolicyName"),
    ("aws_iam_openid_connect_provider", "url", ("url",), "iam", "CreateOpenIDConnectProvider.Url"),
    ("aws_cloudwatch_log_group", "name", ("name",), "logs", "CreateLogGroup.logGroupName"),
    ("aws_ecr_repository", "name", ("name",), "ecr", "CreateRepository.repositoryName"),
    ("aws_ecs_cluster", "name", ("name",), "ecs", "CreateCluster.clusterName"),
    ("aws_ecs_service", "name", ("name",), "ecs", "CreateService.serviceName"),
    ("aws_ecs_task_definition", "family", ("family",), "ecs", "RegisterTaskDefinition.family"),
    ("aws_ecs_task_definition", "container name", (*CONTAINERS, "name"), "ecs", "ContainerDefinition.name"),
    ("aws_ecs_task_definition", "container stopTimeout (Fargate)", (*CONTAINERS, "stopTimeout"),
     "ecs", "ContainerDefinition.stopTimeout"),
    *[("aws_ecs_task_definition", f"container health check {key}", (*CONTAINERS, "healthCheck", key),
       "ecs", f"HealthCheck.{key}") for key in ("interval", "timeout", "retries", "startPeriod")],
    ("aws_appautoscaling_policy", "name", ("name",), "application-autoscaling", "PutScalingPolicy.PolicyName"),
    ("aws_security_group", "name", ("name",), "ec2", "CreateSecurityGroup.GroupName"),
    ("aws_security_group", "description", ("description",), "ec2", "CreateSecurityGroup.Description"),
    *[(kind, f"{source} rule description", ("description",), "ec2", f"{shape}.Description", key)
      for kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule")
      for source, key, shape in (("IPv4", "cidr_ipv4", "IpRange"), ("IPv6", "cidr_ipv6", "Ipv6Range"),
                                 ("security group", "referenced_security_group_id", "UserIdGroupPair"))],
]


def at(value, path):
    """Every value found at `path` (see FIELDS); none where it is absent."""
    if not path:
        return [] if value is None else [value]
    step, rest = path[0], path[1:]
    if step == "json":
        return at(json.loads(value), rest) if isinstance(value, str) else []
    if step == "*":
        return [found for item in (value or []) for found in at(item, rest)]
    try:
        return at(value[step], rest)
    except (KeyError, IndexError, TypeError):
        return []


def put(value, path, new):
    """`value` with every place at `path` set to `new` (for mutation tests)."""
    if not path:
        return new
    step, rest = path[0], path[1:]
    if step == "json":
        return json.dumps(put(json.loads(value), rest, new))
    if step == "*":
        return [put(item, rest, new) for item in value]
    value[step] = put(value[step], rest, new)
    return value


def resources_in_place(plan):
    """(address, type, values) with the plan's own values dicts, to change
    them (mutation tests)."""
    def walk(module):
        for resource in module.get("resources", []):
            yield resource["address"], resource["type"], resource.setdefault("values", {})
        for child in module.get("child_modules", []):
            yield from walk(child)
    yield from walk(plan["planned_values"]["root_module"])


class Unknown:
    """A value Terraform knows only after apply (an id, an ARN): present,
    but nothing to check in it."""

    def __repr__(self):
        return "(known after apply)"


UNKNOWN = Unknown()


def resources(plan):
    """(address, type, planned values) of every resource in the plan; a
    top-level value known only after apply is there as UNKNOWN (the plan's
    planned_values leave it out, its resource_changes say it will be set)."""
    unknown = {change["address"]: change["change"].get("after_unknown") or {}
               for change in plan.get("resource_changes", [])}

    def walk(module):
        for resource in module.get("resources", []):
            values = dict(resource.get("values", {}))
            for key, later in unknown.get(resource["address"], {}).items():
                if later is True and values.get(key) is None:
                    values[key] = UNKNOWN
            yield resource["address"], resource["type"], values
        for child in module.get("child_modules", []):
            yield from walk(child)
    yield from walk(plan["planned_values"]["root_module"])


def rule_tags(plan):
    """Tag keys and values (tags_all, default_tags included) against the
    pattern and length of the service that creates the resource; how many
    tags, where the service limits them; no key in the reserved aws: space."""
    for address, kind, values in resources(plan):
        tags = values.get("tags_all")
        if tags is None or tags is UNKNOWN:
            continue
        if kind not in TAGS_OF:
            yield address, f"{kind} is tagged but no rule knows its service's tag constraints: add it to TAGS_OF", None
            continue
        key_rule, value_rule, most = tag_constraints(*TAGS_OF[kind])
        if most is not None and len(tags) > most:
            yield address, f"{len(tags)} tags, {key_rule.source} allows {most}", None
        for key, value in tags.items():
            for problem in key_rule.violations(key):
                yield address, f"tag key {key!r}: {problem} ({key_rule.source})", None
            for problem in value_rule.violations(value):
                yield address, f"tag {key} = {value!r}: {problem} ({value_rule.source})", None
            yield None, None, (address, key)


def rule_fields(plan):
    """Names, descriptions, ports and health-check settings against the
    API field that receives them (FIELDS)."""
    for address, kind, values in resources(plan):
        for field_kind, what, where, service, path, *deciding in FIELDS:
            if kind != field_kind or (deciding and not values.get(deciding[0])):
                continue
            constraint = field(service, path)
            for value in at(values, where):
                if value is UNKNOWN:
                    continue
                for problem in constraint.violations(value):
                    yield address, f"{what} {value!r}: {problem} ({constraint.source})", None
                yield None, None, (address, what)


def rule_fargate_size(plan):
    """Task CPU and memory: a pair Fargate offers, as the ECS API reference
    of RegisterTaskDefinition's memory lists them (read from botocore)."""
    sizes = aws_models.fargate_sizes()
    for address, kind, values in resources(plan):
        if kind != "aws_ecs_task_definition" or "FARGATE" not in values.get("requires_compatibilities", []):
            continue
        cpu, memory = int(values["cpu"]), int(values["memory"])
        if memory not in sizes.get(cpu, ()):
            offered = sorted(sizes.get(cpu, ()))
            yield address, (f"Fargate has no task of {cpu} CPU units and {memory} MiB (with {cpu}: "
                            f"{', '.join(map(str, offered)) or 'no such CPU size'})"), None
        yield None, None, address


def policies(values):
    """IAM policy documents among the values (an ECR lifecycle policy is not one)."""
    for key in ("policy", "assume_role_policy"):
        if values.get(key):
            document = json.loads(values[key])
            if "Statement" in document:
                yield key, document


def rule_iam_sids(plan):
    """Statement ids: ASCII letters and digits, unique in their policy.
    AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html"""
    for address, _, values in resources(plan):
        for key, document in policies(values):
            statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
            sids = [s["Sid"] for s in statements if "Sid" in s]
            for sid in sids:
                if not re.fullmatch(r"[A-Za-z0-9]*", sid):
                    yield address, f"{key}: Sid {sid!r} is not ASCII letters and digits only", None
            for sid in {s for s in sids if sids.count(s) > 1}:
                yield address, f"{key}: Sid {sid!r} is not unique", None
            yield None, None, (address, key)


def partition_of(region):
    """The partition and DNS suffix of a region. AWS: "Identify AWS resources
    with Amazon Resource Names" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html)
    and the China regions' endpoints (amazonaws.com.cn)."""
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    # The ISO partitions (us-iso-east-1: c2s.ic.gov, ...) and the European
    # Sovereign Cloud have suffixes of their own; deploy/aws refuses them
    # (aws_region's validation), and so does this table.
    if not re.fullmatch(r"[a-z]{2}-[a-z]+-[0-9]+", region):
        raise ValueError(f"{region}: not a region of the aws, aws-cn or aws-us-gov partition")
    return "aws", "amazonaws.com"


# Service principals (ecs-tasks.amazonaws.com) are names, not hosts: the
# provider's aws_service_principal gives each partition's own, and China
# keeps amazonaws.com for most services.
PRINCIPAL_KEYS = {"Service", "iam:PassedToService"}


def strings(value, key=None):
    """(key, text) of every string in `value`; a string holding JSON (a
    policy, container definitions) is read and walked instead."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            yield from strings(parsed, key)
        else:
            yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from strings(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, key)


def rule_partition(plan):
    """Every ARN in the plan is in the region's partition, every AWS host
    name has the region's DNS suffix (a literal arn:aws: or .amazonaws.com
    is wrong in China and, for ARNs, in GovCloud)."""
    region = plan["variables"]["aws_region"]["value"]
    partition, suffix = partition_of(region)
    for address, _, values in resources(plan):
        for key, text in strings(values):
            for arn in re.findall(r"\barn:([a-z-]+):", text):
                if arn != partition:
                    yield address, f"an ARN in partition {arn} in {region} ({partition}): {text[:120]!r}", None
            if key not in PRINCIPAL_KEYS:
                for host in re.findall(r"amazonaws\.com(?:\.cn)?", text):
                    if host != suffix:
                        yield address, f"{host} in {region} (expected {suffix}): {text[:120]!r}", None
            yield None, None, address


PLAN_RULES = {
    "tags": rule_tags,
    "fields": rule_fields,
    "fargate-size": rule_fargate_size,
    "iam-sids": rule_iam_sids,
    "partition": rule_partition,
}

# The Terraform features deploy/aws uses and the release that brought each.
# Terraform: https://developer.hashicorp.com/terraform/language/upgrade-guides
# and https://github.com/hashicorp/terraform/blob/main/CHANGELOG.md (1.x).
FEATURES = [
    ("use_lockfile (S3 backend locking, generally available in 1.11)", (1, 11),
     lambda files: any(re.search(r"^\s*use_lockfile\s*=\s*true", text, re.M) for path, text in files
                       if path.suffix in (".hcl", ".example"))),
    ("ephemeral resources and variables", (1, 10),
     lambda files: any(re.search(r"^\s*ephemeral\s+\"|ephemeral\s*=\s*true", text, re.M) for _, text in files)),
    ("a variable validation that refers to another object", (1, 9),
     lambda files: any(cross_object_validation(text) for path, text in files if path.suffix == ".tf")),
    ("provider-defined functions (provider::)", (1, 8), lambda files: any("provider::" in text for _, text in files)),
    ("removed blocks", (1, 7), lambda files: any(re.search(r"^removed\s*\{", text, re.M) for _, text in files)),
    ("import and check blocks, strcontains()", (1, 5),
     lambda files: any(re.search(r"^(import|check)\b|strcontains\(", text, re.M) for _, text in files)),
]


def without_comments(text):
    return re.sub(r"(?m)^\s*#.*$|\s#[^\"\n]*$", "", text)


def blocks(text, header):
    """The bodies of every `header {...}` block, braces balanced."""
    for match in re.finditer(header, text):
        depth, start = 0, text.index("{", match.start())
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                yield match, text[start + 1 : i]
                break


def cross_object_validation(text):
    for match, body in blocks(text, r'variable\s+"(\w+)"\s*\{'):
        for _, validation in blocks(body, r"validation\s*\{"):
            others = set(re.findall(r"\b(?:var\.(\w+)|(local|data|module)\.)", validation))
            if any(name != match[1] or kind for name, kind in others):
                return True
    return False


def version_floor(constraint):
    match = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?\s*", constraint)
    return (int(match[1]), int(match[2])) if match else None


def tree_checks(root):
    """Each versions.tf's required_version against the features its scope
    uses: a module's own files; a root's files, its backend example and the
    modules it calls. And no literal partition or DNS suffix in any .tf."""
    root = pathlib.Path(root)
    read = lambda paths: [(p, without_comments(p.read_text())) for p in paths]
    modules = sorted(root.glob("modules/*/*.tf"))
    for versions in sorted(root.glob("**/versions.tf")):
        directory = versions.parent
        scope = list(directory.glob("*.tf"))
        if not directory.parent.name == "modules":
            scope += list(directory.glob("*.hcl*")) + modules
        files = read(scope)
        declared = re.search(r'required_version\s*=\s*"([^"]+)"', versions.read_text())
        floor = version_floor(declared[1]) if declared else None
        needed = [(name, version) for name, version, used in FEATURES if used(files)]
        for name, version in needed:
            if floor is None or floor < version:
                yield "terraform-version", f"{versions}: required_version {declared[1] if declared else 'missing'} " \
                    f"is below {version[0]}.{version[1]}, which {name} needs"
        yield "terraform-version", None
    for path in sorted(root.glob("**/*.tf")):
        for number, line in enumerate(without_comments(path.read_text()).splitlines(), 1):
            prose_line = re.match(r"\s*(description|error_message)\s*=", line)
            if not prose_line and re.search(r"arn:aws:|[.\"]amazonaws\.com\b", line):
                yield "partition-literals", f"{path}:{number}: a literal partition or DNS suffix " \
                    f"(use data.aws_partition's partition and dns_suffix): {line.strip()}"
        yield "partition-literals", None


def report(results):
    passed = failed = 0
    for name, where, problems, checked in results:
        ok = bool(checked) and not problems
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {where}: {name} ({checked} checked)")
        for problem in problems:
            print(f"       {problem}")
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


def check_plan(plan, rules=PLAN_RULES):
    """{rule: (problems, number of things checked)} for one plan."""
    out = {}
    for name, rule in rules.items():
        problems, checked = [], 0
        for address, problem, seen in rule(plan):
            if problem:
                problems.append(f"{address}: {problem}")
            if seen:
                checked += 1
        out[name] = (problems, checked)
    return out


def main(argv):
    print(f"     constraints from botocore {aws_models.BOTOCORE_VERSION}'s service models")
    if argv[:1] == ["tree"]:
        found = {}
        for name, problem in tree_checks(argv[1]):
            problems, checked = found.setdefault(name, ([], 0))
            found[name] = (problems + [problem] if problem else problems, checked + (problem is None))
        return report((name, argv[1], problems, checked) for name, (problems, checked) in found.items())
    every_rule = "--every-rule" in argv
    results = []
    for path in [a for a in argv[1:] if a != "--every-rule"]:
        for name, (problems, checked) in check_plan(json.load(open(path))).items():
            if checked or every_rule:
                results.append((name, path, problems, checked))
            else:
                print(f"     {path}: {name}: nothing of this kind in this plan")
    return report(results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
