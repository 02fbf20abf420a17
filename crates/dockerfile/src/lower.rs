//! Lowering a [`Plan`] to a [`whittle_graph::Graph`]: the frontend's last step, where every
//! Dockerfile rule that decides what a step does is applied, so the solver sees only resolved
//! operations.
//!
//! Resolved here: the command line of a RUN (SHELL, heredocs: a body starting with `#!` runs as
//! a script from `/dev/pipes/NAME`, a lone heredoc is the shell's command, several follow the
//! line as a script), the environment each RUN sees (the base image's ENV, the stage's ENV,
//! then the ARGs in scope that ENV does not shadow), USER and WORKDIR, the absolute destination
//! of COPY, which local archives ADD unpacks, the sources a mount or COPY reads, `--link` as a
//! copy onto nothing merged onto the stage, each image-config change and the history text
//! BuildKit writes for it.

use crate::ast::{CmdLine, Healthcheck};
use crate::mount::{MountType, Sharing};
use crate::plan::{
    Base, CopyOp, ImageResolver, Op, Plan, PlannedMount, Source, Stage, Step, DEFAULT_PATH,
};
use std::collections::HashMap;
use whittle_graph::{self as graph, Builder, ConfigBase, ConfigChange, Origin, VertexId};

/// A step the graph cannot express, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stage {stage}, line {line}: {instruction}\n  {message}")]
pub struct LowerError {
    pub stage: String,
    pub line: usize,
    pub instruction: String,
    pub message: String,
}

/// Lowers the stages the plan's target needs. `images` is asked again for each base image's
/// config and pinned manifest (the same resolver the plan was made with).
pub fn lower(plan: &Plan, images: &dyn ImageResolver) -> Result<graph::Graph, LowerError> {
    Lowering::new(plan, images).run()
}

/// The state of a stage while its steps are lowered.
struct StageState {
    root: VertexId,
    env: Vec<(String, String)>,
    workdir: String,
    user: Option<String>,
    /// CMD comes from the base (an ENTRYPOINT then resets it).
    inherited_cmd: bool,
}

struct Lowering<'a> {
    plan: &'a Plan,
    images: &'a dyn ImageResolver,
    labels: Vec<String>,
    b: Builder,
    target: graph::Platform,
    /// Lowered stages: (Dockerfile stage index) → (index in `out`, final state).
    done: HashMap<usize, (usize, StageState)>,
    out: Vec<graph::StageImage>,
    unresolved: Vec<String>,
}

impl<'a> Lowering<'a> {
    fn new(plan: &'a Plan, images: &'a dyn ImageResolver) -> Self {
        Lowering {
            plan,
            images,
            labels: plan.labels(),
            b: Builder::new(),
            target: plan.target_platform.clone(),
            done: HashMap::new(),
            out: Vec::new(),
            unresolved: Vec::new(),
        }
    }

    fn run(mut self) -> Result<graph::Graph, LowerError> {
        for &i in &self.plan.order {
            self.stage(i)?;
        }
        let target = self
            .done
            .get(&self.plan.target)
            .map(|(n, _)| *n)
            .unwrap_or(self.out.len().saturating_sub(1));
        let mut unresolved = self.unresolved;
        unresolved.sort();
        unresolved.dedup();
        Ok(self.b.finish(self.target, self.out, target, unresolved))
    }

    fn stage_platform(&self, stage: &Stage) -> graph::Platform {
        stage
            .platform
            .as_deref()
            .and_then(crate::Platform::parse)
            .unwrap_or_else(|| self.target.clone())
    }

