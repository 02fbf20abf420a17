//! The checks that need ARG/ENV scoping, as BuildKit's dispatcher sees it: UndefinedVar,
//! UndefinedArgInFrom, InvalidDefaultArgInFrom, RedundantTargetPlatform,
//! FromPlatformFlagConstDisallowed and WorkdirRelativePath.
//!
//! The planner expands only the stages the target needs, and fails on the first error; BuildKit
//! lints every stage. So this module walks every stage itself, recording which variables each
//! word reads and which of those are unset.

use crate::rules::{Ctx, StageView};
use crate::Finding;
use std::cell::RefCell;
use std::collections::HashSet;
use whittle_dockerfile::ast::Kind;
use whittle_dockerfile::plan::{platform_args, DEFAULT_PATH};
use whittle_dockerfile::shell::{Lexer, Lookup, Vars};
use whittle_dockerfile::Platform;

/// A lookup that remembers the names it found and the names it did not.
struct Recording<'a> {
    vars: &'a Vars,
    hits: RefCell<Vec<String>>,
    misses: RefCell<Vec<String>>,
}

impl Lookup for Recording<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        let v = self.vars.get(name);
        let list = if v.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        let mut list = list.borrow_mut();
        if !list.iter().any(|n| n == name) {
            list.push(name.to_string());
        }
        v
    }
}

struct Expanded {
    value: Option<String>,
    hits: Vec<String>,
    misses: Vec<String>,
}

fn expand(lexer: &Lexer, word: &str, vars: &Vars) -> Expanded {
    let rec = Recording {
        vars,
        hits: RefCell::default(),
        misses: RefCell::default(),
    };
    let value = lexer.process_word(word, &rec).ok();
    Expanded {
        value,
        hits: rec.hits.into_inner(),
        misses: rec.misses.into_inner(),
    }
}

fn build_arg<'a>(args: &'a [(String, String)], name: &str) -> Option<&'a str> {
    args.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// What a stage leaves to stages built `FROM` it.
#[derive(Clone, Default)]
struct StageEnd {
    vars: Vars,
    declared: HashSet<String>,
    /// False when the base image's ENV is unknown: unset variables may come from it.
    env_known: bool,
    workdir_set: bool,
}

/// Build args that never reach the environment (BuildKit's `nonEnvArgs`).
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

pub(crate) fn run(ctx: &Ctx, out: &mut Vec<Finding>) {
    let lexer = Lexer::new(ctx.df.escape);
    let input = ctx.input;
    let args = input.build_args.as_slice();
    // Global scope: platform args, then the ARGs before the first FROM.
    let platform_vars = platform_args(&input.target_platform, &Platform::host());
    let mut global = platform_vars.clone();
    let mut defaults_only = platform_vars.clone();
    let mut global_declared: Vec<String> = Vec::new();
    for inst in &ctx.globals {
        let Kind::Arg(decls) = &inst.kind else {
            continue;
        };
        for d in decls {
            let name = d.name.text.as_str();
            global_declared.push(name.to_string());
            if let Some(raw) = &d.default {
                if let Some(v) = expand(&lexer, raw, &defaults_only).value {
                    defaults_only.set(name, &v);
                }
            }
            let value = match build_arg(args, name) {
                Some(v) => Some(v.to_string()),
                None => d
                    .default
                    .as_ref()
                    .and_then(|raw| expand(&lexer, raw, &global).value),
            };
            if let Some(v) = value {
                global.set(name, &v);
            }
        }
    }
    let global_keys: Vec<&str> = global_declared
        .iter()
        .map(String::as_str)
        .chain(platform_vars.iter().map(|(k, _)| k))
        .collect();

    let mut ends: Vec<StageEnd> = Vec::new();
    for st in &ctx.stages {
        from_checks(ctx, st, &lexer, &global, &defaults_only, &global_keys, out);
        let end = stage_walk(ctx, st, &lexer, &global, &ends, args, out);
        ends.push(end);
    }
}

