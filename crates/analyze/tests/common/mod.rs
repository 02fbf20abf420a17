//! Crafted images for the analysis tests: each layer is a directory filled by a closure, written
//! with `whittle_layer::write_layer` (whiteouts and opaque markers are plain files named
//! `.wh.NAME` and `.wh..wh..opq`, as they appear in a layer tar) and stored with
//! `Store::write_image`.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use whittle_analyze::{analyze, Analysis, Input, Options};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// A store in a temporary directory.
pub fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("store")).unwrap();
    (t, s)
}

/// One layer: its history line and what it holds.
pub type LayerFn<'a> = (&'a str, &'a dyn Fn(&Path));

/// Stores an image made of `layers` (bottom first) as `name`.
pub fn image(s: &Store, name: &str, layers: &[LayerFn<'_>]) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for (created_by, fill) in layers {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(dir.path(), &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
        history.push(serde_json::json!({"created_by": created_by}));
        // A metadata-only step between layers, as ENV makes: must not shift the history.
        history.push(serde_json::json!({"created_by": "ENV X=1", "empty_layer": true}));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse(name).unwrap(), &img.manifest)
        .unwrap();
}

/// Options that report every finding, however small.
pub fn opts() -> Options {
    Options {
        min_finding_bytes: 0,
        ..Options::default()
    }
}

/// Analyses a stored image.
pub fn run(s: &Store, name: &str) -> Analysis {
    analyze(&Input::Store(name.into()), Some(s), &opts()).unwrap()
}

/// Writes a file of `size` bytes (content from `seed`, so different seeds differ) with `mode`.
pub fn file(root: &Path, rel: &str, size: usize, seed: u8, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..size)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a file with the given content.
pub fn text(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// A whiteout deleting `rel` from the layers below.
pub fn whiteout(root: &Path, rel: &str) {
    let p = Path::new(rel);
    let name = p.file_name().unwrap().to_str().unwrap();
    let parent = root.join(p.parent().unwrap());
    fs::create_dir_all(&parent).unwrap();
    fs::write(parent.join(format!(".wh.{name}")), b"").unwrap();
}

/// Marks directory `rel` opaque.
pub fn opaque(root: &Path, rel: &str) {
    let d = root.join(rel);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(".wh..wh..opq"), b"").unwrap();
}

/// Creates a directory.
pub fn dir(root: &Path, rel: &str, mode: u32) {
    let d = root.join(rel);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
}

/// Kinds of the findings, in order.
pub fn kinds(a: &Analysis) -> Vec<whittle_analyze::FindingKind> {
    a.findings.iter().map(|f| f.kind).collect()
}

/// Asserts two floats are equal to 1e-12.
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}
