//! Typed errors of cataloguing an image.

/// Why an image could not be catalogued. A single file a cataloger cannot read (a truncated
/// ELF, a malformed METADATA, a zip bomb) is not an error: it is skipped with a note in
/// [`Sbom::notes`](crate::Sbom::notes).
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The image could not be found or a layer could not be read.
    #[error(transparent)]
    Image(#[from] whittle_analyze::AnalyzeError),
    /// A temporary file (for a large jar or an executable) could not be written.
    #[error("temporary file for {what}: {source}")]
    Spool {
        /// Which file was being spooled.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading a layer entry failed (the layer stream is broken).
    #[error("layer {layer}, {path}: {source}")]
    Read {
        /// The layer's index.
        layer: usize,
        /// The entry.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = SbomError> = std::result::Result<T, E>;
