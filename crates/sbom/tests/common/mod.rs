//! Test helpers: crafted docker archives (one tar a layer) and the base images of
//! `scripts/base-images.sh`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One entry of a crafted layer.
pub enum E<'a> {
    /// A regular file with content and mode.
    File(&'a str, Vec<u8>, u32),
    /// A directory.
    Dir(&'a str),
    /// A symlink.
    Link(&'a str, &'a str),
}

/// Writes a docker archive of `layers` (bottom first) to `dir/image.tar`, with `created` in
/// the config.
pub fn docker_archive(dir: &Path, layers: &[Vec<E>]) -> PathBuf {
    use sha2::Digest;
    let mut outer = tar::Builder::new(std::fs::File::create(dir.join("image.tar")).unwrap());
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let mut b = tar::Builder::new(Vec::new());
        for e in l {
            let mut h = tar::Header::new_gnu();
            match e {
                E::File(p, data, mode) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(*mode);
                    b.append_data(&mut h, p, &data[..]).unwrap();
                }
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
                E::Link(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    b.append_link(&mut h, p, t).unwrap();
                }
            }
        }
        let bytes = b.into_inner().unwrap();
        diff_ids.push(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&bytes))
        ));
        let name = format!("l{i}/layer.tar");
        append(&mut outer, &name, &bytes);
        names.push(name);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:11:12.5Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cbytes = serde_json::to_vec(&config).unwrap();
    let cname = format!("{}.json", hex::encode(sha2::Sha256::digest(&cbytes)));
    append(&mut outer, &cname, &cbytes);
    let manifest =
        serde_json::json!([{"Config": cname, "RepoTags": ["test/sbom:1"], "Layers": names}]);
    append(
        &mut outer,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    outer.finish().unwrap();
    dir.join("image.tar")
}

fn append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, name, data).unwrap();
}

/// The docker archive of a base image (`scripts/base-images.sh NAME`), built when missing and
/// running as root; `None` (with the reason printed) when it cannot be had.
pub fn base_image(name: &str) -> Option<PathBuf> {
    let cache = std::env::var("WHITTLE_IMAGE_CACHE")
        .unwrap_or_else(|_| "/var/cache/whittle-test/images".into());
    let a = PathBuf::from(&cache)
        .join("archives")
        .join(format!("{name}.tar"));
    if !a.exists() && rustix_is_root() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/base-images.sh");
        let ok = Command::new("bash")
            .arg(script)
            .arg(name)
            .status()
            .map(|s| s.success());
        assert!(
            matches!(ok, Ok(true)),
            "scripts/base-images.sh {name} failed"
        );
    }
    if a.exists() {
        Some(a)
    } else {
        eprintln!(
            "skipped: {} is missing and not root to build it",
            a.display()
        );
        None
    }
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A Python venv holding the SPDX and CycloneDX reference validators
/// (`scripts/sbom-validators.sh`); its `bin` directory.
pub fn validators() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sbom-validators.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
