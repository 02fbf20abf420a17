//! Image types that every layer of whittle shares, so that no crate has to depend on another
//! crate's job to name them: the frontend, the build graph, the solver, the store and the
//! registry all speak of the same [`Platform`].

mod platform;

pub use platform::Platform;
