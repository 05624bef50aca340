# The image repository that scripts/push.sh and the release workflow push
# to: tags never change once pushed (the Kubernetes manifests and ECS task
# definitions name images by tag), every image is scanned on push, and old
# images expire so that the repository does not grow forever.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

# ARNs and host names follow the region's partition: arn:aws-cn: and
# amazonaws.com.cn in China, arn:aws-us-gov: in GovCloud.
locals {
  partition      = data.aws_partition.current.partition
  region         = data.aws_region.current.name
  account_id     = data.aws_caller_identity.current.account_id
  repository_arn = "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${var.name}"
  repository_url = "${local.account_id}.dkr.ecr.${local.region}.${data.aws_partition.current.dns_suffix}/${var.name}"
}

resource "aws_ecr_repository" "this" {
  count = var.create_repository ? 1 : 0

  name                 = var.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  count = var.create_repository ? 1 : 0

  repository = aws_ecr_repository.this[0].name
  # No rule for untagged images: with immutable tags nothing is ever
  # untagged but the referrers (each image's SBOMs, its attestations), and
  # an untagged rule would expire those while the image they describe is
  # kept. ECR deletes an image's referrers when a rule expires the image.
  policy = jsonencode({
    rules = [for i, prefix in ["staging-", "production-"] : {
      rulePriority = i + 1
      description  = "Keep the last ${var.images_to_keep} ${prefix}* images"
      selection = {
        tagStatus     = "tagged"
        tagPrefixList = [prefix]
        countType     = "imageCountMoreThan"
        countNumber   = var.images_to_keep
      }
      action = { type = "expire" }
    }]
  })
}
