//! `.dockerignore` files and Docker's path patterns (moby/patternmatcher semantics):
//! `*` and `?` stop at `/`, `**` spans directories, `!` re-includes, the last matching pattern
//! wins, and a pattern that matches a directory also matches everything below it.

use regex::Regex;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IgnoreError {
    #[error("{file}:{line}: illegal exclusion pattern \"!\" (a lone ! re-includes nothing; remove the line)")]
    LoneBang { file: String, line: usize },
    #[error("{file}:{line}: bad pattern {pattern:?}: {reason}")]
    BadPattern {
        file: String,
        line: usize,
        pattern: String,
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `prefix**`: any path starting with the prefix.
    Prefix(String),
    /// `**suffix`: any path ending with the suffix (or equal to it without its leading `/`).
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    /// The pattern's path segments, for deciding whether a directory can hold a match.
    segments: Vec<String>,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// A compiled list of patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

/// Lexically cleans a slash path like Go's `filepath.Clean`.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Converts one cleaned pattern to a matcher, as patternmatcher's `compile` does.
fn compile(p: &str) -> Result<Kind, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut kind = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 regex
    let mut i = 0;
    let mut first = true;
    let mut depth = 0i32;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == 0 {
                        kind = 1;
                    } else {
                        re.push_str(".*");
                        kind = 3;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = 3;
                }
                if first {
                    kind = 2;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = 3;
            }
            '?' => {
                re.push_str("[^/]");
                kind = 3;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' | '^' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    re.push_str(&regex::escape(&n.to_string()));
                    kind = 3;
                }
                None => re.push_str("\\\\"),
            },
            '[' => {
                depth += 1;
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    i += 1;
                    re.push_str("\\^");
                } else if chars.get(i) == Some(&'!') {
                    i += 1;
                    re.push('^');
                }
                kind = 3;
            }
            ']' => {
                depth -= 1;
                re.push(']');
                kind = 3;
            }
            c => re.push(c),
        }
        first = false;
    }
    if depth != 0 {
        return Err("syntax error in pattern (unbalanced [ ])".into());
    }
    Ok(match kind {
        0 => Kind::Exact,
        1 => Kind::Prefix(p[..p.len() - 2].to_string()),
        2 => match Regex::new(&format!("{re}$")) {
            // A leading `**` with nothing special after it is a plain suffix test.
            Ok(_) if !p[2..].contains(['*', '?', '[', '\\']) => Kind::Suffix(p[2..].to_string()),
            Ok(r) => Kind::Regex(r),
            Err(e) => return Err(e.to_string()),
        },
        _ => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|e| e.to_string())?)
        }
    })
}

