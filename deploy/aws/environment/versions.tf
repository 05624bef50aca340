terraform {
  # 1.11: the S3 backend's use_lockfile (backend.hcl.example), generally
  # available since 1.11 (experimental in 1.10). tests/aws/check_constraints.py
  # holds this floor to the newest feature deploy/aws uses.
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State lives in S3, one key per environment, locked while it changes.
  # Partial configuration: `terraform init -backend-config=backend.hcl`
  # fills it in (see backend.hcl.example in each environment).
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region
  # Refuse to touch any other account, whatever credentials are in use.
  allowed_account_ids = [var.aws_account_id]

  # Every tagged resource gets these. Keys and values must suit every
  # service's tag pattern (IAM, ECS, ELB and CloudWatch Logs allow only
  # letters, digits, spaces and _.:/=+-@): no parentheses, no commas.
  default_tags {
    tags = {
      Service     = "api"
      Environment = var.environment
      ManagedBy   = "terraform"
      Source      = "deploy/aws/${var.environment}"
    }
  }
}
