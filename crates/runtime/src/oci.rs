//! The same container as an OCI runtime spec (`config.json`), for `--runtime runc|crun|PATH`.
//!
//! The init helper still does the part an OCI runtime cannot: it mounts the overlay rootfs (and
//! the stage tmpfs for secrets and `rw` binds) inside a private mount namespace, resolves `USER`
//! against the image, writes the bundle and execs the runtime (`run --bundle`) in that
//! namespace, so nothing is left mounted on the host if whittle dies.

use crate::error::{Error, Result};
use crate::init::{InitConfig, Report};
use crate::mounts::{self, Kind};
use crate::spec::{ContainerSpec, MountKind, Network, RlimitResource};
use crate::user::ResolvedUser;
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Finds an OCI runtime binary: a path as is, a bare name (`runc`, `crun`) on `PATH`.
pub fn find_runtime(name: &Path) -> Result<PathBuf> {
    if name.components().count() > 1 {
        return if name.is_file() {
            Ok(name.to_path_buf())
        } else {
            Err(Error::Oci {
                runtime: name.into(),
                message: "no such file".into(),
            })
        };
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Oci {
            runtime: name.into(),
            message: "not found on PATH".into(),
        })
}

/// A mount of the OCI form: type, host source, options.
#[derive(Clone, Debug)]
pub struct OciMount {
    pub target: String,
    pub typ: String,
    pub source: PathBuf,
    pub options: Vec<String>,
}

