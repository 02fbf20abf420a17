//! Isolation and hardening, checked from inside real containers, under the built-in runtime and
//! under runc (the same `ContainerSpec` handed over as an OCI bundle).
#![allow(clippy::unwrap_used)] // helpers are test code: unwrap is how a test fails

mod common;
use common::*;
use whittle_runtime::*;

/// Docker's default capability set as /proc/self/status prints it.
const DOCKER_CAPS: &str = "00000000a80425fb";

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in:\n{status}"))
}

#[test]
fn pid_1_own_hostname_and_no_host_processes() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let mut spec = sh(
            f.dir_rootfs(),
            "echo $$; hostname; ls /proc | grep -c '^[0-9]'",
        );
        spec.hostname = "step-7".into();
        let o = run(&rt, &spec);
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0], "1", "{engine:?}: the command is pid 1");
        assert_eq!(lines[1], "step-7", "{engine:?}");
        // sh, ls and grep at most: none of the host's processes.
        let n: u32 = lines[2].parse().unwrap();
        assert!(n <= 3, "{engine:?}: {n} processes visible");
    }
}

#[test]
fn no_host_mounts_visible() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let allowed = ["/", "/proc", "/dev", "/sys"];
    for engine in engines() {
        let rt = f.rt(&engine);
        let o = run(&rt, &sh(f.dir_rootfs(), "cat /proc/self/mountinfo"));
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        for line in o.stdout.lines() {
            let mountpoint = line.split(' ').nth(4).unwrap();
            assert!(
                allowed
                    .iter()
                    .any(|a| mountpoint == *a
                        || mountpoint.starts_with(&format!("{a}/")) && *a != "/"),
                "{engine:?}: unexpected mount {mountpoint}"
            );
            assert!(
                !line.contains("cgroup"),
                "{engine:?}: host cgroup mount visible: {line}"
            );
        }
    }
}

#[test]
fn network_none_has_only_loopback_up_and_host_shares() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count()
        - 2;
    for engine in engines() {
        let rt = f.rt(&engine);
        let o = run(
            &rt,
            &sh(
                f.dir_rootfs(),
                "tail -n +3 /proc/net/dev | cut -d: -f1; ip link show lo",
            ),
        );
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        let ifaces: Vec<&str> = o
            .stdout
            .lines()
            .take_while(|l| !l.starts_with("1:"))
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, vec!["lo"], "{engine:?}");
        assert!(
            o.stdout.contains(",UP"),
            "{engine:?}: loopback is up: {}",
            o.stdout
        );

        let mut spec = sh(f.dir_rootfs(), "tail -n +3 /proc/net/dev | wc -l");
        spec.network = Network::Host;
        let o = run(&rt, &spec);
        assert_eq!(
            o.stdout.trim().parse::<usize>().unwrap(),
            host_ifaces,
            "{engine:?}: host network"
        );
    }
}

#[test]
fn capabilities_no_new_privs_and_seccomp() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let o = run(&rt, &sh(f.dir_rootfs(), "cat /proc/self/status"));
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        assert_eq!(status_field(&o.stdout, "CapBnd"), DOCKER_CAPS, "{engine:?}");
        assert_eq!(status_field(&o.stdout, "CapEff"), DOCKER_CAPS, "{engine:?}");
        assert_eq!(
            status_field(&o.stdout, "CapInh"),
            "0000000000000000",
            "{engine:?}"
        );
        assert_eq!(status_field(&o.stdout, "NoNewPrivs"), "1", "{engine:?}");
        assert_eq!(status_field(&o.stdout, "Seccomp"), "2", "{engine:?}");

        let mut spec = sh(f.dir_rootfs(), "cat /proc/self/status");
        spec.user = Some("builder".into());
        let o = run(&rt, &spec);
        assert_eq!(
            status_field(&o.stdout, "CapEff"),
            "0000000000000000",
            "{engine:?}: non-root"
        );
        assert_eq!(status_field(&o.stdout, "CapBnd"), DOCKER_CAPS, "{engine:?}");
    }
}

