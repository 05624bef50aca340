variable "name" {
  description = "Name of the ECR repository (scripts/push.sh pushes to `api` unless told otherwise)."
  type        = string
  default     = "api"
  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*$", var.name))
    error_message = "The repository name must be lowercase letters and digits, separated by single '.', '_' or '-'."
  }
}

variable "create_repository" {
  description = "Create the repository here. False when another root (another environment in the same AWS account) already did: the role then gets access to it by name."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images; null for ECR's AWS-managed key (aws/ecr)."
  type        = string
  default     = null
}

variable "images_to_keep" {
  description = "How many staging-* images, and how many production-* images, to keep: older ones expire. Keep enough to roll back to."
  type        = number
  default     = 30
  validation {
    condition     = var.images_to_keep >= 5
    error_message = "Keep at least 5 images of each kind, so that a rollback has somewhere to go."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the account's existing GitHub OIDC provider (token.actions.githubusercontent.com); null creates it. An account holds only one per URL."
  type        = string
  default     = null
  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be the ARN of an IAM OIDC provider for token.actions.githubusercontent.com."
  }
}

variable "github_repository" {
  description = "The GitHub repository whose release workflow may assume the role, as the repo part of its OIDC subject: OWNER/REPO, or OWNER@OWNER_ID/REPO@REPO_ID for a repository with GitHub's immutable subject claims (created or renamed after 2026-07-15, or opted in)."
  type        = string
  validation {
    condition     = can(regex("^([A-Za-z0-9-]+/[A-Za-z0-9._-]+|[A-Za-z0-9-]+@[0-9]+/[A-Za-z0-9._-]+@[0-9]+)$", var.github_repository))
    error_message = "github_repository must be OWNER/REPO (e.g. acme/api), or OWNER@OWNER_ID/REPO@REPO_ID (e.g. acme@123456/api@456789) where GitHub's immutable subject claims apply."
  }
}

variable "release_tags_only" {
  description = "Trust jobs of release tags only: the subject must end in :ref:refs/tags/v<anything>, which GitHub writes only once the repository's OIDC subject template includes ref (claim keys repo, context, ref). False trusts GitHub's default subject, whatever the ref."
  type        = bool
  default     = true
}

variable "github_environment" {
  description = "The GitHub environment of the workflow jobs that may assume the role: their OIDC token's subject is repo:OWNER/REPO:environment:<this>."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+$", var.github_environment))
    error_message = "github_environment must be a GitHub environment name (letters, digits, '.', '_', '-')."
  }
}

variable "role_name" {
  description = "Name of the release role."
  type        = string
}

variable "deploy_target" {
  description = "The ECS service the role may deploy, by name (the service module's deploy_target): new revisions of its family, passing only its two roles. Names, not resources, so that this module applies before the service exists."
  type = object({
    cluster_name        = string
    service_name        = string
    family              = string
    execution_role_name = string
    task_role_name      = string
  })
}
