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
    for st in &ctx.stages {
        base_tag(ctx, st, out);
        let mut shell = parent(ctx, st).and_then(|p| shells.get(p).cloned().flatten());
        let mut prev_run: Option<&Instruction> = None;
        for inst in &st.body {
            match &inst.kind {
                Kind::Shell(s) => shell = Some(s.clone()),
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
    }
    last_user(ctx, out);
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
    let truthy = |v: &str| {
        matches!(
            v.trim_matches('"'),
            "1" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "yes" | "Yes" | "YES"
        )
    };
    let env_no_cache = ctx.stages.iter().flat_map(|s| s.body.iter()).any(|i| {
        matches!(&i.kind, Kind::Env(kvs) if kvs.iter().any(|kv| kv.key.text == "PIP_NO_CACHE_DIR" && truthy(&kv.value)))
    });
    let keeps =
        |c: &&Command| !c.has_flag("--no-cache-dir") && c.assigns("PIP_NO_CACHE_DIR").is_none();
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
mod tests {
    use crate::Input;

    fn raises(rule: &str, text: &str) -> bool {
        crate::check(&Input::new("Dockerfile", text))
            .unwrap()
            .findings
            .iter()
            .any(|f| f.rule == rule)
    }

    /// hadolint's DL4006 spec (test/Hadolint/Rule/DL4006Spec.hs).
    #[test]
    fn pipefail_as_hadolint_specifies() {
        let pipe = "RUN wget -O - https://some.site | wc -l file > /number\n";
        for (shell, flagged) in [
            ("", true),
            (
                "SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            (
                "SHELL [\"/bin/bash\", \"-e\", \"-o\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            (
                "SHELL [\"/bin/bash\", \"-o\", \"errexit\", \"-o\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            (
                "SHELL [\"/bin/zsh\", \"-o\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            (
                "SHELL [\"/usr/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            (
                "SHELL [\"/usr/local/bin/zsh\", \"-o\", \"pipefail\", \"-c\"]\n",
                false,
            ),
            ("SHELL [\"/bin/sh\", \"-o\", \"pipefail\", \"-c\"]\n", true),
            ("SHELL [\"pwsh\", \"-c\"]\n", false),
            ("SHELL [\"powershell.exe\"]\n", false),
            ("SHELL [\"cmd.exe\", \"/c\"]\n", false),
        ] {
            let text = format!("FROM scratch AS build\n{shell}{pipe}");
            assert_eq!(raises("PipefailMissing", &text), flagged, "{text}");
        }
        assert!(!raises(
            "PipefailMissing",
            "FROM scratch\nRUN wget -O - https://some.site && wc -l file > /number\n"
        ));
        // A new stage from another base starts without the SHELL; a later SHELL replaces it.
        assert!(raises("PipefailMissing", &format!("FROM scratch AS a\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n{pipe}FROM scratch AS b\n{pipe}")));
        assert!(raises("PipefailMissing", &format!("FROM scratch\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n{pipe}SHELL [\"/bin/sh\", \"-c\"]\n{pipe}")));
    }

    /// hadolint's DL3009 spec (test/Hadolint/Rule/DL3009Spec.hs).
    #[test]
    fn apt_lists_as_hadolint_specifies() {
        for (text, flagged) in [
            ("FROM scratch\nRUN apt-get update && apt-get install python\n", true),
            ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python\nFROM scratch\nRUN echo hey!\n", false),
            ("FROM ubuntu AS foo\nRUN hey!\nFROM scratch\nRUN apt-get update && apt-get install python\n", true),
            ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python\nFROM foo\nRUN hey!\n", true),
            ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python && rm -rf /var/lib/apt/lists/*\nFROM foo\nRUN hey!\n", false),
            ("FROM scratch\nRUN apt-get update && apt-get install python && rm -rf /var/lib/apt/lists/*\n", false),
            ("FROM scratch\nRUN --mount=type=cache,target=/var/lib/apt/lists \\\n    apt-get update && apt-get install python\n", false),
            ("FROM scratch\nRUN --mount=type=cache,target=/var/lib/apt \\\n    --mount=type=cache,target=/var/cache/apt \\\n    rm -f /etc/apt/apt.conf.d/docker-clean && \\\n    apt-get update && apt-get install python\n", false),
            ("FROM scratch\nRUN --mount=type=cache,target=/var/cache/apt \\\n    rm -f /etc/apt/apt.conf.d/docker-clean && \\\n    apt-get update && apt-get install python\n", true),
            ("FROM scratch\nRUN rm -f /etc/apt/apt.conf.d/docker-clean\nRUN --mount=type=cache,target=/var/lib/apt \\\n    apt-get update && apt-get install python\n", true),
        ] {
            assert_eq!(raises("AptListsNotDeleted", text), flagged, "{text}");
        }
    }

    /// hadolint's DL3059 spec (test/Hadolint/Rule/DL3059Spec.hs).
    #[test]
    fn consecutive_runs_as_hadolint_specifies() {
        for (body, flagged) in [
            ("", false),
            ("RUN /foo.sh\n", false),
            ("RUN /foo.sh\nWORKDIR /\nRUN /bar.sh\n", false),
            ("RUN /foo.sh\nRUN /bar.sh\n", true),
            ("RUN /foo.sh\n# a comment\nRUN /bar.sh\n", true),
            (
                "RUN /foo.sh\n# a comment\n# another comment\nRUN /bar.sh\n",
                true,
            ),
            ("# a comment\nRUN /foo.sh\n", false),
            (
                "RUN --mount=type=secret,id=foo /foo.sh\nRUN /bar.sh\n",
                false,
            ),
            (
                "RUN --mount=type=secret,id=foo /foo.sh\nRUN --mount=type=secret,id=bar /bar.sh\n",
                false,
            ),
            (
                "RUN --mount=type=secret,id=foo /foo.sh\nRUN --mount=type=secret,id=foo /bar.sh\n",
                true,
            ),
            ("RUN foo && bar\nRUN foobar\n", false),
            ("RUN foo; bar\nRUN foobar\n", false),
            ("RUN foobar\nRUN foo && bar\n", false),
            ("RUN foobar\nRUN foo; bar\n", false),
            ("RUN foo && bar\nRUN foo; bar\n", false),
            ("RUN foo && bar\nRUN foo\nRUN bar\n", true),
        ] {
            let text = format!("FROM debian:10\n{body}");
            assert_eq!(raises("ConsecutiveRuns", &text), flagged, "{body}");
        }
    }

    /// hadolint's DL3047 spec (test/Hadolint/Rule/DL3047Spec.hs).
    #[test]
    fn wget_progress_as_hadolint_specifies() {
        for (run, flagged) in [
            ("wget my.xyz", true),
            ("wget --progress=dot:giga my.xyz", false),
            ("wget -q my.xyz", false),
            ("wget --quiet my.xyz", false),
            ("wget -nv my.xyz", false),
            ("wget --no-verbose my.xyz", false),
            ("wget --output-file=/tmp/wget.log my.xyz", false),
            ("wget -o /tmp/wget.log my.xyz", false),
            ("wget --append-output=/tmp/wget.log my.xyz", false),
            ("wget -a /tmp/wget.log my.xyz", false),
        ] {
            let text = format!("FROM node:22 AS foo\nRUN {run}\n");
            assert_eq!(raises("WgetProgressBar", &text), flagged, "{run}");
        }
    }

    /// hadolint's DL3019 spec (test/Hadolint/Rule/DL3019Spec.hs).
    #[test]
    fn apk_cache_as_hadolint_specifies() {
        for (run, flagged) in [
            ("apk add flex=2.6.4-r1", true),
            ("apk add --no-cache flex=2.6.4-r1", false),
            (
                "--mount=type=cache,target=/var/cache/apk apk add -U curl=7.77.0",
                false,
            ),
            (
                "--mount=type=cache,target=/var/cache/foo apk add --no-cache -U curl=7.77.0",
                false,
            ),
            (
                "--mount=type=cache,target=/var/cache/foo apk add -U curl=7.77.0",
                true,
            ),
        ] {
            let text = format!("FROM alpine:3.20\nRUN {run}\n");
            assert_eq!(raises("ApkCacheKept", &text), flagged, "{run}");
        }
    }
}
