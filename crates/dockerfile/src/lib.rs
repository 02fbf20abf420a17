//! The Dockerfile frontend: parser, word expansion, multi-stage planner, and the lowering of a
//! plan to a build graph ([`lower`]).
//!
//! Pure code: no I/O. Everything that comes in is untrusted text; every error carries a
//! source position ([`Error::render`] shows it with a caret) and a hint of what to do.
//!
//! ```
//! let df = whittle_dockerfile::parse("FROM alpine AS build\nRUN make\nFROM scratch\nCOPY --from=build /app /app\n").unwrap();
//! let plan = whittle_dockerfile::plan(&df, &whittle_dockerfile::PlanOptions::default()).unwrap();
//! assert_eq!(plan.order, vec![0, 1]);
//! ```

pub mod ast;
pub mod error;
pub mod lower;
pub mod mount;
mod parser;
pub mod plan;
pub mod ports;
pub mod shell;
pub mod vars;

pub use ast::Dockerfile;
pub use error::{escape_controls, printable, render_snippet, Error, ErrorKind, Pos};
pub use lower::{lower, LowerError};
pub use parser::parse;
pub use plan::{plan, plan_with, ImageInfo, ImageResolver, Plan, PlanOptions, Platform};
