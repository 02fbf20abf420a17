//! The [`Store`] handle: opening a root, the metadata database, leases and write batching.

use crate::error::{db, Result, StoreError};
use crate::images::index_json;
use crate::lock::FileLock;
use redb::{ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
pub(crate) const IMAGES: TableDefinition<&str, &str> = TableDefinition::new("images");
pub(crate) const SNAPSHOTS: TableDefinition<&str, &str> = TableDefinition::new("snapshots");
pub(crate) const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");
pub(crate) const CACHE_MOUNTS: TableDefinition<&str, &str> = TableDefinition::new("cache_mounts");
pub(crate) const INDEXES: TableDefinition<&str, &str> = TableDefinition::new("indexes");

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The default store root: `$WHITTLE_ROOT`, else `/var/lib/whittle` for root, else
/// `$XDG_DATA_HOME/whittle` (`~/.local/share/whittle`).
pub fn default_root() -> PathBuf {
    root_from(
        std::env::var_os("WHITTLE_ROOT"),
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
}

fn root_from(
    whittle_root: Option<std::ffi::OsString>,
    is_root: bool,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(r) = whittle_root.filter(|v| !v.is_empty()) {
        return PathBuf::from(r);
    }
    if is_root {
        return PathBuf::from("/var/lib/whittle");
    }
    if let Some(x) = xdg_data_home.filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("whittle");
    }
    let home = home
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/whittle")
}

/// A shared lease on the store: while any is held, `prune` and temp-file cleanup wait, so blobs
/// and snapshots written under it survive until they are referenced.
#[derive(Debug)]
pub struct Lease {
    _lock: FileLock,
}

/// A content store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) root: PathBuf,
    /// Build-cache records held back by a [`WriteBatch`] (shared by clones of this handle).
    pending: Arc<Mutex<Pending>>,
    /// How blobs recorded as remote are fetched (`remote_blobs.rs`).
    pub(crate) fetcher: crate::remote_blobs::Fetcher,
    /// The metadata database's read handle, kept open for every lookup (shared by clones).
    meta: Arc<Meta>,
}

/// The metadata database as this [`Store`] (and its clones) holds it between transactions: one
/// read-only handle, opened by the first lookup and used by every later one, and how many times
/// the database was opened each way (for tests: `Store::db_opens`).
///
/// # Why one handle is safe
///
/// Every open of `meta.redb`, read-only or read-write, uses redb's
/// [`ConcurrencyMode::SingleWriter`]. In that mode a read-only handle shares the file with a
/// writer in any process and follows its commits (redb's docs on `ConcurrencyMode` and
/// `ReadOnlyDatabase`):
///
/// - `begin_read` reads the file's header under redb's shared header lock (an OFD byte-range
///   lock; a commit writes the header under it exclusively), takes the latest committed
///   transaction, and drops the handle's page cache if that transaction is not the one the cache
///   was filled from (`TransactionalMemory::read_snapshot_from_file`,
///   `PagedCachedFile::update_transaction_id`). A lookup therefore sees every commit made
///   before it began: this process's own (`with_db`, `flush_writes`) and other processes'.
///   Nothing is stale, so there is nothing to invalidate or re-validate here. Records a
///   [`WriteBatch`] still holds back are served from `pending` by the lookups that read them
///   (`get_cache`, `has_snapshot`, `snapshots`), as before.
/// - While a read transaction is live, the handle holds a shared lock on the byte that stands
///   for its transaction, and a writer does not reuse the pages of a transaction a reader holds.
///   Between lookups the handle holds no transaction, so it pins nothing.
/// - The handle's own open-time locks (its protocol-generation byte and the shared reader byte,
///   both shared) do not conflict with a single-writer writer's (the shared writer byte and the
///   writer byte, exclusive): a writer in another whittle process opens and commits while this
///   handle stays open, and waits for nothing it holds. `db.lock` is not held by the handle, so
///   writers wait only for each other, as before. (Kept open in redb's default
///   `ExclusiveWriter` mode, a read-only handle would make every other process's write fail
///   with `DatabaseAlreadyOpen` for the whole build: that mode locks the whole file.)
/// - Writers still serialize on the exclusive `db.lock` (index.json's temp files belong to it,
///   and a single-writer open refuses a second writer rather than waiting for it).
///
/// A killed writer leaves its commit unpublished and the recovery flag set without a live
/// writer behind it. A handle already open keeps reading the last published commit (the header
/// slots are checksummed, and the dead writer's pages belong to no published tree). A new
/// read-only open refuses such a file (`RepairAborted`); then, as before, `with_read` opens the
/// database read-write under the exclusive `db.lock`, which repairs it, and the next lookup
/// opens the handle again. If `begin_read` itself fails, the handle is dropped and the lookup
/// takes the same read-write path.
///
/// Older whittle binaries open the file in `ExclusiveWriter` mode: their readers share it with
/// this handle, but while it is open their writers are refused (`DatabaseAlreadyOpen`), an
/// error rather than a wait or a corruption. Run one version of whittle on a store at a time.
#[derive(Default)]
pub(crate) struct Meta {
    read: Mutex<Option<Arc<ReadOnlyDatabase>>>,
    read_opens: AtomicU64,
    write_opens: AtomicU64,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("read_opens", &self.read_opens.load(Ordering::Relaxed))
            .field("write_opens", &self.write_opens.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How every handle on `meta.redb` is opened: see [`Meta`].
fn db_builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    b
}

/// Database writes deferred while a [`WriteBatch`] is open: JSON records by key.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batches: usize,
    pub(crate) cache: BTreeMap<String, String>,
    pub(crate) snapshots: BTreeMap<String, String>,
    /// When the oldest unwritten record was queued.
    since: Option<Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.cache.is_empty() && self.snapshots.is_empty()
    }
}

