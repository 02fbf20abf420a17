//! Word expansion as the Dockerfile shell lexer does it (BuildKit's `shell/lex.go`): quotes,
//! escapes, `$V`, `${V}` and the `${V:-w}` family of modifiers, with optional word splitting.
//!
//! Written by hand: this is the product's core and must match BuildKit character for character;
//! no crate implements the Dockerfile dialect (it is neither POSIX sh nor bash).

/// Looks up a variable. `None` means unset (distinct from set-but-empty).
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

pub use crate::vars::Vars;

/// No variables at all.
pub struct NoVars;
impl Lookup for NoVars {
    fn lookup(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Two scopes: `first` shadows `second` (ENV shadows ARG).
pub struct Layered<'a>(pub &'a dyn Lookup, pub &'a dyn Lookup);
impl Lookup for Layered<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name).or_else(|| self.1.lookup(name))
    }
}

/// The lexer's settings.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output (used to find heredoc markers).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as they are.
    pub skip_unset: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Expands one word: the result is a single string, whitespace kept.
    pub fn process_word(&self, word: &str, env: &dyn Lookup) -> Result<String, String> {
        let mut budget = PATTERN_BUDGET;
        self.process_word_within(word, env, &mut budget)
    }

    /// Expands and splits into words at unquoted whitespace (including whitespace that came
    /// from unquoted variable values).
    pub fn process_words(&self, word: &str, env: &dyn Lookup) -> Result<Vec<String>, String> {
        let mut budget = PATTERN_BUDGET;
        self.process_words_within(word, env, &mut budget)
    }

    /// [`Lexer::process_word`] drawing on a `budget` of work (characters stepped over by
    /// modifiers) that the caller shares between expansions: a whole Dockerfile's worth.
    pub fn process_word_within(
        &self,
        word: &str,
        env: &dyn Lookup,
        budget: &mut u64,
    ) -> Result<String, String> {
        let mut s = Scanner::new(self, word, env);
        s.budget = (*budget).min(PATTERN_BUDGET);
        let r = s.process_stop_on(None, self.raw_escapes);
        *budget -= (*budget).min(PATTERN_BUDGET) - s.budget;
        Ok(r?.0)
    }

    /// [`Lexer::process_words`] drawing on a shared `budget` (see
    /// [`Lexer::process_word_within`]).
    pub fn process_words_within(
        &self,
        word: &str,
        env: &dyn Lookup,
        budget: &mut u64,
    ) -> Result<Vec<String>, String> {
        let mut s = Scanner::new(self, word, env);
        s.budget = (*budget).min(PATTERN_BUDGET);
        let r = s.process_stop_on(None, self.raw_escapes);
        *budget -= (*budget).min(PATTERN_BUDGET) - s.budget;
        Ok(r?.1)
    }
}

/// Counts the `n` characters a modifier steps over (copying or scanning a value) against the
/// budget: each `${V%x}` of a 1 MiB value costs a million steps, whatever the pattern.
fn spend(budget: &mut u64, n: usize) -> Result<(), String> {
    let n = n as u64;
    if *budget < n {
        *budget = 0;
        return Err(
            "the variable expansions are too expensive for the size of their values".into(),
        );
    }
    *budget -= n;
    Ok(())
}

struct Scanner<'a> {
    lx: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Lookup,
    raw_escapes: bool,
    depth: usize,
    budget: u64,
}

/// Accumulates words the way BuildKit's `wordsStruct` does.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

/// The longest value an expansion may produce. BuildKit has no limit and a file of a few
/// hundred bytes (`ENV A=$A$A`, repeated) would otherwise double its way to exhausting memory.
pub const MAX_EXPANSION: usize = 1 << 20;

fn too_long() -> String {
    format!(
        "the expanded value is longer than {} MiB",
        MAX_EXPANSION >> 20
    )
}

/// Nesting limit for `${a:-${b:-${c...}}}`: deep enough for any real file, and it keeps
/// hostile input from exhausting the stack.
const MAX_DEPTH: usize = 64;

