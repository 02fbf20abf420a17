//! Per-layer summaries cached by diff id, so analysing an image again does not read its
//! layers again: one file per layer in `<store root>/analyze-cache/`, named by the diff id's
//! hex, holding the layer's [`LayerScan`] (every entry the stacking and the findings need).
//!
//! File format: `MAGIC`, the format version (u32, little endian), the payload's length (u64),
//! the first 16 bytes of the payload's SHA-256, then the payload: postcard of [`Cached`]. A
//! file that is short, from another version, fails its checksum or does not decode is ignored
//! and rewritten. Files are written to a temp file in the same directory and renamed into place,
//! so a reader never sees half a file.
//!
//! Trust: a summary is written only after the layer's stream was hashed while it was scanned
//! and its digest equals the diff id it is filed under, and it records the blob digests known
//! to decompress to that diff id. It is used only for a blob among those (a store blob, whose
//! digest the store checked when it was written): an image whose config claims another
//! layer's diff id for its blob gets its own blob scanned, not that layer's summary.
//!
//! [`VERSION`] must change whenever what a scan records changes (new probes, other rules), so
//! old summaries are not mistaken for new ones.

use crate::scan::LayerScan;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"whittle-analyze\0";
/// Format version of the files (see the module docs).
pub const VERSION: u32 = 1;
/// Largest summary read back (a layer at the entry limit is far below this).
const MAX_FILE: u64 = 1 << 30;
const HEADER: usize = 16 + 4 + 8 + 16;

/// What one file holds.
#[derive(Serialize, Deserialize)]
pub struct Cached {
    /// The diff id it is filed under.
    pub diff_id: String,
    /// Blob digests seen to decompress to that diff id.
    pub blobs: Vec<String>,
    /// The layer's summary.
    pub scan: LayerScan,
}

/// The cache directory of a store.
#[derive(Clone, Debug)]
pub struct SummaryCache {
    dir: PathBuf,
}

/// The hex of a `sha256:<hex>` diff id, when it is one (so it is safe as a file name).
fn hex_of(diff_id: &str) -> Option<&str> {
    let h = diff_id.strip_prefix("sha256:")?;
    (h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(h)
}

impl SummaryCache {
    /// The cache of the store at `root`.
    pub fn in_store(root: &Path) -> SummaryCache {
        SummaryCache {
            dir: root.join("analyze-cache"),
        }
    }

    fn file(&self, diff_id: &str) -> Option<PathBuf> {
        hex_of(diff_id).map(|h| self.dir.join(h))
    }

    /// The cached summary of the layer with this diff id, when there is a valid one that was
    /// made from this blob. `None` for a miss, a stale format or a damaged file.
    pub fn get(&self, diff_id: &str, blob: &str) -> Option<LayerScan> {
        let c = self.read(diff_id)?;
        (c.blobs.iter().any(|b| b == blob)).then_some(c.scan)
    }

    fn read(&self, diff_id: &str) -> Option<Cached> {
        let p = self.file(diff_id)?;
        let mut f = fs::File::open(&p).ok()?;
        let mut head = [0u8; HEADER];
        f.read_exact(&mut head).ok()?;
        if &head[..16] != MAGIC || head[16..20] != VERSION.to_le_bytes() {
            return None;
        }
        let len = u64::from_le_bytes(head[20..28].try_into().ok()?);
        if len > MAX_FILE {
            return None;
        }
        let mut body = Vec::with_capacity(len as usize);
        f.take(len + 1).read_to_end(&mut body).ok()?;
        if body.len() as u64 != len || Sha256::digest(&body)[..16] != head[28..44] {
            return None;
        }
        let c: Cached = postcard::from_bytes(&body).ok()?;
        (c.diff_id == diff_id).then_some(c)
    }

    /// Files the summary of a layer whose scan hashed to `diff_id`, made from `blob`. Failing
    /// to write is not an error (the cache is an optimisation; a read-only store still
    /// analyses). Returns whether it was written.
    pub fn put(&self, diff_id: &str, blob: &str, scan: &LayerScan) -> bool {
        if scan.stream_digest.as_deref() != Some(diff_id) {
            return false; // never file a summary under a diff id it was not checked against
        }
        let Some(path) = self.file(diff_id) else {
            return false;
        };
        let mut blobs = self.read(diff_id).map(|c| c.blobs).unwrap_or_default();
        if !blobs.iter().any(|b| b == blob) {
            blobs.push(blob.to_string());
        }
        blobs.sort();
        blobs.truncate(16);
        let c = CachedRef {
            diff_id,
            blobs: &blobs,
            scan,
        };
        let Ok(body) = postcard::to_stdvec(&c) else {
            return false;
        };
        self.write_atomic(&path, &body).is_ok()
    }

    fn write_atomic(&self, path: &Path, body: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self
            .dir
            .join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
        let r = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&VERSION.to_le_bytes())?;
            f.write_all(&(body.len() as u64).to_le_bytes())?;
            f.write_all(&Sha256::digest(body)[..16])?;
            f.write_all(body)?;
            f.sync_data()?;
            fs::rename(&tmp, path)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }
}

