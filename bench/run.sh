#!/usr/bin/env bash
# One command for the benchmarks: builds the api (as `cargo run` builds it,
# and statically linked, as the production image holds it), the floor and
# the peers (axum, actix-web, Go's net/http) in release mode, installs the
# FastAPI original into a venv, and runs bench/bench.py, which rewrites the
# top of docs/benchmarks.md and docs/benchmarks.svg.
#
#   bench/run.sh [--rounds 7] [--seconds 5] [--starts 20]
#
# Takes about 6 minutes with the defaults. Only traffic to 127.0.0.1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"

apt_tool wrk
apt_tool taskset util-linux
apt_tool go golang-go
cargo build --release --bin api --example floor
# As the Dockerfile builds it: glibc linked in (static-pie).
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --bin api --target "$host"
ln -sf "$host/release/api" target/api-static
# The peers are crates of their own: `cargo test` never builds them.
for peer in axum actix; do
  cargo build --release --manifest-path "bench/peers/$peer/Cargo.toml" --target-dir target/peers
done
GO111MODULE=off GOFLAGS=-trimpath go build -o target/peers/peer-go bench/peers/go/main.go
VENV=$(dirname "$(python_tool fastapi "$(cat bench/fastapi/requirements.txt)")")
# The servers' file-descriptor limit must allow 1,000 connections and more.
ulimit -n "$(ulimit -Hn)"
python3 bench/bench.py --fastapi-venv "$VENV" "$@"
