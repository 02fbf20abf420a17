#!/usr/bin/env bash
# Bytes pushed (#19): each example built by whittle and by BuildKit on base images loaded from
# docker archives, pushed to the same local registry, and the image's bytes there compared:
# the config plus the layers as the pushed manifest lists them (what a registry stores and a
# puller downloads for the image). whittle: `whittle build` then `whittle push`; BuildKit:
# `docker build` then `docker push` (Debian's docker.io 20.10: the daemon compresses the
# layers with gzip when it pushes them).
#
#   bench/push-bytes.sh [EXAMPLE...]   default: go-fat python-venv rust-distroless target-debug
#
# BuildKit runs in its own dockerd (no bridge, no iptables, own data root under $BENCH_DIR),
# the registry is Debian's docker-registry on 127.0.0.1:<free port>; both are stopped on exit.
# Env: WHITTLE_BUILD_ARGS (extra build flags), RESULTS (default bench/push-bytes-results.md).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

EXAMPLES=("$@")
[ ${#EXAMPLES[@]} -gt 0 ] || EXAMPLES=(go-fat python-venv rust-distroless target-debug)
BENCH_DIR=${BENCH_DIR:-/var/lib/whittle-bench-push}
RESULTS=${RESULTS:-$REPO/bench/push-bytes-results.md}
# Extra `whittle build` flags, e.g. "--compression gzip --compression-level 7".
read -r -a BUILD_ARGS <<<"${WHITTLE_BUILD_ARGS:-}"

declare -A BASES=([go-scratch]="golang" [go-fat]="golang" [rust-distroless]="rust cc"
  [python-venv]="python" [target-debug]="rust cc" [java-jdk-jre]="jdk jre")
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (dockerd, whittle's RUN steps)"
for n in "${EXAMPLES[@]}"; do
  [ -n "${BASES[$n]:-}" ] && [ -f "examples/$n/Dockerfile" ] || die "unknown example '$n'"
done
for b in /usr/sbin/dockerd /usr/bin/docker /usr/bin/docker-registry /usr/bin/jq /usr/bin/curl; do
  [ -x "$b" ] || die "$b is missing (apt-get install docker.io docker-registry jq curl)"
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
WORK=$(mktemp -d /tmp/whittle-bench-push.XXXXXX)
DOCKER=/usr/bin/docker
export DOCKER_HOST=unix:///run/whittle-bench-push-docker.sock
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

declare -A want=()
for n in "${EXAMPLES[@]}"; do for b in ${BASES[$n]}; do want[$b]=1; done; done
ARCHIVES=$(scripts/base-images.sh "${!want[@]}")
for a in $ARCHIVES; do log "loading $a into docker"; $DOCKER load -i "$a" >/dev/null; done
W_ROOT=$BENCH_DIR/whittle
for a in $ARCHIVES; do "$WHITTLE" --root "$W_ROOT" load -i "$a" >/dev/null; done

# bytes REPO: the config's and the layers' sizes in the manifest the registry holds for REPO:latest.
bytes() {
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/$1/manifests/latest" | jq '.config.size + ([.layers[].size] | add)'
}
human() { awk -v b="$1" 'BEGIN { if (b < 1e6) printf "%.1f kB", b / 1e3; else printf "%.1f MB", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3fx", a / b }'; }

rows=()
for n in "${EXAMPLES[@]}"; do
  ctx=$WORK/ctx-$n
  rm -rf "$ctx" && cp -a "examples/$n" "$ctx"
  sed -i '/^# *syntax *=/d' "$ctx/Dockerfile"
  log "$n: whittle build and push"
  "$WHITTLE" --root "$W_ROOT" build -q --network none ${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"} \
    -t "$REG/whittle/$n:latest" "$ctx" >/dev/null
  "$WHITTLE" --root "$W_ROOT" push "$REG/whittle/$n:latest" >/dev/null
  log "$n: BuildKit build and push"
  $DOCKER build -q --network=none -t "$REG/buildkit/$n:latest" "$ctx" >/dev/null
  $DOCKER push "$REG/buildkit/$n:latest" >/dev/null
  w=$(bytes "whittle/$n") b=$(bytes "buildkit/$n")
  log "$n: whittle $w bytes, BuildKit $b bytes"
  rows+=("| $n | $(human "$w") | $(human "$b") | $(ratio "$w" "$b") |")
done

{
  echo "# Bytes pushed: whittle vs BuildKit"
  echo
  echo "\`bench/push-bytes.sh ${EXAMPLES[*]}\`${WHITTLE_BUILD_ARGS:+ (whittle build $WHITTLE_BUILD_ARGS)}, $(date -u '+%Y-%m-%d %H:%M UTC'), whittle $WHITTLE_REV (release),"
  echo "$($DOCKER version --format 'Docker {{.Server.Version}}') (BuildKit built in), docker-registry on 127.0.0.1."
  echo
  echo "| example | whittle pushes | BuildKit pushes | whittle ÷ BuildKit |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- The image's config and layers as the pushed manifest lists them. Base images loaded from the"
  echo "  docker archives of scripts/base-images.sh (uncompressed layers) into both tools."
  echo "- whittle: layers stored uncompressed (the bases) at gzip level 7 when pushed, the layers the"
  echo "  build makes at level 4 (both deterministic, remembered by diff id); dockerd with Go's gzip"
  echo "  at its default level when it pushes."
} >"$RESULTS"
cat "$RESULTS"
