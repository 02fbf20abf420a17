//! The container init helper: the whittle binary re-executed by [`crate::sys::spawn_helper`] as
//! the first process of the new namespaces. It reads an [`InitConfig`] from fd 3, builds the
//! container (rootfs, /proc, /dev, /sys, mounts, hostname, loopback), pivots into it, drops
//! privileges and execs the command as pid 1. Any failure before the exec is reported back on
//! fd 3 as one JSON line; a successful exec closes fd 3 (close-on-exec), which the parent reads
//! as "started".
//!
//! Why re-exec rather than doing this work in the cloned child directly: the caller (the build
//! engine) is multi-threaded, and a forked copy of a multi-threaded process may only run
//! async-signal-safe code until exec — no allocation, no locks, no formatted errors. Setting up
//! a container (parsing /etc/passwd, compiling seccomp, building mount options, reporting errors)
//! needs all of those, so the clone child only execs, and the helper, a fresh single-threaded
//! process, does the rest with ordinary safe Rust. The cost is one exec (~1 ms).

use crate::mounts::{self, b, Kind, MountError};
use crate::spec::{ContainerSpec, MountKind, Network, RlimitResource, Rootfs};
use crate::user::ResolvedUser;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MountAttrFlags as A;
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `argv[0]` that marks a process as the init helper.
pub const INIT_ARGV0: &std::ffi::CStr = c"whittle-container-init";

/// Everything the helper needs, sent by the parent over fd 3.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub spec: ContainerSpec,
    /// Host directory the helper covers with a private tmpfs (in its own mount namespace).
    pub state: PathBuf,
    /// `state/rootfs`: where the rootfs is attached.
    pub root: PathBuf,
    /// `state/stage`: secrets, `rw` bind uppers, legacy overlay layer links.
    pub stage: PathBuf,
    /// Overlay work dir (fresh, on the upper's filesystem).
    pub overlay_work: Option<PathBuf>,
    /// Force the pre-6.8 `lowerdir=` overlay path (tests).
    pub legacy_overlay: bool,
    /// Report the helper's own phase times (`WHITTLE_RUNTIME_TRACE`).
    pub trace: bool,
    /// Hand the container to an external OCI runtime instead of exec'ing it ourselves.
    pub oci: Option<OciPlan>,
    /// `Network::Isolated`: the resolv.conf and hosts the container sees. The network helper's
    /// ready pipe is then fd 4.
    pub net: Option<crate::net::NetFiles>,
}

/// How to hand over to an external runtime.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OciPlan {
    pub runtime: PathBuf,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub id: String,
}

/// One message from the helper to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Paths (relative to the rootfs) created as mount points, to tidy from the layer later.
    Created(Vec<PathBuf>),
    /// `args[0]` does not exist in the image.
    NotFound(String),
    /// `USER` did not resolve.
    User { user: String, reason: String },
    /// The command is a program of another architecture than the spec's platform.
    ForeignProgram {
        program: String,
        arch: String,
        platform: String,
    },
    /// The overlay rootfs could not be mounted (the copying snapshotter may do instead).
    Overlay(String),
    /// Anything else.
    Failed(String),
    /// The network helper did not get the isolated network ready.
    Network(String),
    /// The master side of the container's pty comes with this message (SCM_RIGHTS).
    Tty,
    /// Phase times inside the helper, in ms, sent just before the exec when tracing.
    Trace(Vec<(String, f64)>),
}

impl From<MountError> for Report {
    fn from(e: MountError) -> Self {
        Report::Failed(e.0)
    }
}

fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Report {
    Report::Failed(format!("{what}: {e}"))
}

/// If this process was started as the container init helper, runs it and never returns;
/// otherwise returns at once. The `whittle` binary calls this first thing in `main`.
pub fn run_if_requested() {
    let is_init = std::env::args_os()
        .next()
        .is_some_and(|a0| a0.as_bytes() == INIT_ARGV0.to_bytes());
    if !is_init {
        return;
    }
    let Ok(status) = crate::sys::take_inherited_fd(3) else {
        eprintln!("whittle-container-init: started without a parent (no fd 3)");
        std::process::exit(125);
    };
    let mut status = std::fs::File::from(status);
    let report = match helper(&mut status) {
        Ok(never) => match never {},
        Err(r) => r,
    };
    let mut line =
        serde_json::to_vec(&report).unwrap_or_else(|_| b"{\"Failed\":\"report\"}".to_vec());
    line.push(b'\n');
    let _ = status.write_all(&line);
    std::process::exit(125);
}

