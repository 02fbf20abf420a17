//! The content store: blobs in an OCI image layout, metadata in a redb database, file locks so
//! several whittle processes can share one store, and `fsck`/`prune`.
//!
//! ## Layout of a store root
//!
//! ```text
//! oci-layout, index.json   OCI image layout (index.json lists tagged images; skopeo/umoci read it)
//! blobs/sha256/<hex>       content-addressed blobs, written temp -> fsync -> rename
//! tmp/                     temp files of blobs being written (dropped by fsck/prune)
//! meta.redb                tags, images, indexes, snapshots, cache records, cache mounts,
//!                          remote blobs (in a registry, not here: remote_blobs.rs)
//! snapshots/<hex>          snapshot dirs keyed by chain id (tmp-* while being made, stale-* moved
//!                          aside after a crash; see `snapshots`: they are not synced)
//! cache-mounts/<hex>       persistent RUN --mount=type=cache dirs
//! copies/<step>            incremental COPY hints: a COPY's last snapshot and its files' sources
//! locks/                   flock files
//! ```
//!
//! ## Crash safety and concurrency
//!
//! A blob is written to `tmp/`, fsynced, renamed into `blobs/` and its directory fsynced before any
//! database record can mention it; redb commits are durable and atomic. A kill at any moment leaves
//! at worst a temp file or an unreferenced blob, which `fsck`/`prune` drop.
//!
//! redb holds an exclusive lock on its file while open, so the database is opened per transaction
//! under `locks/db.lock` (waited for, held for milliseconds), never for the length of a build.
//! Writers hold a *shared* lease (`locks/gc.lock`) from the moment they write a blob until it is
//! referenced; `prune` and temp-file cleanup take it exclusively, so they never delete what a
//! running build is about to reference, while any number of builds run side by side.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive;
mod attestations;
mod blobs;
mod cache;
mod cache_mounts;
mod compressed;
mod copies;
pub mod daemon;
mod error;
mod gc;
mod hints;
mod images;
mod indexes;
mod layer_blocks;
mod lock;
mod output;
mod remote_blobs;
mod snapshots;
mod store;
mod unpack;

pub use archive::{load, save, save_with_indexes, ArchiveFormat, LoadedImage};
pub use attestations::{IndexEntry, StatementRef, MAX_STATEMENT};
pub use blobs::{BlobWriter, ProducedBlobWriter};
pub use cache::CacheRecord;
pub use cache_mounts::CacheMount;
pub use copies::CopyManifest;
pub use error::{Result, StoreError};
pub use gc::{FsckReport, PruneOptions, PruneReport};
pub use images::{
    config_platform, HistoryEntry, ImageRecord, TagTarget, TaggedImage, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
pub use indexes::{IndexMember, IndexRecord};
pub use lock::FileLock;
pub use output::OutputFile;
pub use remote_blobs::{BlobFetcher, RemoteBlob};
pub use snapshots::{SnapshotDir, SnapshotRecord};
pub use store::{default_root, Lease, Store, WriteBatch};
pub use unpack::UnpackedLayer;
pub use whittle_oci::Digest;
