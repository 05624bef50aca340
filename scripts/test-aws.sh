#!/usr/bin/env bash
# The AWS suite, with no AWS account: deploy/aws passes checkov, formats,
# validates offline, plans against an AWS emulator (moto, on 127.0.0.1) with
# nothing but each root's example variables, and applies there; then
# scripts/deploy-ecs.sh deploys to what was applied. What moto cannot show
# is named in the output and in docs/deploy.md.
#
#   scripts/test-aws.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
readonly AWS_TREE=deploy/aws ROOTS="staging production"
WORK=$(mktemp -d)
MOTO_PID=""
cleanup() {
  [[ -z $MOTO_PID ]] || kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

CHECKOV=$(python_tool checkov checkov==3.3.30)/checkov
apt_tool jq

log "static checks"
# Each root with its example variables, as the plan sees it (and as checkov
# needs, to judge the role's trust in repo:OWNER/REPO).
for root in $ROOTS; do
  check "checkov: $root, with its example variables, has no failed check (every skip justified inline)" \
    "$CHECKOV" --quiet --compact --skip-download --framework terraform \
    -d "$AWS_TREE/$root" --var-file "$AWS_TREE/$root/example.tfvars"
done

# The hashicorp/aws provider comes from a filesystem mirror: no Terraform
# registry is reachable from the machines that run this.
mirror=""
for dir in "${TF_PLUGIN_MIRROR:-}" /opt/tf-plugins "$HOME/.terraform.d/plugins" \
  "$HOME/.local/share/terraform/plugins" /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
  if [[ -n $dir && -d $dir/registry.terraform.io/hashicorp/aws/5.100.0 ]]; then
    mirror=$dir
    break
  fi
done
if ! command -v terraform >/dev/null; then
  echo "SKIPPED terraform fmt, init, validate, plan and apply: no terraform binary on this machine"
  report
  exit
fi
if [[ -z $mirror ]]; then
  echo "SKIPPED terraform init, validate, plan and apply: no filesystem mirror of hashicorp/aws 5.100.0"
  echo "        (a registry.terraform.io folder under a plugins directory, or TF_PLUGIN_MIRROR)"
  check "terraform fmt -check -recursive" terraform fmt -check -recursive "$AWS_TREE"
  report
  exit
fi
export TF_CLI_CONFIG_FILE=$WORK/terraform.tfrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
EOF
printf '     terraform %s, provider mirror %s\n' "$(terraform version -json | jq -r .terraform_version)" "$mirror"

# tf DIR ARGS...: terraform in DIR, bounded: the emulator must never hang CI.
tf() { (cd "$1" && timeout 300 terraform "${@:2}" -no-color >"$WORK/terraform.log" 2>&1) || { tail -n 25 "$WORK/terraform.log"; return 1; }; }

check "terraform fmt -check -recursive" terraform fmt -check -recursive "$AWS_TREE"
cp -a "$AWS_TREE" "$WORK/validate"
for root in $ROOTS; do
  check "$root: terraform init -backend=false (from the mirror, lock file as committed)" \
    tf "$WORK/validate/$root" init -backend=false -input=false -lockfile=readonly
  check "$root: terraform validate" tf "$WORK/validate/$root" validate
done

log "the AWS emulator (moto) on 127.0.0.1"
MOTO=$(python_tool moto "moto[server]==5.2.5")
AWS_CLI=$(python_tool awscli awscli==1.46.3)
port=$(free_port)
# Managed policies such as AmazonECSTaskExecutionRolePolicy exist in moto
# only when asked for.
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$MOTO/moto_server" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_for_http "http://127.0.0.1:$port/moto-api/" 30 || die "moto did not start: $(tail -n 5 "$WORK/moto.log")"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=eu-west-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port PATH=$AWS_CLI:$PATH

# to_emulator ROOT_DIR: the test-only override that points the provider at
# moto and keeps state local. The roots themselves never mention it.
to_emulator() {
  local service endpoints=""
  for service in acm applicationautoscaling ec2 ecr ecs elbv2 iam logs sts wafv2; do
    endpoints+="    $service = \"$AWS_ENDPOINT_URL\""$'\n'
  done
  cat >"$1/emulator_override.tf" <<EOF
terraform {
  backend "local" {}
}

provider "aws" {
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  endpoints {
$endpoints  }
}
EOF
}
example_value() { sed -n "s/^$2 *= *\"\\([^\"]*\\)\".*/\\1/p" "$AWS_TREE/$1/example.tfvars"; }

log "plan every root against the emulator, with its example variables only"
cp -a "$AWS_TREE" "$WORK/plan"
for root in $ROOTS; do
  dir=$WORK/plan/$root
  to_emulator "$dir"
  plans() { tf "$1" init -input=false && tf "$1" plan -input=false -var-file=example.tfvars -out=plan.tfplan &&
    (cd "$1" && terraform show -json plan.tfplan >plan.json); }
  check "$root: terraform plan -var-file=example.tfvars" plans "$dir"
  check "$root: the plan keeps deploy/aws's promises (tests/aws/check_plan.py)" \
    python3 tests/aws/check_plan.py "$dir/plan.json" "$root" "$(example_value "$root" github_environment)"
done

log "apply against the emulator: production, then staging in the same account"
# moto has no Application Auto Scaling ListTagsForResource, which the
# provider retries for minutes: the autoscaling resources are applied
# nowhere here, and verified by the plan only.
cp -a "$AWS_TREE" "$WORK/apply"
rm "$WORK/apply/modules/service/autoscaling.tf"
echo "     not applied (moto lacks Application Auto Scaling ListTagsForResource): autoscaling, verified by the plan only"
aws_id() { aws "$@" --output text; }
vpc=$(aws_id ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId)
subnets=$(for zone in a b; do
  aws_id ec2 create-subnet --vpc-id "$vpc" --cidr-block "10.0.$([[ $zone == a ]] && echo 1 || echo 2).0/24" \
    --availability-zone "eu-west-1$zone" --query Subnet.SubnetId
done | jq -Rnc '[inputs]')
certificate=$(aws_id acm request-certificate --domain-name api.example.com --query CertificateArn)
network=(-var "vpc_id=$vpc" -var "public_subnet_ids=$subnets" -var "private_subnet_ids=$subnets"
  -var "certificate_arn=$certificate")
applies() { tf "$1" init -input=false && tf "$1" apply -input=false -auto-approve -var-file=example.tfvars "${@:2}"; }
to_emulator "$WORK/apply/production"
check "production: terraform apply" applies "$WORK/apply/production" "${network[@]}"
check "production: what the emulator holds (tests/aws/check_apply.py)" \
  "$MOTO/python" tests/aws/check_apply.py production release
provider_arn=$(cd "$WORK/apply/production" && terraform output -raw oidc_provider_arn)
to_emulator "$WORK/apply/staging"
check "staging: terraform apply, sharing production's repository and OIDC provider" \
  applies "$WORK/apply/staging" "${network[@]}" -var create_repository=false -var "oidc_provider_arn=$provider_arn"
check "staging: what the emulator holds" "$MOTO/python" tests/aws/check_apply.py staging staging

log "scripts/deploy-ecs.sh against what was applied"
image=$(cd "$WORK/apply/production" && terraform output -raw repository_url):production-0.2.0
deploy() { scripts/deploy-ecs.sh --cluster api-production --service api --image "$image" --timeout "$1"; }
running_image() {
  local definition
  definition=$(aws_id ecs describe-services --cluster api-production --services api --query 'services[0].taskDefinition')
  aws_id ecs describe-task-definition --task-definition "$definition" --query 'taskDefinition.containerDefinitions[0].image'
}
# moto starts no tasks: a service that wants one is never steady.
check "deploy-ecs.sh: fails when no steady state comes in time" fails deploy 5
aws ecs update-service --cluster api-production --service api --desired-count 0 >/dev/null
deployed() { deploy 60 && [[ $(running_image) == "$image" ]]; }
check "deploy-ecs.sh: registers a revision with the new image, and the service runs it" deployed
# A stand-in `aws` that drops update-service: the service stays on its old
# revision, as after a circuit-breaker rollback.
mkdir "$WORK/rollback"
# shellcheck disable=SC2016 # $1, $2 and $@ are the stand-in's own arguments
printf '#!/bin/sh\n[ "$1 $2" = "ecs update-service" ] && exit 0\nexec %q "$@"\n' "$AWS_CLI/aws" >"$WORK/rollback/aws"
chmod +x "$WORK/rollback/aws"
rolled_back() { PATH=$WORK/rollback:$PATH deploy 30; }
check "deploy-ecs.sh: fails when the service is left on another revision (a rollback)" fails rolled_back

report
