output "repository_url" {
  description = "Where images are pushed: scripts/push.sh --ecr pushes here (<account>.dkr.ecr.<region>.amazonaws.com/api)."
  value       = local.repository_url
}

output "repository_arn" {
  description = "ARN of the repository."
  value       = local.repository_arn
}

output "release_role_arn" {
  description = "The role for the release workflow: the GitHub environment's AWS_ROLE_ARN variable."
  value       = aws_iam_role.release.arn
}

output "oidc_provider_arn" {
  description = "The GitHub OIDC provider the role trusts: pass it to another root in the same account (oidc_provider_arn)."
  value       = local.oidc_provider_arn
}

output "repository_name" {
  description = "Name of the repository (api)."
  value       = var.name
}

output "oidc_audience" {
  description = "The audience the role's trust expects in GitHub's token: sts.amazonaws.com (sts.amazonaws.com.cn in China, where the release workflow needs AWS_OIDC_AUDIENCE set to it)."
  value       = local.oidc_audience
}

output "trusted_subject" {
  description = "The OIDC subject the role trusts (a StringLike pattern when it ends in *): what GitHub's token must say."
  value       = local.trusted_subject
}
