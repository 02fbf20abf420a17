//! hadolint's rules on image size, security and reproducibility, under descriptive names with
//! hadolint's ids as aliases. RUN commands are read with `shellwords`, as hadolint reads them
//! with ShellCheck's parser: only simple commands and their words.

use super::packages::{apk_unpinned, apt_unpinned, is, is_pip_install, npm_unpinned, pip_unpinned};
use super::shellwords::{commands, Command};
use super::{keyword, run_text, Ctx, StageView};
use crate::{Finding, Fix};
use whittle_dockerfile::ast::{CmdLine, Instruction, Kind};
use whittle_dockerfile::Pos;

pub(super) fn run(ctx: &Ctx, out: &mut Vec<Finding>) {
    let final_chain = final_chain(ctx);
    let mut shells: Vec<Option<Vec<String>>> = Vec::new();
    // Whether `ENV PIP_NO_CACHE_DIR=<true>` is in effect at the end of each stage.
    let mut pip_env: Vec<bool> = Vec::new();
    for st in &ctx.stages {
        base_tag(ctx, st, out);
        let mut shell = parent(ctx, st).and_then(|p| shells.get(p).cloned().flatten());
        let mut pip_no_cache = parent(ctx, st).is_some_and(|p| pip_env.get(p) == Some(&true));
        let mut prev_run: Option<&Instruction> = None;
        for inst in &st.body {
            match &inst.kind {
                Kind::Shell(s) => shell = Some(s.clone()),
                Kind::Env(kvs) => {
                    if let Some(kv) = kvs
                        .iter()
                        .rev()
                        .find(|kv| kv.key.text == "PIP_NO_CACHE_DIR")
                    {
                        pip_no_cache = truthy(&kv.value);
                    }
                }
                Kind::Run(r) => {
                    let text = run_text(inst).unwrap_or_default();
                    let cmds = commands(&text);
                    let cache_on = |dir: &str| {
                        r.mounts.iter().any(|m| {
                            m.spec.text.contains("type=cache") && m.spec.text.contains(dir)
                        })
                    };
                    packages(
                        ctx,
                        inst,
                        &cmds,
                        &cache_on,
                        final_chain.contains(&st.index),
                        pip_no_cache,
                        out,
                    );
                    pipefail(ctx, inst, r, &cmds, shell.as_deref(), out);
                    // As hadolint's spec: not when the flags differ (the split is there for
                    // them), nor when either RUN already chains commands.
                    let joinable = |p: &Instruction| match &p.kind {
                        Kind::Run(pr) => {
                            pr.mounts
                                .iter()
                                .map(|m| &m.spec.text)
                                .eq(r.mounts.iter().map(|m| &m.spec.text))
                                && pr.network == r.network
                                && pr.security == r.security
                                && commands(&run_text(p).unwrap_or_default()).len() <= 1
                                && cmds.len() <= 1
                        }
                        _ => false,
                    };
                    if let Some(prev) = prev_run.filter(|p| joinable(p)) {
                        let mut f = ctx.finding(
                            "ConsecutiveRuns",
                            ctx.inst_span(inst),
                            format!("Multiple consecutive `RUN` instructions (lines {} and {}). Consider consolidation.", prev.pos.line, inst.pos.line),
                        );
                        f.hint = Some("join them with && so they make one layer, unless the split is there for caching".into());
                        out.push(f);
                    }
                    prev_run = Some(*inst);
                    continue;
                }
                Kind::Add(c) => add_for_copy(ctx, inst, c, out),
                Kind::Copy(c) => copy_from(ctx, st, c, out),
                _ => {}
            }
            prev_run = None;
        }
        shells.push(shell);
        pip_env.push(pip_no_cache);
    }
    last_user(ctx, out);
}

/// pip's spellings of true (hadolint's `truthy`).
fn truthy(v: &str) -> bool {
    matches!(
        v.trim_matches('"'),
        "1" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "yes" | "Yes" | "YES"
    )
}

/// The index of the stage `st` is built `FROM`, if it is a stage.
fn parent(ctx: &Ctx, st: &StageView) -> Option<usize> {
    let base = st.from.image.text.to_ascii_lowercase();
    ctx.stages[..st.index]
        .iter()
        .rev()
        .find(|s| s.from.name.as_ref().is_some_and(|n| n.text == base))
        .map(|s| s.index)
}

