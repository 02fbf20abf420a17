//! The build graph: the seam between a frontend (the Dockerfile) and the solver, as BuildKit's
//! LLB is, done our way.
//!
//! - [`Op`]: typed operations: sources (scratch, image, context), exec with its mounts, file
//!   operations (copy, download, mkdir) and merge. Each is fully resolved by the frontend (the
//!   environment a command sees, its user and directory, heredoc scripts, absolute
//!   destinations), so the solver needs no Dockerfile knowledge.
//! - [`Graph`]: the vertices in topological order, interned by a versioned definition digest
//!   ([`definition_digest`], [`VERSION`]): identical operations on identical inputs are one
//!   vertex, wherever they appear. Each vertex keeps the Dockerfile lines it came from
//!   ([`Origin`]) for progress and errors; they are not part of the definition.
//! - [`StageImage`]: each needed stage as an image: its root vertex, the config it starts from,
//!   and every config change and history entry, in order.
//! - [`to_dot`]: Graphviz output; the graph serialises to JSON with serde.

mod chmod;
mod dot;
mod graph;
mod image;
mod op;

pub use chmod::valid_chmod;
pub use dot::to_dot;
pub use graph::{
    definition_digest, definition_digest_at, Builder, Graph, Origin, Target, Vertex, VertexId,
    VERSION,
};
pub use image::{ConfigBase, ConfigChange, Healthcheck, StageImage};
pub use op::{
    ContextSource, Copy, Download, Exec, File, ImageSource, InlineFile, Merge, Mkdir, Mount,
    MountKind, Network, Op, Owner, Sharing,
};
pub use whittle_oci::Platform;
