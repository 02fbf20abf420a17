//! `whittle analyze -i`: an interactive view in the spirit of dive. A layer list (size, and the
//! Dockerfile `file:line` and stage when whittle built the image, else the history's command),
//! and the image's file tree as of the selected layer with what that layer added, changed and
//! removed marked, directories collapsible, filters for dive's wasted files and for the
//! selected layer's changes.
//!
//! - `stack.rs`: the filesystem as of a layer, marked;
//! - `model.rs`: the state and what each key does (no terminal: unit-tested);
//! - `render.rs`: drawing with ratatui (tested on its `TestBackend`);
//! - `term.rs`: raw mode and the alternate screen, restored on every way out, and the key loop.

mod model;
mod render;
mod stack;
mod term;

pub use model::{App, Key, Outcome, Pane, Row, KEYS};
pub use render::draw;
pub use stack::{snapshot, FsNode, Status, ViewEntry, ViewLayer};
pub use term::{run, TuiError};
