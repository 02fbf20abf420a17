//! The build cache as an OCI artifact, so that runners that start empty can build warm from a
//! registry (or a directory) another runner filled (`--cache-to`, `--cache-from`).
//!
//! - [`format`]: the cache config, versioned JSON: cache keys (the solver's, unchanged) to
//!   layers, each layer with its blob, diff id, chain id and parent chain; and what a later
//!   build needs to use a record without the files (COPY --from selections) or to explain a
//!   miss. Written with sorted entries, so the same cache is the same bytes.
//! - [`artifact`]: the OCI image manifest that carries it (`artifactType`
//!   [`format::ARTIFACT_TYPE`], the config as its config blob, the layers as its layers), and
//!   the checks an imported one must pass.
//! - [`spec`]: `--cache-to` and `--cache-from` values.
//! - [`export`]: to a registry (through `whittle_registry::push_artifact`: HEAD first, only
//!   missing blobs uploaded) or an OCI layout directory.
//! - [`import`]: only the manifest and the config are read when a build starts; a layer's blob
//!   is fetched (digest checked, and its diff id when asked) only when the solver needs it.
//!
//! Everything read is untrusted: sizes are capped, digests checked, and an import that is
//! broken is a warning and a miss, never a wrong image. `docs/cache.md` has the format and how
//! it differs from BuildKit's.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod artifact;
mod error;
pub mod export;
pub mod format;
pub mod import;
mod layout;
pub mod spec;

pub use error::CacheError;
pub use format::{CacheConfig, CacheLayer, CacheMountLayer, CacheRecord, Explanation, Selection};
pub use import::{Hit, Imported};
pub use spec::{CacheFrom, CacheTo, CacheToKind, Mode};
