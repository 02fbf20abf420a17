#!/usr/bin/env bash
# Analysis benchmark: `whittle analyze` on the base images of scripts/base-images.sh (docker
# archives read in place, and the same images loaded into a scratch store), wall time and peak
# RSS, medians of three runs. Store images: "warm" has the per-layer summary cache filled (the
# layers are not read); "uncached" is the cache removed before each run (page cache warm). With
# COLD=1 (root), "cold" runs remove the cache and drop the page cache before each run.
# Usage: bench/analyze.sh [NAME...] (default: jdk rust golang python)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WHITTLE_IMAGE_CACHE:-/var/cache/whittle-test/images}
NAMES=("${@:-jdk rust golang python}")
# shellcheck disable=SC2206
NAMES=(${NAMES[*]})
cargo build --release -q -p whittle
W=${CARGO_TARGET_DIR:-target}/release/whittle
STORE=$(mktemp -d /tmp/whittle-analyze-bench.XXXXXX)
trap 'rm -rf "$STORE"' EXIT

row() { printf '%-40s %8s s %8s MB peak RSS  %s\n' "$@"; }
measure() { # prints "seconds maxrss_kb"
  /usr/bin/time -f '%e %M' "$W" --root "$STORE" analyze --format json "$1" 2>&1 >/dev/null | tail -1
}
drop_cache() { rm -rf "$STORE/analyze-cache"; }
drop_page_cache() { sync && echo 3 > /proc/sys/vm/drop_caches; }
# median_of_3 INPUT [BEFORE...]: runs BEFORE (commands) ahead of each run; prints the run with
# the median time.
median_of_3() {
  local input=$1 t runs=()
  shift
  for _ in 1 2 3; do
    for b in "$@"; do $b; done
    t=$(measure "$input")
    runs+=("$t")
  done
  printf '%s\n' "${runs[@]}" | sort -n -k1,1 | sed -n 2p
}

echo "== $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
for n in "${NAMES[@]}"; do
  a="$CACHE/archives/$n.tar"
  if [ ! -f "$a" ]; then
    echo "skipped $n: $a is missing (scripts/base-images.sh $n makes it)"
    continue
  fi
  mb=$(( $(stat -c %s "$a") / 1000000 ))
  "$W" --root "$STORE" load -i "$a" >/dev/null
  ref=$(tar -xOf "$a" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
  for input in "docker-archive:$a" "$ref"; do
    label="$n ($mb MB) ${input%%:*}"
    if [ "${COLD:-0}" = 1 ]; then
      t=$(median_of_3 "$input" drop_cache drop_page_cache)
      row "$label cold" "${t%% *}" "$(( ${t##* } / 1000 ))"
    fi
    if [ "$input" = "$ref" ]; then
      t=$(median_of_3 "$input" drop_cache)
      row "$label uncached" "${t%% *}" "$(( ${t##* } / 1000 ))"
      measure "$input" >/dev/null # fills the cache
    fi
    t=$(median_of_3 "$input")
    row "$label warm" "${t%% *}" "$(( ${t##* } / 1000 ))"
  done
done