fn send(status: &mut std::fs::File, r: &Report) -> Result<(), Report> {
    let mut line = serde_json::to_vec(r).map_err(|e| fail("encode report", e))?;
    line.push(b'\n');
    status
        .write_all(&line)
        .map_err(|e| fail("report to parent", e))
}

/// Phase marks of the helper (only kept when tracing).
static MARKS: std::sync::Mutex<Vec<(&'static str, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

fn mark(phase: &'static str) {
    if let Ok(mut m) = MARKS.lock() {
        m.push((phase, std::time::Instant::now()));
    }
}

fn trace_report() -> Report {
    let m = MARKS.lock().map(|m| m.clone()).unwrap_or_default();
    Report::Trace(
        m.windows(2)
            .map(|w| (w[1].0.to_string(), (w[1].1 - w[0].1).as_secs_f64() * 1e3))
            .collect(),
    )
}

fn helper(status: &mut std::fs::File) -> Result<std::convert::Infallible, Report> {
    mark("start");
    let mut buf = Vec::new();
    status
        .read_to_end(&mut buf)
        .map_err(|e| fail("read config", e))?;
    let cfg: InitConfig = serde_json::from_slice(&buf).map_err(|e| fail("decode config", e))?;
    crate::sys::reset_signals();
    rustix::process::umask(Mode::empty());
    let net_ready = match cfg.net {
        Some(_) => Some(
            crate::sys::take_inherited_fd(4).map_err(|e| fail("network ready pipe (fd 4)", e))?,
        ),
        None => None,
    };
    if cfg.oci.is_some() {
        return crate::oci::helper(cfg, status, net_ready);
    }
    if cfg.spec.tty {
        rustix::process::setsid().map_err(|e| fail("setsid", e))?;
    }
    let mut created = Vec::new();
    mark("config");
    let root = build_rootfs(&cfg, &mut created)?;
    mark("rootfs");
    send(status, &Report::Created(created))?;
    enter_root(&root)?;
    mark("pivot");
    drop(root);
    exec_process(&cfg.spec, status, cfg.trace, net_ready)
}

/// Everything up to (not including) the pivot: returns the new root, fully mounted.
pub(crate) fn build_rootfs(
    cfg: &InitConfig,
    created: &mut Vec<PathBuf>,
) -> Result<OwnedFd, Report> {
    use rustix::mount::{mount_change, MountPropagationFlags};
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| fail("make / private", e))?;

    let spec = &cfg.spec;
    // A private tmpfs for secrets, throw-away uppers and the legacy overlay's layer links; it
    // lives only in our namespace.
    mount_state(cfg)?;
    // (A read-only dir rootfs is made read-only last, once the mount points exist.)
    attach_rootfs(cfg)?;
    let root = open_dir(&cfg.root)?;
    let r = root.as_fd();

    // /proc
    let proc_dir = mounts::open_in_root(r, "/proc", Kind::Dir, true, created)?;
    let p = mounts::new_fs(
        "proc",
        &[],
        A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV | A::MOUNT_ATTR_NOEXEC,
    )?;
    mounts::attach(b(&p), b(&proc_dir), "/proc")?;

    // /dev
    setup_dev(r, spec.shm_size, created)?;

    // /sys, read-only
    let sys_dir = mounts::open_in_root(r, "/sys", Kind::Dir, true, created)?;
    let ro =
        A::MOUNT_ATTR_RDONLY | A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV | A::MOUNT_ATTR_NOEXEC;
    let s = match mounts::new_fs("sysfs", &[], ro) {
        Ok(s) => s,
        Err(_) => {
            let t = mounts::clone_tree(Path::new("/sys"))?;
            mounts::make_readonly(b(&t), "/sys")?;
            t
        }
    };
    mounts::attach(b(&s), b(&sys_dir), "/sys")?;

    // RUN --mount
    for (i, m) in spec.mounts.iter().enumerate() {
        user_mount(r, cfg, i, m, created)?;
    }

    for (f, source) in name_files(cfg)? {
        let t = mounts::clone_tree(&source)?;
        mounts::make_readonly(b(&t), f)?;
        let dst = mounts::open_in_root(r, f, Kind::File, true, created)?;
        mounts::attach(b(&t), b(&dst), f)?;
    }

    mask_paths(r)?;

    if let Rootfs::Dir { readonly: true, .. } = spec.rootfs {
        crate::sys::mount_setattr_readonly(r, false).map_err(|e| fail("read-only rootfs", e))?;
    }
    rustix::system::sethostname(spec.hostname.as_bytes()).map_err(|e| fail("sethostname", e))?;
    if spec.network != Network::Host {
        crate::sys::loopback_up().map_err(|e| fail("bring up loopback", e))?;
    }
    Ok(root)
}

