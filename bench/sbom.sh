#!/usr/bin/env bash
# SBOM benchmark (#17's speed goals): `whittle sbom` of the base images of
# scripts/base-images.sh (the 1 GB JDK image among them: goal at most 2 s), and what
# `build --sbom` adds to a warm build of examples/go-scratch (goal at most 10%). Wall time and
# peak RSS, medians of five runs.
#
# Builds: "warm" is a rebuild with every step cached. "--sbom" then makes the same image
# manifest and reads the SBOM from <root>/attest-cache; "--sbom, uncached" removes that cache
# before each run, so the image is catalogued again; "scan-stages" adds the builder stage's SBOM
# (the golang toolchain image and the build), cached by its diff ids, or catalogued again with
# the cache removed.
# Usage: bench/sbom.sh [NAME...] (images for `whittle sbom`; default: jdk golang python)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WHITTLE_IMAGE_CACHE:-/var/cache/whittle-test/images}
NAMES=("${@:-jdk golang python}")
# shellcheck disable=SC2206
NAMES=(${NAMES[*]})
cargo build --release -q -p whittle
W=${CARGO_TARGET_DIR:-target}/release/whittle
STORE=$(mktemp -d /tmp/whittle-sbom-bench.XXXXXX)
trap 'rm -rf "$STORE"' EXIT

row() { printf '%-46s %8s s %8s MB peak RSS\n' "$@"; }
# timed CMD...: prints "seconds maxrss_kb" of one run (milliseconds: a warm build takes tens of
# them, finer than /usr/bin/time's %e).
timed() {
  local t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -f '%M' -o "$STORE/rss" "$@" >/dev/null 2>"$STORE/err"; then
    echo "FAILED: $* ($(tail -3 "$STORE/err"))" >&2
    echo "FAILED 0"
    return
  fi
  t1=$(date +%s%N)
  printf '%d.%03d %s\n' $(( (t1 - t0) / 1000000000 )) $(( (t1 - t0) / 1000000 % 1000 )) \
    "$(tail -1 "$STORE/rss")"
}
# median5 BEFORE CMD...: runs BEFORE (a command, or `true`) ahead of each of five runs of CMD;
# prints the run with the median time.
median5() {
  local before=$1 runs=()
  shift
  for _ in 1 2 3 4 5; do
    $before
    runs+=("$(timed "$@")")
  done
  printf '%s\n' "${runs[@]}" | sort -n -k1,1 | sed -n 3p
}
show() { local label=$1 t=$2; row "$label" "${t%% *}" "$(( ${t##* } / 1000 ))"; }
no_attest_cache() { rm -rf "$STORE/attest-cache"; }

echo "== $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
for n in "${NAMES[@]}"; do
  a="$CACHE/archives/$n.tar"
  if [ ! -f "$a" ]; then
    echo "skipped $n: $a is missing (scripts/base-images.sh $n makes it)"
    continue
  fi
  mb=$(( $(stat -c %s "$a") / 1000000 ))
  show "sbom $n ($mb MB) docker-archive, spdx-json" \
    "$(median5 true "$W" --root "$STORE" sbom --format spdx-json "docker-archive:$a")"
done

g="$CACHE/archives/golang.tar"
if [ ! -f "$g" ]; then
  echo "skipped go-scratch: $g is missing (scripts/base-images.sh golang makes it)"
  exit 0
fi
"$W" --root "$STORE" load -i "$g" >/dev/null
B=("$W" --root "$STORE" build -q -t bench/go:1)
"${B[@]}" examples/go-scratch >/dev/null # fills the build cache
"${B[@]}" --sbom=scan-stages=true examples/go-scratch >/dev/null # and the attest cache
show "go-scratch warm build" "$(median5 true "${B[@]}" examples/go-scratch)"
show "go-scratch warm build --sbom" "$(median5 true "${B[@]}" --sbom examples/go-scratch)"
show "go-scratch warm build --sbom, uncached" \
  "$(median5 no_attest_cache "${B[@]}" --sbom examples/go-scratch)"
show "go-scratch warm build scan-stages" \
  "$(median5 true "${B[@]}" --sbom=scan-stages=true examples/go-scratch)"
show "go-scratch warm build scan-stages, uncached" \
  "$(median5 no_attest_cache "${B[@]}" --sbom=scan-stages=true examples/go-scratch)"
