#!/usr/bin/env bash
# Builds the base images whittle's examples, tests, benchmarks and README quick start use.
#
# There is no image registry on the machines whittle is developed on (only Debian's package
# mirror), so the base images are made here from Debian packages: busybox-static for a tiny
# image, `debootstrap --variant=minbase` for a slim Debian, apt in a chroot for the toolchain
# images, and unpacked .debs for a distroless-like runtime without a shell. busybox also comes
# for arm64 and arm/v7, from those architectures' busybox-static .debs (multi-platform tests).
#
# Usage:
#   scripts/base-images.sh [NAME...]      build the named images (default: all); names are the
#                                         short names below or the full references
#   FORCE=1 scripts/base-images.sh rust   rebuild even though the archive exists
#   FORCE_DEBOOTSTRAP=1 ...               also re-run debootstrap (otherwise its cached tarball
#                                         is reused, so rebuilding images needs no re-download)
#
# Images (short name: reference as used in FROM lines):
#   busybox: whittle-test/busybox:1               busybox-static applets, root + nobody
#   debian:  whittle-test/debian:bookworm-slim    debootstrap minbase, slimmed like debian:*-slim
#   golang:  whittle-test/golang:bookworm         debian + golang-go (Go 1.19), GOPATH=/go
#   rust:    whittle-test/rust:bookworm           debian + rustc cargo gcc libc6-dev
#   python:  whittle-test/python:bookworm-slim    debian + python3-minimal python3-venv (+ `python`)
#   cc:      whittle-test/cc:bookworm             distroless-like: libc, libgcc, CA certs, tzdata
#   jdk:     whittle-test/jdk:bookworm            debian + default-jdk-headless maven
#   jre:     whittle-test/jre:bookworm            debian + default-jre-headless
#   busybox-linux-arm64:  whittle-test/busybox:1-arm64   busybox for linux/arm64 (arm64 .deb)
#   busybox-linux-arm-v7: whittle-test/busybox:1-arm-v7  busybox for linux/arm/v7 (armhf .deb)
#   debian-linux-arm64:   whittle-test/debian:bookworm-slim-arm64  debian for linux/arm64:
#            debootstrap --foreign, second stage and apt under emulation (not built by default:
#            needs `whittle binfmt --install linux/arm64` first; a few minutes)
#   busybox-multi: the three busybox images as one image index, whittle-test/busybox:1, in the
#            OCI layout oci-multi/ (not built by default; prints the layout's path last)
# The images built on debian have two layers: debian's (shared, same digest) and what apt added.
#
# Output, outside the repository, under ${WHITTLE_IMAGE_CACHE:-/var/cache/whittle-test/images}:
#   archives/<name>.tar   docker-archive (what `docker save` writes: manifest.json, <config>.json,
#                         <id>/layer.tar uncompressed, repositories); load with `whittle load -i`
#   oci/                  one OCI image layout holding all of them, each tagged with an
#                         org.opencontainers.image.ref.name annotation (the full reference)
#   oci-multi/            busybox-multi: index.json tags one image index (amd64, arm64, arm/v7
#                         manifests, each with its platform) as whittle-test/busybox:1
#   debootstrap/          the cached debootstrap result;  debs/  downloaded .debs and apt lists
#                         (debs/foreign/: a private apt state for arm64/armhf; the host's dpkg
#                         architectures and apt lists are never changed)
#   rootfs/debian/        debian's layer unpacked, the lower dir of the derived images' builds
# The path of each archive is printed on standard output, one a line; progress goes to stderr.
#
# Idempotent: an image whose archive exists is not rebuilt (just re-checked in oci/), so a
# second run takes about a second; a cold run about 3.5 minutes (debootstrap and apt downloads
# included). Layers are deterministic tars (sorted names, numeric owners, mtimes clamped to
# SOURCE_DATE_EPOCH, default 0), so the same root filesystem gives the same digests: two
# independent cold runs give identical images, except jdk and jre, whose Java keystore
# (/etc/ssl/certs/java/cacerts, PKCS#12) has a random salt each time ca-certificates-java runs.
#
# Needs root on Debian 12 (debootstrap, chroot, overlay and bind mounts). Never starts services:
# apt in the chroots runs with a policy-rc.d that forbids it, and every mount is undone on exit.
set -Eeuo pipefail
shopt -s nullglob

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${WHITTLE_IMAGE_CACHE:-/var/cache/whittle-test/images}
SUITE=bookworm
EPOCH=${SOURCE_DATE_EPOCH:-0}
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# apt-get options in the chroots: plain output, keep existing config files without asking
APT_OPTS="-o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

ALL_IMAGES=(busybox debian golang rust python cc jdk jre busybox-linux-arm64 busybox-linux-arm-v7
            debian-linux-arm64)
# Built only when named: it needs emulation set up (whittle binfmt --install linux/arm64).
NOT_BY_DEFAULT=(debian-linux-arm64)
declare -A REF=(
  [busybox]=whittle-test/busybox:1
  [busybox-linux-arm64]=whittle-test/busybox:1-arm64
  [busybox-linux-arm-v7]=whittle-test/busybox:1-arm-v7
  [debian-linux-arm64]=whittle-test/debian:bookworm-slim-arm64
  [debian]=whittle-test/debian:bookworm-slim
  [golang]=whittle-test/golang:bookworm
  [rust]=whittle-test/rust:bookworm
  [python]=whittle-test/python:bookworm-slim
  [cc]=whittle-test/cc:bookworm
  [jdk]=whittle-test/jdk:bookworm
  [jre]=whittle-test/jre:bookworm
)
# Images of another platform: OCI platform (architecture[/variant]) and Debian architecture.
declare -A PLATFORM=([busybox-linux-arm64]=arm64 [busybox-linux-arm-v7]=arm/v7 [debian-linux-arm64]=arm64)
declare -A DEB_ARCH=([busybox-linux-arm64]=arm64 [busybox-linux-arm-v7]=armhf)
# busybox-multi: the image index's reference and its images, in index order.
MULTI_REF=whittle-test/busybox:1
MULTI_IMAGES=(busybox busybox-linux-arm64 busybox-linux-arm-v7)
# Packages apt adds on top of debian for the derived images.
declare -A APT_PKGS=(
  [golang]="golang-go ca-certificates"
  [rust]="rustc cargo gcc libc6-dev ca-certificates"
  [python]="python3-minimal python3-venv python-is-python3 ca-certificates"
  [jdk]="default-jdk-headless maven ca-certificates"
  [jre]="default-jre-headless ca-certificates"
)
# .debs unpacked (not installed) into the distroless-like cc image.
CC_DEBS=(libc6 libgcc-s1 ca-certificates tzdata)

