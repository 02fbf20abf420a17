#!/usr/bin/env bash
# Build benchmark: whittle vs BuildKit (Debian's docker.io, dockerd on a private socket) vs
# Buildah, on the same examples, the same base images and the same Dockerfiles, in one run.
#
# Usage (as root, from anywhere):
#   bench/build.sh [EXAMPLE...]     default: go-scratch parallel-stages target-debug big-context
#                                   many-steps
# EXAMPLE is a directory of examples/, or one of two generated cases (made under the work dir):
#   big-context  20,000 files, 170 MB (seeded random data) copied into a busybox image
#   many-steps   36 small steps, COPY and RUN in turns, on busybox
#   cpu-balanced    three stages, each a CPU-bound RUN of the same length (a shell loop), copied
#                   into one image: does the tool keep both cores busy to the end?
#   cpu-unbalanced  the same with one long stage and two of a quarter of its length
# Env: RUNS=N (no-change rebuilds per tool, default 5), EDIT_RUNS=N (one-file-edit rebuilds per
#      tool, default 3), BENCH_DIR (default /var/lib/whittle-bench: every store lives there).
#
# For each example and each tool:
#   cold       one build with an empty build cache (base images already loaded);
#   no-change  median of RUNS rebuilds of the same context (hyperfine);
#   1-file     median of EDIT_RUNS rebuilds, each after appending a new comment line to one
#              source file of a copy of the example (the repository is never touched);
#   size       the final image: see the size notes printed under the table.
# All three tools build with --network=none; nothing creates networks. The `# syntax=` line is
# removed from the copied Dockerfiles (BuildKit would try to pull its frontend image from a
# registry; whittle and buildah ignore the line anyway).
#
# Tools:
#   whittle   target/release/whittle --root $BENCH_DIR/whittle build --network none
#   buildkit  DOCKER_BUILDKIT=1 /usr/bin/docker build --network=none (Debian's docker.io 20.10,
#             its own dockerd on unix:///run/whittle-bench-docker.sock with no bridge, no
#             iptables, own data-root/exec-root under $BENCH_DIR; stopped on exit)
#   buildah   buildah bud --layers --network=none --pull=never (own storage under $BENCH_DIR)
# Writes bench/build-results.md (the table, the date, the machine and its load); a run of some
# examples writes bench/build-results-NAME-NAME.md instead (RESULTS=FILE to choose).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

