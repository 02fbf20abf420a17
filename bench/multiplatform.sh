#!/usr/bin/env bash
# Multi-platform benchmark (#15): examples/go-scratch cross-compiled (the BUILDPLATFORM pattern)
# for one platform and for linux/amd64,linux/arm64, cold, with whittle and with Buildah
# (`buildah bud ... --manifest`; see run() for why Buildah's two-platform build is two builds),
# in one run.
#
# Usage (as root): bench/multiplatform.sh        Env: RUNS=N (cold builds per case, default 3),
#                                                BENCH_DIR (default /var/lib/whittle-bench-mp)
# Each cold build starts from an empty build cache with the base image already loaded (the
# store or Buildah's storage is reset between runs and the base loaded again, untimed). The
# figures are medians. Then the cost of emulated RUN steps: the same steps on busybox natively
# and under qemu (linux/arm64). Writes bench/multiplatform-results.md.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
RUNS=${RUNS:-3}
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_DIR=${BENCH_DIR:-/var/lib/whittle-bench-mp}
RESULTS=$REPO/bench/multiplatform-results.md
log() { printf '[bench-mp %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root"
command -v buildah >/dev/null || die "buildah is missing: apt-get install buildah"

log "building whittle (release)"
cargo build --release -q -p whittle
W=$REPO/target/release/whittle
archive=$(scripts/base-images.sh golang)
mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ctx=$WORK/ctx
cp -a examples/go-scratch "$ctx"
sed -i '/^# *syntax *=/d' "$ctx/Dockerfile"

# Buildah with its own storage, as bench/build.sh sets it up.
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$BENCH_DIR/buildah/storage"
runroot = "$BENCH_DIR/buildah/run"
EOF
export TMPDIR=$WORK/tmp && mkdir -p "$TMPDIR"

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

reset() {
  case $1 in
    whittle) rm -rf "$BENCH_DIR/whittle"
             "$W" --root "$BENCH_DIR/whittle" load -i "$archive" >/dev/null ;;
    buildah) buildah rm -a >/dev/null 2>&1 || true
             buildah manifest rm bench-mp >/dev/null 2>&1 || true
             buildah rmi -af >/dev/null 2>&1 || true
             # RUN --mount=type=cache directories live under $TMPDIR
             rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
             buildah pull -q docker-archive:"$archive" >/dev/null ;;
  esac
  sync
}
run() { # TOOL PLATFORMS
  case $1 in
    whittle) "$W" --root "$BENCH_DIR/whittle" build --network none --progress plain \
               --platform "$2" -t bench-mp:1 "$ctx" ;;
    # Buildah 1.28 looks a `FROM --platform=$BUILDPLATFORM` base up for the target platform
    # ("image not known" for linux/arm64 with a local amd64 base), so it cannot run this
    # cross-compile with --platform linux/amd64,linux/arm64. Its two-platform figure is
    # therefore two builds on linux/amd64 into one manifest list, the second with
    # TARGETARCH=arm64 as a build arg: the same steps and the same compiles, run one after the
    # other (the second reuses the first's cached layers up to ARG TARGETARCH, as a merged
    # graph would).
    buildah) if [[ $2 == *,* ]]; then
               buildah bud --layers --network=none --pull=never --platform linux/amd64 \
                 --manifest bench-mp "$ctx" &&
               buildah bud --layers --network=none --pull=never --platform linux/amd64 \
                 --build-arg TARGETOS=linux --build-arg TARGETARCH=arm64 --manifest bench-mp "$ctx"
             else
               buildah bud --layers --network=none --pull=never --platform "$2" -t bench-mp:1 "$ctx"
             fi ;;
  esac
}

declare -A T=()
for tool in whittle buildah; do
  for plats in linux/amd64 linux/amd64,linux/arm64; do
    times=()
    for i in $(seq 1 "$RUNS"); do
      reset "$tool"
      t0=$(now)
      run "$tool" "$plats" >"$WORK/last.log" 2>&1 || { tail -n 30 "$WORK/last.log" >&2; die "$tool $plats failed"; }
      times+=("$(secs "$t0" "$(now)")")
    done
    T[$tool/$plats]=$(printf '%s\n' "${times[@]}" | median)
    log "$tool $plats: ${times[*]} (median ${T[$tool/$plats]} s)"
  done
