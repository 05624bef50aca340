#!/usr/bin/env bash
# From an empty account to a running service, one root at a time, in the
# only order that works: the registry (ECR repository, GitHub's OIDC
# provider, the release role) before anything that runs the image, then,
# once the first image is pushed, the service. docs/deploy.md walks through
# it; scripts/test-aws.sh runs exactly these steps against an AWS emulator.
#
#   deploy/aws/bootstrap.sh ROOT registry  [--auto-approve] [-- TERRAFORM_PLAN_ARGS...]
#   deploy/aws/bootstrap.sh ROOT service   [--auto-approve] [-- TERRAFORM_PLAN_ARGS...]
#   deploy/aws/bootstrap.sh ROOT variables
#
# ROOT is deploy/aws/staging or deploy/aws/production (or a copy). Each step
# runs `terraform init` (with ROOT/backend.hcl when there is one), plans into
# ROOT/<step>.tfplan, shows the plan, asks before it applies it (unless
# --auto-approve), and applies exactly that plan. TERRAFORM_PLAN_ARGS go to
# `terraform plan` (terraform.tfvars in ROOT is read without them).
#   registry   plans -target=module.registry: nothing that runs the image
#   service    plans everything else, and applies it once the image the
#              variables name (image_tag) is in the repository
#   variables  prints what the GitHub environment of this root needs
# Needs terraform (1.11 or newer), the AWS CLI and jq.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

(($# >= 2)) || { usage >&2; exit 2; }
root=$1 step=$2
shift 2
auto_approve=0 plan_args=()
while (($#)); do
  case $1 in
    --auto-approve) auto_approve=1 ;;
    --) shift; plan_args=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ -f $root/versions.tf ]] || die "$root is not a root of deploy/aws (no versions.tf)"
command -v terraform >/dev/null || die "terraform is needed (1.11 or newer)"
command -v jq >/dev/null || die "jq is needed"
tf() { terraform -chdir="$root" "$@"; }
output() { tf output -raw "$1"; }

init() {
  local backend=()
  [[ -f $root/backend.hcl ]] && backend=(-backend-config=backend.hcl)
  tf init -input=false "${backend[@]}" >/dev/null
}

# plan NAME PLAN_ARGS...: plans into ROOT/NAME.tfplan and shows it; then
# PLANNED holds the plan as JSON (its variables, its outputs).
plan() {
  local name=$1
  shift
  tf plan -input=false -out="$name.tfplan" "$@" "${plan_args[@]}"
  PLANNED=$(tf show -json "$name.tfplan")
}
planned() { jq -r "$1" <<<"$PLANNED"; }

# apply NAME: applies ROOT/NAME.tfplan, that very plan, once approved.
apply() {
  local answer
  if ((!auto_approve)); then
    read -r -p "Apply $root/$1.tfplan? Only 'yes' applies it: " answer
    [[ $answer == yes ]] || die "not applied"
  fi
  tf apply -input=false "$1.tfplan"
}

# image_is_pushed REPOSITORY TAG REGION: the first image must be there
# before a service starts tasks that pull it. Only ImageNotFoundException
# means "not pushed yet"; any other error (no access, no network) is
# reported as it is.
image_is_pushed() {
  local answer
  if answer=$(aws ecr describe-images --region "$3" --repository-name "$1" --image-ids "imageTag=$2" \
    --query 'imageDetails[0].imageDigest' --output text 2>&1); then
    printf '%s:%s is in the repository (%s)\n' "$1" "$2" "$answer"
  elif [[ $answer == *ImageNotFoundException* ]]; then
    die "$1:$2 is not in the repository yet: push it first (scripts/push.sh --ecr, see docs/deploy.md)"
  else
    die "cannot tell whether $1:$2 is in the repository: $answer"
  fi
}

case $step in
  registry)
    init
    plan registry -target=module.registry
    apply registry
    printf '\nrepository_url   = %s\nrelease_role_arn = %s\n' "$(output repository_url)" "$(output release_role_arn)"
    printf 'next: push the image %s, then: %s %s service\n' "$(planned .variables.image_tag.value)" "$0" "$root"
    ;;
  service)
    init
    plan service
    image_is_pushed "$(planned .planned_values.outputs.repository_name.value)" \
      "$(planned .variables.image_tag.value)" "$(planned .variables.aws_region.value)"
    apply service
    printf '\nalb_dns_name = %s\n' "$(output alb_dns_name)"
    ;;
  variables)
    printf 'AWS_ROLE_ARN=%s\nAWS_REGION=%s\nECS_CLUSTER=%s\nECS_SERVICE=%s\n' "$(output release_role_arn)" \
      "$(output aws_region)" "$(output cluster_name)" "$(output service_name)"
    [[ $(output oidc_audience) == sts.amazonaws.com ]] || printf 'AWS_OIDC_AUDIENCE=%s\n' "$(output oidc_audience)"
    ;;
  *) usage >&2; die "unknown step: $step" ;;
esac