EXAMPLES=("$@")
[ ${#EXAMPLES[@]} -gt 0 ] || EXAMPLES=(go-scratch parallel-stages target-debug big-context many-steps)
RUNS=${RUNS:-5}
EDIT_RUNS=${EDIT_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/lib/whittle-bench}
# The full run's table is the one kept in the repository; a run of some cases writes its own
# file, so it never replaces the full table with a few rows.
if [ $# -eq 0 ]; then
  RESULTS=${RESULTS:-$REPO/bench/build-results.md}
else
  RESULTS=${RESULTS:-$REPO/bench/build-results-$(IFS=-; echo "$*").md}
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A BASES=(
  [go-scratch]="golang" [go-fat]="golang" [rust-distroless]="rust cc" [python-venv]="python"
  [java-jdk-jre]="jdk jre" [parallel-stages]="busybox debian" [target-debug]="rust cc"
  [cache-mounts]="golang" [big-context]="busybox" [many-steps]="busybox"
  [cpu-balanced]="busybox" [cpu-unbalanced]="busybox"
)
declare -A EDIT=(
  [go-scratch]=main.go [go-fat]=main.go [rust-distroless]=src/main.rs [python-venv]=app/main.py
  [java-jdk-jre]=src/hello/Main.java [parallel-stages]=report.sh [target-debug]=hello.c
  [cache-mounts]=main.go [big-context]=pkg050/sub0/file10000.dat [many-steps]=f10.txt
  [cpu-balanced]=seed.txt [cpu-unbalanced]=seed.txt
)

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (dockerd, buildah, whittle's RUN steps)"
generated() { case $1 in big-context|many-steps|cpu-*) return 0 ;; *) return 1 ;; esac; }
for n in "${EXAMPLES[@]}"; do
  [ -n "${BASES[$n]:-}" ] && { generated "$n" || [ -f "examples/$n/Dockerfile" ]; } || die "unknown example '$n'"
done

# ----------------------------------------------------------------------------- packages
PKGS=(docker.io buildah hyperfine jq time)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt-get; package scripts may not start services)"
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# ----------------------------------------------------------------------------- whittle
log "building whittle (cargo build --release -p whittle)"
cargo build --release -q -p whittle
WHITTLE=$REPO/target/release/whittle
W_ROOT=$BENCH_DIR/whittle
w() { "$WHITTLE" --root "$W_ROOT" "$@"; }

# ----------------------------------------------------------------------------- dockerd
# Debian's 20.10 client (its built-in BuildKit), not whatever `docker` is first in PATH.
DOCKER=/usr/bin/docker
export DOCKER_HOST=unix:///run/whittle-bench-docker.sock
export DOCKER_BUILDKIT=1
D_DATA=$BENCH_DIR/docker
D_EXEC=$BENCH_DIR/docker-exec
mkdir -p "$BENCH_DIR" "$D_DATA" "$D_EXEC"
WORK=$(mktemp -d /tmp/whittle-bench.XXXXXX)
DOCKERD_PID=""
cleanup() {
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    log "stopping dockerd (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if $DOCKER version >/dev/null 2>&1; then
  die "something already answers on $DOCKER_HOST; stop it first"
fi
log "starting dockerd on $DOCKER_HOST (no bridge, no iptables; data under $BENCH_DIR)"
/usr/sbin/dockerd -H "$DOCKER_HOST" \
  --data-root "$D_DATA" --exec-root "$D_EXEC" --pidfile "$BENCH_DIR/dockerd.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --userland-proxy=false --storage-driver=overlay2 --log-level=warn \
  >"$BENCH_DIR/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do
  $DOCKER version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$BENCH_DIR/dockerd.log" >&2; die "dockerd died"; }
  sleep 0.5
done
$DOCKER version >/dev/null 2>&1 || die "dockerd did not answer in 30 s (see $BENCH_DIR/dockerd.log)"

# ----------------------------------------------------------------------------- buildah
# Own storage and config: nothing shared with a system podman/buildah, nothing pulled.
mkdir -p "$BENCH_DIR/containers"
cat >"$BENCH_DIR/containers/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "/run/whittle-bench-containers"
graphroot = "$BENCH_DIR/containers/storage"
[storage.options.overlay]
mountopt = "nodev"
EOF
cat >"$BENCH_DIR/containers/containers.conf" <<EOF
[containers]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' \
  >"$BENCH_DIR/containers/registries.conf"
export CONTAINERS_STORAGE_CONF=$BENCH_DIR/containers/storage.conf
export CONTAINERS_CONF=$BENCH_DIR/containers/containers.conf
export CONTAINERS_REGISTRIES_CONF=$BENCH_DIR/containers/registries.conf
export BUILDAH_LAYERS=true
# buildah keeps RUN --mount=type=cache directories under $TMPDIR/buildah-cache (default
# /var/tmp): give it its own TMPDIR so that a cold build can start without them.
BUILDAH_TMP=$BENCH_DIR/buildah-tmp
mkdir -p "$BUILDAH_TMP"

# ----------------------------------------------------------------------------- base images
declare -A want=()
for n in "${EXAMPLES[@]}"; do for b in ${BASES[$n]}; do want[$b]=1; done; done
log "base images: ${!want[*]} (scripts/base-images.sh; cached after the first time)"
ARCHIVES=$(scripts/base-images.sh "${!want[@]}")
load_whittle_bases() { for a in $ARCHIVES; do w load -i "$a" >/dev/null; done; }
# The store is this script's own: emptied so that whittle's cold builds are cold.
rm -rf "$W_ROOT"
load_whittle_bases
for a in $ARCHIVES; do
  log "loading $a into docker and buildah"
  $DOCKER load -i "$a" >/dev/null
  buildah pull -q docker-archive:"$a" >/dev/null
done

# ----------------------------------------------------------------------------- helpers
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# build TOOL TAG CTX: one build, output into $WORK/last.log
build_cmd() {
  local tool=$1 tag=$2 ctx=$3
  case $tool in
    whittle) echo "$WHITTLE --root $W_ROOT build --network none --progress plain -t $tag $ctx" ;;
    buildkit) echo "$DOCKER build --network=none --progress=plain -t $tag $ctx" ;;
    buildah) echo "env TMPDIR=$BUILDAH_TMP buildah bud --layers --network=none --pull=never -t $tag $ctx" ;;
  esac
}
build() {
  local cmd; cmd=$(build_cmd "$@")
  # whittle's peak RSS (KB) per example, over its cold and edit builds (/usr/bin/time)
  [ "$1" != whittle ] || cmd="/usr/bin/time -f %M -a -o $WORK/rss-$CUR $cmd"
  if ! $cmd >"$WORK/last.log" 2>&1; then
    log "FAILED: $cmd"; tail -n 30 "$WORK/last.log" | sed 's/^/    | /' >&2
    return 1
  fi
}
# reset TOOL TAG: empty the tool's build cache and remove TAG (base images stay)
reset() {
  local tool=$1 tag=$2
  case $tool in
    whittle) rm -rf "$W_ROOT"; load_whittle_bases ;;
    buildkit) $DOCKER rmi -f "$tag" >/dev/null 2>&1 || true
              $DOCKER builder prune -af >/dev/null ;;
    buildah) buildah rmi -f "$tag" >/dev/null 2>&1 || true
             buildah rmi --prune >/dev/null 2>&1 || true
             rm -rf "$BUILDAH_TMP" && mkdir -p "$BUILDAH_TMP" ;;
  esac
}
# gen EXAMPLE DIR: writes a generated example's context into DIR.
gen() {
  local n=$1 dir=$2
  mkdir -p "$dir"
  case $n in
    big-context)
      python3 - "$dir" <<'PY'