done

# Emulated RUN steps: the same steps on busybox natively (linux/amd64) and under qemu
# (linux/arm64), from the multi-platform busybox layout. `start`: 10 x RUN true (the cost of
# starting a step); `cpu`: one RUN of a 300,000-iteration shell loop.
scripts/base-images.sh busybox-multi >/dev/null
layout=${WHITTLE_IMAGE_CACHE:-/var/cache/whittle-test/images}/oci-multi
"$W" binfmt --install linux/arm64 >/dev/null
mkdir -p "$WORK/start" "$WORK/cpu"
{ echo 'FROM whittle-test/busybox:1'; for i in $(seq 1 10); do echo "RUN true # $i"; done; } >"$WORK/start/Dockerfile"
printf '%s\n' 'FROM whittle-test/busybox:1' \
  'RUN i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo $i' >"$WORK/cpu/Dockerfile"
declare -A E=()
for case in start cpu; do
  for plat in linux/amd64 linux/arm64; do
    times=()
    for i in $(seq 1 "$RUNS"); do
      rm -rf "$BENCH_DIR/emu" && "$W" --root "$BENCH_DIR/emu" load -i "$layout" >/dev/null && sync
      t0=$(now)
      "$W" --root "$BENCH_DIR/emu" build --network none --progress plain --platform "$plat" \
        "$WORK/$case" >"$WORK/last.log" 2>&1 || { tail -n 30 "$WORK/last.log" >&2; die "$case $plat failed"; }
      times+=("$(secs "$t0" "$(now)")")
    done
    E[$case/$plat]=$(printf '%s\n' "${times[@]}" | median)
    log "emulation $case $plat: ${times[*]} (median ${E[$case/$plat]} s)"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
  echo "# Multi-platform benchmark: go-scratch cross-compiled, cold"
  echo
  echo "\`bench/multiplatform.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, whittle $(git rev-parse --short HEAD) (release), $(buildah --version | cut -d' ' -f1-3). Medians of $RUNS cold builds (empty build cache, base image loaded)."
  echo
  echo "| tool | linux/amd64 (s) | linux/amd64,linux/arm64 (s) | two ÷ one |"
  echo "|---|---:|---:|---:|"
  for tool in whittle buildah; do
    a=${T[$tool/linux/amd64]} b=${T[$tool/linux/amd64,linux/arm64]}
    echo "| $tool | $a | $b | $(ratio "$b" "$a") |"
  done
  echo
  echo "whittle ÷ Buildah, two platforms: $(ratio "${T[whittle/linux/amd64,linux/arm64]}" "${T[buildah/linux/amd64,linux/arm64]}")."
  echo
  echo "Buildah 1.28 cannot build a \`FROM --platform=\$BUILDPLATFORM\` stage for another platform from a local base (it looks the base up for the target platform), so its two-platform figure is two linux/amd64 builds into one manifest list, the second with TARGETARCH=arm64: the same compiles, one after the other. Load average at the start: $LOAD."
  echo
  echo "## Emulated RUN steps (whittle, busybox, medians of $RUNS cold builds)"
  echo
  echo "| case | linux/amd64, native (s) | linux/arm64, qemu (s) | overhead per step (s) |"
  echo "|---|---:|---:|---:|"
  printf '| 10 x `RUN true` | %s | %s | %s |\n' "${E[start/linux/amd64]}" "${E[start/linux/arm64]}" "$(awk -v a="${E[start/linux/arm64]}" -v b="${E[start/linux/amd64]}" 'BEGIN { printf "%.3f", (a - b) / 10 }')"
  echo "| 1 x 300,000-iteration shell loop | ${E[cpu/linux/amd64]} | ${E[cpu/linux/arm64]} | $(awk -v a="${E[cpu/linux/arm64]}" -v b="${E[cpu/linux/amd64]}" 'BEGIN { printf "%.2f", a - b }') |"
} >"$RESULTS"
cat "$RESULTS"