impl<'a> Scanner<'a> {
    fn new(lx: &Lexer, word: &str, env: &'a dyn Lookup) -> Self {
        Scanner {
            lx: *lx,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: lx.raw_escapes,
            depth: 0,
            budget: PATTERN_BUDGET,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let v = self.process_dollar()?;
                    if result.len() + v.len() > MAX_EXPANSION {
                        return Err(too_long());
                    }
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' => {
                    let v = self.process_single_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                '"' => {
                    let v = self.process_double_quote()?;
                    if result.len() + v.len() > MAX_EXPANSION {
                        return Err(too_long());
                    }
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.next();
                    if ch == self.lx.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(c) => {
                                words.add_raw_char(c);
                                result.push(c);
                            }
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lx.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lx.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    if out.len() + v.len() > MAX_EXPANSION {
                        return Err(too_long());
                    }
                    out.push_str(&v);
                }
                Some(c) => {
                    self.next();
                    if c == self.lx.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // An escape at the very end of the word is dropped.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lx.escape => {
                                self.next();
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn get(&self, name: &str) -> Option<String> {
        self.env.lookup(name).map(str::to_string)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("variable substitutions are nested too deeply".into());
        }
        let r = self.process_dollar_inner();
        self.depth -= 1;
        r
    }

    fn process_dollar_inner(&mut self) -> Result<String, String> {
        self.next(); // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        match ch {
            '}' => Ok(match self.get(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = ch.to_string();
                let mut op = ch;
                let null_is_unset = ch == ':';
                if null_is_unset {
                    op = self.next().ok_or("syntax error: missing '}'")?;
                    modifier.push(op);
                }
                if !matches!(op, '+' | '-' | '?' | '#' | '%') {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let raw = op == '#' || op == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let (word, _) = match self.process_stop_on(Some('}'), raw) {
                    Ok(w) => w,
                    Err(e) if self.peek().is_none() && e.contains("matching }") => {
                        return Err("syntax error: missing '}'".into())
                    }
                    Err(e) => return Err(e),
                };
                let value = self.get(&name);
                if self.lx.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(str::is_empty);
                let unset = value.is_none() || (null_is_unset && empty);
                match op {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if value.is_none() {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            Err(format!("{name}: {msg}"))
                        } else if null_is_unset && empty {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            Err(format!("{name}: {msg}"))
                        } else {
                            Ok(value.unwrap_or_default())
                        }
                    }
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let pat = Pattern::compile(&pattern, self.lx.escape, &mut self.budget)?;
                        if op == '#' {
                            trim_prefix(&pat, &value, greedy, &mut self.budget)
                        } else {
                            trim_suffix(&pat, &value, greedy, &mut self.budget)
                        }
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = match self.process_stop_on(Some('/'), true) {
                    Ok(w) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '/' in ${}".into())
                    }
                    Err(e) => return Err(e),
                };
                let (replacement, _) = match self.process_stop_on(Some('}'), true) {
                    Ok(w) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '}'".into())
                    }
                    Err(e) => return Err(e),
                };
                let value = self.get(&name);
                if self.lx.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let pat = Pattern::compile(&pattern, self.lx.escape, &mut self.budget)?;
                replace(
                    &pat,
                    &value.unwrap_or_default(),
                    &replacement,
                    all,
                    &mut self.budget,
                )
            }
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }
}

/// A shell glob pattern (`*`, `?`, `[...]`, escapes) for the `#`, `%` and `/` modifiers.
#[derive(Debug)]
struct Pattern(Vec<Tok>);

#[derive(Debug)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Pattern {
    /// Compiles a pattern; `budget` pays for the characters scanned, since every unclosed `[`
    /// scans to the end of the pattern (a long pattern of many `[` is quadratic otherwise).
    fn compile(p: &str, escape: char, budget: &mut u64) -> Result<Pattern, String> {
        let chars: Vec<char> = p.chars().collect();
        spend(budget, chars.len())?;
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    if !matches!(toks.last(), Some(Tok::Star)) {
                        toks.push(Tok::Star);
                    }
                }
                '?' => toks.push(Tok::Any),
                '[' => {
                    let mut j = i;
                    let negated = matches!(chars.get(j), Some('!' | '^'));
                    if negated {
                        j += 1;
                    }
                    let mut items = Vec::new();
                    let mut first = true;
                    let mut closed = false;
                    while j < chars.len() {
                        spend(budget, 1)?;
                        let mut a = chars[j];
                        if a == ']' && !first {
                            closed = true;
                            j += 1;
                            break;
                        }
                        first = false;
                        if a == escape && j + 1 < chars.len() {
                            j += 1;
                            a = chars[j];
                        }
                        j += 1;
                        if chars.get(j) == Some(&'-') && chars.get(j + 1).is_some_and(|&c| c != ']')
                        {
                            let mut b = chars[j + 1];
                            j += 2;
                            if b == escape && j < chars.len() {
                                b = chars[j];
                                j += 1;
                            }
                            items.push((a, b));
                        } else {
                            items.push((a, a));
                        }
                    }
                    if closed {
                        toks.push(Tok::Class { negated, items });
                        i = j;
                    } else {
                        toks.push(Tok::Lit('['));
                    }
                }
                c if c == escape => match chars.get(i) {
                    Some(&n) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    }
                    None => toks.push(Tok::Lit(c)),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// Runs the pattern as an NFA over `s` from its start: the lengths of the shortest and
    /// longest prefixes of `s` it matches. O(len(s) * tokens), stopping as soon as no state is
    /// left; `budget` counts the characters stepped over and ends the search when spent.
    fn prefix_matches(
        &self,
        s: &[char],
        budget: &mut u64,
    ) -> Result<Option<(usize, usize)>, String> {
        let toks = &self.0;
        let m = toks.len();
        let mut cur = vec![false; m + 1];
        let mut next = vec![false; m + 1];
        let close = |set: &mut Vec<bool>| {
            for k in 0..m {
                if set[k] && matches!(toks[k], Tok::Star) {
                    set[k + 1] = true;
                }
            }
        };
        cur[0] = true;
        close(&mut cur);
        let mut found: Option<(usize, usize)> = cur[m].then_some((0, 0));
        for (j, &c) in s.iter().enumerate() {
            // One step per pattern state per character: a long pattern costs its length.
            let step = (m as u64).max(1);
            if *budget < step {
                return Err(
                    "a pattern substitution is too expensive for the size of the value".into(),
                );
            }
            *budget -= step;
            next.iter_mut().for_each(|x| *x = false);
            let mut any = false;
            for k in 0..m {
                if !cur[k] {
                    continue;
                }
                match &toks[k] {
                    Tok::Star => {
                        next[k] = true;
                        any = true;
                    }
                    t if tok_matches(t, c) => {
                        next[k + 1] = true;
                        any = true;
                    }
                    _ => {}
                }
            }
            if !any {
                break;
            }
            close(&mut next);
            std::mem::swap(&mut cur, &mut next);
            if cur[m] {
                found = Some((found.map_or(j + 1, |f| f.0), j + 1));
            }
        }
        Ok(found)
    }

    /// For every position of `s`, whether some match starts there: the reversed pattern run
    /// unanchored (a new thread at every character) over `s` backwards. O(len(s) * tokens).
    fn match_starts(&self, s: &[char], budget: &mut u64) -> Result<Vec<bool>, String> {
        let rev = self.reversed();
        let toks = &rev.0;
        let m = toks.len();
        let close = |set: &mut Vec<bool>| {
            for k in 0..m {
                if set[k] && matches!(toks[k], Tok::Star) {
                    set[k + 1] = true;
                }
            }
        };
        let mut starts = vec![false; s.len() + 1];
        let mut cur = vec![false; m + 1];
        cur[0] = true;
        close(&mut cur);
        starts[s.len()] = cur[m];
        let mut next = vec![false; m + 1];
        for i in (0..s.len()).rev() {
            let step = (m as u64).max(1);
            if *budget < step {
                return Err(
                    "a pattern substitution is too expensive for the size of the value".into(),
                );
            }
            *budget -= step;
            next.iter_mut().for_each(|x| *x = false);
            next[0] = true;
            for k in 0..m {
                if !cur[k] {
                    continue;
                }
                match &toks[k] {
                    Tok::Star => next[k] = true,
                    t if tok_matches(t, s[i]) => next[k + 1] = true,
                    _ => {}
                }
            }
            close(&mut next);
            std::mem::swap(&mut cur, &mut next);
            starts[i] = cur[m];
        }
        Ok(starts)
    }

    /// The same pattern read backwards (to match suffixes by scanning the value backwards).
    fn reversed(&self) -> Pattern {
        let mut toks = Vec::with_capacity(self.0.len());
        for t in self.0.iter().rev() {
            toks.push(match t {
                Tok::Lit(c) => Tok::Lit(*c),
                Tok::Any => Tok::Any,
                Tok::Star => Tok::Star,
                Tok::Class { negated, items } => Tok::Class {
                    negated: *negated,
                    items: items.clone(),
                },
            });
        }
        Pattern(toks)
    }
}

fn tok_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::Any => true,
        Tok::Star => true,
        Tok::Class { negated, items } => {
            let hit = items.iter().any(|&(a, b)| a <= c && c <= b);
            hit != *negated
        }
    }
}

