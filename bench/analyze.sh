#!/usr/bin/env bash
# Analysis benchmark: `whittle analyze` on the base images of scripts/base-images.sh (docker
# archives read in place, and the same images loaded into a scratch store), wall time and peak
# RSS, best of three warm runs; with COLD=1 (root) the page cache is dropped before one more
# run per image. Usage: bench/analyze.sh [NAME...] (default: jdk rust golang python)
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
best_of_3() {
  local best="" t
  for _ in 1 2 3; do
    t=$(measure "$1")
    if [ -z "$best" ] || awk -v a="${t%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$t; fi
  done
  echo "$best"
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
    if [ "${COLD:-0}" = 1 ]; then
      sync && echo 3 > /proc/sys/vm/drop_caches
      t=$(measure "$input")
      row "$n ($mb MB) cold ${input%%:*}" "${t%% *}" "$(( ${t##* } / 1000 ))"
    fi
    t=$(best_of_3 "$input")
    row "$n ($mb MB) warm ${input%%:*}" "${t%% *}" "$(( ${t##* } / 1000 ))"
  done
done
