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

impl Store {
    /// The persistent directory of cache mount `id` (created on first use). With `exclusive`,
    /// waits for and holds a lock on it (`sharing=locked`).
    pub fn cache_mount(&self, id: &str, exclusive: bool) -> Result<CacheMount> {
        let name = Digest::of_bytes(id.as_bytes()).hex()[..32].to_string();
        let lock = if exclusive {
            Some(FileLock::exclusive(
                &self.lock_path(&format!("cache-{name}.lock")),
            )?)
        } else {
            None
        };
        let path = self.root.join("cache-mounts").join(&name);
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