#[allow(clippy::too_many_arguments)]
fn from_checks(
    ctx: &Ctx,
    st: &StageView,
    lexer: &Lexer,
    global: &Vars,
    defaults_only: &Vars,
    global_keys: &[&str],
    out: &mut Vec<Finding>,
) {
    let span = ctx.inst_span(st.from_inst);
    let undeclared = |e: &Expanded, out: &mut Vec<Finding>| {
        for m in &e.misses {
            if global_keys.contains(&m.as_str()) {
                continue;
            }
            let mut msg = format!("FROM argument '{m}' is not declared");
            if let Some(s) = suggest(m, global_keys) {
                msg.push_str(&format!(" (did you mean {s}?)"));
            }
            let mut f = ctx.finding("UndefinedArgInFrom", span, msg);
            f.hint = Some(format!(
                "declare it before the first FROM: `ARG {m}=<default>`"
            ));
            out.push(f);
        }
    };
    let image = &st.from.image.text;
    let e = expand(lexer, image, global);
    undeclared(&e, out);
    if image.contains('$') {
        let d = expand(lexer, image, defaults_only);
        if !d.value.as_deref().is_some_and(valid_reference) {
            let mut f = ctx.finding(
                "InvalidDefaultArgInFrom",
                span,
                format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                ),
            );
            f.hint = Some(
                "give the ARG a default that makes a valid image name, or use ${NAME:-default}"
                    .into(),
            );
            out.push(f);
        }
    }
    let Some(pw) = &st.from.platform else {
        return;
    };
    let p = expand(lexer, &pw.text, global);
    undeclared(&p, out);
    if p.hits.len() == 1
        && p.misses.is_empty()
        && p.hits[0] == "TARGETPLATFORM"
        && p.value.as_deref() == global.get("TARGETPLATFORM")
    {
        let mut f = ctx.finding(
            "RedundantTargetPlatform",
            span,
            format!("Setting platform to predefined {} in FROM is redundant as this is the default behavior", pw.text),
        );
        f.hint = Some("remove the --platform flag".into());
        f.fix = remove_platform_flag(ctx, pw);
        out.push(f);
    }
    if p.hits.is_empty() && p.misses.is_empty() {
        if let Some(value) = &p.value {
            if let Some(plat) = Platform::parse(value) {
                let name = st.name().unwrap_or("");
                if !(name.contains(plat.os.as_str()) || name.contains(plat.arch.as_str())) {
                    let mut f = ctx.finding(
                        "FromPlatformFlagConstDisallowed",
                        span,
                        format!("FROM --platform flag should not use constant value {value:?}"),
                    );
                    f.hint = Some("use $BUILDPLATFORM for build tools, or name the stage after its platform (build-arm64)".into());
                    out.push(f);
                }
            }
        }
    }
}

/// Removes `--platform=VALUE` and the blanks after it.
fn remove_platform_flag(ctx: &Ctx, pw: &whittle_dockerfile::ast::Word) -> Option<crate::Fix> {
    const FLAG: &str = "--platform=";
    let line = ctx.src.line(pw.pos.line);
    let chars: Vec<char> = line.chars().collect();
    let value_start = pw.pos.col.checked_sub(1)?;
    let flag_start = value_start.checked_sub(FLAG.len())?;
    let flag: String = chars.get(flag_start..value_start)?.iter().collect();
    if !flag.eq_ignore_ascii_case(FLAG) {
        return None;
    }
    let mut end = value_start + pw.text.chars().count();
    while chars.get(end).is_some_and(|c| *c == ' ' || *c == '\t') {
        end += 1;
    }
    let pos = whittle_dockerfile::Pos::new(pw.pos.line, flag_start + 1);
    ctx.fix(
        "remove the redundant --platform flag",
        &[(pos, end - flag_start, String::new())],
    )
}

