//! Image types that every layer of whittle shares, so that no crate has to depend on another
//! crate's job to name them: the frontend, the build graph, the solver, the store and the
//! registry all speak of the same [`Platform`] and [`Digest`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod digest;
pub mod media_type;
mod platform;

pub use digest::{chain_id, Digest, DigestParseError};
pub use platform::Platform;
