#!/bin/sh
# The builder stage's test: the binary runs and greets whom it is told to.
set -eu
out=$(/out/hello tester)
case "$out" in
  "hello, tester!"*) echo "check passed: $out" ;;
  *) echo "check FAILED: $out" >&2; exit 1 ;;
esac
