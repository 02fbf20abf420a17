//! Snapshots: extracted layer directories keyed by chain id, prepared in a [`SnapshotDir`] and
//! recorded when committed.

use crate::error::{Result, StoreError};
use crate::store::{db_err, dir_size, now, parse, sync_dir, to_json, Lease, Store, SNAPSHOTS};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use whittle_layer::Digest;

/// An extracted snapshot directory, keyed by chain id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Chain id of the layer stack this snapshot is the top of.
    pub chain_id: Digest,
    /// Chain id of the snapshot below (None for a base layer).
    pub parent: Option<Digest>,
    /// Diff id of this snapshot's own layer.
    pub diff_id: Digest,
    /// Bytes on disk (as measured at commit).
    pub size: u64,
    /// Created (seconds since 1970).
    pub created: u64,
    /// Last used (seconds since 1970).
    pub last_used: u64,
    /// The directory's mtimes are the build's, not its layer's (clamped to the epoch): an image
    /// is then run from a copy extracted from the layer (see `Store::unpack_image`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_mtimes: bool,
}

impl Store {
    /// A fresh directory to extract or build a snapshot into; commit it with
    /// [`SnapshotDir::commit`]. Dropped uncommitted, it is removed.
    pub fn prepare_snapshot(&self) -> Result<SnapshotDir> {
        let lease = self.lease()?;
        let dir = self.root.join("snapshots");
        let tmp = tempfile::Builder::new()
            .prefix("tmp-")
            .tempdir_in(&dir)
            .map_err(|e| StoreError::io("create snapshot dir in", dir, e))?;
        Ok(SnapshotDir {
            store: self.clone(),
            dir: Some(tmp),
            local_mtimes: false,
            _lease: lease,
        })
    }

    /// Where the snapshot of a chain id lives.
    pub fn snapshot_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// A snapshot record (and marks it used).
    pub fn snapshot(&self, chain_id: &Digest) -> Result<Option<SnapshotRecord>> {
        if let Some(json) = self.pending().snapshots.get(chain_id.as_str()).cloned() {
            return Ok(Some(parse("snapshot record", &json)?));
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let rec = {
                let mut t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                let found = t
                    .get(chain_id.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                match found {
                    Some(s) => {
                        let mut r: SnapshotRecord = parse("snapshot record", &s)?;
                        r.last_used = now();
                        t.insert(chain_id.as_str(), to_json(&r)?.as_str())
                            .map_err(db_err)?;
                        Some(r)
                    }
                    None => None,
                }
            };
            tx.commit().map_err(db_err)?;
            Ok(rec)
        })
    }

    /// The snapshot and its parents, top first (for overlay lower dirs).
    pub fn snapshot_chain(&self, chain_id: &Digest) -> Result<Vec<SnapshotRecord>> {
        let mut out = Vec::new();
        let mut next = Some(chain_id.clone());
        while let Some(c) = next {
            let rec = self
                .snapshot(&c)?
                .ok_or_else(|| StoreError::InvalidImage(format!("snapshot {c} is missing")))?;
            next = rec.parent.clone();
            out.push(rec);
            if out.len() > 1000 {
                return Err(StoreError::InvalidImage(
                    "snapshot parent chain too long (cycle?)".into(),
                ));
            }
        }
        Ok(out)
    }

    /// All snapshot records.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        self.with_read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
            let pending = self.pending().snapshots.clone();
            let mut v = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let e = e.map_err(db_err)?;
                if !pending.contains_key(e.0.value()) {
                    v.push(parse("snapshot record", e.1.value())?);
                }
            }
            for json in pending.values() {
                v.push(parse("snapshot record", json)?);
            }
            Ok(v)
        })
    }

    pub(crate) fn remove_snapshot_record(&self, chain_id: &Digest) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(SNAPSHOTS)
                .map_err(db_err)?
                .remove(chain_id.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Whether a snapshot is recorded (read-only; [`Store::snapshot`] also marks it used).
    pub fn has_snapshot(&self, chain_id: &Digest) -> Result<bool> {
        if self.pending().snapshots.contains_key(chain_id.as_str()) {
            return Ok(true);
        }
        self.with_read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
            Ok(t.get(chain_id.as_str()).map_err(db_err)?.is_some())
        })
    }
}

/// A snapshot directory being filled (see [`Store::prepare_snapshot`]).
pub struct SnapshotDir {
    store: Store,
    dir: Option<tempfile::TempDir>,
    local_mtimes: bool,
    _lease: Lease,
}

impl SnapshotDir {
    /// Records that the directory's mtimes differ from its layer tar's (see
    /// [`SnapshotRecord::local_mtimes`]).
    pub fn mark_local_mtimes(&mut self) {
        self.local_mtimes = true;
    }

    /// The directory to fill.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| Path::new("/nonexistent"))
    }

    /// Publishes the directory as the snapshot of `chain_id` on top of `parent`. If another
    /// process committed the same chain id first, this one is discarded and theirs kept.
    pub fn commit(
        mut self,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
    ) -> Result<SnapshotRecord> {
        let Some(dir) = self.dir.take() else {
            return Err(StoreError::InvalidImage(
                "snapshot already committed".into(),
            ));
        };
        let size = dir_size(dir.path());
        // The directory may have been filled through a `volatile` overlay (the runtime's RUN
        // steps) or by plain writes: make its content durable before the record points at it.
        let fd = File::open(dir.path())
            .map_err(|e| StoreError::io("open", dir.path().to_path_buf(), e))?;
        rustix::fs::syncfs(&fd)
            .map_err(|e| StoreError::io("syncfs", dir.path().to_path_buf(), e.into()))?;
        let tmp = dir.keep();
        let dest = self.store.snapshot_path(chain_id);
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            Err(_) if dest.is_dir() => {
                // The directory that stays is the one already there: its record says what it is.
                let _ = fs::remove_dir_all(&tmp);
                if let Some(old) = self.store.snapshot(chain_id)? {
                    self.local_mtimes = old.local_mtimes;
                }
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(StoreError::io("rename into", dest, e));
            }
        }
        let t0 = now();
        let rec = SnapshotRecord {
            chain_id: chain_id.clone(),
            parent: parent.cloned(),
            diff_id: diff_id.clone(),
            size,
            created: t0,
            last_used: t0,
            local_mtimes: self.local_mtimes,
        };
        // In a batch, the directory entry is synced when the batch writes the record.
        let Some(json) = self.store.defer(true, chain_id.as_str(), to_json(&rec)?) else {
            return Ok(rec);
        };
        sync_dir(&self.store.root.join("snapshots"))?;
        self.store.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(SNAPSHOTS)
                .map_err(db_err)?
                .insert(chain_id.as_str(), json.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(rec)
    }
}
