//! The caller's side: spawn the helper in new namespaces, send it the config, stream the
//! container's output line by line, wait for it, clean up.

use crate::error::{Error, Result};
use crate::init::{InitConfig, OciPlan, Report, INIT_ARGV0};
use crate::net::{NetFiles, NetHelper, NetProc};
use crate::spec::{ContainerSpec, ExitStatus, Network, Rootfs, Stdin};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, OwnedFd};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives the container's output, one line at a time (without the `\n`; a last line without
/// one is delivered at the end; lines over 64 KiB are split). Implemented for closures.
pub trait OutputSink {
    fn line(&mut self, stream: Stream, line: &[u8]);
}

impl<F: FnMut(Stream, &[u8])> OutputSink for F {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        self(stream, line)
    }
}

/// Cancels a running container from another thread (Ctrl-C, a failed sibling step): every
/// process of the container is killed and [`Runtime::run`] returns [`Error::Cancelled`].
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

struct CancelInner {
    flag: AtomicBool,
    event: OwnedFd,
}

impl CancelToken {
    /// Readable once cancelled (for `poll`).
    pub(crate) fn event_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.inner.event.as_fd()
    }

    /// A token not yet cancelled.
    pub fn new() -> Result<Self> {
        let event = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::sys("eventfd", e))?;
        Ok(CancelToken {
            inner: Arc::new(CancelInner {
                flag: AtomicBool::new(false),
                event,
            }),
        })
    }
    /// Cancels every run using this token (idempotent).
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(&self.inner.event, &1u64.to_ne_bytes());
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }
}

/// Which runtime executes containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// whittle's own runtime (default).
    BuiltIn,
    /// An external OCI runtime binary (`runc`, `crun` or a path), given a bundle.
    Oci(PathBuf),
}

/// Runs containers. Cheap to clone; safe to use from many threads at once.
#[derive(Clone, Debug)]
pub struct Runtime {
    engine: Engine,
    helper: PathBuf,
    state_dir: PathBuf,
    legacy_overlay: bool,
    /// The user-mode network stack for [`Network::Isolated`].
    net: Option<NetHelper>,
    /// Where binfmt_misc is mounted (read for foreign platforms).
    binfmt_dir: String,
    /// Run overlay rootfs specs on a copy instead (`copyfs`): where overlay cannot be mounted.
    /// Shared by clones: set once by the first refused mount in a user namespace.
    copy_rootfs: Arc<AtomicBool>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// A runtime whose init helper is the current executable: the program's `main` must call
    /// [`crate::run_init_if_requested`] first thing. State goes to `/run/whittle`.
    pub fn new(engine: Engine) -> Result<Self> {
        let helper =
            std::env::current_exe().map_err(|e| Error::sys("find current executable", e))?;
        Ok(Self::with_helper(engine, helper))
    }

