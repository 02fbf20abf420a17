//! What the build engine (or `whittle run`) asks for: one container, fully described.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One container to run: the build engine fills this from an `Exec` op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// Command and arguments; `args[0]` is looked up in `PATH` (from `env`) unless it has a `/`.
    pub args: Vec<String>,
    /// Environment as `KEY=VALUE` strings, exactly as given (a secret with `env=` goes here too).
    /// `HOME` is added from /etc/passwd when missing, `PATH` gets the usual default when missing.
    pub env: Vec<String>,
    /// Working directory inside the container; created (owned by root) if missing.
    pub cwd: String,
    /// `USER` value: `name[:group]` or `uid[:gid]`; `None` is root.
    pub user: Option<String>,
    /// Hostname inside the container's UTS namespace.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// Extra mounts (`RUN --mount`), applied in order.
    pub mounts: Vec<Mount>,
    /// Give the process a pseudo-terminal (interactive `whittle run -it`).
    pub tty: bool,
    /// Where the process's standard input comes from.
    pub stdin: Stdin,
    /// Resource limits; [`ContainerSpec::new`] sets containerd's default (`RLIMIT_NOFILE` 1024).
    pub rlimits: Vec<Rlimit>,
    /// Size of the `/dev/shm` tmpfs in bytes (`--shm-size`); 64 MiB when `None`, as docker.
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// Supplementary groups as `docker run` sets them (the primary gid too), rather than as a
    /// BuildKit RUN step does (only the groups /etc/group lists the user in).
    #[serde(default)]
    pub primary_gid_in_groups: bool,
    /// `--add-host` entries (name, address) added to the container's /etc/hosts (which then
    /// covers the image's, read-only, so they never reach a layer).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// No seccomp filter (`--security-opt seccomp=unconfined`): the default profile blocks
    /// syscalls such as `ptrace`, `personality` and `unshare` for the process.
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// The platform the image's programs are built for (the image config's `os`,
    /// `architecture` and `variant`); `None` means the host's. A foreign one runs under
    /// binfmt_misc emulation: the runtime checks a handler with the F flag is registered
    /// before it creates the container and refuses otherwise ([`crate::Error::Emulation`]),
    /// and the init helper refuses a command that is a program for another architecture
    /// than this one (so the host's own programs never run in its place).
    #[serde(default)]
    pub platform: Option<whittle_oci::Platform>,
}

impl ContainerSpec {
    /// The supplementary groups this spec gives `user`.
    pub fn supplementary_groups(&self, user: &crate::user::ResolvedUser) -> Vec<u32> {
        if self.primary_gid_in_groups {
            user.groups.clone()
        } else {
            user.memberships.clone()
        }
    }
}

impl ContainerSpec {
    /// A spec with the defaults of a build step: cwd `/`, root, hostname `whittle`, no network,
    /// no mounts, stdin from /dev/null, `RLIMIT_NOFILE` 1024:1024.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        ContainerSpec {
            rootfs,
            args,
            env: vec![DEFAULT_PATH_ENV.to_string()],
            cwd: "/".into(),
            user: None,
            hostname: "whittle".into(),
            network: Network::None,
            mounts: Vec::new(),
            tty: false,
            stdin: Stdin::Null,
            rlimits: vec![Rlimit {
                resource: RlimitResource::Nofile,
                soft: 1024,
                hard: 1024,
            }],
            shm_size: None,
            primary_gid_in_groups: false,
            extra_hosts: Vec::new(),
            seccomp_unconfined: false,
            platform: None,
        }
    }
}

/// The `PATH` a container gets when its environment has none (Docker's default).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The root filesystem of a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Rootfs {
    /// An overlay: `lower` are snapshot directories, **top-most first** (like overlayfs's
    /// `lowerdir=`); `upper` receives every change and becomes the new layer (whiteouts as
    /// overlayfs makes them: char device 0:0, opaque dirs with `trusted.overlay.opaque=y`).
    /// A fresh work dir is made next to `upper` for each run and removed after it.
    Overlay { lower: Vec<PathBuf>, upper: PathBuf },
    /// A plain directory used as it is (tests, `whittle run` of an extracted image); with
    /// `readonly` the container cannot change it.
    Dir { path: PathBuf, readonly: bool },
}

/// Network mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// Own network namespace with only loopback, up.
    None,
    /// Own network namespace with loopback up and outbound access through a user-mode network
    /// stack on the host side (slirp4netns, else pasta; see [`crate::NetHelper`]): the
    /// container can open connections to what the host reaches, but not to the host's
    /// loopback, and nothing can connect in. The image's /etc/resolv.conf (pointing at the
    /// stack's DNS forwarder) and /etc/hosts (localhost) are covered read-only for the run,
    /// never written into the layer. The runtime refuses it when no stack is installed
    /// ([`crate::Error::NoNetworkHelper`]); callers decide whether to fall back.
    Isolated,
    /// The host's network namespace (the image's /etc/resolv.conf and /etc/hosts are covered by
    /// the host's, read-only, so name resolution works).
    Host,
}

/// Standard input of the container process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdin {
    /// /dev/null (build steps).
    Null,
    /// The caller's own standard input (`whittle run -i`).
    Inherit,
}

/// One resource limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// The resource limits a spec may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    Nofile,
    Nproc,
    Core,
    Stack,
    Memlock,
    Fsize,
    Cpu,
    Data,
    As,
    Locks,
    Msgqueue,
    Nice,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
}

impl RlimitResource {
    /// The resource docker's `--ulimit NAME=...` names (`nofile`, `nproc`, ...).
    pub fn from_docker_name(name: &str) -> Option<Self> {
        use RlimitResource as R;
        Some(match name {
            "nofile" => R::Nofile,
            "nproc" => R::Nproc,
            "core" => R::Core,
            "stack" => R::Stack,
            "memlock" => R::Memlock,
            "fsize" => R::Fsize,
            "cpu" => R::Cpu,
            "data" => R::Data,
            "as" => R::As,
            "locks" => R::Locks,
            "msgqueue" => R::Msgqueue,
            "nice" => R::Nice,
            "rss" => R::Rss,
            "rtprio" => R::Rtprio,
            "rttime" => R::Rttime,
            "sigpending" => R::Sigpending,
            _ => return None,
        })
    }
}

/// A `RUN --mount`: where it appears in the container and what it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container (created if missing; symlinks in it resolve inside
    /// the rootfs, never on the host).
    pub target: String,
    pub kind: MountKind,
}

/// The kinds of `RUN --mount`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MountKind {
    /// A host directory or file (the build context, another stage's snapshot). Read-only unless
    /// `rw`; with `rw` writes go to a throw-away overlay upper on a tmpfs and are discarded.
    Bind { source: PathBuf, rw: bool },
    /// A persistent host directory supplied by the caller (who handles `sharing=`); when given,
    /// `uid`/`gid`/`mode` are applied to its top directory before the run.
    Cache {
        source: PathBuf,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    },
    /// A fresh tmpfs, `size` in bytes (kernel default: half of RAM).
    Tmpfs { size: Option<u64> },
    /// A secret file on a private tmpfs, never in a layer. (`env=` secrets go in `env`.)
    Secret {
        data: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// The host's ssh-agent socket, bound at `target` (usually `/run/buildkit/ssh_agent.0`).
    /// The socket keeps its host owner and mode (a bind cannot change them without changing
    /// the host's socket).
    Ssh { socket: PathBuf },
}

/// How the container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
    /// The shell's view: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}
