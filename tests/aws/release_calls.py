"""Every AWS call the release makes, the IAM action each needs, and whether
the release role's policy allows exactly those.

    python3 tests/aws/release_calls.py check PLAN.json [--without-statement SID]
    python3 tests/aws/release_calls.py scan          # the table against the scripts
    python3 tests/aws/release_calls.py actions-only POLICY.json [--without-action ACTION]
    python3 tests/aws/release_calls.py walk-ecr REPOSITORY TAG  # push's ECR calls, as the role

`check` evaluates each call of CALLS (with its real resource ARN and the
condition keys AWS sets for it, tag-on-create and iam:PassRole included)
against the role's policy and trust as planned, and the calls the role must
NOT be able to make; every granted action must be needed by some call.
`scan` reads scripts/push.sh, scripts/deploy-ecs.sh, deploy/aws/release.sh
and .github/workflows/release.yml: every AWS call there must be in the table,
and every call in the table there. `actions-only` prints the policy with
each statement's actions kept, on "*" and without conditions: moto checks
actions only (its IAM checks no Resource and no Condition), so the walk
against moto gives a role that policy, and a missing action fails there.
`walk-ecr` makes, as the credentials in the environment, the ECR API calls
a `docker push` and push.sh make (moto has no registry API; these are the
actions ECR authorises the registry's requests with).

The evaluator follows AWS's policy evaluation for identity policies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins, then any Allow whose Action, Resource and every
Condition match; a condition key absent from the request fails its test
unless the operator ends in IfExists.
"""

import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field

import check_constraints as cc

ECS_TASKS = "ecs-tasks.amazonaws.com"  # what ECS puts in iam:PassedToService (task IAM roles)


@dataclass
class Call:
    made_by: str        # which script or step makes it
    call: str           # the call, as the script writes it
    action: str         # the IAM action AWS authorises it with
    resource: str       # the resource it is authorised on ("*" if none)
    context: dict = field(default_factory=dict)  # condition keys AWS sets
    why: str = ""       # the AWS page that says so


