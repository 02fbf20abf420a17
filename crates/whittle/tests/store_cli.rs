//! The store commands end to end through the `whittle` binary: load, save, images, tag, rmi,
//! inspect, history, prune, fsck, with `--root`.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use std::path::Path;
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// Puts a small two-layer image in the store at `root` and tags it.
fn seed_image(root: &Path, tag: &str) -> whittle_store::ImageRecord {
    let s = Store::open(root).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, content) in ["base content", "app content"].iter().enumerate() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("etc")).unwrap();
        fs::write(src.path().join(format!("etc/f{i}")), content.repeat(1000)).unwrap();
        let mut w = s.blob_writer(None).unwrap();
        let (info, _) = write_layer(
            src.path(),
            &WriteOptions {
                epoch: 0,
                ..WriteOptions::default()
            },
            &mut w,
        )
        .unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        layers.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "created": "2024-05-01T10:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-05-01T10:00:00Z", "created_by": "ADD base /"},
            {"created": "2024-05-01T10:00:00Z", "created_by": "ENV A=b", "empty_layer": true},
            {"created": "2024-05-01T10:00:00Z", "created_by": "COPY app /etc/"}
        ]
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &layers)
        .unwrap();
    s.tag(&Reference::parse(tag).unwrap(), &img.manifest)
        .unwrap();
    img
}

