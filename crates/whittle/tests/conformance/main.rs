//! Where whittle must give the image BuildKit gives: each case a defect that was found by
//! building the same Dockerfile with both, kept fixed by a test that needs no docker, and the
//! recorded suite (`recorded.rs`): every case under `cases/` against BuildKit's result.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

pub use common::{build, env, extract_image, image_file, root_or_skip, whittle, Env};

mod copy;
mod defects;
mod flags;
mod listing;
mod recorded;
