//! Rootless mode (#18): whittle run by an ordinary user. Each test (as root) makes a user of its
//! own with `useradd` (subordinate ids allocated from /etc/login.defs' ranges, or none), runs
//! whittle as that user with its default store under `~/.local/share/whittle`, and removes the
//! user (`userdel -r`, which also drops its /etc/subuid and /etc/subgid lines) when done.
//! newuidmap/newgidmap come from Debian's `uidmap` (scripts/deps.sh).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// An ordinary user made for one test; removed (with its home) on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl User {
    /// A new user; `subids`: whether it gets subordinate ids (useradd's default allocation).
    fn new(subids: bool) -> User {
        let name = format!(
            "wrl{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let home = PathBuf::from("/tmp").join(format!("{name}-home"));
        let mut c = Command::new("useradd");
        c.args(["--create-home", "--shell", "/bin/sh", "--home-dir"])
            .arg(&home);
        if !subids {
            c.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        ok(c.arg(&name));
        let id = |flag: &str| -> u32 {
            ok(Command::new("id").arg(flag).arg(&name))
                .trim()
                .parse()
                .unwrap()
        };
        let user = User {
            uid: id("-u"),
            gid: id("-g"),
            name,
            home,
        };
        let listed = fs::read_to_string("/etc/subuid")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{}:", user.name)));
        assert_eq!(
            listed, subids,
            "useradd's subordinate ids for {}",
            user.name
        );
        user
    }

    /// `whittle ARGS` as this user, in its home, with a clean environment.
    fn whittle(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid);
        c
    }

    /// A directory in the user's home with the given files, readable by the user.
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.home.join(name);
        for (path, text) in files {
            let p = d.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        ok(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&d));
        d
    }

    fn store(&self) -> PathBuf {
        self.home.join(".local/share/whittle")
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Files in the home belong to subordinate ids too; userdel -r removes them as root.
        let _ = Command::new("userdel")
            .args(["--remove", "--force"])
            .arg(&self.name)
            .output();
        let _ = fs::remove_dir_all(&self.home);
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Root, the uidmap tools and the busybox base image; else skipped (failing in CI).
fn ready() -> bool {
    if !common::privileged("creating users for rootless tests") {
        return false;
    }
    for t in ["newuidmap", "newgidmap", "useradd"] {
        let found = ["/usr/bin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists());
        assert!(found, "{t} is missing: scripts/deps.sh installs uidmap");
    }
    true
}

/// The image's layer digests and config digest, from `whittle inspect`.
fn digests(inspect: &str) -> (Vec<String>, String) {
    let v: serde_json::Value = serde_json::from_str(inspect).unwrap();
    let layers = v[0]["Manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (layers, v[0]["Id"].as_str().unwrap_or_default().to_string())
}

/// Ownership by many ids, setuid bits, hard links, a fifo, whiteouts and an opaque directory:
/// what a rootless snapshot must turn into the same tar as root's.
const OWNERS_DOCKERFILE: &str = "FROM whittle-test/busybox:1
COPY --chown=123:456 f.txt /app/f.txt
RUN mkdir -p /d/sub && echo a > /d/a && ln /d/a /d/h && chown 1000:2000 /d/a \\
 && chown 65534:65534 /d/sub && chmod 4755 /d/a && mkfifo /d/fifo \\
 && rm /etc/group && rm -rf /home && mkdir /home && echo z > /home/z
RUN id -u && wc -l < /proc/self/uid_map
";

#[test]
fn rootless_build_has_root_digests_runs_and_hits_the_cache() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    let ctx = user.context(
        "ctx",
        &[("Dockerfile", OWNERS_DOCKERFILE), ("f.txt", "file\n")],
    );
    let ctx_s = ctx.to_str().unwrap();

    // Root's build in a store of its own.
    let root_store = tempfile::tempdir().unwrap();
    let root = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.arg("--root").arg(root_store.path()).args(args);
        c
    };
    ok(&mut root(&["load", "-i", busybox.to_str().unwrap()]));
    ok(&mut root(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    let want = digests(&ok(&mut root(&["inspect", "rl/owners"])));

    // The user's, in the default store.
    ok(&mut user.whittle(&["load", "-i", busybox.to_str().unwrap()]));
    let out = run(&mut user.whittle(&[
        "build",
        "--progress=plain",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    let said = text(&out);
    assert!(out.status.success(), "rootless build failed:\n{said}");
    // Root of the namespace, with the user's own id and 65536 subordinate ones mapped.
    assert!(said.contains(" 0\n") && said.contains(" 2\n"), "{said}");
    let got = digests(&ok(&mut user.whittle(&["inspect", "rl/owners"])));
    assert_eq!(got, want, "rootless layers differ from root's");
    assert_eq!(want.0.len(), 3);

    // The store is the user's, under ~/.local/share/whittle, owned by the user on the host.
    let md = fs::metadata(user.store().join("meta.redb")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), user.uid);

    // A second build runs nothing.
    let out = run(&mut user.whittle(&["build", "--progress=plain", "--network", "none", ctx_s]));
    assert!(
        text(&out).contains("0 steps run, 3 cached"),
        "{}",
        text(&out)
    );

    // -o type=tar writes root's tar; -o DIR writes files the user owns (and can remove).
    let tar = |who: &mut Command, name: &str| {
        let dest = user.home.join(name);
        ok(who.args([
            "build",
            "-q",
            "--network",
            "none",
            "-o",
            &format!("type=tar,dest={}", dest.display()),
            ctx_s,
        ]));
        fs::read(dest).unwrap()
    };
    let root_tar = tar(&mut root(&[]), "root.tar");
    assert_eq!(tar(&mut user.whittle(&[]), "user.tar"), root_tar);
    let out_dir = user.home.join("out");
    ok(&mut user.whittle(&[
        "build",
        "-q",
        "--network",
        "none",
        "-o",
        &format!("type=local,dest={}", out_dir.display()),
        ctx_s,
    ]));
    for f in ["d/a", "d/sub", "app/f.txt"] {
        let md = fs::symlink_metadata(out_dir.join(f)).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), user.uid, "{f}");
    }
    ok(Command::new("rm")
        .arg("-rf")
        .arg(&out_dir)
        .uid(user.uid)
        .gid(user.gid));

    // whittle run sees the ids the build set.
    let shown = ok(&mut user.whittle(&[
        "run",
        "--rm",
        "--network",
        "none",
        "rl/owners",
        "sh",
        "-c",
        "stat -c '%u:%g %A' /d/a /app/f.txt /d/sub; cat /home/z; ls /etc/group 2>&1 || true",
    ]));
    assert!(shown.contains("1000:2000 -rwsr-xr-x"), "{shown}");
    assert!(shown.contains("123:456"), "{shown}");
    assert!(shown.contains("65534:65534"), "{shown}");
    assert!(shown.contains("z\n"), "{shown}");
    assert!(shown.contains("No such file"), "{shown}");
    // runc (scripts/deps.sh) runs the same container inside the namespace.
    let by_runc = ok(&mut user.whittle(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        "runc",
        "rl/owners",
        "stat",
        "-c",
        "%u:%g %A",
        "/d/a",
    ]));
    assert_eq!(by_runc, "1000:2000 -rwsr-xr-x\n");

    // The store's housekeeping removes what the namespace's ids own.
    ok(&mut user.whittle(&["rmi", "rl/owners"]));
    let pruned = ok(&mut user.whittle(&["prune"]));
    assert!(pruned.contains("snapshots"), "{pruned}");
    let fsck = ok(&mut user.whittle(&["fsck"]));
    assert!(fsck.contains("store is clean"), "{fsck}");
}

#[test]
fn rootless_builds_cannot_read_root_only_host_files() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    ok(&mut user.whittle(&["load", "-i", busybox.to_str().unwrap()]));
    let secret = "root-only-secret-6a1f";
    for (i, dockerfile) in [
        "FROM whittle-test/busybox:1\nCOPY secret /s\nRUN cat /s\n",
        "FROM whittle-test/busybox:1\nRUN --mount=type=bind,target=/ctx cat /ctx/secret\n",
    ]
    .iter()
    .enumerate()
    {
        let ctx = user.context(&format!("ctx{i}"), &[("Dockerfile", dockerfile)]);
        // Root's file in the user's context: mode 0600, owner root.
        let s = ctx.join("secret");
        fs::write(&s, secret).unwrap();
        fs::set_permissions(&s, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&s, Some(0), Some(0)).unwrap();
        let out = run(&mut user.whittle(&[
            "build",
            "--progress=plain",
            "--network",
            "none",
            ctx.to_str().unwrap(),
        ]));
        let said = text(&out);
        assert!(
            !out.status.success(),
            "build {i} read a root-only file:\n{said}"
        );
        assert!(!said.contains(secret), "{said}");
        assert!(said.contains("ermission denied"), "{said}");
    }
}

#[test]
fn rootless_without_subordinate_ids_maps_one_id_and_says_what_that_limits() {
    if !ready() {
        return;
    }
    let user = User::new(false);
    // An image of root-owned files only unpacks and runs with one id.
    let ctx = user.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY f /f\nCOPY --chown=1000 f /g\n",
            ),
            ("f", "x\n"),
        ],
    );
    let out = run(&mut user.whittle(&[
        "build",
        "--progress=plain",
        "-t",
        "rl/one",
        ctx.to_str().unwrap(),
    ]));
    let said = text(&out);
    assert!(
        said.contains("rootless with your own id only")
            && said.contains("has no subordinate ids in /etc/subuid and /etc/subgid"),
        "{said}"
    );
    // A file for uid 1000 cannot be made: the build fails, and says how to fix it.
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("sudo usermod --add-subuids"), "{said}");
}