/// Holds back the build cache's database writes (cache records and snapshot records) and
/// writes them in one transaction on [`WriteBatch::finish`], on [`Store::flush_writes`] or
/// when dropped. Each read-write open of the database costs several fsyncs, and a build step
/// made three: a cold build of 36 small steps spent 3 of its 3.8 seconds in them.
///
/// Safe against crashes: a snapshot directory is complete before it is renamed into place, and
/// a record written before a crash of the kernel is checked before its snapshot is used again
/// (see `snapshots`). A build killed before it flushed leaves complete snapshot directories
/// without records, which the next build re-records and `prune` removes. Other processes see
/// the records once they are flushed.
#[derive(Debug)]
pub struct WriteBatch {
    store: Store,
    done: bool,
}

impl WriteBatch {
    /// Writes what is pending and closes the batch.
    pub fn finish(mut self) -> Result<()> {
        self.done = true;
        let r = self.store.flush_writes();
        self.store.end_batch();
        r
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.store.flush_writes();
            self.store.end_batch();
        }
    }
}

pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| StoreError::io("create temp file in", dir, e))?;
    tmp.write_all(data)
        .map_err(|e| StoreError::io("write", tmp.path().to_path_buf(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| StoreError::io("fsync", tmp.path().to_path_buf(), e))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
        .map_err(|e| StoreError::io("chmod", tmp.path().to_path_buf(), e))?;
    let dest = dir.join(name);
    tmp.persist(&dest)
        .map_err(|e| StoreError::io("rename into", dest.clone(), e.error))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync dir", dir, e))
}

/// Size of a directory tree on disk (apparent sizes, hard links counted once).
pub(crate) fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
            total += m.len();
        }
    }
    total
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::json(what, e))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::json("record", e))
}

