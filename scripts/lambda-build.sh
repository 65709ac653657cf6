#!/usr/bin/env bash
# Builds every Lambda function for AWS (provided.al2023, arm64) in one workspace build:
# target/lambda/<function>/bootstrap, which template.yaml's CodeUri points at.
# Needs cargo-lambda (`pip install cargo-lambda`, which brings zig for the cross-link).
# Pass --x86-64 to build for x86_64 instead (then change Architectures in template.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=--arm64
if [ "${1:-}" = "--x86-64" ]; then arch=--x86-64; fi
if ! command -v cargo-lambda >/dev/null; then
  echo "cargo-lambda is missing: pip install cargo-lambda" >&2
  exit 1
fi
exec cargo lambda build --profile lambda-release "$arch" --locked \
  -p cache -p users -p rate-limit -p lock -p queue -p stats -p docs
