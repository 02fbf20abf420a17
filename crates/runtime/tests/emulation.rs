//! Foreign platforms: arm64 and arm/v7 busybox (scripts/base-images.sh, from Debian's .debs)
//! run under qemu-user-static through whittle's binfmt_misc handlers, with the default seccomp
//! profile and `no_new_privs`, under the built-in runtime and runc; without emulation the run
//! is refused before the container starts, naming the fix; and a host program in an image that
//! says it is arm64 is never run.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use whittle_oci::Platform;
use whittle_runtime::binfmt::{install, Missing, BINFMT_MISC};
use whittle_runtime::doctor::RealHost;
use whittle_runtime::*;

fn platform(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

/// Registers whittle's arm64 and arm handlers once per test process (idempotent: what works is
/// left alone). None, with the reason printed, when qemu-user-static is not installed outside CI.
fn emulation() -> Option<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        if !Path::new("/usr/bin/qemu-aarch64-static").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-user-static missing in CI (scripts/deps.sh installs it)"
            );
            eprintln!("skipping: qemu-user-static is not installed (scripts/deps.sh)");
            return false;
        }
        let steps = install::install(
            &RealHost,
            BINFMT_MISC,
            Some(&[platform("linux/arm64"), platform("linux/arm/v7")]),
        )
        .unwrap_or_else(|e| panic!("whittle binfmt --install: {e}"));
        assert_eq!(steps.len(), 2, "{steps:?}");
        true
    });
    ok.then_some(())
}

/// The root filesystem of base image `name` (its one layer unpacked into `dir`).
fn base_rootfs(name: &str, dir: &Path) {
    let cache = std::env::var("WHITTLE_IMAGE_CACHE")
        .unwrap_or_else(|_| "/var/cache/whittle-test/images".into());
    let archive = PathBuf::from(cache).join(format!("archives/{name}.tar"));
    if !archive.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/base-images.sh");
        let st = Command::new("bash").arg(script).arg(name).status().unwrap();
        assert!(st.success(), "scripts/base-images.sh {name} failed");
    }
    let manifest = Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("manifest.json")
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let layers = m[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg("tar -xOf \"$1\" \"$2\" | tar -x -C \"$3\"")
        .arg("sh")
        .arg(&archive)
        .arg(layers[0].as_str().unwrap())
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn arm64_and_arm_v7_busybox_run_emulated_under_seccomp_and_no_new_privs() {
    if !privileged() || emulation().is_none() {
        return;
    }
    for (image, plat, machine) in [
        ("busybox-linux-arm64", "linux/arm64", "aarch64"),
        ("busybox-linux-arm-v7", "linux/arm/v7", "armv7l"),
    ] {
        let t = tempfile::tempdir().unwrap();
        base_rootfs(image, &t.path().join("lower"));
        std::fs::create_dir_all(t.path().join("state")).unwrap();
        for engine in engines() {
            let rt = runtime(engine.clone(), &t.path().join("state"));
            assert!(
                matches!(
                    rt.emulation(&platform(plat)),
                    Ok(binfmt::Emulation::Emulated {
                        fix_binary: true,
                        ..
                    })
                ),
                "{plat}"
            );
            // Pipes, subshells and background jobs: qemu's own syscalls (clone for threads and
            // forks, its host-side signal and memory handling) all pass the default profile.
            let mut spec = sh(
                Rootfs::Overlay {
                    lower: vec![t.path().join("lower")],
                    upper: t.path().join(format!("upper-{}", engine_name(&engine))),
                },
                "uname -m; (echo a; echo b) | wc -l; sleep 0.1 & wait; \
                 grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'; \
                 echo done > /made; cat /made",
            );
            spec.platform = Some(platform(plat));
            let out = run(&rt, &spec);
            assert!(out.status.success(), "{engine:?} {plat}: {}", out.stderr);
            assert_eq!(
                out.stdout,
                format!("{machine}\n2\nNoNewPrivs:1\nSeccomp:2\ndone\n"),
                "{engine:?} {plat}: {}",
                out.stderr
            );
            println!("{engine:?} {plat}: uname -m printed {machine}");
        }
    }
}

fn engine_name(e: &Engine) -> &'static str {
    match e {
        Engine::BuiltIn => "builtin",
        Engine::Oci(_) => "oci",
    }
}

