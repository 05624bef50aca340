"""Mutation tests of check_constraints.py: each rule, given a plan (or a
Terraform tree) with a defect put back in, must report it; given the clean
plan, must report nothing.

    python3 tests/aws/test_constraints.py PLAN.json DEPLOY_AWS_DIR

PLAN.json is a clean plan of a root (terraform show -json). The defects are
the ones issue 20 found (a tag value with parentheses, apostrophes in
security group descriptions, Fargate sizes AWS refuses, a version floor
below the features used, hard-coded partitions) and one for every field
rule, made from that field's own constraint. Prints one line per mutation
and "N passed, M failed"; exits 1 on a failure.
"""

import copy
import json
import pathlib
import re
import shutil
import sys
import tempfile

import check_constraints as cc
from aws_models import field


def of_type(plan, kind):
    return [values for _, t, values in cc.resources_in_place(plan) if t == kind]


def set_everywhere(key, value):
    """Every tagged resource's tags_all[key] = value, as a default tag would."""
    def mutate(plan):
        for _, _, values in cc.resources_in_place(plan):
            if isinstance(values.get("tags_all"), dict):
                values["tags_all"][key] = value
    return mutate


def first(kind, change):
    def mutate(plan):
        change(of_type(plan, kind)[0])
    return mutate


def in_place(plan, address):
    return next(values for a, _, values in cc.resources_in_place(plan) if a == address)


def rule_with(key, value, has):
    """The first security group rule whose source is `has` (known, or known
    after apply) gets key = value."""
    def mutate(plan):
        address = next(a for a, t, v in cc.resources(plan) if t.startswith("aws_vpc_security_group_") and v.get(has))
        in_place(plan, address)[key] = value
    return mutate


def task(change):
    def mutate(plan):
        values = of_type(plan, "aws_ecs_task_definition")[0]
        containers = json.loads(values["container_definitions"])
        change(values, containers[0])
        values["container_definitions"] = json.dumps(containers)
    return mutate


def sized(cpu, memory):
    return task(lambda values, _: values.update(cpu=str(cpu), memory=str(memory)))


def policy_sid(sid):
    def mutate(plan):
        values = of_type(plan, "aws_iam_role_policy")[0]
        document = json.loads(values["policy"])
        document["Statement"][0]["Sid"] = sid
        document["Statement"][1]["Sid"] = sid if sid == "Twice" else document["Statement"][1].get("Sid", "")
        values["policy"] = json.dumps(document)
    return mutate


def in_region(region):
    def mutate(plan):
        plan["variables"]["aws_region"]["value"] = region
    return mutate


def with_string(key, text):
    return first("aws_ecs_cluster", lambda v: v.__setitem__(key, text))


# (rule, the defect, how to put it in a plan)
PLAN_MUTATIONS = [
    ("tags", 'default tag ManagedBy = "terraform (deploy/aws)" (issue 20, 1)', set_everywhere("ManagedBy", "terraform (deploy/aws)")),
    ("tags", "a 128-character tag key (EC2 allows 127)", set_everywhere("K" * 128, "v")),
    ("tags", "a tag key in the reserved aws: space", set_everywhere("aws:owner", "me")),
    ("tags", "51 tags on the task definition (ECS allows 50)",
     first("aws_ecs_task_definition", lambda v: v["tags_all"].update({f"t{i}": "x" for i in range(51)}))),
    ("fields", "an apostrophe in a security group description (issue 20, 2)",
     first("aws_security_group", lambda v: v.__setitem__("description", "The api's load balancer"))),
    ("fields", "an apostrophe in a rule description (issue 20, 2)",
     rule_with("description", "Prometheus metrics from a scraper's network", "cidr_ipv4")),
    ("fields", "& in a rule that names a security group (EC2 allows it in address-range rules only)",
     rule_with("description", "API from the ALB & nothing else", "referenced_security_group_id")),
    ("fields", "a 33-character load balancer name", first("aws_lb", lambda v: v.__setitem__("name", "api-" + "x" * 29))),
    ("fields", "a load balancer name beginning with internal-",
     first("aws_lb", lambda v: v.__setitem__("name", "internal-api"))),
    ("fields", "a target group name ending in a hyphen",
     first("aws_lb_target_group", lambda v: v.__setitem__("name", "api-production-"))),
    ("fields", "a 65-character IAM role name", first("aws_iam_role", lambda v: v.__setitem__("name", "r" * 65))),
    ("fields", "a container stopTimeout of 121 s (Fargate: at most 120)",
     task(lambda _, c: c.__setitem__("stopTimeout", 121))),
    ("fields", "a container health check every 4 s (ECS: 5-300)",
     task(lambda _, c: c["healthCheck"].__setitem__("interval", 4))),
    ("fargate-size", "256 CPU units with 1536 MiB (issue 20, 7)", sized(256, 1536)),
    ("fargate-size", "1024 CPU units with 1024 MiB (issue 20, 7)", sized(1024, 1024)),
    ("iam-sids", "a statement id with a hyphen", policy_sid("Ecr-Login")),
    ("iam-sids", "the same statement id twice", policy_sid("Twice")),
    ("partition", "the same ARNs planned in cn-north-1 (arn:aws: hard-coded, issue 20, 7)", in_region("cn-north-1")),
    ("partition", "an ARN of another partition",
     with_string("name", "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/api")),
    ("partition", "a China host name outside China",
     with_string("name", "123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn/api")),
]


