variable "aws_account_id" {
  description = "The AWS account this environment lives in; the provider refuses any other."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits, e.g. 123456789012."
  }
}

variable "aws_region" {
  description = "The AWS region, e.g. eu-west-1: in the aws, aws-cn (China) or aws-us-gov (GovCloud) partition."
  type        = string
  # The partitions the release scripts know (ECR's host name, ARNs): the ISO
  # regions (us-iso-east-1, ...) and the European Sovereign Cloud
  # (eusc-de-east-1) have other host names and are refused here rather than
  # at the first release.
  validation {
    condition     = can(regex("^([a-z]{2}|us-gov)-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be a region of the aws, aws-cn or aws-us-gov partition, such as eu-west-1, cn-north-1 or us-gov-west-1 (ISO and European Sovereign Cloud regions are not supported)."
  }
}

variable "environment" {
  description = "staging or production."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "github_repository" {
  description = "The GitHub repository whose release workflow deploys here, as its OIDC subject names it: OWNER/REPO, or OWNER@OWNER_ID/REPO@REPO_ID where GitHub's immutable subject claims apply (docs/deploy.md, \"The release role's trust\")."
  type        = string
}

variable "trust_release_tags_only" {
  description = "The release role trusts jobs of release tags (refs/tags/v*) only. Needs the repository's OIDC subject template to include the ref (docs/deploy.md, \"The release role's trust\"); false trusts GitHub's default subject, from any ref."
  type        = bool
  default     = true
}

variable "github_environment" {
  description = "The GitHub environment whose jobs may assume this environment's release role (release.yml: staging, and release for production)."
  type        = string
}

variable "create_repository" {
  description = "Create the ECR repository and, unless oidc_provider_arn is given, GitHub's OIDC provider. False for the second environment in a shared account."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "The account's existing GitHub OIDC provider; null creates one."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "The image the service starts with (production-<version>); releases deploy newer ones."
  type        = string
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Task memory, MiB."
  type        = number
  default     = 512
}

variable "min_capacity" {
  description = "Fewest tasks."
  type        = number
}

variable "max_capacity" {
  description = "Most tasks."
  type        = number
}

variable "vpc_id" {
  description = "The VPC to run in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets for the load balancer (two zones or more)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets for the tasks."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS; null needs allow_plain_http."
  type        = string
  default     = null
}

variable "allow_plain_http" {
  description = "Serve plain HTTP when there is no certificate."
  type        = bool
  default     = false
}

variable "metrics_cidr_blocks" {
  description = "Networks allowed to scrape port 9000."
  type        = list(string)
  default     = []
}

variable "metrics_security_group_ids" {
  description = "Security groups allowed to scrape port 9000."
  type        = list(string)
  default     = []
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days to keep the service's logs."
  type        = number
  default     = 365
}

variable "fargate_spot" {
  description = "Part of the tasks on Fargate Spot: { on_demand_base, on_demand_weight, spot_weight }; null (the default) runs all on demand. See modules/service."
  type = object({
    on_demand_base   = number
    on_demand_weight = number
    spot_weight      = number
  })
  default = null
}
