//! The hostile-input audit as tests: Dockerfiles, contexts, archives and concurrent use the way
//! an attacker or a careless CI job would produce them. Each case must end in a clear error or a
//! correct result, and never reach host files, lose data or grow without bound.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod bind;
mod context;
mod dockerfile;
mod kill;
mod prune_race;
mod secrets;

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

/// A store with the busybox test image and an empty context, removed when dropped.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ctx: PathBuf,
}

pub fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    common::seed_busybox(
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

/// The content of `path` in image `name` (its layers extracted in order).
pub fn image_file(root: &Path, name: &str, path: &str) -> Option<Vec<u8>> {
    let s = whittle_store::Store::open(root).unwrap();
    let t = s.resolve(name).ok()?;
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
    fs::read(dir.path().join(path)).ok()
}

pub fn root_or_skip(what: &str) -> bool {
    common::privileged(what)
}