impl Store {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let s = Store {
            root,
            pending: Arc::default(),
            fetcher: Default::default(),
            meta: Arc::default(),
        };
        for d in [
            s.blob_dir(),
            s.tmp_dir(),
            s.root.join("snapshots"),
            s.root.join("cache-mounts"),
            s.root.join("locks"),
        ] {
            fs::create_dir_all(&d).map_err(|e| StoreError::io("create", d.clone(), e))?;
        }
        if !s.root.join("oci-layout").exists() || !s.root.join("index.json").exists() {
            // Temp files in the root belong to the database lock (see remove_root_temp_files).
            let _db = FileLock::exclusive(&s.lock_path("db.lock"))?;
            if !s.root.join("oci-layout").exists() {
                write_atomic(&s.root, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            if !s.root.join("index.json").exists() {
                write_atomic(&s.root, "index.json", &index_json(Vec::new())?)?;
            }
        }
        if !s.root.join("meta.redb").exists() {
            s.create_database()?;
        }
        // Create missing tables; when they all exist (every open but the first), a read
        // transaction is enough and nothing is fsynced.
        let complete = s
            .with_read(|tx| {
                Ok([TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS, INDEXES]
                    .into_iter()
                    .all(|t| tx.open_table(t).is_ok()))
            })
            .unwrap_or(false);
        if complete {
            return Ok(s);
        }
        s.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            for t in [TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS, INDEXES] {
                tx.open_table(t).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(s)
    }

    /// Creates the metadata database whole, or not at all: built under a temp name (one of the
    /// root's `.tmp-*` files, which belong to the db lock) and renamed into place. redb creating
    /// `meta.redb` in place and being killed part-way leaves a file it cannot open again.
    fn create_database(&self) -> Result<()> {
        let _db = FileLock::exclusive(&self.lock_path("db.lock"))?;
        let dest = self.root.join("meta.redb");
        if dest.exists() {
            return Ok(());
        }
        let tmp = self
            .root
            .join(format!(".tmp-meta-{}.redb", std::process::id()));
        let _ = fs::remove_file(&tmp);
        {
            let db = db_builder().create(&tmp).map_err(db_err)?;
            let tx = db.begin_write().map_err(db_err)?;
            for t in [TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS, INDEXES] {
                tx.open_table(t).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
        }
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io("fsync", tmp.clone(), e))?;
        fs::rename(&tmp, &dest).map_err(|e| StoreError::io("rename into", dest.clone(), e))?;
        sync_dir(&self.root)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn lock_path(&self, name: &str) -> PathBuf {
        self.root.join("locks").join(name)
    }

    /// Runs `f` with the metadata database opened read-write under the exclusive `db.lock`
    /// (held only for `f`). Opening it that way costs several fsyncs, so lookups use
    /// [`Store::with_read`].
    pub(crate) fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        let _lock = FileLock::exclusive(&self.lock_path("db.lock"))?;
        self.meta.write_opens.fetch_add(1, Ordering::Relaxed);
        let db = db_builder()
            .create(self.root.join("meta.redb"))
            .map_err(db_err)?;
        f(&db)
    }

    /// Runs `f` in a read transaction of the database's read handle, opened read-only by the
    /// first lookup and kept for the next ones (see [`Meta`] for why that is safe alongside
    /// writers): a no-change rebuild opens the database once, and nothing is written, fsynced
    /// or locked against writers. A database that is missing, or needs the recovery a killed
    /// writer leaves behind, is opened read-write instead, which repairs it.
    pub(crate) fn with_read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T>,
    ) -> Result<T> {
        if let Some(db) = self.read_handle() {
            match db.begin_read() {
                Ok(tx) => return f(&tx),
                Err(_) => self.drop_read_handle(&db),
            }
        }
        self.with_db(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            f(&tx)
        })
    }

    /// The read handle, opened now if there is none; `None` if it cannot be opened read-only.
    fn read_handle(&self) -> Option<Arc<ReadOnlyDatabase>> {
        let mut held = self.meta.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = &*held {
            return Some(db.clone());
        }
        self.meta.read_opens.fetch_add(1, Ordering::Relaxed);
        let db = Arc::new(
            db_builder()
                .open_read_only(self.root.join("meta.redb"))
                .ok()?,
        );
        *held = Some(db.clone());
        Some(db)
    }

    /// Forgets the read handle `db` (unless another thread already replaced it).
    fn drop_read_handle(&self, db: &Arc<ReadOnlyDatabase>) {
        let mut held = self.meta.read.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_ref().is_some_and(|h| Arc::ptr_eq(h, db)) {
            *held = None;
        }
    }

