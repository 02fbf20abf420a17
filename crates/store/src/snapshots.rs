//! Snapshots: extracted layer directories keyed by chain id, prepared in a [`SnapshotDir`] and
//! recorded when committed.
//!
//! ## Durability without syncing the filesystem
//!
//! A committed snapshot directory is not synced. Its files are in the page cache, which a
//! killed process does not lose: only a crash of the kernel (or of the machine) does, and that
//! is a new boot. So a record notes the boot that wrote its directory
//! ([`SnapshotRecord::boot`]), and a snapshot is trusted as it is during that boot. Under
//! another boot, it is checked once before use: a snapshot a build made is hashed again and
//! must give its diff id (then it is on disk, and the record forgets the boot); an extracted
//! one, whose blob is durable, is dropped and extracted again when needed. A snapshot
//! directory without a record that a previous boot left behind is replaced, never trusted.
//!
//! Before, each commit called `syncfs`, which waits for every dirty page of the filesystem,
//! other processes' and earlier builds' included: on a busy machine every step ran as slow as
//! the slowest writer. Now a build's cost is what it writes; the kernel writes it back in the
//! background. (Blobs and database records are still fsynced one by one: they are few, and
//! they are the store's truth.)

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
    /// The boot (`/proc/sys/kernel/random/boot_id`) whose page cache may still hold the
    /// directory's data; absent once it is known to be on disk (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// How to check the directory under another boot: the build epoch its layer was written
    /// with, for a snapshot a build made (its diff id is then recomputed from the directory).
    /// Absent for an extracted layer, which is extracted again instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// This boot's id; `None` where the kernel does not say (then every commit syncs, as before).
pub(crate) fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// When this boot started (seconds since 1970), from `/proc/stat`'s `btime`.
fn boot_time() -> Option<u64> {
    #[cfg(test)]
    {
        let t = tests::BOOT_TIME.load(std::sync::atomic::Ordering::Relaxed);
        if t != 0 {
            return Some(t);
        }
    }
    static BTIME: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BTIME.get_or_init(|| {
        fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
    })
}

impl SnapshotRecord {
    /// Whether the directory can be used as it is: on disk, or written during this boot.
    fn trusted_now(&self) -> bool {
        match &self.boot {
            None => true,
            Some(b) => boot_id() == Some(b.as_str()),
        }
    }
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
            epoch: None,
            _lease: lease,
        })
    }

    /// Where the snapshot of a chain id lives.
    pub fn snapshot_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// A snapshot record (and marks it used). A snapshot written under another boot is checked
    /// first (see the module docs); one that cannot be trusted is dropped and `None` returned.
    pub fn snapshot(&self, chain_id: &Digest) -> Result<Option<SnapshotRecord>> {
        if let Some(json) = self.pending().snapshots.get(chain_id.as_str()).cloned() {
            return Ok(Some(parse("snapshot record", &json)?));
        }
        let rec = self.touch_snapshot(chain_id)?;
        match rec {
            Some(r) if !r.trusted_now() => self.check_snapshot(r),
            other => Ok(other),
        }
    }

    /// After a crash of the kernel: a snapshot written under another boot is hashed again
    /// (a build's) and recorded as on disk, or dropped (an extracted one, or one whose files
    /// no longer give its diff id) with its directory moved aside.
    fn check_snapshot(&self, mut rec: SnapshotRecord) -> Result<Option<SnapshotRecord>> {
        let dir = self.snapshot_path(&rec.chain_id);
        let good = rec.epoch.is_some_and(|epoch| {
            let opts = whittle_layer::WriteOptions {
                compression: whittle_layer::Compression::None,
                threads: 1,
                epoch,
                source: whittle_layer::SourceKind::OverlayUpper,
                exclude: Vec::new(),
            };
            dir.is_dir()
                && whittle_layer::write_layer(&dir, &opts, std::io::sink())
                    .is_ok_and(|(info, _)| info.diff_id == rec.diff_id)
        });
        if good {
            rec.boot = None;
            self.write_snapshot_record(&rec)?;
            return Ok(Some(rec));
        }
        self.remove_snapshot_record(&rec.chain_id)?;
        self.move_aside(&dir)?;
        Ok(None)
    }

    /// Moves a snapshot directory that cannot be trusted out of the way (prune removes it: it
    /// has no record). Renamed, not removed: nothing of this boot uses it, but removing a big
    /// tree would hold up the build that found it.
    fn move_aside(&self, dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let aside = self.root.join("snapshots").join(format!(
            "stale-{}-{}",
            std::process::id(),
            STALE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        match fs::rename(dir, &aside) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("rename", dir.to_path_buf(), e)),
        }
    }

    fn write_snapshot_record(&self, rec: &SnapshotRecord) -> Result<()> {
        let json = to_json(rec)?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(SNAPSHOTS)
                .map_err(db_err)?
                .insert(rec.chain_id.as_str(), json.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// The record, marked used.
    fn touch_snapshot(&self, chain_id: &Digest) -> Result<Option<SnapshotRecord>> {
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

    /// Whether a snapshot is recorded and can be used (read-only, unless it was written under
    /// another boot and must be checked: see [`Store::snapshot`]).
    pub fn has_snapshot(&self, chain_id: &Digest) -> Result<bool> {
        if self.pending().snapshots.contains_key(chain_id.as_str()) {
            return Ok(true);
        }
        let rec = self.with_read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
            let v = t.get(chain_id.as_str()).map_err(db_err)?;
            v.map(|v| parse::<SnapshotRecord>("snapshot record", v.value()))
                .transpose()
        })?;
        match rec {
            None => Ok(false),
            Some(r) if r.trusted_now() => Ok(true),
            Some(r) => Ok(self.check_snapshot(r)?.is_some()),
        }
    }
}