def violating(constraint, current):
    """A value `constraint` refuses, close to `current`, made from the
    constraint itself: one past a bound, one character too many, or a
    character it does not allow."""
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        candidates = [constraint.maximum + 1 if constraint.maximum is not None else None,
                      constraint.minimum - 1 if constraint.minimum is not None else None]
    else:
        text = str(current)
        longest = constraint.max_length or 0
        candidates = [text + "x" * (longest + 1 - len(text)) if longest else None,
                      *(text + bad for bad in "'~^|\\`\t"), "-" + text, "internal-" + text, "sg-" + text]
    for candidate in candidates:
        if candidate is not None and constraint.violations(candidate):
            return candidate
    raise AssertionError(f"{constraint.source}: found no value it refuses")


def field_mutations(plan):
    """One mutation per FIELDS entry that applies to this plan."""
    for kind, what, where, service, path, *deciding in cc.FIELDS:
        for address, resource_kind, values in cc.resources(plan):
            if resource_kind != kind or (deciding and not values.get(deciding[0])):
                continue
            present = [v for v in cc.at(values, where) if v is not cc.UNKNOWN]
            if not present:
                continue
            constraint = field(service, path)
            bad = violating(constraint, present[0])

            def mutate(plan, address=address, where=where, bad=bad):
                cc.put(in_place(plan, address), where, bad)
            yield "fields", f"{address}: {what} = {bad!r} ({constraint.source})", mutate
            break


def problems(plan, rule):
    return cc.check_plan(plan, {rule: cc.PLAN_RULES[rule]})[rule][0]


def tree_problems(root, rule):
    return [problem for name, problem in cc.tree_checks(root) if name == rule and problem]


def edited_tree_problems(root, rule, path, old, new):
    """The rule's problems in a copy of the tree with one edit."""
    with tempfile.TemporaryDirectory() as scratch:
        copy_root = pathlib.Path(scratch) / "aws"
        shutil.copytree(root, copy_root, symlinks=True)
        target = copy_root / path
        text = target.read_text()
        if not re.search(old, text):
            raise AssertionError(f"{path}: {old!r} not found: the mutation no longer applies")
        target.unlink()  # a link into environment/: replace the link, not what it points to
        target.write_text(re.sub(old, new, text, count=1))
        return tree_problems(copy_root, rule)


# (rule, the defect, file, what to replace, with what, what the report must name)
TREE_MUTATIONS = [
    ("terraform-version", "roots at >= 1.5 while backend.hcl.example uses use_lockfile (issue 20, 7)",
     "environment/versions.tf", r'required_version = "[^"]+"', 'required_version = ">= 1.5"', "use_lockfile"),
    ("terraform-version", "roots at >= 1.10, where use_lockfile was still experimental",
     "environment/versions.tf", r'required_version = "[^"]+"', 'required_version = ">= 1.10"', "use_lockfile"),
    ("terraform-version", "the service module at >= 1.5 while memory's validation reads var.cpu",
     "modules/service/versions.tf", r'required_version = "[^"]+"', 'required_version = ">= 1.5"', "validation"),
    ("partition-literals", "arn:aws: in the execution role's managed policy (issue 20, 7)",
     "modules/service/iam.tf", r"arn:\$\{data\.aws_partition\.current\.partition\}:iam::aws:", "arn:aws:iam::aws:",
     "arn:aws:iam::aws:"),
    ("partition-literals", "amazonaws.com in the repository URL (issue 20, 7)",
     "modules/registry/main.tf", r"\$\{data\.aws_partition\.current\.dns_suffix\}", "amazonaws.com",
     "amazonaws.com"),
]


def main(plan_path, tree):
    plan = json.load(open(plan_path))
    passed = failed = 0

    def outcome(ok, line):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {line}")

    for rule in cc.PLAN_RULES:
        clean = problems(plan, rule)
        outcome(not clean, f"{rule}: the clean plan passes" + "".join(f"\n       {p}" for p in clean))
    for rule in ("terraform-version", "partition-literals"):
        clean = tree_problems(tree, rule)
        outcome(not clean, f"{rule}: the clean tree passes" + "".join(f"\n       {p}" for p in clean))

    mutations = PLAN_MUTATIONS + list(field_mutations(plan))
    for rule, defect, mutate in mutations:
        broken = copy.deepcopy(plan)
        mutate(broken)
        found = problems(broken, rule)
        outcome(bool(found), f"{rule} catches {defect}" + (f"\n       {found[0][:200]}" if found else ""))
    for rule, defect, path, old, new, named in TREE_MUTATIONS:
        found = [problem for problem in edited_tree_problems(tree, rule, path, old, new) if named in problem]
        outcome(bool(found), f"{rule} catches {defect}" + (f"\n       {found[0][:200]}" if found else ""))

    covered = {rule for rule, *_ in mutations} | {rule for rule, *_ in TREE_MUTATIONS}
    missing = set(cc.PLAN_RULES) | {"terraform-version", "partition-literals"}
    missing -= covered
    outcome(not missing, f"every rule has a mutation test{': missing ' + ', '.join(sorted(missing)) if missing else ''}")
    fields_covered = {defect.split(": ", 1)[1].split(" = ")[0] for rule, defect, _ in mutations
                      if rule == "fields" and ": " in defect and " = " in defect}
    unused = {what for _, what, *_ in cc.FIELDS} - fields_covered
    outcome(not unused, "every field rule met a value in this plan and a mutation of it"
            + (f": none for {', '.join(sorted(unused))}" if unused else ""))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
