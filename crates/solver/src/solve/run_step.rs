//! RUN steps: the environment, mounts and limits a step gets, its cache key, running it in the
//! runtime, and the shell opened on failure.

use super::*;

impl Solver<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        summary: &str,
        _op_json: &[u8],
        state: &mut StageState,
        inputs: &HashMap<usize, Arc<StageState>>,
    ) -> Result<()> {
        let Op::Run {
            cmd,
            shell,
            heredocs,
            mounts,
            network,
            args,
            ..
        } = &step.op
        else {
            return Ok(());
        };
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        // The command line, with BuildKit's heredoc rules.
        let mut extra_files: Vec<(String, String)> = Vec::new();
        let argv: Vec<String> = match cmd {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(line) => {
                let only_heredoc = heredocs.len() == 1
                    && whittle_dockerfile_marker(line.trim(), &heredocs[0].name);
                if only_heredoc {
                    let body = &heredocs[0].content;
                    if body.starts_with("#!") {
                        let path = format!("/dev/pipes/{}", heredocs[0].name);
                        extra_files.push((path.clone(), body.clone()));
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
        if argv.is_empty() {
            return Err(fail("RUN has no command".into()));
        }
        // Environment: the image's ENV, then ARGs that ENV does not shadow.
        let mut env: Vec<String> = config::env(&state.config)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (k, v) in args {
            env.push(format!("{k}={v}"));
        }
        // Layers are clamped to the build's epoch, so build tools are told it: Python then
        // writes hash-checked .pyc files (valid whatever the mtimes), compilers use it for
        // __DATE__. BuildKit passes it only with `ARG SOURCE_DATE_EPOCH`, but it does not clamp
        // by default either (docs/conformance.md). An ENV or ARG of the same name wins.
        if !env.iter().any(|kv| kv.starts_with("SOURCE_DATE_EPOCH=")) {
            env.push(format!("SOURCE_DATE_EPOCH={}", self.opts.epoch));
        }
        let cwd = config::workdir(&state.config);
        let user = config::user(&state.config);
        // Mount inputs that change the result belong in the key.
        let mut mount_ids = String::new();
        for m in mounts {
            if m.spec.kind == MountType::Bind {
                match &m.source_ref {
                    None | Some(Source::Context) | Some(Source::Named { .. }) => {
                        let (root, idx) = self.local_dir(m.source_ref.as_ref())?;
                        if let Some(Source::Named { name }) = &m.source_ref {
                            mount_ids.push_str(&format!("context {name}\n"));
                        }
                        let src = m.spec.source.clone().unwrap_or_default();
                        for (p, d) in fingerprint(&idx, &root, &src) {
                            mount_ids.push_str(&format!("{p}={d}\n"));
                        }
                    }
                    Some(Source::Stage { index }) => {
                        if let Some(st) = inputs.get(index) {
                            mount_ids.push_str(&st.content_id());
                        }
                    }
                    Some(Source::Image { reference }) => {
                        // The image itself, not its name: a tag can move.
                        let st = self.base_image(reference, &self.plan.target_platform)?;
                        mount_ids.push_str(&st.content_id());
                    }
                }
            }
        }
        let mut env_key = serde_json::to_vec(&json!([env, cwd, user])).unwrap_or_default();
        // Limits change what a step may do, so they are part of its key (as in BuildKit's
        // exec op); absent, the key is what it was before the flags existed.
        if !self.opts.ulimits.is_empty()
            || self.opts.shm_size.is_some()
            || !self.opts.extra_hosts.is_empty()
            || self.opts.seccomp_unconfined
        {
            let limits: Vec<String> = self
                .opts
                .ulimits
                .iter()
                .map(|l| format!("{:?}={}:{}", l.resource, l.soft, l.hard))
                .collect();
            env_key.extend_from_slice(
                format!(
                    "\0{limits:?} shm={:?} hosts={:?} unconfined={}",
                    self.opts.shm_size, self.opts.extra_hosts, self.opts.seccomp_unconfined
                )
                .as_bytes(),
            );
        }
        let net = match network {
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
            Some(NetworkMode::Default) | None => self.opts.network,
        };
        let stage_label = self.stage_label(stage);
        let command_text = match cmd {
            CmdLine::Exec(v) => v.join(" "),
            CmdLine::Shell(s) => format!("{} {s}", shell.join(" ")),
        };
        let tail: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let exit_code: Mutex<Option<i32>> = Mutex::new(None);
        let result = self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "run",
            &[&env_key, mount_ids.as_bytes()],
            json!({"env": env, "workdir": cwd, "user": user, "mounts": mount_ids}),
            |upper, below, id| {
                let lower: Vec<PathBuf> = if below.layers().is_empty() {
                    vec![self.empty_dir.clone()]
                } else {
                    below.layers().to_vec()
                };
                let mut spec = ContainerSpec::new(
                    Rootfs::Overlay {
                        lower,
                        upper: upper.to_path_buf(),
                    },
                    argv.clone(),
                );
                spec.env = env.clone();
                spec.cwd = cwd.clone();
                spec.user = user.clone();
                spec.network = net;
                for l in &self.opts.ulimits {
                    spec.rlimits.retain(|d| d.resource != l.resource);
                    spec.rlimits.push(*l);
                }
                spec.shm_size = self.opts.shm_size;
                spec.extra_hosts = self.opts.extra_hosts.clone();
                spec.seccomp_unconfined = self.opts.seccomp_unconfined;
                let mut _held = Vec::new();
                let mut tmp_dirs = Vec::new();
                let mut _agents = Vec::new();
                for m in mounts {
                    let (mount, hold) = self
                        .runtime_mount(m, inputs, &mut spec.env, &mut tmp_dirs, &mut _agents)
                        .map_err(|e| e.to_string())?;
                    if let Some(mount) = mount {
                        spec.mounts.push(mount);
                    }
                    _held.extend(hold);
                }
                for (path, body) in &extra_files {
                    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let f = d.path().join("script");
                    std::fs::write(&f, body).map_err(|e| e.to_string())?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| e.to_string())?;
                    spec.mounts.push(whittle_runtime::Mount {
                        target: path.clone(),
                        kind: whittle_runtime::MountKind::Bind {
                            source: f,
                            rw: false,
                        },
                    });
                    tmp_dirs.push(d);
                }
                let mut sink = |stream: whittle_runtime::Stream, line: &[u8]| {
                    let text = String::from_utf8_lossy(line).into_owned();
                    if let Ok(mut t) = tail.lock() {
                        t.push(text.clone());
                        if t.len() > 20 {
                            t.remove(0);
                        }
                    }
                    self.progress.event(Event::StepLog {
                        id,
                        stderr: stream == whittle_runtime::Stream::Stderr,
                        line: text,
                    });
                };
                let status = self
                    .runtime
                    .run(&spec, &mut sink, &self.cancel)
                    .map_err(|e| e.to_string())?;
                if !status.success() {
                    if let Ok(mut c) = exit_code.lock() {
                        *c = Some(status.code());
                    }
                    if self.opts.on_failure_shell {
                        let program = shell.first().map_or("/bin/sh", String::as_str);
                        self.debug_shell(spec, program, label, status.code());
                    }
                    return Err(format!("exit code: {}", status.code()));
                }
                Ok(())
            },
        );
        match result {
            Err(BuildError::Step { .. }) if exit_code.lock().ok().and_then(|c| *c).is_some() => {
                let code = exit_code.lock().ok().and_then(|c| *c).unwrap_or(1);
                Err(BuildError::RunFailed {
                    stage: stage_label,
                    line: step.pos.line,
                    command: command_text,
                    code,
                    tail: tail.into_inner().unwrap_or_default(),
                })
            }
            Err(BuildError::Step { message, .. }) if self.cancel.is_cancelled() => {
                let _ = message;
                Err(BuildError::Cancelled)
            }
            other => other,
        }
    }

    /// `--on-failure=shell`: the failed RUN's container again, with an interactive shell on the
    /// terminal instead of its command. One at a time, with the live view paused.
    pub(super) fn debug_shell(
        &self,
        mut spec: ContainerSpec,
        program: &str,
        label: &str,
        code: i32,
    ) {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        spec.args = vec![program.to_string()];
        spec.tty = true;
        spec.stdin = whittle_runtime::Stdin::Inherit;
        let mut run = || {
            eprintln!(
                "\n{label} failed with exit code {code}: a shell in its container (its changes \
                 are discarded when the shell exits)"
            );
            let mut sink = |_: whittle_runtime::Stream, _: &[u8]| {};
            match self.runtime.run(&spec, &mut sink, &self.cancel) {
                Ok(_) => {}
                Err(e) => eprintln!("cannot open the debug shell: {e}"),
            }
        };
        self.progress.suspend(&mut run);
    }

    /// A `RUN --mount` for the runtime, plus whatever must stay alive during the run (locks).
    pub(super) fn runtime_mount(
        &self,
        m: &PlannedMount,
        inputs: &HashMap<usize, Arc<StageState>>,
        env: &mut Vec<String>,
        tmp_dirs: &mut Vec<tempfile::TempDir>,
        agents: &mut Vec<crate::ssh::AgentProxy>,
    ) -> Result<(
        Option<whittle_runtime::Mount>,
        Vec<whittle_store::CacheMount>,
    )> {
        use whittle_runtime::MountKind as K;
        let s = &m.spec;
        let target = s.target.clone();
        Ok(match s.kind {
            MountType::Bind => {
                let sub = s.source.clone().unwrap_or_default();
                // Never the host path itself: the source is selected inside its root (context
                // symlinks resolved inside the context, `..` refused, `.dockerignore` applied)
                // and copied, so neither a hostile source nor a `rw` mount reaches host files.
                let source = match &m.source_ref {
                    None | Some(Source::Context) | Some(Source::Named { .. }) => {
                        let (root, index) = self.local_dir(m.source_ref.as_ref())?;
                        let src = copy::Source::Context {
                            root: &root,
                            index: &index,
                        };
                        materialize(&src, &sub, false, self.store, tmp_dirs)?
                    }
                    Some(Source::Stage { index }) => {
                        let st = inputs.get(index).ok_or_else(|| {
                            BuildError::Other(format!("stage {index} did not finish"))
                        })?;
                        let merged = st.merged();
                        let src = copy::Source::Merged(&merged);
                        materialize(&src, &sub, true, self.store, tmp_dirs)?
                    }
                    Some(Source::Image { reference }) => {
                        let st = self.base_image(reference, &self.plan.target_platform)?;
                        let merged = st.merged();
                        let src = copy::Source::Merged(&merged);
                        materialize(&src, &sub, true, self.store, tmp_dirs)?
                    }
                };
                (
                    Some(whittle_runtime::Mount {
                        target,
                        kind: K::Bind {
                            source,
                            rw: !s.readonly,
                        },
                    }),
                    Vec::new(),
                )
            }
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
                let cm = self.store.cache_mount(&id, s.sharing != Sharing::Shared)?;
                let source = cm.path.clone();
                (
                    Some(whittle_runtime::Mount {
                        target,
                        kind: K::Cache {
                            source,
                            uid: s.uid,
                            gid: s.gid,
                            mode: s.mode,
                        },
                    }),
                    vec![cm],
                )
            }
            MountType::Tmpfs => (
                Some(whittle_runtime::Mount {
                    target,
                    kind: K::Tmpfs { size: s.size },
                }),
                Vec::new(),
            ),
            MountType::Secret => {
                let id = s.id.clone().unwrap_or_default();
                match self.opts.secrets.get(&id) {
                    None if s.required => {
                        return Err(BuildError::Other(format!(
                            "secret {id:?} is required but was not given: pass --secret id={id},src=<file>"
                        )))
                    }
                    None => (None, Vec::new()),
                    Some(data) => {
                        if let Some(var) = &s.env {
                            env.push(format!("{var}={}", String::from_utf8_lossy(data)));
                        }
                        if s.env.is_some() && s.target.is_empty() {
                            (None, Vec::new())
                        } else {
                            (
                                Some(whittle_runtime::Mount {
                                    target,
                                    kind: K::Secret {
                                        data: data.clone(),
                                        mode: s.mode.unwrap_or(0o400),
                                        uid: s.uid.unwrap_or(0),
                                        gid: s.gid.unwrap_or(0),
                                    },
                                }),
                                Vec::new(),
                            )
                        }
                    }
                }
            }
            MountType::Ssh => {
                let id = s.id.clone().unwrap_or_else(|| "default".into());
                // The first ssh mount is the one ssh finds, as in BuildKit, which sets this
                // also when the (optional) agent was not given.
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                match self.opts.ssh.get(&id) {
                    Some(agent) => {
                        // A socket of the step's own, relaying to the agent (see ssh.rs).
                        let proxy = crate::ssh::AgentProxy::start(
                            agent,
                            s.uid.unwrap_or(0),
                            s.gid.unwrap_or(0),
                            s.mode.unwrap_or(0o600),
                        )
                        .map_err(|e| BuildError::Other(e.to_string()))?;
                        let socket = proxy.path().to_path_buf();
                        agents.push(proxy);
                        (
                            Some(whittle_runtime::Mount {
                                target,
                                kind: K::Ssh { socket },
                            }),
                            Vec::new(),
                        )
                    }
                    None if s.required => {
                        let pass = if id == "default" {
                            "--ssh default (the agent of $SSH_AUTH_SOCK)".to_string()
                        } else {
                            format!("--ssh {id}=/path/to/key (or --ssh {id} for $SSH_AUTH_SOCK)")
                        };
                        return Err(BuildError::Other(format!(
                            "RUN --mount=type=ssh,id={id},required needs an ssh agent: pass {pass}"
                        )));
                    }
                    // Not required: the step runs without it, as in BuildKit.
                    None => (None, Vec::new()),
                }
            }
        })
    }
}
