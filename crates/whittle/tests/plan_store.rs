//! `whittle plan` reads base images from the local store: their ENV, WORKDIR and ONBUILD
//! triggers shape the expanded steps.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use whittle_oci::Reference;
use whittle_store::Store;

fn seed(root: &std::path::Path) {
    let s = Store::open(root).unwrap();
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/go/bin:/usr/bin:/bin", "GOPATH=/go"],
            "WorkingDir": "/go",
            "OnBuild": ["RUN echo from-trigger"]
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": []
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &[])
        .unwrap();
    s.tag(&Reference::parse("lab/golang:1").unwrap(), &img.manifest)
        .unwrap();
}

#[test]
fn plan_uses_base_image_config_from_the_store() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let df = t.path().join("Dockerfile");
    fs::write(
        &df,
        "FROM lab/golang:1\nENV PATH=/app/bin:$PATH\nWORKDIR src\nCOPY . $GOPATH/x\n",
    )
    .unwrap();
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(&root)
        .args(["plan", "-f"])
        .arg(&df)
        .arg(t.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("RUN echo from-trigger   (ONBUILD trigger of the base)"),
        "{text}"
    );
    assert!(
        text.contains("ENV PATH=/app/bin:/usr/local/go/bin:/usr/bin:/bin"),
        "{text}"
    );
    assert!(text.contains("WORKDIR /go/src"), "{text}");
    assert!(text.contains("COPY . /go/x"), "{text}");
    assert!(!text.contains("not in the local store"), "{text}");
}

#[test]
fn plan_without_a_store_notes_unknown_images_and_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("none");
    let df = t.path().join("Dockerfile");
    fs::write(&df, "FROM lab/golang:1\nRUN true\n").unwrap();
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .arg("--root")
        .arg(&root)
        .args(["plan", "-f"])
        .arg(&df)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not in the local store"));
    assert!(!root.exists(), "plan must not create a store");
}
