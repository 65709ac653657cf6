#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against real redis-server
# processes (each test starts its own on a free port), then the API tests once more with
# each test on a Redis Cluster of its own (6 nodes), then the Lambda build the README's
# Deploy section runs. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_redis_server
ensure_build_tools
ensure_chromium
ensure_py_tool cfn-lint
ensure_py_tool st schemathesis==4.32.5
# cargo-lambda (with zig): `cargo lambda watch`, as the README runs it.
ensure_py_tool cargo-lambda

echo "==> cargo fmt --all --check"
cargo fmt --all --check
echo "==> cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cfn-lint template.yaml"
"$PY_TOOLS/bin/cfn-lint" template.yaml
echo "==> cargo test --workspace --locked --no-fail-fast (every failure reported, not only the first)"
cargo test --workspace --locked --no-fail-fast
# Every endpoint and every Lua script, on a 3-primary/3-replica cluster per test. The tests
# that stop "the" Redis skip themselves there (tests/tests/cluster.rs covers the cluster's
# own failure modes; tests/tests/sentinel.rs the Sentinel failover, in the run above).
echo "==> API_TEST_REDIS=cluster cargo test (the API tests on Redis Cluster)"
API_TEST_REDIS=cluster cargo test --locked --no-fail-fast -p api-tests \
  --test cache --test users --test rate_limit --test lock --test queue --test stats --test stats_patterns \
  --test seed_examples --test idempotency --test http_methods --test contract --test contract_routes \
  --test cache_conditional --test queue_failures --test semaphore
# The Lambda build of the README's Deploy section (seven fat-LTO release binaries, x86_64:
# this machine cannot download Rust's aarch64 standard library), after the test binaries and
# the bench's build of the same functions, on one target directory; then the cache
# function's bootstrap from it, run through an emulated Lambda Runtime API.
echo "==> the Lambda build and its bootstrap: cargo test --test lambda_build --test lambda_runtime -- --ignored"
PATH="$PY_TOOLS/bin:$PATH" cargo test --locked --no-fail-fast -p api-tests \
  --test lambda_build --test lambda_runtime -- --ignored
