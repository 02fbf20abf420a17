//! Hint files: what a build keeps to go faster next time and never needs (copy manifests,
//! `copies.rs`; block indexes, `layer_blocks.rs`). Each is replaced whole by a rename, is not
//! synced (a lost or torn one is the same as none: its reader checks it), and is pruned with
//! the snapshot it belongs to.

use crate::error::{Result, StoreError};
use std::fs;
use std::io::Write;
use std::path::Path;

/// Replaces `dir/name` with `bytes` through a temp file and a rename, without fsync.
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir.to_path_buf(), e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| StoreError::io("create temp file in", dir.to_path_buf(), e))?;
    tmp.write_all(bytes)
        .map_err(|e| StoreError::io("write", tmp.path().to_path_buf(), e))?;
    let path = dir.join(name);
    tmp.persist(&path)
        .map_err(|e| StoreError::io("rename into", path.clone(), e.error))?;
    Ok(())
}

/// Removes the files of `dir` that `keep` rejects, and the temp files a killed build left
/// (the caller holds the exclusive gc lock: no build is writing one). Returns how many.
pub(crate) fn prune(dir: &Path, mut keep: impl FnMut(&fs::DirEntry) -> bool) -> Result<u64> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in rd {
        let e = e.map_err(|err| StoreError::io("list", dir.to_path_buf(), err))?;
        let temp = e
            .file_name()
            .to_str()
            .is_none_or(|n| n.starts_with(".tmp-"));
        if temp || !keep(&e) {
            fs::remove_file(e.path()).map_err(|err| StoreError::io("remove", e.path(), err))?;
            removed += 1;
        }
    }
    Ok(removed)
}
