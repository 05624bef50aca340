# The role the release workflow assumes through GitHub's OIDC provider: no
# long-lived AWS keys anywhere. It trusts one repository's jobs in one
# GitHub environment, and may push images to the repository and deploy one
# ECS service, nothing more.

locals {
  github_oidc_host = "token.actions.githubusercontent.com"
  # The provider's ARN follows from its URL, so the trust policy is known
  # at plan time (and reviewable in the plan); the role waits for it below.
  oidc_provider_arn = coalesce(
    var.oidc_provider_arn,
    "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.github_oidc_host}",
  )
  account_prefix = "${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  service_arn    = "arn:${local.account_prefix}:service/${var.deploy_target.cluster_name}/${var.deploy_target.service_name}"
}

# IAM checks GitHub's certificate against its own trusted CAs: no
# thumbprint needs to be fetched and pinned here.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.oidc_provider_arn == null ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
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
      values   = ["sts.amazonaws.com"]
    }
    # A job that names `environment:` gets this subject, whatever its
    # branch or tag: the environment's protection rules are the gate.
    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "release" {
  name                 = var.role_name
  description          = "Assumed by ${var.github_repository}'s release workflow (GitHub environment ${var.github_environment})"
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
  statement {
    sid = "EcrPushAndCheckTags"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [local.repository_arn]
  }
  # Task definitions have no ARN before they are registered, and ECS
  # authorizes these two actions on "*" only.
  statement {
    sid       = "EcsTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid       = "EcsDeployOneService"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]
  }
  statement {
    sid       = "PassOnlyTheServiceRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = [var.deploy_target.execution_role_arn, var.deploy_target.task_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "release" {
  name   = "push-and-deploy"
  role   = aws_iam_role.release.id
  policy = data.aws_iam_policy_document.release.json
}
