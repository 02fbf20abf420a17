//! The network of RUN steps and `whittle run`, end to end: the default is an isolated namespace
//! (slirp4netns or pasta) that cannot reach the host's loopback, `none` has only loopback,
//! `host` is behind the `network.host` entitlement, the network helper never outlives a build,
//! and without a helper whittle falls back to the host's network with one warning.
//!
//! The tests of this file run one at a time, in a process that is a child subreaper: a network
//! helper that outlived its `whittle` would be adopted here instead of vanishing under init.
#![allow(clippy::unwrap_used)]

mod common;
use common::{env, image_file, root_or_skip, Env};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    g
}

fn whittle_bin() -> &'static str {
    env!("CARGO_BIN_EXE_whittle")
}

/// `whittle --root ROOT ARGS...` with `PATH` set to `path` when given.
fn whittle_cmd(root: &Path, args: &[&str], path: Option<&Path>) -> Command {
    let mut c = Command::new(whittle_bin());
    c.env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(root)
        .args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Builds `dockerfile` in `e`'s context with `args` (plus the context), tagged `tag`.
fn build(e: &Env, dockerfile: &str, tag: &str, args: &[&str], path: Option<&Path>) -> Output {
    std::fs::write(e.ctx.join("Dockerfile"), dockerfile).unwrap();
    let mut all = vec!["build", "--progress=plain", "-t", tag];
    all.extend_from_slice(args);
    let ctx = e.ctx.to_string_lossy().into_owned();
    all.push(&ctx);
    whittle_cmd(&e.root, &all, path).output().unwrap()
}

fn file(e: &Env, tag: &str, path: &str) -> String {
    String::from_utf8(image_file(&e.root, tag, path).unwrap_or_else(|| panic!("{tag}: no {path}")))
        .unwrap()
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

/// The interfaces the host has (what a RUN on the host network sees).
fn host_ifaces() -> usize {
    std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count()
        - 2
}

const IFACES: &str = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";

fn tool_installed() -> bool {
    let ok = whittle_runtime::NetHelper::find().is_some();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs slirp4netns or pasta: scripts/deps.sh installs them"
        );
        eprintln!("skipping: neither slirp4netns nor pasta is installed");
    }
    ok
}

#[test]
fn default_run_cannot_reach_the_host_loopback() {
    if !root_or_skip("RUN") || !tool_installed() {
        return;
    }
    let _g = serial();
    let e = env();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let df = format!(
        "FROM test/busybox:1\n\
         RUN ip -4 -o addr show > /addrs; cat /etc/resolv.conf > /resolv; \
         for a in 127.0.0.1 169.254.77.2 169.254.77.3; do \
           timeout 3 nc $a {port} </dev/null && echo connected to $a; done; {IFACES} > /ifaces\n"
    );
    let o = build(&e, &df, "net:default", &[], None);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(!was_connected(&l), "a RUN reached the host's loopback");
    assert!(
        file(&e, "net:default", "addrs").contains("eth0    inet 169.254.77.100/24"),
        "{}",
        file(&e, "net:default", "addrs")
    );
    assert_eq!(file(&e, "net:default", "ifaces"), "lo\neth0\n");
    assert!(file(&e, "net:default", "resolv").contains("nameserver 169.254.77.3\n"));
    // What covered the image's files for the run is not in the layer.
    assert!(image_file(&e.root, "net:default", "etc/resolv.conf").is_none());
    assert!(image_file(&e.root, "net:default", "etc/hosts").is_none());

    // The check sees a connection when there is one: `--network host` reaches it.
    let df = format!("FROM test/busybox:1\nRUN timeout 3 nc 127.0.0.1 {port} </dev/null; true\n");
    let o = build(&e, &df, "net:host", &["--network", "host"], None);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(
        was_connected(&l),
        "--network host reaches the host's loopback"
    );
}

