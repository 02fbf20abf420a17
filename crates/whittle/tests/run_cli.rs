//! `whittle run` end to end: a busybox image seeded into a fresh store, run with its config
//! and with every override, under the built-in runtime and runc.
#![allow(clippy::unwrap_used)]

mod common;

use assert_cmd::Command;
use std::fs;
use std::path::Path;

fn privileged() -> bool {
    common::privileged("whittle run")
}

/// Stores a busybox image with Entrypoint-less config: Cmd, Env, WorkingDir, User.
fn seed(root: &Path) {
    common::seed_busybox(
        root,
        "bb:1",
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
            "Cmd": ["sh", "-c", "echo $GREETING from $(pwd) as $(id -un); echo oops >&2; exit 5"],
            "WorkingDir": "/home/app",
            "User": "app"
        }),
    );
}

fn whittle(root: &Path) -> Command {
    let mut c = Command::cargo_bin("whittle").unwrap();
    c.arg("--root").arg(root);
    c
}

fn runtimes() -> Vec<&'static str> {
    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        vec!["builtin", "runc"]
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "runc missing in CI (scripts/deps.sh)"
        );
        vec!["builtin"]
    }
}

#[test]
fn runs_the_image_config_and_its_overrides() {
    if !privileged() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    for rt in runtimes() {
        // The image's own Cmd, Env, WorkingDir and User; its exit code is whittle's.
        let out = whittle(&root)
            .args(["run", "--runtime", rt, "bb:1"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from /home/app as app\n",
            "{rt}"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n", "{rt}");
        assert_eq!(out.status.code(), Some(5), "{rt}");

        // -e, -w (created), -u and a command.
        let out = whittle(&root)
            .args([
                "run",
                "--rm",
                "--runtime",
                rt,
                "-e",
                "GREETING=hi",
                "-w",
                "/new/dir",
                "-u",
                "nobody",
                "bb:1",
            ])
            .args(["sh", "-c", "echo $GREETING $(pwd) $(id -u):$(id -g)"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hi /new/dir 65534:65534\n",
            "{rt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success());

        // --entrypoint replaces the image's command.
        let out = whittle(&root)
            .args([
                "run",
                "--runtime",
                rt,
                "--entrypoint",
                "echo",
                "bb:1",
                "a",
                "b",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\n", "{rt}");

        // --network none: loopback only.
        let out = whittle(&root)
            .args([
                "run",
                "--runtime",
                rt,
                "--network",
                "none",
                "bb:1",
                "sh",
                "-c",
                "tail -n +3 /proc/net/dev | cut -d: -f1",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lo", "{rt}");
    }
}

#[test]
fn changes_are_discarded_and_errors_are_clear() {
    if !privileged() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    whittle(&root)
        .args([
            "run",
            "-u",
            "root",
            "bb:1",
            "sh",
            "-c",
            "echo x > /persist && rm /bin/ls",
        ])
        .assert()
        .success();
    let out = whittle(&root)
        .args([
            "run",
            "bb:1",
            "sh",
            "-c",
            "test -e /persist || echo gone; test -e /bin/ls && echo ls",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "gone\nls\n");
    // Nothing is left behind in the store's snapshot area.
    let leftovers: Vec<_> = fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let out = whittle(&root)
        .args(["run", "bb:1", "no-such-tool"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-tool: not found in the image"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = whittle(&root)
        .args(["run", "nope:latest"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope:latest"));
}