static STALE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Store {
    /// Whether an existing snapshot directory that a commit ran into must be replaced: it has
    /// no trusted record and was put there before this boot began (by a build that a crash
    /// stopped before its record was written). One of this boot is kept: it is complete (it
    /// was renamed into place whole) and its data is in the page cache, wherever it stands on
    /// disk; its writer may be about to record it.
    fn stale_dir(&self, chain_id: &Digest, dir: &Path) -> Result<bool> {
        if self.has_snapshot(chain_id)? {
            return Ok(false);
        }
        let (Some(btime), Ok(md)) = (boot_time(), fs::symlink_metadata(dir)) else {
            return Ok(false);
        };
        use std::os::unix::fs::MetadataExt;
        Ok(md.ctime() < btime as i64)
    }
}

/// A snapshot directory being filled (see [`Store::prepare_snapshot`]).
pub struct SnapshotDir {
    store: Store,
    dir: Option<tempfile::TempDir>,
    local_mtimes: bool,
    epoch: Option<u64>,
    _lease: Lease,
}

impl SnapshotDir {
    /// Records that the directory's mtimes differ from its layer tar's (see
    /// [`SnapshotRecord::local_mtimes`]).
    pub fn mark_local_mtimes(&mut self) {
        self.local_mtimes = true;
    }

