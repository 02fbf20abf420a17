#![allow(clippy::unwrap_used, clippy::expect_used, clippy::new_without_default)]
//! Shared fixtures: busybox root filesystems and a runtime using the test helper binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use whittle_runtime::{CancelToken, ContainerSpec, Engine, ExitStatus, Rootfs, Runtime, Stream};

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nwheel:x:10:builder\nbuilder:x:1000:\nnogroup:x:65534:\n";

/// Skips (returns false) only when not root outside CI; in CI (root) it must run.
pub fn privileged() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the container tests as root");
    }
    eprintln!("skipping: container tests need root");
    false
}

/// A minimal rootfs: static busybox with its applet links, /etc/passwd and /etc/group.
pub fn busybox_rootfs(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: run scripts/deps.sh (busybox-static)"
    );
    for d in ["bin", "etc", "tmp", "root", "home/builder"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    // What `busybox --install -s` does, but with relative links (its own links would point at
    // the host path of the binary).
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .unwrap();
    assert!(list.status.success());
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(dir.join("etc/group"), GROUP).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
}

pub fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_whittle-runtime-init"))
}

pub fn runtime(engine: Engine, state: &Path) -> Runtime {
    Runtime::with_helper(engine, helper()).state_dir(state)
}

/// The engines every isolation test runs under: built-in always, runc when installed (always
/// in CI, where scripts/deps.sh installs it).
pub fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::BuiltIn];
    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        v.push(Engine::Oci(PathBuf::from("runc")));
    } else if std::env::var_os("CI").is_some() {
        panic!("runc missing in CI: scripts/deps.sh installs it");
    } else {
        eprintln!("note: runc not installed, testing the built-in runtime only");
    }
    v
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(rt: &Runtime, spec: &ContainerSpec) -> Output {
    try_run(rt, spec).unwrap_or_else(|e| panic!("{:?} run failed: {e}", rt.engine()))
}

pub fn try_run(rt: &Runtime, spec: &ContainerSpec) -> whittle_runtime::Result<Output> {
    let mut out = String::new();
    let mut err = String::new();
    let mut sink = |s: Stream, l: &[u8]| {
        let t = match s {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        t.push_str(&String::from_utf8_lossy(l));
        t.push('\n');
    };
    let status = rt.run(spec, &mut sink, &CancelToken::new().unwrap())?;
    Ok(Output {
        status,
        stdout: out,
        stderr: err,
    })
}

pub fn sh(rootfs: Rootfs, script: &str) -> ContainerSpec {
    ContainerSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// A temp dir with a busybox rootfs in `root/`.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        busybox_rootfs(&tmp.path().join("root"));
        std::fs::create_dir_all(tmp.path().join("state")).unwrap();
        Fixture { tmp }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    pub fn dir_rootfs(&self) -> Rootfs {
        Rootfs::Dir {
            path: self.path("root"),
            readonly: false,
        }
    }
    pub fn overlay(&self, upper: &str) -> Rootfs {
        Rootfs::Overlay {
            lower: vec![self.path("root")],
            upper: self.path(upper),
        }
    }
    pub fn rt(&self, engine: &Engine) -> Runtime {
        runtime(engine.clone(), &self.path("state"))
    }
}
