//! Text: each finding as the parse-error renderer shows errors (`file:line:col`, the line, a
//! caret, the hint), then a summary line like `docker build --check`'s.

use crate::Report;
use whittle_dockerfile::{render_snippet, Pos};

pub fn render(report: &Report, file: &str, source: &str) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let label = format!("{}[{}]", f.severity.as_str(), f.rule);
        let mut hint = f.hint.clone();
        if let Some(info) = f.info() {
            let mut extra = Vec::new();
            if !f.aliases.is_empty() {
                extra.push(format!("also known as {}", f.aliases.join(", ")));
            }
            if !info.url.is_empty() {
                extra.push(info.url.to_string());
            }
            if f.fix.is_some() {
                extra.push("fixable with --fix".to_string());
            }
            if !extra.is_empty() {
                let note = extra.join("; ");
                hint = Some(match hint {
                    Some(h) => format!("{h}\n({note})"),
                    None => format!("({note})"),
                });
            }
        }
        out.push_str(&render_snippet(
            &label,
            &f.message,
            file,
            source,
            Pos::new(f.span.line, f.span.col),
            f.span.len,
            hint.as_deref(),
        ));
        out.push('\n');
    }
    let n = report.findings.len();
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == crate::Severity::Error)
        .count();
    if report.error.is_some() {
        out.push_str(&format!(
            "Check stopped: {file} has an error (shown above); {n} {} found before it.\n",
            if n == 1 {
                "problem was"
            } else {
                "problems were"
            }
        ));
    } else if n == 0 {
        out.push_str("Check complete, no warnings found.\n");
    } else {
        out.push_str(&format!(
            "Check complete, {n} {} found{}!\n",
            if n == 1 {
                "problem has been"
            } else {
                "problems have been"
            },
            if errors > 0 {
                format!(" ({errors} errors)")
            } else {
                String::new()
            }
        ));
    }
    out
}
