//! The isolated network (`Network::Isolated`): its own namespace with outbound access through
//! slirp4netns or pasta, the host's loopback out of reach, name files covered for the run only,
//! and a network helper that never outlives the run. Every case runs under the built-in runtime
//! and runc, with each installed tool.
//!
//! The tests of this file run one at a time (they count this process's children), in a process
//! of their own that is a child subreaper, so a helper that escaped its run would show up here
//! as our child instead of disappearing under init.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use whittle_runtime::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    // The previous test's helpers are killed but reaped on the cleanup thread: wait for them,
    // so that no test sees another's helper still exiting.
    whittle_runtime::wait_for_cleanup();
    g
}

/// The user-mode network stacks installed here (CI installs both through scripts/deps.sh).
fn tools() -> Vec<NetHelper> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found: Vec<NetHelper> = [NetTool::Slirp4netns, NetTool::Pasta]
        .into_iter()
        .filter_map(|t| NetHelper::find_tool_in(t, &path))
        .collect();
    if found.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs slirp4netns and pasta: scripts/deps.sh installs them"
        );
        eprintln!("skipping: neither slirp4netns nor pasta is installed");
    }
    found
}

/// This process's children (and adopted orphans) that are network helpers or their leftovers:
/// `(pid, "comm state")`. Orphans a killed helper leaves (what it forked, killed with it) are
/// adopted by this subreaper as zombies: reaped first, so only live processes remain.
fn helper_children(extra: &[&str]) -> Vec<(u32, String)> {
    // A group member killed a moment ago may still be on its way to becoming our zombie.
    for _ in 0..50 {
        reap_adopted();
        let found = scan_children(extra);
        if found.iter().all(|(_, c)| !c.ends_with(" Z")) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    scan_children(extra)
}

fn scan_children(extra: &[&str]) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let state = fields.first().copied().unwrap_or("?");
        let ours = ["slirp4netns", "pasta", "passt"]
            .iter()
            .chain(extra)
            .any(|n| comm.starts_with(n));
        if ppid == me && ours {
            out.push((pid, format!("{comm} {state}")));
        }
    }
    out
}

fn isolated(rootfs: Rootfs, script: &str) -> ContainerSpec {
    let mut spec = sh(rootfs, script);
    spec.network = Network::Isolated;
    spec
}