#[test]
fn blocked_syscalls_fail() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        for cmd in [
            "unshare -m true",
            "mount -t tmpfs none /tmp",
            "unshare -n true",
        ] {
            let o = run(&rt, &sh(f.dir_rootfs(), cmd));
            assert!(!o.status.success(), "{engine:?}: `{cmd}` must fail");
            assert!(
                o.stderr.contains("Operation not permitted")
                    || o.stderr.to_lowercase().contains("permission denied"),
                "{engine:?}: `{cmd}`: {}",
                o.stderr
            );
        }
        // Harmless syscalls still work, including clone for a pipeline and a subshell.
        let o = run(&rt, &sh(f.dir_rootfs(), "(echo a; echo b) | wc -l"));
        assert_eq!(o.stdout.trim(), "2", "{engine:?}: {}", o.stderr);
    }
}

#[test]
fn masked_and_readonly_proc_paths() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let o = run(
            &rt,
            &sh(
                f.dir_rootfs(),
                "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname && echo WROTE; touch /sys/x 2>/dev/null && echo WROTE; echo end",
            ),
        );
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0].trim(), "0", "{engine:?}: /proc/timer_list masked");
        assert_eq!(lines[1].trim(), "0", "{engine:?}: /sys/firmware masked");
        assert!(
            !o.stdout.contains("WROTE"),
            "{engine:?}: /proc/sys and /sys are read-only"
        );
    }
}

#[test]
fn user_names_resolve_to_uid_gid_and_groups() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        // `docker run` (primary gid among the groups) and a BuildKit RUN step (only what
        // /etc/group lists).
        for (docker, user, want) in [
            (
                true,
                "builder",
                "uid=1000(builder) gid=1000(builder) groups=10(wheel),1000(builder)",
            ),
            (
                true,
                "builder:wheel",
                "uid=1000(builder) gid=10(wheel) groups=10(wheel)",
            ),
            (true, "4000:4001", "uid=4000 gid=4001 groups=4001"),
            (
                true,
                "nobody",
                "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
            ),
            (
                false,
                "builder",
                "uid=1000(builder) gid=1000(builder) groups=10(wheel)",
            ),
            (false, "builder:wheel", "uid=1000(builder) gid=10(wheel)"),
            (false, "4000:4001", "uid=4000 gid=4001"),
            (false, "nobody", "uid=65534(nobody) gid=65534(nogroup)"),
        ] {
            let mut spec = sh(f.dir_rootfs(), "id; echo $HOME");
            spec.user = Some(user.into());
            spec.primary_gid_in_groups = docker;
            let o = run(&rt, &spec);
            assert!(o.status.success(), "{engine:?} {user}: {}", o.stderr);
            assert_eq!(o.stdout.lines().next().unwrap(), want, "{engine:?} {user}");
        }
        let mut spec = sh(f.dir_rootfs(), "id");
        spec.user = Some("ghost".into());
        let e = try_run(&rt, &spec).err().expect("unknown user must fail");
        assert!(matches!(e, Error::User { .. }), "{engine:?}: {e}");
        assert!(e.to_string().contains("ghost"), "{e}");
    }
}

#[test]
fn env_cwd_and_no_leaked_fds() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    // An fd the caller leaves open (not close-on-exec) must not reach the container.
    let leak = std::fs::File::open("/etc/hostname").unwrap();
    let leak_fd = rustix::io::fcntl_dupfd_cloexec(&leak, 50).unwrap();
    rustix::io::fcntl_setfd(&leak_fd, rustix::io::FdFlags::empty()).unwrap();
    for engine in engines() {
        let rt = f.rt(&engine);
        let mut spec = sh(
            f.dir_rootfs(),
            "pwd; env | sort; ls /proc/self/fd | tr '\\n' ' '",
        );
        spec.env = vec!["PATH=/bin".into(), "FOO=bar baz".into()];
        spec.cwd = "/work/sub dir".into();
        spec.user = Some("builder".into());
        let o = run(&rt, &spec);
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0], "/work/sub dir", "{engine:?}: working dir created");
        assert!(lines.contains(&"FOO=bar baz"), "{engine:?}: {lines:?}");
        assert!(
            lines.contains(&"HOME=/home/builder"),
            "{engine:?}: {lines:?}"
        );
        assert!(lines.contains(&"PATH=/bin"), "{engine:?}: {lines:?}");
        // 0 1 2 and the fd ls itself uses for /proc/self/fd.
        let fds: Vec<&str> = lines.last().unwrap().split_whitespace().collect();
        assert_eq!(fds, vec!["0", "1", "2", "3"], "{engine:?}: leaked fds");
    }
    drop(leak_fd);
}