#[test]
fn rootless_apt_get_install_on_debian() {
    if !ready() {
        return;
    }
    let debian = common::base_image("debian");
    let user = User::new(true);
    ok(&mut user.whittle(&["load", "-i", debian.to_str().unwrap()]));
    let ctx = user.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM whittle-test/debian:bookworm-slim\n\
             RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends hello \
             >/dev/null && stat -c '%U %n' /var/lib/apt/lists/partial /var/cache/apt/archives/partial\n",
        )],
    );
    let out = run(&mut user.whittle(&[
        "build",
        "--progress=plain",
        "-t",
        "rl/apt",
        ctx.to_str().unwrap(),
    ]));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("_apt /var/lib/apt/lists/partial"), "{said}");
    let hello = ok(&mut user.whittle(&["run", "--rm", "--network", "none", "rl/apt", "hello"]));
    assert_eq!(hello, "Hello, world!\n");
}

#[test]
fn rootless_example_go_scratch_has_root_digests() {
    if !ready() {
        return;
    }
    let golang = common::base_image("golang");
    let user = User::new(true);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/go-scratch");
    let files: Vec<(String, String)> = fs::read_dir(&example)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let ctx = user.context("go-scratch", &refs);
    let ctx_s = ctx.to_str().unwrap();

    let root_store = tempfile::tempdir().unwrap();
    let root = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.arg("--root").arg(root_store.path()).args(args);
        c
    };
    ok(&mut root(&["load", "-i", golang.to_str().unwrap()]));
    ok(&mut root(&["build", "-q", "-t", "rl/go", ctx_s]));
    let want = digests(&ok(&mut root(&["inspect", "rl/go"])));

    ok(&mut user.whittle(&["load", "-i", golang.to_str().unwrap()]));
    ok(&mut user.whittle(&["build", "-q", "-t", "rl/go", ctx_s]));
    assert_eq!(digests(&ok(&mut user.whittle(&["inspect", "rl/go"]))), want);
    let hello = ok(&mut user.whittle(&["run", "--rm", "--network", "none", "rl/go"]));
    assert!(hello.starts_with("hello, world!"), "{hello}");
}