/// How many characters pattern substitutions may step over in one expansion: far beyond any
/// real Dockerfile, small enough that hostile input cannot stall the frontend.
const PATTERN_BUDGET: u64 = 20_000_000;

fn trim_prefix(p: &Pattern, value: &str, greedy: bool, budget: &mut u64) -> Result<String, String> {
    spend(budget, value.len())?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match p.prefix_matches(&chars, budget)? {
        Some((short, long)) => chars[if greedy { long } else { short }..].iter().collect(),
        None => value.to_string(),
    })
}

fn trim_suffix(p: &Pattern, value: &str, greedy: bool, budget: &mut u64) -> Result<String, String> {
    spend(budget, value.len())?;
    let rev: Vec<char> = value.chars().rev().collect();
    Ok(match p.reversed().prefix_matches(&rev, budget)? {
        Some((short, long)) => {
            let cut = if greedy { long } else { short };
            rev[cut..].iter().rev().collect()
        }
        None => value.to_string(),
    })
}

/// `${V/p/r}` and `${V//p/r}`: leftmost, longest matches; empty matches are skipped.
fn replace(
    p: &Pattern,
    value: &str,
    replacement: &str,
    all: bool,
    budget: &mut u64,
) -> Result<String, String> {
    spend(budget, value.len())?;
    let chars: Vec<char> = value.chars().collect();
    let starts = p.match_starts(&chars, budget)?;
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < chars.len() {
        if (!replaced || all) && starts[i] {
            if let Some((_, long)) = p.prefix_matches(&chars[i..], budget)? {
                if long > 0 {
                    // Checked while the value grows: `${b//b/$b}` on a long `b` would otherwise
                    // build gigabytes before any check after the expansion saw them.
                    if out.len() + replacement.len() > MAX_EXPANSION {
                        return Err(too_long());
                    }
                    out.push_str(replacement);
                    i += long;
                    replaced = true;
                    continue;
                }
            }
        }
        if out.len() >= MAX_EXPANSION {
            return Err(too_long());
        }
        out.push(chars[i]);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vars {
        Vars::from_pairs([
            ("A".into(), "alpha".into()),
            ("E".into(), String::new()),
            ("P".into(), "/usr/local/bin/tool.tar.gz".into()),
            ("S".into(), "a b  c".into()),
        ])
    }

    fn w(s: &str) -> Result<String, String> {
        Lexer::new('\\').process_word(s, &env())
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A").unwrap(), "alpha");
        assert_eq!(w("${A}x").unwrap(), "alphax");
        assert_eq!(w("$Ax").unwrap(), "");
        assert_eq!(w("$NOPE-x").unwrap(), "-x");
        assert_eq!(w("a$").unwrap(), "a$");
        assert_eq!(w("$1x").unwrap(), "x");
        assert_eq!(w("${A}${A}").unwrap(), "alphaalpha");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'").unwrap(), "$A");
        assert_eq!(w("\"$A\"").unwrap(), "alpha");
        assert_eq!(w("\\$A").unwrap(), "$A");
        assert_eq!(w("\"a\\nb\"").unwrap(), "a\\nb");
        assert_eq!(w("\"a\\\"b\"").unwrap(), "a\"b");
        assert_eq!(w("a\\ b").unwrap(), "a b");
        assert_eq!(w("x\\").unwrap(), "x");
        assert!(w("'abc").unwrap_err().contains("single-quote"));
        assert!(w("\"abc").unwrap_err().contains("double-quote"));
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${NOPE:-d}").unwrap(), "d");
        assert_eq!(w("${E:-d}").unwrap(), "d");
        assert_eq!(w("${E-d}").unwrap(), "");
        assert_eq!(w("${NOPE-d}").unwrap(), "d");
        assert_eq!(w("${A:+set}").unwrap(), "set");
        assert_eq!(w("${E:+set}").unwrap(), "");
        assert_eq!(w("${E+set}").unwrap(), "set");
        assert_eq!(w("${NOPE+set}").unwrap(), "");
        assert_eq!(w("${NOPE:-${A}}").unwrap(), "alpha");
        assert_eq!(w("${A:?}").unwrap(), "alpha");
        assert_eq!(w("${NOPE:?must be set}").unwrap_err(), "NOPE: must be set");
        assert_eq!(w("${E:?}").unwrap_err(), "E: is not allowed to be empty");
        assert_eq!(
            w("${NOPE?}").unwrap_err(),
            "NOPE: is not allowed to be unset"
        );
        assert_eq!(w("${E?}").unwrap(), "");
    }

    #[test]
    fn trimming_and_replacing() {
        assert_eq!(w("${P#*/}").unwrap(), "usr/local/bin/tool.tar.gz");
        assert_eq!(w("${P##*/}").unwrap(), "tool.tar.gz");
        assert_eq!(w("${P%.*}").unwrap(), "/usr/local/bin/tool.tar");
        assert_eq!(w("${P%%.*}").unwrap(), "/usr/local/bin/tool");
        assert_eq!(w("${P#nomatch}").unwrap(), "/usr/local/bin/tool.tar.gz");
        assert_eq!(w("${A/l/L}").unwrap(), "aLpha");
        assert_eq!(w("${A//a/A}").unwrap(), "AlphA");
        assert_eq!(w("${P//[.]/_}").unwrap(), "/usr/local/bin/tool_tar_gz");
        assert_eq!(w("${A/x*/y}").unwrap(), "alpha");
        assert_eq!(w("${A/l*/L}").unwrap(), "aL");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(w("${A").unwrap_err(), "syntax error: missing '}'");
        assert_eq!(w("${}").unwrap_err(), "syntax error: bad substitution");
        assert_eq!(w("${:a}").unwrap_err(), "syntax error: bad substitution");
        assert_eq!(w("${A:-x").unwrap_err(), "syntax error: missing '}'");
        assert_eq!(
            w("${A!x}").unwrap_err(),
            "unsupported modifier (!) in substitution"
        );
        assert_eq!(
            w("${A:#x}").unwrap_err(),
            "unsupported modifier (:#) in substitution"
        );
        assert_eq!(w("${A/x").unwrap_err(), "syntax error: missing '/' in ${}");
    }

    #[test]
    fn word_splitting() {
        let lx = Lexer::new('\\');
        assert_eq!(
            lx.process_words("x $S \"$S\" ''", &env()).unwrap(),
            vec!["x", "a", "b", "c", "a b  c"]
        );
    }

    #[test]
    fn backtick_escape() {
        let lx = Lexer::new('`');
        assert_eq!(lx.process_word("C:\\a`$A", &env()).unwrap(), "C:\\a$A");
    }

    #[test]
    fn hostile_expansions_end_quickly() {
        // Found by fuzzing: cubic replacement and exponential self-reference.
        let long = "a".repeat(200_000);
        let env = Vars::from_pairs([("A".into(), long.clone())]);
        let lx = Lexer::new('\\');
        let t = std::time::Instant::now();
        assert_eq!(lx.process_word("${A/*b/}", &env).unwrap(), long);
        assert_eq!(lx.process_word("${A#*b}", &env).unwrap(), long);
        assert_eq!(lx.process_word("${A%%a*}", &env).unwrap(), "");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        let mut v = Vars::from_pairs([("A".into(), "a".into())]);
        let mut err = None;
        for _ in 0..40 {
            match lx.process_word("$A$A", &v) {
                Ok(s) => v.set("A", &s),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(
            err.as_deref(),
            Some("the expanded value is longer than 1 MiB")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = "${A:-".repeat(10_000) + &"}".repeat(10_000);
        assert!(w(&s).is_err());
    }
}
