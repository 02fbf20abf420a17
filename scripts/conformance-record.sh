#!/usr/bin/env bash
# Records the expected results of the conformance cases (crates/whittle/tests/conformance/cases)
# from a docker with BuildKit, e.g. the lab's:
#
#   . ../shared/lab/env.sh                      # DOCKER_HOST, DOCKER_BUILDKIT=1
#   scripts/conformance-record.sh               # every recordable case
#   scripts/conformance-record.sh 12-user-workdir 40-copy-symlink
#   CARGO_LOCK=/tmp/cargo.lock scripts/...      # run cargo under `flock $CARGO_LOCK`
#
# 1. whittle makes the base image (test/busybox:1, the tests' own fixture) and saves it as a
#    docker archive; `docker load` takes it, so both builders start from the same bytes.
# 2. Each case is built with `docker build --network=none` from a prepared copy of its
#    context (modes as git with umask 022 gives them, then the case's setup.sh), again after
#    rebuild.sh if the case has one; the image is `docker save`d and, when the case has a
#    `run` file, run with `docker run --rm --network=none`.
# 3. An #[ignore]d test lists what docker gave with the same code the suite lists whittle's
#    images with, and writes each case's expected/ plus expected/recorded-by.
#
# Cases whose expected/recorded-by starts with "hand-written" are skipped: the BuildKit here
# is too old for them, and their expected/ follows the Dockerfile reference. FORCE=1 records
# them anyway (to see what this BuildKit says). expected/known-defect and
# expected/error-match are never touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cases=$root/crates/whittle/tests/conformance/cases
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  { echo "no docker answers at ${DOCKER_HOST:-the default socket}: source ../shared/lab/env.sh" >&2; exit 1; }
export DOCKER_BUILDKIT=1

cargo_test() {
  local lock=()
  [ -n "${CARGO_LOCK:-}" ] && lock=(flock "$CARGO_LOCK")
  (cd "$root" && "${lock[@]}" cargo test -q -p whittle --test conformance -- \
    --ignored --exact "$1" --nocapture)
}

out=$(mktemp -d /tmp/conformance-record.XXXXXX)
trap 'rm -rf "$out"' EXIT
export WHITTLE_CONFORMANCE_RECORD=$out

server=$(docker version --format '{{.Server.Version}}')
printf 'docker %s (its built-in BuildKit and Dockerfile frontend), %s\n' \
  "$server" "$(date -u +%Y-%m-%d)" >"$out/recorded-by"

echo "== base image (whittle) -> docker load"
cargo_test recorded::record_base_image
docker load -q -i "$out/base.tar"

if [ $# -eq 0 ]; then
  set -- $(cd "$cases" && ls)
fi

for name in "$@"; do
  name=${name%/}
  case_dir=$cases/$name
  [ -f "$case_dir/Dockerfile" ] || { echo "no case $name" >&2; exit 1; }
  if grep -qs '^hand-written' "$case_dir/expected/recorded-by" && [ -z "${FORCE:-}" ]; then
    echo "== $name: skipped (hand-written: $(cut -c1-100 "$case_dir/expected/recorded-by"))"
    continue
  fi
  echo "== $name"
  got=$out/$name
  ctx=$got/context
  mkdir -p "$ctx"
  [ -d "$case_dir/context" ] && cp -a "$case_dir/context/." "$ctx/"
  chmod -R u=rwX,go=rX "$ctx"
  [ -f "$case_dir/setup.sh" ] && (cd "$ctx" && sh "$case_dir/setup.sh")
  args=()
  if [ -f "$case_dir/args" ]; then
    set -f
    # shellcheck disable=SC2207 # words split on whitespace, as the test splits them
    args=($(grep -v '^[[:space:]]*#' "$case_dir/args" | sed "s|@CASE@|$case_dir|g"))
    set +f
  fi
  tag=conformance/$name:1
  docker rmi -f "$tag" >/dev/null 2>&1 || true
  # `--ssh default` forwards $SSH_AUTH_SOCK: any listening socket does for the cases.
  agent_pid=
  if printf '%s\n' "${args[@]}" | grep -qx -- --ssh; then
    export SSH_AUTH_SOCK=$got/agent.sock
    python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(3600)' "$SSH_AUTH_SOCK" &
    agent_pid=$!
    while [ ! -S "$SSH_AUTH_SOCK" ]; do sleep 0.1; done
  fi
  build() {
    (cd "$case_dir" && docker build --progress=plain --network=none \
      -f "$case_dir/Dockerfile" -t "$tag" "${args[@]}" "$ctx") >"$got/build.log" 2>&1
  }
  status=0
  build || status=$?
  if [ "$status" = 0 ] && [ -f "$case_dir/rebuild.sh" ]; then
    (cd "$ctx" && sh "$case_dir/rebuild.sh")
    build || status=$?
  fi
  [ -n "$agent_pid" ] && kill "$agent_pid"
  echo "$status" >"$got/build.status"
  if [ "$status" != 0 ]; then
    echo "   build failed ($status): $(grep -v '^\s*$' "$got/build.log" | tail -1)"
    continue
  fi
  docker save -o "$got/image.tar" "$tag"
  if [ -f "$case_dir/run" ]; then
    mapfile -t run_args <"$case_dir/run"
    rs=0
    docker run --rm --network=none "$tag" "${run_args[@]}" >"$got/run.out" 2>/dev/null || rs=$?
    echo "$rs" >"$got/run.status"
  fi
  docker rmi -f "$tag" >/dev/null 2>&1 || true
done

echo "== listing into expected/"
cargo_test recorded::record_expectations
