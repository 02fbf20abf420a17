#!/usr/bin/env bash
# Layer benchmark: a ~1 GB corpus of mixed files (source-like text, incompressible binaries,
# structured binaries, many small files, links), then
#   - whittle tar+gzip (default level, 2 threads), tar+gzip level 6, tar+zstd, tar only
#   - whittle extraction
#   - tar | pigz -p 2 (same levels) and tar | gzip on the same files
# with MB/s of uncompressed tar and peak RSS. Usage: bench/layer.sh [MB] (default 1000).
# Needs pigz (scripts/deps.sh installs it). Uses $BENCH_DIR (default /tmp/whittle-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1000}
DIR=${BENCH_DIR:-/tmp/whittle-bench}
command -v pigz >/dev/null || scripts/deps.sh
cargo build --release -q -p whittle-layer --example layer_bench
LB=${CARGO_TARGET_DIR:-target}/release/examples/layer_bench
rm -rf "$DIR" && mkdir -p "$DIR/src"
echo "corpus: $("$LB" gen "$DIR/src" "$MB")"
sync
tar -C "$DIR/src" -cf "$DIR/plain.tar" .
TAR_MB=$(( $(stat -c %s "$DIR/plain.tar") / 1000000 ))
rm -f "$DIR/plain.tar"
sync
# Warm the page cache (the corpus is read from memory in every row, as in a real export of
# files just written) and let writeback of the corpus finish before timing anything.
tar -C "$DIR/src" -cf /dev/null .
sleep 2

row() { printf '%-34s %9s MB/s %9s MB peak RSS %s\n' "$1" "$2" "$3" "${4:-}"; }
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
echo
echo "== $TAR_MB MB of tar, $(nproc) cores"
# Best of two runs per whittle row: the machine is shared, and one slow run says little.
best() { # args for layer_bench; prints the JSON line of the faster run
  local a b
  a=$("$LB" "$@"); sync
  b=$("$LB" "$@"); sync
  if awk -v x="$(echo "$a" | field mb_per_s)" -v y="$(echo "$b" | field mb_per_s)" 'BEGIN{exit !(x>=y)}'; then
    echo "$a"
  else
    echo "$b"
  fi
}
for c in gzip gzip:6 zstd none; do
  out=$(best write "$DIR/src" "$DIR/layer.$c" "$c" 2)
  ratio=$(awk -v b="$(echo "$out" | field blob_bytes)" -v t="$(echo "$out" | field tar_bytes)" 'BEGIN{printf "%.3f", b/t}')
  case $c in gzip*) label="whittle tar+$c (2 threads)" ;; *) label="whittle tar+$c (1 thread)" ;; esac
  row "$label" "$(echo "$out" | field mb_per_s)" "$(( $(echo "$out" | field peak_rss_kb) / 1024 ))" "ratio $ratio"
done
out=$(best write "$DIR/src" "$DIR/layer.g1" gzip 1)
row "whittle tar+gzip (1 thread)" "$(echo "$out" | field mb_per_s)" "$(( $(echo "$out" | field peak_rss_kb) / 1024 ))"
rm -rf "$DIR/x" && mkdir "$DIR/x"
out=$("$LB" extract "$DIR/layer.gzip" "$DIR/x")
row "whittle extract (gzip layer)" "$(echo "$out" | field mb_per_s)" "$(( $(echo "$out" | field peak_rss_kb) / 1024 ))"
rm -rf "$DIR/x" && mkdir "$DIR/x"
out=$("$LB" extract "$DIR/layer.none" "$DIR/x")
row "whittle extract (plain layer)" "$(echo "$out" | field mb_per_s)" "$(( $(echo "$out" | field peak_rss_kb) / 1024 ))"
rm -rf "$DIR/x"

measure() { # label, pipeline
  local s e rss
  s=$(date +%s.%N)
  rss=$( { /usr/bin/time -f '%M' bash -c "$2" >/dev/null; } 2>&1 | tail -1)
  e=$(date +%s.%N)
  row "$1" "$(awk -v m="$TAR_MB" -v s="$s" -v e="$e" 'BEGIN{printf "%.1f", m/(e-s)}')" "$(( rss / 1024 ))" "(largest process)"
}
measure "tar | pigz -p 2 -4" "tar -C '$DIR/src' -cf - . | pigz -p 2 -4 > /dev/null"
measure "tar | pigz -p 2 -6" "tar -C '$DIR/src' -cf - . | pigz -p 2 -6 > /dev/null"
measure "tar | gzip -6" "tar -C '$DIR/src' -cf - . | gzip -6 > /dev/null"
measure "tar | zstd -3" "tar -C '$DIR/src' -cf - . | zstd -q -3 > /dev/null"
rm -rf "$DIR"
