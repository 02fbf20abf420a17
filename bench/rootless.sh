#!/usr/bin/env bash
# Rootless speed (#18): the 36-step build (bench/build.sh's many-steps case, generated the same
# way) by whittle as root, by whittle as an ordinary user (rootless), and by `buildah bud` as the
# same user (overlay and vfs storage), in one run.
#
# Usage (as root): bench/rootless.sh
# Env: RUNS=N (no-change rebuilds per tool, default 5), COLD_RUNS=N (cold builds, each after
#      emptying the tool's store and loading the base again, default 3), BENCH_DIR (default
#      /var/lib/whittle-bench-rootless).
#
# For each tool: cold (median of COLD_RUNS builds, empty build cache, base image loaded) and
# no-change (median of RUNS rebuilds, hyperfine). Every command runs through runuser with a
# clean environment (root's too), so the wrapper costs every row the same. All builds use --network=none. The ordinary user is made here
# (useradd: subordinate ids from /etc/login.defs) and removed on exit with its home, where its
# stores live. Uses target/release/whittle (CARGO_TARGET_DIR honoured).
# Writes bench/rootless-results.md.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
RUNS=${RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/lib/whittle-bench-rootless}
RESULTS=${RESULTS:-$REPO/bench/rootless-results.md}
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (it makes the ordinary user)"
for t in buildah hyperfine newuidmap jq; do command -v $t >/dev/null || die "$t missing (apt-get install buildah hyperfine uidmap jq)"; done
WHITTLE=${CARGO_TARGET_DIR:-$REPO/target}/release/whittle
[ -x "$WHITTLE" ] || die "$WHITTLE missing: cargo build --release -p whittle"
BUSYBOX=$(scripts/base-images.sh busybox | tail -1)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

U=whittle-bench-rl
H=$BENCH_DIR/home
cleanup() { userdel --remove --force $U >/dev/null 2>&1 || true; rm -rf "$BENCH_DIR"; }
trap cleanup EXIT
cleanup
mkdir -p "$BENCH_DIR"
useradd --create-home --home-dir "$H" --shell /bin/sh $U
chmod 755 "$BENCH_DIR"
# The binary where the user can run it.
install -m 755 "$WHITTLE" "$BENCH_DIR/whittle"
W=$BENCH_DIR/whittle

# The many-steps context (as bench/build.sh generates it), owned by the user.
CTX=$H/many-steps
mkdir -p "$CTX"
{ echo 'FROM whittle-test/busybox:1'
  for i in $(seq -w 1 18); do
    echo "step $i" >"$CTX/f$i.txt"
    echo "COPY f$i.txt /data/"
    echo "RUN cat /data/f$i.txt >> /log && wc -l /log"
  done; } >"$CTX/Dockerfile"
cp "$BUSYBOX" "$H/busybox.tar"
chown -R $U: "$H"

as_user() { runuser -u $U -- env -i HOME="$H" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  XDG_RUNTIME_DIR="$H/run" bash -c "$1"; }
mkdir -p "$H/run" && chown $U: "$H/run" && chmod 700 "$H/run"

# cmd TOOL: the build command line (run by bash -c, as root or as the user).
cmd() {
  case $1 in
    whittle-root) echo "$W --root $BENCH_DIR/root-store build -q --network none -t bench/many $CTX" ;;
    whittle-rootless) echo "$W build -q --network none -t bench/many $CTX" ;;
    buildah-rootless-*) echo "$(buildah_for "$1") bud -q --layers --network=none --pull=never -t bench/many $CTX" ;;
  esac
}
# Rootless buildah with its storage driver named (1.28 picks vfs for a new rootless user; the
# kernel's overlay in a user namespace is what whittle uses), each driver with its own storage.
buildah_for() {
  local d=${1#buildah-rootless-}
  echo "buildah --storage-driver $d --root $H/containers-$d --runroot $H/run/containers-$d"
}
# run TOOL SCRIPT: as root or as the user.
run() { case $1 in whittle-root) bash -c "$2" ;; *) as_user "$2" ;; esac; }
prepare() {
  case $1 in
    whittle-root) rm -rf "$BENCH_DIR/root-store"; $W --root "$BENCH_DIR/root-store" load -i "$BUSYBOX" >/dev/null ;;
    whittle-rootless) as_user "rm -rf ~/.local/share/whittle; $W load -i ~/busybox.tar >/dev/null" ;;
    buildah-rootless-*) local b; b=$(buildah_for "$1")
      as_user "$b rmi -af >/dev/null 2>&1 || true; $b pull -q docker-archive:\$HOME/busybox.tar >/dev/null && $b tag \$($b images -q | head -1) whittle-test/busybox:1" ;;
  esac
}

