# Production: terraform plan -var-file=example.tfvars plans with nothing else.
# Replace the placeholders with your account, network and repository.
aws_account_id     = "123456789012" # your production account
aws_region         = "eu-west-1"
environment        = "production"
github_repository  = "OWNER/REPO"
github_environment = "release" # the environment with required reviewers
image_tag          = "production-0.1.0"

vpc_id             = "vpc-0f1e2d3c4b5a69788"
public_subnet_ids  = ["subnet-0f1e2d3c4b5a69711", "subnet-0f1e2d3c4b5a69712", "subnet-0f1e2d3c4b5a69713"]
private_subnet_ids = ["subnet-0f1e2d3c4b5a69721", "subnet-0f1e2d3c4b5a69722", "subnet-0f1e2d3c4b5a69723"]
certificate_arn    = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000002"

cpu                 = 512
memory              = 1024
min_capacity        = 3
max_capacity        = 20
metrics_cidr_blocks = ["10.1.0.0/16"]
log_retention_days  = 365
