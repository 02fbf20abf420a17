//! Typed errors of registry operations. Each names the registry and repository it is about, so
//! the CLI can print it as is.

use std::path::PathBuf;
use whittle_oci::Digest;

/// Errors of pulls, pushes and logins.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An image reference does not parse.
    #[error(transparent)]
    Reference(#[from] whittle_oci::ReferenceError),
    /// A request cannot be made for a reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// What was given.
        reference: String,
        /// Why it is refused.
        reason: String,
    },
    /// The registry refused our credentials, or wants some and we have none.
    #[error("{registry}: authentication required for repository {repository}: {detail}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What the registry said, and what to do.
        detail: String,
    },
    /// `login` with credentials the registry does not accept.
    #[error("{registry}: login refused: {detail}")]
    LoginRefused {
        /// Registry host.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// Authenticated, but not allowed.
    #[error("{registry}: access to repository {repository} denied: {detail}")]
    Denied {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What the registry said.
        detail: String,
    },
    /// A manifest, tag, blob or repository does not exist.
    #[error("{registry}: {what} not found in repository {repository}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What was asked for.
        what: String,
    },
    /// Rate limited, still after waiting.
    #[error(
        "{registry}: too many requests for repository {repository} (HTTP 429); try again later"
    )]
    TooManyRequests {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
    },
    /// Any other unexpected HTTP status.
    #[error("{registry}: {what} in repository {repository}: HTTP {status}: {detail}")]
    Status {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The request.
        what: String,
        /// HTTP status code.
        status: u16,
        /// Error text from the registry.
        detail: String,
    },
    /// Could not talk to the registry at all (DNS, connection, TLS, timeout).
    #[error("{registry}: {what}: {source}")]
    Transport {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The cause.
        source: Box<ureq::Error>,
    },
    /// A blob or manifest does not hash to the digest it is known by.
    #[error("{registry}/{repository}: {what} {expected} has wrong content (it hashes to {actual}); nothing was stored")]
    DigestMismatch {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// "blob" or "manifest".
        what: &'static str,
        /// Digest it is known by.
        expected: Digest,
        /// Digest of what arrived.
        actual: Digest,
    },
    /// A blob's size differs from its descriptor.
    #[error("{registry}/{repository}: blob {digest} is {actual} bytes, its manifest says {expected}; nothing was stored")]
    SizeMismatch {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The blob.
        digest: Digest,
        /// From the descriptor.
        expected: u64,
        /// What arrived (at least).
        actual: u64,
    },
    /// A document from the registry is larger than documents may be.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// Which document.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Docker's schema 1 manifests (deprecated, unsigned-content) are not supported.
    #[error("{reference} is a Docker schema 1 manifest, which whittle does not support; push the image again with a current docker or skopeo (schema 2 / OCI)")]
    Schema1 {
        /// The image.
        reference: String,
    },
    /// A manifest, index or descriptor is not valid.
    #[error("{what}: {reason}")]
    InvalidManifest {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An index has no image for the wanted platform.
    #[error("{reference} has no image for {platform} (it has: {available})")]
    NoPlatform {
        /// The image.
        reference: String,
        /// Wanted platform.
        platform: String,
        /// Platforms it has.
        available: String,
    },
    /// `--pull=never` and the image is not in the store.
    #[error("{reference} is not in the store and pulling is disabled (--pull=never); pull it first with `whittle pull {reference}`")]
    NotInStore {
        /// The image.
        reference: String,
    },
    /// The store has the image, but not for the wanted platform (and pulling it was not
    /// allowed, or failed).
    #[error(
        "{reference} is in the store only for {have}, not for {wanted}{}: pull that platform \
         with `whittle pull --platform {wanted} {reference}` (needs a registry that has it), or \
         build for {have} with --platform {have}",
        pull_error.as_ref().map(|e| format!(" (pulling it failed: {e})")).unwrap_or_default()
    )]
    WrongPlatform {
        /// The image.
        reference: String,
        /// Wanted platform.
        wanted: String,
        /// The platforms the store has, comma-separated.
        have: String,
        /// Why pulling it failed, when it was tried.
        pull_error: Option<Box<RegistryError>>,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} ({action}): {message}")]
    CredentialHelper {
        /// Helper name.
        helper: String,
        /// get, store, erase.
        action: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The docker config file cannot be read or written.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading a local file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] whittle_store::StoreError),
}

/// Shorthand for registry results.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