#[test]
fn network_none_has_only_loopback() {
    if !root_or_skip("RUN") {
        return;
    }
    let _g = serial();
    let e = env();
    let df = format!("FROM test/busybox:1\nRUN {IFACES} > /ifaces\n");
    let o = build(&e, &df, "net:none", &["--network", "none"], None);
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(file(&e, "net:none", "ifaces"), "lo\n");
    // RUN --network=none in the Dockerfile, under the default network.
    let df = format!("FROM test/busybox:1\nRUN --network=none {IFACES} > /ifaces2\n");
    let o = build(&e, &df, "net:none2", &[], None);
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(file(&e, "net:none2", "ifaces2"), "lo\n");
}

#[test]
fn host_network_needs_the_entitlement() {
    if !root_or_skip("RUN") {
        return;
    }
    let _g = serial();
    let e = env();
    let df =
        format!("FROM test/busybox:1\nRUN echo hi\nRUN --network=host {IFACES} | wc -l > /n\n");
    let o = build(&e, &df, "ent:1", &[], None);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:3: network.host is not allowed"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow network.host"), "{stderr}");
    assert!(stderr.contains("3 | RUN --network=host"), "{stderr}");
    // Refused before anything ran.
    assert!(!stderr.contains("echo hi"), "{stderr}");

    for args in [
        &["--allow", "network.host"][..],
        &["--network", "host"][..],
        &["--allow=network.host", "--network", "none"][..],
    ] {
        let o = build(&e, &df, "ent:2", &[&["--no-cache"], args].concat(), None);
        assert!(o.status.success(), "{args:?}: {:?}", out(&o));
        assert_eq!(
            file(&e, "ent:2", "n").trim(),
            host_ifaces().to_string(),
            "{args:?}"
        );
    }

    // A stage the target does not need asks for nothing.
    let df2 = "FROM test/busybox:1 AS other\nRUN --network=host true\n\
               FROM test/busybox:1\nRUN true\n";
    let o = build(&e, df2, "ent:3", &[], None);
    assert!(o.status.success(), "{:?}", out(&o));

    // --security=insecure: BuildKit's entitlement first, then a plain "not supported".
    let df3 = "FROM test/busybox:1\nRUN --security=insecure true\n";
    let o = build(&e, df3, "ent:4", &[], None);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2: security.insecure is not allowed"),
        "{stderr}"
    );
    let o = build(&e, df3, "ent:4", &["--allow", "security.insecure"], None);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RUN --security=insecure is not supported by whittle yet"),
        "{stderr}"
    );

    // Unknown entitlements are refused as buildx refuses them.
    let o = build(&e, df2, "ent:5", &["--allow", "network.hots"], None);
    let (_, stderr) = out(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("invalid entitlement: network.hots"),
        "{stderr}"
    );
}

#[test]
fn outbound_dns_and_http_from_a_run() {
    if !root_or_skip("RUN") || !tool_installed() {
        return;
    }
    let _g = serial();
    let host_ok = std::net::ToSocketAddrs::to_socket_addrs(&("deb.debian.org", 80))
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
        .is_some();
    if !host_ok {
        eprintln!("skipping: this host cannot reach deb.debian.org:80");
        return;
    }
    let e = env();
    let df = "FROM test/busybox:1\n\
              RUN wget -q -O - http://deb.debian.org/debian/dists/stable/Release \
                  | grep '^Origin:' > /origin\n";
    let o = build(&e, df, "net:out", &[], None);
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(file(&e, "net:out", "origin"), "Origin: Debian\n");
}

