//! `whittle diff IMAGE_A IMAGE_B`: files added, removed and changed between two images, and the
//! size difference per directory. Thin: parses, calls `whittle_analyze::diff`, renders.

use super::analyze_text::clean;
use super::storeutil::{human_size, open};
use anyhow::Context;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use whittle_analyze::diff::{Change, Diff, DiffOptions};
use whittle_analyze::{Input, Options};

/// Show what changed between two images: files added, removed and changed, and the size
/// difference per directory.
/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// JSON.
    Json,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The first image ("before"): name[:tag], id or digest in the store; docker-archive:FILE;
    /// oci-archive:FILE; oci:DIR[:NAME].
    image_a: String,
    /// The second image ("after"), in the same forms.
    image_b: String,
    /// Output format (JSON lists every file).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Rows per list in the text output, and directories listed.
    #[arg(long, value_name = "N", default_value_t = 20)]
    top: usize,
    /// Deepest directories whose size difference is listed, in path components.
    #[arg(long, value_name = "N", default_value_t = 3)]
    depth: usize,
    /// Layers read at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

/// Runs `whittle diff`.
pub fn run(args: DiffArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let a = Input::parse(&args.image_a)?;
    let b = Input::parse(&args.image_b)?;
    let mut analyze = Options::default();
    if let Some(j) = args.jobs {
        analyze.threads = j.max(1);
    }
    let opts = DiffOptions {
        top_dirs: args.top,
        max_depth: args.depth.max(1),
        analyze,
    };
    let store = if matches!(a, Input::Store(_)) || matches!(b, Input::Store(_)) {
        Some(open(root)?)
    } else {
        None
    };
    let d = whittle_analyze::diff(&a, &b, store.as_ref(), &opts)
        .with_context(|| format!("comparing {} with {}", args.image_a, args.image_b))?;
    let mut out = io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &d)?;
            writeln!(out)?;
        }
        Format::Text => render(&mut out, &d, args.top)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn signed_size(d: i64) -> String {
    let s = human_size(d.unsigned_abs());
    match d {
        0 => "0B".to_string(),
        d if d > 0 => format!("+{s}"),
        _ => format!("-{s}"),
    }
}

fn more(w: &mut dyn Write, total: usize, top: usize) -> io::Result<()> {
    if total > top {
        writeln!(w, "  ... {} more (--format json lists all)", total - top)?;
    }
    Ok(())
}

/// Writes the comparison for a terminal.
fn render(w: &mut dyn Write, d: &Diff, top: usize) -> io::Result<()> {
    for (label, s) in [("A", &d.a), ("B", &d.b)] {
        writeln!(
            w,
            "{label}: {} ({} in {} files, {} layers)",
            clean(&s.name),
            human_size(s.size_bytes),
            s.files,
            s.layers
        )?;
    }
    let t = &d.totals;
    writeln!(
        w,
        "Size: {} ({} → {})",
        signed_size(t.size_diff),
        human_size(d.a.size_bytes),
        human_size(d.b.size_bytes)
    )?;
    writeln!(
        w,
        "Files: {} added ({}), {} removed ({}), {} changed ({} → {}), {} unchanged",
        t.files_added,
        human_size(t.bytes_added),
        t.files_removed,
        human_size(t.bytes_removed),
        t.files_changed,
        human_size(t.bytes_changed_a),
        human_size(t.bytes_changed_b),
        t.files_unchanged
    )?;
    writeln!(w)?;
    writeln!(w, "Directories (largest difference first):")?;
    if d.directories.is_empty() {
        writeln!(w, "None")?;
    }
    for x in &d.directories {
        writeln!(
            w,
            "  {:>10}  {:>9} → {:<9}  {}",
            signed_size(x.diff),
            human_size(x.size_a),
            human_size(x.size_b),
            clean(&x.path)
        )?;
    }
    for (title, files) in [("Added", &d.added), ("Removed", &d.removed)] {
        writeln!(w)?;
        writeln!(w, "{title} ({}):", files.len())?;
        for f in files.iter().take(top) {
            writeln!(w, "  {:>9}  {}", human_size(f.size_bytes), clean(&f.path))?;
        }
        more(w, files.len(), top)?;
    }
    writeln!(w)?;
    writeln!(w, "Changed ({}):", d.changed.len())?;
    for c in d.changed.iter().take(top) {
        let what: Vec<&str> = c
            .changes
            .iter()
            .map(|c| match c {
                Change::Type => "type",
                Change::Content => "content",
                Change::Mode => "mode",
                Change::Owner => "owner",
            })
            .collect();
        writeln!(
            w,
            "  {:>9} → {:<9}  {}  ({})",
            human_size(c.size_a),
            human_size(c.size_b),
            clean(&c.path),
            what.join(", ")
        )?;
    }
    more(w, d.changed.len(), top)
}
