//! Errors of making and attaching attestations.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// A `--sbom`, `--provenance` or `--attest` value whittle does not understand.
    #[error("{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Box<whittle_store::StoreError>),
    /// Cataloguing the image failed.
    #[error("cataloguing {image}: {source}")]
    Sbom {
        image: String,
        #[source]
        source: Box<whittle_sbom::SbomError>,
    },
    /// Writing an attestation file (`-o type=local`) or the SBOM cache failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A document could not be written or read as JSON.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<whittle_store::StoreError> for AttestError {
    fn from(e: whittle_store::StoreError) -> Self {
        AttestError::Store(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, AttestError>;
