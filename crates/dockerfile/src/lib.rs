//! The Dockerfile frontend: parser, word expansion and multi-stage planner.
//!
//! Pure code: no I/O. Everything that comes in is untrusted text; every error
//! carries a source position.
