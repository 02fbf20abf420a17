//! `whittle sbom` end to end on the debian base image: each format, `-o FILE`.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;

#[test]
fn sbom_formats_and_output_file() {
    let a = std::path::Path::new("/var/cache/whittle-test/images/archives/debian.tar");
    if !a.exists() {
        eprintln!(
            "skipped: {} is missing (scripts/base-images.sh debian)",
            a.display()
        );
        return;
    }
    let img = format!("docker-archive:{}", a.display());
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .args(["sbom", &img])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("libc6 ") && l.contains(" deb ")),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    for (f, key) in [
        ("spdx-json", "spdxVersion"),
        ("cyclonedx-json", "bomFormat"),
    ] {
        let p = dir.path().join(f);
        let st = Command::cargo_bin("whittle")
            .unwrap()
            .args(["sbom", &img, "--format", f, "-o"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(st.status.success());
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert!(v.get(key).is_some(), "{f}");
    }
    let bad = Command::cargo_bin("whittle")
        .unwrap()
        .args(["sbom", "docker-archive:/nonexistent.tar"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
