#!/usr/bin/env bash
# Builds every example under examples/ with whittle, runs it and checks what it prints, and
# prints a table of image sizes and build times. Exits non-zero if anything failed.
#
# Usage:
#   scripts/examples.sh [NAME...]        the named examples (default: all of them)
#
# For each example:
#   - the base images it needs are made from Debian packages by scripts/base-images.sh (cached
#     under /var/cache/whittle-test, so this takes seconds after the first time) and loaded;
#   - cold build (`whittle build -t whittle-example/NAME examples/NAME`, empty build cache),
#     then the same build again, which must run no step at all (no-change rebuild);
#   - `whittle run --rm whittle-example/NAME`, whose output must match what the example prints;
#   - the same build with `-o type=oci,dest=FILE`, which `skopeo copy` must accept;
#   - a one-file edit: a copy of the example with a comment appended to one source file is
#     built (as whittle-example/NAME:edit) and run again;
#   - the stage called `builder`, if any, is built with `--target builder` (as
#     whittle-example/NAME:builder) to compare sizes; plus each example's own checks
#     (target-debug: a shell in the builder, also with -it; cache-mounts: the edit build
#     reused the cache mount; rust-distroless: the edit build did not recompile the
#     dependency).
#
# The store is a dedicated one, never the default: --root ${WHITTLE_EXAMPLES_ROOT:-/tmp/whittle-examples}.
# It is emptied first so that cold builds are cold (only a directory this script made, marked
# with a .whittle-examples file, is ever emptied); KEEP_STORE=1 keeps it (then "cold" is warm).
# Uses the release binary (built with `cargo build --release -p whittle`). Needs root
# (`whittle run`, and scripts/base-images.sh the first time).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

ALL=(go-scratch go-fat rust-distroless python-venv java-jdk-jre parallel-stages target-debug cache-mounts)
# Base images (scripts/base-images.sh short names) each example's FROM lines use.
declare -A BASES=(
  [go-scratch]="golang"
  [go-fat]="golang"
  [rust-distroless]="rust cc"
  [python-venv]="python"
  [java-jdk-jre]="jdk jre"
  [parallel-stages]="busybox debian"
  [target-debug]="rust cc"
  [cache-mounts]="golang"
)
# What `whittle run --rm whittle-example/NAME` must print (an extended regular expression
# matched against the whole output).
declare -A EXPECT=(
  [go-scratch]='^hello, world! \(a static go1\.[0-9.]+ binary on scratch, built by whittle\)$'
  [go-fat]='^hello, world! \(a go1\.[0-9.]+ binary in the full toolchain image, built by whittle\)$'
  [rust-distroless]='^hello, world! \(a Rust binary on a distroless base, uid 65532, built by whittle\)$'
  [python-venv]='^hello from Python 3\.[0-9.]+ \(venv /opt/venv: yes, user appuser, uid 1001\), built by whittle$'
  [java-jdk-jre]='^hello, world! \(Java [0-9]+ on the JRE, user app, built by whittle\)$'
  [parallel-stages]='checksums: sha256 of 768 MiB of zeros starts with [0-9a-f]{16}.*compress: +seq 1 3000000 \| gzip -9 is [0-9]+ bytes.*primes: +1438 primes below 12000.*stages running at once \(peak\): [23] of 3'
  [target-debug]='^hello, world! \(C on glibc 2\.[0-9]+, no shell in this image, built by whittle\)$'
  [cache-mounts]='^top words: \["the=\*\*\*","cache=\*\*","build=\*"\] \(built with a cache mount, by whittle\)$'
)
# The source file the one-file edit appends a comment to.
declare -A EDIT=(
  [go-scratch]=main.go
  [go-fat]=main.go
  [rust-distroless]=src/main.rs
  [python-venv]=app/main.py
  [java-jdk-jre]=src/hello/Main.java
  [parallel-stages]=report.sh
  [target-debug]=hello.c
  [cache-mounts]=main.go
)

