//! SIGKILL in the middle of a build, a load and a save: the store stays consistent (`fsck`
//! clean), nothing half-written is left beside an output, and the next run succeeds.

use crate::{build, env, root_or_skip, whittle};
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

fn whittle_cmd(root: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("whittle"));
    c.env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Starts `args`, SIGKILLs it after `ms` milliseconds (if it still runs).
fn kill_after(root: &std::path::Path, args: &[&str], ms: u64) {
    let mut child = whittle_cmd(root, args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn killed_builds_loads_and_saves_leave_a_consistent_store_and_no_debris() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    // An image big enough that saving and loading it take a while.
    let df = "FROM test/busybox:1\nRUN head -c 40000000 /dev/urandom > /big && echo v1 > /v\n";
    let r = build(&e, df, "big:1");
    assert!(r.ok, "{}", r.stderr);
    let out = e.tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let archive = out.join("big.tar");
    for ms in [30, 80, 150, 300] {
        kill_after(
            &e.root,
            &["save", "-o", &archive.to_string_lossy(), "big:1"],
            ms,
        );
        let left: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .filter(|n| n != "big.tar")
            .collect();
        assert!(left.is_empty(), "save killed at {ms} ms left {left:?}");
    }
    let r = whittle(
        &e.root,
        &["save", "-o", &archive.to_string_lossy(), "big:1"],
    );
    assert!(r.ok, "{}", r.stderr);

    // Loads killed part-way into a second store, then a load that completes.
    let other = e.tmp.path().join("other");
    for ms in [30, 80, 150, 300] {
        kill_after(&other, &["load", "-i", &archive.to_string_lossy()], ms);
        let r = whittle(&other, &["fsck"]);
        assert!(
            r.ok,
            "load killed at {ms} ms: fsck: {}{}",
            r.stdout, r.stderr
        );
    }
    let r = whittle(&other, &["load", "-i", &archive.to_string_lossy()]);
    assert!(r.ok, "{}", r.stderr);
    let r = whittle(
        &other,
        &["run", "--rm", "--network=none", "big:1", "cat", "/v"],
    );
    assert_eq!(r.stdout, "v1\n", "{}", r.stderr);

    // Builds killed while their RUN writes, then a build that completes.
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nRUN head -c 40000000 /dev/urandom > /big2 && echo v2 > /v\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    for ms in [50, 150, 400] {
        kill_after(
            &e.root,
            &[
                "build",
                "--progress=plain",
                "--network=none",
                "-t",
                "big:2",
                &ctx,
            ],
            ms,
        );
        let r = whittle(&e.root, &["fsck"]);
        assert!(
            r.ok,
            "build killed at {ms} ms: fsck: {}{}",
            r.stdout, r.stderr
        );
    }
    let r = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "-t",
            "big:2",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = whittle(
        &e.root,
        &["run", "--rm", "--network=none", "big:2", "cat", "/v"],
    );
    assert_eq!(r.stdout, "v2\n", "{}", r.stderr);
}

#[test]
fn a_store_killed_while_it_is_created_still_opens() {
    let t = tempfile::tempdir().unwrap();
    // The first command against a new root creates the store; kill it at many early points.
    for (i, us) in [
        200u64, 500, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000, 12_000, 20_000,
    ]
    .iter()
    .cycle()
    .take(30)
    .enumerate()
    {
        let root = t.path().join(format!("s{i}"));
        let mut child = whittle_cmd(&root, &["images"]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(*us));
        let _ = child.kill();
        let _ = child.wait();
        let r = whittle(&root, &["fsck"]);
        assert!(r.ok, "killed after {us} µs: {}{}", r.stdout, r.stderr);
    }
}
