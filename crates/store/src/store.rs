//! The [`Store`]: blobs, images, tags, snapshots, cache records and cache mounts.

use crate::error::{db, Result, StoreError};
use crate::lock::FileLock;
use crate::reference::Reference;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use whittle_layer::{Digest, HashingWriter};

/// OCI image manifest media type.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest (accepted on input).
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (accepted on input).
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest, config or index we read into memory.
pub const MAX_DOCUMENT: u64 = 8 << 20;

const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
const IMAGES: TableDefinition<&str, &str> = TableDefinition::new("images");
const SNAPSHOTS: TableDefinition<&str, &str> = TableDefinition::new("snapshots");
const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");
const CACHE_MOUNTS: TableDefinition<&str, &str> = TableDefinition::new("cache_mounts");

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

#[cfg(test)]
mod tests {
    use super::*;

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

/// A stored image: its manifest and what the manifest references.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Digest of the manifest blob (what registries call the image digest).
    pub manifest: Digest,
    /// Media type of the manifest.
    pub media_type: String,
    /// Size of the manifest blob.
    pub manifest_size: u64,
    /// Digest of the config blob (the image id).
    pub config: Digest,
    /// Layer blob digests, bottom first.
    pub layers: Vec<Digest>,
    /// Manifest + config + layer blob sizes.
    pub size: u64,
    /// `created` of the config, if any.
    pub created: Option<String>,
    /// When it entered this store (seconds since 1970).
    pub added: u64,
}

impl ImageRecord {
    /// Every blob this image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.manifest)
            .chain(std::iter::once(&self.config))
            .chain(self.layers.iter())
    }
    /// The image id (config digest), as docker shows it.
    pub fn id(&self) -> &Digest {
        &self.config
    }
}

/// An image with the tags pointing at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedImage {
    /// The image.
    pub image: ImageRecord,
    /// Its tags (`repository:tag`), sorted.
    pub tags: Vec<String>,
}

/// One line of an image's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When the step ran.
    pub created: Option<String>,
    /// The command that made it.
    pub created_by: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// The layer it produced (None for metadata-only steps).
    pub layer: Option<Digest>,
    /// Size of that layer blob.
    pub size: u64,
}

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

/// A build cache record: cache key -> result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheRecord {
    /// What the step produced, as the engine encodes it (e.g. a chain id or a config digest).
    pub result: String,
    /// The snapshot it keeps alive, if any.
    pub snapshot: Option<Digest>,
    /// Created (seconds since 1970).
    pub created: u64,
    /// Last used (seconds since 1970).
    pub last_used: u64,
}

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

/// A shared lease on the store: while any is held, `prune` and temp-file cleanup wait, so blobs
/// and snapshots written under it survive until they are referenced.
#[derive(Debug)]
pub struct Lease {
    _lock: FileLock,
}

/// A content store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// Build-cache records held back by a [`WriteBatch`] (shared by clones of this handle).
    pending: Arc<Mutex<Pending>>,
}

/// Database writes deferred while a [`WriteBatch`] is open: JSON records by key.
#[derive(Debug, Default)]
struct Pending {
    batches: usize,
    cache: BTreeMap<String, String>,
    snapshots: BTreeMap<String, String>,
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
/// Safe against crashes: a snapshot directory is synced before it is renamed into place, and
/// the directory entries are synced before the records are written, so a record never points
/// at missing data. A build killed before it flushed leaves complete snapshot directories
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

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
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

fn parse<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::json(what, e))
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::json("record", e))
}

/// index.json as we write it. Our own type rather than oci-spec's `ImageIndex` because that one
/// keeps annotations in a `HashMap`, whose random order would make index.json (and saved
/// archives) differ from run to run.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexJson {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<IndexEntry>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<serde_json::Value>,
}

/// Annotation with the tag part of a reference (what skopeo and umoci use to pick an image).
pub(crate) const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the full name (what docker and containerd use).
pub(crate) const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

