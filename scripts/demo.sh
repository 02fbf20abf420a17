#!/usr/bin/env bash
# The quick-start demo: plan the bundled multi-stage example.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p whittle
exec target/release/whittle plan examples/go-scratch