/// The files that cover the image's /etc/resolv.conf and /etc/hosts, read-only, for the run
/// (and so never reach the layer): the host's own with the host network, the isolated
/// network's (written on the stage tmpfs here), none without a network.
pub(crate) fn name_files(cfg: &InitConfig) -> Result<Vec<(&'static str, PathBuf)>, Report> {
    const FILES: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];
    let extra = extra_hosts(&cfg.spec.extra_hosts);
    // A generated file (on the stage tmpfs), for the hosts file with `--add-host` entries.
    let write = |f: &'static str, text: &str| -> Result<(&'static str, PathBuf), Report> {
        let name = f.rsplit('/').next().unwrap_or(f);
        let p = cfg.stage.join(name);
        write_private(&p, text.as_bytes(), 0o644, 0, 0)?;
        Ok((f, p))
    };
    let mut out = Vec::new();
    match (cfg.spec.network, &cfg.net) {
        (Network::Host, _) => {
            for f in FILES.into_iter().filter(|f| Path::new(f).exists()) {
                if f == "/etc/hosts" && !extra.is_empty() {
                    let host = std::fs::read_to_string(f).unwrap_or_default();
                    out.push(write(f, &format!("{host}{extra}"))?);
                } else {
                    out.push((f, PathBuf::from(f)));
                }
            }
        }
        (Network::Isolated, Some(files)) => {
            out.push(write(FILES[0], &files.resolv_conf)?);
            out.push(write(FILES[1], &format!("{}{extra}", files.hosts))?);
        }
        (Network::Isolated, None) => {
            return Err(Report::Failed("isolated network without its files".into()))
        }
        // Without a network the image's files stay, unless there are entries to add.
        (Network::None, _) if !extra.is_empty() => {
            let base = crate::net::hosts(&cfg.spec.hostname);
            out.push(write(FILES[1], &format!("{base}{extra}"))?);
        }
        (Network::None, _) => {}
    }
    Ok(out)
}

/// `--add-host` entries as /etc/hosts lines.
fn extra_hosts(entries: &[(String, String)]) -> String {
    entries
        .iter()
        .map(|(name, ip)| format!("{ip}\t{name}\n"))
        .collect()
}

pub(crate) fn open_dir(p: &Path) -> Result<OwnedFd, Report> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(format!("open {}", p.display()), e))
}

/// Mounts the rootfs (overlay, or a bind of the directory) on `cfg.root`.
pub(crate) fn attach_rootfs(cfg: &InitConfig) -> Result<(), Report> {
    match &cfg.spec.rootfs {
        Rootfs::Overlay { lower, upper } => {
            let work = cfg
                .overlay_work
                .as_deref()
                .ok_or_else(|| Report::Failed("overlay without work dir".into()))?;
            mounts::overlay(
                lower,
                upper,
                work,
                cfg.legacy_overlay,
                &cfg.root,
                &cfg.stage,
            )
            .map_err(|e| Report::Overlay(e.0))?;
        }
        Rootfs::Dir { path, .. } => {
            let t = mounts::clone_tree(path)?;
            mounts::attach(b(&t), b(&open_dir(&cfg.root)?), "rootfs")?;
        }
    }
    Ok(())
}

