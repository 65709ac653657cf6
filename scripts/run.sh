#!/usr/bin/env bash
# Runs the API on http://127.0.0.1:8002 (docs at /docs). Installs redis-server when missing;
# with no REDIS_URL and nothing on 127.0.0.1:6379 the runner starts a private one.
# Extra arguments go to the runner (see `scripts/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_redis_server
ensure_build_tools
exec cargo run --release --locked -p local-runner -- "$@"
