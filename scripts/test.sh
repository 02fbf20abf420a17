#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/property tests.
# Usage: scripts/test.sh      (from anywhere; installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