# Placeholders: {arn} = arn:<partition>, {region}, {account}, {repository},
# {cluster}, {service}, {family}, {execution_role}, {task_role}.
REPOSITORY = "{arn}:ecr:{region}:{account}:repository/{repository}"
PUSH = "ECR: IAM permissions for pushing an image (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push-iam.html)"
CALLS = [
    Call("release.yml (aws-actions/configure-aws-credentials)", "sts:GetCallerIdentity", "sts:GetCallerIdentity", "*",
         why="STS: no permission is needed for GetCallerIdentity (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)"),
    Call("scripts/push.sh --ecr", "aws ecr get-login-password", "ecr:GetAuthorizationToken", "*", why=PUSH),
    Call("scripts/push.sh (docker manifest inspect)", "GET /v2/{repository}/manifests/<tag>", "ecr:BatchGetImage", REPOSITORY, why=PUSH),
    Call("scripts/push.sh (docker push)", "HEAD /v2/{repository}/blobs/<digest>", "ecr:BatchCheckLayerAvailability", REPOSITORY, why=PUSH),
    Call("scripts/push.sh (docker push)", "POST /v2/{repository}/blobs/uploads/", "ecr:InitiateLayerUpload", REPOSITORY, why=PUSH),
    Call("scripts/push.sh (docker push)", "PATCH /v2/{repository}/blobs/uploads/<id>", "ecr:UploadLayerPart", REPOSITORY, why=PUSH),
    Call("scripts/push.sh (docker push)", "PUT /v2/{repository}/blobs/uploads/<id>", "ecr:CompleteLayerUpload", REPOSITORY, why=PUSH),
    Call("scripts/push.sh (docker push)", "PUT /v2/{repository}/manifests/<tag>", "ecr:PutImage", REPOSITORY, why=PUSH),
    # The SBOM (an OCI referrer of the image) and the multi-platform index:
    # push.sh's own registry client; the same ECR actions as docker push.
    *[Call("scripts/push.sh (the SBOM, the index)", call, action, REPOSITORY, why=PUSH) for call, action in [
        ("GET /v2/{repository}/manifests/<digest> (the subject)", "ecr:BatchGetImage"),
        ("HEAD /v2/{repository}/blobs/<digest> (SBOM)", "ecr:BatchCheckLayerAvailability"),
        ("POST /v2/{repository}/blobs/uploads/ (SBOM)", "ecr:InitiateLayerUpload"),
        ("PUT /v2/{repository}/blobs/uploads/<id>?digest= (SBOM, one part)", "ecr:UploadLayerPart"),
        ("PUT /v2/{repository}/blobs/uploads/<id>?digest= (SBOM, completed)", "ecr:CompleteLayerUpload"),
        ("PUT /v2/{repository}/manifests/<digest> (the SBOM's referrer manifest)", "ecr:PutImage"),
        ("PUT /v2/{repository}/manifests/<tag> (the index of the platforms)", "ecr:PutImage")]],
    # The attestations, pushed beside the image (@sigstore/oci, push-to-registry).
    *[Call("release.yml (actions/attest, push-to-registry)", call, action, REPOSITORY, why=why) for call, action, why in [
        ("GET /v2/{repository}/referrers/<digest>", "ecr:BatchGetImage",
         "ECR: ListImageReferrers needs ecr:BatchGetImage (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ListImageReferrers.html)"),
        ("POST /v2/{repository}/blobs/uploads/ (the bundle)", "ecr:InitiateLayerUpload", PUSH),
        ("PUT /v2/{repository}/blobs/uploads/<id>?digest= (the bundle)", "ecr:CompleteLayerUpload", PUSH),
        ("PUT /v2/{repository}/manifests/<digest> (the attestation)", "ecr:PutImage", PUSH)]],
    Call("scripts/deploy-ecs.sh", "aws ecs describe-services", "ecs:DescribeServices",
         "{arn}:ecs:{region}:{account}:service/{cluster}/{service}"),
    Call("scripts/deploy-ecs.sh", "aws ecs describe-task-definition", "ecs:DescribeTaskDefinition", "*",
         why="ECS authorises it on * only (Service Authorization Reference, Amazon ECS)"),
    Call("scripts/deploy-ecs.sh", "aws ecs register-task-definition", "ecs:RegisterTaskDefinition", "*",
         why="ECS authorises it on * only (Service Authorization Reference, Amazon ECS)"),
    Call("scripts/deploy-ecs.sh (register-task-definition, with the base revision's tags)", "tag on create",
         "ecs:TagResource", "{arn}:ecs:{region}:{account}:task-definition/{family}:2",
         {"ecs:CreateAction": "RegisterTaskDefinition"},
         why="ECS: Grant permission to tag resources on creation (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html)"),
    *[Call("scripts/deploy-ecs.sh (register-task-definition names the role)", "iam:PassRole", "iam:PassRole",
           "{arn}:iam::{account}:role/" + role, {"iam:PassedToService": ECS_TASKS},
           why="IAM: Grant a user permissions to pass a role to an AWS service (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)")
      for role in ("{execution_role}", "{task_role}")],
    Call("scripts/deploy-ecs.sh", "aws ecs update-service", "ecs:UpdateService",
         "{arn}:ecs:{region}:{account}:service/{cluster}/{service}"),
]

# What the role must not be able to do: each would widen what a leaked
# release token could reach.
REFUSED = [
    Call("another service", "aws ecs update-service", "ecs:UpdateService",
         "{arn}:ecs:{region}:{account}:service/{cluster}/other"),
    Call("another cluster", "aws ecs update-service", "ecs:UpdateService",
         "{arn}:ecs:{region}:{account}:service/other-cluster/{service}"),
    Call("tagging an existing resource", "aws ecs tag-resource", "ecs:TagResource",
         "{arn}:ecs:{region}:{account}:service/{cluster}/{service}"),
    Call("passing the role to another service", "iam:PassRole", "iam:PassRole",
         "{arn}:iam::{account}:role/{execution_role}", {"iam:PassedToService": "ec2.amazonaws.com"}),
    Call("passing another role", "iam:PassRole", "iam:PassRole", "{arn}:iam::{account}:role/admin",
         {"iam:PassedToService": ECS_TASKS}),
    Call("pushing to another repository", "docker push", "ecr:PutImage", "{arn}:ecr:{region}:{account}:repository/other"),
    Call("deleting images", "aws ecr batch-delete-image", "ecr:BatchDeleteImage", REPOSITORY),
    Call("changing the repository", "aws ecr put-image-tag-mutability", "ecr:PutImageTagMutability", REPOSITORY),
    Call("deleting the service", "aws ecs delete-service", "ecs:DeleteService",
         "{arn}:ecs:{region}:{account}:service/{cluster}/{service}"),
    Call("running a one-off task", "aws ecs run-task", "ecs:RunTask", "{arn}:ecs:{region}:{account}:task-definition/{family}:1"),
]


