//! JSON: the findings with their rule's description and URL, for scripts.

use crate::Report;
use serde_json::json;

pub fn render(report: &Report, file: &str) -> String {
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let info = f.info();
            json!({
                "rule": f.rule,
                "aliases": f.aliases,
                "source": info.map(|i| i.origin.as_str()),
                "severity": f.severity,
                "file": file,
                "line": f.span.line,
                "column": f.span.col,
                "length": f.span.len,
                "message": f.message,
                "hint": f.hint,
                "description": info.map(|i| i.description),
                "url": info.map(|i| i.url).filter(|u| !u.is_empty()),
                "fix": f.fix.as_ref().map(|x| &x.description),
            })
        })
        .collect();
    let mut doc = json!({
        "file": file,
        "errorOnWarning": report.error_on_warning,
        "findings": findings,
    });
    // Like BuildKit's lint result: the error that stops the build, next to the warnings.
    if let Some(e) = &report.error {
        doc["buildError"] = json!({
            "message": e.kind.to_string(),
            "line": e.pos.line,
            "column": e.pos.col,
            "hint": e.hint,
        });
    }
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
