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
echo "==> cargo build: the runner (release) and every function (lambda-release profile)"
cargo build --release --locked -p local-runner
cargo build --profile lambda-release --locked \
  -p cache -p users -p rate-limit -p lock -p queue -p stats -p docs
exec python3 bench/bench.py "$@"