/// The target stage and the stages it is built FROM: what ends up in the final image.
pub(crate) fn final_chain(ctx: &Ctx) -> Vec<usize> {
    let mut chain = vec![ctx.target()];
    while let Some(st) = chain.last().and_then(|&i| ctx.stages.get(i)) {
        match parent(ctx, st) {
            Some(p) if !chain.contains(&p) => chain.push(p),
            _ => break,
        }
    }
    chain
}

/// DL3006 and DL3007.
fn base_tag(ctx: &Ctx, st: &StageView, out: &mut Vec<Finding>) {
    let image = st.from.image.text.as_str();
    if image.contains('$')
        || image.eq_ignore_ascii_case("scratch")
        || parent(ctx, st).is_some()
        || image.contains('@')
    {
        return;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let span = ctx.word_span(&st.from.image);
    match last.split_once(':') {
        None => {
            let mut f = ctx.finding(
                "UntaggedImage",
                span,
                format!("Always tag the version of an image explicitly ({image} has no tag)"),
            );
            f.hint = Some(format!("write {image}:<version>"));
            out.push(f);
        }
        Some((_, "latest")) => {
            let mut f = ctx.finding(
                "LatestTag",
                span,
                format!("Using latest is prone to errors if the image will ever update ({image})"),
            );
            f.hint = Some("pin a release tag, and a digest (see BaseImageNotPinned)".into());
            out.push(f);
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn packages(
    ctx: &Ctx,
    inst: &Instruction,
    cmds: &[Command],
    cache_on: &dyn Fn(&str) -> bool,
    in_final: bool,
    pip_env_no_cache: bool,
    out: &mut Vec<Finding>,
) {
    let span = ctx.inst_span(inst);
    let apt: Vec<&Command> = cmds
        .iter()
        .filter(|c| is(c, &["apt-get"], "install"))
        .collect();
    let unpinned: Vec<&str> = apt.iter().flat_map(|c| apt_unpinned(c)).collect();
    if !unpinned.is_empty() {
        let mut f = ctx.finding(
            "AptUnpinned",
            span,
            format!("Pin versions in apt get install: {}", unpinned.join(", ")),
        );
        f.hint = Some("write package=version (apt-cache policy PACKAGE shows the versions)".into());
        out.push(f);
    }
    let no_rec = |c: &&Command| {
        !c.has_flag("--no-install-recommends")
            && !c
                .words
                .iter()
                .any(|w| w.contains("Install-Recommends=false"))
    };
    if apt.iter().any(no_rec) {
        let mut f = ctx.finding(
            "AptInstallRecommends",
            span,
            "Avoid additional packages by specifying `--no-install-recommends`",
        );
        f.hint = Some("apt-get install -y --no-install-recommends ...".into());
        f.fix = insert_after(
            ctx,
            inst,
            &["apt-get"],
            "install",
            " --no-install-recommends",
            &apt.iter().map(no_rec).collect::<Vec<_>>(),
            "add --no-install-recommends",
        );
        out.push(f);
    }
    let updates = cmds.iter().any(|c| is(c, &["apt-get"], "update"));
    let cleans = cmds.iter().any(|c| {
        c.name() == Some("rm") && c.words.iter().any(|w| w.starts_with("/var/lib/apt/lists"))
    });
    // hadolint's exemptions: a cache mount on the lists, or on both apt directories.
    let cached =
        cache_on("/var/lib/apt/lists") || (cache_on("/var/lib/apt") && cache_on("/var/cache/apt"));
    if in_final && updates && !cleans && !cached {
        let mut f = ctx.finding(
            "AptListsNotDeleted",
            span,
            "Delete the apt-get lists after installing something",
        );
        f.hint = Some("end the same RUN with && rm -rf /var/lib/apt/lists/*, or use a cache mount on /var/lib/apt".into());
        f.fix = append_to_run(
            ctx,
            inst,
            " && rm -rf /var/lib/apt/lists/*",
            "remove the apt lists in the same RUN",
        );
        out.push(f);
    }
    let pips: Vec<&Command> = cmds.iter().filter(|c| is_pip_install(c)).collect();
    let loose: Vec<&str> = pips.iter().flat_map(|c| pip_unpinned(c)).collect();
    if !loose.is_empty() {
        let mut f = ctx.finding(
            "PipUnpinned",
            span,
            format!("Pin versions in pip: {}", loose.join(", ")),
        );
        f.hint = Some(
            "write package==version, or install from a requirements file with pinned versions"
                .into(),
        );
        out.push(f);
    }
    // PIP_NO_CACHE_DIR set to a true value anywhere in the RUN (`VAR=1 pip`, `export VAR=1`).
    let run_no_cache = cmds
        .iter()
        .flat_map(|c| c.words.iter())
        .any(|w| w.strip_prefix("PIP_NO_CACHE_DIR=").is_some_and(truthy));
    let env_no_cache = pip_env_no_cache || run_no_cache;
    let keeps = |c: &&Command| !c.has_flag("--no-cache-dir");
    if !env_no_cache && !cache_on("/root/.cache") && pips.iter().any(keeps) {
        let mut f = ctx.finding(
            "PipCacheKept",
            span,
            "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`",
        );
        f.hint =
            Some("pip install --no-cache-dir ..., or a cache mount on /root/.cache/pip".into());
        if pips
            .iter()
            .all(|c| is(c, &["pip", "pip2", "pip3"], "install"))
        {
            f.fix = insert_after(
                ctx,
                inst,
                &["pip", "pip2", "pip3"],
                "install",
                " --no-cache-dir",
                &pips.iter().map(keeps).collect::<Vec<_>>(),
                "add --no-cache-dir",
            );
        }
        out.push(f);
    }
    let npm: Vec<&str> = cmds.iter().flat_map(npm_unpinned).collect();
    if !npm.is_empty() {
        let mut f = ctx.finding(
            "NpmUnpinned",
            span,
            format!("Pin versions in npm: {}", npm.join(", ")),
        );
        f.hint = Some(
            "write package@version, or install from package.json and a lockfile with npm ci".into(),
        );
        out.push(f);
    }
    let apk: Vec<&Command> = cmds.iter().filter(|c| is(c, &["apk"], "add")).collect();
    let apk_loose: Vec<&str> = apk.iter().flat_map(|c| apk_unpinned(c)).collect();
    if !apk_loose.is_empty() {
        let mut f = ctx.finding(
            "ApkUnpinned",
            span,
            format!("Pin versions in apk add: {}", apk_loose.join(", ")),
        );
        f.hint = Some("write package=version".into());
        out.push(f);
    }
    let keeps_apk = |c: &&Command| !c.has_flag("--no-cache");
    if !cache_on("/var/cache/apk") && apk.iter().any(keeps_apk) {
        let mut f = ctx.finding("ApkCacheKept", span, "Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages");
        f.hint = Some("apk add --no-cache ...".into());
        f.fix = insert_after(
            ctx,
            inst,
            &["apk"],
            "add",
            " --no-cache",
            &apk.iter().map(keeps_apk).collect::<Vec<_>>(),
            "add --no-cache",
        );
        out.push(f);
    }
    let wget_quiet = |c: &&Command| {
        [
            "--progress",
            "-q",
            "--quiet",
            "-nv",
            "--no-verbose",
            "-o",
            "--output-file",
            "-a",
            "--append-output",
        ]
        .iter()
        .any(|fl| c.has_flag(fl))
            || c.has_short('q')
    };
    let wgets: Vec<&Command> = cmds
        .iter()
        .filter(|c| {
            c.name()
                .is_some_and(|n| n.rsplit('/').next() == Some("wget"))
        })
        .collect();
    if wgets.iter().any(|c| !wget_quiet(c)) {
        let mut f = ctx.finding(
            "WgetProgressBar",
            span,
            "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`",
        );
        f.hint = Some("wget --progress=dot:giga <url> (or -q)".into());
        f.fix = insert_word_after(
            ctx,
            inst,
            "wget",
            " --progress=dot:giga",
            &wgets.iter().map(|c| !wget_quiet(c)).collect::<Vec<_>>(),
            "add --progress=dot:giga",
        );
        out.push(f);
    }
}

/// Inserts `text` after the `sub` word that follows each `prog` word (in the same command) in
/// the instruction's source, for the occurrences where `want[i]` is true. `None` when the source
/// does not have exactly `want.len()` occurrences (a variable, a line continuation between
/// them...). One pass over the instruction's words.
fn insert_after(
    ctx: &Ctx,
    inst: &Instruction,
    progs: &[&str],
    sub: &str,
    text: &str,
    want: &[bool],
    what: &str,
) -> Option<Fix> {
    let mut at = Vec::new();
    let mut armed = false;
    for (pos, w) in ctx.src.words(inst.pos, inst.end_line) {
        if progs.contains(&w) {
            armed = true;
        } else if armed && w == sub {
            at.push(Pos::new(pos.line, pos.col + sub.chars().count()));
            armed = false;
        } else if w.contains(['&', '|', ';']) {
            armed = false;
        }
    }
    edits_at(ctx, &at, text, want, what)
}

/// Inserts `text` after each occurrence of the word `word`.
fn insert_word_after(
    ctx: &Ctx,
    inst: &Instruction,
    word: &str,
    text: &str,
    want: &[bool],
    what: &str,
) -> Option<Fix> {
    let at: Vec<Pos> = ctx
        .src
        .words(inst.pos, inst.end_line)
        .filter(|(_, w)| *w == word)
        .map(|(p, _)| Pos::new(p.line, p.col + word.chars().count()))
        .collect();
    edits_at(ctx, &at, text, want, what)
}

fn edits_at(ctx: &Ctx, at: &[Pos], text: &str, want: &[bool], what: &str) -> Option<Fix> {
    if at.len() != want.len() || matches!(ctx.df.escape, '`') {
        return None;
    }
    let edits: Vec<(Pos, usize, String)> = at
        .iter()
        .zip(want)
        .filter(|(_, w)| **w)
        .map(|(p, _)| (*p, 0, text.to_string()))
        .collect();
    ctx.fix(what, &edits)
}

/// Appends `text` to a shell-form RUN without heredocs, at the end of its last line.
fn append_to_run(ctx: &Ctx, inst: &Instruction, text: &str, what: &str) -> Option<Fix> {
    let Kind::Run(r) = &inst.kind else {
        return None;
    };
    if !r.heredocs.is_empty() || !matches!(r.cmd, CmdLine::Shell(_)) {
        return None;
    }
    let last = ctx.src.line(inst.end_line);
    let trimmed = last.trim_end();
    if trimmed.ends_with(ctx.df.escape) || trimmed.trim_start().starts_with('#') {
        return None;
    }
    ctx.fix(
        what,
        &[(
            Pos::new(inst.end_line, trimmed.chars().count() + 1),
            0,
            text.to_string(),
        )],
    )
}

/// DL4006: a pipe in a RUN whose shell does not have pipefail.
fn pipefail(
    ctx: &Ctx,
    inst: &Instruction,
    r: &whittle_dockerfile::ast::Run,
    cmds: &[Command],
    shell: Option<&[String]>,
    out: &mut Vec<Finding>,
) {
    if !matches!(r.cmd, CmdLine::Shell(_)) || !cmds.iter().any(|c| c.pipe_after) {
        return;
    }
    if let Some(sh) = shell {
        let first = sh.first().map(String::as_str).unwrap_or("");
        // hadolint's non-POSIX shells: nothing to say about their pipes.
        if ["pwsh", "powershell", "cmd"]
            .iter()
            .any(|p| first.starts_with(p))
        {
            return;
        }
        // As hadolint: only bash, zsh and ash take `-o pipefail` (a short option cluster with
        // `o`, then `pipefail`).
        let prog = first.rsplit('/').next().unwrap_or(first);
        let o_flag = sh
            .iter()
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('o'));
        if matches!(prog, "bash" | "zsh" | "ash") && o_flag && sh.iter().any(|a| a == "pipefail") {
            return;
        }
    }
    if cmds.iter().any(|c| {
        c.name() == Some("set")
            && c.words
                .windows(2)
                .any(|w| w[1] == "pipefail" || w[0].contains("pipefail"))
    }) {
        return;
    }
    let mut f = ctx.finding(
        "PipefailMissing",
        ctx.inst_span(inst),
        "Set the SHELL option -o pipefail before RUN with a pipe in it",
    );
    f.hint = Some("a failing command before | does not fail the step: add SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"] (on a base with bash), or `set -o pipefail &&` where the shell has it".into());
    out.push(f);
}

const ARCHIVES: &[&str] = &[
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".gz", ".bz2",
    ".xz", ".zst",
];

/// DL3020: ADD of local files and folders.
fn add_for_copy(
    ctx: &Ctx,
    inst: &Instruction,
    c: &whittle_dockerfile::ast::Copy,
    out: &mut Vec<Finding>,
) {
    let special = |s: &str| {
        let s = s.trim_matches(['"', '\'']);
        s.contains("://")
            || s.starts_with("git@")
            || s.contains('$')
            || ARCHIVES.iter().any(|a| s.to_ascii_lowercase().ends_with(a))
    };
    if c.sources.iter().any(|s| special(&s.text)) || (c.sources.is_empty() && c.heredocs.is_empty())
    {
        return;
    }
    let mut f = ctx.finding(
        "AddInsteadOfCopy",
        ctx.inst_span(inst),
        "Use COPY instead of ADD for files and folders",
    );
    f.hint =
        Some("ADD also fetches URLs and unpacks archives; COPY says that it only copies".into());
    if c.checksum.is_none() && !c.keep_git_dir && c.unpack.is_none() {
        let kw = keyword(inst);
        let copy = if kw == kw.to_ascii_lowercase() {
            "copy"
        } else {
            "COPY"
        };
        f.fix = ctx.fix(
            "use COPY",
            &[(inst.pos, kw.chars().count(), copy.to_string())],
        );
    }
    out.push(f);
}

/// DL3022 and DL3023.
fn copy_from(ctx: &Ctx, st: &StageView, c: &whittle_dockerfile::ast::Copy, out: &mut Vec<Finding>) {
    let Some(from) = &c.from else { return };
    let v = from.text.to_ascii_lowercase();
    if v.contains(['/', ':', '@', '$']) {
        return;
    }
    let span = ctx.word_span(from);
    if st.from.name.as_ref().is_some_and(|n| n.text == v)
        || v.parse::<usize>().ok() == Some(st.index)
    {
        let mut f = ctx.finding(
            "CopyFromOwnStage",
            span,
            format!(
                "COPY --from cannot reference its own FROM alias ({})",
                from.text
            ),
        );
        f.hint = Some("copy from an earlier stage, or use a plain COPY within the stage".into());
        out.push(f);
        return;
    }
    let earlier = ctx.stages[..st.index]
        .iter()
        .any(|s| s.from.name.as_ref().is_some_and(|n| n.text == v))
        || v.parse::<usize>().is_ok_and(|i| i < st.index);
    if !earlier {
        let mut f = ctx.finding(
            "CopyFromUnknownStage",
            span,
            format!(
                "COPY --from should reference a previously defined FROM alias ({} is not one)",
                from.text
            ),
        );
        f.hint = Some("name a stage defined above, or an image with a tag (name:tag)".into());
        out.push(f);
    }
}

/// DL3002: the final stage's last USER is root.
fn last_user(ctx: &Ctx, out: &mut Vec<Finding>) {
    // The last USER of the final image: in the target stage, else in the stages it is built on.
    let Some((inst, w)) = final_chain(ctx)
        .iter()
        .filter_map(|&i| ctx.stages.get(i))
        .find_map(|st| {
            st.body.iter().rev().find_map(|i| match &i.kind {
                Kind::User(w) => Some((*i, w)),
                _ => None,
            })
        })
    else {
        return;
    };
    let user = w.text.split(':').next().unwrap_or("");
    if user == "root" || user == "0" {
        let mut f = ctx.finding(
            "LastUserRoot",
            ctx.inst_span(inst),
            "Last USER should not be root",
        );
        f.hint = Some("switch to an unprivileged user at the end (USER 65534:65534, or a user the image creates)".into());
        out.push(f);
    }
}

#[cfg(test)]
#[path = "hadolint_specs.rs"]
mod tests;
