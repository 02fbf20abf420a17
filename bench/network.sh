#!/usr/bin/env bash
# What the RUN network costs per step: 20 `RUN true` steps built with `--no-cache` under each
# network, the median of several builds each, and the difference to `--network none` divided by
# the 20 steps. Then the same per container, without the build around it (runtime-bench).
#
#   none        whittle build --network none                      (own namespace, loopback only)
#   default     whittle build                                     (isolated: slirp4netns)
#   pasta       whittle build, PATH offering only pasta           (isolated: pasta)
#   host        whittle build --allow network.host --network host (the host's namespace)
#
# Usage (as root): bench/network.sh [BUILDS]   (default 9 builds per network; 1 warm-up each)
# Writes bench/network-results.md. Needs slirp4netns and passt (scripts/deps.sh installs them).
# Nothing listens and no network is created outside the RUN namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
builds=${1:-9}
steps=20
[ "$(id -u)" = 0 ] || { echo "bench/network.sh: needs root" >&2; exit 2; }
scripts/deps.sh
cargo build --release -q -p whittle
cargo build --release -q -p whittle-runtime --example runtime-bench
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
archive=$(scripts/base-images.sh busybox)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
W="$REPO/target/release/whittle"
root="$tmp/store"
"$W" --root "$root" load -i "$archive" >/dev/null
mkdir -p "$tmp/ctx" "$tmp/only-pasta"
ln -s "$(command -v pasta)" "$tmp/only-pasta/pasta"
{
  echo "FROM whittle-test/busybox:1"
  for i in $(seq 1 $steps); do echo "RUN true $i"; done
} >"$tmp/ctx/Dockerfile"

now() { date +%s%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# run_mode NAME PATH ARGS...: prints the median build time in ms
run_mode() {
  local name=$1 path=$2; shift 2
  local times=()
  for i in $(seq 0 "$builds"); do
    local t0; t0=$(now)
    PATH=$path "$W" --root "$root" build --no-cache -q "$@" "$tmp/ctx" >/dev/null 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; echo "bench/network.sh: $name build failed" >&2; exit 1; }
    local t1; t1=$(now)
    # The first build of each network warms caches.
    [ "$i" = 0 ] || times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')")
  done
  printf '%s\n' "${times[@]}" | median
}

declare -A med
med[none]=$(run_mode none "$PATH" --network none)
med[default]=$(run_mode default "$PATH")
med[pasta]=$(run_mode pasta "$tmp/only-pasta")
med[host]=$(run_mode host "$PATH" --allow network.host --network host)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The same, per container: RUN true on an overlay, no build around it.
rootfs="$tmp/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
per_container=$("$REPO/target/release/examples/runtime-bench" "$rootfs" "$tmp" 100 \
  builtin builtin-slirp4netns builtin-pasta builtin-hostnet)

{
  echo "# bench/network.sh results"
  echo
  echo "\`bench/network.sh $builds\`, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, $(uname -r),"
  echo "$(slirp4netns --version | head -1), passt $(dpkg-query -W -f='${Version}' passt 2>/dev/null || echo '?')."
  echo "Load average before/after: $load_before / $load_after."
  echo
  echo "A build of $steps \`RUN true\` steps with \`--no-cache\` (median of $builds builds after one warm-up):"
  echo
  echo "| network | build (ms) | per RUN (ms) | per RUN vs none (ms) |"
  echo "|---|---:|---:|---:|"
  for m in none default pasta host; do
    awk -v m="$m" -v t="${med[$m]}" -v n="${med[none]}" -v s="$steps" \
      'BEGIN { printf "| %s | %.0f | %.1f | %+.1f |\n", m, t, t / s, (t - n) / s }'
  done
  echo
  echo "Per container (\`runtime-bench\`, RUN true on an overlay, 100 runs, median):"
  echo
  echo '```text'
  echo "$per_container"
  echo '```'
} | tee "$REPO/bench/network-results.md"
