//! What can go wrong moving a build cache.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache config is not one this version reads (garbage, a limit exceeded, an
    /// inconsistent entry, another format version).
    #[error("cache {source_name}: {problem}")]
    Format {
        source_name: String,
        problem: String,
    },
    /// The manifest is not a whittle build cache, or names blobs wrongly.
    #[error("cache {source_name}: {problem}")]
    Artifact {
        source_name: String,
        problem: String,
    },
    /// A blob did not match what the cache said (digest, size or diff id).
    #[error("cache {source_name}: layer {blob}: {problem}")]
    Blob {
        source_name: String,
        blob: String,
        problem: String,
    },
    #[error("cache {source_name}: {source}")]
    Registry {
        source_name: String,
        #[source]
        source: Box<whittle_registry::RegistryError>,
    },
    #[error("cache {source_name}: {source}")]
    Store {
        source_name: String,
        #[source]
        source: Box<whittle_store::StoreError>,
    },
    #[error("cache {source_name}: cannot {what} {}: {source}", path.display())]
    Io {
        source_name: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