def planned(plan, kind, name=None):
    for _, t, values in cc.resources(plan):
        if t == kind and (name is None or values.get("name") == name):
            yield values


def names(plan):
    """The placeholders' values, from the plan itself."""
    outputs = {k: v.get("value") for k, v in plan["planned_values"].get("outputs", {}).items()}
    region = plan["variables"]["aws_region"]["value"]
    roles = [v["name"] for v in planned(plan, "aws_iam_role")]
    return {
        "arn": "arn:" + cc.partition_of(region)[0],
        "region": region,
        "account": plan["variables"]["aws_account_id"]["value"],
        "repository": outputs["repository_name"],
        "cluster": outputs["cluster_name"],
        "service": outputs["service_name"],
        "family": next(v["family"] for v in planned(plan, "aws_ecs_task_definition")),
        "execution_role": next(r for r in roles if r.endswith("-execution")),
        "task_role": next(r for r in roles if r.endswith("-task")),
    }


def release_role(plan):
    """(policy, trust) of the release role, as planned."""
    policy = json.loads(next(planned(plan, "aws_iam_role_policy"))["policy"])
    trust = json.loads(next(v for v in planned(plan, "aws_iam_role") if "release" in v["name"])["assume_role_policy"])
    return policy, trust


def listed(value):
    return value if isinstance(value, list) else [value]


def matches(patterns, value, case_sensitive):
    fold = (lambda s: s) if case_sensitive else str.lower
    return any(fnmatch.fnmatchcase(fold(value), fold(p)) for p in listed(patterns))


OPERATORS = {
    "StringEquals": lambda want, have: have == want,
    "StringNotEquals": lambda want, have: have != want,
    "StringLike": lambda want, have: fnmatch.fnmatchcase(have, want),
    "ArnEquals": lambda want, have: have == want,
    "ArnLike": lambda want, have: fnmatch.fnmatchcase(have, want),
    "Bool": lambda want, have: str(have).lower() == str(want).lower(),
}


def conditions_hold(conditions, context):
    keys = {k.lower(): v for k, v in context.items()}
    for operator, tests in (conditions or {}).items():
        if_exists = operator.endswith("IfExists")
        test = OPERATORS[operator[: -len("IfExists")] if if_exists else operator]
        for key, wanted in tests.items():
            if key.lower() not in keys:
                if not if_exists:
                    return False
                continue
            if not any(test(w, keys[key.lower()]) for w in listed(wanted)):
                return False
    return True


def statement_applies(statement, action, resource, context, principal=None):
    if "Action" in statement and not matches(statement["Action"], action, False):
        return False
    if "NotAction" in statement and matches(statement["NotAction"], action, False):
        return False
    if "Resource" in statement and not matches(statement["Resource"], resource, True):
        return False
    if principal is not None and principal not in listed(statement.get("Principal", {}).get("Federated", [])):
        return False
    return conditions_hold(statement.get("Condition"), context)


def allowed(policy, action, resource="*", context=None, principal=None):
    statements = listed(policy["Statement"])
    hits = [s for s in statements if statement_applies(s, action, resource, context or {}, principal)]
    return bool(hits) and not any(s["Effect"] == "Deny" for s in hits), [s.get("Sid", "") for s in hits]


# AWS authorises these without any policy.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}


