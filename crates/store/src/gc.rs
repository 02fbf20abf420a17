//! `fsck` (verify every blob and every reference) and `prune` (drop what nothing needs).

use crate::error::{Result, StoreError};
use crate::lock::FileLock;
use crate::store::{dir_size, Store};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use whittle_layer::{Digest, HashingWriter};

/// What `fsck` found and did.
#[derive(Debug, Default, Clone)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Blobs whose content does not match their name: (name, actual digest).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Files in blobs/sha256 whose name is not a digest.
    pub stray_files: Vec<PathBuf>,
    /// Blobs referenced by an image record but absent: (image manifest, blob).
    pub missing: Vec<(Digest, Digest)>,
    /// Blobs referenced by an image record, absent but recorded as remote (not corruption:
    /// `remote_blobs.rs`): (image manifest, blob, `registry/repository`).
    pub remote: Vec<(Digest, Digest, String)>,
    /// Snapshot records whose directory is gone.
    pub snapshots_missing: Vec<Digest>,
    /// Temp files and unfinished snapshot dirs removed (left by interrupted writers).
    pub temp_removed: Vec<PathBuf>,
    /// Whether temp files were left alone because another process holds a lease.
    pub temp_in_use: bool,
    /// Corrupt blobs deleted (with `repair`).
    pub corrupt_removed: Vec<Digest>,
    /// Tags naming an image the store has no record of: (tag, manifest).
    pub dangling_tags: Vec<(String, Digest)>,
}

impl FsckReport {
    /// No corruption, nothing missing.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.stray_files.is_empty()
            && self.missing.is_empty()
            && self.snapshots_missing.is_empty()
            && self.dangling_tags.is_empty()
    }
}

/// Options of `prune`.
#[derive(Debug, Default, Clone)]
pub struct PruneOptions {
    /// Keep up to this many bytes of build cache (snapshots, cache mounts), dropping the least
    /// recently used first. None: drop all build cache.
    pub keep_storage: Option<u64>,
}

/// What `prune` removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Untagged images removed.
    pub images_removed: Vec<Digest>,
    /// Unreferenced blobs removed.
    pub blobs_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Cache records removed.
    pub cache_records_removed: u64,
    /// Cache mounts removed.
    pub cache_mounts_removed: u64,
    /// Records of remote blobs no remaining image names, removed.
    pub remote_records_removed: u64,
    /// Temp files removed.
    pub temp_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Bytes used after pruning (blobs + snapshots + cache mounts).
    pub bytes_after: u64,
}

