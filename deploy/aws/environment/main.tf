# One environment of the api on AWS: its image repository and release role
# (modules/registry) and its ECS Fargate service behind an ALB
# (modules/service). deploy/aws/staging and deploy/aws/production are roots
# made of links to these files: the environments differ only in their
# variables (example.tfvars) and their state (backend.hcl), so staging is
# production at another size. deploy/aws/bootstrap.sh applies them in order
# (docs/deploy.md, "From an empty account to a running service").

module "registry" {
  source = "../modules/registry"

  create_repository  = var.create_repository
  oidc_provider_arn  = var.oidc_provider_arn
  github_repository  = var.github_repository
  github_environment = var.github_environment
  release_tags_only  = var.trust_release_tags_only
  role_name          = "api-release-${var.environment}"
  # Names only (no resource of the service module behind them): the
  # bootstrap applies this module alone, before the service exists.
  deploy_target = module.service.deploy_target
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
  fargate_spot               = var.fargate_spot
}
