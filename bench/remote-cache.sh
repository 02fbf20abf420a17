#!/usr/bin/env bash
# Shared-cache benchmark (#16): a CI runner that starts empty, warm from a registry cache.
# whittle (--cache-to type=registry,mode=max,mounts=true / --cache-from) against BuildKit with
# inline cache (--build-arg BUILDKIT_INLINE_CACHE=1, pushed; a pruned builder with
# --cache-from), both on the same local registry, the same examples and base images, one run.
#
# Usage (as root, from anywhere):
#   bench/remote-cache.sh [EXAMPLE...]      default: go-scratch rust-distroless cache-mounts
# Env: BENCH_DIR (default /var/lib/whittle-bench-cache; removed at the end unless KEEP=1),
#      A_RUNS (default 3: cold builds of runner A with and without --cache-to),
#      WHITTLE (default: the release binary, built with cargo if missing).
#
# For each example:
#   whittle A  a cold build without --cache-to, then a cold build (fresh store) with
#              --cache-to mode=max,mounts=true and a second ref without mounts, A_RUNS times
#              (default 3) alternating: the export overhead is the difference of the medians
#              (and the medians of whittle's own "exported ... in Xs" figures).
#   whittle B  a fresh store with --cache-from: "cold with the imported cache".
#   buildkit   A: a cold build with BUILDKIT_INLINE_CACHE=1, pushed; then the image removed and
#              the builder pruned; B: a build with --cache-from the pushed image.
#   mounts     a fresh store, the example's source edited (one comment line appended), built
#              with --cache-from the cache with mounts and the one without: the RUN that
#              compiles finds A's build cache (go-build, cargo's target is not a mount) or not.
# BuildKit runs in its own dockerd (Debian's docker.io 20.10) on a private socket with no
# bridge and no iptables, as in bench/build.sh, stopped on exit; the registry is Debian's
# docker-registry on 127.0.0.1:<free port> (dockerd treats 127.0.0.0/8 as an insecure
# registry, so BuildKit reaches it over plain HTTP), also stopped on exit.
# Writes bench/remote-cache-results.md.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

