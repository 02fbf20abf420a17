//! [`Op::summary`]: one line per step, in Dockerfile syntax, for progress output and plans.

use super::{CopyOp, Op, PlannedMount, Source};
use crate::ast::{CmdLine, Healthcheck};
use crate::mount;
use serde::Serialize;

fn quote_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn cmdline(c: &CmdLine) -> String {
    match c {
        CmdLine::Exec(v) => quote_list(v),
        CmdLine::Shell(s) => s.clone(),
    }
}

impl Op {
    /// One line describing the step after expansion, in Dockerfile syntax. `stages` gives
    /// the display names of the stages (see [`Plan::labels`](super::Plan::labels)) for `--from`
    /// references.
    pub fn summary(&self, stages: &[String]) -> String {
        let kv = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Op::Run {
                cmd,
                mounts,
                network,
                security,
                heredocs,
                ..
            } => {
                let mut s = String::from("RUN");
                for m in mounts {
                    s.push_str(&format!(" --mount={}", mount_summary(m, stages)));
                }
                if let Some(n) = network {
                    s.push_str(&format!(" --network={}", enum_str(n)));
                }
                if let Some(sec) = security {
                    s.push_str(&format!(" --security={}", enum_str(sec)));
                }
                s.push(' ');
                s.push_str(&cmdline(cmd));
                for h in heredocs {
                    let lines = h.content.lines().count();
                    s.push_str(&format!(
                        " [heredoc {}: {lines} line{}]",
                        h.name,
                        if lines == 1 { "" } else { "s" }
                    ));
                }
                s
            }
            Op::Copy(c) => copy_summary("COPY", c, stages),
            Op::Add(c) => copy_summary("ADD", c, stages),
            Op::Env { vars } => format!("ENV {}", kv(vars)),
            Op::Label { labels } => format!("LABEL {}", kv(labels)),
            Op::Arg { args } => format!(
                "ARG {}",
                args.iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={}", shell_quote(v)),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Op::Workdir { path } => format!("WORKDIR {path}"),
            Op::User { user } => format!("USER {user}"),
            Op::Expose { ports } => format!("EXPOSE {}", ports.join(" ")),
            Op::Volume { paths } => format!("VOLUME {}", quote_list(paths)),
            Op::Cmd { cmd, .. } => format!("CMD {}", cmdline(cmd)),
            Op::Entrypoint { cmd, .. } => format!("ENTRYPOINT {}", cmdline(cmd)),
            Op::Healthcheck { check, .. } => match check {
                Healthcheck::None => "HEALTHCHECK NONE".into(),
                Healthcheck::Cmd { test, .. } => format!("HEALTHCHECK CMD {}", cmdline(test)),
            },
            Op::Stopsignal { signal } => format!("STOPSIGNAL {signal}"),
            Op::Shell { shell } => format!("SHELL {}", quote_list(shell)),
            Op::Maintainer { name } => format!("MAINTAINER {name}"),
            Op::Onbuild { trigger } => format!("ONBUILD {trigger}"),
        }
    }
}

fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,+@%=".contains(c))
    {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

fn source_summary(s: &Source, stages: Option<&[String]>) -> String {
    match s {
        Source::Context => "context".into(),
        Source::Stage { index } => stages
            .and_then(|n| n.get(*index).cloned())
            .unwrap_or_else(|| index.to_string()),
        Source::Image { reference } => reference.clone(),
        Source::Named { name } => name.clone(),
    }
}

fn mount_summary(m: &PlannedMount, stages: &[String]) -> String {
    let s = &m.spec;
    let mut parts = vec![format!("type={}", s.kind.as_str())];
    if !s.target.is_empty() {
        parts.push(format!("target={}", s.target));
    }
    if let Some(r) = &m.source_ref {
        parts.push(format!("from={}", source_summary(r, Some(stages))));
    }
    if let Some(src) = &s.source {
        parts.push(format!("source={src}"));
    }
    if let Some(id) = &s.id {
        if s.kind != mount::MountType::Cache || id != &s.target {
            parts.push(format!("id={id}"));
        }
    }
    if s.kind == mount::MountType::Cache && s.sharing != mount::Sharing::Shared {
        parts.push(format!("sharing={}", enum_str(&s.sharing)));
    }
    if s.kind == mount::MountType::Bind && !s.readonly {
        parts.push("rw".into());
    }
    if let Some(e) = &s.env {
        parts.push(format!("env={e}"));
    }
    parts.join(",")
}

fn copy_summary(kw: &str, c: &CopyOp, stages: &[String]) -> String {
    let mut s = kw.to_string();
    if c.from != Source::Context {
        s.push_str(&format!(
            " --from={}",
            source_summary(&c.from, Some(stages))
        ));
    }
    if let Some(v) = &c.chown {
        s.push_str(&format!(" --chown={v}"));
    }
    if let Some(v) = &c.chmod {
        s.push_str(&format!(" --chmod={v}"));
    }
    if c.link {
        s.push_str(" --link");
    }
    if c.parents {
        s.push_str(" --parents");
    }
    for e in &c.excludes {
        s.push_str(&format!(" --exclude={e}"));
    }
    if let Some(v) = &c.checksum {
        s.push_str(&format!(" --checksum={v}"));
    }
    if c.keep_git_dir {
        s.push_str(" --keep-git-dir");
    }
    if let Some(u) = c.unpack {
        s.push_str(&format!(" --unpack={u}"));
    }
    for src in &c.sources {
        s.push(' ');
        s.push_str(src);
    }
    for f in &c.inline {
        s.push_str(&format!(" <<{}", f.name));
    }
    s.push(' ');
    s.push_str(&c.dest);
    s
}
