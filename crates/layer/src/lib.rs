//! Layers: deterministic tar writing from a directory or an overlay upper dir, parallel and
//! reproducible compression, digests computed while streaming, and safe extraction of untrusted
//! layers.
//!
//! Reproducibility: entries are sorted by name bytes (depth first, a directory before its
//! contents), uid/gid are numeric with empty user/group names, atime/ctime are never written,
//! mtimes are clamped to the build epoch ([`default_epoch`]: `SOURCE_DATE_EPOCH`, else 0), and
//! gzip output does not depend on the number of threads.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod blocks;
pub mod compress;
pub mod digest;
pub mod error;
pub mod extract;
pub mod sha256;
pub mod write;

pub use blocks::{BlockIndex, Previous};
pub use compress::{decompress, detect, Compression, Detected};
pub use digest::{chain_id, Digest, HashingReader, HashingWriter};
pub use error::{ExtractError, WriteError};
pub use extract::{extract_layer, DevicePolicy, ExtractOptions, ExtractSummary, WhiteoutMode};
pub use write::{
    default_epoch, write_layer, write_layer_reusing, LayerInfo, SourceKind, WriteOptions,
    OPAQUE_MARKER, WHITEOUT_PREFIX,
};

/// Layer media types, named here as before (they live in `whittle_oci::media_type`).
pub use whittle_oci::media_type::{
    OCI_LAYER_GZIP as MEDIA_TYPE_LAYER_GZIP, OCI_LAYER_TAR as MEDIA_TYPE_LAYER_TAR,
    OCI_LAYER_ZSTD as MEDIA_TYPE_LAYER_ZSTD,
};
