//! Cache mounts: the persistent directories behind `RUN --mount=type=cache`.

use crate::error::{Result, StoreError};
use crate::lock::FileLock;
use crate::store::{db_err, now, parse, to_json, Store, CACHE_MOUNTS};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;
use whittle_layer::Digest;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CacheMountRecord {
    pub dir: String,
    pub size: u64,
    pub created: u64,
    pub last_used: u64,
}

/// A persistent cache-mount directory, locked for exclusive use while held if asked.
#[derive(Debug)]
pub struct CacheMount {
    /// The directory to mount.
    pub path: PathBuf,
    /// Held when exclusive use was asked for (`sharing=locked`).
    pub lock: Option<FileLock>,
}

/// A restore's temp dir: removed on drop (nothing to do once renamed into place), then its
/// lock released and deleted.
struct RestoreDir {
    path: PathBuf,
    _lock: tempfile::NamedTempFile,
}

impl RestoreDir {
    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for RestoreDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A cache mount's directory name: the id hashed (ids are free text).
fn mount_name(id: &str) -> String {
    Digest::of_bytes(id.as_bytes()).hex()[..32].to_string()
}

impl Store {
    /// The persistent directory of cache mount `id` (created on first use). With `exclusive`,
    /// waits for and holds a lock on it (`sharing=locked`).
    pub fn cache_mount(&self, id: &str, exclusive: bool) -> Result<CacheMount> {
        let name = mount_name(id);
        let lock = if exclusive {
            Some(FileLock::exclusive(
                &self.lock_path(&format!("cache-{name}.lock")),
            )?)
        } else {
            None
        };
        let path = self.cache_mount_path(id);
        fs::create_dir_all(&path).map_err(|e| StoreError::io("create", path.clone(), e))?;
        let t0 = now();
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CACHE_MOUNTS).map_err(db_err)?;
                let old = t.get(id).map_err(db_err)?.map(|v| v.value().to_string());
                let rec = match old {
                    Some(s) => CacheMountRecord {
                        last_used: t0,
                        ..parse("cache mount record", &s)?
                    },
                    None => CacheMountRecord {
                        dir: name.clone(),
                        size: 0,
                        created: t0,
                        last_used: t0,
                    },
                };
                t.insert(id, to_json(&rec)?.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(CacheMount { path, lock })
    }

    /// Where cache mount `id`'s directory is (whether or not it exists yet).
    pub fn cache_mount_path(&self, id: &str) -> PathBuf {
        self.root.join("cache-mounts").join(mount_name(id))
    }

    /// Fills the directory of cache mount `id` (held by the caller: [`Store::cache_mount`])
    /// from layer `blob` (in the store) if the directory is empty: extracted into a temp dir
    /// beside it, checked against `diff_id`, given the empty directory's owner and mode, and
    /// renamed over it. Returns `false`, changing nothing, when the directory is not empty
    /// (a local cache is never overwritten, even when another build fills it meanwhile).
    pub fn fill_cache_mount(&self, id: &str, blob: &Digest, diff_id: &Digest) -> Result<bool> {
        let path = self.cache_mount_path(id);
        let io = |what, p: &std::path::Path, e| StoreError::io(what, p.to_path_buf(), e);
        let is_empty = |p: &std::path::Path| -> Result<bool> {
            Ok(fs::read_dir(p)
                .map_err(|e| io("read", p, e))?
                .next()
                .is_none())
        };
        if !is_empty(&path)? {
            return Ok(false);
        }
        self.remove_restore_debris()?;
        let tmp = self.restore_dir()?;
        let f = self.open_blob(blob)?;
        let sum = whittle_layer::extract_layer(
            std::io::BufReader::with_capacity(256 * 1024, f),
            tmp.path(),
            &whittle_layer::ExtractOptions::default(),
        )
        .map_err(|e| StoreError::InvalidImage(format!("cache mount layer {blob}: {e}")))?;
        if &sum.diff_id != diff_id {
            return Err(StoreError::InvalidImage(format!(
                "cache mount layer {blob} has diff id {}, not {diff_id}",
                sum.diff_id
            )));
        }
        let meta = fs::metadata(&path).map_err(|e| io("stat", &path, e))?;
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| io("chmod", tmp.path(), e))?;
            if rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(tmp.path(), Some(meta.uid()), Some(meta.gid()))
                    .map_err(|e| io("chown", tmp.path(), e))?;
            }
        }
        // After the rename the temp dir's path is gone, and its drop has nothing to remove;
        // after a failed one, the drop removes what was extracted.
        match fs::rename(tmp.path(), &path) {
            Ok(()) => Ok(true),
            Err(e) => {
                // Filled by another build between the check and the rename: keep theirs.
                if e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error())
                {
                    Ok(false)
                } else {
                    Err(io("rename into", &path, e))
                }
            }
        }
    }

    /// A temp dir to restore a mount into, `cache-mounts/.restore-TOKEN`, locked by
    /// `locks/restore-TOKEN.lock`, which is taken *before* the dir exists: a dir whose lock is
    /// free belongs to a process that died (a flock goes with its process, even on SIGKILL).
    fn restore_dir(&self) -> Result<RestoreDir> {
        let locks = self.root.join("locks");
        let lock = tempfile::Builder::new()
            .prefix("restore-")
            .suffix(".lock")
            .tempfile_in(&locks)
            .map_err(|e| StoreError::io("create a lock in", locks.clone(), e))?;
        rustix::fs::flock(lock.as_file(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| StoreError::io("lock", lock.path().to_path_buf(), e.into()))?;
        let name = lock
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let token = name
            .strip_prefix("restore-")
            .and_then(|n| n.strip_suffix(".lock"))
            .unwrap_or(&name);
        let path = self
            .root
            .join("cache-mounts")
            .join(format!(".restore-{token}"));
        fs::create_dir(&path).map_err(|e| StoreError::io("create", path.clone(), e))?;
        Ok(RestoreDir { path, _lock: lock })
    }

    /// Removes what a restore killed part-way left in `cache-mounts/`: `.restore-*` dirs
    /// whose lock nobody holds (see [`Store::restore_dir`]). Returns them.
    pub fn remove_restore_debris(&self) -> Result<Vec<PathBuf>> {
        let parent = self.root.join("cache-mounts");
        let mut removed = Vec::new();
        let rd = match fs::read_dir(&parent) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(StoreError::io("list", parent, e)),
        };
        for e in rd {
            let e = e.map_err(|err| StoreError::io("list", parent.clone(), err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(token) = name.strip_prefix(".restore-") else {
                continue;
            };
            let lock_path = self.lock_path(&format!("restore-{token}.lock"));
            let Some(_held) = FileLock::try_exclusive(&lock_path)? else {
                continue; // a restore in progress
            };
            fs::remove_dir_all(e.path()).map_err(|err| StoreError::io("remove", e.path(), err))?;
            let _ = fs::remove_file(&lock_path);
            removed.push(e.path());
        }
        Ok(removed)
    }

    pub(crate) fn cache_mounts(&self) -> Result<Vec<(String, CacheMountRecord)>> {
        self.with_read(|tx| {
            let t = tx.open_table(CACHE_MOUNTS).map_err(db_err)?;
            let mut v = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let (k, val) = e.map_err(db_err)?;
                v.push((
                    k.value().to_string(),
                    parse("cache mount record", val.value())?,
                ));
            }
            Ok(v)
        })
    }

    pub(crate) fn remove_cache_mount_record(&self, id: &str) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(CACHE_MOUNTS)
                .map_err(db_err)?
                .remove(id)
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}
