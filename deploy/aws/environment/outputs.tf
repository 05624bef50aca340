output "repository_url" {
  description = "The ECR repository the release pushes to: ECR_REPOSITORY_URL for the release workflow."
  value       = module.registry.repository_url
}

output "trusted_subject" {
  description = "The subject of GitHub's OIDC token the release role trusts."
  value       = module.registry.trusted_subject
  depends_on  = [module.registry]
}

output "release_role_arn" {
  description = "Set it as AWS_ROLE_ARN in the GitHub environment named by github_environment."
  value       = module.registry.release_role_arn
}

output "oidc_provider_arn" {
  description = "Give it to the other environment's root when both share this account."
  value       = module.registry.oidc_provider_arn
}

output "alb_dns_name" {
  description = "The service's address: point a DNS record at it."
  value       = module.service.alb_dns_name
}

# The release workflow's variables (bootstrap.sh ROOT variables) by name,
# not from the resources: the GitHub environments need them for the first
# release, which comes before the service step. A registry-only apply
# (-target=module.registry) records only the outputs that depend on what it
# applies, hence depends_on.
output "cluster_name" {
  description = "ECS_CLUSTER for the release workflow."
  value       = module.service.deploy_target.cluster_name
  depends_on  = [module.registry]
}

output "service_name" {
  description = "ECS_SERVICE for the release workflow."
  value       = module.service.deploy_target.service_name
  depends_on  = [module.registry]
}

output "log_group" {
  description = "The CloudWatch log group of the service."
  value       = module.service.log_group
}

output "repository_name" {
  description = "The ECR repository's name (deploy/aws/bootstrap.sh checks the first image there)."
  value       = module.registry.repository_name
}

output "image_tag" {
  description = "The tag the service's first revision runs: push it before `deploy/aws/bootstrap.sh service`."
  value       = var.image_tag
}

output "aws_region" {
  description = "AWS_REGION for the release workflow."
  value       = var.aws_region
  depends_on  = [module.registry]
}

output "oidc_audience" {
  description = "The audience the release role trusts; in China set it as AWS_OIDC_AUDIENCE in the GitHub environment."
  value       = module.registry.oidc_audience
}

output "task_definition_arn" {
  description = "The revision Terraform registered last: `scripts/deploy-ecs.sh --base-revision` ships what Terraform changed in it."
  value       = module.service.task_definition_arn
}