#[allow(clippy::too_many_arguments)]
fn stage_walk(
    ctx: &Ctx,
    st: &StageView,
    lexer: &Lexer,
    global: &Vars,
    ends: &[StageEnd],
    args: &[(String, String)],
    out: &mut Vec<Finding>,
) -> StageEnd {
    let base = expand(lexer, &st.from.image.text, global)
        .value
        .unwrap_or_default();
    let lower = base.to_ascii_lowercase();
    let parent = ctx.stages[..st.index]
        .iter()
        .rev()
        .find(|s| s.from.name.as_ref().is_some_and(|n| n.text == lower))
        .and_then(|s| ends.get(s.index));
    let mut s = match parent {
        Some(p) => p.clone(),
        None if lower == "scratch" => StageEnd {
            env_known: true,
            ..StageEnd::default()
        },
        None => match ctx.image(&base) {
            Some(img) => StageEnd {
                vars: Vars::from_pairs(img.env.clone()),
                env_known: true,
                ..StageEnd::default()
            },
            None => StageEnd::default(),
        },
    };
    if s.vars.get("PATH").is_none() {
        s.vars.set("PATH", DEFAULT_PATH);
    }
    // Here-document bodies are expanded with their quotes kept (BuildKit's ExpandRaw).
    let raw_lexer = Lexer {
        raw_quotes: true,
        ..*lexer
    };
    for inst in &st.body {
        let mut words: Vec<&str> = Vec::new();
        let mut raw_words: Vec<&str> = Vec::new();
        match &inst.kind {
            Kind::Arg(decls) => {
                for d in decls {
                    let name = d.name.text.as_str();
                    let value = match build_arg(args, name) {
                        Some(v) => Some(v.to_string()),
                        None => match &d.default {
                            Some(raw) => {
                                let e = expand(lexer, raw, &s.vars);
                                report_undefined(ctx, inst, &e, &s, out);
                                e.value
                            }
                            None => global.get(name).map(str::to_string),
                        },
                    };
                    s.declared.insert(name.to_string());
                    if let Some(v) = value {
                        if !NON_ENV_ARGS.contains(&name) {
                            s.vars.set(name, &v);
                        }
                    }
                }
                continue;
            }
            Kind::Env(kvs) => {
                for kv in kvs {
                    let e = expand(lexer, &kv.value, &s.vars);
                    report_undefined(ctx, inst, &e, &s, out);
                    s.vars.set(&kv.key.text, e.value.as_deref().unwrap_or(""));
                }
                continue;
            }
            Kind::Label(kvs) => {
                for kv in kvs {
                    words.push(&kv.key.text);
                    words.push(&kv.value);
                }
            }
            // What BuildKit's `Expand` methods expand (COPY --from is not expanded; EXPOSE is
            // expanded without reporting).
            Kind::Copy(c) | Kind::Add(c) => {
                words.extend(c.sources.iter().map(|w| w.text.as_str()));
                words.push(&c.dest.text);
                for w in [&c.chown, &c.chmod, &c.checksum].into_iter().flatten() {
                    words.push(&w.text);
                }
                raw_words.extend(
                    c.heredocs
                        .iter()
                        .filter(|h| h.expand)
                        .map(|h| h.content.as_str()),
                );
            }
            Kind::Run(r) => words.extend(r.mounts.iter().map(|m| m.spec.text.as_str())),
            Kind::Volume(ws) => words.extend(ws.iter().map(|w| w.text.as_str())),
            Kind::User(w) | Kind::Stopsignal(w) => words.push(&w.text),
            Kind::Workdir(w) => {
                let e = expand(lexer, &w.text, &s.vars);
                report_undefined(ctx, inst, &e, &s, out);
                let path = e.value.unwrap_or_else(|| w.text.clone());
                if !s.workdir_set && !path.starts_with('/') {
                    let mut f = ctx.finding(
                        "WorkdirRelativePath",
                        ctx.inst_span(inst),
                        format!("Relative workdir {path:?} can have unexpected results if the base image changes"),
                    );
                    f.hint = Some(format!("write an absolute path: WORKDIR /{path}"));
                    out.push(f);
                }
                s.workdir_set = true;
                continue;
            }
            _ => continue,
        }
        let mut all = Expanded {
            value: None,
            hits: Vec::new(),
            misses: Vec::new(),
        };
        let all_words = words
            .into_iter()
            .map(|w| (lexer, w))
            .chain(raw_words.into_iter().map(|w| (&raw_lexer, w)));
        for (lexer, w) in all_words {
            let e = expand(lexer, w, &s.vars);
            for m in e.misses {
                if !all.misses.contains(&m) {
                    all.misses.push(m);
                }
            }
        }
        report_undefined(ctx, inst, &all, &s, out);
    }
    s
}

