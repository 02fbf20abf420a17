//! `whittle diff`: text and JSON on two stored images with known differences, one of them read
//! from an archive.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use std::path::Path;
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// Stores a one-layer image `name` holding `files` (path, size, fill byte).
fn seed(s: &Store, name: &str, files: &[(&str, usize, u8)]) {
    let d = tempfile::tempdir().unwrap();
    for (p, size, b) in files {
        let p = d.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, vec![*b; *size]).unwrap();
    }
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(d.path(), &WriteOptions::default(), w).unwrap();
    w.commit().unwrap();
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
        "history": [{"created_by": "ADD /"}]
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

fn whittle(root: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(root)
        .arg("diff")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn diff_text_and_json() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let s = Store::open(&root).unwrap();
    seed(
        &s,
        "before:1",
        &[
            ("usr/lib/gcc/cc1", 40_000, 1),
            ("app/server", 30_000, 2),
            ("app/same", 10, 3),
            ("evil\x1b[2Jname", 10, 4),
        ],
    );
    seed(
        &s,
        "after:1",
        &[
            ("app/server", 20_000, 5),
            ("app/same", 10, 3),
            ("app/VERSION", 5, 6),
        ],
    );
    let (code, out, err) = whittle(&root, &["before:1", "after:1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("Files: 1 added (5B), 2 removed (40.0kB), 1 changed (30.0kB → 20.0kB)"),
        "{out}"
    );
    let usr = out
        .lines()
        .find(|l| l.ends_with(" /usr"))
        .unwrap_or_default();
    assert!(
        usr.contains("-40.0kB") && usr.contains("40.0kB → 0B"),
        "{out}"
    );
    assert!(out.contains("/usr/lib/gcc/cc1"));
    assert!(out.contains("/app/server  (content)"), "{out}");
    assert!(!out.contains('\x1b'), "raw escape reached the terminal");

    // B from an archive, JSON.
    let img = s.resolve("after:1").unwrap().image;
    let archive = t.path().join("after.tar");
    whittle_store::save(
        &s,
        &[(Some(Reference::parse("after:1").unwrap()), img)],
        whittle_store::ArchiveFormat::Oci,
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    let b = format!("oci-archive:{}", archive.display());
    let (code, out, err) = whittle(&root, &["--format", "json", "--depth", "1", "before:1", &b]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["totals"]["sizeDiff"], -50_005);
    assert_eq!(v["added"][0]["path"], "/app/VERSION");
    assert_eq!(v["removed"][0]["path"], "/usr/lib/gcc/cc1");
    assert_eq!(v["changed"][0]["changes"][0], "content");
    assert_eq!(v["directories"][0]["path"], "/usr");
    assert_eq!(v["directories"][0]["diff"], -40_000);
    assert_eq!(
        v["directories"].as_array().unwrap().len(),
        2,
        "/usr and /app at depth 1"
    );

    let (code, _, err) = whittle(&root, &["before:1", "nope:1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such image"), "{err}");
}
