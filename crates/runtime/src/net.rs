//! The isolated network of [`crate::Network::Isolated`]: the container gets its own network
//! namespace, and a user-mode network stack running on the host side (`slirp4netns`, else
//! `pasta`) gives it outbound TCP/UDP through the host's sockets, with the host's loopback out
//! of reach.
//!
//! Addresses: the namespace lives on a link-local subnet, [`SUBNET`] (`169.254.77.0/24`): the
//! container is `.100`, the gateway `.2`, the DNS forwarder `.3`. Link-local because it is
//! neither private (RFC 1918) nor public address space, so it cannot collide with a network
//! the host routes to, and it stays clear of `169.254.169.0/24`, where clouds put their metadata
//! service. Every RUN has its own namespace, so they all use the same subnet. IPv4 only: pasta
//! would otherwise copy the host's IPv6 addresses into the namespace.
//!
//! Lifecycle (see `run.rs`): the parent clones the container's init helper into a new network
//! namespace, starts the tool on the host side with that namespace's fd, and hands the read end
//! of a "ready" pipe to the init helper, which waits on it just before it execs the command
//! (the tool writes to the pipe once the interface is configured: slirp4netns through
//! `--ready-fd`, pasta through its pid file). The tool is the parent's direct child, in a
//! process group of its own, with a parent-death signal; [`NetProc`] kills the group and reaps
//! it when dropped, which `run` does on every path. It gets only `/dev/null`, a memfd for its
//! messages, the ready pipe and the namespace fd: nothing of the caller or the container.

use crate::error::{Error, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ffi::{CString, OsStr};
use std::path::{Path, PathBuf};

/// The subnet of an isolated RUN's network namespace.
pub const SUBNET: &str = "169.254.77.0/24";
/// The container's address in [`SUBNET`].
pub const GUEST_ADDR: &str = "169.254.77.100";
/// The gateway (the user-mode stack) in [`SUBNET`].
pub const GATEWAY_ADDR: &str = "169.254.77.2";
/// The user-mode stack's DNS forwarder in [`SUBNET`]: it forwards to the host's resolvers.
pub const DNS_ADDR: &str = "169.254.77.3";
/// The interface name inside the namespace.
pub const IFNAME: &str = "eth0";

/// The user-mode network stacks whittle can drive, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetTool {
    /// `slirp4netns` (libslirp): preferred. A stable command line since 1.0, an explicit
    /// `--ready-fd` handshake and `--disable-host-loopback`, a sandbox and seccomp filter of
    /// its own, and it is ready in a few milliseconds.
    Slirp4netns,
    /// `pasta` (passt): used when slirp4netns is missing. Faster for bulk transfers, but its
    /// options changed across versions, it needs more of them to keep the host's loopback out
    /// (`--no-map-gw` and no port forwarding in either direction), and it starts slower.
    Pasta,
}

impl NetTool {
    /// The program name looked up on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            NetTool::Slirp4netns => "slirp4netns",
            NetTool::Pasta => "pasta",
        }
    }
}

/// A user-mode network stack found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetHelper {
    pub tool: NetTool,
    pub path: PathBuf,
}

