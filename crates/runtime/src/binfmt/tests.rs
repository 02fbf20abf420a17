//! The matcher and `--install`'s plan on a made-up machine (an x86_64 host: the platforms
//! these tests call foreign are foreign there).
#![cfg(target_arch = "x86_64")]

use super::install::{default_platforms, plan, Outcome};
use super::*;
use std::path::{Path, PathBuf};

const DIR: &str = "/proc/sys/fs/binfmt_misc";
const SHARE: &str = "/usr/share/binfmts";

/// What Debian 12's qemu-user-static registers for aarch64 (binfmt.d, flags OPF).
const DEBIAN_AARCH64: &str = "enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
";

/// What tonistiigi/binfmt registers for arm (flags CF).
const TONISTIIGI_ARM: &str = "enabled
interpreter /usr/bin/qemu-arm
flags: OCF
offset 0
magic 7f454c4601010100000000000000000002002800
mask ffffffffffffff00fffffffffffffffffeffffff
";

/// Debian's /usr/share/binfmts/qemu-aarch64.
const SHARE_AARCH64: &str = r"package qemu-user-static
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
magic \x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00
offset 0
mask \xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff
credentials no
fix_binary yes
preserve yes
";

/// A machine: files in listing order, programs on PATH, other paths that exist.
#[derive(Default)]
struct Fake {
    files: Vec<(String, String)>,
    programs: Vec<&'static str>,
    paths: Vec<&'static str>,
    compat32: bool,
}

impl Fake {
    fn mounted() -> Fake {
        let mut f = Fake {
            compat32: true,
            ..Fake::default()
        };
        f.file(&format!("{DIR}/register"), "");
        f.file(&format!("{DIR}/status"), "enabled\n");
        f
    }
    fn file(&mut self, path: &str, text: &str) -> &mut Self {
        self.files.push((path.into(), text.into()));
        self
    }
    fn handler(&mut self, name: &str, text: &str) -> &mut Self {
        self.file(&format!("{DIR}/{name}"), text)
    }
}

impl crate::doctor::Host for Fake {
    fn read(&self, path: &str) -> Option<String> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
    }
    fn run(&self, _: &[&str]) -> Option<bool> {
        None
    }
    fn which(&self, program: &str) -> Option<PathBuf> {
        self.programs
            .contains(&program)
            .then(|| PathBuf::from("/usr/bin").join(program))
    }
    fn setuid_root(&self, _: &Path) -> bool {
        false
    }
    fn user(&self) -> (u32, Option<String>) {
        (0, Some("root".into()))
    }
    fn list(&self, dir: &str) -> Option<Vec<String>> {
        let prefix = format!("{dir}/");
        let names: Vec<String> = self
            .files
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&prefix))
            .filter(|n| !n.contains('/'))
            .map(str::to_string)
            .collect();
        (!names.is_empty()).then_some(names)
    }
    fn exists(&self, path: &Path) -> bool {
        self.paths.iter().any(|p| Path::new(p) == path)
            || self.read(path.to_str().unwrap_or_default()).is_some()
    }
    fn compat32(&self) -> bool {
        self.compat32
    }
    fn open_rw(&self, _: &Path) -> bool {
        false
    }
}

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

#[test]
fn debians_handler_emulates_arm64() {
    let mut f = Fake::mounted();
    f.handler("qemu-aarch64", DEBIAN_AARCH64);
    let want = Emulation::Emulated {
        handler: "qemu-aarch64".into(),
        interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into(),
        fix_binary: true,
    };
    assert_eq!(status(&f, DIR, &p("linux/arm64")), Ok(want.clone()));
    assert_eq!(require(&f, DIR, &p("linux/arm64/v8")), Ok(want));
}

#[test]
fn tonistiigis_handler_emulates_every_arm_variant() {
    let mut f = Fake::mounted();
    f.handler("qemu-arm", TONISTIIGI_ARM);
    for v in ["linux/arm/v6", "linux/arm/v7", "linux/arm"] {
        assert!(
            matches!(require(&f, DIR, &p(v)), Ok(Emulation::Emulated { handler, .. }) if handler == "qemu-arm"),
            "{v}"
        );
    }
    // arm's handler is not arm64's.
    let e = require(&f, DIR, &p("linux/arm64")).unwrap_err();
    assert!(matches!(e.missing, Missing::NoHandler { .. }), "{e:?}");
}

#[test]
fn the_host_runs_its_own_programs_without_looking() {
    let f = Fake::default(); // nothing mounted
    assert_eq!(require(&f, DIR, &p("linux/amd64")), Ok(Emulation::Native));
    assert_eq!(
        require(&f, DIR, &p("linux/amd64/v3")),
        Ok(Emulation::Native)
    );
}

