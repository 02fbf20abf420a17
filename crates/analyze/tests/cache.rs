//! The per-layer summary cache: a warm analysis gives the same result as a cold one without
//! reading the layers (shown by spoiling the blobs after the first run), and a config that
//! claims another layer's diff id does not get that layer's summary.
#![allow(clippy::unwrap_used)]

mod common;

use common::{image, store};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use whittle_analyze::{analyze, Input, Options};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

fn json(s: &Store, name: &str, cache: bool) -> Result<serde_json::Value, String> {
    let o = Options {
        min_finding_bytes: 0,
        cache,
        ..Options::default()
    };
    analyze(&Input::Store(name.into()), Some(s), &o)
        .map(|a| serde_json::to_value(&a).unwrap())
        .map_err(|e| e.to_string())
}

fn spoil_blobs(s: &Store, name: &str) {
    for d in &s.resolve(name).unwrap().image.layers {
        let p = s.blob_path(d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        // Same size (the blob size is shown), no longer a layer.
        let len = fs::metadata(&p).unwrap().len() as usize;
        fs::write(&p, vec![0xffu8; len]).unwrap();
    }
}

#[test]
fn a_warm_analysis_reads_no_layer_and_says_the_same() {
    let (_t, s) = store();
    image(
        &s,
        "app:1",
        &[
            ("ADD rootfs", &|d: &Path| {
                fs::create_dir_all(d.join("app/__pycache__")).unwrap();
                fs::write(d.join("app/.env"), "TOKEN=1\n").unwrap();
                fs::write(d.join("app/big"), vec![1u8; 5000]).unwrap();
                fs::write(d.join("app/m.py"), "x = 1\n").unwrap();
                let mut pyc = vec![0xa7, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0];
                pyc.extend_from_slice(&[9; 8]);
                fs::write(d.join("app/__pycache__/m.cpython-311.pyc"), pyc).unwrap();
                fs::copy("/bin/ls", d.join("app/ls")).unwrap();
            }),
            ("RUN rm /app/big", &|d: &Path| {
                fs::create_dir_all(d.join("app")).unwrap();
                fs::write(d.join("app/.wh.big"), "").unwrap();
                fs::write(d.join("app/big2"), vec![1u8; 5000]).unwrap();
            }),
        ],
    );
    let cold = json(&s, "app:1", false).unwrap();
    assert!(!s.root().join("analyze-cache").exists(), "cache off");
    let first = json(&s, "app:1", true).unwrap();
    assert_eq!(first, cold);
    let files = fs::read_dir(s.root().join("analyze-cache"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "one summary per layer");
    assert!(
        cold["findings"].as_array().unwrap().len() >= 3,
        "{:#}",
        cold["findings"]
    );

    spoil_blobs(&s, "app:1");
    assert!(
        json(&s, "app:1", false).is_err(),
        "the blobs are unreadable"
    );
    let warm = json(&s, "app:1", true).unwrap();
    assert_eq!(warm, cold, "the cached summaries say what the layers said");
}

#[test]
fn a_borrowed_diff_id_does_not_borrow_the_summary() {
    let (_t, s) = store();
    image(
        &s,
        "a:1",
        &[("ADD a", &|d: &Path| {
            fs::write(d.join("a"), vec![1u8; 100]).unwrap();
        })],
    );
    let a = json(&s, "a:1", true).unwrap();
    assert_eq!(a["image"]["sizeBytes"], 100);
    let a_diff = a["layer"][0]["digestId"].as_str().unwrap().to_string();

    // b's config claims a's diff id for a blob holding something else.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("b"), vec![2u8; 300]).unwrap();
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(dir.path(), &WriteOptions::default(), w).unwrap();
    w.commit().unwrap();
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [a_diff]},
    });
    let img = s
        .write_image(
            &serde_json::to_vec(&cfg).unwrap(),
            &[(info.digest, info.media_type.to_string(), info.size)],
        )
        .unwrap();
    s.tag(&Reference::parse("b:1").unwrap(), &img.manifest)
        .unwrap();
    for _ in 0..2 {
        let b = json(&s, "b:1", true).unwrap();
        assert_eq!(b["image"]["sizeBytes"], 300, "b's own blob, every time");
    }
    spoil_blobs(&s, "a:1");
    assert_eq!(
        json(&s, "a:1", true).unwrap(),
        a,
        "a's summary is still a's"
    );
}