TOOLS=(whittle-root whittle-rootless buildah-rootless-overlay buildah-rootless-vfs)
declare -A COLD NOCHANGE
# Every build goes through the same wrapper (runuser, a clean environment), root's too, so the
# wrapper's cost is the same on every row.
wrapped() {
  local who=$U; [ "$1" = whittle-root ] && who=root
  echo "runuser -u $who -- env -i HOME=$H PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR=$H/run $(cmd "$1")"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for t in "${TOOLS[@]}"; do
  log "$t: cold x$COLD_RUNS"
  for _ in $(seq "$COLD_RUNS"); do
    prepare "$t"
    s=$(date +%s.%N)
    bash -c "$(wrapped "$t")" >/dev/null
    echo "$(date +%s.%N) - $s" | bc
  done >"$BENCH_DIR/$t.cold"
  COLD[$t]=$(median <"$BENCH_DIR/$t.cold")
  log "$t: no-change x$RUNS"
  json=$BENCH_DIR/$t.json
  hyperfine -N -w 1 -r "$RUNS" --export-json "$json" "$(wrapped "$t")" >/dev/null 2>&1
  NOCHANGE[$t]=$(jq -r '.results[0].median' "$json")
  # Same image digests as root: the rootless whittle build's layers.
  case $t in
    whittle-root) ROOT_LAYERS=$($W --root "$BENCH_DIR/root-store" inspect bench/many | jq -c '[.[0].Manifest.layers[].digest]') ;;
    whittle-rootless) RL_LAYERS=$(as_user "$W inspect bench/many" | jq -c '[.[0].Manifest.layers[].digest]') ;;
  esac
done
same=no; [ "$ROOT_LAYERS" = "$RL_LAYERS" ] && same=yes

ms() { printf '%.0f ms' "$(echo "$1 * 1000" | bc -l)"; }
ratio() { printf '%.2f×' "$(echo "$1 / $2" | bc -l)"; }
{
  echo "# Rootless build speed (#18)"
  echo
  echo "\`bench/rootless.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), load before: $LOAD_BEFORE."
  echo "Tools: whittle $(git -C "$REPO" rev-parse --short HEAD) (release), $(buildah --version | cut -d' ' -f1-3) as the same user with overlay storage (the kernel's overlay in a user namespace) and with vfs (what it picks for a new rootless user)."
  echo "The 36-step case of bench/build.sh (many-steps: 18 COPY and 18 RUN on busybox), --network=none;"
  echo "cold: median of $COLD_RUNS builds from an empty store (base loaded); no-change: median of $RUNS rebuilds (hyperfine)."
  echo
  echo "| tool | cold | no-change | cold vs whittle root | no-change vs whittle root |"
  echo "|---|---|---|---|---|"
  for t in "${TOOLS[@]}"; do
    echo "| $t | $(ms "${COLD[$t]}") | $(ms "${NOCHANGE[$t]}") | $(ratio "${COLD[$t]}" "${COLD[whittle-root]}") | $(ratio "${NOCHANGE[$t]}" "${NOCHANGE[whittle-root]}") |"
  done
  echo
  echo "Rootless whittle's layer digests equal root whittle's: $same. Load after: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$RESULTS"
cat "$RESULTS"
