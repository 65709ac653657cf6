#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against real redis-server
# processes (each test starts its own on a free port). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_redis_server
ensure_chromium
ensure_py_tool cfn-lint
ensure_py_tool st schemathesis

echo "==> cargo fmt --all --check"
cargo fmt --all --check
echo "==> cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cfn-lint template.yaml"
"$PY_TOOLS/bin/cfn-lint" template.yaml
echo "==> cargo test --workspace --locked"
cargo test --workspace --locked
