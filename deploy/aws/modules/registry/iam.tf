# The role the release workflow assumes through GitHub's OIDC provider: no
# long-lived AWS keys anywhere. It trusts one repository's jobs in one
# GitHub environment, and may push images to the repository and deploy one
# ECS service, nothing more. tests/aws/release_calls.py lists every AWS call
# the release makes and checks each against this policy.

locals {
  github_oidc_host = "token.actions.githubusercontent.com"
  # The audience GitHub's token carries: configure-aws-credentials asks for
  # sts.amazonaws.com, and sts.amazonaws.com.cn in China (its `audience`).
  oidc_audience = "sts.${data.aws_partition.current.dns_suffix}"
  # The provider's ARN follows from its URL, so the trust policy is known
  # at plan time (and reviewable in the plan); the role waits for it below.
  oidc_provider_arn = coalesce(
    var.oidc_provider_arn,
    "arn:${local.partition}:iam::${local.account_id}:oidc-provider/${local.github_oidc_host}",
  )
  trusted_subject = join("", [
    "repo:${var.github_repository}:environment:${var.github_environment}",
    var.release_tags_only ? ":ref:refs/tags/v*" : "",
  ])
  # The deploy target by ARN, built from names: nothing here waits for the
  # service module, so `terraform apply -target=module.registry` makes the
  # repository and the role before anything runs the image.
  service_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${var.deploy_target.cluster_name}/${var.deploy_target.service_name}"
  passable_role_arns = [
    for name in [var.deploy_target.execution_role_name, var.deploy_target.task_role_name] :
    "arn:${local.partition}:iam::${local.account_id}:role/${name}"
  ]
}

# ecs-tasks.amazonaws.com, or its name in the region's partition.
data "aws_service_principal" "ecs_tasks" {
  service_name = "ecs-tasks"
}

# IAM checks GitHub's certificate against its own trusted CAs: no
# thumbprint needs to be fetched and pinned here.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.oidc_provider_arn == null ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = [local.oidc_audience]
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = [local.oidc_audience]
    }
    # GitHub's default subject for a job that names `environment:` is
    # repo:OWNER/REPO:environment:<name>, whatever its branch or tag: the
    # environment's deployment rules would be the only gate. With the
    # repository's subject template set to repo, context, ref (GitHub:
    # "Customizing the subject claims", docs/deploy.md "The release role's
    # trust"), the token also says which ref it ran from, and AWS itself
    # refuses any ref but a release tag.
    condition {
      test     = var.release_tags_only ? "StringLike" : "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = [local.trusted_subject]
    }
  }
}

resource "aws_iam_role" "release" {
  name                 = var.role_name
  description          = "Assumed by the release workflow of ${var.github_repository} (GitHub environment ${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600

  depends_on = [aws_iam_openid_connect_provider.github]
}

data "aws_iam_policy_document" "release" {
  # GetAuthorizationToken has no resource: the token is per registry.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  # What `docker push` calls (ECR: "IAM permissions for pushing an image"),
  # BatchGetImage also answering `docker manifest inspect` (does the tag
  # exist, with which digest).
  statement {
    sid = "EcrPushAndCheckTags"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [local.repository_arn]
  }
  # Task definitions have no ARN before they are registered, and ECS
  # authorizes these two actions on "*" only. A new revision copies the
  # tags of the one it is based on (default_tags put some on every
  # revision), and ECS authorizes tags given on create as ecs:TagResource:
  # allowed here on creation only, never on an existing resource.
  statement {
    sid       = "EcsTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid       = "EcsTagOnlyTheRevisionsItRegisters"
    actions   = ["ecs:TagResource"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }
  statement {
    sid       = "EcsDeployOneService"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]
  }
  statement {
    sid       = "PassOnlyTheServiceRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = local.passable_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = [data.aws_service_principal.ecs_tasks.name]
    }
  }
}

resource "aws_iam_role_policy" "release" {
  name   = "push-and-deploy"
  role   = aws_iam_role.release.id
  policy = data.aws_iam_policy_document.release.json
}
