//! Blobs the store knows but does not hold: layers of an image that are in a registry
//! repository (a build cache's layers that a build's image names, so that a push to that
//! registry mounts them instead of downloading and uploading them, `docs/cache.md`).
//!
//! - A [`RemoteBlob`] record (table `remote_blobs`: digest → size, media type, registry,
//!   repository) is written before the image that names the blob, as a blob file is: a crash
//!   in between leaves a record no image names, which `prune` drops.
//! - [`Store::put_image`] accepts an image whose blobs are present *or* recorded here; sizes
//!   come from the record ([`Store::blob_size`]).
//! - Whatever reads a blob's bytes ([`Store::open_blob`]: save, run, unpack for a later build,
//!   analyze, sbom, load into a daemon, compression) first fetches a recorded one through the
//!   [`BlobFetcher`] the store was given ([`Store::with_fetcher`]; the store does not depend on
//!   the registry crate), through a writer that keeps it only when its size and digest match.
//!   Without a fetcher, or when the fetch fails, the error names where the blob is.
//! - The record stays after the fetch: a push still mounts the blob from there.
//! - `prune` drops records no remaining image names; `fsck` reports a recorded blob that is
//!   not here as remote, not as missing.

use crate::error::{Result, StoreError};
use crate::store::{db_err, parse, to_json, Store};
use redb::{ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;
use whittle_oci::Digest;

pub(crate) const REMOTE_BLOBS: TableDefinition<&str, &str> = TableDefinition::new("remote_blobs");

/// A blob that is in a registry repository, and not (necessarily) in the store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteBlob {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Registry host\[:port\], as in a reference.
    pub registry: String,
    /// Repository on that registry.
    pub repository: String,
}

impl RemoteBlob {
    /// `registry/repository`, for messages.
    pub fn place(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Fetches a remote blob's bytes (implemented by `whittle_registry::RegistryFetcher`).
pub trait BlobFetcher: Send + Sync {
    /// Writes the blob's bytes into `into`. The store checks the size and digest.
    fn fetch(
        &self,
        blob: &RemoteBlob,
        into: &mut dyn Write,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// The store's fetcher, if it was given one.
#[derive(Clone, Default)]
pub(crate) struct Fetcher(Option<Arc<dyn BlobFetcher>>);

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Fetcher(Some)"
        } else {
            "Fetcher(None)"
        })
    }
}

/// Refuses to write more than `left` bytes: a registry reply is not trusted to end.
struct Capped<'a, W: Write> {
    inner: &'a mut W,
    left: u64,
}

impl<W: Write> Write for Capped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the blob's size",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn missing_table<T>(e: TableError) -> Result<Option<T>> {
    match e {
        TableError::TableDoesNotExist(_) => Ok(None),
        e => Err(db_err(e)),
    }
}

impl Store {
    /// This handle, reading remote blobs through `fetcher` (see the module docs).
    pub fn with_fetcher(mut self, fetcher: Arc<dyn BlobFetcher>) -> Store {
        self.fetcher = Fetcher(Some(fetcher));
        self
    }

    /// Records blobs as remote (those already here too: a push can mount them from there).
    pub fn record_remote_blobs(&self, blobs: &[RemoteBlob]) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(REMOTE_BLOBS).map_err(db_err)?;
                for b in blobs {
                    t.insert(b.digest.as_str(), to_json(b)?.as_str())
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Where a blob recorded as remote is.
    pub fn remote_blob(&self, d: &Digest) -> Result<Option<RemoteBlob>> {
        self.with_read(|tx| {
            let t = match tx.open_table(REMOTE_BLOBS) {
                Ok(t) => t,
                Err(e) => return missing_table(e),
            };
            let found = t
                .get(d.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_string());
            found
                .map(|s| parse::<RemoteBlob>("remote blob record", &s))
                .transpose()
        })
    }

    /// Every remote blob record.
    pub fn remote_blobs(&self) -> Result<Vec<RemoteBlob>> {
        let all = self.with_read(|tx| {
            let t = match tx.open_table(REMOTE_BLOBS) {
                Ok(t) => t,
                Err(e) => return missing_table(e),
            };
            let mut v = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let (_, val) = e.map_err(db_err)?;
                v.push(parse::<RemoteBlob>("remote blob record", val.value())?);
            }
            Ok(Some(v))
        })?;
        Ok(all.unwrap_or_default())
    }

    /// Whether a blob is here or recorded as remote.
    pub fn knows_blob(&self, d: &Digest) -> Result<bool> {
        Ok(self.has_blob(d) || self.remote_blob(d)?.is_some())
    }

    /// Makes sure a blob is here: a remote one is fetched (size and digest checked). An error
    /// when it is neither here nor recorded, or the fetch fails.
    pub fn ensure_blob(&self, d: &Digest) -> Result<()> {
        if self.has_blob(d) {
            return Ok(());
        }
        match self.remote_blob(d)? {
            Some(rb) => self.fetch_remote(&rb),
            None => Err(StoreError::BlobMissing(d.clone())),
        }
    }

    /// Fetches a remote blob into the store through the fetcher.
    pub(crate) fn fetch_remote(&self, rb: &RemoteBlob) -> Result<()> {
        let fail = |problem: String| StoreError::RemoteBlob {
            digest: rb.digest.clone(),
            place: rb.place(),
            problem,
        };
        let Some(fetcher) = &self.fetcher.0 else {
            return Err(fail("this command cannot reach registries".into()));
        };
        let mut w = self.blob_writer(Some(rb.digest.clone()))?;
        fetcher
            .fetch(
                rb,
                &mut Capped {
                    inner: &mut w,
                    left: rb.size,
                },
            )
            .map_err(|e| fail(e.to_string()))?;
        if w.count() != rb.size {
            return Err(fail(format!("got {} bytes, not {}", w.count(), rb.size)));
        }
        w.commit().map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Drops the records of remote blobs not in `keep` (prune: no image names them).
    pub(crate) fn drop_remote_blobs_except(&self, keep: &HashSet<Digest>) -> Result<u64> {
        let stale: Vec<Digest> = self
            .remote_blobs()?
            .into_iter()
            .map(|b| b.digest)
            .filter(|d| !keep.contains(d))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(REMOTE_BLOBS).map_err(db_err)?;
                for d in &stale {
                    t.remove(d.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(stale.len() as u64)
    }
}

impl Store {
    /// Fetches every blob an image names that is recorded as remote and not here (`fsck
    /// --fetch`); returns them.
    pub fn fetch_remote_image_blobs(&self) -> Result<Vec<RemoteBlob>> {
        let mut done: Vec<RemoteBlob> = Vec::new();
        for t in self.images()? {
            for b in t.image.blobs() {
                if self.has_blob(b) || done.iter().any(|r| &r.digest == b) {
                    continue;
                }
                if let Some(rb) = self.remote_blob(b)? {
                    self.fetch_remote(&rb)?;
                    done.push(rb);
                }
            }
        }
        Ok(done)
    }
}
