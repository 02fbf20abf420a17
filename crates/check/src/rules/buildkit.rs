//! BuildKit's build checks (`frontend/dockerfile/linter/ruleset.go`), with BuildKit's names,
//! messages and locations. The scoping checks (UndefinedVar and the FROM-argument checks) are in
//! `scope.rs`.

use super::{keyword, Ctx, StageView};
use crate::{Finding, Span};
use std::collections::HashSet;
use whittle_dockerfile::ast::{CmdLine, Instruction, Kind};
use whittle_dockerfile::Pos;

pub(super) fn run(ctx: &Ctx, out: &mut Vec<Finding>) {
    crate::scope::run(ctx, out);
    empty_continuation(ctx, out);
    casing(ctx, out);
    stage_names(ctx, out);
    let mut shell_set: Vec<bool> = Vec::new();
    for st in &ctx.stages {
        from_casing(ctx, st, out);
        let inherited = inherited_shell(ctx, st, &shell_set);
        shell_set.push(stage_body(ctx, st, inherited, out));
        base_platform(ctx, st, out);
    }
    definition_descriptions(ctx, out);
}

fn empty_continuation(ctx: &Ctx, out: &mut Vec<Finding>) {
    for w in &ctx.df.warnings {
        if !w.message.starts_with("empty continuation line") {
            continue;
        }
        let mut f = ctx.finding(
            "NoEmptyContinuation",
            Span {
                line: w.pos.line,
                col: 1,
                len: ctx.src.line(w.pos.line).chars().count().max(1),
            },
            "Empty continuation line",
        );
        f.hint = Some("remove the empty line, or put a comment on it".into());
        // The instruction that ends on the warning's line; its blank lines go.
        if let Some(inst) = ctx
            .df
            .instructions
            .iter()
            .find(|i| i.pos.line <= w.pos.line && w.pos.line <= i.end_line)
        {
            let has_heredoc = matches!(&inst.kind, Kind::Run(r) if !r.heredocs.is_empty())
                || matches!(&inst.kind, Kind::Copy(c) | Kind::Add(c) if !c.heredocs.is_empty());
            if !has_heredoc {
                let edits: Vec<_> = (inst.pos.line..=w.pos.line)
                    .filter(|&n| ctx.src.line(n).trim().is_empty())
                    .filter_map(|n| ctx.src.whole_line(n))
                    .collect();
                if !edits.is_empty() {
                    f.fix = Some(crate::Fix {
                        description: "remove the empty continuation lines".into(),
                        edits,
                    });
                }
            }
        }
        out.push(f);
    }
}

fn self_consistent(s: &str) -> bool {
    s == s.to_ascii_lowercase() || s == s.to_ascii_uppercase()
}