fn caps_of(set: rustix::thread::CapabilitySet) -> Capabilities {
    const NAMES: [(rustix::thread::CapabilitySet, &str); 14] = {
        use rustix::thread::CapabilitySet as C;
        [
            (C::CHOWN, "CAP_CHOWN"),
            (C::DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
            (C::FSETID, "CAP_FSETID"),
            (C::FOWNER, "CAP_FOWNER"),
            (C::MKNOD, "CAP_MKNOD"),
            (C::NET_RAW, "CAP_NET_RAW"),
            (C::SETGID, "CAP_SETGID"),
            (C::SETUID, "CAP_SETUID"),
            (C::SETFCAP, "CAP_SETFCAP"),
            (C::SETPCAP, "CAP_SETPCAP"),
            (C::NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"),
            (C::SYS_CHROOT, "CAP_SYS_CHROOT"),
            (C::KILL, "CAP_KILL"),
            (C::AUDIT_WRITE, "CAP_AUDIT_WRITE"),
        ]
    };
    NAMES
        .iter()
        .filter(|(c, _)| set.contains(*c))
        .filter_map(|(_, n)| serde_json::from_value(serde_json::Value::String((*n).into())).ok())
        .collect()
}

fn spec_err(e: oci_spec::OciSpecError) -> Error {
    Error::InvalidSpec(format!("OCI spec: {e}"))
}

/// Expresses `spec` as an OCI runtime spec: `root` is the prepared rootfs directory, `user` the
/// resolved credentials, `env` the final environment and `mounts` the `RUN --mount`s already
/// prepared as host sources.
pub fn to_oci_spec(
    spec: &ContainerSpec,
    root: &Path,
    user: &ResolvedUser,
    env: Vec<String>,
    mounts: &[OciMount],
) -> Result<Spec> {
    let caps = if user.uid == 0 {
        crate::init::default_capabilities()
    } else {
        rustix::thread::CapabilitySet::empty()
    };
    let bounding = caps_of(crate::init::default_capabilities());
    let rlimits = spec
        .rlimits
        .iter()
        .map(|l| {
            PosixRlimitBuilder::default()
                .typ(match l.resource {
                    RlimitResource::Nofile => PosixRlimitType::RlimitNofile,
                    RlimitResource::Nproc => PosixRlimitType::RlimitNproc,
                    RlimitResource::Core => PosixRlimitType::RlimitCore,
                    RlimitResource::Stack => PosixRlimitType::RlimitStack,
                    RlimitResource::Memlock => PosixRlimitType::RlimitMemlock,
                    RlimitResource::Fsize => PosixRlimitType::RlimitFsize,
                    RlimitResource::Cpu => PosixRlimitType::RlimitCpu,
                    RlimitResource::Data => PosixRlimitType::RlimitData,
                    RlimitResource::As => PosixRlimitType::RlimitAs,
                    RlimitResource::Locks => PosixRlimitType::RlimitLocks,
                    RlimitResource::Msgqueue => PosixRlimitType::RlimitMsgqueue,
                    RlimitResource::Nice => PosixRlimitType::RlimitNice,
                    RlimitResource::Rss => PosixRlimitType::RlimitRss,
                    RlimitResource::Rtprio => PosixRlimitType::RlimitRtprio,
                    RlimitResource::Rttime => PosixRlimitType::RlimitRttime,
                    RlimitResource::Sigpending => PosixRlimitType::RlimitSigpending,
                })
                .soft(l.soft)
                .hard(l.hard)
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(spec_err)?;
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(spec.supplementary_groups(user))
                .build()
                .map_err(spec_err)?,
        )
        .args(spec.args.clone())
        .env(env)
        .cwd(PathBuf::from(&spec.cwd))
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(bounding)
                .effective(caps_of(caps))
                .permitted(caps_of(caps))
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()
                .map_err(spec_err)?,
        )
        .rlimits(rlimits)
        .no_new_privileges(true)
        .build()
        .map_err(spec_err)?;

    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
    };
    let mut all = vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={}k", spec.shm_size.unwrap_or(64 << 20).div_ceil(1024)),
            ],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
    ]
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(spec_err)?;
    if spec.network == Network::Host {
        for f in ["/etc/resolv.conf", "/etc/hosts"] {
            if Path::new(f).exists() {
                all.push(m(f, "bind", f, &["rbind", "ro"]).map_err(spec_err)?);
            }
        }
    }
    for om in mounts {
        all.push(
            MountBuilder::default()
                .destination(&om.target)
                .typ(&om.typ)
                .source(&om.source)
                .options(om.options.clone())
                .build()
                .map_err(spec_err)?,
        );
    }
    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if spec.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(spec_err)?;
    let mut linux = LinuxBuilder::default();
    if !spec.seccomp_unconfined {
        linux = linux.seccomp(crate::seccomp::oci_seccomp().map_err(spec_err)?);
    }
    let linux = linux
        .namespaces(namespaces)
        .masked_paths(
            crate::init::MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            crate::init::READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_err)?;
    let readonly = matches!(spec.rootfs, crate::spec::Rootfs::Dir { readonly: true, .. });
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(root)
                .readonly(readonly)
                .build()
                .map_err(spec_err)?,
        )
        .hostname(spec.hostname.clone())
        .process(process)
        .mounts(all)
        .linux(linux)
        .build()
        .map_err(spec_err)
}

fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Report {
    Report::Failed(format!("{what}: {e}"))
}

/// Reads a small file of the rootfs with symlinks resolved inside it.
fn read_in_root(root: rustix::fd::BorrowedFd<'_>, path: &str) -> Option<String> {
    let fd = rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// The path (inside the root) of the executable `arg0` names, looked up as execvp would.
fn executable_in_root(
    root: rustix::fd::BorrowedFd<'_>,
    arg0: &str,
    env: &[String],
) -> Option<String> {
    let candidates: Vec<String> = if arg0.contains('/') {
        vec![arg0.to_string()]
    } else {
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/bin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{arg0}"))
            .collect()
    };
    candidates.into_iter().find(|c| {
        rustix::fs::openat2(
            root,
            c.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
        .and_then(rustix::fs::fstat)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                && st.st_mode & 0o111 != 0
        })
        .unwrap_or(false)
    })
}

