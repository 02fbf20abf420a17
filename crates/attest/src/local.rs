//! Attestations of a `-o type=local` output, as BuildKit's local exporter writes them: each
//! statement as a file next to the files (`sbom.spdx.json`, `provenance.json`; in each
//! platform's directory for several platforms), indented, mode 0600, its subjects the regular
//! files written (path and sha256), mtime the build's epoch.

use crate::error::{AttestError, Result};
use crate::statement::{statement, Subject};
use crate::Predicate;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `predicates` as statement files into `dir` (the files already there are the
/// subjects, except earlier attestation files).
pub fn write(dir: &Path, predicates: &[Predicate], epoch: u64) -> Result<()> {
    let names: Vec<&str> = predicates.iter().map(|p| p.file_name.as_str()).collect();
    let mut subjects = Vec::new();
    walk(dir, dir, &names, &mut subjects)?;
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    for p in predicates {
        let stmt = statement(p.predicate_type, &subjects, &p.predicate);
        // BuildKit indents these files.
        let v: serde_json::Value =
            serde_json::from_slice(&stmt).map_err(|source| AttestError::Json {
                what: p.file_name.clone(),
                source,
            })?;
        let mut text = serde_json::to_vec_pretty(&v).map_err(|source| AttestError::Json {
            what: p.file_name.clone(),
            source,
        })?;
        text.push(b'\n');
        let path = dir.join(&p.file_name);
        let io = |source| AttestError::Io {
            what: "write",
            path: path.clone(),
            source,
        };
        // Never through a link an image put there.
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if !m.is_file() || m.file_type().is_symlink() {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        std::fs::write(&path, &text).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(io)?;
        f.set_modified(t).map_err(io)?;
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut Vec<Subject>) -> Result<()> {
    let io = |path: PathBuf| {
        move |source| AttestError::Io {
            what: "read",
            path,
            source,
        }
    };
    for e in std::fs::read_dir(dir).map_err(io(dir.to_path_buf()))? {
        let e = e.map_err(io(dir.to_path_buf()))?;
        let path = e.path();
        let ty = e.file_type().map_err(io(path.clone()))?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        if ty.is_dir() {
            walk(root, &path, skip, out)?;
        } else if ty.is_file() && !skip.contains(&rel.as_str()) {
            let mut f = std::fs::File::open(&path).map_err(io(path.clone()))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).map_err(io(path.clone()))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            out.push(Subject {
                name: rel,
                sha256: hex::encode(h.finalize()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_the_subjects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/app"), b"app").unwrap();
        let preds = [Predicate {
            file_name: "sbom.spdx.json".into(),
            predicate_type: whittle_oci::attestation::PREDICATE_SPDX,
            predicate: b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
        }];
        write(dir.path(), &preds, 10).unwrap();
        // Again: the earlier attestation file is not a subject.
        write(dir.path(), &preds, 10).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("sbom.spdx.json")).unwrap())
                .unwrap();
        assert_eq!(v["subject"].as_array().unwrap().len(), 1);
        assert_eq!(v["subject"][0]["name"], "bin/app");
        assert_eq!(v["predicate"]["spdxVersion"], "SPDX-2.3");
        let m = std::fs::metadata(dir.path().join("sbom.spdx.json")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
}
