#!/usr/bin/env bash
# One command for the benchmarks: builds the api and the floor in release
# mode, installs the FastAPI original into a venv, and runs bench/bench.py,
# which writes docs/benchmarks-table.md and docs/benchmarks.svg.
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
cargo build --release --bin api --example floor
VENV=$(dirname "$(python_tool fastapi "$(cat bench/fastapi/requirements.txt)")")
# The servers' file-descriptor limit must allow 1,000 connections and more.
ulimit -n "$(ulimit -Hn)"
python3 bench/bench.py --fastapi-venv "$VENV" "$@"
