//! The hostile-input audit as tests: Dockerfiles, contexts, archives and concurrent use the way
//! an attacker or a careless CI job would produce them. Each case must end in a clear error or a
//! correct result, and never reach host files, lose data or grow without bound.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod bind;
mod context;
mod dockerfile;
mod kill;
mod prune_race;
mod secrets;

pub use common::{build, env, extract_image, image_file, root_or_skip, whittle, Env};