/// The first bytes of a file inside the root (resolved there, never on the host).
fn first_bytes_in_root(root: rustix::fd::BorrowedFd<'_>, path: &str) -> Option<Vec<u8>> {
    let fd = rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
    .ok()?;
    crate::init::first_bytes(std::fs::File::from(fd))
}

/// The helper in OCI mode (runs in a private mount namespace of its own).
pub(crate) fn helper(
    cfg: InitConfig,
    status: &mut std::fs::File,
    net_ready: Option<rustix::fd::OwnedFd>,
) -> std::result::Result<std::convert::Infallible, Report> {
    use rustix::mount::{mount_change, MountPropagationFlags};
    let plan = cfg
        .oci
        .as_ref()
        .ok_or_else(|| Report::Failed("no OCI plan".into()))?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| fail("make / private", e))?;
    let spec = &cfg.spec;
    crate::init::mount_state(&cfg)?;
    crate::init::attach_rootfs(&cfg)?;
    let root = crate::init::open_dir(&cfg.root)?;
    let mut created = Vec::new();
    // The runtime makes its standard mount points itself; make them here so they are recorded
    // and tidied from the layer afterwards, like the built-in runtime's.
    for d in ["/proc", "/dev", "/sys"] {
        mounts::open_in_root(root.as_fd(), d, Kind::Dir, true, &mut created)?;
    }
    let mut prepared = Vec::new();
    for (f, source) in crate::init::name_files(&cfg)? {
        mounts::open_in_root(root.as_fd(), f, Kind::File, true, &mut created)?;
        // (`to_oci_spec` binds the host's own files for the host network.)
        if spec.network == Network::Isolated {
            prepared.push(OciMount {
                target: f.into(),
                typ: "bind".into(),
                source,
                options: vec!["rbind".into(), "ro".into()],
            });
        }
    }
    if spec.network == Network::Isolated {
        // We made this namespace (the runtime only uses it), so loopback is ours to bring up.
        crate::sys::loopback_up().map_err(|e| fail("bring up loopback", e))?;
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        // The OCI runtime would follow a link at a bind source on the host.
        if let MountKind::Bind { source, .. } = &m.kind {
            let md = std::fs::symlink_metadata(source).map_err(|e| fail("bind source", e))?;
            if md.file_type().is_symlink() {
                return Err(fail(
                    "bind source",
                    std::io::Error::other(format!("{} is a symbolic link", source.display())),
                ));
            }
        }
        let (typ, source, options): (&str, PathBuf, Vec<&str>) = match &m.kind {
            MountKind::Bind { source, rw: false } => ("bind", source.clone(), vec!["rbind", "ro"]),
            MountKind::Bind { source, rw: true } => {
                if source.is_dir() {
                    (
                        "bind",
                        crate::init::rw_bind_overlay(&cfg, i, source)?,
                        vec!["rbind", "rw"],
                    )
                } else {
                    let copy = cfg.stage.join(format!("bind{i}"));
                    std::fs::copy(source, &copy).map_err(|e| fail("copy bind source", e))?;
                    ("bind", copy, vec!["rbind", "rw"])
                }
            }
            MountKind::Cache {
                source,
                uid,
                gid,
                mode,
            } => {
                crate::init::apply_cache_owner(source, *uid, *gid, *mode)?;
                ("bind", source.clone(), vec!["rbind", "rw"])
            }
            MountKind::Tmpfs { size } => {
                // No mode: runc gives the tmpfs the mode of the directory it covers.
                let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                prepared.push(OciMount {
                    target: m.target.clone(),
                    typ: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: o,
                });
                continue;
            }
            MountKind::Secret {
                data,
                mode,
                uid,
                gid,
            } => {
                let file = cfg.stage.join(format!("secret{i}"));
                crate::init::write_private(&file, data, *mode, *uid, *gid)?;
                ("bind", file, vec!["rbind", "ro"])
            }
            MountKind::Ssh { socket } => ("bind", socket.clone(), vec!["rbind"]),
        };
        // runc creates missing mount points itself, but following the image's symlinks on the
        // host side; make them here, resolved inside the root.
        let kind = if source.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        mounts::open_in_root(root.as_fd(), &m.target, kind, true, &mut created)?;
        prepared.push(OciMount {
            target: m.target.clone(),
            typ: typ.into(),
            source,
            options: options.into_iter().map(String::from).collect(),
        });
    }

    let u = spec.user.clone().unwrap_or_default();
    let user = crate::user::resolve(
        &u,
        read_in_root(root.as_fd(), "/etc/passwd").as_deref(),
        read_in_root(root.as_fd(), "/etc/group").as_deref(),
    )
    .map_err(|reason| Report::User { user: u, reason })?;
    let env = crate::init::final_env(spec, &user);
    let arg0 = spec
        .args
        .first()
        .ok_or_else(|| Report::Failed("empty command".into()))?;
    let exe = executable_in_root(root.as_fd(), arg0, &env)
        .ok_or_else(|| Report::NotFound(arg0.clone()))?;
    if let Some(platform) = &spec.platform {
        let head = |p: &str| first_bytes_in_root(root.as_fd(), p);
        if let Some(arch) =
            head(&exe).and_then(|h| crate::binfmt::elf::foreign_program(platform, &h, &head))
        {
            return Err(Report::ForeignProgram {
                program: exe,
                arch: arch.oci.into(),
                platform: platform.to_string(),
            });
        }
    }
    let oci = to_oci_spec(spec, &cfg.root, &user, env, &prepared)
        .map_err(|e| Report::Failed(e.to_string()))?;
    oci.save(plan.bundle.join("config.json"))
        .map_err(|e| fail("write config.json", e))?;
    {
        use std::io::Write;
        let mut line =
            serde_json::to_vec(&Report::Created(created)).map_err(|e| fail("encode", e))?;
        line.push(b'\n');
        status.write_all(&line).map_err(|e| fail("report", e))?;
    }
    if let Some(fd) = net_ready {
        crate::net::wait_ready(fd).map_err(Report::Network)?;
    }
    crate::sys::cloexec_from(3).map_err(|e| fail("close_range", e))?;
    let c = |s: &std::ffi::OsStr| {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(s.as_bytes()).map_err(|_| Report::Failed("NUL in path".into()))
    };
    let runtime = c(plan.runtime.as_os_str())?;
    let args = vec![
        runtime.clone(),
        c("--root".as_ref())?,
        c(plan.state_root.as_os_str())?,
        c("run".as_ref())?,
        c("--bundle".as_ref())?,
        c(plan.bundle.as_os_str())?,
        c(plan.id.as_ref())?,
    ];
    let env = vec![c(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".as_ref(),
    )?];
    let e = crate::sys::execve(&runtime, &args, &env);
    Err(fail(format!("exec {}", plan.runtime.display()), e))
}

/// Stops a container that an OCI runtime runs: SIGKILL to the container's init process, the
/// pid 1 of its PID namespace, so the kernel kills every other process in it. Killing the
/// runtime's own process (`runc run` in the foreground) is not enough: its container would go
/// on running, reparented. The runtime runs in the helper's mount namespace, where its state
/// directory is, so the state is read through `/proc/<runtime pid>/root` (a `runc delete` from
/// here would not find the container). Best effort, for a cancel.
pub(crate) fn force_stop(plan: &crate::init::OciPlan, runtime_pid: i32) {
    let state = std::path::Path::new("/proc")
        .join(runtime_pid.to_string())
        .join("root")
        .join(
            plan.state_root
                .strip_prefix("/")
                .unwrap_or(&plan.state_root),
        )
        .join(&plan.id)
        .join("state.json");
    let Ok(text) = std::fs::read(&state) else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return;
    };
    let Some(pid) = v["init_process_pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}