/// Debian's docker-registry on a free loopback port, storage in a temp dir; killed on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/deps.sh)");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed().as_secs() < 20,
                "docker-registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rootless_push_and_pull_through_a_registry() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    let reg = Registry::start();
    let ctx = user.context(
        "ctx",
        &[("Dockerfile", OWNERS_DOCKERFILE), ("f.txt", "file\n")],
    );
    let name = format!("127.0.0.1:{}/rl/owners:1", reg.port);
    ok(&mut user.whittle(&["load", "-i", busybox.to_str().unwrap()]));
    ok(&mut user.whittle(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        &name,
        ctx.to_str().unwrap(),
    ]));
    let pushed = digests(&ok(&mut user.whittle(&["inspect", &name])));
    ok(&mut user.whittle(&["push", &name]));
    // A second store of the same user pulls it back and runs it.
    let other = user.home.join("other-store");
    let other_s = other.to_str().unwrap();
    ok(&mut user.whittle(&["--root", other_s, "pull", &name]));
    let pulled = digests(&ok(
        &mut user.whittle(&["--root", other_s, "inspect", &name])
    ));
    // The same config (so the same diff ids); push compressed the loaded base layer, which
    // `load` kept uncompressed, so only the built layers keep their blob digests.
    assert_eq!(pulled.1, pushed.1);
    assert_eq!(pulled.0[1..], pushed.0[1..]);
    let shown = ok(&mut user.whittle(&[
        "--root",
        other_s,
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "stat",
        "-c",
        "%u:%g",
        "/d/a",
    ]));
    assert_eq!(shown, "1000:2000\n");
}

