# One environment of the api on AWS: its image repository and release role
# (modules/registry) and its ECS Fargate service behind an ALB
# (modules/service). deploy/aws/staging and deploy/aws/production are roots
# made of links to these files: the environments differ only in their
# variables (example.tfvars) and their state (backend.hcl), so staging is
# production at another size. docs/deploy.md, "ECS", has the order to apply.

module "registry" {
  source = "../modules/registry"

  create_repository  = var.create_repository
  oidc_provider_arn  = var.oidc_provider_arn
  github_repository  = var.github_repository
  github_environment = var.github_environment
  role_name          = "api-release-${var.environment}"
  deploy_target = {
    cluster_name       = module.service.cluster_name
    service_name       = module.service.service_name
    execution_role_arn = module.service.execution_role_arn
    task_role_arn      = module.service.task_role_arn
  }
}

module "service" {
  source = "../modules/service"

  environment                = var.environment
  image                      = module.registry.repository_url
  image_tag                  = var.image_tag
  cpu                        = var.cpu
  memory                     = var.memory
  min_capacity               = var.min_capacity
  max_capacity               = var.max_capacity
  vpc_id                     = var.vpc_id
  public_subnet_ids          = var.public_subnet_ids
  private_subnet_ids         = var.private_subnet_ids
  certificate_arn            = var.certificate_arn
  allow_plain_http           = var.allow_plain_http
  metrics_cidr_blocks        = var.metrics_cidr_blocks
  metrics_security_group_ids = var.metrics_security_group_ids
  deletion_protection        = var.deletion_protection
  log_retention_days         = var.log_retention_days
}
