#!/usr/bin/env bash
# The quick-start demo: build the bundled Go example into a ~2 MB image on `scratch`, and run it.
# Installs what it needs: Debian packages, and a Go base image made from Debian's packages
# (cached under /var/cache/whittle-test, so the second run takes seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
archive=$(scripts/base-images.sh golang | tail -n 1)
cargo build --release -q -p whittle
whittle() { cargo run --release -q -p whittle -- "$@"; }
whittle load -i "$archive"
whittle build -t hello:latest examples/go-scratch
whittle images
whittle run --rm hello:latest