# ---------------------------------------------------------------------------- logging, errors
STEP="start"
log() { printf '[base-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
step() { STEP=$*; log "$*"; }
die() { printf 'base-images: error: %s\n' "$*" >&2; exit 1; }
on_err() {
  local rc=$? line=$1 cmd=$2
  printf 'base-images: FAILED (exit %s) during step: %s\n  at line %s: %s\n' "$rc" "$STEP" "$line" "$cmd" >&2
}
trap 'on_err $LINENO "$BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------- mounts
# Every mount is recorded and undone (innermost first) on exit, error or interrupt.
MOUNTS=()
do_mount() {  # mount ARGS... TARGET  (the last argument is the mount point)
  mount "$@" || die "mount $* failed (step: $STEP)"
  MOUNTS+=("${*: -1}")
}
undo_mounts() {
  local i m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${MOUNTS[i]}
    if mountpoint -q "$m"; then
      umount "$m" 2>/dev/null || umount -l "$m" || log "WARNING: could not unmount $m"
    fi
  done
  MOUNTS=()
}
trap undo_mounts EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- python helper
# Writes the image JSON and archives (stdlib only). Files are written to a temporary name and
# renamed, not fsynced: this is a cache, and fsync of big files stalls behind apt's writeback.
# Subcommands:
#   pack ARCHIVE OCI_DIR REF ARCH EPOCH SPEC_JSON LAYER...   docker-archive from layer tars
#                                 (the layers are also hard-linked into OCI_DIR's blobs)
#   oci-sync OCI_DIR ARCHIVE...   make the OCI layout hold each archive's image under its
#                                 RepoTags (skipped when already there), drop unreferenced blobs
#   oci-index OCI_DIR REF ARCHIVE...  an OCI layout whose index.json tags one image index REF
#                                 listing each archive's manifest with its platform
#   diff-ids ARCHIVE              the image's diff_ids, one a line
#   whiteouts UPPER LOWER         overlayfs upper dir -> OCI whiteouts (.wh.NAME, .wh..wh..opq)
#   summary ARCHIVE...            reference, size, config digest and layers of each archive
read -r -d '' PYHELPER <<'PY' || true
import hashlib, io, json, os, shutil, stat, sys, tarfile, time

CHUNK = 1 << 20

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(CHUNK), b""):
            h.update(b)
    return h.hexdigest()

def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)

def tinfo(name, size, epoch, mode=0o644, kind=tarfile.REGTYPE):
    t = tarfile.TarInfo(name)
    t.size, t.mode, t.mtime, t.type = size, mode, epoch, kind
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    return t

def pack(archive, oci, ref, arch, epoch, spec, *layers):
    epoch = int(epoch)
    spec = json.loads(spec)
    arch, _, variant = arch.partition("/")  # "arm/v7": architecture and variant
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    diff_ids = ["sha256:" + sha256_file(l) for l in layers]
    config = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": spec["config"],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": c, "comment": "scripts/base-images.sh"}
                    for c in spec["history"]],
    }
    if variant:
        config["variant"] = variant
    if len(config["history"]) != len(layers):
        sys.exit("pack: need one history entry per layer")
    cfg = dumps(config)
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    # Legacy v1 layer ids, as `docker save` names the layer directories: a chain over the
    # diff_ids (the top one also covers the config), so they are deterministic too.
    ids, parent = [], ""
    for i, d in enumerate(diff_ids):
        top = cfg_hex if i == len(diff_ids) - 1 else ""
        ids.append(hashlib.sha256(f"{parent}\n{d}\n{top}".encode()).hexdigest())
        parent = ids[-1]
    repo, tag = ref.rsplit(":", 1)
    manifest = [{"Config": cfg_hex + ".json", "RepoTags": [ref],
                 "Layers": [i + "/layer.tar" for i in ids]}]
    entries = {}  # name -> (bytes or path)
    for i, (lid, path) in enumerate(zip(ids, layers)):
        v1 = {"id": lid, "created": created, "os": "linux", "architecture": arch}
        if i:
            v1["parent"] = ids[i - 1]
        entries[lid + "/"] = None
        entries[lid + "/VERSION"] = b"1.0"
        entries[lid + "/json"] = dumps(v1)
        entries[lid + "/layer.tar"] = path
    entries[cfg_hex + ".json"] = cfg
    entries["manifest.json"] = dumps(manifest)
    entries["repositories"] = dumps({repo: {tag: ids[-1]}})
    tmp = archive + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            v = entries[name]
            if v is None:
                tar.addfile(tinfo(name.rstrip("/"), 0, epoch, 0o755, tarfile.DIRTYPE))
            elif isinstance(v, bytes):
                tar.addfile(tinfo(name, len(v), epoch), io.BytesIO(v))
            else:
                with open(v, "rb") as f:
                    tar.addfile(tinfo(name, os.fstat(f.fileno()).st_size, epoch), f)
    os.replace(tmp, archive)
    # Hard-link the layers into the OCI layout's blobs (uncompressed: blob digest = diff_id),
    # so oci-sync need not copy them out of the archive again.
    blobs = os.path.join(oci, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for path, d in zip(layers, diff_ids):
        blob = os.path.join(blobs, d.split(":", 1)[1])
        if not os.path.exists(blob):
            try:
                os.link(path, blob)
            except OSError:
                pass  # another file system: oci-sync copies it from the archive

def read_archive(archive):
    tar = tarfile.open(archive, "r:")
    manifest = json.load(tar.extractfile("manifest.json"))
    if len(manifest) != 1:
        sys.exit(f"{archive}: expected one image in manifest.json")
    m = manifest[0]
    cfg = tar.extractfile(m["Config"]).read()
    return tar, m, cfg

def diff_ids(archive):
    _, _, cfg = read_archive(archive)
    for d in json.loads(cfg)["rootfs"]["diff_ids"]:
        print(d)

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

def put_blob(blobs, data):
    hexd = hashlib.sha256(data).hexdigest()
    p = os.path.join(blobs, hexd)
    if not os.path.exists(p):
        write_atomic(p, data)
    return {"digest": "sha256:" + hexd, "size": len(data)}

def put_image(blobs, archive, tar, m, cfg):
    # The archive's layers (checked against the config's diff_ids), config and manifest into
    # blobs; returns the manifest's digest and size.
    layers = []
    for name, want in zip(m["Layers"], json.loads(cfg)["rootfs"]["diff_ids"]):
        hexd = want.split(":", 1)[1]
        p = os.path.join(blobs, hexd)
        member = tar.getmember(name)
        if not os.path.exists(p):
            src, h, tmp = tar.extractfile(member), hashlib.sha256(), p + ".tmp"
            with open(tmp, "wb") as out:
                for b in iter(lambda: src.read(CHUNK), b""):
                    h.update(b)
                    out.write(b)
            if h.hexdigest() != hexd:
                os.unlink(tmp)
                sys.exit(f"{archive}: {name} hashes to sha256:{h.hexdigest()}, config says {want}")
            os.replace(tmp, p)
        layers.append({"mediaType": MT_LAYER, "digest": want, "size": member.size})
    c = put_blob(blobs, cfg)
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, **c}, "layers": layers}
    return put_blob(blobs, dumps(man))

