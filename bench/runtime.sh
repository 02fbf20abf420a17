#!/usr/bin/env bash
# Median time of `RUN true` per container: whittle's built-in runtime vs runc, on this machine.
# Each iteration is a full build step: overlay of a busybox rootfs with a fresh upper dir, new
# namespaces, /proc, /dev, /sys, seccomp, exec, wait, cleanup. Needs root.
# Usage: bench/runtime.sh [ITERATIONS]     (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100}"
scripts/deps.sh
cargo build --release -q -p whittle-runtime --example runtime-bench
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"
# Like any real image: the mount points /proc, /dev and /sys exist.
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/dev" "$root/sys"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
engines=(builtin)
command -v runc >/dev/null && engines+=(runc)
echo "RUN true, $n iterations each, $(nproc) cores, $(uname -r):"
target/release/examples/runtime-bench "$root" "$tmp" "$n" "${engines[@]}"