/// [`Cached`] by reference, for writing without copying the scan.
#[derive(Serialize)]
struct CachedRef<'a> {
    diff_id: &'a str,
    blobs: &'a [String],
    scan: &'a LayerScan,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan_layer;
    use std::sync::atomic::AtomicU64;

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "etc/a", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn scanned(bytes: &[u8]) -> LayerScan {
        scan_layer(
            bytes,
            "0",
            &crate::Limits::default(),
            &AtomicU64::new(0),
            true,
        )
        .unwrap()
    }

    #[test]
    fn round_trips_only_for_checked_diff_ids_and_known_blobs() {
        let t = tempfile::tempdir().unwrap();
        let c = SummaryCache::in_store(t.path());
        let bytes = layer();
        let s = scanned(&bytes);
        let diff = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        assert_eq!(
            s.stream_digest.as_deref(),
            Some(diff.as_str()),
            "the whole stream"
        );
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(
            !c.put(&wrong, "sha256:blob", &s),
            "not under an unchecked diff id"
        );
        assert!(c.get(&wrong, "sha256:blob").is_none());
        assert!(c.put(&diff, "sha256:blob", &s));
        let back = c.get(&diff, "sha256:blob").unwrap();
        assert_eq!(back.entries.len(), 1);
        assert_eq!(&*back.entries[0].key, b"etc\0a");
        assert_eq!(back.entries[0].hash, s.entries[0].hash);
        assert_eq!(back.tar_bytes, s.tar_bytes);
        assert!(c.get(&diff, "sha256:other").is_none(), "another blob");
        // A second blob for the same diff id joins the first.
        assert!(c.put(&diff, "sha256:other", &s));
        assert!(c.get(&diff, "sha256:blob").is_some());
        assert!(c.get(&diff, "sha256:other").is_some());
        assert!(c.file("sha256:../../etc").is_none());
    }

    #[test]
    fn damaged_or_old_files_are_misses_and_are_rewritten() {
        let t = tempfile::tempdir().unwrap();
        let c = SummaryCache::in_store(t.path());
        let bytes = layer();
        let s = scanned(&bytes);
        let diff = s.stream_digest.clone().unwrap();
        let p = c.file(&diff).unwrap();
        assert!(c.put(&diff, "b", &s));
        let good = fs::read(&p).unwrap();
        // A flipped payload byte fails the checksum.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&p, &bad).unwrap();
        assert!(c.get(&diff, "b").is_none());
        // Another version.
        let mut old = good.clone();
        old[16..20].copy_from_slice(&0u32.to_le_bytes());
        fs::write(&p, &old).unwrap();
        assert!(c.get(&diff, "b").is_none());
        // Cut short; empty; garbage.
        for b in [&good[..good.len() / 2], &[][..], &b"garbage"[..]] {
            fs::write(&p, b).unwrap();
            assert!(c.get(&diff, "b").is_none());
        }
        assert!(c.put(&diff, "b", &s));
        assert!(c.get(&diff, "b").is_some());
        assert_eq!(fs::read(&p).unwrap(), good);
        let left: Vec<_> = fs::read_dir(&c.dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp files left");
    }
}
