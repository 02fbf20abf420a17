#!/usr/bin/env bash
# The quick-start demo: plan the bundled multi-stage example.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p whittle -- plan examples/go-scratch
