#!/usr/bin/env bash
# Builds every Lambda function for AWS (provided.al2023, arm64) in one workspace build:
# target/lambda/<function>/bootstrap, which template.yaml's CodeUri points at.
# Needs cargo-lambda (`pip install cargo-lambda`, which brings zig for the cross-link).
# Pass --x86-64 to build for x86_64 instead (then change Architectures in template.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=--arm64
if [ "${1:-}" = "--x86-64" ]; then arch=--x86-64; fi
# The copy scripts/test.sh and bench/run.sh install (target/py-tools), when there is one.
if ! command -v cargo-lambda >/dev/null && [ -x target/py-tools/bin/cargo-lambda ]; then
  export PATH="$PWD/target/py-tools/bin:$PATH"
fi
if ! command -v cargo-lambda >/dev/null; then
  echo "cargo-lambda is missing: pip install cargo-lambda (or run scripts/test.sh once, which installs it under target/py-tools)" >&2
  exit 1
fi
functions=(cache users rate-limit lock queue stats docs)
# Earlier versions of this project had a Cargo profile named `lambda`, whose binaries
# (target/lambda/<function>, plain files) stand where cargo-lambda makes each function's
# folder ("File exists"): remove such leftovers of a target directory built before.
for f in "${functions[@]}"; do
  stale="${CARGO_TARGET_DIR:-target}/lambda/$f"
  if [ -f "$stale" ]; then rm -f "$stale"; fi
done
exec cargo lambda build --profile lambda-release "$arch" --locked \
  "${functions[@]/#/-p}"