    /// A runtime using `helper` (a binary that calls [`crate::run_init_if_requested`], e.g.
    /// `whittle-runtime-init`) as the container init helper. The network helper for
    /// [`Network::Isolated`] is looked up on `PATH` ([`NetHelper::find`]).
    pub fn with_helper(engine: Engine, helper: PathBuf) -> Self {
        Runtime {
            engine,
            helper,
            state_dir: PathBuf::from("/run/whittle"),
            legacy_overlay: false,
            net: NetHelper::find(),
            binfmt_dir: crate::binfmt::BINFMT_MISC.into(),
            copy_rootfs: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs [`Rootfs::Overlay`] specs in a plain directory filled from their lower dirs, and
    /// writes what changed back into the upper dir as overlay would have (the copying
    /// snapshotter, `copyfs`): slower and larger than overlay, the upper dir the same. In a
    /// user namespace (rootless) the runtime switches to it by itself when the kernel refuses
    /// overlay there (before Linux 5.11); this forces it (tests, `WHITTLE_SNAPSHOTTER=copy`).
    pub fn copy_rootfs(self, on: bool) -> Self {
        self.copy_rootfs.store(on, Ordering::SeqCst);
        self
    }

    /// Whether overlay specs run on copies: forced, or since the kernel refused overlay in this
    /// user namespace (for the caller to say so once).
    pub fn copies_rootfs(&self) -> bool {
        self.copy_rootfs.load(Ordering::SeqCst)
    }

    /// Uses `net` (or nothing: [`Network::Isolated`] is then refused) as the user-mode network
    /// stack instead of the one found on `PATH`.
    pub fn with_network_helper(mut self, net: Option<NetHelper>) -> Self {
        self.net = net;
        self
    }

    /// The user-mode network stack [`Network::Isolated`] uses; `None` when neither slirp4netns
    /// nor pasta is installed.
    pub fn network_helper(&self) -> Option<&NetHelper> {
        self.net.as_ref()
    }

    /// Uses `dir` instead of `/run/whittle` as the state dir: each container covers it with a
    /// private tmpfs in its own mount namespace (rootfs mount point, stage, OCI bundle), so the
    /// host only ever sees an empty directory and many containers can share it.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Forces the pre-Linux-6.8 overlay path (one `lowerdir=` string of relative paths), to
    /// test it on new kernels.
    #[doc(hidden)]
    pub fn legacy_overlay(mut self, on: bool) -> Self {
        self.legacy_overlay = on;
        self
    }

    /// The engine in use.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads binfmt_misc's handlers from `dir` instead of `/proc/sys/fs/binfmt_misc`, to test
    /// the emulation check against a made-up registry.
    #[doc(hidden)]
    pub fn binfmt_dir(mut self, dir: impl Into<String>) -> Self {
        self.binfmt_dir = dir.into();
        self
    }

    /// How this machine runs `platform`'s programs, as [`Runtime::run`] checks it for a spec
    /// with that platform: natively, or emulated through a binfmt_misc handler with the F flag;
    /// an error (naming the fix) when neither. Callers may ask before a build to fail early.
    pub fn emulation(
        &self,
        platform: &whittle_oci::Platform,
    ) -> std::result::Result<crate::binfmt::Emulation, crate::binfmt::EmulationError> {
        crate::binfmt::require(&crate::doctor::RealHost, &self.binfmt_dir, platform)
    }

    /// Runs `spec` to completion, streaming output to `sink`. Blocks the calling thread, which
    /// the container is tied to: if the thread (or the process) dies, the container is killed.
    pub fn run(
        &self,
        spec: &ContainerSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        if spec.args.is_empty() {
            return Err(Error::InvalidSpec("empty command".into()));
        }
        if let Rootfs::Overlay { lower, upper } = &spec.rootfs {
            if self.copies_rootfs() {
                return self.run_on_copy(spec, lower, upper, sink, cancel);
            }
            match self.run_prepared(spec, sink, cancel) {
                // Refused before anything ran (the upper dir is as it was): in a user
                // namespace that is the kernel's limit, which copies get around.
                Err(Error::Overlay(_)) if crate::rootless::in_user_namespace() => {
                    self.copy_rootfs.store(true, Ordering::SeqCst);
                    return self.run_on_copy(spec, lower, upper, sink, cancel);
                }
                r => return r,
            }
        }
        self.run_prepared(spec, sink, cancel)
    }

    /// [`Runtime::run`] of the spec as it is.
    fn run_prepared(
        &self,
        spec: &ContainerSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        if spec.args.is_empty() {
            return Err(Error::InvalidSpec("empty command".into()));
        }
        if !spec.cwd.starts_with('/') {
            return Err(Error::InvalidSpec(format!(
                "working directory {:?} is not absolute",
                spec.cwd
            )));
        }
        if spec.network == Network::Isolated && self.net.is_none() {
            return Err(Error::NoNetworkHelper);
        }
        // A foreign platform runs only under working emulation: checked before anything is
        // created, for both engines (the kernel decides at exec, whoever execs).
        if let Some(platform) = &spec.platform {
            self.emulation(platform)?;
        }
        for m in &spec.mounts {
            if !m.target.starts_with('/') {
                return Err(Error::InvalidSpec(format!(
                    "mount target {:?} is not absolute",
                    m.target
                )));
            }
        }
        let trace = Trace::new();
        let id = format!(
            "w{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // The per-run directories (rootfs mount point, stage, OCI bundle) live on a tmpfs the
        // helper mounts over the state dir inside its own mount namespace: no host directory to
        // create or remove per run, nothing to leak.
        let dir = self.state_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::sys(format!("create {}", dir.display()), e))?;
        let mut work_guard = None;
        let overlay_work = match &spec.rootfs {
            Rootfs::Overlay { upper, lower } => {
                if lower.is_empty() {
                    return Err(Error::InvalidSpec(
                        "overlay rootfs without lower directories".into(),
                    ));
                }
                std::fs::create_dir_all(upper)
                    .map_err(|e| Error::sys(format!("create {}", upper.display()), e))?;
                let name = upper
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let work = upper.with_file_name(format!(".{name}.work-{id}"));
                std::fs::create_dir(&work)
                    .map_err(|e| Error::sys(format!("create {}", work.display()), e))?;
                work_guard = Some(Cleanup::new(work.clone()));
                Some(work)
            }
            Rootfs::Dir { path, .. } => {
                if !path.is_dir() {
                    return Err(Error::InvalidSpec(format!(
                        "rootfs {} is not a directory",
                        path.display()
                    )));
                }
                None
            }
        };
        let oci = match &self.engine {
            Engine::BuiltIn => None,
            Engine::Oci(runtime) => Some(OciPlan {
                runtime: crate::oci::find_runtime(runtime)?,
                bundle: dir.clone(),
                state_root: dir.join("runc"),
                id: id.clone(),
            }),
        };
        let cfg = InitConfig {
            spec: spec.clone(),
            state: dir.clone(),
            root: dir.join("rootfs"),
            stage: dir.join("stage"),
            overlay_work,
            legacy_overlay: self.legacy_overlay,
            trace: trace.on,
            oci,
            net: (spec.network == Network::Isolated).then(|| NetFiles::new(&spec.hostname)),
        };
        trace.mark("prepare");
        let result = self.spawn_and_wait(&cfg, sink, cancel, &trace);
        if let Ok((_, created)) = &result {
            let top = match &spec.rootfs {
                Rootfs::Overlay { upper, .. } => upper,
                Rootfs::Dir { path, .. } => path,
            };
            crate::init::tidy_created(top, created);
        }

        drop(work_guard);
        trace.mark("cleanup");
        result.map(|(s, _)| s)
    }

    /// [`Runtime::copy_rootfs`]: fill a sibling of `upper`, run there, diff back into `upper`.
    fn run_on_copy(
        &self,
        spec: &ContainerSpec,
        lower: &[PathBuf],
        upper: &Path,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        let name = upper
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy = upper.with_file_name(format!(
            ".{name}.copy-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let ctx = |what: &str| format!("copying snapshotter: {what} {}", copy.display());
        std::fs::create_dir_all(upper)
            .map_err(|e| Error::sys(format!("create {}", upper.display()), e))?;
        std::fs::create_dir(&copy).map_err(|e| Error::sys(ctx("create"), e))?;
        let _guard = Cleanup::new(copy.clone());
        let stamps = crate::copyfs::fill(lower, &copy).map_err(|e| Error::sys(ctx("fill"), e))?;
        let mut on_copy = spec.clone();
        on_copy.rootfs = Rootfs::Dir {
            path: copy.clone(),
            readonly: false,
        };
        let status = self.run_prepared(&on_copy, sink, cancel)?;
        crate::copyfs::diff(&copy, &stamps, upper).map_err(|e| Error::sys(ctx("diff"), e))?;
        Ok(status)
    }

    fn spawn_and_wait(
        &self,
        cfg: &InitConfig,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
        trace: &Trace,
    ) -> Result<(ExitStatus, Vec<PathBuf>)> {
        let spec = &cfg.spec;
        let (status_parent, status_child) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::sys("socketpair", e))?;

        // Standard streams of the container.
        let mut tty_master = None;
        let (stdin_c, stdout_c, stderr_c, out_r, err_r);
        if spec.tty {
            // Built-in: the helper opens the pty inside the container's own devpts (so the
            // process sees a real /dev/pts/N) and sends us the master. An OCI runtime gets our
            // terminal and does the same itself.
            let (a, b, c) = if cfg.oci.is_some() {
                (
                    std::io::stdin().as_fd().try_clone_to_owned(),
                    std::io::stdout().as_fd().try_clone_to_owned(),
                    std::io::stderr().as_fd().try_clone_to_owned(),
                )
            } else {
                let f = std::fs::File::open("/dev/null")
                    .map_err(|e| Error::sys("open /dev/null", e))?;
                (
                    f.as_fd().try_clone_to_owned(),
                    f.as_fd().try_clone_to_owned(),
                    f.as_fd().try_clone_to_owned(),
                )
            };
            let dup = |r: std::io::Result<OwnedFd>| {
                r.and_then(|fd| crate::sys::high_fd(fd.as_fd()))
                    .map_err(|e| Error::sys("dup", e))
            };
            stdin_c = dup(a)?;
            stdout_c = dup(b)?;
            stderr_c = dup(c)?;
            out_r = None;
            err_r = None;
        } else {
            stdin_c = match spec.stdin {
                Stdin::Null => {
                    let f = std::fs::File::open("/dev/null")
                        .map_err(|e| Error::sys("open /dev/null", e))?;
                    crate::sys::high_fd(f.as_fd()).map_err(|e| Error::sys("dup", e))?
                }
                Stdin::Inherit => crate::sys::high_fd(std::io::stdin().as_fd())
                    .map_err(|e| Error::sys("dup stdin", e))?,
            };
            let (r1, w1) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::sys("pipe", e))?;
            let (r2, w2) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::sys("pipe", e))?;
            stdout_c = crate::sys::high_fd(w1.as_fd()).map_err(|e| Error::sys("dup", e))?;
            stderr_c = crate::sys::high_fd(w2.as_fd()).map_err(|e| Error::sys("dup", e))?;
            out_r = Some(r1);
            err_r = Some(r2);
        }
        let status_c =
            crate::sys::high_fd(status_child.as_fd()).map_err(|e| Error::sys("dup", e))?;
        drop(status_child);

        // The isolated network: a pipe from the network helper, which writes to it once the
        // namespace is configured, to the init helper (its fd 4), which waits on it before the
        // exec.
        let net_helper = match spec.network {
            Network::Isolated => Some(self.net.as_ref().ok_or(Error::NoNetworkHelper)?),
            Network::None | Network::Host => None,
        };
        let ready = match net_helper {
            Some(_) => Some(
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| Error::sys("pipe", e))?,
            ),
            None => None,
        };
        let ready_c = match &ready {
            Some((r, _)) => Some(crate::sys::high_fd(r.as_fd()).map_err(|e| Error::sys("dup", e))?),
            None => None,
        };

        let mut ns = libc::CLONE_NEWNS as u64;
        if spec.network == Network::Isolated {
            // For an OCI runtime too: it runs in this namespace and, given no network namespace
            // in config.json, leaves the container in it.
            ns |= libc::CLONE_NEWNET as u64;
        }
        if cfg.oci.is_none() {
            ns |= (libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) as u64;
            if spec.network == Network::None {
                ns |= libc::CLONE_NEWNET as u64;
            }
        }
        let mut fds = vec![
            stdin_c.as_fd(),
            stdout_c.as_fd(),
            stderr_c.as_fd(),
            status_c.as_fd(),
        ];
        if let Some(r) = &ready_c {
            fds.push(r.as_fd());
        }
        let plan = crate::sys::ExecPlan::new(&self.helper, INIT_ARGV0, &fds)
            .map_err(|e| Error::sys("prepare helper", e))?;
        let (pid, pidfd) =
            crate::sys::spawn_helper(&plan, ns).map_err(|e| Error::sys("clone3", e))?;
        trace.mark("clone3");
        drop((stdin_c, stdout_c, stderr_c, status_c, ready_c));
        let child = Child { pidfd };

        // The network helper, on the host's side of the container's new namespace. Declared
        // after `child`, so dropped (killed) first on every way out of here.
        let net = match (net_helper, ready) {
            (Some(helper), Some((r, w))) => {
                drop(r);
                // `pid` is our child, not yet reaped, so it names no other process.
                let started = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                    .map_err(|e| Error::sys("open the container's network namespace", e))
                    .and_then(|netns| NetProc::start(helper, netns.as_fd(), w.as_fd()));
                // Only the network helper may hold the writing end: when it dies, the init
                // helper sees EOF.
                drop(w);
                match started {
                    Ok(p) => Some(p),
                    Err(_) if child.exited_now()? => {
                        let st = child.wait()?;
                        return Err(Error::Setup(format!(
                            "init helper {} exited with {st:?} before starting the container",
                            self.helper.display()
                        )));
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        if net.is_some() {
            trace.mark("network");
        }

        // Config down, reports up.
        let mut status = std::fs::File::from(status_parent);
        let cfg_bytes =
            serde_json::to_vec(cfg).map_err(|e| Error::Setup(format!("encode config: {e}")))?;
        status
            .write_all(&cfg_bytes)
            .map_err(|e| Error::sys("send config", e))?;
        rustix::net::shutdown(&status, rustix::net::Shutdown::Write)
            .map_err(|e| Error::sys("shutdown", e))?;
        let mut created = Vec::new();
        let mut failure = None;
        let mut reports = Vec::new();
        loop {
            if !wait_readable(status.as_fd(), cancel)? {
                stop(cfg, pid, &child);
                child.wait()?;
                return Err(Error::Cancelled);
            }
            let mut buf = [0u8; 8192];
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let n = match rustix::net::recvmsg(
                &status,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut control,
                rustix::net::RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(m) => m.bytes,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::sys("read helper report", e)),
            };
            for msg in control.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = msg {
                    for fd in fds {
                        // The helper sends one fd: the master side of the container's pty.
                        tty_master.get_or_insert(fd);
                    }
                }
            }
            if n == 0 {
                break;
            }
            reports.extend_from_slice(&buf[..n]);
        }
        for line in reports.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Report>(line) {
                Ok(Report::Created(c)) => created = c,
                Ok(Report::Tty) => {}
                Ok(Report::Trace(t)) => {
                    for (phase, ms) in t {
                        eprintln!("whittle-runtime:   helper {phase:>16} {ms:>8.3} ms");
                    }
                }
                Ok(r) => failure = Some(r),
                Err(e) => failure = Some(Report::Failed(format!("bad report from helper: {e}"))),
            }
        }
        if let Some(r) = failure {
            let _ = child.wait();
            return Err(match r {
                Report::NotFound(n) => Error::ExecutableNotFound(n),
                Report::Network(m) => match &net {
                    Some(p) => {
                        let said = p.messages();
                        Error::Network {
                            helper: p.helper.clone(),
                            message: if said.is_empty() {
                                m
                            } else {
                                format!("{m}: {said}")
                            },
                        }
                    }
                    None => Error::Setup(m),
                },
                Report::User { user, reason } => Error::User { user, reason },
                Report::ForeignProgram {
                    program,
                    arch,
                    platform,
                } => Error::ForeignProgram {
                    program,
                    arch,
                    platform,
                },
                Report::Overlay(m) => Error::Overlay(m),
                Report::Failed(m) => match &cfg.oci {
                    Some(o) => Error::Oci {
                        runtime: o.runtime.clone(),
                        message: m,
                    },
                    None => Error::Setup(m),
                },
                Report::Created(_) | Report::Tty | Report::Trace(_) => {
                    Error::Setup("unexpected report".into())
                }
            });
        }
        if child.exited_now()? && reports.is_empty() {
            // The helper died before saying anything (e.g. it could not be exec'd).
            let st = child.wait()?;
            return Err(Error::Setup(format!(
                "init helper {} exited with {st:?} before starting the container",
                self.helper.display()
            )));
        }

        trace.mark("setup+exec");
        if spec.tty && cfg.oci.is_none() && tty_master.is_none() {
            return Err(Error::Setup("the helper sent no terminal".into()));
        }
        let status = if let Some(master) = tty_master {
            crate::tty::copy_size(&master);
            crate::tty::proxy(&master, &child.pidfd, cancel)?;
            if cancel.is_cancelled() {
                stop(cfg, pid, &child);
                child.wait()?;
                return Err(Error::Cancelled);
            }
            child.wait()?
        } else {
            let cancelled = pump(out_r, err_r, &child, sink, cancel)?;
            if cancelled {
                stop(cfg, pid, &child);
                child.wait()?;
                return Err(Error::Cancelled);
            }
            child.wait()?
        };
        trace.mark("run+exit");
        Ok((status, created))
    }
}

/// Timing of a run's phases on stderr when `WHITTLE_RUNTIME_TRACE` is set (for bench/runtime.sh
/// and for finding where a slow step spends its time).
struct Trace {
    on: bool,
    last: std::cell::Cell<std::time::Instant>,
}

impl Trace {
    fn new() -> Self {
        Trace {
            on: std::env::var_os("WHITTLE_RUNTIME_TRACE").is_some(),
            last: std::cell::Cell::new(std::time::Instant::now()),
        }
    }
    fn mark(&self, phase: &str) {
        if self.on {
            let now = std::time::Instant::now();
            eprintln!(
                "whittle-runtime: {phase:>10} {:>8.3} ms",
                (now - self.last.get()).as_secs_f64() * 1e3
            );
            self.last.set(now);
        }
    }
}

/// Waits until `fd` is readable or the token is cancelled (false).
fn wait_readable(fd: rustix::fd::BorrowedFd<'_>, cancel: &CancelToken) -> Result<bool> {
    loop {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let mut fds = [
            PollFd::new(&fd, PollFlags::IN),
            PollFd::new(&cancel.inner.event, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        if !fds[0].revents().is_empty() {
            return Ok(true);
        }
    }
}

const MAX_LINE: usize = 64 * 1024;

/// Streams both pipes to the sink until both hit EOF. Returns true if cancelled.
fn pump(
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    child: &Child,
    sink: &mut dyn OutputSink,
    cancel: &CancelToken,
) -> Result<bool> {
    let mut streams: Vec<(Option<OwnedFd>, Stream, Vec<u8>)> = vec![
        (out, Stream::Stdout, Vec::new()),
        (err, Stream::Stderr, Vec::new()),
    ];
    let mut buf = vec![0u8; 65536];
    let mut exited_at: Option<std::time::Instant> = None;
    loop {
        // Done when both streams are closed and pid 1 has exited (a process may close its
        // output and go on running: keep watching it, and the cancel token).
        if streams.iter().all(|s| s.0.is_none()) && exited_at.is_some() {
            return Ok(false);
        }
        if cancel.is_cancelled() {
            return Ok(true);
        }
        // Once pid 1 is gone the kernel kills the rest of the namespace, which closes the
        // pipes; a grace period covers an external runtime's stray holders.
        if let Some(t) = exited_at {
            if t.elapsed() > std::time::Duration::from_secs(2) {
                break;
            }
        }
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut which = Vec::new();
        for (i, (fd, _, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        fds.push(PollFd::new(&cancel.inner.event, PollFlags::IN));
        if exited_at.is_none() {
            fds.push(PollFd::new(&child.pidfd, PollFlags::IN));
        }
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match rustix::event::poll(&mut fds, exited_at.map(|_| &timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        if exited_at.is_none()
            && fds.len() == which.len() + 2
            && !fds[which.len() + 1].revents().is_empty()
        {
            exited_at = Some(std::time::Instant::now());
        }
        let ready: Vec<usize> = which
            .iter()
            .enumerate()
            .filter(|(k, _)| !fds[*k].revents().is_empty())
            .map(|(_, i)| *i)
            .collect();
        drop(fds);
        for i in ready {
            let (fd, stream, pending) = &mut streams[i];
            let Some(f) = fd.as_ref() else { continue };
            match rustix::io::read(f, &mut buf) {
                Ok(0) => {
                    if !pending.is_empty() {
                        sink.line(*stream, pending);
                        pending.clear();
                    }
                    *fd = None;
                }
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    let mut start = 0;
                    while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
                        sink.line(*stream, &pending[start..start + pos]);
                        start += pos + 1;
                    }
                    pending.drain(..start);
                    while pending.len() >= MAX_LINE {
                        sink.line(*stream, &pending[..MAX_LINE]);
                        pending.drain(..MAX_LINE);
                    }
                }
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(Error::sys("read output", e)),
            }
        }
    }
    for (_, stream, pending) in &mut streams {
        if !pending.is_empty() {
            sink.line(*stream, pending);
        }
    }
    Ok(false)
}

/// The container's first process, owned through its pidfd; killed and reaped on drop (a no-op
/// once it was reaped: the pidfd can never name another process).
struct Child {
    pidfd: OwnedFd,
}

impl Child {
    fn kill(&self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
    }
    fn exited_now(&self) -> Result<bool> {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let n =
            rustix::event::poll(&mut fds, Some(&zero)).map_err(|e| Error::sys("poll pidfd", e))?;
        Ok(n > 0)
    }
    fn wait(&self) -> Result<ExitStatus> {
        loop {
            match rustix::process::waitid(
                rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            ) {
                Ok(Some(st)) => {
                    if let Some(sig) = st.terminating_signal() {
                        return Ok(ExitStatus::Signal(sig));
                    }
                    return Ok(ExitStatus::Code(st.exit_status().unwrap_or(0)));
                }
                Ok(None) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::CHILD) => return Ok(ExitStatus::Signal(libc::SIGKILL)),
                Err(e) => return Err(Error::sys("waitid", e)),
            }
        }
    }
}

/// Stops a cancelled container: under an OCI runtime, through the runtime first (its
/// container would outlive the runtime's own process), then the process we started.
fn stop(cfg: &InitConfig, pid: i32, child: &Child) {
    if let Some(plan) = &cfg.oci {
        crate::oci::force_stop(plan, pid);
    }
    child.kill();
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        );
    }
}

/// Removes a run's overlay work dir when dropped (after the container's namespace is gone, so
/// nothing is mounted there any more), on a background thread: on a busy disk the handful of
/// unlinks cost more than the whole container (10+ ms measured with online discard under load),
/// and nothing waits for them: the work dir is a sibling of the upper dir, not part of the layer.
struct Cleanup(PathBuf);

impl Cleanup {
    fn new(p: PathBuf) -> Self {
        Cleanup(p)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleaner_send(Job::Remove(std::mem::take(&mut self.0)));
    }
}

enum Job {
    Remove(PathBuf),
    /// Wait for a killed child (a network helper) to finish exiting.
    Reap(OwnedFd),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Reaps the killed child behind `pidfd` on the cleanup thread.
pub(crate) fn reap_later(pidfd: OwnedFd) {
    cleaner_send(Job::Reap(pidfd));
}

fn reap(pidfd: &OwnedFd) {
    while let Err(rustix::io::Errno::INTR) | Ok(None) = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    ) {}
}

static CLEANER: std::sync::OnceLock<std::sync::Mutex<Option<std::sync::mpsc::Sender<Job>>>> =
    std::sync::OnceLock::new();

fn cleaner_send(job: Job) {
    let cell = CLEANER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("whittle-runtime-cleanup".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Remove(p) => remove_tree(&p),
                        Job::Reap(fd) => reap(&fd),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        std::sync::Mutex::new(spawned.ok().map(|_| tx))
    });
    let sent = match cell.lock() {
        Ok(guard) => match guard.as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        },
        Err(_) => Err(job),
    };
    // No cleanup thread: do it here.
    if let Err(job) = sent {
        match job {
            Job::Remove(p) => remove_tree(&p),
            Job::Reap(fd) => reap(&fd),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Waits until the overlay work dirs of finished runs are removed and their (killed) network
/// helpers have finished exiting and are reaped. Call it before the process exits (the
/// `whittle` CLI does), or leftover `.NAME.work-*` dirs stay next to upper dirs.
pub fn wait_for_cleanup() {
    let (tx, rx) = std::sync::mpsc::channel();
    cleaner_send(Job::Flush(tx));
    let _ = rx.recv();
}

fn remove_tree(p: &Path) {
    // The overlay work dir holds a mode-000 `work/` subdir; as root that is no obstacle.
    let _ = std::fs::remove_dir_all(p);
}