log() { printf '[examples %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 2; }

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for n in "${names[@]}"; do
  [ -n "${EXPECT[$n]:-}" ] || die "unknown example '$n' (known: ${ALL[*]})"
  [ -f "examples/$n/Dockerfile" ] || die "examples/$n/Dockerfile is missing"
done
[ "$(id -u)" = 0 ] || die "needs root (whittle run, scripts/base-images.sh)"

# ----------------------------------------------------------------------------- the store
ROOT=${WHITTLE_EXAMPLES_ROOT:-/tmp/whittle-examples}
MARK=.whittle-examples
if [ -z "${KEEP_STORE:-}" ] && [ -e "$ROOT" ]; then
  if [ -f "$ROOT/$MARK" ]; then
    log "emptying the store $ROOT (made by this script; KEEP_STORE=1 keeps it)"
    rm -rf "$ROOT"
  elif [ -n "$(ls -A "$ROOT")" ]; then
    die "$ROOT exists and was not made by this script (no $MARK in it): set WHITTLE_EXAMPLES_ROOT to another directory"
  fi
fi
mkdir -p "$ROOT" && touch "$ROOT/$MARK"
WORK=$(mktemp -d /tmp/whittle-examples-work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ----------------------------------------------------------------------------- whittle
log "building whittle (cargo build --release -p whittle)"
cargo build --release -q -p whittle || die "cargo build --release -p whittle failed"
WHITTLE_BIN=$REPO/target/release/whittle
w() { "$WHITTLE_BIN" --root "$ROOT" "$@"; }

# ----------------------------------------------------------------------------- base images
declare -A want=()
for n in "${names[@]}"; do for b in ${BASES[$n]}; do want[$b]=1; done; done
log "base images: ${!want[*]} (scripts/base-images.sh)"
archives=$(scripts/base-images.sh "${!want[@]}") || die "scripts/base-images.sh ${!want[*]} failed"
for a in $archives; do
  w load -i "$a" >/dev/null || die "whittle load -i $a failed"
done

# ----------------------------------------------------------------------------- helpers
now() { date +%s%N; }
# secs START END: elapsed seconds with two decimals
secs() { local d=$(( ($2 - $1) / 10000000 )); printf '%d.%02d' $((d / 100)) $((d % 100)); }
size_of() { w images | awk -v r="${1%:*}" -v t="${1##*:}" '$1 == r && $2 == t { print $NF }'; }

declare -A SIZE=() COLD=() NOCHANGE=() EDITED=() BUILDER=() RESULT=()
failures=()
fail() { # fail NAME MESSAGE [LOGFILE]
  RESULT[$1]=FAIL
  failures+=("$1: $2")
  log "FAIL $1: $2"
  if [ -n "${3:-}" ] && [ -f "$3" ]; then grep -v '^\[ *[0-9.]*s\]' "$3" | tail -n 25 | sed 's/^/    | /' >&2; fi
}
# build NAME LOG ARGS...: whittle build with plain progress into LOG; sets ELAPSED
build() {
  local n=$1 out=$2; shift 2
  local t0; t0=$(now)
  w build --progress plain "$@" >"$out" 2>&1
  local rc=$?
  ELAPSED=$(secs "$t0" "$(now)")
  return $rc
}
# check_run NAME IMAGE: run the image and match its output against EXPECT[NAME]
check_run() {
  local n=$1 image=$2 out
  out=$(w run --rm "$image" 2>&1)
  local rc=$?
  printf '%s\n' "$out" | sed "s/^/    $n> /" >&2
  if [ $rc -ne 0 ]; then fail "$n" "whittle run --rm $image exited $rc"; return 1; fi
  if ! printf '%s' "$out" | tr '\n' '\t' | grep -Eq "${EXPECT[$n]}"; then
    fail "$n" "whittle run --rm $image printed something else than /${EXPECT[$n]}/"
    return 1
  fi
}

# ----------------------------------------------------------------------------- per example
for n in "${names[@]}"; do
  RESULT[$n]=ok
  ctx=examples/$n
  tag=whittle-example/$n
  lg=$WORK/$n

  log "$n: cold build"
  if ! build "$n" "$lg.cold.log" -t "$tag" "$ctx"; then
    fail "$n" "whittle build -t $tag $ctx failed" "$lg.cold.log"; continue
  fi
  COLD[$n]=$ELAPSED

  log "$n: no-change rebuild"
  if ! build "$n" "$lg.nochange.log" -t "$tag" "$ctx"; then
    fail "$n" "the no-change rebuild failed" "$lg.nochange.log"; continue
  fi
  NOCHANGE[$n]=$ELAPSED
  grep -Eq '^built .*: 0 steps run, [0-9]+ cached$' "$lg.nochange.log" \
    || fail "$n" "the no-change rebuild ran steps: $(grep '^built ' "$lg.nochange.log")"

  SIZE[$n]=$(size_of "$tag:latest")
  check_run "$n" "$tag:latest" || continue

  # The same image as an OCI archive, copied by skopeo (which checks every digest and size).
  log "$n: OCI archive output, read back by skopeo"
  if build "$n" "$lg.oci.log" -o "type=oci,dest=$WORK/$n.oci.tar" "$ctx"; then
    rm -rf "$WORK/$n.skopeo"
    if ! skopeo copy -q "oci-archive:$WORK/$n.oci.tar" "dir:$WORK/$n.skopeo" >"$lg.skopeo.log" 2>&1; then
      fail "$n" "skopeo refused the OCI archive of $tag" "$lg.skopeo.log"
    fi
    rm -rf "$WORK/$n.skopeo" "$WORK/$n.oci.tar"
  else
    fail "$n" "whittle build -o type=oci failed" "$lg.oci.log"
  fi

  log "$n: one-file edit (${EDIT[$n]})"
  rm -rf "$WORK/ctx" && cp -a "$ctx" "$WORK/ctx"
  case ${EDIT[$n]} in
    *.py|*.sh) echo "# edited by scripts/examples.sh" >>"$WORK/ctx/${EDIT[$n]}" ;;
    *.c) echo "/* edited by scripts/examples.sh */" >>"$WORK/ctx/${EDIT[$n]}" ;;
    *) echo "// edited by scripts/examples.sh" >>"$WORK/ctx/${EDIT[$n]}" ;;
  esac
  if ! build "$n" "$lg.edit.log" -t "$tag:edit" "$WORK/ctx"; then
    fail "$n" "the build after editing ${EDIT[$n]} failed" "$lg.edit.log"; continue
  fi
  EDITED[$n]=$ELAPSED
  grep -Eq '^built .*: 0 steps run' "$lg.edit.log" \
    && fail "$n" "editing ${EDIT[$n]} reran no step" "$lg.edit.log"
  check_run "$n" "$tag:edit" || continue
  w rmi "$tag:edit" >/dev/null

  if grep -Eiq '^FROM .* AS builder\s*$' "$ctx/Dockerfile"; then
    if build "$n" "$lg.builder.log" --target builder -t "$tag:builder" "$ctx"; then
      BUILDER[$n]=$(size_of "$tag:builder")
    else
      fail "$n" "whittle build --target builder -t $tag:builder $ctx failed" "$lg.builder.log"
    fi
  fi

  # Each example's own checks.
  case $n in
    go-scratch)
      # Cross-compiled for two platforms in one build (the BUILDPLATFORM pattern): native steps
      # only, the toolchain stage's steps before ARG TARGETARCH once, one index, each binary
      # an ELF of its platform's machine (e_machine: 0x3e x86-64, 0xb7 aarch64).
      rm -rf "$WORK/multi"
      if build "$n" "$lg.multi.log" --platform linux/amd64,linux/arm64 -t "$tag:multi" \
          -o "type=local,dest=$WORK/multi" "$ctx"; then
        log "$n: built for linux/amd64,linux/arm64 in ${ELAPSED}s"
        machine() { od -An -tx1 -j18 -N2 "$1" 2>/dev/null | tr -d ' \n'; }
        [ "$(machine "$WORK/multi/linux_amd64/hello")" = 3e00 ] \
          || fail "$n" "linux_amd64/hello is not an x86-64 ELF" "$lg.multi.log"
        [ "$(machine "$WORK/multi/linux_arm64/hello")" = b700 ] \
          || fail "$n" "linux_arm64/hello is not an aarch64 ELF" "$lg.multi.log"
        downloads=$(grep -Ec '^#[0-9]+ \[[^]]*\] RUN go mod download$' "$lg.multi.log")
        [ "$downloads" -le 1 ] \
          || fail "$n" "go mod download ran $downloads times for two platforms" "$lg.multi.log"
        w images | grep -q "^whittle-example/go-scratch *multi .*linux/arm64" \
          || fail "$n" "whittle images does not show the arm64 image of $tag:multi"
        # The arm64 image runs here under emulation (whittle's qemu handlers, registered once).
        if w binfmt --install linux/arm64 >"$lg.binfmt.log" 2>&1; then
          out=$(w run --rm --platform linux/arm64 "$tag:multi" 2>&1)
          printf '%s\n' "$out" | sed "s/^/    $n (arm64)> /" >&2
          printf '%s' "$out" | grep -Eq "${EXPECT[$n]}" \
            || fail "$n" "whittle run --platform linux/arm64 $tag:multi printed: $out"
        else
          fail "$n" "whittle binfmt --install linux/arm64 failed" "$lg.binfmt.log"
        fi
      else
        fail "$n" "the two-platform build failed" "$lg.multi.log"
      fi
      rm -rf "$WORK/multi"
      ;;
    target-debug)
      out=$(w run --rm "$tag:builder" sh -c '/src/check.sh && ls /out' 2>&1) \
        && printf '%s' "$out" | grep -q '^check passed' \
        || fail "$n" "sh in $tag:builder: $out"
      if command -v script >/dev/null; then
        # `whittle run -it` as a person would type it, on a pseudo-terminal made by script(1)
        out=$(printf 'echo "in the builder: $(ls /out)"\nexit 7\n' \
          | timeout 60 script -qec "'$WHITTLE_BIN' --root '$ROOT' run --rm -it $tag:builder sh" /dev/null 2>&1)
        rc=$?
        { [ $rc -eq 7 ] && printf '%s' "$out" | grep -q 'in the builder: hello'; } \
          || fail "$n" "whittle run --rm -it $tag:builder sh: exit $rc, output: $out"
      fi
      ;;
    cache-mounts)
      # the edit build's go build found the packages the cold build compiled
      before=$(sed -n 's/.*go build cache: \([0-9]*\) files before this build.*/\1/p' "$lg.edit.log")
      if [ "${before:-0}" -gt 0 ]; then
        log "$n: the build after the edit found $before files in the cache mount"
      else
        fail "$n" "the build after the edit found the cache mount empty" "$lg.edit.log"
      fi
      ;;
    python-venv)
      # RUN steps see SOURCE_DATE_EPOCH, so compileall wrote hash-checked .pyc files: valid
      # although the shipped layers clamp every mtime (flags word 3 = checked hash; 0 would be
      # a timestamp .pyc that is stale in the shipped image and recompiled at every start)
      flags=$(w run --rm "$tag:latest" python -c 'import glob; print(int.from_bytes(open(glob.glob("/opt/app/__pycache__/main.*.pyc")[0], "rb").read(8)[4:8], "little"))' 2>&1)
      [ "$flags" = 3 ] || fail "$n" "the .pyc of main.py is not hash-checked (flags: $flags)"
      ;;
    rust-distroless)
      # the edit must recompile the application only, not the dependency (cached layer)
      if grep -q 'Compiling greet' "$lg.edit.log" || ! grep -q 'Compiling hello' "$lg.edit.log"; then
        fail "$n" "the edit build did not recompile exactly the application" "$lg.edit.log"
      fi
      ;;
  esac
done

# ----------------------------------------------------------------------------- report
echo
printf '%-16s %10s %10s %12s %12s %14s  %s\n' NAME "IMAGE SIZE" "COLD" "NO-CHANGE" "1-FILE EDIT" "BUILDER STAGE" RESULT
for n in "${names[@]}"; do
  printf '%-16s %10s %10s %12s %12s %14s  %s\n' "$n" "${SIZE[$n]:--}" "${COLD[$n]:+${COLD[$n]}s}" \
    "${NOCHANGE[$n]:+${NOCHANGE[$n]}s}" "${EDITED[$n]:+${EDITED[$n]}s}" "${BUILDER[$n]:--}" "${RESULT[$n]}"
done
echo "(sizes as \`whittle images\` prints them; times include starting whittle; store: $ROOT)"
if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "${#failures[@]} failure(s):"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
