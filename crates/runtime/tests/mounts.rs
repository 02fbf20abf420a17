//! `RUN --mount` kinds and the overlay rootfs, from inside real containers.
#![allow(clippy::unwrap_used)] // helpers are test code: unwrap is how a test fails

mod common;
use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use whittle_runtime::*;

fn mount(target: &str, kind: MountKind) -> Mount {
    Mount {
        target: target.into(),
        kind,
    }
}

#[test]
fn bind_is_read_only_by_default_and_rw_writes_are_discarded() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let ctx = f.path("context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "from context\n").unwrap();
    std::fs::write(f.path("single"), "one file\n").unwrap();
    for engine in engines() {
        let rt = f.rt(&engine);
        let mut spec = sh(
            f.overlay("up-ro"),
            "cat /ctx/a.txt; cat /one; echo x > /ctx/new 2>/dev/null && echo WROTE; true",
        );
        spec.mounts = vec![
            mount(
                "/ctx",
                MountKind::Bind {
                    source: ctx.clone(),
                    rw: false,
                },
            ),
            mount(
                "/one",
                MountKind::Bind {
                    source: f.path("single"),
                    rw: false,
                },
            ),
        ];
        let o = run(&rt, &spec);
        assert_eq!(
            o.stdout, "from context\none file\n",
            "{engine:?}: {}",
            o.stderr
        );

        let mut spec = sh(f.overlay("up-rw"), "echo changed > /ctx/a.txt; echo new > /ctx/new; cat /ctx/a.txt /ctx/new; echo 2 >> /one; cat /one");
        spec.mounts = vec![
            mount(
                "/ctx",
                MountKind::Bind {
                    source: ctx.clone(),
                    rw: true,
                },
            ),
            mount(
                "/one",
                MountKind::Bind {
                    source: f.path("single"),
                    rw: true,
                },
            ),
        ];
        let o = run(&rt, &spec);
        assert_eq!(
            o.stdout, "changed\nnew\none file\n2\n",
            "{engine:?}: {}",
            o.stderr
        );
        assert_eq!(
            std::fs::read_to_string(ctx.join("a.txt")).unwrap(),
            "from context\n",
            "{engine:?}"
        );
        assert!(!ctx.join("new").exists(), "{engine:?}: rw writes discarded");
        assert_eq!(
            std::fs::read_to_string(f.path("single")).unwrap(),
            "one file\n"
        );
        // The mount points made for the run are not left in the layer.
        assert!(
            !f.path("up-rw/ctx").exists(),
            "{engine:?}: stub /ctx left in the layer"
        );
        assert!(
            !f.path("up-rw/one").exists(),
            "{engine:?}: stub /one left in the layer"
        );
    }
}

#[test]
fn a_bind_source_that_is_a_symlink_is_refused_not_followed_on_the_host() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let link = f.path("link");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    for engine in engines() {
        for rw in [false, true] {
            let rt = f.rt(&engine);
            let mut spec = sh(f.overlay(&format!("up-link-{rw}")), "cat /m/hostname");
            spec.mounts = vec![mount(
                "/m",
                MountKind::Bind {
                    source: link.clone(),
                    rw,
                },
            )];
            match try_run(&rt, &spec) {
                Err(e) => assert!(e.to_string().contains("symbolic link"), "{engine:?}: {e}"),
                Ok(o) => panic!("{engine:?} rw={rw}: mounted through the link: {}", o.stdout),
            }
        }
    }
}

#[test]
fn cache_persists_with_owner_and_mode() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for (i, engine) in engines().into_iter().enumerate() {
        let rt = f.rt(&engine);
        let cache = f.path(&format!("cache{i}"));
        std::fs::create_dir_all(&cache).unwrap();
        let m = mount(
            "/var/cache/apt",
            MountKind::Cache {
                source: cache.clone(),
                uid: Some(1000),
                gid: Some(1000),
                mode: Some(0o750),
            },
        );
        let mut spec = sh(f.overlay("up"), "n=$(cat /var/cache/apt/count 2>/dev/null || echo 0); echo $((n+1)) > /var/cache/apt/count; cat /var/cache/apt/count; stat -c '%u %g %a' /var/cache/apt");
        spec.user = Some("builder".into());
        spec.mounts = vec![m];
        let o = run(&rt, &spec);
        assert_eq!(o.stdout, "1\n1000 1000 750\n", "{engine:?}: {}", o.stderr);
        let o = run(&rt, &spec);
        assert_eq!(
            o.stdout.lines().next(),
            Some("2"),
            "{engine:?}: cache persisted"
        );
        let meta = std::fs::metadata(&cache).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
            (1000, 1000, 0o750)
        );
    }
}

#[test]
fn tmpfs_with_size() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let mut spec = sh(
            f.overlay("up"),
            "grep ' /scratch ' /proc/mounts; echo hi > /scratch/f; cat /scratch/f",
        );
        spec.mounts = vec![mount(
            "/scratch",
            MountKind::Tmpfs {
                size: Some(8 << 20),
            },
        )];
        let o = run(&rt, &spec);
        assert!(
            o.stdout.starts_with("tmpfs /scratch tmpfs"),
            "{engine:?}: {}{}",
            o.stdout,
            o.stderr
        );
        assert!(o.stdout.contains("size=8192k"), "{engine:?}: {}", o.stdout);
        assert!(o.stdout.ends_with("hi\n"));
        assert!(
            !f.path("up/scratch/f").exists(),
            "{engine:?}: tmpfs content leaked into the layer"
        );
    }
}

