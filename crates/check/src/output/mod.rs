//! Rendering a [`Report`](crate::Report): text (the compiler-style renderer that parse errors
//! use), JSON, SARIF 2.1.0 and GitHub workflow annotations.

mod github;
mod json;
mod sarif;
mod text;

pub use github::render as github;
pub use json::render as json;
pub use sarif::render as sarif;
pub use text::render as text;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Github,
}

/// Renders `report` about `file` (whose text is `source`) in `format`.
pub fn render(format: Format, report: &crate::Report, file: &str, source: &str) -> String {
    match format {
        Format::Text => text(report, file, source),
        Format::Json => json(report, file),
        Format::Sarif => sarif(report, file),
        Format::Github => github(report, file),
    }
}

/// The first line of `s`, at most 60 characters, control characters escaped.
pub fn shorten(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(60).collect();
    if first.chars().count() > 60 || s.contains('\n') {
        out.push_str("...");
    }
    whittle_dockerfile::escape_controls(&out)
}
