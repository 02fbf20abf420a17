//! Errors with source positions, and their rendering with a caret under the offending text.

use serde::Serialize;
use std::fmt;

/// A 1-based position in the Dockerfile: line and column (in characters). Line 0 means the
/// error is about the file as a whole, not a place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const fn new(line: usize, col: usize) -> Self {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What went wrong. The messages follow BuildKit's wording where BuildKit has one, so that
/// people can search for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the Dockerfile cannot be empty")]
    Empty,
    #[error("file with no instructions")]
    NoInstructions,
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("unknown flag: --{flag} for {instruction}")]
    UnknownFlag { instruction: String, flag: String },
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    #[error("invalid value for --{flag}: {reason}")]
    BadFlagValue { flag: String, reason: String },
    #[error("{0}")]
    Arguments(String),
    #[error("{0}")]
    Syntax(String),
    #[error("unterminated heredoc: no line with the terminator {0:?} before the end of the file")]
    UnterminatedHeredoc(String),
    #[error("{0}")]
    Expansion(String),
    #[error("{0}")]
    Stage(String),
    #[error("circular dependency detected on stage: {0}")]
    Cycle(String),
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    #[error("{instruction} must come after a FROM instruction")]
    NoStage { instruction: String },
}

/// A Dockerfile error: what, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// Where the offending text starts.
    pub pos: Pos,
    /// How many characters to underline (at least 1).
    pub len: usize,
    /// A hint telling the user what to do.
    pub hint: Option<String>,
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "line {}:{}: {}", self.pos.line, self.pos.col, self.kind)
        }
    }
}

impl Error {
    pub fn new(kind: ErrorKind, pos: Pos) -> Self {
        Error {
            kind,
            pos,
            len: 1,
            hint: None,
        }
    }

    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the error the way compilers do:
    ///
    /// ```text
    /// error: unknown instruction: COPPY
    ///  --> Dockerfile:3:1
    ///   |
    /// 3 | COPPY . /src
    ///   | ^^^^^
    ///   = help: did you mean COPY?
    /// ```
    pub fn render(&self, file: &str, source: &str) -> String {
        render_snippet(
            "error",
            &self.kind.to_string(),
            file,
            source,
            self.pos,
            self.len,
            self.hint.as_deref(),
        )
    }
}

/// Renders a diagnostic about `pos` in `source` the way compilers do: `label: message`, the
/// file position, the line with a caret under `len` characters, and the hint. Errors and the
/// findings of `whittle check` share it. Control characters from the Dockerfile are shown
/// escaped (`\x1b`), so that hostile text cannot drive the terminal; the caret stays aligned.
pub fn render_snippet(
    label: &str,
    message: &str,
    file: &str,
    source: &str,
    pos: Pos,
    len: usize,
    hint: Option<&str>,
) -> String {
    let message = escape_controls(message);
    let hint = hint.map(|h| {
        // Hints may span lines (a sketch); indent the lines after the first.
        h.split('\n')
            .map(|l| escape_controls(l.trim_end()))
            .collect::<Vec<_>>()
            .join("\n          ")
    });
    if pos.line == 0 {
        // Not about a place in the file (an unknown --target, an empty file).
        let mut out = format!("{label}: {message}\n --> {file}\n");
        if let Some(hint) = &hint {
            out.push_str(&format!("  = help: {hint}\n"));
        }
        return out;
    }
    let mut out = format!(
        "{label}: {message}\n --> {}:{}:{}\n",
        file, pos.line, pos.col
    );
    let line_text = source
        .split('\n')
        .nth(pos.line.saturating_sub(1))
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    if let Some(text) = line_text {
        let text = text.trim_start_matches('\u{feff}');
        let num = pos.line.to_string();
        let pad = " ".repeat(num.len());
        // Each character as shown: tabs as single spaces (they would misalign the caret),
        // control characters escaped.
        let shown: Vec<String> = text
            .chars()
            .map(|c| match c {
                '\t' => " ".to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect();
        let width = |cs: &[String]| cs.iter().map(|s| s.chars().count()).sum::<usize>();
        let col = pos.col.max(1);
        let (lead, len) = if col > shown.len() {
            (width(&shown), 1)
        } else {
            let n = len.min(shown.len() + 1 - col).max(1);
            (
                width(&shown[..col - 1]),
                width(&shown[col - 1..col - 1 + n]).max(1),
            )
        };
        out.push_str(&format!("{pad} |\n{num} | {}\n", shown.concat()));
        out.push_str(&format!(
            "{pad} | {}{}\n",
            " ".repeat(lead),
            "^".repeat(len)
        ));
        if let Some(hint) = &hint {
            out.push_str(&format!("{pad} = help: {hint}\n"));
        }
    } else if let Some(hint) = &hint {
        out.push_str(&format!("  = help: {hint}\n"));
    }
    out
}

/// `s` with control characters (other than tab) escaped, for echoing untrusted text.
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closest candidate by edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for &c in candidates {
        let d = levenshtein(&word, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (word.chars().count() / 3).max(1);
    (d <= limit).then_some(c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let src = "FROM scratch\nCOPPY a b\n";
        let err = Error::new(
            ErrorKind::UnknownInstruction("COPPY".into()),
            Pos::new(2, 1),
        )
        .with_len(5)
        .with_hint("did you mean COPY?");
        assert_eq!(
            err.render("Dockerfile", src),
            "error: unknown instruction: COPPY\n --> Dockerfile:2:1\n  |\n2 | COPPY a b\n  | ^^^^^\n  = help: did you mean COPY?\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_caret_stays_aligned() {
        let src = "FROM scratch\nRUN \u{1b}[2J x\n";
        let err = Error::new(ErrorKind::Syntax("bad".into()), Pos::new(2, 10)).with_len(1);
        let out = err.render("Dockerfile", src);
        assert!(!out.contains('\u{1b}'), "{out}");
        let caret = format!("2 | RUN \\u{{1b}}[2J x\n  | {}^\n", " ".repeat(14));
        assert!(out.contains(&caret), "{out}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("COPPY", &["COPY", "RUN", "FROM"]), Some("COPY"));
        assert_eq!(suggest("zzzzzz", &["COPY", "RUN"]), None);
        assert_eq!(suggest("chmodd", &["chmod", "chown"]), Some("chmod"));
    }
}