#[test]
fn a_handler_without_f_is_reported_and_refused() {
    let mut f = Fake::mounted();
    f.handler("qemu-aarch64", &DEBIAN_AARCH64.replace("POF", "PO"));
    assert!(matches!(
        status(&f, DIR, &p("linux/arm64")),
        Ok(Emulation::Emulated {
            fix_binary: false,
            ..
        })
    ));
    let e = require(&f, DIR, &p("linux/arm64")).unwrap_err();
    assert!(
        matches!(&e.missing, Missing::NoFixBinary { handler, .. } if handler == "qemu-aarch64"),
        "{e:?}"
    );
    assert_eq!(e.fix, ["sudo whittle binfmt --install linux/arm64"]);
    let msg = e.to_string();
    assert!(msg.contains("without the F (fix binary) flag"), "{msg}");
    assert!(
        msg.contains("inside the container's root filesystem"),
        "{msg}"
    );
    assert!(msg.contains("to fix it, run:\n  sudo whittle binfmt --install linux/arm64"));
}

#[test]
fn the_newest_handler_wins_as_in_the_kernel() {
    // whittle's handler registered after a Debian one without F: listed (and tried) first.
    let mut f = Fake::mounted();
    f.handler("whittle-qemu-aarch64", DEBIAN_AARCH64);
    f.handler("qemu-aarch64", &DEBIAN_AARCH64.replace("POF", "P"));
    assert!(matches!(
        require(&f, DIR, &p("linux/arm64")),
        Ok(Emulation::Emulated { handler, .. }) if handler == "whittle-qemu-aarch64"
    ));
    // The other way round the one without F is what the kernel uses.
    let mut g = Fake::mounted();
    g.handler("qemu-aarch64", &DEBIAN_AARCH64.replace("POF", "P"));
    g.handler("whittle-qemu-aarch64", DEBIAN_AARCH64);
    assert!(require(&g, DIR, &p("linux/arm64")).is_err());
}

#[test]
fn disabled_handlers_are_skipped() {
    let mut f = Fake::mounted();
    f.handler(
        "qemu-aarch64",
        &DEBIAN_AARCH64.replace("enabled", "disabled"),
    );
    let e = require(&f, DIR, &p("linux/arm64")).unwrap_err();
    assert_eq!(
        e.missing,
        Missing::HandlerDisabled {
            handler: "qemu-aarch64".into()
        }
    );
    assert!(e.to_string().contains("(qemu-aarch64) is disabled"));
    // A disabled handler does not hide an enabled one behind it.
    f.handler("other", DEBIAN_AARCH64);
    assert!(require(&f, DIR, &p("linux/arm64")).is_ok());
}

#[test]
fn a_wrong_mask_or_magic_does_not_match() {
    let mut f = Fake::mounted();
    // Mask keeps e_type's low bit: PIEs (ET_DYN) would not run.
    f.handler(
        "pie-less",
        &DEBIAN_AARCH64.replace("fffeffffff", "ffffffffff"),
    );
    // x86_64's magic.
    f.handler(
        "qemu-x86_64",
        &DEBIAN_AARCH64.replace("0200b700", "02003e00"),
    );
    // Big-endian arm64.
    f.handler(
        "qemu-aarch64_be",
        &DEBIAN_AARCH64.replace("7f454c46020101", "7f454c46020201"),
    );
    f.programs = vec!["qemu-aarch64-static"];
    let e = require(&f, DIR, &p("linux/arm64")).unwrap_err();
    assert_eq!(
        e.missing,
        Missing::NoHandler {
            qemu_installed: true
        }
    );
    assert_eq!(e.fix, ["sudo whittle binfmt --install linux/arm64"]);
}

#[test]
fn nothing_registered_names_the_package_and_the_install() {
    let f = Fake::mounted();
    let e = require(&f, DIR, &p("linux/riscv64")).unwrap_err();
    assert_eq!(
        e.fix,
        [
            "sudo apt-get install qemu-user-static",
            "sudo whittle binfmt --install linux/riscv64"
        ]
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot run linux/riscv64 programs: they need emulation"),
        "{msg}"
    );
    assert!(
        msg.contains("qemu-user-static is not installed either"),
        "{msg}"
    );
}

#[test]
fn binfmt_misc_not_mounted_or_disabled() {
    let f = Fake::default();
    let e = require(&f, DIR, &p("linux/s390x")).unwrap_err();
    assert_eq!(e.missing, Missing::NotMounted);
    assert!(e
        .fix
        .iter()
        .any(|c| c == "sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"));
    assert!(e
        .fix
        .iter()
        .any(|c| c.contains("apt-get install qemu-user-static")));
    let mut d = Fake::mounted();
    d.files[1].1 = "disabled\n".into();
    d.handler("qemu-s390x", DEBIAN_AARCH64);
    let e = require(&d, DIR, &p("linux/s390x")).unwrap_err();
    assert_eq!(e.missing, Missing::Disabled);
    assert!(e.fix[0].contains("tee /proc/sys/fs/binfmt_misc/status"));
}