    /// Records that the diff id is that of the directory written as a layer with this epoch
    /// (see [`SnapshotRecord::epoch`]): a build's snapshot, which can be checked again.
    pub fn mark_built(&mut self, epoch: u64) {
        self.epoch = Some(epoch);
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
        let boot = boot_id();
        if boot.is_none() {
            // No boot id to tell a crash by: the content is made durable before the record
            // points at it, whatever that costs.
            let fd = File::open(dir.path())
                .map_err(|e| StoreError::io("open", dir.path().to_path_buf(), e))?;
            rustix::fs::syncfs(&fd)
                .map_err(|e| StoreError::io("syncfs", dir.path().to_path_buf(), e.into()))?;
        }
        let tmp = dir.keep();
        let dest = self.store.snapshot_path(chain_id);
        let mut placed = fs::rename(&tmp, &dest);
        if placed.is_err() && dest.is_dir() {
            // (Checking its record may already have moved an untrustworthy one aside.)
            if self.store.stale_dir(chain_id, &dest)? || !dest.exists() {
                self.store.move_aside(&dest)?;
                placed = fs::rename(&tmp, &dest);
            }
        }
        match placed {
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
            boot: boot.map(str::to_string),
            epoch: self.epoch,
        };
        // In a batch, the directory entry is synced when the batch writes the record.
        let Some(json) = self.store.defer(true, chain_id.as_str(), to_json(&rec)?) else {
            return Ok(rec);
        };
        if boot.is_none() {
            sync_dir(&self.store.root.join("snapshots"))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Makes the boot start at this time (0: the real one).
    pub(super) static BOOT_TIME: AtomicU64 = AtomicU64::new(0);

    fn built(s: &Store, content: &str, epoch: Option<u64>) -> (SnapshotRecord, PathBuf) {
        let mut sd = s.prepare_snapshot().unwrap();
        fs::write(sd.path().join("f"), content).unwrap();
        let opts = whittle_layer::WriteOptions {
            compression: whittle_layer::Compression::None,
            threads: 1,
            epoch: epoch.unwrap_or(0),
            source: whittle_layer::SourceKind::OverlayUpper,
            exclude: Vec::new(),
        };
        let (info, _) = whittle_layer::write_layer(sd.path(), &opts, std::io::sink()).unwrap();
        if let Some(e) = epoch {
            sd.mark_built(e);
        }
        let chain = whittle_layer::chain_id(None, &info.diff_id);
        let rec = sd.commit(&chain, None, &info.diff_id).unwrap();
        let dir = s.snapshot_path(&chain);
        (rec, dir)
    }

    /// The record as a crash of the kernel leaves it: written under another boot.
    fn from_another_boot(s: &Store, rec: &SnapshotRecord) {
        let mut r = rec.clone();
        r.boot = Some("another-boot".into());
        s.write_snapshot_record(&r).unwrap();
    }

    fn stale_dirs(s: &Store) -> usize {
        fs::read_dir(s.root.join("snapshots"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("stale-")
            })
            .count()
    }

    #[test]
    fn a_commit_records_its_boot_and_is_trusted_in_it() {
        if boot_id().is_none() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (rec, _) = built(&s, "a", Some(0));
        assert_eq!(rec.boot.as_deref(), boot_id());
        assert!(s.has_snapshot(&rec.chain_id).unwrap());
    }

    #[test]
    fn after_a_crash_a_built_snapshot_is_hashed_again_and_kept_if_whole() {
        if boot_id().is_none() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (rec, dir) = built(&s, "whole", Some(0));
        from_another_boot(&s, &rec);
        assert!(s.has_snapshot(&rec.chain_id).unwrap());
        // Checked once: the record now says it is on disk.
        let again = s.snapshot(&rec.chain_id).unwrap().unwrap();
        assert_eq!(again.boot, None);
        assert!(dir.is_dir());
    }

    #[test]
    fn after_a_crash_a_torn_or_extracted_snapshot_is_dropped_and_replaced() {
        if boot_id().is_none() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        // A build's snapshot whose file lost its data in the crash.
        let (rec, dir) = built(&s, "data", Some(0));
        from_another_boot(&s, &rec);
        fs::write(dir.join("f"), "").unwrap();
        assert!(!s.has_snapshot(&rec.chain_id).unwrap());
        assert!(!dir.exists(), "moved aside");
        assert_eq!(stale_dirs(&s), 1);
        // Made again, it goes where the torn one was.
        let (again, dir) = built(&s, "data", Some(0));
        assert_eq!(again.chain_id, rec.chain_id);
        assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "data");
        // An extracted layer (no epoch) cannot be checked: extracted again.
        let (rec, _) = built(&s, "extracted", None);
        from_another_boot(&s, &rec);
        assert_eq!(s.snapshot(&rec.chain_id).unwrap(), None);
        // prune removes what was moved aside.
        s.prune(&crate::PruneOptions::default()).unwrap();
        assert_eq!(stale_dirs(&s), 0);
    }

    #[test]
    fn an_unrecorded_dir_of_an_earlier_boot_is_replaced_one_of_this_boot_kept() {
        if boot_id().is_none() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (rec, dir) = built(&s, "x", Some(0));
        // As a build killed before it wrote its record leaves it, with other content (it
        // cannot have, in this boot: the point is which one stays).
        s.remove_snapshot_record(&rec.chain_id).unwrap();
        fs::write(dir.join("marker"), "theirs").unwrap();
        let (_, dir) = built(&s, "x", Some(0));
        assert!(dir.join("marker").exists(), "this boot's directory is kept");
        s.remove_snapshot_record(&rec.chain_id).unwrap();
        // The same, left by an earlier boot: this boot began after it was made.
        let later = now() + 10;
        BOOT_TIME.store(later, Ordering::Relaxed);
        let (_, dir) = built(&s, "x", Some(0));
        BOOT_TIME.store(0, Ordering::Relaxed);
        assert!(
            !dir.join("marker").exists(),
            "an earlier boot's directory is replaced"
        );
        assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "x");
    }
}