pub(crate) fn index_json(entries: Vec<IndexEntry>) -> Result<Vec<u8>> {
    let idx = IndexJson {
        schema_version: 2,
        media_type: MEDIA_TYPE_INDEX.to_string(),
        manifests: entries,
    };
    serde_json::to_vec(&idx).map_err(|e| StoreError::json("index.json", e))
}

pub(crate) fn index_entry(img: &ImageRecord, reference: Option<&Reference>) -> IndexEntry {
    let mut annotations = BTreeMap::new();
    if let Some(r) = reference {
        annotations.insert(ANN_REF_NAME.to_string(), r.tag.clone());
        annotations.insert(ANN_IMAGE_NAME.to_string(), r.to_string());
    }
    IndexEntry {
        media_type: img.media_type.clone(),
        digest: img.manifest.to_string(),
        size: img.manifest_size,
        annotations,
        platform: None,
    }
}

impl Store {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let s = Store {
            root,
            pending: Arc::default(),
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
                Ok([TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS]
                    .into_iter()
                    .all(|t| tx.open_table(t).is_ok()))
            })
            .unwrap_or(false);
        if complete {
            return Ok(s);
        }
        s.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            for t in [TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS] {
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
            let db = Database::create(&tmp).map_err(db_err)?;
            let tx = db.begin_write().map_err(db_err)?;
            for t in [TAGS, IMAGES, SNAPSHOTS, CACHE, CACHE_MOUNTS] {
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
        let db = Database::create(self.root.join("meta.redb")).map_err(db_err)?;
        f(&db)
    }

    /// Runs `f` in a read transaction of the database opened read-only under a shared
    /// `db.lock` (held only for `f`): processes read at once, and nothing is written or
    /// fsynced (a no-change rebuild only reads). A database that is missing, or needs the
    /// recovery a killed writer leaves behind, is opened read-write instead, which repairs it.
    pub(crate) fn with_read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T>,
    ) -> Result<T> {
        {
            let _lock = FileLock::shared(&self.lock_path("db.lock"))?;
            if let Ok(db) = redb::Builder::new().open_read_only(self.root.join("meta.redb")) {
                let tx = db.begin_read().map_err(db_err)?;
                return f(&tx);
            }
        }
        self.with_db(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            f(&tx)
        })
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
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
    fn defer(&self, snapshot: bool, key: &str, json: String) -> Option<String> {
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
        let written = sync_dir(&self.root.join("snapshots")).and_then(|()| {
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

    // ---- blobs ----

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blob_dir().join(d.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobMissing(d.clone())
            } else {
                StoreError::io("open", self.blob_path(d), e)
            }
        })
    }

    /// Size of a blob.
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        Ok(self
            .open_blob(d)?
            .metadata()
            .map_err(|e| StoreError::io("stat", self.blob_path(d), e))?
            .len())
    }

    /// Reads a small blob (manifest, config, index) into memory, refusing anything over
    /// [`MAX_DOCUMENT`].
    pub fn read_document(&self, d: &Digest) -> Result<Vec<u8>> {
        let f = self.open_blob(d)?;
        let mut v = Vec::new();
        f.take(MAX_DOCUMENT + 1)
            .read_to_end(&mut v)
            .map_err(|e| StoreError::io("read", self.blob_path(d), e))?;
        if v.len() as u64 > MAX_DOCUMENT {
            return Err(StoreError::TooLarge {
                what: d.to_string(),
                limit: MAX_DOCUMENT,
            });
        }
        Ok(v)
    }

    /// Starts writing a blob. With `expected`, commit fails unless the content hashes to it.
    pub fn blob_writer(&self, expected: Option<Digest>) -> Result<BlobWriter> {
        let lease = self.lease()?;
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir())
            .map_err(|e| StoreError::io("create temp file in", self.tmp_dir(), e))?;
        Ok(BlobWriter {
            store: self.clone(),
            inner: HashingWriter::new(BufWriter::with_capacity(256 * 1024, tmp)),
            expected,
            _lease: lease,
        })
    }

    /// Stores a small in-memory blob and returns its digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of_bytes(data);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer(Some(d))?;
        w.write_all(data)
            .map_err(|e| StoreError::io("write", self.tmp_dir(), e))?;
        Ok(w.commit()?.0)
    }

    // ---- images and tags ----

    /// Records an image from a manifest blob already in the store, after checking that its
    /// config and layer blobs are present.
    pub fn put_image(&self, manifest: &Digest) -> Result<ImageRecord> {
        // Already recorded (a rebuild that produced the same image): nothing to write.
        let known = self.with_read(|tx| {
            let t = tx.open_table(IMAGES).map_err(db_err)?;
            let found = t
                .get(manifest.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_string());
            found
                .map(|s| parse::<ImageRecord>("image record", &s))
                .transpose()
        })?;
        if let Some(rec) = known {
            if rec.blobs().all(|b| self.has_blob(b)) {
                return Ok(rec);
            }
        }
        let bytes = self.read_document(manifest)?;
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::json(format!("manifest {manifest}"), e))?;
        let media_type = match m.media_type() {
            Some(mt) => mt.to_string(),
            None => MEDIA_TYPE_MANIFEST.to_string(),
        };
        if media_type != MEDIA_TYPE_MANIFEST && media_type != MEDIA_TYPE_DOCKER_MANIFEST {
            return Err(StoreError::InvalidImage(format!(
                "{manifest} has media type {media_type}, not an image manifest"
            )));
        }
        let digest = |d: &oci_spec::image::Digest| -> Result<Digest> {
            d.to_string()
                .parse::<Digest>()
                .map_err(|e| StoreError::InvalidImage(format!("manifest {manifest}: {e}")))
        };
        let config = digest(m.config().digest())?;
        let mut size = bytes.len() as u64 + self.blob_size(&config)?;
        let mut layers = Vec::new();
        for l in m.layers() {
            let d = digest(l.digest())?;
            size += self.blob_size(&d)?;
            layers.push(d);
        }
        let cfg: serde_json::Value = serde_json::from_slice(&self.read_document(&config)?)
            .map_err(|e| StoreError::json(format!("config {config}"), e))?;
        let rec = ImageRecord {
            manifest: manifest.clone(),
            media_type,
            manifest_size: bytes.len() as u64,
            config,
            layers,
            size,
            created: cfg
                .get("created")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            added: now(),
        };
        let json = to_json(&rec)?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(IMAGES).map_err(db_err)?;
                let existing = t
                    .get(manifest.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                if existing.is_none() {
                    t.insert(manifest.as_str(), json.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(rec)
    }

    /// Writes config and manifest blobs for layers already in the store and records the image.
    /// `layers` are (digest, media type, size) bottom first.
    pub fn write_image(
        &self,
        config_json: &[u8],
        layers: &[(Digest, String, u64)],
    ) -> Result<ImageRecord> {
        self.write_image_annotated(config_json, layers, &BTreeMap::new())
    }

    /// [`Store::write_image`] with annotations on the manifest (`--annotation`).
    pub fn write_image_annotated(
        &self,
        config_json: &[u8],
        layers: &[(Digest, String, u64)],
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageRecord> {
        use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
        let config = self.put_bytes(config_json)?;
        let od = |d: &Digest| -> Result<oci_spec::image::Digest> {
            d.as_str()
                .parse()
                .map_err(|_| StoreError::InvalidImage(format!("bad digest {d}")))
        };
        let mut descs = Vec::new();
        for (d, mt, size) in layers {
            descs.push(
                DescriptorBuilder::default()
                    .media_type(MediaType::from(mt.as_str()))
                    .digest(od(d)?)
                    .size(*size)
                    .build()?,
            );
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageConfig)
                    .digest(od(&config)?)
                    .size(config_json.len() as u64)
                    .build()?,
            )
            .layers(descs)
            .build()?;
        let mut manifest = manifest;
        if !annotations.is_empty() {
            manifest.set_annotations(Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
        let md = self.put_bytes(&bytes)?;
        self.put_image(&md)
    }

    /// Points `reference` at an image (by manifest digest), replacing an older target.
    pub fn tag(&self, reference: &Reference, manifest: &Digest) -> Result<()> {
        // Under a lease: prune must not remove the image between the check below and the
        // commit, which would leave a tag naming nothing.
        let _lease = self.lease()?;
        let name = reference.to_string();
        // Already so (every rebuild tags its image again): nothing to write or fsync.
        let same = self.with_read(|tx| {
            let t = tx.open_table(TAGS).map_err(db_err)?;
            let current = t.get(name.as_str()).map_err(db_err)?;
            Ok(current.is_some_and(|v| v.value() == manifest.as_str()))
        })?;
        if same {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let images = tx.open_table(IMAGES).map_err(db_err)?;
                if images.get(manifest.as_str()).map_err(db_err)?.is_none() {
                    return Err(StoreError::ImageNotFound(manifest.to_string()));
                }
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                t.insert(name.as_str(), manifest.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)
        })
    }

    /// Points several references at their images in one transaction: all or none.
    pub fn tag_many(&self, tags: &[(Reference, Digest)]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let _lease = self.lease()?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let images = tx.open_table(IMAGES).map_err(db_err)?;
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for (r, manifest) in tags {
                    if images.get(manifest.as_str()).map_err(db_err)?.is_none() {
                        return Err(StoreError::ImageNotFound(manifest.to_string()));
                    }
                    t.insert(r.to_string().as_str(), manifest.as_str())
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)
        })
    }

    /// Removes those of `manifests` that no tag names (what a failed load wrote).
    pub fn remove_untagged(&self, manifests: &[Digest]) -> Result<()> {
        if manifests.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let t = tx.open_table(TAGS).map_err(db_err)?;
                let mut tagged = std::collections::HashSet::new();
                for e in t.iter().map_err(db_err)? {
                    let (_, v) = e.map_err(db_err)?;
                    tagged.insert(v.value().to_string());
                }
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                for m in manifests {
                    if !tagged.contains(m.as_str()) {
                        images.remove(m.as_str()).map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)
        })
    }

    /// Removes a tag; returns the manifest it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>> {
        let name = reference.to_string();
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let old = {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                let v = t
                    .remove(name.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                v
            };
            tx.commit().map_err(db_err)?;
            self.write_index(db)?;
            old.map(|o| {
                o.parse::<Digest>()
                    .map_err(|e| StoreError::InvalidImage(e.to_string()))
            })
            .transpose()
        })
    }

    /// Removes an image record and every tag pointing at it. Blobs go at the next prune.
    pub fn remove_image(&self, manifest: &Digest) -> Result<Vec<String>> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let mut removed = Vec::new();
            {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for e in t.iter().map_err(db_err)? {
                    let (k, v) = e.map_err(db_err)?;
                    if v.value() == manifest.as_str() {
                        removed.push(k.value().to_string());
                    }
                }
                for k in &removed {
                    t.remove(k.as_str()).map_err(db_err)?;
                }
                let mut i = tx.open_table(IMAGES).map_err(db_err)?;
                i.remove(manifest.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)?;
            Ok(removed)
        })
    }

    /// Every image with its tags, newest first.
    pub fn images(&self) -> Result<Vec<TaggedImage>> {
        self.with_read(|tx| {
            let images = tx.open_table(IMAGES).map_err(db_err)?;
            let tags = tx.open_table(TAGS).map_err(db_err)?;
            let mut by_manifest: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for e in tags.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                by_manifest
                    .entry(v.value().to_string())
                    .or_default()
                    .push(k.value().to_string());
            }
            let mut out = Vec::new();
            for e in images.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                let image: ImageRecord = parse("image record", v.value())?;
                let mut tags = by_manifest.remove(k.value()).unwrap_or_default();
                tags.sort();
                out.push(TaggedImage { image, tags });
            }
            out.sort_by(|a, b| b.image.added.cmp(&a.image.added).then(a.tags.cmp(&b.tags)));
            Ok(out)
        })
    }

    /// Finds an image by tag (`name[:tag]`), full digest, or id prefix (of the config digest or
    /// the manifest digest, at least 4 hex digits).
    pub fn resolve(&self, what: &str) -> Result<TaggedImage> {
        let all = self.images()?;
        if let Ok(r) = Reference::parse(what) {
            let name = r.to_string();
            if let Some(t) = all.iter().find(|t| t.tags.contains(&name)) {
                return Ok(t.clone());
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let mut found: Vec<&TaggedImage> = all
                .iter()
                .filter(|t| {
                    t.image.config.hex().starts_with(&hex)
                        || t.image.manifest.hex().starts_with(&hex)
                })
                .collect();
            found.dedup_by(|a, b| a.image.manifest == b.image.manifest);
            return match found.len() {
                0 => Err(StoreError::ImageNotFound(what.to_string())),
                1 => Ok(found[0].clone()),
                _ => Err(StoreError::Ambiguous(what.to_string())),
            };
        }
        Err(StoreError::ImageNotFound(what.to_string()))
    }

    /// The manifest and config of an image, parsed.
    pub fn manifest_and_config(
        &self,
        img: &ImageRecord,
    ) -> Result<(serde_json::Value, serde_json::Value)> {
        let m = serde_json::from_slice(&self.read_document(&img.manifest)?)
            .map_err(|e| StoreError::json(format!("manifest {}", img.manifest), e))?;
        let c = serde_json::from_slice(&self.read_document(&img.config)?)
            .map_err(|e| StoreError::json(format!("config {}", img.config), e))?;
        Ok((m, c))
    }

    /// The config's history, each step matched with the layer it produced, newest first.
    pub fn history(&self, img: &ImageRecord) -> Result<Vec<HistoryEntry>> {
        let cfg: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&self.read_document(&img.config)?)
                .map_err(|e| StoreError::json(format!("config {}", img.config), e))?;
        let mut layers = img.layers.iter();
        let mut out = Vec::new();
        let history = cfg.history().clone().unwrap_or_default();
        for h in &history {
            let layer = if h.empty_layer().unwrap_or(false) {
                None
            } else {
                layers.next().cloned()
            };
            let size = match &layer {
                Some(d) => self.blob_size(d).unwrap_or(0),
                None => 0,
            };
            out.push(HistoryEntry {
                created: h.created().clone(),
                created_by: h.created_by().clone(),
                comment: h.comment().clone(),
                layer,
                size,
            });
        }
        // Layers the history does not mention (configs without history).
        for d in layers {
            out.push(HistoryEntry {
                created: None,
                created_by: None,
                comment: None,
                layer: Some(d.clone()),
                size: self.blob_size(d).unwrap_or(0),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Tags whose image record is missing: (tag, manifest it names). A consistent store has
    /// none; `fsck` reports them.
    pub(crate) fn dangling_tags(&self) -> Result<Vec<(String, Digest)>> {
        self.with_read(|tx| {
            let tags = match tx.open_table(TAGS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let images = tx.open_table(IMAGES).map_err(db_err)?;
            let mut out = Vec::new();
            for e in tags.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                if images.get(v.value()).map_err(db_err)?.is_none() {
                    let d = v
                        .value()
                        .parse::<Digest>()
                        .map_err(|e| StoreError::InvalidImage(format!("tag {}: {e}", k.value())))?;
                    out.push((k.value().to_string(), d));
                }
            }
            Ok(out)
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

    /// Rewrites index.json from the tags table (called with the db lock held).
    fn write_index(&self, db: &Database) -> Result<()> {
        let tx = db.begin_read().map_err(db_err)?;
        let tags = tx.open_table(TAGS).map_err(db_err)?;
        let images = tx.open_table(IMAGES).map_err(db_err)?;
        let mut entries = Vec::new();
        for e in tags.iter().map_err(db_err)? {
            let (k, v) = e.map_err(db_err)?;
            let Some(rec) = images.get(v.value()).map_err(db_err)? else {
                continue;
            };
            let img: ImageRecord = parse("image record", rec.value())?;
            let r = Reference::parse(k.value())?;
            entries.push(index_entry(&img, Some(&r)));
        }
        write_atomic(&self.root, "index.json", &index_json(entries)?)
    }

    // ---- snapshots ----

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

    // ---- cache records ----

    /// Records `key -> result`.
    pub fn put_cache(&self, key: &str, result: &str, snapshot: Option<&Digest>) -> Result<()> {
        let t0 = now();
        let rec = CacheRecord {
            result: result.to_string(),
            snapshot: snapshot.cloned(),
            created: t0,
            last_used: t0,
        };
        let Some(json) = self.defer(false, key, to_json(&rec)?) else {
            return Ok(());
        };
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(CACHE)
                .map_err(db_err)?
                .insert(key, json.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Looks a cache key up (and marks it used).
    pub fn get_cache(&self, key: &str) -> Result<Option<CacheRecord>> {
        // A read transaction: lookups must not cost an fsync each (a no-change rebuild does
        // one per step). Callers report what they used with [`Store::touch_cache`].
        if let Some(json) = self.pending().cache.get(key).cloned() {
            return Ok(Some(parse("cache record", &json)?));
        }
        self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let found = t.get(key).map_err(db_err)?.map(|v| v.value().to_string());
            match found {
                Some(s) => Ok(Some(parse("cache record", &s)?)),
                None => Ok(None),
            }
        })
    }

    /// Marks cache records as used now (for `prune`'s age rule), in one transaction.
    pub fn touch_cache(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let t0 = now();
        // Only records not marked within the hour: a quick rebuild writes (and fsyncs) nothing.
        let stale: Vec<&String> = self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let mut out = Vec::new();
            for key in keys {
                if let Some(v) = t.get(key.as_str()).map_err(db_err)? {
                    let r: CacheRecord = parse("cache record", v.value())?;
                    if r.last_used + 3600 < t0 {
                        out.push(key);
                    }
                }
            }
            Ok(out)
        })?;
        if stale.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CACHE).map_err(db_err)?;
                for key in stale {
                    let found = t
                        .get(key.as_str())
                        .map_err(db_err)?
                        .map(|v| v.value().to_string());
                    if let Some(s) = found {
                        let mut r: CacheRecord = parse("cache record", &s)?;
                        r.last_used = t0;
                        t.insert(key.as_str(), to_json(&r)?.as_str())
                            .map_err(db_err)?;
                    }
                }
            }
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

    pub(crate) fn cache_records(&self) -> Result<Vec<(String, CacheRecord)>> {
        self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let mut v = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let (k, val) = e.map_err(db_err)?;
                v.push((k.value().to_string(), parse("cache record", val.value())?));
            }
            Ok(v)
        })
    }

    pub(crate) fn remove_cache_records(&self, keys: &[String]) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CACHE).map_err(db_err)?;
                for k in keys {
                    t.remove(k.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    // ---- cache mounts ----

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

pub(crate) fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    db(e)
}

/// A blob being written: hashes while writing; [`BlobWriter::commit`] verifies and publishes it.
/// Dropped without commit, the temp file is deleted.
pub struct BlobWriter {
    store: Store,
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    expected: Option<Digest>,
    _lease: Lease,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.inner.count()
    }

    /// Flushes, fsyncs, checks the digest and renames the blob into place (a no-op rename if
    /// the same blob is already there). Returns digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let tmp_dir = self.store.tmp_dir();
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| StoreError::io("write", tmp_dir.clone(), e.into_error()))?;
        if let Some(exp) = &self.expected {
            if *exp != digest {
                return Err(StoreError::DigestMismatch {
                    expected: exp.clone(),
                    actual: digest,
                });
            }
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io("fsync", tmp.path().to_path_buf(), e))?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
            .map_err(|e| StoreError::io("chmod", tmp.path().to_path_buf(), e))?;
        let dest = self.store.blob_path(&digest);
        if dest.is_file() {
            // Same content already stored; the temp file is deleted on drop.
            return Ok((digest, size));
        }
        tmp.persist(&dest)
            .map_err(|e| StoreError::io("rename into", dest.clone(), e.error))?;
        sync_dir(&self.store.blob_dir())?;
        Ok((digest, size))
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
