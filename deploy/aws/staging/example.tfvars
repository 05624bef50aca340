# Staging: terraform plan -var-file=example.tfvars plans with nothing else.
# Replace the placeholders with your account, network and repository.
# Staging runs the same production image as production, smaller.
aws_account_id     = "123456789012" # your staging account
aws_region         = "eu-west-1"
environment        = "staging"
github_repository  = "OWNER/REPO"
github_environment = "staging"
image_tag          = "production-0.1.0"

vpc_id             = "vpc-0a1b2c3d4e5f60718"
public_subnet_ids  = ["subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60712"]
private_subnet_ids = ["subnet-0a1b2c3d4e5f60721", "subnet-0a1b2c3d4e5f60722"]
certificate_arn    = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000001"

min_capacity        = 1
max_capacity        = 3
metrics_cidr_blocks = ["10.0.0.0/16"]
# Secure defaults, as in production: deletion protection on (set it to false
# before `terraform destroy`) and logs kept 365 days.

# Staging in the same account as production: production's root creates the
# repository and the OIDC provider; uncomment these here.
# create_repository = false
# oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