def new_layout(oci):
    blobs = os.path.join(oci, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layout = os.path.join(oci, "oci-layout")
    if not os.path.exists(layout):
        write_atomic(layout, b'{"imageLayoutVersion":"1.0.0"}')
    return blobs

def oci_index(oci, ref, *archives):
    # A fresh layout each time (cheap: busybox-sized), so no stale blob stays behind.
    tmp = oci + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    blobs = new_layout(tmp)
    manifests = []
    for archive in archives:
        tar, m, cfg = read_archive(archive)
        c = json.loads(cfg)
        platform = {"architecture": c["architecture"], "os": c["os"]}
        if c.get("variant"):
            platform["variant"] = c["variant"]
        md = put_image(blobs, archive, tar, m, cfg)
        manifests.append({"mediaType": MT_MANIFEST, **md, "platform": platform})
    idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    d = put_blob(blobs, dumps(idx))
    top = {"schemaVersion": 2, "mediaType": MT_INDEX,
           "manifests": [{"mediaType": MT_INDEX, **d, "annotations": {REF_NAME: ref}}]}
    write_atomic(os.path.join(tmp, "index.json"), dumps(top))
    if os.path.exists(oci):
        shutil.rmtree(oci)
    os.replace(tmp, oci)

def oci_sync(oci, *archives):
    blobs = new_layout(oci)
    index_path = os.path.join(oci, "index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    else:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": []}
    def config_of(desc):
        try:
            with open(os.path.join(blobs, desc["digest"].split(":", 1)[1]), "rb") as f:
                man = json.load(f)
            ok = all(os.path.exists(os.path.join(blobs, d["digest"].split(":", 1)[1]))
                     for d in [man["config"]] + man["layers"])
            return man["config"]["digest"] if ok else None
        except (OSError, ValueError, KeyError):
            return None
    changed = False
    for archive in archives:
        tar, m, cfg = read_archive(archive)
        cfg_digest = "sha256:" + hashlib.sha256(cfg).hexdigest()
        refs = m.get("RepoTags") or []
        have = {d.get("annotations", {}).get(REF_NAME): config_of(d) for d in index["manifests"]}
        if refs and all(have.get(r) == cfg_digest for r in refs):
            continue  # already there with all its blobs
        md = put_image(blobs, archive, tar, m, cfg)
        index["manifests"] = [d for d in index["manifests"]
                              if d.get("annotations", {}).get(REF_NAME) not in refs]
        for r in refs:
            index["manifests"].append({"mediaType": MT_MANIFEST, **md, "annotations": {REF_NAME: r}})
        changed = True
    if not changed:
        return
    index["manifests"].sort(key=lambda d: d.get("annotations", {}).get(REF_NAME, ""))
    write_atomic(index_path, dumps(index))
    # Drop blobs no tagged image refers to (left by FORCE rebuilds).
    keep = set()
    for d in index["manifests"]:
        hexd = d["digest"].split(":", 1)[1]
        keep.add(hexd)
        try:
            with open(os.path.join(blobs, hexd), "rb") as f:
                man = json.load(f)
            keep.update(x["digest"].split(":", 1)[1] for x in [man["config"]] + man["layers"])
        except (OSError, ValueError, KeyError):
            pass
    for name in os.listdir(blobs):
        if name not in keep:
            os.unlink(os.path.join(blobs, name))

def whiteouts(upper, lower):
    # overlayfs marks a deleted file with a 0/0 character device and a directory whose lower
    # contents are hidden with the trusted.overlay.opaque xattr; OCI layers use .wh. files.
    # overlayfs also marks directories it creates anew as opaque; a marker is only written
    # where it hides something (a non-empty directory of the same name in the lower layer).
    for root, dirs, files in os.walk(upper):
        rel = os.path.relpath(root, upper)
        for n in dirs + files:
            p = os.path.join(root, n)
            below = os.path.normpath(os.path.join(lower, rel, n))
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                os.unlink(p)
                if os.path.lexists(below):
                    open(os.path.join(root, ".wh." + n), "wb").close()
            elif stat.S_ISDIR(st.st_mode):
                try:
                    opaque = os.getxattr(p, "trusted.overlay.opaque", follow_symlinks=False)
                except OSError:
                    opaque = b""
                if (opaque == b"y" and os.path.isdir(below) and not os.path.islink(below)
                        and os.listdir(below)):
                    open(os.path.join(p, ".wh..wh..opq"), "wb").close()
                for x in os.listxattr(p, follow_symlinks=False):
                    if x.startswith("trusted.overlay."):
                        os.removexattr(p, x, follow_symlinks=False)

def summary(*archives):
    for a in archives:
        tar, m, cfg = read_archive(a)
        sizes = [tar.getmember(l).size for l in m["Layers"]]
        print(f"{m['RepoTags'][0]}  {os.path.getsize(a)/1e6:.1f} MB  config "
              f"sha256:{hashlib.sha256(cfg).hexdigest()}")
        for d, s in zip(json.loads(cfg)["rootfs"]["diff_ids"], sizes):
            print(f"    layer {d}  {s/1e6:.1f} MB")

cmds = {"pack": pack, "oci-sync": oci_sync, "oci-index": oci_index, "diff-ids": diff_ids, "whiteouts": whiteouts,
        "summary": summary}
cmds[sys.argv[1]](*sys.argv[2:])
PY
py() { python3 -c "$PYHELPER" "$@"; }

# ---------------------------------------------------------------------------- layers
# A deterministic, uncompressed layer tar of directory $1 into file $2: names sorted (C
# order), no "./" prefix, numeric owners as they are on disk (we run as root, so files we
# create are root's; packages' own owners such as root:shadow are kept), mtimes clamped to
# $EPOCH, no atime/ctime or pid-dependent PAX header names.
mk_layer() {
  local dir=$1 out=$2
  local -a top=()
  mapfile -d '' -t top < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z)
  [ ${#top[@]} -gt 0 ] || die "layer from $dir would be empty (step: $STEP)"
  LC_ALL=C tar -C "$dir" --create --file "$out" --sort=name --format=posix \
    --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    --mtime="@$EPOCH" --clamp-mtime --numeric-owner --no-acls --no-selinux --no-xattrs \
    -- "${top[@]}"
}

oci_arch() {  # OCI/Go name of the host architecture
  case $(dpkg --print-architecture) in
    amd64) echo amd64 ;; arm64) echo arm64 ;; armhf) echo arm ;; i386) echo 386 ;;
    ppc64el) echo ppc64le ;; s390x) echo s390x ;; riscv64) echo riscv64 ;;
    *) die "unsupported architecture $(dpkg --print-architecture)" ;;
  esac
}