impl Matcher {
    /// Parses a `.dockerignore`. `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Matcher, IgnoreError> {
        let mut m = Matcher::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            // Comments only where a line starts with '#'.
            if line.starts_with('#') {
                continue;
            }
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            let (exclusion, body) = match t.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, t),
            };
            if exclusion && body.is_empty() {
                return Err(IgnoreError::LoneBang {
                    file: name.into(),
                    line: line_no,
                });
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let kind = compile(&cleaned).map_err(|reason| IgnoreError::BadPattern {
                file: name.into(),
                line: line_no,
                pattern: body.into(),
                reason,
            })?;
            m.has_exclusions |= exclusion;
            m.patterns.push(Pattern {
                segments: cleaned.split('/').map(str::to_string).collect(),
                text: cleaned,
                exclusion,
                kind,
            });
        }
        Ok(m)
    }

    /// A text that differs whenever the effective rules differ (the cleaned patterns in
    /// order), for keeping per-rule-set state such as the context's stat cache apart.
    pub fn fingerprint(&self) -> String {
        let mut f = String::new();
        for p in &self.patterns {
            f.push(if p.exclusion { '!' } else { '+' });
            f.push_str(&p.text);
            f.push('\n');
        }
        f
    }

    /// Whether `path` (slash-separated, relative to the context root) is ignored: the last
    /// pattern that matches it, or one of its parent directories, decides.
    pub fn is_ignored(&self, path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parents: Vec<usize> = path
            .char_indices()
            .filter(|&(_, c)| c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = p.matches(&path) || parents.iter().any(|&i| p.matches(&path[..i]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// [`Matcher::is_ignored`] for a walk that only descends into directories that are not
    /// ignored: `path` is clean, and its parent is in the context. Without `!` patterns only
    /// the path itself needs matching then, which saves most of the work on big contexts.
    pub fn is_ignored_in_walk(&self, path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        if self.has_exclusions {
            return self.is_ignored(path);
        }
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// Whether an ignored directory may still contain re-included paths (so it must be walked).
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        if !self.has_exclusions {
            return false;
        }
        let dir_segs: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            for (i, d) in dir_segs.iter().enumerate() {
                let Some(seg) = p.segments.get(i) else {
                    return false;
                };
                if seg.contains("**") {
                    return true;
                }
                let single = Pattern {
                    text: seg.clone(),
                    segments: Vec::new(),
                    exclusion: false,
                    kind: match compile(seg) {
                        Ok(k) => k,
                        Err(_) => return true,
                    },
                };
                if !single.matches(d) {
                    return false;
                }
            }
            p.segments.len() > dir_segs.len()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Matcher {
        Matcher::parse(s, ".dockerignore").unwrap()
    }

    #[test]
    fn basics() {
        let x = m("# comment\n*.md\n!README.md\nnode_modules\n/build\n**/*.tmp\n  target  \n");
        assert!(x.is_ignored("a.md"));
        assert!(!x.is_ignored("README.md"));
        assert!(!x.is_ignored("docs/a.md"), "* does not cross /");
        assert!(x.is_ignored("node_modules"));
        assert!(
            x.is_ignored("node_modules/x/y.js"),
            "a matched dir hides its contents"
        );
        assert!(x.is_ignored("build/out"));
        assert!(x.is_ignored("a/b/c.tmp"));
        assert!(x.is_ignored("c.tmp"));
        assert!(x.is_ignored("target/debug"));
        assert!(!x.is_ignored("src/main.rs"));
        assert!(!x.is_ignored("."));
    }

    /// The walk's shortcut agrees with the full rule wherever the walk uses it: on paths whose
    /// parents are all in the context.
    #[test]
    fn walk_shortcut_agrees_with_the_full_rule() {
        let paths = [
            "a.md",
            "docs",
            "docs/a.md",
            "docs/x/b.tmp",
            "src",
            "src/main.go",
            "src/build",
            "build",
            "target",
            "node_modules",
            "x/node_modules",
            "x/y/z.md",
            "vendor/a/b",
        ];
        for rules in [
            "*.md\nnode_modules\n/build\n**/*.tmp\ntarget\n",
            "**/node_modules\ndocs/*.md\nsrc/b*\nvendor/*/b\n",
            "*.md\n!docs/a.md\nbuild\n",
            "",
        ] {
            let x = m(rules);
            for p in paths {
                let parents_in = p
                    .char_indices()
                    .filter(|&(_, c)| c == '/')
                    .all(|(i, _)| !x.is_ignored(&p[..i]));
                if parents_in {
                    assert_eq!(x.is_ignored_in_walk(p), x.is_ignored(p), "{rules:?} {p}");
                }
            }
        }
    }

    #[test]
    fn last_match_wins() {
        let x = m("docs\n!docs/keep.md\n");
        assert!(x.is_ignored("docs/a.md"));
        assert!(!x.is_ignored("docs/keep.md"));
        assert!(x.may_reinclude_below("docs"));
        assert!(!x.may_reinclude_below("other"));
        let y = m("!keep\n*\n");
        assert!(y.is_ignored("keep"));
    }

    #[test]
    fn double_star_forms() {
        let x = m("**\n!src/**\n");
        assert!(x.is_ignored("a"));
        assert!(!x.is_ignored("src/a/b"));
        let y = m("a/**/b\n");
        assert!(y.is_ignored("a/b"));
        assert!(y.is_ignored("a/x/y/b"));
        assert!(!y.is_ignored("a/x/c"));
        let z = m("dist/**\n");
        assert!(z.is_ignored("dist/x"));
    }

    #[test]
    fn cleaning_and_escapes() {
        let x = m("./a/../b\n\\!bang\nc[0-9]\nx?z\n");
        assert!(x.is_ignored("b"));
        assert!(x.is_ignored("!bang"));
        assert!(x.is_ignored("c5"));
        assert!(!x.is_ignored("ca"));
        assert!(x.is_ignored("xyz"));
        assert!(!x.is_ignored("x/z"));
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/.."), "/");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Matcher::parse("ok\n!\n", "f"),
            Err(IgnoreError::LoneBang { line: 2, .. })
        ));
        assert!(matches!(
            Matcher::parse("a[b\n", "f"),
            Err(IgnoreError::BadPattern { line: 1, .. })
        ));
    }
}