#[test]
fn i386_is_native_on_amd64_unless_a_handler_claims_it() {
    let mut f = Fake::mounted();
    assert_eq!(require(&f, DIR, &p("linux/386")), Ok(Emulation::Native));
    f.compat32 = false;
    let e = require(&f, DIR, &p("linux/386")).unwrap_err();
    assert!(matches!(e.missing, Missing::NoHandler { .. }));
    f.compat32 = true;
    f.handler(
        "qemu-i386",
        "enabled\ninterpreter /usr/bin/qemu-i386-static\nflags: F\noffset 0\n\
         magic 7f454c4601010100000000000000000002000300\n\
         mask fffffffffffefe00fffffffffffffffffeffffff\n",
    );
    assert!(matches!(
        require(&f, DIR, &p("linux/386")),
        Ok(Emulation::Emulated { handler, .. }) if handler == "qemu-i386"
    ));
}

#[test]
fn unknown_platforms_are_named() {
    let f = Fake::mounted();
    for bad in ["windows/amd64", "linux/sparc64"] {
        let e = require(&f, DIR, &p(bad)).unwrap_err();
        assert_eq!(e.missing, Missing::UnknownPlatform);
        assert!(e.fix.is_empty());
        assert!(e.to_string().contains("linux/arm64"), "{e}");
    }
}

#[test]
fn unparsable_entries_are_kept_aside() {
    let mut f = Fake::mounted();
    f.handler("broken", "enabled\nmagic zz\n");
    f.handler("qemu-aarch64", DEBIAN_AARCH64);
    let Registry::Enabled {
        handlers,
        unreadable,
    } = Registry::read(&f, DIR)
    else {
        panic!("not read")
    };
    assert_eq!(handlers.len(), 1);
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, "broken");
}

#[test]
fn install_registers_debians_interpreters_with_f_and_o() {
    let mut f = Fake::mounted();
    f.file(&format!("{SHARE}/qemu-aarch64"), SHARE_AARCH64);
    f.file(
        &format!("{SHARE}/qemu-arm"),
        &SHARE_AARCH64
            .replace("aarch64", "arm")
            .replace(r"\x02\x01\x01\x00", r"\x01\x01\x01\x00")
            .replace(r"\xb7", r"\x28"),
    );
    f.paths = vec![
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "/usr/libexec/qemu-binfmt/arm-binfmt-P",
    ];
    let all = default_platforms(&f, SHARE);
    assert_eq!(all, [p("linux/arm64"), p("linux/arm/v7")]);
    let steps = plan(&f, DIR, SHARE, &all).unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        steps[0].line.as_deref(),
        Some(
            r":whittle-qemu-aarch64:M:0:\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POF"
        )
    );
    assert!(!steps[0].replaces);
    assert!(
        matches!(&steps[1].outcome, Outcome::Registered { handler, .. } if handler == "whittle-qemu-arm")
    );
}

#[test]
fn install_skips_what_works_and_replaces_its_own_broken_handler() {
    let mut f = Fake::mounted();
    f.handler("qemu-aarch64", DEBIAN_AARCH64);
    f.handler(
        "whittle-qemu-riscv64",
        "disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: OF\noffset 0\n\
         magic 7f454c460201010000000000000000000200f300\n\
         mask ffffffffffffff00fffffffffffffffffeffffff\n",
    );
    f.programs = vec!["qemu-riscv64-static"];
    let steps = plan(
        &f,
        DIR,
        SHARE,
        &[
            p("linux/amd64"),
            p("linux/arm64"),
            p("linux/riscv64"),
            p("linux/386"),
        ],
    )
    .unwrap();
    assert_eq!(steps[0].outcome, Outcome::Native);
    assert_eq!(
        steps[1].outcome,
        Outcome::AlreadyWorks {
            handler: "qemu-aarch64".into()
        }
    );
    assert!(steps[1].line.is_none());
    // No format file: qemu's own magic for the binary on PATH, no P.
    assert!(steps[2].replaces);
    assert_eq!(
        steps[2].line.as_deref(),
        Some(
            r":whittle-qemu-riscv64:M:0:\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-riscv64-static:OF"
        )
    );
    assert_eq!(steps[3].outcome, Outcome::Native);
}

#[test]
fn install_refuses_without_qemu_or_with_a_wrong_format() {
    let f = Fake::mounted();
    let e = plan(&f, DIR, SHARE, &[p("linux/s390x")]).unwrap_err();
    assert!(
        e.to_string().contains("apt-get install qemu-user-static"),
        "{e}"
    );
    let mut g = Fake::mounted();
    g.file(
        &format!("{SHARE}/qemu-aarch64"),
        &SHARE_AARCH64.replace(r"\xb7", r"\x3e"),
    );
    let e = plan(&g, DIR, SHARE, &[p("linux/arm64")]).unwrap_err();
    assert!(matches!(e, install::InstallError::WrongMagic { .. }), "{e}");
}