# pack_image NAME SPEC_JSON LAYER...: docker-archive from layer tars, then into oci/.
pack_image() {
  local name=$1 spec=$2; shift 2
  step "$name: writing archives/$name.tar and oci/"
  py pack "$CACHE/archives/$name.tar" "$CACHE/oci" "${REF[$name]}" "${PLATFORM[$name]:-$(oci_arch)}" \
    "$EPOCH" "$spec" "$@"
  py oci-sync "$CACHE/oci" "$CACHE/archives/$name.tar"
}

# Image config as JSON: config_json CMD_JSON KEY=VALUE... (Env entries) [-w WORKDIR] [-u USER]
config_json() {
  local cmd=$1; shift
  local workdir="" user=""
  local -a env=()
  while [ $# -gt 0 ]; do
    case $1 in
      -w) workdir=$2; shift 2 ;;
      -u) user=$2; shift 2 ;;
      *) env+=("$1"); shift ;;
    esac
  done
  jq -cn --argjson cmd "$cmd" --arg wd "$workdir" --arg user "$user" \
     --args '{Env: $ARGS.positional, Cmd: $cmd}
             + (if $wd != "" then {WorkingDir: $wd} else {} end)
             + (if $user != "" then {User: $user} else {} end)' "${env[@]}"
}
spec_json() {  # spec_json CONFIG_JSON CREATED_BY...
  local cfg=$1; shift
  jq -cn --argjson c "$cfg" --args '{config: $c, history: $ARGS.positional}' "$@"
}

# ---------------------------------------------------------------------------- mirrors, chroots
# The Debian mirrors this machine's apt uses (deb822 .sources or a classic sources.list).
host_uri() {  # $1: "" for the main archive, "-security" for the security archive
  awk -v want="$1" '
    /^URIs:/ {u = $2}
    /^Suites:/ { for (i = 2; i <= NF; i++) { s = $i
        if ((want == "" && s !~ /-security$/) || (want != "" && s ~ want "$")) { print u; exit } } }
    /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { s = $(i + 1)
        if ((want == "" && s !~ /-security$/) || (want != "" && s ~ want "$")) { print $i; exit } } }
  ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1
}

# Runs shell script $2 inside root filesystem $1 with /proc, /dev, the host's DNS config and the
# shared apt caches (lists and .debs, so rebuilds do not download again). Services cannot start
# (policy-rc.d exits 101). Mounts are undone here, or by the EXIT trap if this fails.
in_chroot() {
  local root=$1 script=$2 rc=0 n=${#MOUNTS[@]} made_resolv="" logf
  logf="$(dirname "$root")/chroot.log"
  # Another architecture's apt lists go elsewhere: apt drops list files its sources do not name.
  local lists=$CACHE/debs/lists${CHROOT_ARCH:+-$CHROOT_ARCH}
  mkdir -p "$CACHE/debs/apt/partial" "$lists/partial"
  do_mount -t proc proc "$root/proc"
  do_mount --bind /dev "$root/dev"
  do_mount --bind "$CACHE/debs/apt" "$root/var/cache/apt/archives"
  do_mount --bind "$lists" "$root/var/lib/apt/lists"
  if [ ! -e "$root/etc/resolv.conf" ]; then : > "$root/etc/resolv.conf"; made_resolv=1; fi
  do_mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\n# whittle base-images: no services in image builds\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  # The slim images' docker-clean hook would empty the shared .deb cache: disable it here.
  printf '#clear DPkg::Post-Invoke;\n#clear APT::Update::Post-Invoke;\n' > "$root/etc/apt/apt.conf.d/zz-whittle-build"
  chroot "$root" /usr/bin/env -i PATH="$STD_PATH" HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true /bin/sh -euxc "$script" \
      > "$logf" 2>&1 || rc=$?
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/apt/apt.conf.d/zz-whittle-build"
  # unmount what this call mounted, innermost first
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= n; i--)); do
    umount "${MOUNTS[i]}" || umount -l "${MOUNTS[i]}"
  done
  MOUNTS=("${MOUNTS[@]:0:n}")
  [ -z "$made_resolv" ] || rm -f "$root/etc/resolv.conf"
  if [ $rc -ne 0 ]; then
    tail -n 40 "$logf" >&2
    die "command in chroot $root failed with exit $rc (step: $STEP); full output: $logf"
  fi
}