#[test]
fn secret_file_has_mode_and_owner_and_never_reaches_the_layer() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    for engine in engines() {
        let rt = f.rt(&engine);
        let upper = format!("up-secret-{}", matches!(engine, Engine::BuiltIn));
        let mut spec = sh(f.overlay(&upper), "cat /run/secrets/token; echo; stat -c '%u %g %a' /run/secrets/token; echo x > /run/secrets/token 2>/dev/null && echo WROTE; true");
        spec.user = Some("builder".into());
        spec.mounts = vec![mount(
            "/run/secrets/token",
            MountKind::Secret {
                data: b"s3cr3t".to_vec(),
                mode: 0o400,
                uid: 1000,
                gid: 0,
            },
        )];
        let o = run(&rt, &spec);
        assert_eq!(o.stdout, "s3cr3t\n1000 0 400\n", "{engine:?}: {}", o.stderr);
        // Nothing of the secret (not even an empty mount point) is left in the new layer.
        let leftovers: Vec<PathBuf> = walk(&f.path(&upper));
        assert!(leftovers.is_empty(), "{engine:?}: layer has {leftovers:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn ssh_agent_socket_is_reachable() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let sock = f.path("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    for engine in engines() {
        let rt = f.rt(&engine);
        let mut spec = sh(
            f.overlay("up"),
            "test -S /run/buildkit/ssh_agent.0 && stat -c %i /run/buildkit/ssh_agent.0",
        );
        spec.mounts = vec![mount(
            "/run/buildkit/ssh_agent.0",
            MountKind::Ssh {
                socket: sock.clone(),
            },
        )];
        let o = run(&rt, &spec);
        // The very socket of the host (same inode), not a copy.
        let ino = std::fs::metadata(&sock).unwrap().ino();
        assert_eq!(o.stdout.trim(), ino.to_string(), "{engine:?}: {}", o.stderr);
    }
    drop(listener);
}

#[test]
fn deleting_a_lower_file_makes_a_whiteout_in_the_upper_dir() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    std::fs::write(f.path("root/etc/deleteme"), "x").unwrap();
    for (i, engine) in engines().into_iter().enumerate() {
        let rt = f.rt(&engine);
        let upper = format!("up{i}");
        let o = run(
            &rt,
            &sh(
                f.overlay(&upper),
                "rm /etc/deleteme && echo added > /etc/added && mkdir -p /opt/new",
            ),
        );
        assert!(o.status.success(), "{engine:?}: {}", o.stderr);
        let wh = std::fs::symlink_metadata(f.path(&format!("{upper}/etc/deleteme"))).unwrap();
        assert!(
            wh.file_type().is_char_device(),
            "{engine:?}: whiteout is a char device"
        );
        assert_eq!(wh.rdev(), 0, "{engine:?}: whiteout is 0:0");
        assert_eq!(
            std::fs::read_to_string(f.path(&format!("{upper}/etc/added"))).unwrap(),
            "added\n"
        );
        assert!(f.path(&format!("{upper}/opt/new")).is_dir());
        assert!(
            f.path("root/etc/deleteme").exists(),
            "{engine:?}: lower untouched"
        );
        // The runtime's own mount points (/proc, /dev, /sys existed? no: busybox root lacks
        // them) are tidied from the layer.
        for stub in ["proc", "dev", "sys"] {
            assert!(
                !f.path(&format!("{upper}/{stub}")).exists(),
                "{engine:?}: stub /{stub} left in layer"
            );
        }
        // No work dir is left next to the upper dir (once the background cleanup is done).
        whittle_runtime::wait_for_cleanup();
        let junk: Vec<_> = std::fs::read_dir(f.tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".work-"))
            .collect();
        assert!(junk.is_empty(), "{engine:?}: work dirs left: {junk:?}");
    }
}

fn hundred_layers(legacy: bool) {
    let f = Fixture::new();
    // Long paths on purpose: 100 of them would not fit a 4096-byte option string.
    let base = f.path("snapshots-with-a-rather-long-directory-name-to-stress-the-option-page");
    let mut lower = Vec::new();
    for n in (1..100).rev() {
        let dir = base.join(format!("{n:03}-{}", "f".repeat(40)));
        std::fs::create_dir_all(dir.join("layers")).unwrap();
        std::fs::write(dir.join(format!("layers/{n}")), "").unwrap();
        std::fs::write(dir.join("top"), format!("{n}\n")).unwrap();
        lower.push(dir);
    }
    lower.push(f.path("root"));
    assert_eq!(lower.len(), 100);
    let total: usize = lower.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(
        total > 4096,
        "the test must exceed the option page ({total} bytes)"
    );
    let rt = f.rt(&Engine::BuiltIn).legacy_overlay(legacy);
    let spec = sh(
        Rootfs::Overlay {
            lower,
            upper: f.path("up"),
        },
        "ls /layers | wc -l; cat /top",
    );
    match try_run(&rt, &spec) {
        Ok(o) => {
            assert!(o.status.success(), "{}", o.stderr);
            assert_eq!(
                o.stdout, "99\n99\n",
                "every layer visible, top-most first wins"
            );
        }
        Err(e) => panic!("legacy={legacy}: {e}"),
    }
}

#[test]
fn hundred_lower_layers_mount_with_lowerdir_plus() {
    if !privileged() {
        return;
    }
    hundred_layers(false);
}

#[test]
fn hundred_lower_layers_mount_with_the_legacy_option_string() {
    if !privileged() {
        return;
    }
    hundred_layers(true);
}

#[test]
fn readonly_dir_rootfs() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let rt = f.rt(&Engine::BuiltIn);
    let o = run(
        &rt,
        &sh(
            Rootfs::Dir {
                path: f.path("root"),
                readonly: true,
            },
            "touch /etc/x 2>/dev/null && echo WROTE; echo done",
        ),
    );
    assert_eq!(o.stdout, "done\n", "{}", o.stderr);
    assert!(!f.path("root/etc/x").exists());
}
