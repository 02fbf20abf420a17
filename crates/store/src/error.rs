//! Typed errors of the content store.

use std::io;
use std::path::PathBuf;
use whittle_oci::Digest;

/// Errors of store operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record or document is not valid JSON of the expected shape.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// Written content does not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// Announced digest.
        expected: Digest,
        /// Actual digest.
        actual: Digest,
    },
    /// A blob that should be present is not.
    #[error("blob {0} is not in the store")]
    BlobMissing(Digest),
    /// A blob recorded as remote (`remote_blobs.rs`) could not be fetched.
    #[error("blob {digest} is in {place}, not in the store, and fetching it failed: {problem}")]
    RemoteBlob {
        digest: Digest,
        /// `registry/repository`.
        place: String,
        problem: String,
    },
    /// A document is larger than documents (manifests, configs, indexes) may be.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// Which document.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// No image matches a name or id.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// The image is not in the store for the platform asked for.
    #[error("{image} is not in the store for {platform} (it is for: {available}): pull or build it for {platform}, or ask for one of those platforms")]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    /// A short id matches several images.
    #[error("{0} matches several images; give more of the id")]
    Ambiguous(String),
    /// An image reference does not parse, or cannot be used as a tag.
    #[error(transparent)]
    InvalidReference(#[from] whittle_oci::ReferenceError),
    /// A manifest or archive is not something we can store.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// An image still has tags or dependants.
    #[error("{0}")]
    Conflict(String),

    /// Asked for what the image's format cannot hold (e.g. zstd layers in a Docker manifest).
    #[error("{0}")]
    Unsupported(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> StoreError {
        StoreError::Json {
            what: what.into(),
            source,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}
