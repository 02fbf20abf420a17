//! GitHub Actions workflow commands: `::warning file=...,line=...,col=...,title=...::message`.

use crate::{Report, Severity};

/// Escapes a command's message (`%`, CR, LF; other control characters as `\u{..}`, so that
/// Dockerfile text cannot drive the terminal of whoever reads the log).
fn data(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect();
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command property (also `:` and `,`).
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn render(report: &Report, file: &str) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut props = format!("file={}", property(file));
        if f.span.line > 0 {
            props.push_str(&format!(",line={},col={}", f.span.line, f.span.col.max(1)));
        }
        props.push_str(&format!(",title={}", property(f.rule)));
        let mut msg = f.message.clone();
        if let Some(h) = &f.hint {
            msg.push('\n');
            msg.push_str(h);
        }
        out.push_str(&format!("::{level} {props}::{}\n", data(&msg)));
    }
    if let Some(e) = &report.error {
        let mut props = format!("file={}", property(file));
        if e.pos.line > 0 {
            props.push_str(&format!(",line={},col={}", e.pos.line, e.pos.col.max(1)));
        }
        let mut msg = e.kind.to_string();
        if let Some(h) = &e.hint {
            msg.push('\n');
            msg.push_str(h);
        }
        out.push_str(&format!(
            "::error {props},title=DockerfileError::{}\n",
            data(&msg)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(data("50%\nx"), "50%25%0Ax");
        assert_eq!(data("a\u{1b}[2J"), "a\\u{1b}[2J");
    }
}
