//! `whittle analyze docker://REF` (and `diff`, which shares the input code): an image pushed with
//! `whittle push` to Debian's `docker-registry` on 127.0.0.1 is analysed from the registry, not
//! stored, and its figures, findings and layer origins equal the analysis of the stored image.
//! A tampered layer on the registry fails the analysis naming the blob.
#![allow(clippy::unwrap_used)]

mod common;

use common::registry::Registry;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use whittle_layer::{write_layer, Compression, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// Stores `name`: three layers (the first uncompressed, as a loaded base is stored, so the push
/// compresses it), a file deleted later, one written twice, a .env file, and whittle's layer
/// origins annotation.
fn seed(root: &Path, name: &str) {
    let s = Store::open(root).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    type Fill = fn(&Path);
    let layers: [(Fill, Compression); 3] = [
        (
            |d| {
                fs::create_dir_all(d.join("etc")).unwrap();
                fs::write(d.join("etc/big"), vec![1u8; 20_000]).unwrap();
                fs::write(d.join("etc/conf"), b"a").unwrap();
            },
            Compression::None,
        ),
        (
            |d| {
                fs::create_dir_all(d.join("etc")).unwrap();
                fs::write(d.join("etc/.wh.big"), b"").unwrap();
                fs::write(d.join("etc/conf"), vec![2u8; 3000]).unwrap();
            },
            Compression::default(),
        ),
        (
            |d| {
                fs::create_dir_all(d.join("app")).unwrap();
                fs::write(d.join("app/.env"), b"TOKEN=1\n").unwrap();
            },
            Compression::default(),
        ),
    ];
    for (fill, compression) in layers {
        let d = tempfile::tempdir().unwrap();
        fill(d.path());
        let w = s.blob_writer(None).unwrap();
        let opts = WriteOptions {
            compression,
            ..WriteOptions::default()
        };
        let (info, w) = write_layer(d.path(), &opts, w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "architecture": whittle_dockerfile::Platform::host().arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ADD etc"}, {"created_by": "RUN rm big"}, {"created_by": "COPY app"}]
    });
    let origins = r#"[null,{"file":"Dockerfile","line":3,"stage":"app"},{"file":"Dockerfile","line":4,"stage":"app"}]"#;
    let ann = BTreeMap::from([(
        whittle_oci::LAYERS_ANNOTATION.to_string(),
        origins.to_string(),
    )]);
    let img = s
        .write_image_annotated(&serde_json::to_vec(&cfg).unwrap(), &descs, &ann)
        .unwrap();
    s.tag(&Reference::parse(name).unwrap(), &img.manifest)
        .unwrap();
}

fn whittle(root: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
    c.arg("--root")
        .arg(root)
        .env_remove("WHITTLE_ROOT")
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("WHITTLE_CERTS_D", home.join("certs.d"))
        .stdin(Stdio::null());
    c
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The analysis without what legitimately differs between the stored and the pushed image:
/// the name, and the blobs (a layer stored uncompressed is pushed compressed).
fn figures(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    let img = v["image"].as_object_mut().unwrap();
    img.remove("name");
    img.remove("blobSizeBytes");
    for l in v["layer"].as_array_mut().unwrap() {
        let l = l.as_object_mut().unwrap();
        for k in ["blobDigest", "blobSizeBytes", "id", "mediaType"] {
            l.remove(k);
        }
    }
    v
}

#[test]
fn an_image_on_a_registry_analyses_as_it_does_in_the_store() {
    let Some(reg) = common::registry::available().then(Registry::start) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let name = format!("127.0.0.1:{}/whittle/analyze:1", reg.port);
    seed(&a, &name);
    ok(whittle(&a, t.path()).args(["push", "-q", &name]));

    let stored = ok(whittle(&a, t.path()).args(["analyze", "--format", "json", &name]));
    // Another, empty store: the image is read from the registry, and not stored.
    let b = t.path().join("b");
    for prefix in ["docker://", "registry:"] {
        let remote = ok(whittle(&b, t.path()).args([
            "analyze",
            "--format",
            "json",
            &format!("{prefix}{name}"),
        ]));
        let f = figures(&remote);
        assert_eq!(f, figures(&stored));
        assert_eq!(f["image"]["wastedBytes"], 23_001, "{f:#}");
        assert_eq!(f["layer"][2]["origin"]["line"], 4, "{f:#}");
        assert_eq!(f["findings"][0]["kind"], "secret", "{f:#}");
        let v: serde_json::Value = serde_json::from_str(&remote).unwrap();
        assert_eq!(
            v["layer"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "the pushed (compressed) blob was read"
        );
    }
    let images = Store::open(&b).unwrap().images().unwrap();
    assert!(images.is_empty(), "nothing stored");
    let blobs = fs::read_dir(b.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "no blob stored");

    // The text report and diff read the same input; a plain name is still a store lookup.
    let text = ok(whittle(&b, t.path()).args(["analyze", &format!("docker://{name}")]));
    assert!(text.contains("Dockerfile:4 (stage app)"), "{text}");
    let d = ok(whittle(&a, t.path()).args([
        "diff",
        "--format",
        "json",
        &name,
        &format!("docker://{name}"),
    ]));
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["totals"]["sizeDiff"], 0, "{d:#}");
    assert_eq!(d["totals"]["filesUnchanged"], 2, "{d:#}");
    assert_eq!(d["b"]["name"], format!("docker://{name}"), "{d:#}");
    let miss = whittle(&b, t.path())
        .args(["analyze", &name])
        .output()
        .unwrap();
    assert!(!miss.status.success(), "not looked up on the registry");

    // A layer changed on the registry fails the analysis, naming the blob: here its gzip
    // header's MTIME, which every gzip reader ignores, so only the digest check can catch it.
    let v: serde_json::Value = serde_json::from_str(&ok(whittle(&b, t.path()).args([
        "analyze",
        "--format",
        "json",
        &format!("docker://{name}"),
    ])))
    .unwrap();
    let digest = v["layer"][1]["blobDigest"].as_str().unwrap().to_string();
    let p = reg.blob_file(&digest);
    let mut bytes = fs::read(&p).unwrap();
    assert_eq!(&bytes[..2], b"\x1f\x8b");
    bytes[4] ^= 0xff;
    fs::write(&p, bytes).unwrap();
    let out = whittle(&b, t.path())
        .args(["analyze", &format!("docker://{name}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&digest) && err.contains("with digest"),
        "{err}"
    );
}