/// Applies a cache mount's `uid`/`gid`/`mode` to its directory.
pub(crate) fn apply_cache_owner(
    source: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
) -> Result<(), Report> {
    if uid.is_some() || gid.is_some() {
        rustix::fs::chown(
            source,
            uid.map(rustix::process::Uid::from_raw),
            gid.map(rustix::process::Gid::from_raw),
        )
        .map_err(|e| fail(format!("chown {}", source.display()), e))?;
    }
    if let Some(mode) = mode {
        rustix::fs::chmod(source, Mode::from_raw_mode(mode))
            .map_err(|e| fail(format!("chmod {}", source.display()), e))?;
    }
    Ok(())
}

/// Covers the state dir with a tmpfs private to this mount namespace and makes the rootfs
/// mount point and the stage dir in it.
pub(crate) fn mount_state(cfg: &InitConfig) -> Result<(), Report> {
    let t = mounts::new_fs(
        "tmpfs",
        &[("mode", Some("700"))],
        A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV,
    )?;
    mounts::attach(b(&t), b(&open_dir(&cfg.state)?), "state tmpfs")?;
    for d in [&cfg.root, &cfg.stage] {
        std::fs::create_dir(d).map_err(|e| fail(format!("create {}", d.display()), e))?;
    }
    Ok(())
}

/// Device nodes of the minimal /dev: (name, major, minor).
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn setup_dev(
    r: rustix::fd::BorrowedFd<'_>,
    shm_size: Option<u64>,
    created: &mut Vec<PathBuf>,
) -> Result<(), Report> {
    let dev_dir = mounts::open_in_root(r, "/dev", Kind::Dir, true, created)?;
    let dev = mounts::new_fs(
        "tmpfs",
        &[("mode", Some("755")), ("size", Some("65536k"))],
        A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NOEXEC,
    )?;
    // In a user namespace (rootless) mknod of a real device is refused, and a device node on a
    // tmpfs mounted there could not be opened anyway: the host's nodes are bound over empty
    // files instead (as rootless Podman and runc do), once /dev is attached.
    let mut bind_devices = Vec::new();
    for (name, major, minor) in DEVICES {
        match rustix::fs::mknodat(
            &dev,
            name,
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) => {
                rustix::fs::openat(
                    &dev,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                )
                .map_err(|e| fail(format!("create /dev/{name}"), e))?;
                bind_devices.push(name);
            }
            Err(e) => return Err(fail(format!("mknod /dev/{name}"), e)),
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(to, &dev, link)
            .map_err(|e| fail(format!("symlink /dev/{link}"), e))?;
    }
    for d in ["pts", "shm", "mqueue"] {
        rustix::fs::mkdirat(&dev, d, Mode::from_raw_mode(0o755))
            .map_err(|e| fail(format!("mkdir /dev/{d}"), e))?;
    }
    let sub = |name: &str| {
        rustix::fs::openat(
            &dev,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(format!("open /dev/{name}"), e))
    };
    let pts_opts = [
        ("newinstance", None),
        ("ptmxmode", Some("0666")),
        ("mode", Some("0620")),
        ("gid", Some("5")),
    ];
    let pts_attrs = A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NOEXEC;
    // Group tty (5) does not exist in a rootless single-id namespace: the terminals then
    // belong to the container's root group.
    let pts = mounts::new_fs("devpts", &pts_opts, pts_attrs)
        .or_else(|_| mounts::new_fs("devpts", &pts_opts[..3], pts_attrs))?;
    mounts::attach(b(&pts), b(&sub("pts")?), "/dev/pts")?;
    let shm_size = format!("{}k", shm_size.unwrap_or(64 << 20).div_ceil(1024));
    let shm = mounts::new_fs(
        "tmpfs",
        &[("mode", Some("1777")), ("size", Some(shm_size.as_str()))],
        A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV | A::MOUNT_ATTR_NOEXEC,
    )?;
    mounts::attach(b(&shm), b(&sub("shm")?), "/dev/shm")?;
    let mq = mounts::new_fs(
        "mqueue",
        &[],
        A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV | A::MOUNT_ATTR_NOEXEC,
    )?;
    mounts::attach(b(&mq), b(&sub("mqueue")?), "/dev/mqueue")?;
    mounts::attach(b(&dev), b(&dev_dir), "/dev")?;
    for name in bind_devices {
        let host = Path::new("/dev").join(name);
        let node = mounts::clone_tree_nofollow(&host)?;
        let path = format!("/dev/{name}");
        let at = mounts::open_in_root(r, &path, Kind::File, false, created)?;
        mounts::attach(b(&node), b(&at), &path)?;
    }
    Ok(())
}

