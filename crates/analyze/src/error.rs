//! Typed errors of image analysis.

use std::io;
use std::path::PathBuf;

/// Why an image could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A file could not be opened or read.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The content store failed (image not found, blob missing, ...).
    #[error(transparent)]
    Store(#[from] whittle_store::StoreError),
    /// Reading an image from a registry failed.
    #[error(transparent)]
    Registry(#[from] whittle_registry::RegistryError),
    /// A layer's stream is not a readable (optionally compressed) tar.
    #[error("layer {layer}: {source}")]
    Layer {
        /// Which layer (index and digest or archive path).
        layer: String,
        /// The cause.
        source: io::Error,
    },
    /// A layer holds something whittle does not analyse (named in the message).
    #[error("layer {layer}: {what}")]
    Unsupported {
        /// Which layer.
        layer: String,
        /// What is not supported.
        what: String,
    },
    /// The manifest, config or archive layout is not a valid image.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A JSON document (manifest, config, index) failed to parse.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// An image argument that names no supported source.
    #[error("{0}")]
    InvalidInput(String),
    /// An image in the store was named but no store was given.
    #[error("image {0:?} is looked up in the store, but no store was given")]
    NeedStore(String),
    /// A limit that bounds memory or time on untrusted input was exceeded; the analysis stops
    /// rather than report figures for part of the image.
    #[error("{what}: more than {limit} (limit; see Limits)")]
    Limit {
        /// What was counted (with the layer, when known).
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A `.dive-ci` file or CI threshold that cannot be read.
    #[error("CI configuration: {0}")]
    CiConfig(String),
}

impl AnalyzeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        AnalyzeError::Io {
            op,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        AnalyzeError::Json {
            what: what.into(),
            source,
        }
    }
}

/// Shorthand for analysis results.
pub type Result<T, E = AnalyzeError> = std::result::Result<T, E>;