/// The default (isolated) network of rootless RUN steps through each helper. The machine's own
/// /dev/net/tun may be 0600 (then whittle falls back to the host's network, with a warning):
/// the build runs in a private mount namespace where a 0666 node of the same device covers it,
/// and with a PATH that offers only the helper under test.
#[test]
fn rootless_default_network_through_slirp4netns_and_pasta() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    ok(&mut user.whittle(&["load", "-i", busybox.to_str().unwrap()]));
    let tun = user.home.join("tun");
    ok(Command::new("mknod")
        .args(["-m", "0666"])
        .arg(&tun)
        .args(["c", "10", "200"]));
    for tool in ["slirp4netns", "pasta"] {
        let bin = user.home.join(format!("bin-{tool}"));
        fs::create_dir_all(&bin).unwrap();
        for t in [tool, "newuidmap", "newgidmap"] {
            std::os::unix::fs::symlink(Path::new("/usr/bin").join(t), bin.join(t)).unwrap();
        }
        // A new step each time (the tool is in its output), so nothing is cached.
        let dockerfile = format!(
            "FROM whittle-test/busybox:1\nRUN echo {tool} && ip -4 addr show eth0 && ip route\n"
        );
        let ctx = user.context(
            &format!("ctx-{tool}"),
            &[("Dockerfile", dockerfile.as_str())],
        );
        let script = format!(
            "mount --bind {} /dev/net/tun && exec setpriv --reuid={} --regid={} --clear-groups \
             env -i HOME={} PATH={} {} build --progress=plain {}",
            tun.display(),
            user.uid,
            user.gid,
            user.home.display(),
            bin.display(),
            env!("CARGO_BIN_EXE_whittle"),
            ctx.display()
        );
        let out = run(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(&script)
            .current_dir(&user.home));
        let said = text(&out);
        assert!(out.status.success(), "{tool}:\n{said}");
        assert!(!said.contains("host's network"), "{tool}:\n{said}");
        assert!(said.contains("inet 169.254.77.100/24"), "{tool}:\n{said}");
        assert!(said.contains("default via 169.254.77.2"), "{tool}:\n{said}");
    }

    // A /dev/net/tun the namespace cannot open: the host's network, and the doctor's words.
    let closed = user.home.join("tun-0600");
    ok(Command::new("mknod")
        .args(["-m", "0600"])
        .arg(&closed)
        .args(["c", "10", "200"]));
    let ctx = user.context(
        "ctx-closed",
        &[(
            "Dockerfile",
            "FROM whittle-test/busybox:1\nRUN echo closed && ls /sys/class/net\n",
        )],
    );
    let script = format!(
        "mount --bind {} /dev/net/tun && exec setpriv --reuid={} --regid={} --clear-groups \
         env -i HOME={} PATH=/usr/bin:/bin {} build --progress=plain {}",
        closed.display(),
        user.uid,
        user.gid,
        user.home.display(),
        env!("CARGO_BIN_EXE_whittle"),
        ctx.display()
    );
    let out = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(&script)
        .current_dir(&user.home));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("RUN steps use the host's network")
            && said.contains("sudo chmod 0666 /dev/net/tun"),
        "{said}"
    );
    assert!(!said.contains("169.254.77.100"), "{said}");
}