/// Live network helpers that are children of `parent` (or adopted by this subreaper).
fn helpers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
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
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let alive = fields.first().is_some_and(|s| *s != "Z");
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let helper = ["slirp4netns", "pasta", "passt"]
            .iter()
            .any(|n| comm.starts_with(n));
        if ppid == parent && helper && alive {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_network_helper_does_not_outlive_the_build() {
    if !root_or_skip("RUN") || !tool_installed() {
        return;
    }
    let _g = serial();
    let e = env();
    for (df, ok) in [
        ("FROM test/busybox:1\nRUN sleep 1.5\n", true),
        ("FROM test/busybox:1\nRUN sleep 1.5; exit 3\n", false),
    ] {
        std::fs::write(e.ctx.join("Dockerfile"), df).unwrap();
        let mut child = whittle_cmd(
            &e.root,
            &["build", "--no-cache", "-q", &e.ctx.to_string_lossy()],
            None,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // While the RUN runs, its helper is a child of whittle.
        let start = Instant::now();
        let mut seen = false;
        while start.elapsed() < Duration::from_secs(20) {
            if !helpers_of(child.id()).is_empty() {
                seen = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().unwrap();
        assert_eq!(status.success(), ok, "{df}");
        assert!(seen, "{df}: the network helper ran during the RUN");
        // Anything left behind would have been adopted by this process.
        std::thread::sleep(Duration::from_millis(100));
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
        assert_eq!(helpers_of(std::process::id()), Vec::<u32>::new(), "{df}");
    }

    // whittle killed with SIGKILL in the middle of a RUN: the helper dies with it (its
    // parent-death signal), it is not left running under init.
    std::fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nRUN sleep 30\n",
    )
    .unwrap();
    let mut child = whittle_cmd(
        &e.root,
        &["build", "--no-cache", "-q", &e.ctx.to_string_lossy()],
        None,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while helpers_of(child.id()).is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!helpers_of(child.id()).is_empty(), "the RUN started");
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    loop {
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
        let left = helpers_of(std::process::id());
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "helpers left after whittle was killed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_helper_falls_back_to_the_host_network_with_one_warning() {
    if !root_or_skip("RUN") {
        return;
    }
    let _g = serial();
    let e = env();
    let empty = tempfile::tempdir().unwrap();
    let df = format!("FROM test/busybox:1\nRUN {IFACES} | wc -l > /n\nRUN echo two > /two\n");
    let o = build(&e, &df, "fb:1", &[], Some(empty.path()));
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stderr
            .matches("warning: RUN steps use the host's network")
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install slirp4netns"), "{stderr}");
    assert_eq!(file(&e, "fb:1", "n").trim(), host_ifaces().to_string());
    // No warning when no RUN gets the default network.
    for args in [&["--network", "none"][..], &["-q"][..]] {
        let df = "FROM test/busybox:1\nRUN --network=none true\n";
        let o = build(
            &e,
            df,
            "fb:2",
            &[&["--no-cache"], args].concat(),
            Some(empty.path()),
        );
        let (_, stderr) = out(&o);
        assert!(o.status.success(), "{stderr}");
        assert!(!stderr.contains("warning"), "{args:?}: {stderr}");
    }
    // `whittle run` too.
    let o = whittle_cmd(
        &e.root,
        &["run", "--rm", "test/busybox:1", "sh", "-c", IFACES],
        Some(empty.path()),
    )
    .output()
    .unwrap();
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), host_ifaces());
    assert!(
        stderr.contains("warning: the container uses the host's network"),
        "{stderr}"
    );
}

#[test]
fn whittle_run_defaults_to_the_isolated_network() {
    if !root_or_skip("RUN") || !tool_installed() {
        return;
    }
    let _g = serial();
    let e = env();
    for (args, want) in [
        (&[][..], "lo\neth0\n"),
        (&["--network", "default"][..], "lo\neth0\n"),
        (&["--network", "none"][..], "lo\n"),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["test/busybox:1", "sh", "-c", IFACES]);
        let o = whittle_cmd(&e.root, &all, None).output().unwrap();
        let (stdout, stderr) = out(&o);
        assert!(o.status.success(), "{args:?}: {stderr}");
        assert_eq!(stdout, want, "{args:?}");
        assert!(!stderr.contains("warning"), "{stderr}");
    }
}
