//! A cache as an OCI image layout directory (`type=local`): `oci-layout`, `index.json` naming
//! the cache manifest, and `blobs/sha256/<hex>`. Blob paths are made from parsed digests (64
//! hex digits), so nothing read from the directory chooses a path; every read is capped and
//! its digest checked.

use crate::error::CacheError;
use crate::format::ARTIFACT_TYPE;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use whittle_oci::{media_type, Descriptor, Digest, Index};

/// The largest `index.json` or manifest read.
const MAX_DOCUMENT: u64 = 4 << 20;

pub(crate) fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

fn io(name: &str, what: &'static str, path: &Path, source: std::io::Error) -> CacheError {
    CacheError::Io {
        source_name: name.to_string(),
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` to `path` through a temp file in the same directory, renamed into place.
fn write_file(name: &str, path: &Path, data: &mut dyn Read) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io(name, "write in", dir, e))?;
    std::io::copy(data, &mut tmp).map_err(|e| io(name, "write", tmp.path(), e))?;
    tmp.as_file_mut()
        .flush()
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| io(name, "write", path, e))?;
    tmp.persist(path)
        .map_err(|e| io(name, "write", path, e.error))?;
    Ok(())
}

/// Writes a cache into `dir`: the blobs it lacks (taken from `store`, or from `inline` for
/// the config and the manifest), then `index.json` naming `manifest` alone, then removes the
/// blobs of earlier exports that this one does not name (a directory reused by every build
/// would otherwise grow forever). Exports to one directory at the same time are last writer
/// wins: a blob the other one's index names may be gone, which its import treats as a
/// missing blob (a warning, the steps built).
pub(crate) fn write(
    name: &str,
    dir: &Path,
    store: &whittle_store::Store,
    blobs: &[Descriptor],
    inline: &[(&Digest, &[u8])],
    manifest: &Descriptor,
) -> Result<(), CacheError> {
    let sha = dir.join("blobs/sha256");
    fs::create_dir_all(&sha).map_err(|e| io(name, "create", &sha, e))?;
    for d in blobs {
        let dest = blob_path(dir, &d.digest);
        if fs::metadata(&dest).is_ok_and(|m| m.len() == d.size) {
            continue;
        }
        match inline.iter().find(|(g, _)| **g == d.digest) {
            Some((_, bytes)) => write_file(name, &dest, &mut &bytes[..])?,
            None => {
                let mut f = store
                    .open_blob(&d.digest)
                    .map_err(|source| CacheError::Store {
                        source_name: name.to_string(),
                        source: Box::new(source),
                    })?;
                write_file(name, &dest, &mut f)?;
            }
        }
    }
    write_file(
        name,
        &dir.join("oci-layout"),
        &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )?;
    let index = Index::new(media_type::OCI_INDEX, vec![manifest.clone()]);
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    write_file(name, &dir.join("index.json"), &mut &bytes[..])?;
    remove_unnamed(name, dir, blobs)
}

/// Removes the files of `dir/blobs/sha256` named by a digest that `blobs` does not list
/// (other files, temp files of a running export among them, are left).
fn remove_unnamed(name: &str, dir: &Path, blobs: &[Descriptor]) -> Result<(), CacheError> {
    let sha = dir.join("blobs/sha256");
    let keep: std::collections::HashSet<&str> = blobs.iter().map(|d| d.digest.hex()).collect();
    for e in fs::read_dir(&sha).map_err(|e| io(name, "list", &sha, e))? {
        let e = e.map_err(|err| io(name, "list", &sha, err))?;
        let file = e.file_name().to_string_lossy().into_owned();
        let is_digest = format!("sha256:{file}").parse::<Digest>().is_ok();
        if is_digest && !keep.contains(file.as_str()) {
            match fs::remove_file(e.path()) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io(name, "remove", &e.path(), err)),
            }
        }
    }
    Ok(())
}

/// Reads a small file whole, refusing more than `cap` bytes.
fn read_capped(name: &str, path: &Path, cap: u64) -> Result<Vec<u8>, CacheError> {
    let f = fs::File::open(path).map_err(|e| io(name, "read", path, e))?;
    let mut v = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut v)
        .map_err(|e| io(name, "read", path, e))?;
    if v.len() as u64 > cap {
        return Err(CacheError::Artifact {
            source_name: name.to_string(),
            problem: format!("{} is larger than {cap} bytes", path.display()),
        });
    }
    Ok(v)
}

/// The descriptor of the cache manifest `index.json` names: the one with whittle's artifact
/// type, else the only one.
pub(crate) fn manifest_descriptor(name: &str, dir: &Path) -> Result<Descriptor, CacheError> {
    let bytes = read_capped(name, &dir.join("index.json"), MAX_DOCUMENT)?;
    let bad = |problem: String| CacheError::Artifact {
        source_name: name.to_string(),
        problem,
    };
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("index.json is not an OCI index: {e}")))?;
    let ours = index.manifests.iter().find(|m| {
        m.extra
            .get("artifactType")
            .and_then(|v| v.as_str())
            .is_some_and(|a| a == ARTIFACT_TYPE)
    });
    match (ours, index.manifests.as_slice()) {
        (Some(m), _) => Ok(m.clone()),
        (None, [only]) => Ok(only.clone()),
        (None, []) => Err(bad("index.json lists no manifest".into())),
        (None, _) => Err(bad(
            "index.json lists several manifests and none is a whittle cache".into(),
        )),
    }
}

/// A blob of at most `cap` bytes, its size and digest checked against `d`.
pub(crate) fn read_blob(
    name: &str,
    dir: &Path,
    d: &Descriptor,
    cap: u64,
) -> Result<Vec<u8>, CacheError> {
    if d.size > cap {
        return Err(CacheError::Artifact {
            source_name: name.to_string(),
            problem: format!("{} is {} bytes, more than {cap}", d.digest, d.size),
        });
    }
    let v = read_capped(name, &blob_path(dir, &d.digest), cap)?;
    if v.len() as u64 != d.size || Digest::of_bytes(&v) != d.digest {
        return Err(CacheError::Blob {
            source_name: name.to_string(),
            blob: d.digest.to_string(),
            problem: format!(
                "got {} bytes with digest {}, not {} bytes",
                v.len(),
                Digest::of_bytes(&v),
                d.size
            ),
        });
    }
    Ok(v)
}

pub(crate) const MAX_MANIFEST: u64 = MAX_DOCUMENT;
