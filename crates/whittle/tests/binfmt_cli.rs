//! `whittle binfmt` and emulated `whittle run` end to end: whittle's qemu handlers registered
//! (idempotently: what works is left alone, so this machine and CI keep them), the arm64 and
//! arm/v7 busybox images of scripts/base-images.sh loaded into a fresh store and run through
//! `whittle run`, which takes the platform from the image's config.
#![allow(clippy::unwrap_used)]

mod common;

use common::{base_image, qemu_installed, whittle};
use std::path::Path;

fn runtimes() -> Vec<&'static str> {
    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        vec!["builtin", "runc"]
    } else {
        vec!["builtin"]
    }
}

#[test]
fn install_then_run_arm64_and_arm_v7_images() {
    if !common::privileged("whittle binfmt --install") || !qemu_installed() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let out = whittle(
        &root,
        &["binfmt", "--install", "linux/arm64", "linux/arm/v7"],
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    for p in ["linux/arm64: ", "linux/arm/v7: "] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(p) && (l.contains("registered") || l.contains("(F)"))),
            "{}",
            out.stdout
        );
    }
    // Again: nothing to do, the same status.
    let again = whittle(&root, &["binfmt", "--install", "linux/arm64"]);
    assert!(again.ok, "{}", again.stderr);
    assert!(
        again.stdout.contains("linux/arm64: already emulated by"),
        "{}",
        again.stdout
    );

    let status = whittle(&root, &["binfmt"]);
    assert!(status.ok);
    let line = |p: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(p))
            .unwrap_or_else(|| panic!("no {p} in {}", status.stdout))
            .to_string()
    };
    assert!(line("linux/amd64").ends_with("native"), "{}", status.stdout);
    assert!(line("linux/arm64").contains("F flag: works in containers"));
    assert!(line("linux/arm/v7").contains("F flag: works in containers"));

    for (name, reference, machine) in [
        (
            "busybox-linux-arm64",
            "whittle-test/busybox:1-arm64",
            "aarch64",
        ),
        (
            "busybox-linux-arm-v7",
            "whittle-test/busybox:1-arm-v7",
            "armv7l",
        ),
    ] {
        let archive = base_image(name);
        let load = whittle(&root, &["load", "-i", archive.to_str().unwrap()]);
        assert!(load.ok, "{}", load.stderr);
        for rt in runtimes() {
            let out = whittle(&root, &["run", "--runtime", rt, reference, "uname", "-m"]);
            assert!(out.ok, "{rt} {reference}: {}", out.stderr);
            assert_eq!(out.stdout, format!("{machine}\n"), "{rt} {reference}");
        }
    }
    // The doctor agrees.
    let doctor = whittle(&root, &["doctor", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let b = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "binfmt")
        .unwrap();
    assert_eq!(b["status"], "ok", "{b}");
}

#[test]
fn unknown_platforms_are_refused_with_a_reason() {
    let t = tempfile::tempdir().unwrap();
    let out = whittle(t.path(), &["binfmt", "--install", "linux/sparc64"]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("linux/sparc64")
            && (out.stderr.contains("does not know") || out.stderr.contains("needs root")),
        "{}",
        out.stderr
    );
    let out = whittle(t.path(), &["binfmt", "--install", "not a platform"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("is not a platform"), "{}", out.stderr);
}

#[test]
fn registering_needs_root() {
    if !rustix::process::geteuid().is_root() {
        // Already unprivileged: the refusal is what this user gets.
        let t = tempfile::tempdir().unwrap();
        let out = whittle(t.path(), &["binfmt", "--install", "linux/arm64"]);
        assert!(
            !out.ok && out.stderr.contains("needs root"),
            "{}",
            out.stderr
        );
        return;
    }
    // As nobody, from a copy nobody can reach (the build tree may be under /root).
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("whittle");
    std::fs::copy(env!("CARGO_BIN_EXE_whittle"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [
        &["binfmt", "--install", "linux/arm64"][..],
        &["binfmt", "--uninstall"],
    ] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains("needs root: run `sudo whittle binfmt"),
            "{args:?}: {err}"
        );
    }
    // Reading the status needs nothing.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .arg("binfmt")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("linux/amd64"));
}