# What a build leaves behind that an image should not carry.
trim_apt_leftovers() {
  local d=$1
  # (lists/partial and archives/partial stay: they are in debian's layer)
  find "$d/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf {} +
  rm -rf "$d"/var/cache/apt/*.bin "$d"/var/cache/apt/archives/*.deb \
         "$d"/var/cache/debconf/*-old "$d"/var/lib/dpkg/*-old "$d"/var/log/apt/* \
         "$d"/var/log/dpkg.log "$d"/var/log/alternatives.log "$d"/var/log/bootstrap.log \
         "$d"/tmp/* "$d"/var/tmp/* "$d"/root/.cache "$d"/etc/resolv.conf \
         "$d"/var/cache/ldconfig/aux-cache   # inode numbers and ctimes: never the same twice
}

# ---------------------------------------------------------------------------- busybox
build_busybox() {
  local w=$1 d=$1/rootfs
  step "busybox: rootfs from busybox-static's /bin/busybox"
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || die "busybox-static is not installed (scripts/deps.sh installs it)"
  [ -x /bin/busybox ] || die "/bin/busybox is missing though busybox-static is installed"
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,dev,proc,sys}
  chmod 1777 "$d/tmp" "$d/var/tmp"; chmod 700 "$d/root"
  install -m 755 /bin/busybox "$d/bin/busybox"
  chroot "$d" /bin/busybox --install -s   # applet symlinks in /bin, /sbin, /usr/bin, /usr/sbin
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' > "$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$d/etc/group"
  mk_layer "$d" "$w/layer.tar"
  pack_image busybox "$(spec_json "$(config_json '["sh"]' "PATH=$STD_PATH")" \
    "busybox-static $(dpkg-query -W -f='${Version}' busybox-static): /bin/busybox --install -s")" "$w/layer.tar"
}

# ---------------------------------------------------------------------------- foreign busybox
# apt-get with a private state (lists, cache, an empty dpkg status) for arm64 and armhf under
# debs/foreign: downloads other architectures' .debs without `dpkg --add-architecture`, so the
# host's apt and dpkg never see those architectures. Only $SUITE main, the suite the host's
# busybox-static comes from.
foreign_apt() {
  local a=$CACHE/debs/foreign
  mkdir -p "$a/state/lists/partial" "$a/cache/archives/partial" "$a/debs"
  [ -e "$a/state/status" ] || : > "$a/state/status"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
    "$MIRROR" "$SUITE" > "$a/sources.list"
  apt-get -q -o Dir::State="$a/state" -o Dir::State::status="$a/state/status" \
    -o Dir::Cache="$a/cache" -o Dir::Etc::SourceList="$a/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts=/dev/null -o APT::Architecture=arm64 \
    -o APT::Architectures::=arm64 -o APT::Architectures::=armhf -o Acquire::Languages=none \
    -o Acquire::GzipIndexes=true -o APT::Sandbox::User=root "$@"
}

# foreign_deb PACKAGE DEBIAN_ARCH: the path of that architecture's .deb, downloaded once.
foreign_deb() {
  local pkg=$1 arch=$2 dd=$CACHE/debs/foreign/debs
  mkdir -p "$dd"
  local -a have=("$dd/${pkg}"_*_"$arch".deb)
  if [ ${#have[@]} -eq 0 ]; then
    (cd "$dd" && foreign_apt download "$pkg:$arch" >/dev/null 2>&1) \
      || { foreign_apt update >/dev/null && (cd "$dd" && foreign_apt download "$pkg:$arch" >/dev/null); } \
      || die "apt-get download $pkg:$arch failed (private apt state in $CACHE/debs/foreign)"
    have=("$dd/${pkg}"_*_"$arch".deb)
    # The .deb is what is kept; the lists (40 MB) are fetched again if another is needed.
    find "$CACHE/debs/foreign/state/lists" -mindepth 1 -maxdepth 1 -type f -delete
  fi
  printf '%s\n' "${have[@]}" | sort -V | tail -n 1
}

# busybox for another platform: the same layout as build_busybox, from that architecture's
# busybox-static .deb. Its applet links are the ones it lists itself, asked through
# qemu-user-static run as a plain program (no binfmt_misc needed to build the image).
build_foreign_busybox() {
  local name=$1 w=$2 d=$2/rootfs deb qemu version applet
  local arch=${DEB_ARCH[$name]}
  case $arch in arm64) qemu=qemu-aarch64-static ;; armhf) qemu=qemu-arm-static ;;
    *) die "$name: no qemu for $arch" ;; esac
  command -v "$qemu" >/dev/null || die "$qemu is missing (scripts/deps.sh installs qemu-user-static)"
  step "$name: busybox-static:$arch from $MIRROR"
  deb=$(foreign_deb busybox-static "$arch")
  version=$(dpkg-deb -f "$deb" Version)
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || die "$deb is not for $arch"
  mkdir -p "$w/deb" "$d"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,dev,proc,sys}
  chmod 1777 "$d/tmp" "$d/var/tmp"; chmod 700 "$d/root"
  dpkg-deb -x "$deb" "$w/deb"
  install -m 755 "$w/deb/bin/busybox" "$d/bin/busybox"
  # What `busybox --install -s` makes: /bin/busybox links, existing files kept.
  while read -r applet; do
    [ -e "$d/$applet" ] || [ -L "$d/$applet" ] || ln -s /bin/busybox "$d/$applet"
  done < <("$qemu" "$d/bin/busybox" --list-full)
  [ -L "$d/bin/sh" ] || die "$name: busybox --list-full gave no bin/sh"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' > "$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$d/etc/group"
  mk_layer "$d" "$w/layer.tar"
  pack_image "$name" "$(spec_json "$(config_json '["sh"]' "PATH=$STD_PATH")" \
    "busybox-static:$arch $version: /bin/busybox --install -s")" "$w/layer.tar"
}
build_busybox-linux-arm64() { build_foreign_busybox busybox-linux-arm64 "$1"; }
build_busybox-linux-arm-v7() { build_foreign_busybox busybox-linux-arm-v7 "$1"; }

# ---------------------------------------------------------------------------- debian
# debootstrap's result, cached as a tarball (its .debs go to the shared apt cache).
debootstrap_tarball() {  # [DEBIAN_ARCH]: another architecture, finished under emulation
  local arch=${1:-}
  local tb="$CACHE/debootstrap/$SUITE-minbase${arch:+-$arch}.tar"
  if [ -s "$tb" ] && [ -z "${FORCE_DEBOOTSTRAP:-}" ]; then echo "$tb"; return; fi
  local d="$CACHE/work/debootstrap${arch:+-$arch}"
  rm -rf "$d"; mkdir -p "$d" "$CACHE/debootstrap" "$CACHE/debs/apt"
  if [ -z "$arch" ]; then
    step "debian: debootstrap --variant=minbase $SUITE $MIRROR (downloads ~90 packages)"
    debootstrap --variant=minbase "$SUITE" "$d/rootfs" "$MIRROR" > "$d/debootstrap.log" 2>&1 \
      || { tail -n 30 "$d/debootstrap.log" >&2; die "debootstrap failed; full log: $d/debootstrap.log"; }
  else
    step "debian ($arch): debootstrap --foreign --arch=$arch --variant=minbase $SUITE $MIRROR"
    debootstrap --foreign --arch="$arch" --variant=minbase "$SUITE" "$d/rootfs" "$MIRROR" \
      > "$d/debootstrap.log" 2>&1 \
      || { tail -n 30 "$d/debootstrap.log" >&2; die "debootstrap --foreign failed; full log: $d/debootstrap.log"; }
    # The second stage runs the image's own programs: it needs a binfmt_misc handler with the
    # F flag (the interpreter is not inside the chroot).
    chroot "$d/rootfs" /bin/true 2>/dev/null \
      || die "$arch programs do not run here: register qemu's handlers with \`whittle binfmt --install\` (needs qemu-user-static)"
    step "debian ($arch): debootstrap --second-stage under emulation (a few minutes)"
    chroot "$d/rootfs" /debootstrap/debootstrap --second-stage >> "$d/debootstrap.log" 2>&1 \
      || { undo_mounts_under "$d"; tail -n 30 "$d/debootstrap.log" >&2; die "debootstrap --second-stage failed; full log: $d/debootstrap.log"; }
    undo_mounts_under "$d"
  fi
  mv -f "$d"/rootfs/var/cache/apt/archives/*.deb "$CACHE/debs/apt/" 2>/dev/null || true
  step "debian${arch:+ ($arch)}: caching the debootstrap result as $tb"
  tar -C "$d/rootfs" --create --file "$tb.tmp" --numeric-owner --xattrs .
  mv "$tb.tmp" "$tb"
  rm -rf "$d"
  echo "$tb"
}

build_debian-linux-arm64() { CHROOT_ARCH=arm64 build_debian "$1" debian-linux-arm64 arm64; }
build_debian() {  # WORK_DIR [NAME DEBIAN_ARCH]: the host's debian, or NAME for DEBIAN_ARCH
  local w=$1 name=${2:-debian} d=$1/rootfs tb
  tb=$(debootstrap_tarball "${3:-}")
  step "$name: unpacking $tb"
  mkdir -p "$d"
  tar -C "$d" --extract --file "$tb" --numeric-owner --xattrs
  step "$name: apt sources, slim dpkg/apt configuration"
  rm -f "$d/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$MIRROR" "$SUITE" "$SUITE"
    [ -z "$SECURITY_MIRROR" ] || printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$SECURITY_MIRROR" "$SUITE"
  } > "$d/etc/apt/sources.list.d/debian.sources"
  # As the official slim images do (debuerreotype's slimify and docker apt settings).
  cat > "$d/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# keep images small: no documentation, manuals or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat > "$d/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' > "$d/etc/apt/apt.conf.d/docker-no-languages"
  printf 'Apt::AutoRemove::SuggestsImportant "false";\n' > "$d/etc/apt/apt.conf.d/docker-autoremove-suggests"
  step "$name: apt-get upgrade from $SUITE-updates and -security"
  in_chroot "$d" "apt-get update -qq && apt-get -y -qq $APT_OPTS upgrade >/dev/null"
  step "$name: slimming (docs, manuals, locales, apt lists, logs, device nodes)"
  find "$d/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$d/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$d"/usr/share/{man,groff,info,lintian,linda}/*
  find "$d/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  trim_apt_leftovers "$d"
  rm -rf "$d"/dev/* "$d"/run/*
  mkdir -p "$d/var/cache/apt/archives/partial" "$d/var/lib/apt/lists/partial" "$d/run/lock"
  chmod 1777 "$d/run/lock"
  rm -f "$d"/etc/hostname "$d"/etc/machine-id      # the runtime provides them
  mk_layer "$d" "$w/layer.tar"
  pack_image "$name" "$(spec_json "$(config_json '["bash"]' "PATH=$STD_PATH")" \
    "debootstrap --variant=minbase $SUITE, apt-get upgrade, slimmed")" "$w/layer.tar"
}

# ---------------------------------------------------------------------------- derived images
# debian's layer unpacked once as the read-only lower dir of the derived images' overlays.
debian_lower() {
  local base_id lower="$CACHE/rootfs/debian"
  base_id=$(py diff-ids "$CACHE/archives/debian.tar" | sed -n 1p)
  BASE_LAYER="$CACHE/oci/blobs/sha256/${base_id#sha256:}"
  [ -s "$BASE_LAYER" ] || py oci-sync "$CACHE/oci" "$CACHE/archives/debian.tar"
  if [ "$(cat "$lower.diffid" 2>/dev/null)" != "$base_id" ]; then
    step "unpacking debian's layer into $lower"
    rm -rf "$lower" "$lower.diffid"; mkdir -p "$lower"
    tar -C "$lower" --extract --file "$BASE_LAYER" --numeric-owner
    echo "$base_id" > "$lower.diffid"
  fi
  LOWER=$lower
}

# build_derived NAME CONFIG_JSON [POST_INSTALL_SCRIPT]: apt-get install APT_PKGS[NAME] on an
# overlay over debian's layer; the overlay's upper dir (whiteouts converted) is the 2nd layer.
build_derived() {
  local name=$1 cfg=$2 post=${3:-true} w=$CACHE/work/$1
  ensure_built debian dep
  debian_lower
  mkdir -p "$w"/{upper,ovl,merged}
  step "$name: apt-get install --no-install-recommends ${APT_PKGS[$name]}"
  do_mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$w/upper,workdir=$w/ovl" "$w/merged"
  # openjdk's postinst needs /usr/share/man/man1, which slim images do not have.
  in_chroot "$w/merged" "mkdir -p /usr/share/man/man1
    apt-get update -qq
    apt-get install -y -qq $APT_OPTS --no-install-recommends ${APT_PKGS[$name]} >/dev/null
    $post
    rm -rf /usr/share/man/*"
  step "$name: removing apt leftovers, writing the layer"
  trim_apt_leftovers "$w/merged"
  umount "$w/merged"; MOUNTS=("${MOUNTS[@]:0:${#MOUNTS[@]}-1}")
  py whiteouts "$w/upper" "$LOWER"
  mk_layer "$w/upper" "$w/layer.tar"
  pack_image "$name" "$(spec_json "$cfg" \
    "debootstrap --variant=minbase $SUITE, apt-get upgrade, slimmed" \
    "apt-get install --no-install-recommends ${APT_PKGS[$name]}")" "$BASE_LAYER" "$w/layer.tar"
}

build_golang() {
  build_derived golang "$(config_json '["bash"]' "PATH=/go/bin:/usr/lib/go/bin:$STD_PATH" \
      GOPATH=/go -w /go)" \
    'mkdir -p /go/src /go/bin && chmod -R 1777 /go && go version'
}
build_rust() {
  build_derived rust "$(config_json '["bash"]' "PATH=/usr/local/cargo/bin:$STD_PATH" \
      CARGO_HOME=/usr/local/cargo)" \
    'mkdir -p /usr/local/cargo/bin && chmod -R a+w /usr/local/cargo && rustc --version && cargo --version'
}
build_python() {
  # Layer mtimes are clamped to SOURCE_DATE_EPOCH, which would make the timestamp-checked .pyc
  # files stale; unchecked-hash .pycs do not depend on the sources' mtimes.
  build_derived python "$(config_json '["python3"]' "PATH=$STD_PATH" LANG=C.UTF-8)" \
    "python3 -c '$PYC_REWRITE' && python3 --version"
}
build_jdk() {
  build_derived jdk "$(config_json '["jshell"]' "PATH=$STD_PATH" \
      JAVA_HOME=/usr/lib/jvm/default-java LANG=C.UTF-8)" \
    'java -version 2>&1 | head -n 1; mvn -v | head -n 1'
}
build_jre() {
  build_derived jre "$(config_json '["bash"]' "PATH=$STD_PATH" \
      JAVA_HOME=/usr/lib/jvm/default-java LANG=C.UTF-8)" \
    'java -version 2>&1 | head -n 1'
}

# Rewrites every .pyc the packages' postinst compiled (py3compile) as an unchecked-hash .pyc.
PYC_REWRITE='
import pathlib, py_compile
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
for pyc in pathlib.Path("/usr/lib").rglob("__pycache__/*.pyc"):
    src = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
    if ".opt-" not in pyc.name and src.is_file():
        py_compile.compile(str(src), cfile=str(pyc), invalidation_mode=mode, doraise=True)
'

# ---------------------------------------------------------------------------- cc (distroless-like)
build_cc() {
  local w=$1 d=$1/rootfs dd=$CACHE/debs/cc p deb
  step "cc: apt-get download ${CC_DEBS[*]}"
  mkdir -p "$dd"
  local -a missing=()
  for p in "${CC_DEBS[@]}"; do
    local -a have=("$dd/${p}"_*.deb)
    [ ${#have[@]} -gt 0 ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    (cd "$dd" && apt-get download "${missing[@]}" >/dev/null 2>&1) \
      || { apt-get update -qq && (cd "$dd" && apt-get download "${missing[@]}" >/dev/null); } \
      || die "apt-get download ${missing[*]} failed"
  fi
  step "cc: unpacking the .debs (dpkg-deb -x), users, CA bundle"
  mkdir -p "$d"/{etc/ssl/certs,tmp,root,home/nonroot,var/lib/dpkg/status.d}
  chmod 1777 "$d/tmp"; chmod 700 "$d/root"; chown 65532:65532 "$d/home/nonroot"
  for p in "${CC_DEBS[@]}"; do
    deb=$(printf '%s\n' "$dd/${p}"_*.deb | sort -V | tail -n 1)
    dpkg-deb -x "$deb" "$d"
    dpkg-deb -f "$deb" > "$d/var/lib/dpkg/status.d/$p"   # what distroless records instead of dpkg's status
  done
  # What update-ca-certificates would write, in its order.
  (cd "$d/usr/share/ca-certificates" && find . -name '*.crt' -printf '%P\n' | LC_ALL=C sort | xargs cat) \
    > "$d/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' > "$d/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$d/etc/nsswitch.conf"
  cp /usr/lib/os-release "$d/etc/os-release"
  ln -sf /usr/share/zoneinfo/Etc/UTC "$d/etc/localtime"
  echo Etc/UTC > "$d/etc/timezone"
  rm -rf "$d"/usr/share/{doc,man,lintian,locale,bug} "$d"/etc/ca-certificates.conf "$d"/usr/sbin
  mk_layer "$d" "$w/layer.tar"
  pack_image cc "$(spec_json "$(config_json 'null' "PATH=$STD_PATH" \
      SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)" \
    "dpkg-deb -x $(cd "$dd" && printf '%s ' *.deb)")" "$w/layer.tar"
}

# ---------------------------------------------------------------------------- driver
# ensure_built NAME [dep]: build image NAME unless its archive exists. FORCE=1 rebuilds the
# images named on the command line (once), not the debian image they are built on ("dep").
ensure_built() {
  local name=$1 dep=${2:-} arch="$CACHE/archives/$1.tar" t0=$SECONDS
  if [ -s "$arch" ] && { [ -z "${FORCE:-}" ] || [ -n "$dep" ] || [[ " ${BUILT[*]} " == *" $name "* ]]; }; then
    return 0
  fi
  local w="$CACHE/work/$name"
  undo_mounts_under "$w"
  rm -rf "$w"; mkdir -p "$w"
  "build_$name" "$w"
  rm -rf "$w"
  step "$name: skopeo inspect docker-archive:$arch"
  skopeo inspect "docker-archive:$arch" >/dev/null \
    || die "skopeo does not accept $arch"
  skopeo inspect "oci:$CACHE/oci:${REF[$name]}" >/dev/null \
    || die "skopeo does not accept oci:$CACHE/oci:${REF[$name]}"
  BUILT+=("$name")
  log "${REF[$name]} built in $((SECONDS - t0)) s ($(du -h "$arch" | cut -f1))"
}
BUILT=()
# A previous run killed mid-build may have left mounts under a work dir.
undo_mounts_under() {
  local m
  while read -r m; do
    [[ $m == "$1"/* || $m == "$1" ]] && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done < <(awk '{print $2}' /proc/self/mounts | sort -r)
  return 0
}

main() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and mounts need it)"
  grep -q '^12' /etc/debian_version 2>/dev/null || log "WARNING: made for Debian 12; this is $(cat /etc/debian_version 2>/dev/null || echo 'not Debian')"
  # Resolve names (short names or full references), in ALL_IMAGES order so debian is built
  # before the images on top of it.
  local -a req=("$@") names=()
  local -A want=()
  local n k found multi=""
  if [ ${#req[@]} -eq 0 ]; then
    for n in "${ALL_IMAGES[@]}"; do
      [[ " ${NOT_BY_DEFAULT[*]} " == *" $n "* ]] || req+=("$n")
    done
  fi
  for n in "${req[@]}"; do
    if [ "$n" = busybox-multi ]; then
      multi=1
      for k in "${MULTI_IMAGES[@]}"; do want[$k]=1; done
      continue
    fi
    found=""
    for k in "${ALL_IMAGES[@]}"; do
      if [ "$n" = "$k" ] || [ "$n" = "${REF[$k]}" ]; then found=$k; fi
    done
    [ -n "$found" ] || die "unknown image '$n' (known: ${ALL_IMAGES[*]} busybox-multi or their references)"
    want[$found]=1
  done
  for k in "${ALL_IMAGES[@]}"; do [ -z "${want[$k]:-}" ] || names+=("$k"); done

  step "checking packages (scripts/deps.sh)"
  "$REPO/scripts/deps.sh" || die "scripts/deps.sh failed"
  command -v python3 >/dev/null || die "python3 is needed"

  mkdir -p "$CACHE"/{archives,oci,work,debs}
  # One run at a time per cache dir (tests may call this concurrently).
  exec 9>"$CACHE/.lock"
  flock -w 3600 9 || die "timed out waiting for another base-images.sh run ($CACHE/.lock)"

  MIRROR=${MIRROR:-$(host_uri "")}
  SECURITY_MIRROR=${SECURITY_MIRROR-$(host_uri "-security")}
  [ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set MIRROR="

  for n in "${names[@]}"; do ensure_built "$n"; done
  # A rebuilt debian does not rebuild the images on top of it: say which still use the old one.
  local base stale=""
  base=$(py diff-ids "$CACHE/archives/debian.tar" 2>/dev/null | sed -n 1p) || true
  for n in "${!APT_PKGS[@]}"; do
    [ -s "$CACHE/archives/$n.tar" ] && [ -n "$base" ] || continue
    [ "$(py diff-ids "$CACHE/archives/$n.tar" | sed -n 1p)" = "$base" ] || stale+=" $n"
  done
  [ -z "$stale" ] || log "NOTE:$stale still use an older debian layer; rebuild with: FORCE=1 $0$stale"
  # Archives made earlier (or an emptied oci/): make sure the OCI layout has them all.
  step "checking oci/"
  local -a archives=()
  for n in "${names[@]}"; do archives+=("$CACHE/archives/$n.tar"); done
  py oci-sync "$CACHE/oci" "${archives[@]}"
  for a in "${archives[@]}"; do echo "$a"; done
  if [ -n "$multi" ]; then
    step "busybox-multi: oci-multi/ with the image index $MULTI_REF"
    archives=()
    for n in "${MULTI_IMAGES[@]}"; do archives+=("$CACHE/archives/$n.tar"); done
    py oci-index "$CACHE/oci-multi" "$MULTI_REF" "${archives[@]}"
    skopeo inspect --raw "oci:$CACHE/oci-multi:$MULTI_REF" >/dev/null \
      || die "skopeo does not accept oci:$CACHE/oci-multi:$MULTI_REF"
    echo "$CACHE/oci-multi"
  fi
}

main "$@"