/// `PATH` when the environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl NetHelper {
    /// The preferred tool installed on `PATH` (slirp4netns, else pasta), if any.
    pub fn find() -> Option<NetHelper> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        Self::find_in(&path)
    }

    /// The preferred tool in the directories of `path` (a `PATH`-style list).
    pub fn find_in(path: &OsStr) -> Option<NetHelper> {
        [NetTool::Slirp4netns, NetTool::Pasta]
            .into_iter()
            .find_map(|t| Self::find_tool_in(t, path))
    }

    /// `tool` in the directories of `path`, if it is there.
    pub fn find_tool_in(tool: NetTool, path: &OsStr) -> Option<NetHelper> {
        std::env::split_paths(path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(tool.program()))
            .find(|p| is_executable(p))
            .map(|path| NetHelper { tool, path })
    }

    /// The command line: the ready pipe is fd 3, the namespace fd 4.
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![self.tool.program().into()];
        match self.tool {
            NetTool::Slirp4netns => a.extend(
                [
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    "--enable-sandbox",
                    "--enable-seccomp",
                    &format!("--cidr={SUBNET}"),
                    "--ready-fd=3",
                    "--netns-type=path",
                    "/proc/self/fd/4",
                    IFNAME,
                ]
                .map(String::from),
            ),
            NetTool::Pasta => {
                // As root pasta would switch to nobody, which may not enter the namespace.
                let ids = format!(
                    "{}:{}",
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw()
                );
                a.extend(
                    [
                        "--foreground",
                        "--quiet",
                        "--ipv4-only",
                        "--runas",
                        &ids,
                        "--config-net",
                        "--ns-ifname",
                        IFNAME,
                        "--address",
                        GUEST_ADDR,
                        "--netmask",
                        "24",
                        "--gateway",
                        GATEWAY_ADDR,
                        // The gateway is not the host's loopback...
                        "--no-map-gw",
                        "--dns-forward",
                        DNS_ADDR,
                        // ...and no port is forwarded either way (the default, `auto`, would
                        // bring the host's listening loopback ports into the namespace).
                        "--tcp-ports",
                        "none",
                        "--udp-ports",
                        "none",
                        "--tcp-ns",
                        "none",
                        "--udp-ns",
                        "none",
                        "--no-dhcp",
                        // Written once the namespace is configured: the ready signal.
                        "--pid",
                        "/proc/self/fd/3",
                        "--netns",
                        "/proc/self/fd/4",
                    ]
                    .map(String::from),
                );
            }
        }
        a
    }
}