fn whittle(root: &Path) -> Command {
    let mut c = Command::cargo_bin("whittle").unwrap();
    c.arg("--root").arg(root).env_remove("WHITTLE_ROOT");
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn images_tag_inspect_history_rmi() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = seed_image(&root, "demo/app:1.0");
    let id12 = &img.config.hex()[..12];

    let out = stdout(whittle(&root).arg("images"));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("IMAGE ID")
            && lines[0].contains("SIZE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("demo/app") && lines[1].contains("1.0") && lines[1].contains(id12),
        "{out}"
    );

    stdout(whittle(&root).args(["tag", "demo/app:1.0", "other:latest"]));
    stdout(whittle(&root).args(["tag", id12, "third"]));
    let out = stdout(whittle(&root).args(["images", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[0]["RepoTags"],
        serde_json::json!(["demo/app:1.0", "other:latest", "third:latest"])
    );
    assert_eq!(stdout(whittle(&root).args(["images", "-q"])).trim(), id12);

    let out = stdout(whittle(&root).args(["inspect", "other"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], img.config.as_str());
    assert_eq!(v[0]["Digest"], img.manifest.as_str());
    assert_eq!(
        v[0]["Manifest"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(v[0]["Config"]["config"]["Cmd"][0], "/bin/sh");

    let out = stdout(whittle(&root).args(["history", "demo/app:1.0"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("CREATED BY") && lines[0].contains("SIZE"));
    assert!(
        lines[1].contains("COPY app /etc/") && lines[1].contains(&img.layers[1].hex()[..12]),
        "{out}"
    );
    assert!(
        lines[2].contains("ENV A=b")
            && lines[2].contains("<none>")
            && lines[2].trim_end().ends_with("0B"),
        "{out}"
    );

    // By id with several tags: refused without --force.
    let out = whittle(&root).args(["rmi", id12]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = stdout(whittle(&root).args(["rmi", "other"]));
    assert_eq!(out.trim(), "Untagged: other:latest");
    let out = stdout(whittle(&root).args(["rmi", "-f", id12]));
    assert!(
        out.contains("Untagged: demo/app:1.0")
            && out.contains(&format!("Deleted: {}", img.manifest)),
        "{out}"
    );
    assert_eq!(stdout(whittle(&root).args(["images", "-q"])).trim(), "");
    let out = whittle(&root).args(["inspect", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image: nope"));
}

#[test]
fn save_load_round_trip_through_the_cli() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let img = seed_image(&a, "rt/app:v1");
    for format in ["docker", "oci"] {
        let file = t.path().join(format!("{format}.tar"));
        stdout(
            whittle(&a)
                .args(["save", "--format", format, "-o"])
                .arg(&file)
                .arg("rt/app:v1"),
        );
        let b = t.path().join(format!("b-{format}"));
        let out = stdout(whittle(&b).arg("load").arg("-i").arg(&file));
        assert_eq!(out.trim(), "Loaded image: rt/app:v1");
        let v: serde_json::Value =
            serde_json::from_str(&stdout(whittle(&b).args(["inspect", "rt/app:v1"]))).unwrap();
        assert_eq!(v[0]["Digest"], img.manifest.as_str());
        let again = t.path().join(format!("{format}-again.tar"));
        stdout(
            whittle(&b)
                .args(["save", "--format", format, "-o"])
                .arg(&again)
                .arg("rt/app:v1"),
        );
        assert_eq!(
            fs::read(&file).unwrap(),
            fs::read(&again).unwrap(),
            "{format} archive differs after a round trip"
        );
        assert!(stdout(whittle(&b).arg("fsck")).contains("store is clean"));
    }
    // stdin and stdout.
    let out = whittle(&a).args(["save", "rt/app:v1"]).output().unwrap();
    assert!(out.status.success());
    let c = t.path().join("c");
    let loaded = stdout(whittle(&c).arg("load").write_stdin(out.stdout));
    assert_eq!(loaded.trim(), "Loaded image: rt/app:v1");
}

#[test]
fn fsck_and_prune() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = seed_image(&root, "keep:1");
    let s = Store::open(&root).unwrap();
    let stray = s.put_bytes(b"unreferenced").unwrap();
    fs::write(root.join("tmp/blob-interrupted"), b"half").unwrap();
    let out = stdout(whittle(&root).arg("fsck"));
    assert!(
        out.contains("removed leftover temp file") && out.contains("store is clean"),
        "{out}"
    );
    let out = stdout(whittle(&root).args(["prune", "--keep-storage", "1GB"]));
    assert!(out.contains("Removed 1 blobs"), "{out}");
    assert!(!s.has_blob(&stray));
    assert!(img.blobs().all(|b| s.has_blob(b)));
    // Corrupt a layer: fsck reports it and fails.
    let p = s.blob_path(&img.layers[0]);
    let mut b = fs::read(&p).unwrap();
    b[10] ^= 1;
    fs::write(&p, b).unwrap();
    let out = whittle(&root).arg("fsck").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("CORRUPT blob {}", img.layers[0])),
        "{text}"
    );
    let out = whittle(&root)
        .args(["prune", "--keep-storage", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn root_defaults_to_whittle_root_env() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("envroot");
    seed_image(&root, "env/img");
    let mut c = Command::cargo_bin("whittle").unwrap();
    let out = stdout(c.arg("images").env("WHITTLE_ROOT", &root));
    assert!(out.contains("env/img"), "{out}");
}

#[test]
fn several_processes_share_one_store() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let mut archives = Vec::new();
    for i in 0..4 {
        let tag = format!("multi/img{i}:v1");
        seed_image(&src, &tag);
        let file = t.path().join(format!("{i}.tar"));
        stdout(whittle(&src).args(["save", "-o"]).arg(&file).arg(&tag));
        archives.push(file);
    }
    let root = t.path().join("shared");
    let mut children: Vec<_> = archives
        .iter()
        .map(|a| {
            std::process::Command::new(env!("CARGO_BIN_EXE_whittle"))
                .arg("--root")
                .arg(&root)
                .args(["load", "-q", "-i"])
                .arg(a)
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..2 {
        for args in [&["prune"][..], &["images"][..], &["fsck"][..]] {
            children.push(
                std::process::Command::new(env!("CARGO_BIN_EXE_whittle"))
                    .arg("--root")
                    .arg(&root)
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let out = stdout(whittle(&root).args(["images", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // seed_image makes the same content each time: one image, four tags.
    let tags: usize = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["RepoTags"].as_array().unwrap().len())
        .sum();
    assert_eq!(tags, 4, "{out}");
    assert!(stdout(whittle(&root).arg("fsck")).contains("store is clean"));
}

#[test]
fn load_extracts_the_layers_unless_told_not_to() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    seed_image(&a, "ex/app:v1");
    let file = t.path().join("img.tar");
    stdout(whittle(&a).args(["save", "-o"]).arg(&file).arg("ex/app:v1"));
    for (dir, flag, expect_extracted_later) in [("b", None, 0), ("c", Some("--no-unpack"), 2)] {
        let root = t.path().join(dir);
        let mut cmd = whittle(&root);
        cmd.args(["load", "-q", "-i"]).arg(&file);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        stdout(&mut cmd);
        let s = Store::open(&root).unwrap();
        let img = s.resolve("ex/app:v1").unwrap().image;
        let extracted = AtomicUsize::new(0);
        let (_, layers) = s
            .unpack_image(&img, &|_, _, _| {
                extracted.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(
            extracted.load(Ordering::Relaxed),
            expect_extracted_later,
            "{flag:?}"
        );
        assert_eq!(layers.len(), 2);
        assert!(layers[0].dir.join("etc/f0").is_file());
        assert!(layers[1].dir.join("etc/f1").is_file());
        assert!(!layers[1].dir.join("etc/f0").exists());
    }
}
