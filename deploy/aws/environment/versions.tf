terraform {
  required_version = ">= 1.5"
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

  default_tags {
    tags = {
      Service     = "api"
      Environment = var.environment
      ManagedBy   = "terraform (deploy/aws)"
    }
  }
}
