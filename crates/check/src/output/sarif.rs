//! SARIF 2.1.0, for code-scanning UIs: one run, the rules that fired in
//! `tool.driver.rules`, one result per finding.

use crate::{Report, Severity};
use serde_json::json;

pub fn render(report: &Report, file: &str) -> String {
    let mut rules: Vec<&'static str> = Vec::new();
    for f in &report.findings {
        if !rules.contains(&f.rule) {
            rules.push(f.rule);
        }
    }
    let rule_docs: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            let info = crate::rules::find(r);
            let mut v = json!({
                "id": r,
                "name": r,
                "shortDescription": { "text": info.map_or("", |i| i.description) },
                "properties": {
                    "aliases": info.map_or(&[][..], |i| i.aliases),
                    "source": info.map(|i| i.origin.as_str()),
                },
            });
            if let Some(url) = info.map(|i| i.url).filter(|u| !u.is_empty()) {
                v["helpUri"] = json!(url);
            }
            v
        })
        .collect();
    let mut results: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let mut location =
                json!({ "physicalLocation": { "artifactLocation": { "uri": file } } });
            if f.span.line > 0 {
                location["physicalLocation"]["region"] = json!({
                    "startLine": f.span.line,
                    "startColumn": f.span.col.max(1),
                    "endColumn": f.span.col.max(1) + f.span.len.max(1),
                });
            }
            let mut text = f.message.clone();
            if let Some(h) = &f.hint {
                text.push_str(&format!(" ({})", h.lines().next().unwrap_or("")));
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": rules.iter().position(|r| *r == f.rule),
                "level": level,
                "message": { "text": text },
                "locations": [location],
            })
        })
        .collect();
    // The parse or planning error, as a result of its own (tools show only results).
    if let Some(e) = &report.error {
        let mut location = json!({ "physicalLocation": { "artifactLocation": { "uri": file } } });
        if e.pos.line > 0 {
            location["physicalLocation"]["region"] =
                json!({ "startLine": e.pos.line, "startColumn": e.pos.col.max(1) });
        }
        results.push(json!({
            "ruleId": "DockerfileError",
            "level": "error",
            "message": { "text": e.kind.to_string() },
            "locations": [location],
        }));
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "whittle check",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_docs,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
