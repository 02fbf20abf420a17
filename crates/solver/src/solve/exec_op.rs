//! Exec vertices (RUN): the key (the definition, the root's key, what bind mounts select, the
//! build's RUN settings), the container spec and its mounts, running it through the executor,
//! and the shell opened on failure.

use super::*;
use whittle_graph::{Exec, MountKind as GMount, Sharing};

impl Solver<'_> {
    pub(super) fn exec(
        &self,
        v: VertexId,
        vx: &Vertex,
        e: &Exec<VertexId>,
        inputs: &HashMap<VertexId, Arc<Output>>,
    ) -> Result<Output> {
        let input = |id: &VertexId| -> Result<&Output> {
            inputs
                .get(id)
                .map(|a| a.as_ref())
                .ok_or_else(|| BuildError::Graph(format!("{id} did not finish")))
        };
        let root = input(&e.root)?;
        // Layers are clamped to the build's epoch, so build tools are told it: Python then
        // writes hash-checked .pyc files (valid whatever the mtimes), compilers use it for
        // __DATE__. BuildKit passes it only with `ARG SOURCE_DATE_EPOCH`, but it does not clamp
        // by default either (docs/conformance.md). An ENV or ARG of the same name wins.
        let mut env = e.env.clone();
        if !env.iter().any(|kv| kv.starts_with("SOURCE_DATE_EPOCH=")) {
            env.push(format!("SOURCE_DATE_EPOCH={}", self.opts.epoch));
        }
        // What bind mounts read belongs in the key: the selected files of a local directory,
        // the filesystem of a stage or image.
        let mut mount_ids = String::new();
        let mut input_keys = vec![root.key.as_str()];
        let mut reads: Vec<&Output> = Vec::new();
        for m in &e.mounts {
            if let GMount::Bind { from, source, .. } = &m.kind {
                let src = input(from)?;
                reads.push(src);
                input_keys.push(src.key.as_str());
                match &src.local {
                    Some((dir, idx)) => {
                        for (p, d) in fingerprint(idx, dir, source) {
                            mount_ids.push_str(&format!("{p}={d}\n"));
                        }
                    }
                    None => mount_ids.push_str(&format!("{}\n", src.content_id())),
                }
            }
        }
        let net = match e.network {
            whittle_graph::Network::None => Network::None,
            whittle_graph::Network::Host => Network::Host,
            whittle_graph::Network::Default => self.opts.network,
        };
        // The build's RUN settings change what a step may do or see, so they are part of its
        // key (as in BuildKit's exec op), the network a default RUN gets included.
        let limits: Vec<String> = self
            .opts
            .ulimits
            .iter()
            .map(|l| format!("{:?}={}:{}", l.resource, l.soft, l.hard))
            .collect();
        let settings = format!(
            "network={net:?} ulimits={limits:?} shm={:?} hosts={:?} unconfined={} epoch={}",
            self.opts.shm_size,
            self.opts.extra_hosts,
            self.opts.seccomp_unconfined,
            self.opts.epoch
        );
        let key = cache_key(
            &self.graph.key_definition(v),
            &input_keys,
            &[mount_ids.as_bytes(), settings.as_bytes()],
        );
        let origin = self.origin(vx);
        let command_text = e.args.join(" ");
        let tail: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let exit_code: Mutex<Option<i32>> = Mutex::new(None);
        let result = self.layer_step(
            vx,
            root,
            key,
            json!({"env": env, "workdir": e.cwd, "user": e.user, "mounts": mount_ids,
                   "settings": settings}),
            &reads,
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
                    e.args.clone(),
                );
                spec.env = env.clone();
                spec.cwd = e.cwd.clone();
                spec.user = e.user.clone();
                spec.network = net;
                for l in &self.opts.ulimits {
                    spec.rlimits.retain(|d| d.resource != l.resource);
                    spec.rlimits.push(*l);
                }
                spec.shm_size = self.opts.shm_size;
                spec.extra_hosts = self.opts.extra_hosts.clone();
                spec.seccomp_unconfined = self.opts.seccomp_unconfined;
                // The stage's platform: a foreign one runs under binfmt emulation, checked by
                // the runtime, and never as the host's own programs.
                spec.platform = Some(e.platform.clone());
                let mut _held = Vec::new();
                let mut tmp_dirs = Vec::new();
                let mut _agents = Vec::new();
                for m in &e.mounts {
                    let (mount, hold) =
                        self.runtime_mount(m, inputs, &mut spec.env, &mut tmp_dirs, &mut _agents)?;
                    if let Some(mount) = mount {
                        spec.mounts.push(mount);
                    }
                    _held.extend(hold);
                }
                for f in &e.files {
                    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let p = d.path().join("script");
                    std::fs::write(&p, &f.content).map_err(|e| e.to_string())?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))
                        .map_err(|e| e.to_string())?;
                    spec.mounts.push(whittle_runtime::Mount {
                        target: f.path.clone(),
                        kind: whittle_runtime::MountKind::Bind {
                            source: p,
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
                    .executor
                    .run(&spec, &mut sink, &self.cancel)
                    .map_err(|e| e.to_string())?;
                if !status.success() {
                    if let Ok(mut c) = exit_code.lock() {
                        *c = Some(status.code());
                    }
                    if self.opts.on_failure_shell {
                        // The stage's SHELL program, as the Dockerfile set it.
                        let program = origin.shell.as_deref().unwrap_or("/bin/sh");
                        self.debug_shell(spec, program, &origin.progress_label(), status.code());
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
                    stage: origin.label.clone(),
                    line: origin.line,
                    command: command_text,
                    code,
                    tail: tail.into_inner().unwrap_or_default(),
                })
            }
            Err(BuildError::Step { .. }) if self.cancel.is_cancelled() => {
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
            match self.executor.run(&spec, &mut sink, &self.cancel) {
                Ok(_) => {}
                Err(e) => eprintln!("cannot open the debug shell: {e}"),
            }
        };
        self.progress.suspend(&mut run);
    }

    /// A `RUN --mount` for the runtime, plus whatever must stay alive during the run (locks).
    /// Errors are the step's message.
    pub(super) fn runtime_mount(
        &self,
        m: &whittle_graph::Mount<VertexId>,
        inputs: &HashMap<VertexId, Arc<Output>>,
        env: &mut Vec<String>,
        tmp_dirs: &mut Vec<tempfile::TempDir>,
        agents: &mut Vec<crate::ssh::AgentProxy>,
    ) -> std::result::Result<
        (
            Option<whittle_runtime::Mount>,
            Vec<whittle_store::CacheMount>,
        ),
        String,
    > {
        use whittle_runtime::MountKind as K;
        let target = m.target.clone();
        let mount = |kind| {
            Some(whittle_runtime::Mount {
                target: target.clone(),
                kind,
            })
        };
        Ok(match &m.kind {
            GMount::Bind { from, source, rw } => {
                let src = inputs
                    .get(from)
                    .ok_or_else(|| format!("the mount's source {from} did not finish"))?;
                // Never the host path itself: the source is selected inside its root (context
                // symlinks resolved inside the context, `..` refused, `.dockerignore` applied)
                // and copied, so neither a hostile source nor a `rw` mount reaches host files.
                let path = match &src.local {
                    Some((dir, index)) => {
                        let s = copy::Source::Context { root: dir, index };
                        materialize(&s, source, false, self.store, tmp_dirs)?
                    }
                    None => {
                        let merged = src.merged();
                        let s = copy::Source::Merged(&merged);
                        materialize(&s, source, true, self.store, tmp_dirs)?
                    }
                };
                (
                    mount(K::Bind {
                        source: path,
                        rw: *rw,
                    }),
                    Vec::new(),
                )
            }
            GMount::Cache {
                id,
                sharing,
                uid,
                gid,
                mode,
            } => {
                let cm = self
                    .store
                    .cache_mount(id, *sharing != Sharing::Shared)
                    .map_err(|e| e.to_string())?;
                // An imported cache's contents for it, if it is empty here (`mounts=true`).
                self.restore_cache_mount(id);
                let source = cm.path.clone();
                (
                    mount(K::Cache {
                        source,
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                    }),
                    vec![cm],
                )
            }
            GMount::Tmpfs { size } => (mount(K::Tmpfs { size: *size }), Vec::new()),
            GMount::Secret {
                id,
                env: var,
                required,
                mode,
                uid,
                gid,
            } => match self.opts.secrets.get(id) {
                None if *required => {
                    return Err(format!(
                    "secret {id:?} is required but was not given: pass --secret id={id},src=<file>"
                ))
                }
                None => (None, Vec::new()),
                Some(data) => {
                    if let Some(var) = var {
                        env.push(format!("{var}={}", String::from_utf8_lossy(data)));
                    }
                    if var.is_some() && m.target.is_empty() {
                        (None, Vec::new())
                    } else {
                        (
                            mount(K::Secret {
                                data: data.clone(),
                                mode: *mode,
                                uid: *uid,
                                gid: *gid,
                            }),
                            Vec::new(),
                        )
                    }
                }
            },
            GMount::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                // The first ssh mount is the one ssh finds, as in BuildKit, which sets this
                // also when the (optional) agent was not given.
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                match self.opts.ssh.get(id) {
                    Some(agent) => {
                        // A socket of the step's own, relaying to the agent (see ssh.rs).
                        let proxy = crate::ssh::AgentProxy::start(agent, *uid, *gid, *mode)
                            .map_err(|e| e.to_string())?;
                        let socket = proxy.path().to_path_buf();
                        agents.push(proxy);
                        (mount(K::Ssh { socket }), Vec::new())
                    }
                    None if *required => {
                        let pass = if id == "default" {
                            "--ssh default (the agent of $SSH_AUTH_SOCK)".to_string()
                        } else {
                            format!("--ssh {id}=/path/to/key (or --ssh {id} for $SSH_AUTH_SOCK)")
                        };
                        return Err(format!(
                            "RUN --mount=type=ssh,id={id},required needs an ssh agent: pass {pass}"
                        ));
                    }
                    // Not required: the step runs without it, as in BuildKit.
                    None => (None, Vec::new()),
                }
            }
        })
    }
}