def check(plan, without=None):
    values = names(plan)
    policy, trust = release_role(plan)
    if without:
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != without]
    passed = failed = 0

    def outcome(ok, line):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {line}")

    needed = set()
    for call in CALLS:
        resource = call.resource.format(**values)
        if call.action in NEEDS_NO_PERMISSION:
            outcome(True, f"{call.made_by}: {call.call} needs no permission ({call.why})")
            continue
        ok, sids = allowed(policy, call.action, resource, call.context)
        needed.add(call.action.lower())
        context = "".join(f", {k}={v}" for k, v in call.context.items())
        outcome(ok, f"{call.made_by}: {call.call} -> {call.action} on {resource}{context}"
                + (f" (statement {', '.join(sids)})" if ok else ": NOT ALLOWED"))
    for call in REFUSED:
        resource = call.resource.format(**values)
        ok, sids = allowed(policy, call.action, resource, call.context)
        outcome(not ok, f"refused, {call.made_by}: {call.action} on {resource}"
                + (f": ALLOWED by {', '.join(sids)}" if ok else ""))
    granted = {a.lower() for s in listed(policy["Statement"]) if s["Effect"] == "Allow" for a in listed(s["Action"])}
    unused = sorted(granted - needed)
    outcome(not unused, "every granted action is needed by a call in the table"
            + (f": granted but never called: {', '.join(unused)}" if unused else ""))

    # The trust: GitHub's token for a job of the environment, and nothing else.
    statement = listed(trust["Statement"])[0]
    provider = listed(statement["Principal"]["Federated"])[0]
    sub = "token.actions.githubusercontent.com:sub"
    # StringEquals on GitHub's default subject, or StringLike on one whose
    # template names the ref (trust_release_tags_only): a release job's
    # token then ends in :ref:refs/tags/v0.1.0.
    trusted = listed(next(tests[sub] for tests in statement["Condition"].values() if sub in tests))[0]
    subject = trusted.replace("*", "0.1.0")
    audience = listed(statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"])[0]
    token = {sub: subject, "token.actions.githubusercontent.com:aud": audience}
    outcome(allowed(trust, "sts:AssumeRoleWithWebIdentity", "*", token, provider)[0],
            f"trust: a job of {subject} exchanges its token (audience {audience})")
    owner_repo, environment = subject.split(":")[1], subject.split(":")[3]
    by_ref = [(f"repo:{owner_repo}:environment:{environment}:ref:refs/heads/main", "the environment's job on a branch"),
              (f"repo:{owner_repo}:environment:{environment}", "the default subject, without the ref")]
    for other, why in [
        (dict(token, **{sub: f"repo:{owner_repo}:ref:refs/heads/main"}), "a job without the environment (any branch)"),
        (dict(token, **{sub: f"repo:{owner_repo}:pull_request"}), "a pull request"),
        (dict(token, **{sub: subject.replace(owner_repo, "someone/fork", 1)}),
         "another repository's environment of the same name"),
        (dict(token, **{"token.actions.githubusercontent.com:aud": "https://github.com/" + owner_repo}), "another audience"),
        # Where the trust is a pattern, it must still refuse a branch's job.
        *[(dict(token, **{sub: other_subject}), why) for other_subject, why in by_ref if "*" in trusted],
    ]:
        outcome(not allowed(trust, "sts:AssumeRoleWithWebIdentity", "*", other, provider)[0], f"trust refuses {why}")
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


# Where the release calls AWS, and how a call shows in each file.
SOURCES = {
    "scripts/push.sh": [r"\baws\s+(ecr)\s+([a-z-]+)", r'"\$DOCKER"\s+(push|login)\b', r"(manifest)\s+(inspect)\b"],
    "scripts/deploy-ecs.sh": [r"\baws\s+(ecs)\s+([a-z-]+)"],
    "deploy/aws/release.sh": [r"\baws\s+([a-z0-9]+)\s+([a-z-]+)"],
    ".github/workflows/release.yml": [r"\baws\s+([a-z0-9]+)\s+([a-z-]+)", r"uses:\s+(aws-actions)/([a-z-]+)@"],
}
# How each found call reads in the table's `call` or `made_by`.
SPELLING = {
    ("push", None): "docker push", ("login", None): "get-login-password",
    ("manifest", "inspect"): "docker manifest inspect",
    ("aws-actions", "configure-aws-credentials"): "aws-actions/configure-aws-credentials",
}


def scan(root="."):
    passed = failed = 0
    described = " | ".join(f"{c.made_by} {c.call}" for c in CALLS)
    found_anywhere = set()
    for path, patterns in SOURCES.items():
        text = "\n".join(line for line in open(os.path.join(root, path)).read().splitlines()
                         if not line.lstrip().startswith("#"))
        found_here = []
        for pattern in patterns:
            for match in re.finditer(pattern, text):
                groups = match.groups() + (None,) * (2 - len(match.groups()))
                name = SPELLING.get((groups[0], groups[1])) or SPELLING.get((groups[0], None)) \
                    or f"aws {groups[0]} {groups[1]}"
                if name not in found_here:
                    found_here.append(name)
        for name in found_here:
            found_anywhere.add(name)
            ok = name in described
            passed, failed = passed + ok, failed + (not ok)
            print(f"{'ok  ' if ok else 'FAIL'} {path}: {name}"
                  + ("" if ok else ": not in tests/aws/release_calls.py CALLS (which IAM action does it need?)"))
    for call in CALLS:
        if call.call.startswith("aws ") and call.call not in found_anywhere:
            failed += 1
            print(f"FAIL the table lists {call.call} ({call.made_by}), which no script calls any more")
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


def actions_only(policy):
    """The policy with each statement's actions, on "*", without conditions."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": s.get("Sid", ""), "Effect": s["Effect"], "Action": s["Action"], "Resource": "*"}
        for s in listed(policy["Statement"])]}


def walk_ecr(repository, tag):
    """The ECR API calls behind `docker manifest inspect` and `docker push`
    of one image (one layer, one config, one manifest), as the credentials
    in the environment. Fails on the first refusal."""
    import hashlib

    import boto3
    from botocore.exceptions import ClientError

    ecr = boto3.client("ecr")
    layer = b"layer of " + tag.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = lambda blob: "sha256:" + hashlib.sha256(blob).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": digest(layer)}],
    })

    def call(action, **kwargs):
        """One call; any error ends the walk (moto implements every one of
        these, so an error is a refusal or a broken walk, never a pass).
        moto answers a refusal with HTTP 403 and an AccessDenied body."""
        try:
            answer = getattr(ecr, action)(**kwargs)
        except ClientError as error:
            refused = "AccessDenied" in str(error) or error.response["Error"]["Code"] == "403"
            print(f"FAIL ecr {action}: {'refused (AccessDenied)' if refused else 'failed'}: {error}")
            raise SystemExit(1)
        print(f"ok   ecr {action}")
        return answer

    call("get_authorization_token")
    call("batch_get_image", repositoryName=repository, imageIds=[{"imageTag": tag}])
    for blob in (layer, config):
        call("batch_check_layer_availability", repositoryName=repository, layerDigests=[digest(blob)])
        upload_id = call("initiate_layer_upload", repositoryName=repository)["uploadId"]
        call("upload_layer_part", repositoryName=repository, uploadId=upload_id,
             partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
        call("complete_layer_upload", repositoryName=repository, uploadId=upload_id, layerDigests=[digest(blob)])
    call("put_image", repositoryName=repository, imageTag=tag, imageManifest=manifest)
    print(f"pushed {repository}:{tag} through the ECR API")
    return 0


def main(argv):
    command = argv[0]
    if command == "check":
        without = argv[argv.index("--without-statement") + 1] if "--without-statement" in argv else None
        return check(json.load(open(argv[1])), without)
    if command == "scan":
        return scan()
    if command == "actions-only":
        policy = json.load(open(argv[1]))
        without = argv[argv.index("--without-action") + 1] if "--without-action" in argv else None
        projection = actions_only(policy)
        for statement in projection["Statement"]:
            statement["Action"] = [a for a in listed(statement["Action"]) if a != without]
        projection["Statement"] = [s for s in projection["Statement"] if s["Action"]]
        print(json.dumps(projection))
        return 0
    if command == "walk-ecr":
        return walk_ecr(argv[1], argv[2])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