fn remove_path(p: &std::path::Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Temp files and unfinished snapshot dirs of lease holders: safe to delete only under the
    /// exclusive gc lock. (index.json's temp files are the database lock's: see
    /// [`Store::remove_root_temp_files`].)
    fn temp_paths(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut scan = |dir: PathBuf, pred: &dyn Fn(&str) -> bool| -> Result<()> {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StoreError::io("list", dir, e)),
            };
            for e in rd {
                let e = e.map_err(|err| StoreError::io("list", dir.clone(), err))?;
                if pred(&e.file_name().to_string_lossy()) {
                    out.push(e.path());
                }
            }
            Ok(())
        };
        scan(self.tmp_dir(), &|_| true)?;
        scan(self.root().join("snapshots"), &|n| n.starts_with("tmp-"))?;
        scan(self.blob_dir(), &|n| n.starts_with(".tmp"))?;
        Ok(out)
    }

    /// Re-hashes every blob, checks that every image's blobs (here, or recorded as remote) and
    /// every snapshot dir exist, and
    /// drops temp files left by killed writers (when no other process holds a lease). With
    /// `repair`, corrupt blobs are deleted too (so they can be loaded or pulled again).
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let mut r = FsckReport::default();
        match FileLock::try_exclusive(&self.lock_path("gc.lock"))? {
            Some(_gc) => {
                for p in self.temp_paths()? {
                    remove_path(&p).map_err(|e| StoreError::io("remove", p.clone(), e))?;
                    r.temp_removed.push(p);
                }
                r.temp_removed.extend(self.remove_root_temp_files()?);
            }
            None => r.temp_in_use = true,
        }
        let dir = self.blob_dir();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| StoreError::io("list", dir.clone(), e))?
            .filter_map(|e| e.ok())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") {
                continue;
            }
            let Ok(expected) = format!("sha256:{name}").parse::<Digest>() else {
                r.stray_files.push(e.path());
                continue;
            };
            let mut f = match fs::File::open(e.path()) {
                Ok(f) => f,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue, // pruned meanwhile
                Err(err) => return Err(StoreError::io("open", e.path(), err)),
            };
            let mut h = HashingWriter::new(io::sink());
            io::copy(&mut f, &mut h).map_err(|err| StoreError::io("read", e.path(), err))?;
            let (_, actual, n) = h.finish();
            r.blobs_checked += 1;
            r.bytes_checked += n;
            if actual != expected {
                if repair {
                    fs::remove_file(e.path())
                        .map_err(|err| StoreError::io("remove", e.path(), err))?;
                    r.corrupt_removed.push(expected.clone());
                }
                r.corrupt.push((expected, actual));
            }
        }
        for t in self.images()? {
            for b in t.image.blobs() {
                if self.has_blob(b) {
                    continue;
                }
                match self.remote_blob(b)? {
                    Some(rb) => r
                        .remote
                        .push((t.image.manifest.clone(), b.clone(), rb.place())),
                    None => r.missing.push((t.image.manifest.clone(), b.clone())),
                }
            }
        }
        for s in self.snapshots()? {
            if !self.snapshot_path(&s.chain_id).is_dir() {
                r.snapshots_missing.push(s.chain_id.clone());
            }
        }
        r.dangling_tags = self.dangling_tags()?;
        Ok(r)
    }

    /// Bytes used: blobs, snapshot dirs and cache mounts.
    pub fn disk_usage(&self) -> Result<u64> {
        Ok(dir_size(&self.blob_dir())
            + dir_size(&self.root().join("snapshots"))
            + dir_size(&self.root().join("cache-mounts")))
    }

    /// Removes untagged images, blobs no image needs, temp files, and build cache (all of it, or
    /// least recently used first down to `keep_storage`). Waits for running writers' leases.
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        let _gc = FileLock::exclusive(&self.lock_path("gc.lock"))?;
        let before = self.disk_usage()?;
        let mut r = PruneReport::default();
        for p in self.temp_paths()? {
            remove_path(&p).map_err(|e| StoreError::io("remove", p.clone(), e))?;
            r.temp_removed += 1;
        }
        r.temp_removed += self.remove_root_temp_files()?.len() as u64;
        // Untagged indexes (their images are untagged then too, unless tagged themselves).
        let tagged_indexes = self.tagged_indexes()?;
        for ix in self.indexes()? {
            if !tagged_indexes.contains(&ix.digest) {
                self.remove_index(&ix.digest)?;
            }
        }
        // Untagged images.
        for t in self.images()? {
            if t.tags.is_empty() {
                self.remove_image(&t.image.manifest)?;
                r.images_removed.push(t.image.manifest.clone());
            }
        }
        // Blobs no remaining image references.
        let keep: HashSet<Digest> = self
            .images()?
            .iter()
            .flat_map(|t| t.image.blobs().cloned().collect::<Vec<_>>())
            .chain(tagged_indexes)
            .collect();
        r.remote_records_removed = self.drop_remote_blobs_except(&keep)?;
        let dir = self.blob_dir();
        for e in fs::read_dir(&dir).map_err(|e| StoreError::io("list", dir.clone(), e))? {
            let e = e.map_err(|err| StoreError::io("list", dir.clone(), err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let referenced = format!("sha256:{name}")
                .parse::<Digest>()
                .map(|d| keep.contains(&d))
                .unwrap_or(false);
            if !referenced {
                remove_path(&e.path()).map_err(|err| StoreError::io("remove", e.path(), err))?;
                r.blobs_removed += 1;
            }
        }
        // Build cache: snapshot dirs without a record are debris; records without dirs are stale.
        let snaps = self.snapshots()?;
        let known: BTreeSet<String> = snaps.iter().map(|s| s.chain_id.hex().to_string()).collect();
        let sdir = self.root().join("snapshots");
        for e in fs::read_dir(&sdir).map_err(|e| StoreError::io("list", sdir.clone(), e))? {
            let e = e.map_err(|err| StoreError::io("list", sdir.clone(), err))?;
            if !known.contains(e.file_name().to_string_lossy().as_ref()) {
                remove_path(&e.path()).map_err(|err| StoreError::io("remove", e.path(), err))?;
            }
        }
        let mut snaps: BTreeMap<Digest, crate::SnapshotRecord> =
            snaps.into_iter().map(|s| (s.chain_id.clone(), s)).collect();
        let mut mounts = self.cache_mounts()?;
        let budget = opts.keep_storage.unwrap_or(0);
        let mut usage = dir_size(&self.blob_dir())
            + snaps.values().map(|s| s.size).sum::<u64>()
            + mounts
                .iter()
                .map(|(_, m)| dir_size(&self.root().join("cache-mounts").join(&m.dir)))
                .sum::<u64>();
        let mut removed_snaps = HashSet::new();
        while usage > budget {
            // Least recently used leaf snapshot (no remaining child) or cache mount.
            let parents: HashSet<&Digest> =
                snaps.values().filter_map(|s| s.parent.as_ref()).collect();
            let leaf = snaps
                .values()
                .filter(|s| !parents.contains(&s.chain_id))
                .min_by_key(|s| s.last_used)
                .cloned();
            let mount = mounts
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, m))| m.last_used)
                .map(|(i, _)| i);
            let take_mount = match (&leaf, mount) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(s), Some(i)) => mounts[i].1.last_used < s.last_used,
            };
            if take_mount {
                let Some(i) = mount else { break };
                let (id, m) = mounts.remove(i);
                let p = self.root().join("cache-mounts").join(&m.dir);
                let size = dir_size(&p);
                self.remove_cache_mount_record(&id)?;
                remove_path(&p).map_err(|e| StoreError::io("remove", p.clone(), e))?;
                usage = usage.saturating_sub(size);
                r.cache_mounts_removed += 1;
            } else if let Some(s) = leaf {
                // Record first: a crash then leaves only an orphan dir, which the next prune drops.
                self.remove_snapshot_record(&s.chain_id)?;
                let p = self.snapshot_path(&s.chain_id);
                remove_path(&p).map_err(|e| StoreError::io("remove", p.clone(), e))?;
                usage = usage.saturating_sub(s.size);
                snaps.remove(&s.chain_id);
                removed_snaps.insert(s.chain_id);
                r.snapshots_removed += 1;
            }
        }
        // Cache records: all of them without a budget, else those whose snapshot is gone.
        let stale: Vec<String> = self
            .cache_records()?
            .into_iter()
            .filter(|(_, c)| {
                opts.keep_storage.is_none()
                    || c.snapshot
                        .as_ref()
                        .is_some_and(|s| removed_snaps.contains(s) || !snaps.contains_key(s))
            })
            .map(|(k, _)| k)
            .collect();
        r.cache_records_removed = stale.len() as u64;
        self.remove_cache_records(&stale)?;
        self.prune_copy_manifests()?;
        self.prune_layer_blocks()?;
        r.bytes_after = self.disk_usage()?;
        r.bytes_freed = before.saturating_sub(r.bytes_after);
        Ok(r)
    }
}
