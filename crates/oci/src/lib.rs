//! Image types that every layer of whittle shares, so that no crate has to depend on another
//! crate's job to name them: the frontend, the build graph, the solver, the store and the
//! registry all speak of the same [`Platform`], [`Digest`], [`media_type`]s, image
//! [`Reference`]s, [`Descriptor`]s, [`Manifest`]s and [`Index`]es, and the typed
//! [`ImageConfig`] (Docker's extensions and unknown fields kept, written deterministically).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod attestation;
mod config;
mod descriptor;
mod digest;
mod layer_origin;
mod manifest;
pub mod media_type;
pub mod platform;
mod reference;

pub use config::{ContainerConfig, Field, Healthcheck, History, ImageConfig, RootFs};
pub use descriptor::{Descriptor, PlatformSpec};
pub use digest::{chain_id, Digest, DigestParseError};
pub use layer_origin::{
    layer_origins_json, parse_layer_origins, LayerOrigin, LAYERS_ANNOTATION, MAX_LAYERS_ANNOTATION,
};
pub use manifest::{Index, Manifest};
pub use platform::Platform;
pub use reference::{
    valid_domain, valid_path_component, Reference, ReferenceError, ReferenceProblem, DOCKER_HUB,
};