    /// How many times this store (with its clones) opened the metadata database: read-only (the
    /// read handle) and read-write. For tests and measurements.
    #[doc(hidden)]
    pub fn db_opens(&self) -> (u64, u64) {
        (
            self.meta.read_opens.load(Ordering::Relaxed),
            self.meta.write_opens.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts deferring build-cache writes (see [`WriteBatch`]).
    pub fn batch_writes(&self) -> WriteBatch {
        self.pending().batches += 1;
        WriteBatch {
            store: self.clone(),
            done: false,
        }
    }

    fn end_batch(&self) {
        let mut p = self.pending();
        p.batches = p.batches.saturating_sub(1);
    }

    /// Queues a record if a batch is open; gives it back to be written now otherwise.
    pub(crate) fn defer(&self, snapshot: bool, key: &str, json: String) -> Option<String> {
        let mut p = self.pending();
        if p.batches == 0 {
            return Some(json);
        }
        p.since.get_or_insert_with(Instant::now);
        let map = if snapshot {
            &mut p.snapshots
        } else {
            &mut p.cache
        };
        map.insert(key.to_string(), json);
        None
    }

    /// Writes the records a [`WriteBatch`] holds back, in one transaction, after syncing the
    /// snapshot directory entries they point at.
    pub fn flush_writes(&self) -> Result<()> {
        let (cache, snapshots) = {
            let mut p = self.pending();
            if p.is_empty() {
                return Ok(());
            }
            p.since = None;
            (
                std::mem::take(&mut p.cache),
                std::mem::take(&mut p.snapshots),
            )
        };
        // Without a boot id, snapshot directories are synced, and so must their entries be
        // before records point at them (see `snapshots`).
        let entries = match crate::snapshots::boot_id() {
            Some(_) => Ok(()),
            None => sync_dir(&self.root.join("snapshots")),
        };
        let written = entries.and_then(|()| {
            self.with_db(|db| {
                let tx = db.begin_write().map_err(db_err)?;
                {
                    let mut t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                    for (k, v) in &snapshots {
                        t.insert(k.as_str(), v.as_str()).map_err(db_err)?;
                    }
                    let mut t = tx.open_table(CACHE).map_err(db_err)?;
                    for (k, v) in &cache {
                        t.insert(k.as_str(), v.as_str()).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)?;
                Ok(())
            })
        });
        if written.is_err() {
            // Keep them for the next try; newer records of the same keys win.
            let mut p = self.pending();
            p.since.get_or_insert_with(Instant::now);
            for (k, v) in cache {
                p.cache.entry(k).or_insert(v);
            }
            for (k, v) in snapshots {
                p.snapshots.entry(k).or_insert(v);
            }
        }
        written
    }

    /// [`Store::flush_writes`] if the oldest held-back record is older than `age`, so that a
    /// long build loses little of its cache if it is killed.
    pub fn flush_writes_if_older(&self, age: Duration) -> Result<()> {
        let due = self.pending().since.is_some_and(|t| t.elapsed() >= age);
        if due {
            self.flush_writes()
        } else {
            Ok(())
        }
    }

    /// Takes a shared lease (see [`Lease`]).
    pub fn lease(&self) -> Result<Lease> {
        Ok(Lease {
            _lock: FileLock::shared(&self.lock_path("gc.lock"))?,
        })
    }

    /// Removes temp files that `write_atomic` leaves in the store root when killed. Those are
    /// made only under the exclusive database lock, so holding it here means none is in use.
    pub(crate) fn remove_root_temp_files(&self) -> Result<Vec<PathBuf>> {
        let _db = FileLock::exclusive(&self.lock_path("db.lock"))?;
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))? {
            let e = e.map_err(|err| StoreError::io("list", &self.root, err))?;
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                match fs::remove_file(e.path()) {
                    Ok(()) => out.push(e.path()),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(StoreError::io("remove", e.path(), err)),
                }
            }
        }
        Ok(out)
    }
}