/// runc's / Docker's default masked paths: hidden behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// runc's / Docker's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mask_paths(r: rustix::fd::BorrowedFd<'_>) -> Result<(), Report> {
    let mut none = Vec::new();
    let null = mounts::open_in_root(r, "/dev/null", Kind::File, false, &mut none)?;
    for p in MASKED_PATHS {
        let Ok(target) = mounts::open_in_root(r, p, Kind::File, false, &mut none) else {
            continue;
        };
        let m = if mounts::is_dir(b(&target)) {
            mounts::new_fs(
                "tmpfs",
                &[("size", Some("0"))],
                A::MOUNT_ATTR_RDONLY
                    | A::MOUNT_ATTR_NOSUID
                    | A::MOUNT_ATTR_NODEV
                    | A::MOUNT_ATTR_NOEXEC,
            )?
        } else {
            mounts::clone_fd(b(&null))?
        };
        mounts::attach(b(&m), b(&target), p)?;
    }
    for p in READONLY_PATHS {
        let Ok(target) = mounts::open_in_root(r, p, Kind::File, false, &mut none) else {
            continue;
        };
        let m = mounts::clone_fd(b(&target))?;
        mounts::make_readonly(b(&m), p)?;
        mounts::attach(b(&m), b(&target), p)?;
    }
    Ok(())
}

fn user_mount(
    r: rustix::fd::BorrowedFd<'_>,
    cfg: &InitConfig,
    i: usize,
    m: &crate::spec::Mount,
    created: &mut Vec<PathBuf>,
) -> Result<(), Report> {
    let t = &m.target;
    match &m.kind {
        MountKind::Bind { source, rw } => {
            // Never through a link: the source is a file or a directory the build prepared.
            let md = std::fs::symlink_metadata(source)
                .map_err(|e| fail(format!("bind source {}", source.display()), e))?;
            if md.file_type().is_symlink() {
                return Err(fail(
                    format!("bind source {}", source.display()),
                    std::io::Error::other("is a symbolic link"),
                ));
            }
            let src_is_dir = md.is_dir();
            let kind = if src_is_dir { Kind::Dir } else { Kind::File };
            let mnt = if !*rw {
                let mnt = mounts::clone_tree_nofollow(source)?;
                mounts::make_readonly(b(&mnt), t)?;
                mnt
            } else if src_is_dir {
                // Writes land in a throw-away upper on the stage tmpfs.
                let merged = rw_bind_overlay(cfg, i, source)?;
                mounts::clone_tree(&merged)?
            } else {
                let copy = cfg.stage.join(format!("bind{i}"));
                std::fs::copy(source, &copy)
                    .map_err(|e| fail(format!("copy {}", source.display()), e))?;
                mounts::clone_tree(&copy)?
            };
            let dst = mounts::open_in_root(r, t, kind, true, created)?;
            mounts::attach(b(&mnt), b(&dst), t)?;
        }
        MountKind::Cache {
            source,
            uid,
            gid,
            mode,
        } => {
            apply_cache_owner(source, *uid, *gid, *mode)?;
            let mnt = mounts::clone_tree(source)?;
            let dst = mounts::open_in_root(r, t, Kind::Dir, true, created)?;
            mounts::attach(b(&mnt), b(&dst), t)?;
        }
        MountKind::Tmpfs { size } => {
            // As runc does: the tmpfs takes the mode of the directory it covers (0755 for one
            // made for it), not tmpfs's own 1777.
            let dst = mounts::open_in_root(r, t, Kind::Dir, true, created)?;
            let mode = rustix::fs::fstat(&dst)
                .map(|st| format!("{:o}", st.st_mode & 0o7777))
                .map_err(|e| fail(format!("stat {t}"), e))?;
            let size = size.map(|s| s.to_string());
            let mut opts: Vec<mounts::FsOpt<'_>> = vec![("mode", Some(mode.as_str()))];
            if let Some(s) = &size {
                opts.push(("size", Some(s)));
            }
            let mnt = mounts::new_fs("tmpfs", &opts, A::MOUNT_ATTR_NOSUID | A::MOUNT_ATTR_NODEV)?;
            mounts::attach(b(&mnt), b(&dst), t)?;
        }
        MountKind::Secret {
            data,
            mode,
            uid,
            gid,
        } => {
            let file = cfg.stage.join(format!("secret{i}"));
            write_private(&file, data, *mode, *uid, *gid)?;
            let mnt = mounts::clone_tree(&file)?;
            mounts::make_readonly(b(&mnt), t)?;
            let dst = mounts::open_in_root(r, t, Kind::File, true, created)?;
            mounts::attach(b(&mnt), b(&dst), t)?;
        }
        MountKind::Ssh { socket } => {
            let mnt = mounts::clone_tree(socket)?;
            let dst = mounts::open_in_root(r, t, Kind::File, true, created)?;
            mounts::attach(b(&mnt), b(&dst), t)?;
        }
    }
    Ok(())
}

