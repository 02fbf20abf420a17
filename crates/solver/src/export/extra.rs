//! Files an output of files gets next to the image's: the build's attestations, as BuildKit's
//! local and tar exporters write them (`sbom.spdx.json`, `provenance.json`; in each platform's
//! directory for several). The exporters call [`ExtraFiles::write`] on each tree once its files
//! are copied, before a tar is made of it, so `-o DIR` and `-o type=tar` get the same files.
//! The solver knows nothing of attestations (they are made after it, by `whittle-attest`): the
//! caller provides them through this trait.

use std::path::Path;
use whittle_oci::Platform;

/// Why the extra files could not be written.
pub type ExtraError = Box<dyn std::error::Error + Send + Sync>;

/// Writes extra files into an output's file tree.
pub trait ExtraFiles: Sync {
    /// Writes into `dir` the files of `platform`'s tree (`None`: the build's only platform).
    fn write(&self, dir: &Path, platform: Option<&Platform>) -> Result<(), ExtraError>;
}
