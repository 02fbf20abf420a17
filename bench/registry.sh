#!/usr/bin/env bash
# Registry benchmark: push and pull MB/s of a ~500 MB image (incompressible data in 4 layers)
# against a local docker-registry (Debian's reference registry on 127.0.0.1, plain HTTP, its
# storage under $BENCH_DIR), whittle side by side with `skopeo copy` (from the same blobs: the
# whittle store is an OCI layout, so skopeo reads it as oci:STORE:TAG). Median of 3 runs each;
# every push goes to a registry with empty storage, every pull into an empty store/layout.
# Usage: bench/registry.sh [MB] (default 500). Needs docker-registry and skopeo (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-500}
RUNS=3
DIR=${BENCH_DIR:-/tmp/whittle-bench-registry}
command -v docker-registry >/dev/null && command -v skopeo >/dev/null || scripts/deps.sh
cargo build --release -q -p whittle
W=$(realpath "${CARGO_TARGET_DIR:-target}")/release/whittle
rm -rf "$DIR" && mkdir -p "$DIR/ctx"

# The image: 4 layers of random bytes (gzip cannot shrink them), made by a whittle build.
per=$(( MB / 4 ))
for i in 1 2 3 4; do head -c "${per}M" /dev/urandom > "$DIR/ctx/data$i"; done
printf 'FROM scratch\nCOPY data1 /d1\nCOPY data2 /d2\nCOPY data3 /d3\nCOPY data4 /d4\n' > "$DIR/ctx/Dockerfile"
STORE=$DIR/store
"$W" --root "$STORE" build -q -t bench:bench500 "$DIR/ctx" >/dev/null
rm -rf "$DIR/ctx"
BYTES=$("$W" --root "$STORE" images --format json | jq '[.[] | select(.RepoTags | index("bench:bench500")) | .Size] | first')
[ "$BYTES" -gt 0 ] || { echo "no image size" >&2; exit 1; }
IMG_MB=$(awk -v b="$BYTES" 'BEGIN{printf "%.0f", b/1e6}')
# Blobs into the page cache, as after a build.
cat "$STORE"/blobs/sha256/* > /dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
REG_PID=""
start_registry() { # fresh storage each time
  stop_registry
  rm -rf "$DIR/reg" && mkdir -p "$DIR/reg"
  cat > "$DIR/reg.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/reg
http:
  addr: $REG
YML
  docker-registry serve "$DIR/reg.yml" >"$DIR/reg.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "docker-registry did not start: $(cat "$DIR/reg.log")" >&2; exit 1
}
stop_registry() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=""; fi
}
trap stop_registry EXIT

secs() { # command...: prints elapsed seconds
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>"$DIR/last.err" || { cat "$DIR/last.err" >&2; exit 1; }
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e-s}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

declare -A T
for run in $(seq $RUNS); do
  start_registry
  T[wpush]+=" $(secs "$W" --root "$STORE" push -q bench:bench500 "$REG/bench/w:1")"
  start_registry
  T[spush]+=" $(secs skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$STORE:bench500" "docker://$REG/bench/s:1")"
  sync
done
# Pulls from one registry holding the image.
start_registry
"$W" --root "$STORE" push -q bench:bench500 "$REG/bench/p:1" >/dev/null
for run in $(seq $RUNS); do
  rm -rf "$DIR/pw" "$DIR/ps"; sync
  T[wpull]+=" $(secs "$W" --root "$DIR/pw" pull -q "$REG/bench/p:1")"
  sync
  T[spull]+=" $(secs skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$REG/bench/p:1" "oci:$DIR/ps:p")"
  sync
done
stop_registry

echo "== ${IMG_MB} MB image (4 incompressible layers), local docker-registry over HTTP, $(nproc) cores, median of $RUNS"
printf '%-6s %-8s %9s %9s   %s\n' op tool seconds MB/s runs
row() { # op tool key
  local m; m=$(median ${T[$3]})
  printf '%-6s %-8s %9s %9s   %s\n' "$1" "$2" "$m" "$(awk -v b="$BYTES" -v s="$m" 'BEGIN{printf "%.0f", b/1e6/s}')" "${T[$3]# }"
}
row push whittle wpush
row push skopeo spush
row pull whittle wpull
row pull skopeo spull
ratio() { awk -v a="$(median ${T[$1]})" -v b="$(median ${T[$2]})" 'BEGIN{printf "%.2f", b/a}'; }
echo "whittle/skopeo speed: push $(ratio wpush spush)x, pull $(ratio wpull spull)x (above 1: whittle faster)"
rm -rf "$DIR"
