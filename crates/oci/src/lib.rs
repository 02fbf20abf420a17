//! Image types that every layer of whittle shares, so that no crate has to depend on another
//! crate's job to name them: the frontend, the build graph, the solver, the store and the
//! registry all speak of the same [`Platform`], [`Digest`], [`media_type`]s and image
//! [`Reference`]s.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod descriptor;
mod digest;
mod manifest;
pub mod media_type;
mod platform;
mod reference;

pub use descriptor::{Descriptor, PlatformSpec};
pub use digest::{chain_id, Digest, DigestParseError};
pub use manifest::{Index, Manifest};
pub use platform::Platform;
pub use reference::{
    valid_domain, valid_path_component, Reference, ReferenceError, ReferenceProblem, DOCKER_HUB,
};