/// True if a connection to `l` was made (a completed handshake waits in the backlog).
fn was_connected(l: &TcpListener) -> bool {
    l.set_nonblocking(true).unwrap();
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn own_interface_name_files_and_no_host_loopback() {
    if !privileged() {
        return;
    }
    let _g = serial();
    let f = Fixture::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // Every way a RUN could try to reach the host's loopback: directly, and through the
    // gateway (which slirp4netns and pasta map to the host's loopback unless told not to).
    let script = format!(
        "ip -4 -o addr show; ip -o link show lo; cat /etc/resolv.conf /etc/hosts; \
         for a in 127.0.0.1 169.254.77.2 169.254.77.3; do \
           timeout 3 nc $a {port} </dev/null && echo connected-$a; done; true"
    );
    for tool in tools() {
        for engine in engines() {
            let what = format!("{engine:?} {:?}", tool.tool);
            let rt = f.rt(&engine).with_network_helper(Some(tool.clone()));
            let upper = format!("upper-{}", what.replace([' ', '"', '(', ')'], "_"));
            let o = run(&rt, &isolated(f.overlay(&upper), &script));
            assert!(o.status.success(), "{what}: {}", o.stderr);
            assert!(
                o.stdout.contains("eth0    inet 169.254.77.100/24"),
                "{what}: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains(",UP"),
                "{what}: loopback up: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains("nameserver 169.254.77.3\n"),
                "{what}: {}",
                o.stdout
            );
            assert!(
                o.stdout.contains("127.0.0.1\tlocalhost whittle\n"),
                "{what}: {}",
                o.stdout
            );
            assert!(
                !was_connected(&l),
                "{what}: reached the host's loopback: {}",
                o.stdout
            );
            // Only the namespace's own interfaces.
            let ifaces = o
                .stdout
                .lines()
                .filter(|l| l.contains(" inet "))
                .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
                .collect::<Vec<_>>();
            assert_eq!(ifaces, ["lo", "eth0"], "{what}");
            // The covered files were mount points only: nothing of them in the layer.
            let up = f.path(&upper);
            assert!(!up.join("etc/resolv.conf").exists(), "{what}");
            assert!(!up.join("etc/hosts").exists(), "{what}");
        }
    }
    // The same check does see a connection when there is one (the host network).
    let mut spec = sh(
        f.dir_rootfs(),
        &format!("timeout 3 nc 127.0.0.1 {port} </dev/null; true"),
    );
    spec.network = Network::Host;
    let o = run(&f.rt(&Engine::BuiltIn), &spec);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(
        was_connected(&l),
        "the host network reaches the host's loopback"
    );
}

#[test]
fn image_name_files_are_covered_not_changed() {
    if !privileged() {
        return;
    }
    let _g = serial();
    let f = Fixture::new();
    std::fs::write(f.path("root/etc/resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    std::fs::write(f.path("root/etc/hosts"), "192.0.2.1 image-host\n").unwrap();
    for tool in tools().into_iter().take(1) {
        let rt = f.rt(&Engine::BuiltIn).with_network_helper(Some(tool));
        let o = run(
            &rt,
            &isolated(
                f.overlay("upper"),
                "cat /etc/resolv.conf; echo x >> /etc/resolv.conf && echo WROTE; true",
            ),
        );
        assert!(o.status.success(), "{}", o.stderr);
        assert!(o.stdout.contains("nameserver 169.254.77.3"), "{}", o.stdout);
        assert!(!o.stdout.contains("WROTE"), "read-only: {}", o.stdout);
        assert!(!f.path("upper/etc/resolv.conf").exists());
        assert_eq!(
            std::fs::read_to_string(f.path("root/etc/hosts")).unwrap(),
            "192.0.2.1 image-host\n"
        );
    }
}

#[test]
fn no_descriptor_of_the_caller_or_the_helper_reaches_the_container() {
    if !privileged() {
        return;
    }
    let _g = serial();
    let f = Fixture::new();
    for tool in tools() {
        for engine in engines() {
            let rt = f.rt(&engine).with_network_helper(Some(tool.clone()));
            let o = run(&rt, &isolated(f.dir_rootfs(), "cd /proc/self/fd && echo *"));
            assert!(o.status.success(), "{}", o.stderr);
            // 0-2, and the directory `echo *` is reading (3).
            assert_eq!(o.stdout.trim(), "0 1 2 3", "{engine:?} {:?}", tool.tool);
        }
    }
}

#[test]
fn outbound_dns_and_http() {
    if !privileged() {
        return;
    }
    let _g = serial();
    // This test needs the internet: it skips when the host itself cannot reach the mirror.
    let host_ok = std::net::ToSocketAddrs::to_socket_addrs(&("deb.debian.org", 80))
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
        .is_some();
    if !host_ok {
        eprintln!("skipping: this host cannot reach deb.debian.org:80");
        return;
    }
    let f = Fixture::new();
    for tool in tools() {
        for engine in engines() {
            let rt = f.rt(&engine).with_network_helper(Some(tool.clone()));
            let o = run(
                &rt,
                &isolated(
                    f.dir_rootfs(),
                    "nslookup deb.debian.org && \
                     wget -q -O - http://deb.debian.org/debian/dists/stable/Release | grep '^Origin:'",
                ),
            );
            assert!(
                o.status.success(),
                "{engine:?} {:?}: {}{}",
                tool.tool,
                o.stdout,
                o.stderr
            );
            assert!(o.stdout.contains("169.254.77.3"), "{}", o.stdout);
            assert!(o.stdout.contains("Origin: Debian"), "{}", o.stdout);
        }
    }
}

#[test]
fn without_a_network_helper_isolated_is_refused() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let rt = f.rt(&Engine::BuiltIn).with_network_helper(None);
    match try_run(&rt, &isolated(f.dir_rootfs(), "true")) {
        Err(Error::NoNetworkHelper) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("ran without a network helper"),
    }
    assert!(Error::NoNetworkHelper.to_string().contains("slirp4netns"));
}

/// A fake network helper: a shell script.
fn fake_helper(dir: &Path, body: &str) -> NetHelper {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("slirp4netns");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    NetHelper {
        tool: NetTool::Slirp4netns,
        path: p,
    }
}

#[test]
fn the_helper_never_outlives_the_run() {
    if !privileged() {
        return;
    }
    let _g = serial();
    let f = Fixture::new();
    assert_eq!(helper_children(&[]), vec![], "leftovers before");
    for tool in tools() {
        for engine in engines() {
            let what = format!("{engine:?} {:?}", tool.tool);
            let rt = f.rt(&engine).with_network_helper(Some(tool.clone()));
            // While the command runs the helper is there; after, it is gone.
            let mut seen = Vec::new();
            let mut fds = Vec::new();
            let mut sink = |_: Stream, _: &[u8]| {
                seen = scan_children(&[]);
                fds = seen.iter().flat_map(|(pid, _)| fd_links(*pid)).collect();
            };
            let st = rt
                .run(
                    &isolated(f.dir_rootfs(), "echo started; sleep 0.3"),
                    &mut sink,
                    &CancelToken::new().unwrap(),
                )
                .unwrap();
            assert!(st.success(), "{what}");
            assert_eq!(seen.len(), 1, "{what}: the helper runs during the run");
            // It has what it was given, nothing of ours: /dev/null in, its log out.
            let fd = |n: &str| fds.iter().find(|(k, _)| k == n).map(|(_, t)| t.as_str());
            assert_eq!(fd("0"), Some("/dev/null"), "{what}: {fds:?}");
            for n in ["1", "2"] {
                assert!(
                    fd(n).is_some_and(|t| t.starts_with("/memfd:whittle-network-log")),
                    "{what}: {fds:?}"
                );
            }
            let ours = f.tmp.path().to_string_lossy().into_owned();
            assert!(
                !fds.iter().any(|(_, t)| t.contains(&ours)),
                "{what}: {fds:?}"
            );
            killed_then_gone(&format!("{what}: after success"));

            let o = run(&rt, &isolated(f.dir_rootfs(), "exit 3"));
            assert_eq!(o.status, ExitStatus::Code(3), "{what}");
            killed_then_gone(&format!("{what}: after a failure"));

            let e = try_run(&rt, &isolated(f.dir_rootfs(), "true").with_args(&["/nope"]));
            assert!(
                matches!(e, Err(Error::ExecutableNotFound(_))),
                "{what}: {:?}",
                e.err()
            );
            killed_then_gone(&format!("{what}: after a setup error"));

            let cancel = CancelToken::new().unwrap();
            let c = cancel.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                c.cancel();
            });
            let r = rt.run(
                &isolated(f.dir_rootfs(), "sleep 5"),
                &mut |_: Stream, _: &[u8]| {},
                &cancel,
            );
            t.join().unwrap();
            assert!(matches!(r, Err(Error::Cancelled)), "{what}: {r:?}");
            killed_then_gone(&format!("{what}: after a cancel"));
        }
    }

    // A helper that fails says why; one that never gets ready is killed with what it forked
    // when the run is cancelled.
    let bin = tempfile::tempdir().unwrap();
    let failing = fake_helper(bin.path(), "echo 'cannot open the tap device' >&2; exit 1");
    for engine in engines() {
        let rt = f.rt(&engine).with_network_helper(Some(failing.clone()));
        match try_run(&rt, &isolated(f.dir_rootfs(), "true")) {
            Err(Error::Network { helper, message }) => {
                assert_eq!(helper, failing.path);
                assert!(
                    message.contains("exited before the network was ready")
                        && message.contains("cannot open the tap device"),
                    "{engine:?}: {message}"
                );
            }
            other => panic!("{engine:?}: {:?}", other.err()),
        }
        killed_then_gone(&format!("{engine:?}"));
    }
    // What it forks has a name of its own, to tell it from a container's `sleep`.
    std::os::unix::fs::symlink(which("sleep"), bin.path().join("whittle-fake-sleep")).unwrap();
    let hanging = fake_helper(
        bin.path(),
        &format!("{}/whittle-fake-sleep 60 & wait", bin.path().display()),
    );
    let rt = f
        .rt(&Engine::BuiltIn)
        .with_network_helper(Some(hanging.clone()));
    let cancel = CancelToken::new().unwrap();
    let c = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        c.cancel();
    });
    let start = Instant::now();
    let r = rt.run(
        &isolated(f.dir_rootfs(), "true"),
        &mut |_: Stream, _: &[u8]| {},
        &cancel,
    );
    t.join().unwrap();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // Give the killed `sleep` a moment to be reparented to us, if it escaped.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        helper_children(&["whittle-fake"]),
        vec![],
        "the helper's children"
    );
    reap_adopted();
}

