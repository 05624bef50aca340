#!/usr/bin/env bash
# From an empty account to a running service, one root at a time, in the
# only order that works: the registry (ECR repository, GitHub's OIDC
# provider, the release role) before anything that runs the image; then the
# first release, which builds the image in CI and pushes it (and deploys
# nothing: there is no service yet); then the service, which starts with
# that image. docs/deploy.md walks through it; scripts/test-aws.sh runs
# these steps against an AWS emulator.
#
#   deploy/aws/bootstrap.sh ROOT registry  [--auto-approve] [-- TERRAFORM_PLAN_ARGS...]
#   deploy/aws/bootstrap.sh ROOT variables
#   deploy/aws/bootstrap.sh ROOT service   [--auto-approve] [--timeout SECONDS] [-- TERRAFORM_PLAN_ARGS...]
#
# ROOT is deploy/aws/staging or deploy/aws/production (or a copy). Each step
# that applies runs `terraform init` (with ROOT/backend.hcl when there is
# one), plans into ROOT/<step>.tfplan, shows the plan, asks before it
# applies it (unless --auto-approve), and applies exactly that plan.
# TERRAFORM_PLAN_ARGS go to `terraform plan` (terraform.tfvars in ROOT is
# read without them).
#   registry   plans -target=module.registry: nothing that runs the image.
#              Refuses to create GitHub's OIDC provider where the account
#              has one (IAM holds one per URL), naming the variable to set.
#   variables  prints what the GitHub environment of this root needs, once
#              the registry step is applied
#   service    plans everything else; applies it once the image the
#              variables name (image_tag) is in the repository; then follows
#              the service's first deployment until ECS says COMPLETED
#              (fails on FAILED, or after --timeout, default 900 s)
# Needs terraform (1.11 or newer), the AWS CLI and jq.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

(($# >= 2)) || { usage >&2; exit 2; }
root=$1 step=$2
shift 2
auto_approve=0 timeout=900 plan_args=()
while (($#)); do
  case $1 in
    --auto-approve) auto_approve=1 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    --) shift; plan_args=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ -f $root/versions.tf ]] || die "$root is not a root of deploy/aws (no versions.tf)"
command -v terraform >/dev/null || die "terraform is needed (1.11 or newer)"
command -v jq >/dev/null || die "jq is needed"
deploy_ecs=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/deploy-ecs.sh
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

# check_oidc_provider: IAM holds one OIDC provider per URL, so the plan must
# not create GitHub's where the account has one (the apply would stop at
# EntityAlreadyExists); and a provider it is given must accept the audience
# the role trusts, or every release's token is refused.
check_oidc_provider() {
  local region creating given audience existing client_ids
  region=$(planned .variables.aws_region.value)
  creating=$(planned '[.resource_changes[]? | select(.type == "aws_iam_openid_connect_provider"
    and (.change.actions | index("create")))] | length')
  given=$(planned '.variables.oidc_provider_arn.value // empty')
  audience=$(planned '.planned_values.outputs.oidc_audience.value // empty')
  if ((creating)); then
    existing=$(aws iam list-open-id-connect-providers --region "$region" --output text \
      --query "OpenIDConnectProviderList[?ends_with(Arn, '/token.actions.githubusercontent.com')].Arn")
    [[ -z $existing || $existing == None ]] ||
      die "this account already has GitHub's OIDC provider, $existing, and IAM holds one per URL: creating another would fail (EntityAlreadyExists). Use it: set oidc_provider_arn = \"$existing\" in $root/terraform.tfvars (docs/deploy.md, step 2), then run this step again."
  elif [[ -n $given && -n $audience ]]; then
    client_ids=$(aws iam get-open-id-connect-provider --region "$region" --open-id-connect-provider-arn "$given" \
      --query ClientIDList --output json) || die "cannot read the OIDC provider $given (oidc_provider_arn)"
    jq -e --arg audience "$audience" 'index($audience) != null' <<<"$client_ids" >/dev/null ||
      die "the OIDC provider $given does not accept the audience $audience (its client IDs: $(jq -r 'join(", ")' <<<"$client_ids")), so IAM would refuse every release's token. Add it: aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn $given --client-id $audience"
  fi
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
    die "$1:$2 is not in the repository yet: the first release pushes it (push the tag v${2#*-}, docs/deploy.md, \"From an empty account to a running service\"), or set image_tag to a version released already"
  else
    die "cannot tell whether $1:$2 is in the repository: $answer"
  fi
}

case $step in
  registry)
    init
    plan registry -target=module.registry
    check_oidc_provider
    apply registry
    printf '\nrepository_url   = %s\nrelease_role_arn = %s\n' "$(output repository_url)" "$(output release_role_arn)"
    printf 'next: the GitHub environment (%s %s variables), then the first release, then: %s %s service\n' \
      "$0" "$root" "$0" "$root"
    ;;
  variables)
    printf 'AWS_ROLE_ARN=%s\nAWS_REGION=%s\nECR_REPOSITORY_URL=%s\nECS_CLUSTER=%s\nECS_SERVICE=%s\n' \
      "$(output release_role_arn)" "$(output aws_region)" "$(output repository_url)" \
      "$(output cluster_name)" "$(output service_name)"
    [[ $(output oidc_audience) == sts.amazonaws.com ]] || printf 'AWS_OIDC_AUDIENCE=%s\n' "$(output oidc_audience)"
    printf '(the role trusts GitHub tokens whose subject is %s)\n' "$(output trusted_subject)" >&2
    ;;
  service)
    [[ $timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
    init
    plan service
    check_oidc_provider
    image_is_pushed "$(planned .planned_values.outputs.repository_name.value)" \
      "$(planned .variables.image_tag.value)" "$(planned .variables.aws_region.value)"
    apply service
    # Terraform is done once ECS has accepted the service; its first tasks
    # may still fail (the execution role not yet usable, no route to ECR,
    # a bad image). The deployment says whether they run.
    region=$(planned .variables.aws_region.value)
    if ! AWS_REGION=$region AWS_DEFAULT_REGION=$region "$deploy_ecs" --cluster "$(output cluster_name)" \
      --service "$(output service_name)" --follow --timeout "$timeout"; then
      die "the service exists, but its first deployment did not complete (the events above say why). Once the cause is fixed, start another and follow it: scripts/deploy-ecs.sh --cluster $(output cluster_name) --service $(output service_name) --image $(output repository_url):$(planned .variables.image_tag.value)"
    fi
    printf '\nalb_dns_name = %s\n' "$(output alb_dns_name)"
    ;;
  *) usage >&2; die "unknown step: $step" ;;
esac