/// The container's `/etc/resolv.conf`: the DNS forwarder, plus the host's `search`, `domain`
/// and `options` lines (as BuildKit keeps them).
pub(crate) fn resolv_conf(host: Option<&str>) -> String {
    let mut out = format!(
        "# whittle: the isolated network's DNS forwarder, which asks the host's resolvers\n\
         nameserver {DNS_ADDR}\n"
    );
    for line in host.unwrap_or_default().lines() {
        let l = line.trim();
        if ["search", "domain", "options"].iter().any(|k| {
            l.strip_prefix(k)
                .is_some_and(|r| r.starts_with([' ', '\t']))
        }) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The container's `/etc/hosts` (as BuildKit writes it): localhost, and the hostname when it is
/// a plain host name.
pub(crate) fn hosts(hostname: &str) -> String {
    let plain = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let name = if plain && hostname != "localhost" {
        format!(" {hostname}")
    } else {
        String::new()
    };
    format!("127.0.0.1\tlocalhost{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The files an isolated container sees over the image's own, read-only and never in a layer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct NetFiles {
    pub resolv_conf: String,
    pub hosts: String,
}

impl NetFiles {
    pub(crate) fn new(hostname: &str) -> Self {
        let host = std::fs::read_to_string("/etc/resolv.conf").ok();
        NetFiles {
            resolv_conf: resolv_conf(host.as_deref()),
            hosts: hosts(hostname),
        }
    }
}

/// A running network helper; killed (with anything it forked) when dropped, and reaped.
///
/// The kill is immediate; the reap waits on the runtime's cleanup thread (see
/// [`crate::wait_for_cleanup`]): a killed helper takes ~25 ms to finish exiting, because
/// closing its tap device unregisters a network device, which waits for RCU grace periods.
/// Waiting for that in `run` would cost every RUN those 25 ms; a killed process runs no more
/// code of its own, so nothing is lost by letting the kernel finish in the background.
pub(crate) struct NetProc {
    pid: i32,
    pidfd: Option<OwnedFd>,
    /// Its standard output and error.
    log: OwnedFd,
    pub(crate) helper: PathBuf,
}

impl NetProc {
    /// Starts `helper` for the network namespace `netns`; it writes to `ready` once the
    /// namespace is configured.
    pub(crate) fn start(
        helper: &NetHelper,
        netns: BorrowedFd<'_>,
        ready: BorrowedFd<'_>,
    ) -> Result<NetProc> {
        let what = || format!("start {}", helper.path.display());
        let sys = |e: std::io::Error| Error::sys(what(), e);
        let log = rustix::fs::memfd_create("whittle-network-log", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| sys(e.into()))?;
        let null = std::fs::File::open("/dev/null").map_err(sys)?;
        let high = |fd: BorrowedFd<'_>| crate::sys::high_fd(fd).map_err(sys);
        let fds = [
            high(null.as_fd())?,
            high(log.as_fd())?,
            high(log.as_fd())?,
            high(ready)?,
            high(netns)?,
        ];
        let args = helper
            .args()
            .into_iter()
            .map(CString::new)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::InvalidSpec("NUL in a network helper argument".into()))?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let plan = crate::sys::ExecPlan::command(&helper.path, &args, &borrowed)
            .map_err(sys)?
            .new_process_group();
        let (pid, pidfd) = crate::sys::spawn_helper(&plan, 0).map_err(sys)?;
        Ok(NetProc {
            pid,
            pidfd: Some(pidfd),
            log,
            helper: helper.path.clone(),
        })
    }

    /// What the helper printed (the first 4 KiB, without pasta's syslog complaints), on one line.
    pub(crate) fn messages(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = rustix::io::pread(&self.log, &mut buf, 0).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("to syslog"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for NetProc {
    fn drop(&mut self) {
        // The group first: the pid (and so the group id) stays ours until it is reaped, so
        // this cannot reach anyone else's processes.
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        if let Some(pidfd) = self.pidfd.take() {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
            crate::run::reap_later(pidfd);
        }
    }
}

/// The init helper's side: waits until the network helper says the namespace is configured.
pub(crate) fn wait_ready(fd: OwnedFd) -> std::result::Result<(), String> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err("the network was not ready after 30 s".into());
        }
        let t = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&t)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(format!("wait for the network: {e}")),
        }
    }
    let mut buf = [0u8; 64];
    loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => return Err("exited before the network was ready".into()),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("wait for the network: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_points_at_the_forwarder_and_keeps_search_and_options() {
        let host = "# comment\nnameserver 127.0.0.53\nsearch corp.example\noptions edns0 trust-ad\nnameserver 10.0.0.1\nsearchx no\n";
        assert_eq!(
            resolv_conf(Some(host)),
            "# whittle: the isolated network's DNS forwarder, which asks the host's resolvers\n\
             nameserver 169.254.77.3\nsearch corp.example\noptions edns0 trust-ad\n"
        );
        assert!(resolv_conf(None).ends_with("nameserver 169.254.77.3\n"));
    }

    #[test]
    fn hosts_names_localhost_and_a_plain_hostname_only() {
        assert_eq!(
            hosts("whittle"),
            "127.0.0.1\tlocalhost whittle\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        assert!(hosts("evil\n1.2.3.4 registry").starts_with("127.0.0.1\tlocalhost\n"));
        assert!(hosts("").starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn slirp4netns_is_preferred_and_path_order_does_not_matter() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let exe = |d: &Path, name: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = d.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let pasta = exe(a.path(), "pasta");
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(
            NetHelper::find_in(&path),
            Some(NetHelper {
                tool: NetTool::Pasta,
                path: pasta
            })
        );
        let slirp = exe(b.path(), "slirp4netns");
        assert_eq!(NetHelper::find_in(&path).unwrap().path, slirp);
        // Not executable, relative dirs and empty lists find nothing.
        let c = tempfile::tempdir().unwrap();
        std::fs::write(c.path().join("slirp4netns"), "").unwrap();
        assert_eq!(NetHelper::find_in(c.path().as_os_str()), None);
        assert_eq!(NetHelper::find_in(OsStr::new("relative:")), None);
        assert_eq!(NetHelper::find_in(OsStr::new("")), None);
    }

    #[test]
    fn command_lines_keep_the_host_loopback_out() {
        let s = NetHelper {
            tool: NetTool::Slirp4netns,
            path: "/usr/bin/slirp4netns".into(),
        }
        .args();
        assert!(s.contains(&"--disable-host-loopback".to_string()));
        assert!(s.contains(&"--cidr=169.254.77.0/24".to_string()));
        assert!(!s.iter().any(|a| a.contains("ipv6")));
        let p = NetHelper {
            tool: NetTool::Pasta,
            path: "/usr/bin/pasta".into(),
        }
        .args()
        .join(" ");
        for want in [
            "--no-map-gw",
            "--ipv4-only",
            "--tcp-ports none",
            "--udp-ports none",
            "--tcp-ns none",
            "--udp-ns none",
            "--address 169.254.77.100",
        ] {
            assert!(p.contains(want), "{want} missing in {p}");
        }
    }
}