pub(crate) fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    db(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_oci::Reference;

    #[test]
    fn default_root_rules() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            root_from(s("/w"), true, s("/x"), s("/h")),
            PathBuf::from("/w")
        );
        assert_eq!(
            root_from(s(""), true, s("/x"), s("/h")),
            PathBuf::from("/var/lib/whittle")
        );
        assert_eq!(
            root_from(None, false, s("/x"), s("/h")),
            PathBuf::from("/x/whittle")
        );
        assert_eq!(
            root_from(None, false, None, s("/h")),
            PathBuf::from("/h/.local/share/whittle")
        );
    }

    #[test]
    fn lookups_share_one_read_handle_that_sees_this_process_writes() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let clone = s.clone();
        for i in 0..20 {
            assert!(clone.get_cache(&format!("k{i}")).unwrap().is_none());
        }
        // The open's table check opened the handle; twenty lookups, on a clone, reused it.
        assert_eq!(s.db_opens(), (1, 0));
        s.put_cache("k1", "r1", None).unwrap();
        assert_eq!(s.get_cache("k1").unwrap().unwrap().result, "r1");
        s.put_cache("k1", "r2", None).unwrap();
        assert_eq!(clone.get_cache("k1").unwrap().unwrap().result, "r2");
        // Records a batch holds back are served from it, and the handle sees them once flushed.
        let batch = s.batch_writes();
        s.put_cache("k2", "held", None).unwrap();
        assert_eq!(s.get_cache("k2").unwrap().unwrap().result, "held");
        batch.finish().unwrap();
        assert_eq!(s.get_cache("k2").unwrap().unwrap().result, "held");
        assert_eq!(s.db_opens(), (1, 3));
    }

    #[test]
    fn another_handle_writes_while_this_one_is_open_and_is_seen() {
        // A second `Store` opens its own files, so its locks meet this one's as another
        // process's would (OFD byte-range locks and flocks belong to the open file).
        let t = tempfile::tempdir().unwrap();
        let reader = Store::open(t.path()).unwrap();
        assert!(reader.get_cache("k").unwrap().is_none());
        let writer = Store::open(t.path()).unwrap();
        let (done, rx) = std::sync::mpsc::channel();
        let w = writer.clone();
        let handle = std::thread::spawn(move || {
            let r = w.put_cache("k", "from another handle", None);
            done.send(()).unwrap();
            r
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "a writer waited for an open read handle"
        );
        // In redb's default mode this write fails with DatabaseAlreadyOpen.
        handle.join().unwrap().unwrap();
        assert_eq!(
            reader.get_cache("k").unwrap().unwrap().result,
            "from another handle"
        );
        writer.remove_cache_records(&["k".to_string()]).unwrap();
        assert!(reader.get_cache("k").unwrap().is_none());
        assert_eq!(reader.db_opens(), (1, 0));
    }

    #[test]
    fn lookups_follow_a_concurrent_writer_in_commit_order() {
        let t = tempfile::tempdir().unwrap();
        let reader = Store::open(t.path()).unwrap();
        let writer = Store::open(t.path()).unwrap();
        const N: usize = 60;
        let w = std::thread::spawn(move || {
            for i in 0..N {
                writer.put_cache(&format!("k{i:03}"), "r", None).unwrap();
            }
        });
        // Each commit adds the next key: a lookup that sees key i sees every earlier one.
        let mut seen = 0;
        let mut lookups = 0;
        while seen < N {
            while seen < N && reader.get_cache(&format!("k{seen:03}")).unwrap().is_some() {
                seen += 1;
            }
            let all = reader.cache_records().unwrap();
            assert!(all.len() >= seen);
            assert!(all
                .iter()
                .map(|(k, _)| k.clone())
                .eq((0..all.len()).map(|i| format!("k{i:03}"))));
            lookups += 1;
            assert!(lookups < 1_000_000, "the writer's records never showed");
        }
        w.join().unwrap();
        assert_eq!(reader.cache_records().unwrap().len(), N);
        assert_eq!(reader.db_opens(), (1, 0));
    }

    #[test]
    fn fsck_reports_a_tag_whose_image_is_gone_and_prune_keeps_index_temp_files_safe() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let cfg =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let img = s.write_image(cfg, &[]).unwrap();
        let r = Reference::parse("x/y:1").unwrap();
        s.tag(&r, &img.manifest).unwrap();
        assert!(s.fsck(false).unwrap().is_clean());
        // What the prune race used to leave: the tag committed, the image record removed.
        s.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(IMAGES)
                .map_err(db_err)?
                .remove(img.manifest.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .unwrap();
        let report = s.fsck(false).unwrap();
        assert!(!report.is_clean());
        assert_eq!(
            report.dangling_tags,
            vec![("x/y:1".to_string(), img.manifest.clone())]
        );
        // A temp file of index.json being written (db lock held) is not prune's to take.
        let lock = FileLock::exclusive(&s.lock_path("db.lock")).unwrap();
        std::fs::write(t.path().join(".tmp-inuse"), b"{}").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let root = t.path().to_path_buf();
        let pruner = std::thread::spawn(move || {
            let s = Store::open(root).unwrap();
            let r = s
                .prune(&crate::PruneOptions::default())
                .map(|r| r.temp_removed);
            tx.send(()).unwrap();
            r
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "prune did not wait for the db lock");
        assert!(t.path().join(".tmp-inuse").exists());
        drop(lock);
        // Left behind by a killed writer, it goes once the lock is free.
        assert!(pruner.join().unwrap().unwrap() >= 1);
        assert!(!t.path().join(".tmp-inuse").exists());
    }
}