/// Mounts a throw-away overlay of `source` (upper on the stage tmpfs) and returns its path.
pub(crate) fn rw_bind_overlay(
    cfg: &InitConfig,
    i: usize,
    source: &Path,
) -> Result<PathBuf, Report> {
    let base = cfg.stage.join(format!("bind{i}"));
    for d in ["upper", "work", "merged", "scratch"] {
        std::fs::create_dir_all(base.join(d)).map_err(|e| fail("stage dir", e))?;
    }
    mounts::overlay(
        &[source.to_path_buf()],
        &base.join("upper"),
        &base.join("work"),
        cfg.legacy_overlay,
        &base.join("merged"),
        &base.join("scratch"),
    )?;
    Ok(base.join("merged"))
}

/// Writes a secret file on the stage tmpfs with its final owner and mode.
pub(crate) fn write_private(
    path: &Path,
    data: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), Report> {
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| fail("create secret", e))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data).map_err(|e| fail("write secret", e))?;
    rustix::fs::fchown(
        &f,
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    )
    .map_err(|e| fail("chown secret", e))?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| fail("chmod secret", e))?;
    Ok(())
}

fn enter_root(root: &OwnedFd) -> Result<(), Report> {
    rustix::process::fchdir(root).map_err(|e| fail("chdir rootfs", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| fail("detach old root", e))?;
    rustix::process::chdir("/").map_err(|e| fail("chdir /", e))?;
    Ok(())
}

/// The default capability set of Docker (and BuildKit's RUN).
pub fn default_capabilities() -> rustix::thread::CapabilitySet {
    use rustix::thread::CapabilitySet as C;
    C::CHOWN
        | C::DAC_OVERRIDE
        | C::FSETID
        | C::FOWNER
        | C::MKNOD
        | C::NET_RAW
        | C::SETGID
        | C::SETUID
        | C::SETFCAP
        | C::SETPCAP
        | C::NET_BIND_SERVICE
        | C::SYS_CHROOT
        | C::KILL
        | C::AUDIT_WRITE
}

/// Reads a file of the (already entered) container root, if it is there.
fn read_small(path: &str) -> Option<String> {
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Resolves `USER` inside the entered root.
pub(crate) fn resolve_user(spec: &ContainerSpec) -> Result<ResolvedUser, Report> {
    let u = spec.user.clone().unwrap_or_default();
    crate::user::resolve(
        &u,
        read_small("/etc/passwd").as_deref(),
        read_small("/etc/group").as_deref(),
    )
    .map_err(|reason| Report::User { user: u, reason })
}

/// The final environment: as given, plus `HOME` and `PATH` when missing.
pub(crate) fn final_env(spec: &ContainerSpec, user: &ResolvedUser) -> Vec<String> {
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(crate::spec::DEFAULT_PATH_ENV.into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// The first bytes of a file (as many as the kernel looks at to pick a binary format).
pub(crate) fn first_bytes(f: std::fs::File) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(crate::binfmt::elf::HEADER_LEN);
    f.take(crate::binfmt::elf::HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Finds the executable like execvp would, inside the entered root.
pub(crate) fn find_executable(arg0: &str, env: &[String]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return ok(&p).then_some(p);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(arg0))
        .find(|p| ok(p))
}

fn cstr(s: impl AsRef<[u8]>) -> Result<CString, Report> {
    CString::new(s.as_ref())
        .map_err(|_| Report::Failed("NUL byte in argument or environment".into()))
}

fn exec_process(
    spec: &ContainerSpec,
    status: &mut std::fs::File,
    trace: bool,
    net_ready: Option<OwnedFd>,
) -> Result<std::convert::Infallible, Report> {
    use rustix::process::{Resource, Rlimit};
    for l in &spec.rlimits {
        let res = match l.resource {
            RlimitResource::Nofile => Resource::Nofile,
            RlimitResource::Nproc => Resource::Nproc,
            RlimitResource::Core => Resource::Core,
            RlimitResource::Stack => Resource::Stack,
            RlimitResource::Memlock => Resource::Memlock,
            RlimitResource::Fsize => Resource::Fsize,
            RlimitResource::Cpu => Resource::Cpu,
            RlimitResource::Data => Resource::Data,
            RlimitResource::As => Resource::As,
            RlimitResource::Locks => Resource::Locks,
            RlimitResource::Msgqueue => Resource::Msgqueue,
            RlimitResource::Nice => Resource::Nice,
            RlimitResource::Rss => Resource::Rss,
            RlimitResource::Rtprio => Resource::Rtprio,
            RlimitResource::Rttime => Resource::Rttime,
            RlimitResource::Sigpending => Resource::Sigpending,
        };
        rustix::process::setrlimit(
            res,
            Rlimit {
                current: Some(l.soft),
                maximum: Some(l.hard),
            },
        )
        .map_err(|e| fail(format!("setrlimit {:?}", l.resource), e))?;
    }
    let user = resolve_user(spec)?;
    mark("user");
    let env = final_env(spec, &user);
    let cwd = mounts::normalize(&spec.cwd);
    let cwd = Path::new("/").join(cwd);
    std::fs::create_dir_all(&cwd)
        .map_err(|e| fail(format!("create working dir {}", cwd.display()), e))?;
    let arg0 = spec
        .args
        .first()
        .ok_or_else(|| Report::Failed("empty command".into()))?;
    let exe = find_executable(arg0, &env).ok_or_else(|| Report::NotFound(arg0.clone()))?;
    if let Some(platform) = &spec.platform {
        let head = |p: &str| first_bytes(std::fs::File::open(p).ok()?);
        if let Some(arch) = std::fs::File::open(&exe)
            .ok()
            .and_then(first_bytes)
            .and_then(|h| crate::binfmt::elf::foreign_program(platform, &h, &head))
        {
            return Err(Report::ForeignProgram {
                program: exe.display().to_string(),
                arch: arch.oci.into(),
                platform: platform.to_string(),
            });
        }
    }
    let args = spec.args.iter().map(cstr).collect::<Result<Vec<_>, _>>()?;
    let envc = env.iter().map(cstr).collect::<Result<Vec<_>, _>>()?;
    let exe = cstr(exe.as_os_str().as_bytes())?;
    // `--security-opt seccomp=unconfined` leaves the filter out.
    let filters = if spec.seccomp_unconfined {
        None
    } else {
        Some(crate::seccomp::filters().map_err(|e| fail("seccomp", e))?)
    };
    mark("compile seccomp");

    if spec.tty {
        setup_tty(status, user.uid)?;
    }

    // Credentials and capabilities, in runc's order: bounding set, groups/gid/uid, then the
    // remaining sets (a uid change away from 0 already empties permitted/effective).
    let caps = default_capabilities();
    for bit in 0..64u32 {
        let cap = rustix::thread::CapabilitySet::from_bits_retain(1u64 << bit);
        if caps.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break, // past the kernel's last capability
            Err(e) => return Err(fail(format!("drop capability {bit}"), e)),
        }
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    let groups: Vec<rustix::process::Gid> = spec
        .supplementary_groups(&user)
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // A rootless single-id namespace denies setgroups: the process keeps the one group
        // there is.
        Err(rustix::io::Errno::PERM) if setgroups_denied() => {}
        Err(e) => return Err(fail("setgroups", e)),
    }
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(user.gid))
        .map_err(|e| fail("setgid", e))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(user.uid))
        .map_err(|e| fail("setuid", e))?;
    let sets = if user.uid == 0 {
        rustix::thread::CapabilitySets {
            effective: caps,
            permitted: caps,
            inheritable: rustix::thread::CapabilitySet::empty(),
        }
    } else {
        rustix::thread::CapabilitySets {
            effective: rustix::thread::CapabilitySet::empty(),
            permitted: rustix::thread::CapabilitySet::empty(),
            inheritable: rustix::thread::CapabilitySet::empty(),
        }
    };
    rustix::thread::set_capabilities(None, sets).map_err(|e| fail("capset", e))?;
    rustix::process::chdir(&cwd).map_err(|e| fail(format!("chdir {}", cwd.display()), e))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| fail("no_new_privs", e))?;
    // The uid change cleared the parent-death signal: set it again, then make sure the parent
    // did not die in between (its end of our status socket would have hung up).
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| fail("parent death signal", e))?;
    // (POLLHUP, not RDHUP: the parent already shut down its writing half after the config.)
    let mut pfd = [rustix::event::PollFd::new(
        &*status,
        rustix::event::PollFlags::empty(),
    )];
    rustix::event::poll(
        &mut pfd,
        Some(&rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    )
    .map_err(|e| fail("poll parent", e))?;
    if pfd[0].revents().contains(rustix::event::PollFlags::HUP) {
        return Err(Report::Failed("parent went away".into()));
    }
    rustix::process::umask(Mode::from_raw_mode(0o022));
    mark("credentials");
    // Last, so that the network helper's setup overlapped with all of ours.
    if let Some(fd) = net_ready {
        crate::net::wait_ready(fd).map_err(Report::Network)?;
        mark("network ready");
    }
    crate::sys::cloexec_from(3).map_err(|e| fail("close_range", e))?;
    if let Some(filters) = &filters {
        crate::seccomp::install(filters).map_err(|e| fail("seccomp", e))?;
    }
    mark("load seccomp");
    if trace {
        send(status, &trace_report())?;
    }
    let e = crate::sys::execve(&exe, &args, &envc);
    Err(match e.raw_os_error() {
        Some(libc::ENOENT) => Report::NotFound(arg0.clone()),
        _ => fail(format!("exec {arg0}"), e),
    })
}

