//! Text rendering of `whittle analyze`: layers, dive's figures and inefficient files (as dive
//! prints them in CI mode), findings with their fixes, and the CI results. [`render_short`] is
//! the summary and findings alone, which `whittle build --analyze` prints.

use super::storeutil::human_size;
use std::io::{self, Write};
use whittle_analyze::{Analysis, CiReport, LayerOrigin, RuleStatus};

/// How many inefficient files and finding paths are printed.
const MAX_ROWS: usize = 20;

/// Image-supplied text with control characters escaped, so paths and history lines cannot
/// drive the terminal.
pub(crate) fn clean(s: &str) -> String {
    whittle_analyze::clean(s)
}

fn shorten(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        return s;
    }
    s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
}

/// What made a layer: `Dockerfile:12 (stage builder) RUN make` when whittle built the image,
/// else the history's command; on one line.
fn step(origin: Option<&LayerOrigin>, command: &str) -> String {
    let command = command.replace('\n', " ");
    match origin {
        Some(o) if command.is_empty() => o.to_string(),
        Some(o) => format!("{o} {command}"),
        None => command,
    }
}

fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.4} %", v * 100.0)
    } else {
        "n/a (no bytes above the first layer)".to_string()
    }
}

/// Writes the analysis.
pub fn render(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    header(w, a)?;
    writeln!(w)?;
    layers(w, a)?;
    writeln!(w)?;
    figures(w, a)?;
    inefficient_files(w, a)?;
    writeln!(w)?;
    findings(w, a)
}

/// Writes the summary (size, dive's figures) and the findings, without the layer table and the
/// inefficient files.
pub fn render_short(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    header(w, a)?;
    figures(w, a)?;
    writeln!(w)?;
    findings(w, a)
}

fn header(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    let img = &a.image;
    writeln!(w, "Image: {}", clean(&img.name))?;
    let total = match img.blob_size_bytes {
        Some(b) => format!(
            "{} ({} compressed)",
            human_size(img.size_bytes),
            human_size(b)
        ),
        None => human_size(img.size_bytes),
    };
    writeln!(
        w,
        "Total size: {total} in {} layers, {} files",
        a.layer.len(),
        img.files
    )
}

fn layers(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    writeln!(w, "Layers:")?;
    writeln!(
        w,
        "{:>3}  {:>9}  {:>7}  {:>7}  {:>7}  COMMAND",
        "#", "SIZE", "ADDED", "CHANGED", "REMOVED"
    )?;
    for l in &a.layer {
        writeln!(
            w,
            "{:>3}  {:>9}  {:>7}  {:>7}  {:>7}  {}",
            l.index,
            human_size(l.size_bytes),
            l.files_added,
            l.files_changed,
            l.files_removed,
            shorten(&step(l.origin.as_ref(), &l.command), 80)
        )?;
    }
    Ok(())
}

fn figures(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    let img = &a.image;
    writeln!(w, "  efficiency: {:.4} %", img.efficiency_score * 100.0)?;
    writeln!(
        w,
        "  wastedBytes: {} bytes ({})",
        img.wasted_bytes,
        human_size(img.wasted_bytes)
    )?;
    writeln!(
        w,
        "  userWastedPercent: {}",
        percent(img.user_wasted_percent)
    )
}

fn inefficient_files(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    let img = &a.image;
    writeln!(w, "Inefficient Files:")?;
    writeln!(w, "{:>5}  {:>12}  File Path", "Count", "Wasted Space")?;
    if img.file_reference.is_empty() {
        writeln!(w, "None")?;
    }
    for f in img.file_reference.iter().take(MAX_ROWS) {
        writeln!(
            w,
            "{:>5}  {:>12}  {}",
            f.count,
            human_size(f.size_bytes),
            clean(&f.file)
        )?;
    }
    if img.file_reference.len() > MAX_ROWS {
        writeln!(
            w,
            "  ... {} more (--format json lists all)",
            img.file_reference.len() - MAX_ROWS
        )?;
    }
    Ok(())
}

fn findings(w: &mut dyn Write, a: &Analysis) -> io::Result<()> {
    writeln!(w, "Findings:")?;
    if a.findings.is_empty() {
        writeln!(w, "None")?;
    }
    for f in &a.findings {
        writeln!(
            w,
            "- [{}] {} ({}, {} files)",
            serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            clean(&f.title),
            human_size(f.bytes),
            f.files
        )?;
        if f.created_by.is_some() || f.origin.is_some() {
            let by = f.created_by.as_deref().unwrap_or_default();
            writeln!(
                w,
                "    layer {}: {}",
                f.layer,
                shorten(&step(f.origin.as_ref(), by), 100)
            )?;
        }
        if let Some(r) = f.related_layer {
            if f.related_created_by.is_some() || f.related_origin.is_some() {
                let by = f.related_created_by.as_deref().unwrap_or_default();
                let shown = step(f.related_origin.as_ref(), by);
                writeln!(w, "    layer {r}: {}", shorten(&shown, 100))?;
            }
        }
        for p in f.paths.iter().take(5) {
            writeln!(w, "    {:>9}  {}", human_size(p.bytes), clean(&p.path))?;
        }
        if f.files as usize > f.paths.len().min(5) {
            writeln!(w, "    ...")?;
        }
        writeln!(w, "    fix: {}", f.fix)?;
    }
    Ok(())
}

/// Writes the CI results as dive does.
pub fn render_ci(w: &mut dyn Write, ci: &CiReport) -> io::Result<()> {
    writeln!(w)?;
    writeln!(w, "Results:")?;
    for r in &ci.results {
        let status = match r.status {
            RuleStatus::Pass => "PASS",
            RuleStatus::Fail => "FAIL",
            RuleStatus::Skip => "SKIP",
            RuleStatus::Misconfigured => "MISCONFIGURED",
        };
        if r.message.is_empty() {
            writeln!(w, "  {status}: {}", r.rule)?;
        } else {
            writeln!(w, "  {status}: {}: {}", r.rule, r.message)?;
        }
    }
    if ci.misconfigured {
        writeln!(w, "CI Misconfigured")?;
        return Ok(());
    }
    let count = |s: RuleStatus| ci.results.iter().filter(|r| r.status == s).count();
    writeln!(
        w,
        "Result:{} [Total:{}] [Passed:{}] [Failed:{}] [Warn:0] [Skipped:{}]",
        if ci.pass { "PASS" } else { "FAIL" },
        ci.results.len(),
        count(RuleStatus::Pass),
        count(RuleStatus::Fail),
        count(RuleStatus::Skip)
    )
}