fn report_undefined(
    ctx: &Ctx,
    inst: &whittle_dockerfile::ast::Instruction,
    e: &Expanded,
    s: &StageEnd,
    out: &mut Vec<Finding>,
) {
    if !s.env_known {
        return;
    }
    for m in &e.misses {
        if s.declared.contains(m) || NON_ENV_ARGS.contains(&m.as_str()) {
            continue;
        }
        let keys: Vec<&str> = s.vars.iter().map(|(k, _)| k).collect();
        let mut msg = format!("Usage of undefined variable '${m}'");
        if let Some(sug) = suggest(m, &keys) {
            msg.push_str(&format!(" (did you mean ${sug}?)"));
        }
        let mut f = ctx.finding("UndefinedVar", ctx.inst_span(inst), msg);
        f.hint = Some(format!(
            "declare it first (`ARG {m}` or `ENV {m}=...`), or fix its spelling"
        ));
        out.push(f);
    }
}

/// The closest name, as BuildKit's `suggest.Search` picks it (case-sensitive, as on Linux): the
/// first candidate at the smallest edit distance below 3, and nothing if one matches exactly.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best = None;
    let mut min = 3;
    for c in candidates {
        if *c == word {
            return None;
        }
        let d = levenshtein(word, c);
        if d < min {
            min = d;
            best = Some(*c);
        }
    }
    best
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether `s` is a valid image reference as docker's `ParseNormalizedNamed` sees it:
/// `[domain/]path[:tag][@digest]`, lower-case path components, a tag of at most 128 word
/// characters, dots and dashes.
pub(crate) fn valid_reference(s: &str) -> bool {
    if s.is_empty() || s.len() > 512 {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        if algo.is_empty()
            || !algo.starts_with(|c: char| c.is_ascii_alphabetic())
            || hex.len() < 32
            || !hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            return false;
        }
    }
    // A tag is after the last ':' that follows the last '/'.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            let host = first.split(':').next().unwrap_or("");
            let port_ok = first
                .split_once(':')
                .is_none_or(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !(host_ok && port_ok) {
                return false;
            }
            parts.remove(0);
        }
    }
    parts.iter().all(|p| path_component(p))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "alpine",
            "busybox:latest",
            "localhost:5000/a/b:1.2",
            "ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef",
            "my_app__x",
            "a-b--c",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "busybox:",
            "Alpine",
            "a:b:c/d",
            "a/-b",
            "x@sha256:12",
            "a//b",
            ":tag",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("VERSON", &["VERSION", "PATH"]), Some("VERSION"));
        assert_eq!(suggest("zzz", &["VERSION"]), None);
        assert_eq!(suggest("PAHT", &["HOME", "PATH"]), Some("PATH"));
        assert_eq!(
            suggest("path", &["PATH"]),
            None,
            "case-sensitive: 4 edits away"
        );
        assert_eq!(
            suggest("PATH", &["PATH", "PATHS"]),
            None,
            "an exact match means no typo"
        );
    }
}
