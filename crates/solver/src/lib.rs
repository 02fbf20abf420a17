//! The solver: turns a [`whittle_dockerfile::Plan`] into an image in the store.
//!
//! - [`build`] runs the stages the target needs, independent ones in parallel, every step
//!   looked up in the cache first ([`solve`]).
//! - [`copy`] implements COPY/ADD, [`merged`] reads a stack of snapshot directories as one
//!   tree, [`config`] builds the image config and history, [`events`] reports progress.

pub mod config;
pub mod copy;
pub mod entitlements;
pub mod events;
pub mod fetch;
pub mod merged;
pub mod solve;
pub mod ssh;

pub use entitlements::Entitlement;
pub use events::{Event, Progress, Recorder, Silent};
pub use solve::{build, image_key, BuildError, BuildOptions, BuildResult};
