//! Fixtures shared by the end-to-end tests: a busybox image made from Debian's busybox-static.
#![allow(dead_code, clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

pub mod registry;

/// True when running as root; outside CI a test without it is skipped with a message, in CI
/// (which runs as root) it fails.
pub fn privileged(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI runs as root");
    eprintln!("skipped: {what} needs root");
    false
}

/// A busybox rootfs: /bin/busybox and its applet links, /etc/passwd (root, app 1000, nobody),
/// /etc/group, /tmp (1777), /home/app, and empty /proc /dev /sys.
pub fn busybox_rootfs(d: &Path) {
    for p in ["bin", "etc", "tmp", "proc", "dev", "sys", "home/app"] {
        fs::create_dir_all(d.join(p)).unwrap();
    }
    fs::set_permissions(d.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", d.join("bin/busybox"))
        .expect("/bin/busybox is missing: scripts/deps.sh installs busybox-static");
    let out = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", d.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(
        d.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        d.join("etc/group"),
        "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// Stores the busybox rootfs as image `name` in the store at `root`, with `config` as the
/// image config's `config` object.
pub fn seed_busybox(root: &Path, name: &str, config: serde_json::Value) {
    seed_busybox_with(root, name, config, WriteOptions::default())
}

/// [`seed_busybox`] with its layer written with `opts` (e.g. uncompressed, as a base loaded
/// from a `docker save` archive is stored).
pub fn seed_busybox_with(root: &Path, name: &str, config: serde_json::Value, opts: WriteOptions) {
    let s = Store::open(root).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(rootfs.path(), &opts, w).unwrap();
    w.commit().unwrap();
    let cfg = serde_json::json!({
        "architecture": whittle_dockerfile::Platform::host().arch, "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
        "history": [{"created_by": "busybox-static rootfs"}]
    });
    let img = s
        .write_image(
            &serde_json::to_vec(&cfg).unwrap(),
            &[(info.digest, info.media_type.to_string(), info.size)],
        )
        .unwrap();
    s.tag(&Reference::parse(name).unwrap(), &img.manifest)
        .unwrap();
}

// ---- a store with the busybox image, and whittle commands against it ----

/// A store with the busybox test image and an empty context, removed when dropped.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ctx: PathBuf,
}

pub fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    seed_busybox(
        &root,
        "test/busybox:1",
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        }),
    );
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    Env { tmp, root, ctx }
}

/// The outcome of one whittle command.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn whittle(root: &Path, args: &[&str]) -> Out {
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Builds `e.ctx` with `dockerfile`, tagged `tag`.
pub fn build(e: &Env, dockerfile: &str, tag: &str) -> Out {
    fs::write(e.ctx.join("Dockerfile"), dockerfile).unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "-t",
            tag,
            &ctx,
        ],
    )
}

/// A stored image's layers extracted, in order, into a temporary directory.
pub fn extract_image(root: &Path, name: &str) -> tempfile::TempDir {
    let s = Store::open(root).unwrap();
    let t = s.resolve(name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for l in &t.image.layers {
        let f = s.open_blob(l).unwrap();
        whittle_layer::extract_layer(
            std::io::BufReader::new(f),
            dir.path(),
            &whittle_layer::ExtractOptions::default(),
        )
        .unwrap();
    }
    dir
}

/// The content of `path` in image `name`, if the image and the file exist.
pub fn image_file(root: &Path, name: &str, path: &str) -> Option<Vec<u8>> {
    Store::open(root).unwrap().resolve(name).ok()?;
    fs::read(extract_image(root, name).path().join(path)).ok()
}

pub fn root_or_skip(what: &str) -> bool {
    privileged(what)
}

/// The directory of scripts/base-images.sh's images (`archives/`, `oci/`, `oci-multi/`).
pub fn image_cache() -> PathBuf {
    PathBuf::from(
        std::env::var("WHITTLE_IMAGE_CACHE")
            .unwrap_or_else(|_| "/var/cache/whittle-test/images".into()),
    )
}

/// Runs scripts/base-images.sh for `name` unless `made` exists.
fn make_base_image(name: &str, made: &Path) {
    if !made.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/base-images.sh");
        let st = std::process::Command::new("bash")
            .arg(script)
            .arg(name)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "scripts/base-images.sh {name} failed");
    }
}

/// The docker archive of base image `name`, made by scripts/base-images.sh when missing.
pub fn base_image(name: &str) -> PathBuf {
    let a = image_cache().join(format!("archives/{name}.tar"));
    make_base_image(name, &a);
    a
}

/// The OCI layout holding `whittle-test/busybox:1` for linux/amd64, linux/arm64 and
/// linux/arm/v7 under one index (scripts/base-images.sh busybox-multi).
pub fn busybox_multi_layout() -> PathBuf {
    let d = image_cache().join("oci-multi");
    make_base_image("busybox-multi", &d.join("index.json"));
    d
}

/// Whether Debian's qemu-user-static is installed (in CI it must be: scripts/deps.sh).
pub fn qemu_installed() -> bool {
    if Path::new("/usr/bin/qemu-aarch64-static").exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "qemu-user-static missing in CI (scripts/deps.sh installs it)"
    );
    eprintln!("skipped: qemu-user-static is not installed (scripts/deps.sh)");
    false
}