/// Opens a pty in the container's own devpts, hands the master to the parent over the status
/// socket, and makes the slave our stdio and controlling terminal.
fn setup_tty(status: &std::fs::File, uid: u32) -> Result<(), Report> {
    use rustix::pty::{openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| fail("open /dev/ptmx", e))?;
    unlockpt(&master).map_err(|e| fail("unlockpt", e))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| fail("ptsname", e))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("open pty", e))?;
    rustix::fs::fchown(&slave, Some(rustix::process::Uid::from_raw(uid)), None)
        .map_err(|e| fail("chown pty", e))?;
    let mut line = serde_json::to_vec(&Report::Tty).map_err(|e| fail("encode", e))?;
    line.push(b'\n');
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Report::Failed("pty fd does not fit the message".into()));
    }
    rustix::net::sendmsg(
        status,
        &[std::io::IoSlice::new(&line)],
        &mut control,
        rustix::net::SendFlags::empty(),
    )
    .map_err(|e| fail("send pty", e))?;
    drop(master);
    rustix::stdio::dup2_stdin(&slave).map_err(|e| fail("dup pty", e))?;
    rustix::stdio::dup2_stdout(&slave).map_err(|e| fail("dup pty", e))?;
    rustix::stdio::dup2_stderr(&slave).map_err(|e| fail("dup pty", e))?;
    rustix::process::ioctl_tiocsctty(&slave).map_err(|e| fail("set controlling tty", e))?;
    Ok(())
}

/// Removes from `upper` the mount points this run created (empty dirs and empty files), deepest
/// first, without following symlinks the container may have planted.
pub(crate) fn tidy_created(upper: &Path, created: &[PathBuf]) {
    use rustix::fs::{AtFlags, ResolveFlags};
    let Ok(top) = rustix::fs::open(
        upper,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    for rel in created.iter().rev() {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let Ok(dir) = rustix::fs::openat2(
            &top,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) else {
            continue;
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                if ft == rustix::fs::FileType::Directory {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR);
                } else if ft == rustix::fs::FileType::RegularFile && st.st_size == 0 {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
                }
            }
            Err(_) => continue,
        }
    }
}

/// Whether this user namespace forbids setgroups (`/proc/self/setgroups` says `deny`: a
/// single-id map written by an unprivileged process).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}
