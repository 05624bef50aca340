#!/usr/bin/env bash
# The AWS suite, with no AWS account. deploy/aws passes checkov, formats,
# validates; each root plans against an AWS emulator (moto, on 127.0.0.1)
# with nothing but its example variables, and every plan meets AWS's own
# published constraints (tests/aws/check_constraints.py, with a mutation
# test per rule), which the emulator does not check. Then the bootstrap
# as docs/deploy.md walks it: deploy/aws/bootstrap.sh's registry step for
# both roots (refusing a second GitHub OIDC provider), the first release
# (deploy/aws/release.sh as the release roles, with the emulator's IAM
# enforcement on: it pushes, and deploys nothing while there is no
# service), then the service step, which follows the first deployment.
# Every call of the release is checked against the role's policy
# (tests/aws/release_calls.py); scripts/deploy-ecs.sh deploys, and fails
# fast on each way ECS reports a deployment failing (FAILED, rolled back,
# replaced, the service gone). What moto cannot show is named in the
# output and in docs/deploy.md.
#
#   scripts/test-aws.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
readonly AWS_TREE=deploy/aws ROOTS="staging production" TESTS=tests/aws
WORK=$(mktemp -d)
MOTO_PID=""
cleanup() {
  [[ -z $MOTO_PID ]] || kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

CHECKOV=$(python_tool checkov checkov==3.3.30)/checkov
apt_tool jq
apt_tool shellcheck

log "static checks"
# Each root with its example variables, as the plan sees it (and as checkov
# needs, to judge the role's trust in repo:OWNER/REPO).
for root in $ROOTS; do
  check "checkov: $root, with its example variables, has no failed check (every skip justified inline)" \
    "$CHECKOV" --quiet --compact --skip-download --framework terraform \
    -d "$AWS_TREE/$root" --var-file "$AWS_TREE/$root/example.tfvars"
done
# .ci/run's shellcheck covers scripts/; these live beside what they test.
check "shellcheck: deploy/aws/bootstrap.sh and tests/aws/*.sh" shellcheck -x "$AWS_TREE/bootstrap.sh" "$TESTS"/*.sh

command -v terraform >/dev/null ||
  die "terraform is needed (1.11 or newer; CI installs it with hashicorp/setup-terraform)"
export TF_CLI_CONFIG_FILE=$WORK/terraform.tfrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# The hashicorp/aws provider from a filesystem mirror: this kind of machine
# has one and reaches no Terraform registry. Elsewhere (GitHub's runners)
# the mirror is made from the registry once; `init -lockfile=readonly`
# then checks it against the lock files' hashes either way.
mirror=""
for dir in "${TF_PLUGIN_MIRROR:-}" /opt/tf-plugins "$HOME/.terraform.d/plugins" \
  "$HOME/.local/share/terraform/plugins" /usr/local/share/terraform/plugins /usr/share/terraform/plugins \
  "$CACHE_DIR/terraform-mirror"; do
  if [[ -n $dir && -d $dir/registry.terraform.io/hashicorp/aws/5.100.0 ]]; then
    mirror=$dir
    break
  fi
done
if [[ -z $mirror ]]; then
  log "mirroring hashicorp/aws 5.100.0 from the Terraform registry into $CACHE_DIR/terraform-mirror"
  (cd "$AWS_TREE/production" && terraform providers mirror -platform=linux_amd64 "$CACHE_DIR/terraform-mirror" >&2)
  mirror=$CACHE_DIR/terraform-mirror
fi
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

# quiet COMMAND...: a test program's report in one line (its last) when it
# passes, in full when it fails.
quiet() {
  local out status=0
  out=$("$@" 2>&1) || status=$?
  if ((status)); then printf '%s\n' "$out" | tail -n 60; else printf '     %s\n' "$(tail -n 1 <<<"$out")"; fi
  return "$status"
}
silently() { "$@" >/dev/null 2>&1; }

# tf DIR ARGS...: terraform in DIR, bounded: the emulator must never hang CI.
tf() { (cd "$1" && timeout 300 terraform "${@:2}" -no-color >"$WORK/terraform.log" 2>&1) || { tail -n 25 "$WORK/terraform.log"; return 1; }; }

check "terraform fmt -check -recursive" terraform fmt -check -recursive "$AWS_TREE"
cp -a "$AWS_TREE" "$WORK/validate"
for root in $ROOTS; do
  check "$root: terraform init -backend=false (from the mirror, lock file as committed)" \
    tf "$WORK/validate/$root" init -backend=false -input=false -lockfile=readonly
  check "$root: terraform validate" tf "$WORK/validate/$root" validate
done

log "AWS's constraints that need no plan"
MOTO=$(python_tool moto "moto[server]==5.2.5")
AWS_CLI=$(python_tool awscli awscli==1.46.3)
# moto[server] brings botocore (AWS's service models, whose constraints the
# checks read) and, through cfn-lint, regex (for their \p{...} patterns).
MODELS_PY=$MOTO/python
check "the Terraform tree: version floors, no literal partition (check_constraints.py tree)" \
  quiet "$MODELS_PY" "$TESTS/check_constraints.py" tree "$AWS_TREE"
check "every AWS call of the release path is in the permission table (release_calls.py scan)" \
  quiet "$MODELS_PY" "$TESTS/release_calls.py" scan

log "the AWS emulator (moto) on 127.0.0.1"
port=$(free_port)
# Managed policies such as AmazonECSTaskExecutionRolePolicy exist in moto
# only when asked for.
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$MOTO/moto_server" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_for_http "http://127.0.0.1:$port/moto-api/" 30 || die "moto did not start: $(tail -n 5 "$WORK/moto.log")"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=eu-west-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port PATH=$AWS_CLI:$PATH
readonly MOTO_URL=$AWS_ENDPOINT_URL

# to_emulator ROOT_DIR: the test-only override that points the provider at
# moto and keeps state local. The roots themselves never mention it.
to_emulator() {
  local service endpoints=""
  for service in acm applicationautoscaling ec2 ecr ecs elbv2 iam logs sts wafv2; do
    endpoints+="    $service = \"$MOTO_URL\""$'\n'
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
# plans DIR OUT.json PLAN_ARGS...: a plan of DIR with its example variables, as JSON.
plans() {
  tf "$1" init -input=false && tf "$1" plan -input=false -var-file=example.tfvars -out=plan.tfplan "${@:3}" &&
    (cd "$1" && terraform show -json plan.tfplan >"$2")
}
# tree_copy NAME: a copy of deploy/aws pointed at the emulator (every root).
tree_copy() {
  cp -a "$AWS_TREE" "$WORK/$1"
  for root in $ROOTS; do to_emulator "$WORK/$1/$root"; done
}

log "plan every root against the emulator, with its example variables only"
tree_copy plan
for root in $ROOTS; do
  json=$WORK/$root.plan.json
  check "$root: terraform plan -var-file=example.tfvars" plans "$WORK/plan/$root" "$json"
  check "$root: the plan keeps deploy/aws's promises (check_plan.py)" \
    quiet python3 "$TESTS/check_plan.py" "$json" "$root" "$(example_value "$root" github_environment)"
  check "$root: every planned value meets AWS's published constraints (check_constraints.py)" \
    quiet "$MODELS_PY" "$TESTS/check_constraints.py" plan --every-rule "$json"
  check "$root: the release role allows every call of the release, and no more (release_calls.py)" \
    quiet "$MODELS_PY" "$TESTS/release_calls.py" check "$json"
done

log "the constraint and permission checks fail when a defect comes back"
check "mutation tests: each constraint rule catches its defect (test_constraints.py)" \
  quiet "$MODELS_PY" "$TESTS/test_constraints.py" "$WORK/production.plan.json" "$AWS_TREE"
check "the permission table misses ecs:TagResource on create when its statement is gone" \
  fails silently "$MODELS_PY" "$TESTS/release_calls.py" check "$WORK/production.plan.json" \
  --without-statement EcsTagOnlyTheRevisionsItRegisters
# Issue 20's first two defects, put back in the sources, planned for real:
# moto accepts the plan; the constraints name both.
tree_copy defects
sed -i 's/ManagedBy   = "terraform"/ManagedBy   = "terraform (deploy\/aws)"/' "$WORK/defects/environment/versions.tf"
sed -i "s/\"To the API port of the tasks\"/\"To the tasks' API port\"/" "$WORK/defects/modules/service/network.tf"
old_defects_found() {
  plans "$WORK/defects/production" "$WORK/defects.json" || return 1
  local found
  found=$("$MODELS_PY" "$TESTS/check_constraints.py" plan "$WORK/defects.json") && return 1
  grep -q "tag ManagedBy = 'terraform (deploy/aws)'" <<<"$found" && grep -q "To the tasks' API port" <<<"$found"
}
check "a tag value with parentheses and an apostrophe in a rule description: moto plans them, the constraints refuse both" \
  old_defects_found
# terraform_said MESSAGE: terraform's last output says MESSAGE (it wraps
# its error messages at the terminal's width).
terraform_said() { tr -s ' \n' '  ' <"$WORK/terraform.log" | grep -qF "$1"; }
# Sizes Fargate refuses stop at the plan, with the sizes it offers.
refuses_size() {
  ! tf "$WORK/plan/production" plan -input=false -var-file=example.tfvars -var "cpu=$1" -var "memory=$2" &&
    terraform_said "Fargate has no task of $1 CPU units"
}
# (1024/1024 too is refused by the constraint layer's mutation test above.)
check "terraform plan refuses 256 CPU units with 1536 MiB, naming the sizes Fargate offers" refuses_size 256 1536
# A partition the release scripts do not know stops at the plan.
refuses_region() {
  ! tf "$WORK/plan/production" plan -input=false -var-file=example.tfvars -var "aws_region=$1" >/dev/null &&
    terraform_said "ISO and European Sovereign Cloud regions are not supported"
}
refuses_partitions() { refuses_region us-iso-east-1 && refuses_region eusc-de-east-1; }
check "terraform plan refuses us-iso-east-1 and eusc-de-east-1 (partitions the release does not know)" refuses_partitions
# The same root in China: every ARN arn:aws-cn:, every host amazonaws.com.cn;
# for a repository with GitHub's immutable subject claims, trusting GitHub's
# default subject (trust_release_tags_only = false).
check "production planned in cn-north-1, for a repository with immutable subject claims, any ref" \
  plans "$WORK/plan/production" "$WORK/china.plan.json" -var aws_region=cn-north-1 \
  -var "certificate_arn=arn:aws-cn:acm:cn-north-1:123456789012:certificate/00000000-0000-0000-0000-000000000002" \
  -var github_repository=OWNER@123456/REPO@456789 -var trust_release_tags_only=false
check "the China plan meets the constraints, partition included" \
  quiet "$MODELS_PY" "$TESTS/check_constraints.py" plan --every-rule "$WORK/china.plan.json"
check "the China plan's role trusts repo:OWNER@123456/REPO@456789:environment:release (StringEquals)" \
  quiet python3 "$TESTS/check_plan.py" --trust "$WORK/china.plan.json" production StringEquals \
  repo:OWNER@123456/REPO@456789:environment:release

# Fargate Spot (optional): a capacity provider strategy instead of the launch type.
check "production with fargate_spot = {on_demand_base = 2, on_demand_weight = 1, spot_weight = 3}" \
  plans "$WORK/plan/production" "$WORK/spot.plan.json" \
  -var 'fargate_spot={on_demand_base=2,on_demand_weight=1,spot_weight=3}'
check "the Spot plan: the strategy, and the cluster's capacity providers" \
  quiet python3 "$TESTS/check_plan.py" --fargate-spot "$WORK/spot.plan.json" 2 1 3
check "the Spot plan meets AWS's constraints" quiet "$MODELS_PY" "$TESTS/check_constraints.py" plan "$WORK/spot.plan.json"

# X-Ray (optional): the ADOT collector sidecar, the api exporting to it.
check "production with xray_tracing = true, xray_sampling_ratio = 0.25" \
  plans "$WORK/plan/production" "$WORK/xray.plan.json" -var xray_tracing=true -var xray_sampling_ratio=0.25
check "the X-Ray plan: the sidecar, pinned, the api's OTEL_* variables, the stop order, the task role's two actions" \
  quiet python3 "$TESTS/check_plan.py" --xray-tracing "$WORK/xray.plan.json" 0.25
check "the X-Ray plan meets AWS's constraints" quiet "$MODELS_PY" "$TESTS/check_constraints.py" plan "$WORK/xray.plan.json"

log "the bootstrap against the emulator, as docs/deploy.md walks it: production, then staging in the same account"
# moto has no Application Auto Scaling ListTagsForResource, which the
# provider retries for minutes: the autoscaling resources are applied
# nowhere here, and verified by the plan only.
tree_copy apply
rm "$WORK/apply/modules/service/autoscaling.tf"
echo "     not applied (moto lacks Application Auto Scaling ListTagsForResource): autoscaling, verified by the plan only"
aws_id() { aws "$@" --output text; }
vpc=$(aws_id ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId)
subnets=$(for zone in a b; do
  aws_id ec2 create-subnet --vpc-id "$vpc" --cidr-block "10.0.$([[ $zone == a ]] && echo 1 || echo 2).0/24" \
    --availability-zone "eu-west-1$zone" --query Subnet.SubnetId
done | jq -Rnc '[inputs]')
certificate=$(aws_id acm request-certificate --domain-name api.example.com --query CertificateArn)
# The first image is the first release's: production-<Cargo.toml's version>.
first_image=production-$(crate_version)
network=(-var "vpc_id=$vpc" -var "public_subnet_ids=$subnets" -var "private_subnet_ids=$subnets"
  -var "certificate_arn=$certificate" -var "image_tag=$first_image")
# moto records no deployment after a service's first, and no rollout state:
# the AWS CLI's stand-in reports them as ECS does (tests/aws/ecs-as-reported.sh).
mkdir "$WORK/reported"
ln -s "$PWD/$TESTS/ecs-as-reported.sh" "$WORK/reported/aws"
export REAL_AWS=$AWS_CLI/aws
# bootstrap ROOT STEP PLAN_ARGS...: deploy/aws/bootstrap.sh, as docs/deploy.md
# runs it, with the emulator's network; its output in $WORK/bootstrap.log.
bootstrap_quietly() {
  PATH=$WORK/reported:$PATH timeout 600 "$AWS_TREE/bootstrap.sh" "$WORK/apply/$1" "$2" --auto-approve --timeout 60 \
    -- -var-file=example.tfvars "${network[@]}" "${@:3}" >"$WORK/bootstrap.log" 2>&1
}
bootstrap() { bootstrap_quietly "$@" || { tail -n 25 "$WORK/bootstrap.log"; return 1; }; }
# refused MESSAGE ROOT STEP PLAN_ARGS...: the step fails, saying MESSAGE.
refused() {
  if bootstrap_quietly "${@:2}"; then
    echo "     bootstrap.sh $3 went through"
    return 1
  fi
  grep -qF "$1" "$WORK/bootstrap.log" || { tail -n 10 "$WORK/bootstrap.log"; return 1; }
}
nothing_applied() { ! aws iam get-role --role-name api-release-production >/dev/null 2>&1; }

# An account that already has GitHub's OIDC provider (here for another
# audience): IAM holds one per URL, so creating ours would fail.
existing_provider=$(aws_id iam create-open-id-connect-provider --url https://token.actions.githubusercontent.com \
  --client-id-list sigstore --query OpenIDConnectProviderArn)
check "production: bootstrap.sh registry refuses to create a second GitHub OIDC provider, naming the variable to set" \
  refused "set oidc_provider_arn = \"$existing_provider\"" production registry
check "production: given that provider, it refuses it while it lacks the audience sts.amazonaws.com, with the command that adds it" \
  refused "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn $existing_provider --client-id sts.amazonaws.com" \
  production registry -var "oidc_provider_arn=$existing_provider"
check "both refused before anything was applied" nothing_applied
aws iam delete-open-id-connect-provider --open-id-connect-provider-arn "$existing_provider"

check "production: bootstrap.sh registry (terraform apply -target=module.registry)" bootstrap production registry
(cd "$WORK/apply/production" && terraform show -json registry.tfplan >"$WORK/registry.plan.json")
check "production: the registry plan applied holds the repository and the role, nothing that runs the image" \
  quiet python3 "$TESTS/check_plan.py" --registry-only "$WORK/registry.plan.json"
provider_arn=$(cd "$WORK/apply/production" && terraform output -raw oidc_provider_arn)
shared=(-var create_repository=false -var "oidc_provider_arn=$provider_arn")
# In the shared account, staging's registry step makes its role only.
staging_role_only() {
  bootstrap staging registry "${shared[@]}" &&
    [[ $(cd "$WORK/apply/staging" && terraform show -json registry.tfplan | jq -c '[.resource_changes[]
      | select(.change.actions | index("create")) | .type] | sort') == '["aws_iam_role","aws_iam_role_policy"]' ]]
}
check "staging: bootstrap.sh registry in the shared account creates its role only (production's repository and provider)" \
  staging_role_only
repository_url=$(cd "$WORK/apply/production" && terraform output -raw repository_url)
# variables ROOT CLUSTER: what bootstrap.sh variables prints, before the service exists.
variables_printed() {
  "$AWS_TREE/bootstrap.sh" "$WORK/apply/$1" variables >"$WORK/variables" 2>"$WORK/variables.err" &&
    diff <(sort "$WORK/variables") <(sort <<EXPECTED
AWS_ROLE_ARN=arn:aws:iam::123456789012:role/api-release-$1
AWS_REGION=eu-west-1
ECR_REPOSITORY_URL=$repository_url
ECS_CLUSTER=api-$1
ECS_SERVICE=api
EXPECTED
    ) && grep -qF ":environment:$2:ref:refs/tags/v*" "$WORK/variables.err"
}
check "bootstrap.sh variables, before the service exists: each GitHub environment's variables (production)" \
  variables_printed production release
check "bootstrap.sh variables, before the service exists: each GitHub environment's variables (staging)" \
  variables_printed staging staging
check "production: bootstrap.sh service refuses while $first_image is not in the repository" \
  refused "is not in the repository yet: the first release pushes it (push the tag v$(crate_version)" production service

log "the first release, before the services exist, as the release roles with moto's IAM enforcement on"
# moto's IAM checks a call's action against the caller's policies, and
# neither Resource nor Condition: a walk role holds a release policy as
# applied with every action kept, on "*", conditions dropped
# (release_calls.py actions-only); release_calls.py check holds the
# resources and conditions. A call whose action the policy lacks is refused.
trust=$(aws iam get-role --role-name api-release-production --query Role.AssumeRolePolicyDocument --output json)
# walk_role NAME ENVIRONMENT [ACTION_LEFT_OUT]: a role holding the actions of
# the environment's release policy (but one); prints its credentials as
# environment assignments.
walk_role() {
  local left_out=() policy=$WORK/release-policy-$2.json
  [[ -z ${3:-} ]] || left_out=(--without-action "$3")
  aws iam get-role-policy --role-name "api-release-$2" --policy-name push-and-deploy \
    --query PolicyDocument --output json >"$policy"
  aws iam create-role --role-name "$1" --assume-role-policy-document "$trust" >/dev/null
  aws iam put-role-policy --role-name "$1" --policy-name actions-only --policy-document \
    "$("$MODELS_PY" "$TESTS/release_calls.py" actions-only "$policy" "${left_out[@]}")"
  aws sts assume-role-with-web-identity --role-arn "arn:aws:iam::123456789012:role/$1" \
    --role-session-name release --web-identity-token "github-oidc-token-of-$1" --output json |
    jq -r '.Credentials | "AWS_ACCESS_KEY_ID=\(.AccessKeyId) AWS_SECRET_ACCESS_KEY=\(.SecretAccessKey) AWS_SESSION_TOKEN=\(.SessionToken)"'
}
# enforcement on|off: moto's INITIAL_NO_AUTH_ACTION_COUNT (0: every call
# is authenticated and authorised; inf: none is), set through its API.
enforcement() {
  curl -fsS -X POST -H 'Content-Type: text/plain' --data "$([[ $1 == on ]] && echo 0 || echo inf)" \
    "$MOTO_URL/moto-api/reset-auth" >/dev/null || die "moto did not switch its IAM enforcement $1"
}
# as CREDENTIALS COMMAND...: COMMAND with those credentials and the enforcement on.
as() {
  local status=0
  enforcement on
  # shellcheck disable=SC2086 # $1 is the credential assignments, split on purpose
  env $1 "${@:2}" || status=$?
  enforcement off
  return "$status"
}
enforced() { ! as "AWS_ACCESS_KEY_ID=test" aws ecs list-clusters >"$WORK/enforced.log" 2>&1 && grep -q InvalidClientTokenId "$WORK/enforced.log"; }
check "with the enforcement on, moto refuses keys it has no user for" enforced
staging_role=$(walk_role api-release-staging-walk staging)
production_role=$(walk_role api-release-production-walk production)
# deploy/aws/release.sh as release.yml runs it, in a copy of the tree whose
# scripts/push.sh makes a push's ECR calls (moto has no registry API:
# tests/aws/push-through-ecr-api.sh); deploy-ecs.sh is the real one.
mkdir -p "$WORK/release-tree/deploy/aws" "$WORK/release-tree/scripts"
ln -s "$PWD/$AWS_TREE/release.sh" "$WORK/release-tree/deploy/aws/release.sh"
ln -s "$PWD/scripts/deploy-ecs.sh" "$PWD/scripts/lib.sh" "$WORK/release-tree/scripts/"
ln -s "$PWD/$TESTS/push-through-ecr-api.sh" "$WORK/release-tree/scripts/push.sh"
# first_release CREDENTIALS ENVIRONMENT TARGETS...: release.sh's part for
# one environment; it pushes each target's tags and deploys nothing. An
# empty ENVIRONMENT is one that names no ECS service (Kubernetes).
first_release() {
  local environment=$2 ecs=()
  [[ -z $environment ]] || ecs=(ECS_CLUSTER="api-$environment" ECS_SERVICE=api)
  as "$1" env ACCOUNT=123456789012 AWS_REGION=eu-west-1 VERSION="$(crate_version)" ECR_REPOSITORY_URL="$repository_url" \
    "${ecs[@]}" PUSH_WALK_PYTHON="$MODELS_PY" RELEASE_DIR="$WORK/release-dir" \
    "$WORK/release-tree/deploy/aws/release.sh" "${@:3}" >"$WORK/release.out" 2>"$WORK/release.log" || {
    tail -n 15 "$WORK/release.log"
    return 1
  }
  for target in "${@:3}"; do
    grep -qx "pushed $repository_url:$target-$(crate_version)" "$WORK/release.out" || return 1
  done
  if [[ -z $environment ]]; then
    grep -q "^nothing deployed: this environment names no ECS service" "$WORK/release.out"
  else
    grep -qx "nothing deployed to api-$environment/api: no such service yet" "$WORK/release.out" &&
      grep -q "That is the first release, made before the service exists" "$WORK/release.log"
  fi
}
check "release.sh staging production, as the staging role: both images pushed, nothing deployed (no service yet), exit 0" \
  first_release "$staging_role" staging staging production
image_left_as_it_is() {
  first_release "$production_role" production production && grep -q "already holds" "$WORK/release.log"
}
check "release.sh production, as the production role: the image already there is left, nothing deployed, exit 0" \
  image_left_as_it_is
check "release.sh staging production without ECS_CLUSTER and ECS_SERVICE (Kubernetes): pushed, nothing deployed, exit 0" \
  first_release "$staging_role" "" staging production

log "the services, with the image the first release pushed"
first_deployment_failed() {
  ROLLOUT_STATE=FAILED refused "the service exists, but its first deployment did not complete" production service &&
    grep -q "deployment failed: tasks failed to start" "$WORK/bootstrap.log"
}
check "production: bootstrap.sh service applies, then fails when ECS marks the first deployment FAILED, with its events" \
  first_deployment_failed
first_deployment_completed() { bootstrap production service && grep -q "^alb_dns_name = " "$WORK/bootstrap.log"; }
check "production: bootstrap.sh service again: nothing to change, the deployment COMPLETED" first_deployment_completed
check "production: what the emulator holds (check_apply.py)" quiet "$MOTO/python" "$TESTS/check_apply.py" production release
check "staging: bootstrap.sh service, sharing production's repository, OIDC provider and image" \
  bootstrap staging service "${shared[@]}"
check "staging: what the emulator holds" quiet "$MOTO/python" "$TESTS/check_apply.py" staging staging

log "the next release as the release role, with moto's IAM enforcement on"
release_image=$repository_url:production-next
deploy() { PATH=$WORK/reported:$PATH scripts/deploy-ecs.sh --cluster api-production --service api "$@"; }
running() {
  local definition
  definition=$(aws_id ecs describe-services --cluster api-production --services api --query 'services[0].taskDefinition')
  aws_id ecs describe-task-definition --task-definition "$definition" --query "taskDefinition.containerDefinitions[0].$1"
}
released() {
  if as "$production_role" "$MODELS_PY" "$TESTS/release_calls.py" walk-ecr api production-next >"$WORK/walk.log" &&
    as "$production_role" env PATH="$WORK/reported:$PATH" scripts/deploy-ecs.sh --cluster api-production --service api \
      --image "$release_image" --timeout 60 >>"$WORK/walk.log" 2>&1; then
    [[ $(running image) == "$release_image" ]]
  else
    tail -n 15 "$WORK/walk.log"
    return 1
  fi
}
check "as the release role: push's ECR calls and deploy-ecs.sh succeed, and the service runs the new image" released
refused_without() {
  local credentials
  credentials=$(walk_role "api-release-without-${1#*:}" production "$1")
  if as "$credentials" "${@:2}" >"$WORK/refused.log" 2>&1; then
    echo "     the release went through without $1"
    return 1
  fi
  grep -q "AccessDenied" "$WORK/refused.log" || { tail -n 5 "$WORK/refused.log"; return 1; }
}
check "moto refuses the release without ecs:UpdateService" refused_without ecs:UpdateService \
  env PATH="$WORK/reported:$PATH" scripts/deploy-ecs.sh --cluster api-production --service api --image "$release_image" --timeout 30
check "moto refuses the release without ecs:DescribeTaskDefinition" refused_without ecs:DescribeTaskDefinition \
  env PATH="$WORK/reported:$PATH" scripts/deploy-ecs.sh --cluster api-production --service api --image "$release_image" --timeout 30
check "moto refuses the push without ecr:PutImage" refused_without ecr:PutImage \
  "$MODELS_PY" "$TESTS/release_calls.py" walk-ecr api production-next-but-one
echo "     not enforced by moto, held by release_calls.py check: resources (one repository, one service, two roles),"
echo "     ecs:TagResource on create (ECS's tag-on-create authorisation), iam:PassRole and its iam:PassedToService"

log "scripts/deploy-ecs.sh: how it follows a deployment"
# deploy_fails MESSAGE ENV... : deploy-ecs.sh, with the stand-in's ENV, fails
# saying MESSAGE. With 600 s to wait, only its reading of the deployment can
# end it within the 120 s the `timeout` bound allows.
deploy_fails() {
  local state
  state=$(mktemp -d "$WORK/stub.XXXXXX")
  if timeout 120 env STUB_STATE="$state" "${@:2}" PATH="$WORK/reported:$PATH" scripts/deploy-ecs.sh \
    --cluster api-production --service api --image "$release_image" --timeout 600 >"$WORK/deploy.log" 2>&1; then
    echo "     deploy-ecs.sh succeeded"
    return 1
  fi
  grep -qF "$1" "$WORK/deploy.log" || { tail -n 8 "$WORK/deploy.log"; return 1; }
}
fails_on_failed() {
  deploy_fails "FAILED: ECS deployment circuit breaker: tasks failed to start. (3 tasks failed)" ROLLOUT_STATE=FAILED &&
    grep -q "deployment failed: tasks failed to start" "$WORK/deploy.log"
}
check "fails as soon as ECS marks our deployment FAILED, printing the service's events" fails_on_failed
fails_on_rollback() {
  deploy_fails "FAILED: ECS deployment circuit breaker" AFTER_UPDATE=circuit-breaker &&
    grep -q "rolling back to deployment" "$WORK/deploy.log"
}
check "fails when the circuit breaker has rolled back (ours ACTIVE and FAILED beside a rollback PRIMARY)" \
  fails_on_rollback
check "fails when another deployment replaced ours (ours ACTIVE beside another PRIMARY)" \
  deploy_fails "rolled back, or replaced by another deployment" AFTER_UPDATE=replaced
check "fails at once when the service is gone while it deploys (MISSING)" \
  deploy_fails "ECS no longer has service api-production/api (no such service)" AFTER_UPDATE=vanished
times_out() {
  ! ROLLOUT_STATE=IN_PROGRESS deploy --image "$release_image" --timeout 5 >"$WORK/deploy.log" 2>&1 &&
    grep -q "did not complete in 5s" "$WORK/deploy.log" &&
    grep -q "the newest events of api-production/api" "$WORK/deploy.log"
}
check "fails when the deployment does not complete in time, printing the service's events" times_out
rolled_back() {
  ! DROP_UPDATES=1 deploy --image "$release_image" --timeout 60 >"$WORK/deploy.log" 2>&1 &&
    grep -q "no longer deploys" "$WORK/deploy.log"
}
check "fails when the service runs another revision than the one it deployed (a rollback)" rolled_back
# Anyone who may register task definitions can add a revision to the
# family; a release copies what the service runs, never the family's latest.
planted() {
  local planted_definition
  planted_definition=$(aws ecs describe-task-definition --task-definition api-production --output json |
    jq '.taskDefinition | {family, containerDefinitions: (.containerDefinitions | map(.environment += [{name: "PLANTED", value: "yes"}])),
        requiresCompatibilities, networkMode, cpu, memory, executionRoleArn, taskRoleArn}')
  aws ecs register-task-definition --cli-input-json "$planted_definition" >/dev/null
  deploy --image "$release_image" --timeout 60 >"$WORK/deploy.log" 2>&1 &&
    [[ $(running "environment[?name=='PLANTED'] | length(@)") == 0 ]]
}
check "copies the revision the service runs, not a revision planted in the family" planted
other_family() {
  ! deploy --image "$release_image" --base-revision \
    "$(aws_id ecs describe-services --cluster api-staging --services api --query 'services[0].taskDefinition')" \
    >"$WORK/deploy.log" 2>&1 && grep -q "is not of the service's family" "$WORK/deploy.log"
}
check "refuses --base-revision of another family (staging's, in the shared account)" other_family
terraform_revision() {
  local base
  base=$(cd "$WORK/apply/production" && terraform output -raw task_definition_arn)
  deploy --image "$release_image" --base-revision "$base" --timeout 60 >"$WORK/deploy.log" 2>&1 &&
    [[ $(running image) == "$release_image" ]]
}
check "--base-revision ships Terraform's revision with the new image" terraform_revision

report
