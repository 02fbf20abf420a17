//! Fixtures shared by the end-to-end tests: a busybox image made from Debian's busybox-static.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use whittle_layer::{write_layer, WriteOptions};
use whittle_store::{Reference, Store};

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
    let s = Store::open(root).unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(rootfs.path(), &WriteOptions::default(), w).unwrap();
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
