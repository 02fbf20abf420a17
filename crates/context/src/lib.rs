//! Build contexts: which files a build may read (`.dockerignore`), and a digest of each, so that
//! the build cache can tell when a `COPY` source really changed.
//!
//! - [`ignore::Matcher`]: Docker's `.dockerignore` rules.
//! - [`index::Index`]: the walked context with content+metadata digests (Merkle for directories),
//!   reusing earlier digests through a [`index::StatCache`].
//! - [`merkle`]: the one digest scheme for trees, shared with the solver's snapshots.

pub mod ignore;
pub mod index;
pub mod merkle;
pub mod names;

pub use ignore::Matcher;
pub use index::{Digest, Entry, EntryKind, Index, MemoryStatCache, StatCache};