EXAMPLES=("$@")
[ ${#EXAMPLES[@]} -gt 0 ] || EXAMPLES=(go-scratch rust-distroless cache-mounts)
BENCH_DIR=${BENCH_DIR:-/var/lib/whittle-bench-cache}
RESULTS=$REPO/bench/remote-cache-results.md
A_RUNS=${A_RUNS:-3}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A BASES=([go-scratch]="golang" [rust-distroless]="rust cc" [cache-mounts]="golang")
declare -A EDIT=([go-scratch]=main.go [rust-distroless]=src/main.rs [cache-mounts]=main.go)

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (dockerd, whittle's RUN steps)"
for n in "${EXAMPLES[@]}"; do
  [ -n "${BASES[$n]:-}" ] && [ -f "examples/$n/Dockerfile" ] || die "unknown example '$n'"
done
for b in /usr/sbin/dockerd /usr/bin/docker /usr/bin/docker-registry; do
  [ -x "$b" ] || die "$b is missing (apt-get install docker.io docker-registry)"
done

# ----------------------------------------------------------------------------- whittle
if [ -z "${WHITTLE:-}" ]; then
  TARGET=${CARGO_TARGET_DIR:-$REPO/target}
  WHITTLE=$TARGET/release/whittle
  [ -x "$WHITTLE" ] || { log "building whittle (cargo build --release -p whittle)"; cargo build --release -q -p whittle; }
fi
WHITTLE_REV=$(git -C "$REPO" rev-parse --short HEAD)

# ----------------------------------------------------------------------------- daemons
mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d /tmp/whittle-bench-cache.XXXXXX)
DOCKER=/usr/bin/docker
export DOCKER_HOST=unix:///run/whittle-bench-cache-docker.sock
export DOCKER_BUILDKIT=1
DOCKERD_PID="" REGISTRY_PID=""
stop() {
  local name=$1 pid=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop dockerd "$DOCKERD_PID"
  stop docker-registry "$REGISTRY_PID"
  rm -rf "$WORK"
  [ -n "${KEEP:-}" ] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

$DOCKER version >/dev/null 2>&1 && die "something already answers on $DOCKER_HOST; stop it first"
log "starting dockerd on $DOCKER_HOST (no bridge, no iptables; data under $BENCH_DIR)"
/usr/sbin/dockerd -H "$DOCKER_HOST" \
  --data-root "$BENCH_DIR/docker" --exec-root "$BENCH_DIR/docker-exec" \
  --pidfile "$BENCH_DIR/dockerd.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --userland-proxy=false --storage-driver=overlay2 --log-level=warn \
  >"$BENCH_DIR/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do
  $DOCKER version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$BENCH_DIR/dockerd.log" >&2; die "dockerd died"; }
  sleep 0.5
done
$DOCKER version >/dev/null 2>&1 || die "dockerd did not answer in 30 s"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$BENCH_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $BENCH_DIR/registry
http:
  addr: $REG
EOF
/usr/bin/docker-registry serve "$BENCH_DIR/registry.yml" >"$BENCH_DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 40); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
curl -fsS "http://$REG/v2/" >/dev/null || die "the registry did not answer"
log "registry on $REG"

# ----------------------------------------------------------------------------- base images
declare -A want=()
for n in "${EXAMPLES[@]}"; do for b in ${BASES[$n]}; do want[$b]=1; done; done
ARCHIVES=$(scripts/base-images.sh "${!want[@]}")
for a in $ARCHIVES; do log "loading $a into docker"; $DOCKER load -i "$a" >/dev/null; done

# ----------------------------------------------------------------------------- helpers
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# fresh NAME: a new whittle store with the current example's base images; prints its root.
fresh() {
  local root=$BENCH_DIR/w-$1 a b
  rm -rf "$root"
  for b in ${BASES[$n]}; do
    for a in $ARCHIVES; do
      if [ "$(basename "$a" .tar)" = "$b" ]; then "$WHITTLE" --root "$root" load -i "$a" >/dev/null; fi
    done
  done
  echo "$root"
}
# timed LOG CMD...: runs CMD, output into LOG; prints the seconds it took.
timed() {
  local out=$1; shift
  local t0 t1
  t0=$(now)
  if ! "$@" >"$out" 2>&1; then
    log "FAILED: $*"; tail -n 30 "$out" | sed 's/^/    | /' >&2; return 1
  fi
  t1=$(now)
  secs "$t0" "$t1"
}
wbuild() { local root=$1; shift; "$WHITTLE" --root "$root" build --network none --progress plain "$@"; }

ROWS=()
for n in "${EXAMPLES[@]}"; do
  ctx=$WORK/$n
  cp -a "examples/$n" "$ctx"
  sed -i '/^# *syntax=/d' "$ctx/Dockerfile"
  cache=$REG/bench/$n:cache
  nomounts=$REG/bench/$n:nomounts

  # A_RUNS pairs, alternating, each on a fresh store and into a fresh repository (so every
  # export uploads everything): the medians, since one cold build's noise is larger than
  # the export on a small example.
  plains=() exports=() owns=() own2s=()
  for r in $(seq 1 "$A_RUNS"); do
    log "$n: whittle A, cold, no export ($r/$A_RUNS)"
    root=$(fresh a0)
    plains+=("$(timed "$WORK/a0.log" wbuild "$root" -t "bench/$n" "$ctx")")
    rm -rf "$root"
    log "$n: whittle A, cold, --cache-to (mode=max,mounts=true; and mode=max without mounts) ($r/$A_RUNS)"
    root=$(fresh a1)
    exports+=("$(timed "$WORK/a1.log" wbuild "$root" -t "bench/$n" \
      --cache-to "type=registry,ref=$REG/bench/$n-a$r:cache,mode=max,mounts=true" \
      --cache-to "type=registry,ref=$REG/bench/$n-a$r:nomounts,mode=max" "$ctx")")
    owns+=("$(grep -o 'exported the build cache to [^ ]*:cache .*in [0-9.]*s' "$WORK/a1.log" | grep -o '[0-9.]*s$' | head -1 | tr -d s)")
    own2s+=("$(grep -o 'exported the build cache to [^ ]*:nomounts .*in [0-9.]*s' "$WORK/a1.log" | grep -o '[0-9.]*s$' | head -1 | tr -d s)")
    rm -rf "$root"
  done
  t_plain=$(median "${plains[@]}") t_export=$(median "${exports[@]}")
  own=$(median "${owns[@]}")s own2=$(median "${own2s[@]}")s
  # The caches runner B reads: written once more, as before.
  log "$n: whittle A, --cache-to $cache and $nomounts"
  root=$(fresh a2)
  timed "$WORK/a2.log" wbuild "$root" -t "bench/$n" \
    --cache-to "type=registry,ref=$cache,mode=max,mounts=true" \
    --cache-to "type=registry,ref=$nomounts,mode=max" "$ctx" >/dev/null
  rm -rf "$root"

  log "$n: whittle B, fresh store, --cache-from"
  root=$(fresh b)
  t_b=$(timed "$WORK/b.log" wbuild "$root" -t "bench/$n" --cache-from "$cache" "$ctx")
  b_summary=$(grep -o '[0-9]* steps run, [0-9]* cached' "$WORK/b.log" | tail -1)
  b_fetched=$(grep -o '[0-9]* bytes of layers fetched' "$WORK/b.log" | grep -o '^[0-9]*' | tail -1)
  rm -rf "$root"

  log "$n: mounts: fresh stores, $n's ${EDIT[$n]} edited, --cache-from with and without mounts"
  ectx=$WORK/$n-edit
  cp -a "$ctx" "$ectx"
  printf '\n// edited by bench/remote-cache.sh\n' >>"$ectx/${EDIT[$n]}"
  root=$(fresh m1)
  t_edit_m=$(timed "$WORK/m1.log" wbuild "$root" -t "bench/$n" --cache-from "$cache" "$ectx")
  restored=$(grep -c 'restored cache mount' "$WORK/m1.log" || true)
  rm -rf "$root"
  root=$(fresh m0)
  t_edit_nom=$(timed "$WORK/m0.log" wbuild "$root" -t "bench/$n" --cache-from "$nomounts" "$ectx")
  rm -rf "$root"

  log "$n: buildkit A, cold, BUILDKIT_INLINE_CACHE=1, pushed"
  bk=$REG/bench/$n:inline
  $DOCKER builder prune -af >/dev/null
  t_bk_a=$(timed "$WORK/bka.log" $DOCKER build --network=none --progress=plain \
    --build-arg BUILDKIT_INLINE_CACHE=1 -t "$bk" "$ctx")
  timed "$WORK/bkpush.log" $DOCKER push "$bk" >/dev/null
  $DOCKER rmi -f "$bk" >/dev/null
  $DOCKER builder prune -af >/dev/null
  log "$n: buildkit B, pruned builder, --cache-from"
  t_bk_b=$(timed "$WORK/bkb.log" $DOCKER build --network=none --progress=plain \
    --cache-from "$bk" -t "$bk" "$ctx")
  bk_cached=$(grep -c ' CACHED$' "$WORK/bkb.log" || true)
  $DOCKER rmi -f "$bk" >/dev/null
  $DOCKER builder prune -af >/dev/null

  overhead=$(awk -v a="$t_export" -v b="$t_plain" 'BEGIN { printf "%+.3f s (%+.0f%%)", a - b, (a - b) * 100 / b }')
  ROWS+=("| $n | $t_b ($b_summary, $b_fetched bytes of layers fetched) | $t_bk_b ($bk_cached steps CACHED) | $(ratio "$t_b" "$t_bk_b") | $t_plain | $t_export | $overhead; export itself ${own:-?} (+ ${own2:-?} for the second ref) | $t_bk_a | $t_edit_m ($restored mounts restored) | $t_edit_nom | $(ratio "$t_edit_m" "$t_edit_nom") |")
  log "$n: ${ROWS[-1]}"
done

{
  echo "# Shared build cache: runner B from a registry cache, whittle vs BuildKit inline cache"
  echo
  echo "\`bench/remote-cache.sh ${EXAMPLES[*]}\`, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores,"
  echo "load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg). One run each (runner A: $A_RUNS, medians)."
  echo "Tools: whittle $WHITTLE_REV (release), $($DOCKER version --format 'Docker {{.Server.Version}}' 2>/dev/null) (BuildKit built in), docker-registry on 127.0.0.1."
  echo
  echo "| example | whittle B cold, --cache-from (s) | BuildKit B cold, --cache-from inline (s) | whittle ÷ BuildKit | whittle A cold (s) | whittle A cold + --cache-to (s) | export overhead | BuildKit A cold + inline (s) | B after an edit, cache with mounts (s) | same, cache without mounts (s) | mounts ÷ none |"
  echo "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- whittle's cache is \`mode=max,mounts=true\`: every stage's steps and the RUN cache mounts; BuildKit's"
  echo "  inline cache holds only the final image's layers (its cache format's limit), so a builder"
  echo "  stage is rebuilt by BuildKit's runner B unless every final layer is a hit."
  echo "- Export overhead: the same cold build on a fresh store with and without \`--cache-to\`"
  echo "  (two refs: with mounts, and without), $A_RUNS of each alternating, medians; the difference"
  echo "  still carries the noise of cold builds on 2 shared cores; whittle's own timing of each"
  echo "  export (median) is next to it."
  echo "- Mounts: fresh stores, the edited source, so the compile step runs; with the cache that"
  echo "  carries mounts, it finds runner A's compiler cache in its \`--mount=type=cache\` dir."
} >"$RESULTS"
log "wrote $RESULTS"
cat "$RESULTS"
