#!/usr/bin/env bash
# The benchmark suite: one command. Installs what it needs (redis-server, wrk, webdis from
# Debian), builds the release binaries, then runs bench/bench.py (all on loopback, bounded
# in time). Extra arguments go to bench.py (e.g. --scale for the 1,000,000-key mode,
# --duration 5 for shorter runs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_redis_server
ensure_build_tools
command -v wrk >/dev/null || { echo "==> installing wrk"; apt_install wrk; }
command -v webdis >/dev/null || { echo "==> installing webdis"; apt_install webdis || true; }
command -v redis-benchmark >/dev/null || apt_install redis-tools
# cargo-lambda (with zig): the functions are measured as they are deployed, the bootstraps of
# scripts/lambda-build.sh, built for this machine's architecture.
ensure_py_tool cargo-lambda
export PATH="$PY_TOOLS/bin:$PATH"
case "$(uname -m)" in aarch64 | arm64) arch=--arm64 ;; *) arch=--x86-64 ;; esac
echo "==> cargo build: the runner (release); scripts/lambda-build.sh $arch: every function"
cargo build --release --locked -p local-runner
scripts/lambda-build.sh "$arch"
exec python3 bench/bench.py "$@"