/// ConsistentInstructionCasing: every stage instruction against the majority casing.
fn casing(ctx: &Ctx, out: &mut Vec<Finding>) {
    let insts: Vec<&Instruction> = ctx
        .stages
        .iter()
        .flat_map(|s| std::iter::once(s.from_inst).chain(s.body.iter().copied()))
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for i in &insts {
        let k = keyword(i);
        if self_consistent(k) {
            if k == k.to_ascii_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for i in insts {
        let k = keyword(i);
        let (want, casing) = if majority_lower {
            (k.to_ascii_lowercase(), "lowercase")
        } else {
            (k.to_ascii_uppercase(), "uppercase")
        };
        if want == k {
            continue;
        }
        let mut f = ctx.finding(
            "ConsistentInstructionCasing",
            ctx.inst_span(i),
            format!("Command '{k}' should match the case of the command majority ({casing})"),
        );
        f.hint = Some(format!("write {want}"));
        let mut edits = vec![(i.pos, k.chars().count(), want.clone())];
        // FROM's `AS` follows FROM's case (FromAsCasing), so it changes along.
        if let Kind::From(from) = &i.kind {
            if let Some((pos, as_kw)) = as_keyword(ctx, from) {
                let as_want = if majority_lower {
                    as_kw.to_ascii_lowercase()
                } else {
                    as_kw.to_ascii_uppercase()
                };
                if as_want != as_kw {
                    edits.push((pos, 2, as_want));
                }
            }
        }
        f.fix = ctx.fix(format!("write {k} as {want}"), &edits);
        out.push(f);
    }
}

fn stage_names(ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut seen = HashSet::new();
    for st in &ctx.stages {
        let Some(name) = &st.from.name else {
            continue;
        };
        let span = ctx.inst_span(st.from_inst);
        if name.text == "context" || name.text == "scratch" {
            let mut f = ctx.finding(
                "ReservedStageName",
                span,
                format!(
                    "Stage name should not use the same name as reserved stage {:?}",
                    name.text
                ),
            );
            f.hint = Some("rename the stage (and the --from/FROM references to it)".into());
            out.push(f);
        }
        if !seen.insert(name.text.as_str()) {
            let mut f = ctx.finding(
                "DuplicateStageName",
                span,
                format!(
                    "Duplicate stage name {:?}, stage names should be unique",
                    name.text
                ),
            );
            f.hint = Some("give each stage its own name".into());
            out.push(f);
        }
    }
}

/// The stage name as written (the AST lower-cases it).
fn written_name(ctx: &Ctx, w: &whittle_dockerfile::ast::Word) -> String {
    ctx.src
        .line(w.pos.line)
        .chars()
        .skip(w.pos.col.saturating_sub(1))
        .take(w.text.chars().count())
        .collect()
}

/// StageNameCasing and FromAsCasing.
fn from_casing(ctx: &Ctx, st: &StageView, out: &mut Vec<Finding>) {
    let Some(name) = &st.from.name else {
        return;
    };
    let span = ctx.inst_span(st.from_inst);
    let written = written_name(ctx, name);
    if written != written.to_lowercase() {
        let mut f = ctx.finding(
            "StageNameCasing",
            span,
            format!("Stage name '{written}' should be lowercase"),
        );
        f.hint = Some(format!("write {}", written.to_lowercase()));
        f.fix = ctx.fix(
            "lower-case the stage name",
            &[(name.pos, written.chars().count(), written.to_lowercase())],
        );
        out.push(f);
    }
    let from_kw = keyword(st.from_inst);
    if !self_consistent(from_kw) {
        return;
    }
    let Some((as_pos, as_kw)) = as_keyword(ctx, st.from) else {
        return;
    };
    let want = if from_kw == from_kw.to_ascii_lowercase() {
        as_kw.to_ascii_lowercase()
    } else {
        as_kw.to_ascii_uppercase()
    };
    if want != as_kw {
        let mut f = ctx.finding(
            "FromAsCasing",
            span,
            format!("'{as_kw}' and '{from_kw}' keywords' casing do not match"),
        );
        f.hint = Some(format!("write {from_kw} ... {want} ..."));
        f.fix = ctx.fix(format!("write {as_kw} as {want}"), &[(as_pos, 2, want)]);
        out.push(f);
    }
}

/// The position and text of the `AS` of `FROM image AS name`.
fn as_keyword(ctx: &Ctx, from: &whittle_dockerfile::ast::From) -> Option<(Pos, String)> {
    let name = from.name.as_ref()?;
    let after_image = Pos::new(
        from.image.pos.line,
        from.image.pos.col + from.image.text.chars().count(),
    );
    let pos = ctx.src.find_word(after_image, name.pos.line, "as")?;
    let text = ctx
        .src
        .line(pos.line)
        .chars()
        .skip(pos.col.saturating_sub(1))
        .take(2)
        .collect();
    Some((pos, text))
}

/// Whether the stage starts with a SHELL set: inherited from an earlier stage it is built on,
/// or from a base image whose config has one.
fn inherited_shell(ctx: &Ctx, st: &StageView, shell_set: &[bool]) -> bool {
    let base = st.from.image.text.to_ascii_lowercase();
    if let Some(parent) = ctx.stages[..st.index]
        .iter()
        .rev()
        .find(|s| s.from.name.as_ref().is_some_and(|n| n.text == base))
    {
        return shell_set.get(parent.index).copied().unwrap_or(false);
    }
    ctx.image(&st.from.image.text)
        .is_some_and(|i| i.shell.is_some_and(|s| !s.is_empty()))
}

/// Per-instruction checks of one stage. Returns whether a SHELL is set at its end.
fn stage_body(ctx: &Ctx, st: &StageView, mut shell_set: bool, out: &mut Vec<Finding>) -> bool {
    let mut last: [Option<&Instruction>; 3] = [None; 3];
    for inst in &st.body {
        let slot = match &inst.kind {
            Kind::Cmd(_) => Some(0),
            Kind::Entrypoint(_) => Some(1),
            Kind::Healthcheck(_) => Some(2),
            _ => None,
        };
        if let Some(slot) = slot {
            if let Some(prev) = last[slot] {
                let name = keyword(inst).to_ascii_uppercase();
                let mut f = ctx.finding(
                    "MultipleInstructionsDisallowed",
                    ctx.inst_span(prev),
                    format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                );
                f.hint = Some(format!(
                    "remove this {name}: the one on line {} replaces it",
                    inst.pos.line
                ));
                out.push(f);
            }
            last[slot] = Some(inst);
        }
        match &inst.kind {
            Kind::Shell(_) => shell_set = true,
            Kind::Cmd(CmdLine::Shell(s)) | Kind::Entrypoint(CmdLine::Shell(s)) if !shell_set => {
                json_args(ctx, inst, s, out)
            }
            Kind::Maintainer(who) => maintainer(ctx, inst, who, out),
            Kind::Env(kvs) | Kind::Label(kvs) => {
                legacy_kv(ctx, inst, kvs, out);
                if let Kind::Env(kvs) = &inst.kind {
                    for kv in kvs {
                        secret(ctx, inst, "ENV", &kv.key.text, out);
                    }
                }
            }
            Kind::Arg(decls) => {
                for d in decls {
                    secret(ctx, inst, "ARG", &d.name.text, out);
                }
            }
            Kind::Expose(ports) => expose(ctx, inst, ports, out),
            Kind::Copy(c) | Kind::Add(c) if c.from.is_none() => copy_ignored(ctx, inst, c, out),
            _ => {}
        }
    }
    shell_set
}

fn json_args(ctx: &Ctx, inst: &Instruction, cmd: &str, out: &mut Vec<Finding>) {
    let name = keyword(inst).to_ascii_uppercase();
    let mut f = ctx.finding(
        "JSONArgsRecommended",
        ctx.inst_span(inst),
        format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
    );
    f.hint = Some(format!(
        "write {name} [\"program\", \"arg\"]; if you need the shell, set SHELL explicitly or run a script"
    ));
    f.fix = exec_form_fix(ctx, inst, cmd);
    out.push(f);
}

/// Shell form to JSON form, when the command is plain words (nothing a shell would interpret)
/// on one line.
fn exec_form_fix(ctx: &Ctx, inst: &Instruction, cmd: &str) -> Option<crate::Fix> {
    if inst.end_line != inst.pos.line
        || cmd.contains(|c: char| "$|&;<>*?()[]{}'\"\\`#~".contains(c))
    {
        return None;
    }
    let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        return None;
    }
    let (pos, len) = args_range(ctx, inst)?;
    let json: Vec<String> = words
        .iter()
        .map(|w| serde_json::to_string(w).unwrap_or_default())
        .collect();
    ctx.fix(
        "use the JSON (exec) form",
        &[(pos, len, format!("[{}]", json.join(", ")))],
    )
}

/// Where a one-line instruction's arguments start, and their length to the end of the line
/// (trailing blanks excluded).
fn args_range(ctx: &Ctx, inst: &Instruction) -> Option<(Pos, usize)> {
    let line: Vec<char> = ctx.src.line(inst.pos.line).chars().collect();
    let mut i = inst.pos.col.saturating_sub(1) + keyword(inst).chars().count();
    while line.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    let mut end = line.len();
    while end > i && line[end - 1].is_whitespace() {
        end -= 1;
    }
    (end > i).then(|| (Pos::new(inst.pos.line, i + 1), end - i))
}

fn maintainer(ctx: &Ctx, inst: &Instruction, who: &str, out: &mut Vec<Finding>) {
    let mut f = ctx.finding(
        "MaintainerDeprecated",
        ctx.inst_span(inst),
        "Maintainer instruction is deprecated in favor of using label",
    );
    f.hint = Some("write LABEL org.opencontainers.image.authors=\"...\"".into());
    let kw = keyword(inst);
    if inst.end_line == inst.pos.line && !who.contains(['"', '\\', '$']) {
        let label = if kw == kw.to_ascii_lowercase() {
            "label"
        } else {
            "LABEL"
        };
        let len = ctx
            .src
            .line(inst.pos.line)
            .chars()
            .count()
            .saturating_sub(inst.pos.col.saturating_sub(1));
        f.fix = ctx.fix(
            "use the org.opencontainers.image.authors label",
            &[(
                inst.pos,
                len,
                format!("{label} org.opencontainers.image.authors=\"{who}\""),
            )],
        );
    }
    out.push(f);
}

/// `ENV key value` / `LABEL key value`: the first argument has no `=`.
fn legacy_kv(
    ctx: &Ctx,
    inst: &Instruction,
    kvs: &[whittle_dockerfile::ast::KeyValue],
    out: &mut Vec<Finding>,
) {
    let kw = keyword(inst);
    let rest = inst.original.get(kw.len()..).unwrap_or("").trim_start();
    let first = rest.split_whitespace().next().unwrap_or("");
    if first.is_empty() || first.contains('=') {
        return;
    }
    let name = kw.to_ascii_uppercase();
    let mut f = ctx.finding(
        "LegacyKeyValueFormat",
        ctx.inst_span(inst),
        format!(
            "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
        ),
    );
    f.hint = Some(format!("write {name} key=\"value\""));
    if let [kv] = kvs {
        let value = kv.value.as_str();
        if inst.end_line == inst.pos.line
            && !value.is_empty()
            && !value.contains(['"', '\'', '\\', '`'])
        {
            let key_end = Pos::new(
                kv.key.pos.line,
                kv.key.pos.col + kv.key.text.chars().count(),
            );
            let line_len = ctx.src.line(inst.pos.line).trim_end().chars().count();
            if let Some(len) = (line_len + 1).checked_sub(key_end.col) {
                f.fix = ctx.fix(
                    format!("write {name} {}=\"{value}\"", kv.key.text),
                    &[(key_end, len, format!("=\"{value}\""))],
                );
            }
        }
    }
    out.push(f);
}

/// BuildKit's secret-name test: a `_`-separated part of the name is a secret word, and no part
/// is an allowed one.
fn looks_secret(key: &str) -> bool {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    let parts: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
    parts.iter().any(|p| DENY.contains(&p.as_str()))
        && !parts.iter().any(|p| ALLOW.contains(&p.as_str()))
}

fn secret(ctx: &Ctx, inst: &Instruction, what: &str, key: &str, out: &mut Vec<Finding>) {
    if !looks_secret(key) {
        return;
    }
    let mut f = ctx.finding(
        "SecretsUsedInArgOrEnv",
        ctx.inst_span(inst),
        format!("Do not use ARG or ENV instructions for sensitive data ({what} {key:?})"),
    );
    f.hint = Some(format!(
        "values of ARG and ENV stay in the image config and history; use RUN --mount=type=secret,id={},env={key} and `--secret`",
        key.to_ascii_lowercase()
    ));
    out.push(f);
}

fn expose(
    ctx: &Ctx,
    inst: &Instruction,
    ports: &[whittle_dockerfile::ast::Word],
    out: &mut Vec<Finding>,
) {
    for p in ports {
        let raw = p.text.as_str();
        let (rest, proto) = match raw.rsplit_once('/') {
            Some((r, pr)) => (r, pr),
            None => (raw, ""),
        };
        if proto != proto.to_ascii_lowercase() {
            let mut f = ctx.finding(
                "ExposeProtoCasing",
                ctx.inst_span(inst),
                format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            );
            f.hint = Some(format!("write {rest}/{}", proto.to_ascii_lowercase()));
            if !raw.contains('$') {
                let pos = Pos::new(p.pos.line, p.pos.col + rest.chars().count() + 1);
                f.fix = ctx.fix(
                    "lower-case the protocol",
                    &[(pos, proto.chars().count(), proto.to_ascii_lowercase())],
                );
            }
            out.push(f);
        }
        if rest.contains(':') {
            let mut f = ctx.finding(
                "ExposeInvalidFormat",
                ctx.inst_span(inst),
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
            );
            f.hint = Some(
                "EXPOSE takes the container port only; map host ports when running the container"
                    .into(),
            );
            out.push(f);
        }
    }
}

fn copy_ignored(
    ctx: &Ctx,
    inst: &Instruction,
    c: &whittle_dockerfile::ast::Copy,
    out: &mut Vec<Finding>,
) {
    let Some(m) = ctx.ignore else {
        return;
    };
    let fingerprint = m.fingerprint();
    // With `!` patterns a directory may be excluded and a file below it re-included: BuildKit
    // does not try to decide statically, nor does this.
    if fingerprint.lines().any(|l| l.starts_with('!')) {
        return;
    }
    let root_ignored = fingerprint
        .lines()
        .any(|l| matches!(l, "+*" | "+**" | "+**/*"));
    let cmd = if matches!(inst.kind, Kind::Add(_)) {
        "Add"
    } else {
        "Copy"
    };
    for s in &c.sources {
        let raw = s.text.as_str();
        if raw.contains("://") || raw.starts_with("git@") {
            continue;
        }
        let cleaned = whittle_context::ignore::clean(raw);
        if (cleaned == "." || cleaned == "/") && !root_ignored {
            continue;
        }
        if m.is_ignored(&cleaned) || (cleaned == "." && root_ignored) {
            let mut f = ctx.finding(
                "CopyIgnoredFile",
                ctx.inst_span(inst),
                format!("Attempting to {cmd} file {cleaned:?} that is excluded by .dockerignore"),
            );
            f.hint = Some(
                "remove the source from the instruction, or re-include it in .dockerignore with !"
                    .into(),
            );
            out.push(f);
        }
    }
}

fn base_platform(ctx: &Ctx, st: &StageView, out: &mut Vec<Finding>) {
    let Some(whittle_dockerfile::plan::Base::Image { reference }) = ctx.base(st.index) else {
        return;
    };
    let reference = &reference;
    let Some(img) = ctx.image(reference) else {
        return;
    };
    if img.os.is_empty() || img.arch.is_empty() {
        return;
    }
    let expected = ctx
        .stage_platform(st.index)
        .as_deref()
        .and_then(whittle_dockerfile::Platform::parse)
        .unwrap_or_else(|| ctx.input.target_platform.clone());
    if img.os != expected.os || img.arch != expected.arch {
        let actual = match &img.variant {
            Some(v) => format!("{}/{}/{v}", img.os, img.arch),
            None => format!("{}/{}", img.os, img.arch),
        };
        let mut f = ctx.finding(
            "InvalidBaseImagePlatform",
            ctx.inst_span(st.from_inst),
            format!("Base image {reference} was pulled with platform {actual:?}, expected \"{expected}\" for current build"),
        );
        f.hint = Some(format!(
            "pull the image for {expected} (whittle pull --platform {expected} {reference})"
        ));
        out.push(f);
    }
}

/// InvalidDefinitionDescription (experimental): the comment right above a named FROM or an ARG
/// should start with the name it describes.
fn definition_descriptions(ctx: &Ctx, out: &mut Vec<Finding>) {
    for inst in &ctx.df.instructions {
        let (what, keys): (&str, Vec<&str>) = match &inst.kind {
            Kind::From(f) => match &f.name {
                Some(n) => ("FROM", vec![n.text.as_str()]),
                None => continue,
            },
            Kind::Arg(d) => ("ARG", d.iter().map(|a| a.name.text.as_str()).collect()),
            _ => continue,
        };
        if inst.pos.line < 2 {
            continue;
        }
        let above = ctx.src.line(inst.pos.line - 1).trim_start();
        let Some(comment) = above.strip_prefix('#') else {
            continue;
        };
        if is_directive_line(ctx, inst.pos.line - 1) {
            continue;
        }
        let text = comment.trim();
        let first = text.split(' ').next().unwrap_or("");
        // An empty `#` line is no description.
        if text.is_empty() || keys.contains(&first) {
            continue;
        }
        let example = match keys.as_slice() {
            [one] => *one,
            _ => "<arg_key>",
        };
        let mut f = ctx.finding(
            "InvalidDefinitionDescription",
            ctx.inst_span(inst),
            format!("Comment for {what} should follow the format: `# {example} <description>`"),
        );
        f.hint = Some(
            "start the comment with the name, or put an empty line between it and the instruction"
                .into(),
        );
        out.push(f);
    }
}

/// Whether line `n` is one of the parser directives at the top of the file.
fn is_directive_line(ctx: &Ctx, n: usize) -> bool {
    (1..=n).all(|i| {
        let l = ctx.src.line(i).trim_start();
        l.strip_prefix('#')
            .map(|r| r.trim_start())
            .and_then(|r| r.split_once('='))
            .is_some_and(|(k, _)| {
                matches!(
                    k.trim().to_ascii_lowercase().as_str(),
                    "syntax" | "escape" | "check"
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::looks_secret;

    #[test]
    fn secret_names() {
        for s in [
            "AWS_SECRET_ACCESS_KEY",
            "api_key",
            "GITHUB_TOKEN",
            "AUTH",
            "password",
            "secret_MESSAGE",
        ] {
            assert!(looks_secret(s), "{s}");
        }
        for s in [
            "PUBLIC_KEY",
            "SECRET_FILE",
            "TOKEN_VERSION",
            "KEYBOARD",
            "MONKEY",
            "PATH",
        ] {
            assert!(!looks_secret(s), "{s}");
        }
    }
}