#[test]
fn missing_executable_is_a_clear_error() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    std::fs::remove_file(f.path("root/bin/sh")).unwrap();
    for engine in engines() {
        let rt = f.rt(&engine);
        let e = try_run(&rt, &sh(f.dir_rootfs(), "true"))
            .err()
            .expect("must fail");
        assert_eq!(
            e.to_string(),
            "/bin/sh: not found in the image",
            "{engine:?}"
        );
        let spec = ContainerSpec::new(f.dir_rootfs(), vec!["nosuchtool".into()]);
        let e = try_run(&rt, &spec).err().expect("must fail");
        assert_eq!(
            e.to_string(),
            "nosuchtool: not found in the image",
            "{engine:?}"
        );
    }
}

#[test]
fn output_is_streamed_by_line_and_exit_status_returned() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let o = run(
            &rt,
            &sh(
                f.dir_rootfs(),
                "echo one; echo two >&2; printf 'no newline'; exit 7",
            ),
        );
        assert_eq!(o.status, ExitStatus::Code(7), "{engine:?}");
        assert_eq!(o.stdout, "one\nno newline\n", "{engine:?}");
        assert_eq!(o.stderr, "two\n", "{engine:?}");
        // pid 1 ignores signals from inside its namespace, so kill a child instead.
        let o = run(&rt, &sh(f.dir_rootfs(), "sleep 10 & kill -9 $!; wait $!"));
        assert_eq!(o.status, ExitStatus::Code(137), "{engine:?}");
    }
}

#[test]
fn tty_is_a_pty_of_the_containers_own_devpts() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let out = f.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let rt = f.rt(&Engine::BuiltIn);
    let mut spec = sh(
        f.dir_rootfs(),
        "tty > /out/tty; test -t 0 && test -t 1 && echo yes > /out/isatty; ls -l $(tty) | cut -c1-10,15-24 > /out/owner",
    );
    spec.tty = true;
    spec.user = Some("builder".into());
    spec.mounts = vec![Mount {
        target: "/out".into(),
        kind: MountKind::Cache {
            source: out.clone(),
            uid: None,
            gid: None,
            mode: Some(0o777),
        },
    }];
    let mut sink = |_: Stream, _: &[u8]| {};
    let st = rt
        .run(&spec, &mut sink, &CancelToken::new().unwrap())
        .unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("tty")).unwrap(),
        "/dev/pts/0\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("isatty")).unwrap(),
        "yes\n"
    );
    assert!(
        std::fs::read_to_string(out.join("owner"))
            .unwrap()
            .contains("builder"),
        "pty owned by the user"
    );
}

#[test]
fn parallel_runs_do_not_interfere() {
    if !privileged() {
        return;
    }
    let f = std::sync::Arc::new(Fixture::new());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                let rt = f.rt(&Engine::BuiltIn);
                for i in 0..3 {
                    let upper = format!("par-{t}-{i}");
                    let mut spec = sh(
                        f.overlay(&upper),
                        &format!("echo {t}-{i} > /mine; sleep 0.05; cat /mine; ls /"),
                    );
                    spec.hostname = format!("h{t}");
                    let o = run(&rt, &spec);
                    assert!(o.status.success(), "{}", o.stderr);
                    assert_eq!(o.stdout.lines().next(), Some(format!("{t}-{i}").as_str()));
                    assert_eq!(
                        std::fs::read_to_string(f.path(&format!("{upper}/mine"))).unwrap(),
                        format!("{t}-{i}\n")
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