/// whittle as root of a container that has its own user namespace (a pod with
/// `hostUsers: false`, rootless Podman): it is root already, so it enters nothing, and sees
/// from `/proc/self/uid_map` that overlay needs `userxattr`. The "container" is util-linux's
/// `unshare` run by the ordinary user, with its subordinate ids mapped (`--map-auto`) and a
/// fresh /proc.
#[test]
fn root_of_a_user_namespaced_container_builds_root_digests() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    let ctx = user.context(
        "ctx",
        &[("Dockerfile", OWNERS_DOCKERFILE), ("f.txt", "file\n")],
    );
    let ctx_s = ctx.to_str().unwrap();
    let root_store = tempfile::tempdir().unwrap();
    let root = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.arg("--root").arg(root_store.path()).args(args);
        c
    };
    ok(&mut root(&["load", "-i", busybox.to_str().unwrap()]));
    ok(&mut root(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    let want = digests(&ok(&mut root(&["inspect", "rl/owners"])));

    let store = user.home.join("pod-store");
    let in_container = |args: &[&str]| {
        let mut c = Command::new("unshare");
        c.args([
            "--map-root-user",
            "--map-auto",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_whittle"),
            "--root",
        ])
        .arg(&store)
        .args(args)
        .env_clear()
        .env("HOME", &user.home)
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .current_dir(&user.home)
        .uid(user.uid)
        .gid(user.gid);
        c
    };
    ok(&mut in_container(&[
        "load",
        "-i",
        busybox.to_str().unwrap(),
    ]));
    let out = run(&mut in_container(&[
        "build",
        "--progress=plain",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("rootless with your own id"), "{said}");
    assert_eq!(
        digests(&ok(&mut in_container(&["inspect", "rl/owners"]))),
        want
    );
}

/// The copying snapshotter (what runs where the kernel refuses overlay in a user namespace),
/// forced with WHITTLE_SNAPSHOTTER=copy: root's layer digests, whittle run, no leftovers.
#[test]
fn rootless_copying_snapshotter_builds_root_digests() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    let ctx = user.context(
        "ctx",
        &[("Dockerfile", OWNERS_DOCKERFILE), ("f.txt", "file\n")],
    );
    let ctx_s = ctx.to_str().unwrap();
    let root_store = tempfile::tempdir().unwrap();
    let root = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.arg("--root").arg(root_store.path()).args(args);
        c
    };
    ok(&mut root(&["load", "-i", busybox.to_str().unwrap()]));
    ok(&mut root(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    let want = digests(&ok(&mut root(&["inspect", "rl/owners"])));

    let copying = |args: &[&str]| {
        let mut c = user.whittle(args);
        c.env("WHITTLE_SNAPSHOTTER", "copy");
        c
    };
    ok(&mut copying(&["load", "-i", busybox.to_str().unwrap()]));
    let out = run(&mut copying(&[
        "build",
        "--progress=plain",
        "--network",
        "none",
        "-t",
        "rl/owners",
        ctx_s,
    ]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(digests(&ok(&mut copying(&["inspect", "rl/owners"]))), want);
    let shown = ok(&mut copying(&[
        "run",
        "--rm",
        "--network",
        "none",
        "rl/owners",
        "sh",
        "-c",
        "stat -c '%u:%g' /d/a && echo x > /tmp/x && cat /tmp/x",
    ]));
    assert_eq!(shown, "1000:2000\nx\n");
    let left = ok(Command::new("find").arg(user.store()).args([
        "-maxdepth",
        "3",
        "(",
        "-name",
        "*.copy-*",
        "-o",
        "-name",
        "*.tick",
        ")",
    ]));
    assert_eq!(left, "", "the copies are removed");
}

/// An overlay mount (made by root) for the user's store, unmounted on drop.
struct OverlayMount(PathBuf);

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.0.join("m"))
            .output();
    }
}

/// A store on overlayfs (whittle in a container whose root is an overlay) cannot be overlay's
/// upper dir: the first refused mount switches the runtime to the copying snapshotter by
/// itself, says so, and the layer is root's. (Whiteouts cannot be made on such a store
/// rootless, so the step only adds and changes files.)
#[test]
fn rootless_falls_back_to_copies_when_overlay_is_refused() {
    if !ready() {
        return;
    }
    let busybox = common::base_image("busybox");
    let user = User::new(true);
    let dockerfile = "FROM whittle-test/busybox:1\nRUN mkdir -p /d && echo a > /d/a \
                      && chown 1000:2000 /d/a && chmod 4755 /d/a && echo x >> /etc/passwd\n";
    let ctx = user.context("ctx", &[("Dockerfile", dockerfile)]);
    let ctx_s = ctx.to_str().unwrap();
    let root_store = tempfile::tempdir().unwrap();
    let root = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
        c.arg("--root").arg(root_store.path()).args(args);
        c
    };
    ok(&mut root(&["load", "-i", busybox.to_str().unwrap()]));
    ok(&mut root(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "rl/ov",
        ctx_s,
    ]));
    let want = digests(&ok(&mut root(&["inspect", "rl/ov"])));

    let ov = user.home.join("ov");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir_all(ov.join(d)).unwrap();
    }
    let opts = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", ov.display());
    ok(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(ov.join("m")));
    let _mounted = OverlayMount(ov.clone());
    std::os::unix::fs::chown(ov.join("m"), Some(user.uid), Some(user.gid)).unwrap();
    let store = ov.join("m/store");
    let store_s = store.to_str().unwrap();
    ok(&mut user.whittle(&["--root", store_s, "load", "-i", busybox.to_str().unwrap()]));
    let out = run(&mut user.whittle(&[
        "--root",
        store_s,
        "build",
        "--progress=plain",
        "--network",
        "none",
        "-t",
        "rl/ov",
        ctx_s,
    ]));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.matches("containers ran on copies of their layers")
            .count(),
        1,
        "{said}"
    );
    assert_eq!(
        digests(&ok(
            &mut user.whittle(&["--root", store_s, "inspect", "rl/ov"])
        )),
        want
    );
}
