//! The solver: runs a [`whittle_graph::Graph`] into an image in the store.
//!
//! - [`build`] runs the vertices the target needs, each once its inputs are done, every one
//!   looked up in the cache first by a key made of its definition digest and its inputs' keys
//!   and content digests ([`solve`]); records are typed ([`record`]).
//! - [`exec::Executor`] runs RUN containers: whittle's runtime, or a fake in tests.
//! - [`copy`] implements COPY/ADD, [`merged`] reads a stack of snapshot directories as one
//!   tree, [`config`] applies the graph's config changes, [`events`] reports progress.

pub mod config;
pub mod copy;
pub mod entitlements;
pub mod events;
pub mod exec;
pub mod export;
pub mod fetch;
pub mod merged;
pub mod record;
pub mod solve;
pub mod ssh;

pub use entitlements::Entitlement;
pub use events::{Event, Progress, Recorder, Silent};
pub use exec::Executor;
pub use solve::{
    build, cache_key, needed, BuildError, BuildOptions, BuildResult, PlatformResult, StageFiles,
    StageLayer,
};