/// A made-up binfmt_misc mount: `status` (when `mounted`) and the given handler files.
fn fake_binfmt(dir: &Path, mounted: bool, handlers: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    if mounted {
        std::fs::write(dir.join("status"), "enabled\n").unwrap();
        std::fs::write(dir.join("register"), "").unwrap();
    }
    for (name, text) in handlers {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

const AARCH64_WITHOUT_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
    flags: PO\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
    mask ffffffffffffff00fffffffffffffffffeffffff\n";

#[test]
fn without_emulation_the_run_is_refused_before_the_container_starts() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let cases = [
        (
            "none",
            true,
            Missing::NoHandler {
                qemu_installed: Path::new("/usr/bin/qemu-s390x-static").exists(),
            },
            "sudo whittle binfmt --install linux/s390x",
        ),
        (
            "unmounted",
            false,
            Missing::NotMounted,
            "sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
        ),
    ];
    for (name, mounted, want, fix) in cases {
        let dir = fake_binfmt(&f.path(&format!("binfmt-{name}")), mounted, &[]);
        for engine in engines() {
            let rt = f.rt(&engine).binfmt_dir(dir.clone());
            let mut spec = sh(f.dir_rootfs(), "touch /ran");
            spec.platform = Some(platform("linux/s390x"));
            let err = try_run(&rt, &spec).err().expect("must be refused");
            let Error::Emulation(e) = &err else {
                panic!("{engine:?} {name}: {err}")
            };
            assert_eq!(e.missing, want, "{name}");
            assert!(e.fix.iter().any(|c| c == fix), "{name}: {:?}", e.fix);
            assert!(err.to_string().contains(fix), "{err}");
            assert!(!f.path("root/ran").exists(), "the container ran");
        }
    }
    // A handler without the F flag is refused too, saying why.
    let dir = fake_binfmt(
        &f.path("binfmt-no-f"),
        true,
        &[("qemu-aarch64", AARCH64_WITHOUT_F)],
    );
    let rt = f.rt(&Engine::BuiltIn).binfmt_dir(dir);
    let mut spec = sh(f.dir_rootfs(), "touch /ran");
    spec.platform = Some(platform("linux/arm64"));
    let err = try_run(&rt, &spec).err().expect("must be refused");
    let msg = err.to_string();
    assert!(msg.contains("without the F (fix binary) flag"), "{msg}");
    assert!(
        msg.contains("sudo whittle binfmt --install linux/arm64"),
        "{msg}"
    );
    assert!(!f.path("root/ran").exists());
    // The host's own platform is never checked.
    let mut spec = sh(f.dir_rootfs(), "echo native");
    spec.platform = Some(Platform::host());
    assert_eq!(run(&rt, &spec).stdout, "native\n");
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_host_program_in_an_image_said_to_be_arm64_is_never_run() {
    if !privileged() {
        return;
    }
    // The emulation check passes (a made-up handler with F), so the init helper is what
    // refuses: /bin/sh is the host's busybox, not an arm64 program.
    let f = Fixture::new();
    let dir = fake_binfmt(
        &f.path("binfmt"),
        true,
        &[(
            "whittle-qemu-aarch64",
            &AARCH64_WITHOUT_F.replace("flags: PO", "flags: POF"),
        )],
    );
    for engine in engines() {
        let rt = f.rt(&engine).binfmt_dir(dir.clone());
        for args in [vec!["/bin/sh", "-c", "touch /ran"], vec!["touch", "/ran"]] {
            let mut spec =
                ContainerSpec::new(f.dir_rootfs(), args.iter().map(|s| s.to_string()).collect());
            spec.platform = Some(platform("linux/arm64"));
            let err = try_run(&rt, &spec).err().expect("must be refused");
            match &err {
                Error::ForeignProgram { arch, platform, .. } => {
                    assert_eq!((arch.as_str(), platform.as_str()), ("amd64", "linux/arm64"))
                }
                other => panic!("{engine:?}: {other}"),
            }
            assert!(err.to_string().contains("refusing to run it"), "{err}");
            assert!(
                !f.path("root/ran").exists(),
                "{engine:?} ran the host's program"
            );
        }
    }
}
