//! `whittle analyze`: JSON with dive's field names, text, `--ci` with dive's rules and
//! `.dive-ci`, archives read in place, and image-supplied names escaped on the terminal.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use std::path::Path;
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// Stores a three-layer image in which `/a` is written three times (100, 200, 300 bytes) and a
/// file with an escape sequence in its name is written twice.
fn seed(root: &Path) {
    let s = Store::open(root).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, size) in [100usize, 200, 300].into_iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), vec![i as u8; size]).unwrap();
        fs::write(d.path().join("evil\x1b[31mname"), vec![i as u8; 10]).unwrap();
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(d.path(), &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ADD a"}, {"created_by": "/bin/sh -c make a"}, {"created_by": "RUN make a again"}]
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse("waste:1").unwrap(), &img.manifest)
        .unwrap();
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn whittle(root: &Path, cwd: &Path, args: &[&str]) -> Out {
    let o = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .current_dir(cwd)
        .arg("--root")
        .arg(root)
        .arg("analyze")
        .args(args)
        .output()
        .unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn json_has_dives_field_names_and_more() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let o = whittle(&root, t.path(), &["--format", "json", "waste:1"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let l = &v["layer"][1];
    for k in ["index", "id", "digestId", "sizeBytes", "command"] {
        assert!(!l[k].is_null(), "layer.{k}");
    }
    assert_eq!(l["sizeBytes"], 210);
    assert_eq!(l["command"], "make a");
    assert_eq!(l["filesChanged"], 2);
    let img = &v["image"];
    assert_eq!(img["sizeBytes"], 630);
    // /a: 600 of which 100 is needed; the other file 30 of which 10.
    assert_eq!(img["inefficientBytes"], 630);
    let eff = img["efficiencyScore"].as_f64().unwrap();
    assert!((eff - 110.0 / 630.0).abs() < 1e-12, "{eff}");
    assert_eq!(img["fileReference"][0]["file"], "/a");
    assert_eq!(img["fileReference"][0]["count"], 3);
    assert_eq!(img["fileReference"][0]["sizeBytes"], 600);
    assert!(v["findings"].as_array().is_some());
    assert!(v.get("ci").is_none());
}

#[test]
fn text_escapes_names_from_the_image() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let o = whittle(&root, t.path(), &["waste:1"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("efficiency: 17.4603 %"), "{}", o.stdout);
    assert!(o.stdout.contains("Inefficient Files:"));
    assert!(o.stdout.contains("wastedBytes: 630 bytes"));
    assert!(
        !o.stdout.contains('\x1b'),
        "raw escape reached the terminal"
    );
    assert!(o.stdout.contains("evil\\u{1b}[31mname"));
}

#[test]
fn ci_uses_dives_rules_flags_and_dive_ci() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    // dive's defaults (efficiency >= 0.9, user wasted <= 0.1) fail.
    let o = whittle(&root, t.path(), &["--ci", "waste:1"]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("FAIL: lowestEfficiency"), "{}", o.stdout);
    assert!(o.stdout.contains("SKIP: highestWastedBytes"));
    assert!(o.stdout.contains("Result:FAIL"));
    // Flags.
    let o = whittle(
        &root,
        t.path(),
        &[
            "--ci",
            "--lowestEfficiency",
            "0.1",
            "--highestUserWastedPercent",
            "disabled",
            "waste:1",
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stdout);
    assert!(o.stdout.contains("Result:PASS"));
    // A .dive-ci in the current directory, overridden by a flag.
    fs::write(
        t.path().join(".dive-ci"),
        "rules:\n  lowestEfficiency: 0.1\n  highestWastedBytes: 1kB\n  highestUserWastedPercent: disabled\n",
    )
    .unwrap();
    let o = whittle(&root, t.path(), &["--ci", "--format", "json", "waste:1"]);
    assert_eq!(o.code, Some(0), "{}", o.stdout);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["ci"]["pass"], true);
    let o = whittle(
        &root,
        t.path(),
        &["--ci", "--highestWastedBytes", "600B", "waste:1"],
    );
    assert_eq!(o.code, Some(1));
    assert!(
        o.stdout.contains("wasted-bytes=630 > threshold=600"),
        "{}",
        o.stdout
    );
    // A broken value is a misconfiguration, which fails.
    let o = whittle(
        &root,
        t.path(),
        &["--ci", "--lowestEfficiency", "2", "waste:1"],
    );
    assert_eq!(o.code, Some(1));
    assert!(o.stdout.contains("CI Misconfigured"));
}

#[test]
fn archives_are_read_in_place_and_errors_are_clear() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let s = Store::open(&root).unwrap();
    let img = s.resolve("waste:1").unwrap().image;
    let path = t.path().join("w.tar");
    whittle_store::save(
        &s,
        &[(Some(Reference::parse("waste:1").unwrap()), img)],
        whittle_store::ArchiveFormat::Docker,
        fs::File::create(&path).unwrap(),
    )
    .unwrap();
    let empty = t.path().join("empty-store");
    let arg = format!("docker-archive:{}", path.display());
    let o = whittle(&empty, t.path(), &["--format", "json", &arg]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["image"]["inefficientBytes"], 630);
    assert!(!empty.exists(), "an archive is analysed without a store");
    let o = whittle(&root, t.path(), &["nope:1"]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("no such image"), "{}", o.stderr);
}