    fn label(&self, i: usize) -> String {
        self.plan.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    /// The source vertex of an image, with what the resolver knows of it.
    fn image(&mut self, reference: &str, platform: &graph::Platform) -> (VertexId, StageState) {
        let info = self.images.resolve(reference, platform);
        if info.is_none() {
            self.unresolved.push(reference.to_string());
        }
        let info = info.unwrap_or_default();
        let v = self.b.add(
            graph::Op::Image(graph::ImageSource {
                reference: reference.to_string(),
                platform: platform.clone(),
                manifest: info.manifest.clone(),
            }),
            None,
        );
        let state = StageState {
            root: v,
            env: info.env,
            workdir: info
                .workdir
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: info.user.filter(|u| !u.is_empty()),
            inherited_cmd: true,
        };
        (v, state)
    }

    fn context(&mut self, name: Option<&str>) -> VertexId {
        self.b.add(
            graph::Op::Context(graph::ContextSource {
                name: name.map(str::to_string),
            }),
            None,
        )
    }

    /// The vertex a COPY or bind mount reads from.
    fn source(&mut self, src: Option<&Source>, platform: &graph::Platform) -> VertexId {
        match src {
            None | Some(Source::Context) => self.context(None),
            Some(Source::Named { name }) => self.context(Some(name)),
            Some(Source::Stage { index }) => match self.done.get(index) {
                Some((_, st)) => st.root,
                // The planner orders stages after the ones they read; an unknown index reads
                // as nothing rather than panicking.
                None => self.b.add(graph::Op::Scratch, None),
            },
            Some(Source::Image { reference }) => self.image(reference, platform).0,
        }
    }

    fn stage(&mut self, i: usize) -> Result<(), LowerError> {
        let stage = &self.plan.stages[i];
        let platform = self.stage_platform(stage);
        let label = self.label(i);
        let mut changes = Vec::new();
        let (mut st, base) = match &stage.base {
            Base::Scratch => (
                StageState {
                    root: self.b.add(graph::Op::Scratch, None),
                    env: vec![("PATH".into(), DEFAULT_PATH.into())],
                    workdir: "/".into(),
                    user: None,
                    inherited_cmd: false,
                },
                ConfigBase::Scratch,
            ),
            Base::Image { reference } => {
                let (v, st) = self.image(reference, &platform);
                changes.push(ConfigChange::ClearOnBuild);
                (st, ConfigBase::Image { vertex: v })
            }
            Base::Stage { index } => {
                let Some((n, base)) = self.done.get(index) else {
                    return Err(LowerError {
                        stage: label,
                        line: stage.pos.line,
                        instruction: "FROM".into(),
                        message: format!(
                            "stage {index} is not lowered before the stage based on it"
                        ),
                    });
                };
                changes.push(ConfigChange::ClearOnBuild);
                (
                    StageState {
                        root: base.root,
                        env: base.env.clone(),
                        workdir: base.workdir.clone(),
                        user: base.user.clone(),
                        inherited_cmd: true,
                    },
                    ConfigBase::Stage { image: *n },
                )
            }
        };
        let total = stage.steps.len();
        for (n, step) in stage.steps.iter().enumerate() {
            let origin = Origin {
                stage: i,
                label: label.clone(),
                step: n + 1,
                steps: total,
                line: step.pos.line,
                instruction: step.op.summary(&self.labels),
                shell: match &step.op {
                    Op::Run { shell, .. } => shell.first().cloned(),
                    _ => None,
                },
                platform: None,
            };
            self.step(step, origin, &platform, &mut st, &mut changes)?;
        }
        self.out.push(graph::StageImage {
            stage: i,
            name: stage.name.clone(),
            label,
            platform,
            root: st.root,
            base,
            changes,
        });
        self.done.insert(i, (self.out.len() - 1, st));
        Ok(())
    }

    fn step(
        &mut self,
        step: &Step,
        origin: Origin,
        platform: &graph::Platform,
        st: &mut StageState,
        changes: &mut Vec<ConfigChange>,
    ) -> Result<(), LowerError> {
        let summary = origin.instruction.clone();
        let fail = |message: String| LowerError {
            stage: origin.label.clone(),
            line: step.pos.line,
            instruction: summary.clone(),
            message,
        };
        // Steps that may add a layer are written as BuildKit writes them (`RUN ... # buildkit`);
        // metadata steps as the instruction after expansion.
        let history = |layer: Option<VertexId>| ConfigChange::History {
            created_by: match layer {
                Some(_) => history_text(&step.op, &summary),
                None => summary.clone(),
            },
            layer,
        };
        match &step.op {
            Op::Run {
                cmd,
                shell,
                heredocs,
                mounts,
                network,
                security,
                args,
            } => {
                let (argv, files) = command_line(cmd, shell, heredocs);
                if argv.is_empty() {
                    return Err(fail("RUN has no command".into()));
                }
                let mut env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
                let mounts = mounts.iter().map(|m| self.mount(m)).collect::<Vec<_>>();
                let exec = graph::Exec {
                    root: st.root,
                    args: argv,
                    env,
                    cwd: st.workdir.clone(),
                    user: st.user.clone(),
                    network: match network {
                        Some(crate::ast::NetworkMode::None) => graph::Network::None,
                        Some(crate::ast::NetworkMode::Host) => graph::Network::Host,
                        Some(crate::ast::NetworkMode::Default) | None => graph::Network::Default,
                    },
                    insecure: matches!(security, Some(crate::ast::SecurityMode::Insecure)),
                    mounts,
                    files,
                    platform: platform.clone(),
                };
                st.root = self.b.add(graph::Op::Exec(exec), Some(origin));
                changes.push(history(Some(st.root)));
            }
            Op::Copy(c) | Op::Add(c) => {
                let add = matches!(step.op, Op::Add(_));
                let onto = if c.link {
                    self.b.add(graph::Op::Scratch, None)
                } else {
                    st.root
                };
                let dest = if c.dest.starts_with('/') {
                    c.dest.clone()
                } else {
                    format!("{}/{}", st.workdir.trim_end_matches('/'), c.dest)
                };
                // `--link` copies onto nothing, but `--chown` names are the stage's users.
                let users = (c.link && c.chown.is_some()).then_some(st.root);
                let made = self
                    .copy(c, add, onto, users, dest, platform)
                    .map_err(fail)?;
                let v = self.b.add(made, Some(origin.clone()));
                st.root = if c.link {
                    self.b.add(
                        graph::Op::Merge(graph::Merge {
                            inputs: vec![st.root, v],
                        }),
                        Some(origin),
                    )
                } else {
                    v
                };
                changes.push(history(Some(v)));
            }
            Op::Workdir { path } => {
                st.workdir = path.clone();
                changes.push(ConfigChange::WorkingDir { path: path.clone() });
                st.root = self.b.add(
                    graph::Op::Mkdir(graph::Mkdir {
                        root: st.root,
                        path: path.clone(),
                        owner: st.user.clone(),
                    }),
                    Some(origin),
                );
                changes.push(history(Some(st.root)));
            }
            Op::Env { vars } => {
                for (k, v) in vars {
                    match st.env.iter_mut().find(|(ek, _)| ek == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => st.env.push((k.clone(), v.clone())),
                    }
                }
                changes.push(ConfigChange::Env { vars: vars.clone() });
                changes.push(history(None));
            }
            Op::User { user } => {
                st.user = Some(user.clone()).filter(|u| !u.is_empty());
                changes.push(ConfigChange::User { user: user.clone() });
                changes.push(history(None));
            }
            // An ARG changes nothing by itself: its value reaches the RUN steps that see it
            // through their environment, as in BuildKit.
            Op::Arg { .. } => {}
            Op::Onbuild { trigger } => {
                // BuildKit records no history for ONBUILD (only the config changes).
                changes.push(ConfigChange::OnBuild {
                    trigger: trigger.clone(),
                });
            }
            other => {
                if let Some(change) = config_change(other, st) {
                    changes.push(change);
                    changes.push(history(None));
                }
            }
        }
        Ok(())
    }

    fn mount(&mut self, m: &PlannedMount) -> graph::Mount<VertexId> {
        let s = &m.spec;
        let kind = match s.kind {
            MountType::Bind => graph::MountKind::Bind {
                // A bind mount from an image reads it for the target platform.
                from: {
                    let target = self.target.clone();
                    self.source(m.source_ref.as_ref(), &target)
                },
                source: s.source.clone().unwrap_or_default(),
                rw: !s.readonly,
            },
            MountType::Cache => {
                let mut id = s.id.clone().unwrap_or_else(|| s.target.clone());
                // As in BuildKit, a cache made with another owner or mode is another cache:
                // `id=x,uid=1000` and `id=x` do not share (and never fight over) the directory.
                if s.uid.is_some() || s.gid.is_some() || s.mode.is_some() {
                    id = format!(
                        "{id} (uid {}, gid {}, mode {:o})",
                        s.uid.unwrap_or(0),
                        s.gid.unwrap_or(0),
                        s.mode.unwrap_or(0o755)
                    );
                }
                graph::MountKind::Cache {
                    id,
                    sharing: match s.sharing {
                        Sharing::Shared => graph::Sharing::Shared,
                        Sharing::Private => graph::Sharing::Private,
                        Sharing::Locked => graph::Sharing::Locked,
                    },
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                }
            }
            MountType::Tmpfs => graph::MountKind::Tmpfs { size: s.size },
            MountType::Secret => graph::MountKind::Secret {
                id: s.id.clone().unwrap_or_default(),
                env: s.env.clone(),
                required: s.required,
                mode: s.mode.unwrap_or(0o400),
                uid: s.uid.unwrap_or(0),
                gid: s.gid.unwrap_or(0),
            },
            MountType::Ssh => graph::MountKind::Ssh {
                id: s.id.clone().unwrap_or_else(|| "default".into()),
                required: s.required,
                mode: s.mode.unwrap_or(0o600),
                uid: s.uid.unwrap_or(0),
                gid: s.gid.unwrap_or(0),
            },
        };
        graph::Mount {
            target: s.target.clone(),
            kind,
        }
    }

    /// The operation of a COPY or ADD: a copy, or a download for URLs.
    fn copy(
        &mut self,
        c: &CopyOp,
        add: bool,
        onto: VertexId,
        users: Option<VertexId>,
        dest: String,
        platform: &graph::Platform,
    ) -> Result<graph::Op<VertexId>, String> {
        let kw = if add { "ADD" } else { "COPY" };
        if c.sources
            .iter()
            .any(|s| s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#"))
        {
            return Err(
                "git repositories as ADD sources are not supported yet: clone in a RUN \
                        step or copy a checkout from the context"
                    .into(),
            );
        }
        let urls = c.sources.iter().filter(|s| is_url(s)).count();
        if urls > 0 {
            if !add {
                return Err("COPY cannot download URLs: use ADD".into());
            }
            if urls != c.sources.len() {
                return Err(
                    "one ADD cannot mix URLs and local files: split it into two ADD instructions"
                        .into(),
                );
            }
            if let (Some(sum), true) = (&c.checksum, c.sources.len() != 1) {
                return Err(format!("--checksum={sum} needs exactly one URL"));
            }
            return Ok(graph::Op::Download(graph::Download {
                onto,
                urls: c.sources.clone(),
                checksum: c.checksum.clone(),
                dest,
                owner: graph::Owner {
                    chown: c.chown.clone(),
                    users,
                    chmod: c.chmod.clone(),
                },
            }));
        }
        if c.checksum.is_some() {
            return Err(format!("{kw} --checksum applies to URL sources only"));
        }
        let local = matches!(c.from, Source::Context | Source::Named { .. });
        let from = self.source(Some(&c.from), platform);
        Ok(graph::Op::Copy(graph::Copy {
            onto,
            from,
            add,
            sources: c.sources.clone(),
            inline: c
                .inline
                .iter()
                .map(|f| graph::InlineFile {
                    name: f.name.clone(),
                    content: f.content.clone(),
                })
                .collect(),
            dest,
            owner: graph::Owner {
                chown: c.chown.clone(),
                users,
                chmod: c.chmod.clone(),
            },
            excludes: c.excludes.clone(),
            parents: c.parents,
            unpack: add && c.unpack != Some(false) && local,
            keep_owner: !local,
        }))
    }
}

/// Is `s` a URL ADD downloads?
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// A metadata instruction's config change.
fn config_change(op: &Op, st: &mut StageState) -> Option<ConfigChange> {
    let argv = |c: &CmdLine, shell: &[String]| match c {
        CmdLine::Exec(v) => v.clone(),
        CmdLine::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    };
    Some(match op {
        Op::Label { labels } => ConfigChange::Labels {
            labels: labels.clone(),
        },
        Op::Expose { ports } => ConfigChange::ExposedPorts {
            ports: ports
                .iter()
                .map(|p| {
                    if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    }
                })
                .collect(),
        },
        Op::Volume { paths } => ConfigChange::Volumes {
            paths: paths.clone(),
        },
        Op::Cmd { cmd, shell } => {
            st.inherited_cmd = false;
            ConfigChange::Cmd {
                args: argv(cmd, shell),
            }
        }
        Op::Entrypoint { cmd, shell } => ConfigChange::Entrypoint {
            args: argv(cmd, shell),
            reset_cmd: st.inherited_cmd,
        },
        Op::Healthcheck { check, .. } => ConfigChange::Healthcheck {
            check: match check {
                Healthcheck::None => graph::Healthcheck {
                    test: vec!["NONE".into()],
                    interval: 0,
                    timeout: 0,
                    start_period: 0,
                    start_interval: 0,
                    retries: 0,
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => graph::Healthcheck {
                    test: match test {
                        CmdLine::Exec(v) => std::iter::once("CMD".to_string())
                            .chain(v.iter().cloned())
                            .collect(),
                        CmdLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    },
                    interval: *interval,
                    timeout: *timeout,
                    start_period: *start_period,
                    start_interval: *start_interval,
                    retries: *retries,
                },
            },
        },
        Op::Stopsignal { signal } => ConfigChange::StopSignal {
            signal: signal.clone(),
        },
        Op::Shell { shell } => ConfigChange::Shell {
            shell: shell.clone(),
        },
        Op::Maintainer { name } => ConfigChange::Author { name: name.clone() },
        Op::Env { vars } => ConfigChange::Env { vars: vars.clone() },
        Op::User { user } => ConfigChange::User { user: user.clone() },
        Op::Workdir { path } => ConfigChange::WorkingDir { path: path.clone() },
        Op::Onbuild { trigger } => ConfigChange::OnBuild {
            trigger: trigger.clone(),
        },
        // Not metadata; `step` lowers these itself.
        Op::Arg { .. } | Op::Run { .. } | Op::Copy(_) | Op::Add(_) => return None,
    })
}

/// The command line of a RUN, with BuildKit's heredoc rules, and the script files it needs.
fn command_line(
    cmd: &CmdLine,
    shell: &[String],
    heredocs: &[crate::ast::Heredoc],
) -> (Vec<String>, Vec<graph::File>) {
    let mut files = Vec::new();
    let argv = match cmd {
        CmdLine::Exec(v) => v.clone(),
        CmdLine::Shell(line) => {
            let only_heredoc = heredocs.len() == 1 && is_marker(line.trim(), &heredocs[0].name);
            if only_heredoc {
                let body = &heredocs[0].content;
                if body.starts_with("#!") {
                    let path = format!("/dev/pipes/{}", heredocs[0].name);
                    files.push(graph::File {
                        path: path.clone(),
                        content: body.clone(),
                        mode: 0o755,
                    });
                    vec![path]
                } else {
                    shell.iter().cloned().chain([body.clone()]).collect()
                }
            } else if heredocs.is_empty() {
                shell.iter().cloned().chain([line.clone()]).collect()
            } else {
                let mut script = line.clone();
                for h in heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
                shell.iter().cloned().chain([script]).collect()
            }
        }
    };
    (argv, files)
}

/// Is `line` exactly the heredoc marker for `name` (`<<EOF`, `<<-EOF`, `<<'EOF'`, `<< EOF`)?
fn is_marker(line: &str, name: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim();
    let unquoted = rest.trim_matches(|c| c == '\'' || c == '"');
    unquoted == name
}

/// The `created_by` BuildKit writes: `RUN [|N K=V...] /bin/sh -c CMD # buildkit`,
/// `COPY ... # buildkit`; WORKDIR as written.
fn history_text(op: &Op, summary: &str) -> String {
    match op {
        Op::Run {
            cmd, shell, args, ..
        } => {
            let mut s = String::from("RUN ");
            if !args.is_empty() {
                s.push_str(&format!("|{}", args.len()));
                for (k, v) in args {
                    s.push_str(&format!(" {k}={v}"));
                }
                s.push(' ');
            }
            match cmd {
                CmdLine::Shell(c) => s.push_str(&format!("{} {c}", shell.join(" "))),
                CmdLine::Exec(v) => s.push_str(&v.join(" ")),
            }
            s.push_str(" # buildkit");
            s
        }
        Op::Workdir { .. } => summary.to_string(),
        _ => format!("{summary} # buildkit"),
    }
}