/// When `run` returns, its network helper has been killed: it is gone, or exiting, or has the
/// SIGKILL pending. It is reaped once the runtime's cleanup is done.
fn killed_then_gone(what: &str) {
    for (pid, comm) in scan_children(&[]) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // gone meanwhile
        };
        let close = stat.rfind(')').unwrap();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        const PF_EXITING: u64 = 0x4;
        let exiting = fields[6].parse::<u64>().unwrap() & PF_EXITING != 0;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kill_pending = status.lines().any(|l| {
            (l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                && u64::from_str_radix(l[7..].trim(), 16).unwrap_or(0) & (1 << (9 - 1)) != 0
        });
        assert!(
            exiting || kill_pending || fields[0] == "Z" || fields[0] == "X",
            "{what}: {pid} {comm} still running after the run"
        );
    }
    whittle_runtime::wait_for_cleanup();
    // A killed helper can spend a while in the kernel tearing down its tap device (state D,
    // already exiting, as checked above); give that up to 5 s, a live leak stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = helper_children(&[]);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = helper_children(&[]);
    }
    assert_eq!(left, vec![], "{what}");
}

/// `(fd, target)` of every descriptor of `pid`.
fn fd_links(pid: u32) -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let t = std::fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                t.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not on PATH"))
}

/// Reaps exited children this subreaper adopted (none expected).
fn reap_adopted() {
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
}

trait WithArgs {
    fn with_args(self, args: &[&str]) -> Self;
}
impl WithArgs for ContainerSpec {
    fn with_args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }
}