import os, random, sys
root, r = sys.argv[1], random.Random(42)
for i in range(20000):
    d = os.path.join(root, f"pkg{i // 200:03d}", f"sub{(i // 20) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.dat"), "wb") as f:
        f.write(r.randbytes(r.randint(1, 17000)))
PY
      printf '%s\n' 'FROM whittle-test/busybox:1' 'WORKDIR /src' 'COPY . .' \
        'RUN find /src -type f | wc -l > /count.txt' >"$dir/Dockerfile" ;;
    many-steps)
      { echo 'FROM whittle-test/busybox:1'
        for i in $(seq -w 1 18); do
          echo "step $i" >"$dir/f$i.txt"
          echo "COPY f$i.txt /data/"
          echo "RUN cat /data/f$i.txt >> /log && wc -l /log"
        done; } >"$dir/Dockerfile" ;;
    cpu-balanced|cpu-unbalanced)
      # A busybox shell loop: single-threaded, no I/O; 1,500,000 iterations take about 1.5 s here.
      echo seed >"$dir/seed.txt"
      local loop=${CPU_LOOP:-1500000} a b c
      if [ "$n" = cpu-balanced ]; then a=$loop b=$loop c=$loop
      else a=$((loop * 2)) b=$((loop / 2)) c=$((loop / 2)); fi
      { for s in "a $a" "b $b" "c $c"; do
          set -- $s
          echo "FROM whittle-test/busybox:1 AS $1"
          echo "COPY seed.txt /"
          echo "RUN i=0; while [ \$i -lt $2 ]; do i=\$((i+1)); done; echo \$i > /$1"
        done
        echo 'FROM whittle-test/busybox:1'
        for s in a b c; do echo "COPY --from=$s /$s /out/$s"; done; } >"$dir/Dockerfile" ;;
  esac
}
# Sizes of the final image, two ways:
#   tar: uncompressed layer tar streams, summed (the same measure for all three tools)
#   own: what each tool reports (docker: .Size, bytes of the unpacked files; buildah: the
#        size in `buildah images --json`; whittle: `whittle images`, i.e. its compressed layers)
size_tar() {
  local tool=$1 tag=$2
  case $tool in
    whittle)
      local total=0 mt d f
      while read -r mt d; do
        f=$W_ROOT/blobs/sha256/${d#sha256:}
        case $mt in
          *gzip) total=$(( total + $(gzip -dc "$f" | wc -c) )) ;;
          *zstd) total=$(( total + $(zstd -dc "$f" | wc -c) )) ;;
          *) total=$(( total + $(stat -c %s "$f") )) ;;
        esac
      done < <(w inspect "$tag" | jq -r '.[0].Manifest.layers[] | "\(.mediaType) \(.digest)"')
      echo "$total" ;;
    buildkit) $DOCKER save "$tag" | tar -tvf - | awk '$NF ~ /layer\.tar$/ { s += $3 } END { print s + 0 }' ;;
    buildah) buildah inspect --type image "$tag" | jq -r '.Manifest | fromjson | [.layers[].size] | add' ;;
  esac
}
size_own() {
  local tool=$1 tag=$2
  case $tool in
    whittle) w images | awk -v r="${tag%:*}" -v t="${tag##*:}" '$1 == r && $2 == t { print $NF }' ;;
    buildkit) $DOCKER image inspect -f '{{.Size}}' "$tag" ;;
    buildah) buildah images --json "$tag" | jq -r '.[0].size' ;;
  esac
}
human() { awk -v b="$1" 'BEGIN { if (b == "" || b == "-") { print "-"; exit } if (b < 1e6) printf "%.1f kB", b / 1e3; else printf "%.1f MB", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }

TOOLS=(whittle buildkit buildah)
declare -A COLD=() NOCH=() EDITT=() STAR=() SOWN=()
failures=()

for n in "${EXAMPLES[@]}"; do
  CUR=$n
  ctx=$WORK/ctx-$n
  src=examples/$n
  if generated "$n"; then
    src=$WORK/src-$n
    [ -d "$src" ] || { log "$n: generating the context"; gen "$n" "$src"; }
  fi
  rm -rf "$ctx" && cp -a "$src" "$ctx"
  sed -i '/^# *syntax *=/d' "$ctx/Dockerfile"
  for t in "${TOOLS[@]}"; do
    tag=whittle-bench/$n:$t
    k=$n/$t
    reset "$t" "$tag"
    log "$n / $t: cold build"
    sync
    t0=$(now)
    if ! build "$t" "$tag" "$ctx"; then failures+=("$k cold: $(build_cmd "$t" "$tag" "$ctx")"); continue; fi
    COLD[$k]=$(secs "$t0" "$(now)")
    log "$n / $t: cold ${COLD[$k]} s; no-change rebuilds (hyperfine, $RUNS runs)"
    if hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" \
        "$(build_cmd "$t" "$tag" "$ctx")" >/dev/null 2>"$WORK/h.err"; then
      NOCH[$k]=$(jq -r '.results[0].median' "$WORK/h.json" | awk '{ printf "%.3f", $1 }')
    else
      failures+=("$k no-change: $(build_cmd "$t" "$tag" "$ctx")"); cat "$WORK/h.err" >&2
    fi
    log "$n / $t: ${EDIT_RUNS} one-file-edit rebuilds (${EDIT[$n]})"
    times=()
    for i in $(seq 1 "$EDIT_RUNS"); do
      case ${EDIT[$n]} in
        *.py|*.sh|*.txt|*.dat) line="# edit $t $i $RANDOM" ;;
        *.c) line="/* edit $t $i $RANDOM */" ;;
        *) line="// edit $t $i $RANDOM" ;;
      esac
      echo "$line" >>"$ctx/${EDIT[$n]}"
      t0=$(now)
      if ! build "$t" "$tag" "$ctx"; then failures+=("$k edit: $(build_cmd "$t" "$tag" "$ctx")"); times=(); break; fi
      times+=("$(secs "$t0" "$(now)")")
    done
    [ ${#times[@]} -eq 0 ] || EDITT[$k]=$(printf '%s\n' "${times[@]}" | median)
    # back to the original source, so the next tool starts from the same files
    cp "$src/${EDIT[$n]}" "$ctx/${EDIT[$n]}"
    STAR[$k]=$(size_tar "$t" "$tag" || echo -)
    SOWN[$k]=$(size_own "$t" "$tag" || echo -)
    log "$n / $t: no-change ${NOCH[$k]:-?} s, edit ${EDITT[$k]:-?} s (runs: ${times[*]:-}), size ${STAR[$k]} (tar) / ${SOWN[$k]} (own)"
  done
done

# ----------------------------------------------------------------------------- report
table() {
  echo "| example | tool | cold (s) | no-change (s) | 1-file edit (s) | image: layer tars | image: tool's own figure |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for n in "${EXAMPLES[@]}"; do
    for t in "${TOOLS[@]}"; do
      k=$n/$t
      own=${SOWN[$k]:--}
      [ "$t" != buildkit ] || own=$(human "$own")
      echo "| $n | $t | ${COLD[$k]:--} | ${NOCH[$k]:--} | ${EDITT[$k]:--} | $(human "${STAR[$k]:--}") | $own |"
    done
    for o in buildkit buildah; do
      echo "| $n | whittle ÷ $o | $(ratio "${COLD[$n/whittle]:-}" "${COLD[$n/$o]:-}") | $(ratio "${NOCH[$n/whittle]:-}" "${NOCH[$n/$o]:-}") | $(ratio "${EDITT[$n/whittle]:-}" "${EDITT[$n/$o]:-}") | $(ratio "${STAR[$n/whittle]:-}" "${STAR[$n/$o]:-}") | |"
    done
  done
}
{
  echo "# Build benchmark: whittle vs BuildKit vs Buildah"
  echo
  echo "\`bench/build.sh ${EXAMPLES[*]}\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB RAM", $2 / 1048576 }' /proc/meminfo),"
  echo "$(uname -r), load average before/after: ${LOAD_BEFORE:-$(cut -d' ' -f1-3 /proc/loadavg)} / $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Tools: whittle $(git -C "$REPO" rev-parse --short HEAD) (release), $($DOCKER --version) (BuildKit built in), $(buildah --version | cut -d' ' -f1-3)."
  echo
  table
  echo
  echo "- cold: one build with an empty build cache, straight after loading the base images (\`whittle"
  echo "  load\`, \`docker load\` and \`buildah pull\` all extract their layers). No-change: median of $RUNS"
  echo "  rebuilds (hyperfine, 1 warm-up); 1-file edit: median of $EDIT_RUNS rebuilds, each after appending a"
  echo "  comment line to the file named in the script. All builds \`--network=none\`; BuildKit through"
  echo "  its own dockerd (no bridge, no iptables), Buildah with \`bud --layers --pull=never\`."
  echo "- image: layer tars = the final image's layers as uncompressed tar streams, summed (whittle:"
  echo "  its gzip layers decompressed; BuildKit: the layer.tar files of \`docker save\`; Buildah: the"
  echo "  layer sizes in \`buildah inspect\`'s manifest, which are uncompressed tars). The tool's own figure:"
  echo "  \`whittle images\` (whittle's compressed layers, like a registry's size), \`docker image inspect -f"
  echo "  {{.Size}}\` (bytes of the unpacked files), and the size in \`buildah images --json\`."
  echo "- ratios below each example: whittle's figure divided by the other tool's (below 1 = whittle smaller/faster)."
  echo "- whittle's peak RSS, the largest of its cold and edit builds (\`/usr/bin/time -f %M\`: the largest"
  echo "  process of the build's tree, so a RUN step's program counts too, e.g. go-scratch's Go compiler):"
  for n in "${EXAMPLES[@]}"; do
    [ -s "$WORK/rss-$n" ] && awk -v n="$n" 'BEGIN { m = 0 } /^[0-9]+$/ { if ($1 > m) m = $1 } END { printf "  %s %.1f MB;\n", n, m / 1024 }' "$WORK/rss-$n"
  done
  if [ ${#failures[@]} -gt 0 ]; then
    echo
    echo "Failures:"
    printf -- '- `%s`\n' "${failures[@]}"
  fi
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
echo
cat "$RESULTS"
[ ${#failures[@]} -eq 0 ]
