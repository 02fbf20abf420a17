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
/// findings of `whittle check` share it. Text from the Dockerfile is made printable (control
/// characters escaped, long messages cut, a long line shown as a window around `pos`), so that
/// hostile text cannot drive the terminal; the caret stays aligned.
pub fn render_snippet(
    label: &str,
    message: &str,
    file: &str,
    source: &str,
    pos: Pos,
    len: usize,
    hint: Option<&str>,
) -> String {
    let file = printable(file, MAX_MESSAGE);
    let message = printable(message, MAX_MESSAGE);
    let hint = hint.map(|h| {
        // Hints may span lines (a sketch); indent the lines after the first.
        h.split('\n')
            .map(|l| printable(l.trim_end(), MAX_MESSAGE))
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
    let mut out = format!("{label}: {message}\n --> {file}:{}:{}\n", pos.line, pos.col);
    let line_text = source
        .split('\n')
        .nth(pos.line.saturating_sub(1))
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    if let Some(text) = line_text {
        let text = text.trim_start_matches('\u{feff}');
        let num = pos.line.to_string();
        let pad = " ".repeat(num.len());
        let (shown, caret_at, caret_len) = snippet(text, pos.col.max(1), len.max(1));
        out.push_str(&format!("{pad} |\n{num} | {shown}\n"));
        out.push_str(&format!(
            "{pad} | {}{}\n",
            " ".repeat(caret_at),
            "^".repeat(caret_len)
        ));
        if let Some(hint) = &hint {
            out.push_str(&format!("{pad} = help: {hint}\n"));
        }
    } else if let Some(hint) = &hint {
        out.push_str(&format!("  = help: {hint}\n"));
    }
    out
}

/// `s` with control characters escaped as [`printable`] does, without a length cap.
pub fn escape_controls(s: &str) -> String {
    printable(s, usize::MAX)
}

/// The longest message (or hint) rendered, in characters; the rest is cut with `…`.
const MAX_MESSAGE: usize = 500;
/// How many characters of a source line a snippet shows around the error.
const SNIPPET_WIDTH: usize = 120;

/// One character as a terminal may safely show it: control characters (NUL, ESC of an OSC
/// title or clear-screen sequence, DEL, C1 controls) as visible escapes, tabs as one space.
fn show_char(c: char, out: &mut String) {
    match c {
        '\t' => out.push(' '),
        c if c.is_control() => {
            let n = u32::from(c);
            if n <= 0xff {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        }
        // Bidirectional overrides can make text read differently from what it is.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        c => out.push(c),
    }
}

/// Text from a Dockerfile, an archive or a registry made safe to print on a terminal: control
/// characters escaped (see [`show_char`]) and at most `max` characters kept.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        show_char(c, &mut out);
    }
    out
}

/// A source line as shown under an error: escaped, cut to a window around the error, with the
/// caret's offset and length in shown characters.
fn snippet(text: &str, col: usize, len: usize) -> (String, usize, usize) {
    let chars: Vec<char> = text.chars().collect();
    let start = if chars.len() > SNIPPET_WIDTH {
        (col - 1).saturating_sub(SNIPPET_WIDTH / 3).min(chars.len())
    } else {
        0
    };
    let end = chars.len().min(start + SNIPPET_WIDTH);
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    let mut caret_at = None;
    let mut caret_end = None;
    let mut width = usize::from(start > 0);
    for (i, &c) in chars.iter().enumerate().take(end).skip(start) {
        if i + 1 == col {
            caret_at = Some(width);
        }
        if i + 1 == col + len {
            caret_end = Some(width);
        }
        let before = shown.chars().count();
        show_char(c, &mut shown);
        width += shown.chars().count() - before;
    }
    if end < chars.len() {
        shown.push('…');
    }
    let caret_at = caret_at.unwrap_or(width);
    let caret_end = caret_end.unwrap_or(width.max(caret_at + 1));
    (shown, caret_at, (caret_end - caret_at).max(1))
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
    fn control_characters_are_escaped_and_long_lines_cut() {
        // NUL, an OSC title sequence and clear-screen must not reach the terminal raw.
        let src = "FROM scratch\nCOPPY \u{1b}]0;pwned\u{7}\u{1b}[2J\0 b\n";
        let err = Error::new(
            ErrorKind::UnknownInstruction("COPPY\u{1b}[2J".into()),
            Pos::new(2, 7),
        )
        .with_len(1);
        let out = err.render("Docker\u{1b}file", src);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(
            out.contains("COPPY \\x1b]0;pwned\\x07\\x1b[2J\\x00 b"),
            "{out}"
        );
        assert!(out.contains("unknown instruction: COPPY\\x1b[2J"), "{out}");
        // The caret sits under the escaped ESC (4 shown characters wide, underlined as one).
        assert!(out.contains("  |       ^^^^\n"), "{out}");

        let long = format!(
            "FROM scratch\nRUN {}XYZ{}\n",
            "a".repeat(5000),
            "b".repeat(5000)
        );
        let err = Error::new(ErrorKind::Syntax("bad".into()), Pos::new(2, 5005)).with_len(3);
        let out = err.render("Dockerfile", &long);
        let snippet = out.lines().nth(3).unwrap();
        assert!(snippet.chars().count() < 140, "{snippet}");
        assert!(snippet.contains("aaaXYZbbb"));
        let caret = out.lines().nth(4).unwrap();
        let at = caret.chars().position(|c| c == '^').unwrap();
        let under: String = snippet.chars().skip(at).take(3).collect();
        assert_eq!(under, "XYZ", "{snippet}\n{caret}");
        assert!(caret.ends_with("^^^"));
        let msg = printable(&"x".repeat(10_000), MAX_MESSAGE);
        assert_eq!(msg.chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("COPPY", &["COPY", "RUN", "FROM"]), Some("COPY"));
        assert_eq!(suggest("zzzzzz", &["COPY", "RUN"]), None);
        assert_eq!(suggest("chmodd", &["chmod", "chown"]), Some("chmod"));
    }
}
