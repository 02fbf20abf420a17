//! Blobs: where they live, reading them, and writing them through a verifying [`BlobWriter`].

use crate::error::{Result, StoreError};
use crate::store::{sync_dir, Lease, Store};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use whittle_layer::{Digest, HashingWriter};

/// Largest manifest, config or index we read into memory.
pub const MAX_DOCUMENT: u64 = 8 << 20;

impl Store {
    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blob_dir().join(d.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for reading; a blob recorded as remote is fetched first (`remote_blobs.rs`).
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        match File::open(self.blob_path(d)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(rb) = self.remote_blob(d)? else {
                    return Err(StoreError::BlobMissing(d.clone()));
                };
                self.fetch_remote(&rb)?;
                File::open(self.blob_path(d))
                    .map_err(|e| StoreError::io("open", self.blob_path(d), e))
            }
            r => r.map_err(|e| StoreError::io("open", self.blob_path(d), e)),
        }
    }

    /// Size of a blob: of its file, else of its remote record (nothing is fetched).
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .remote_blob(d)?
                .map(|rb| rb.size)
                .ok_or_else(|| StoreError::BlobMissing(d.clone())),
            Err(e) => Err(StoreError::io("stat", self.blob_path(d), e)),
        }
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

    /// Starts writing a blob whose producer computes its digest ([`ProducedBlobWriter`]).
    pub fn produced_blob_writer(&self) -> Result<ProducedBlobWriter> {
        let lease = self.lease()?;
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir())
            .map_err(|e| StoreError::io("create temp file in", self.tmp_dir(), e))?;
        Ok(ProducedBlobWriter {
            store: self.clone(),
            inner: BufWriter::with_capacity(256 * 1024, tmp),
            count: 0,
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
        publish(&self.store, tmp, &digest)?;
        Ok((digest, size))
    }
}

/// Fsyncs a complete temp blob and renames it into place as `digest` (a no-op rename if the
/// same blob is already there).
fn publish(store: &Store, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| StoreError::io("fsync", tmp.path().to_path_buf(), e))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
        .map_err(|e| StoreError::io("chmod", tmp.path().to_path_buf(), e))?;
    let dest = store.blob_path(digest);
    if dest.is_file() {
        // Same content already stored; the temp file is deleted on drop.
        return Ok(());
    }
    tmp.persist(&dest)
        .map_err(|e| StoreError::io("rename into", dest.clone(), e.error))?;
    sync_dir(&store.blob_dir())
}

/// A blob written by a producer that hashes what it writes itself (the layer writer computes
/// the blob digest as it compresses): hashing it again here cost an edited 175 MB layer a
/// tenth of its build. [`ProducedBlobWriter::commit_as`] names it with the producer's digest.
/// Dropped without commit, the temp file is deleted.
pub struct ProducedBlobWriter {
    store: Store,
    inner: BufWriter<tempfile::NamedTempFile>,
    count: u64,
    _lease: Lease,
}

impl Write for ProducedBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl ProducedBlobWriter {
    /// Publishes the blob as `digest`, the producer's digest of exactly the `size` bytes it
    /// wrote here (a size that differs is refused: bytes were lost on the way).
    pub fn commit_as(self, digest: &Digest, size: u64) -> Result<(Digest, u64)> {
        let tmp_dir = self.store.tmp_dir();
        if size != self.count {
            return Err(StoreError::io(
                "write",
                tmp_dir,
                io::Error::other(format!(
                    "the blob's producer wrote {size} bytes, {} arrived",
                    self.count
                )),
            ));
        }
        let tmp = self
            .inner
            .into_inner()
            .map_err(|e| StoreError::io("write", tmp_dir, e.into_error()))?;
        publish(&self.store, tmp, digest)?;
        Ok((digest.clone(), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_produced_blob_is_named_by_its_producer_and_refused_if_bytes_went_missing() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let d = Digest::of_bytes(b"layer bytes");
        let mut w = s.produced_blob_writer().unwrap();
        w.write_all(b"layer bytes").unwrap();
        assert_eq!(w.commit_as(&d, 11).unwrap(), (d.clone(), 11));
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"layer bytes");

        let other = Digest::of_bytes(b"short");
        let mut w = s.produced_blob_writer().unwrap();
        w.write_all(b"shor").unwrap();
        assert!(w.commit_as(&other, 5).is_err());
        assert!(!s.has_blob(&other));
        assert_eq!(
            fs::read_dir(s.tmp_dir()).unwrap().count(),
            0,
            "temp file left"
        );
    }
}
