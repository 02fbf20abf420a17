//! `whittle doctor`: what this machine lets whittle do, and the exact command that fixes each
//! missing piece. Rootless builds need user namespaces (which sysctls and AppArmor can forbid),
//! subordinate ids with the setuid `newuidmap`/`newgidmap`, and overlayfs inside a user
//! namespace; RUN steps on the default network need pasta or slirp4netns; foreign platforms
//! need binfmt_misc handlers registered with the F flag.
//!
//! Every probe goes through [`Host`], so the diagnosis is tested with a fake machine; the real
//! one reads `/proc`, `/etc/subuid` and runs `unshare` (util-linux) for the probes that only
//! trying can answer.

use std::path::{Path, PathBuf};

/// What a probe may ask of the machine.
pub trait Host {
    /// A small text file (a sysctl, `/etc/subuid`), if readable.
    fn read(&self, path: &str) -> Option<String>;
    /// Runs a command; `Some(success)` when it could be started.
    fn run(&self, argv: &[&str]) -> Option<bool>;
    /// Where a program is on `PATH`.
    fn which(&self, program: &str) -> Option<PathBuf>;
    /// Whether a file has its setuid bit (and is owned by root).
    fn setuid_root(&self, path: &Path) -> bool;
    /// The effective uid, and the user's name if `/etc/passwd` knows it.
    fn user(&self) -> (u32, Option<String>);
    /// The names in a directory, in the order the file system lists them (binfmt_misc lists
    /// its handlers in the order the kernel tries them).
    fn list(&self, dir: &str) -> Option<Vec<String>>;
    /// Whether a path exists (following symbolic links).
    fn exists(&self, path: &Path) -> bool;
    /// Whether the kernel runs the host's 32-bit compat programs (386 on amd64, arm on arm64).
    fn compat32(&self) -> bool;
    /// Whether this process may open a file (a device node) for reading and writing.
    fn open_rw(&self, path: &Path) -> bool;
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Available.
    Ok,
    /// Missing; `fix` says what to run.
    Missing,
    /// Not needed in this mode (e.g. subordinate ids when running as root).
    NotNeeded,
}

/// One line of the diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// A stable id (`userns`, `subids`, ...).
    pub id: &'static str,
    /// What it is about.
    pub title: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// The command (or commands, one a line) that fixes it, when missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Subordinate ids a rootless build needs at least (what `useradd` gives by default): enough
/// for the uids and gids a distribution's packages use.
pub const MIN_SUBIDS: u64 = 65536;

/// The whole diagnosis, in a fixed order.
pub fn diagnose(h: &dyn Host) -> Vec<Check> {
    let (uid, name) = h.user();
    let root = uid == 0;
    vec![
        overlay(h),
        userns(h, root),
        subids(h, root, uid, name.as_deref()),
        uidmap(h, root),
        overlay_in_userns(h, root),
        network(h),
        tun(h),
        binfmt(h),
    ]
}

/// The one check `id` (`userns`, `subids`, `overlay-userns`, ...) of [`diagnose`], when it
/// comes out missing: its detail and fix are the sentences the CLI repeats when something
/// fails for that reason. Only that check's probes run.
pub fn missing_piece(h: &dyn Host, id: &str) -> Option<Check> {
    let (uid, name) = h.user();
    let root = uid == 0;
    let c = match id {
        "overlay" => overlay(h),
        "userns" => userns(h, root),
        "subids" => subids(h, root, uid, name.as_deref()),
        "uidmap" => uidmap(h, root),
        "overlay-userns" => overlay_in_userns(h, root),
        "network" => network(h),
        "tun" => tun(h),
        "binfmt" => binfmt(h),
        _ => return None,
    };
    (c.status == Status::Missing).then_some(c)
}

impl Check {
    /// One paragraph: what is missing and the commands that fix it.
    pub fn sentence(&self) -> String {
        match &self.fix {
            Some(fix) => format!(
                "{}: {}; to fix it: {}",
                self.title,
                self.detail,
                fix.lines().collect::<Vec<_>>().join(" && ")
            ),
            None => format!("{}: {}", self.title, self.detail),
        }
    }
}

fn check(id: &'static str, title: &'static str, status: Status, detail: String) -> Check {
    Check {
        id,
        title,
        status,
        detail,
        fix: None,
    }
}

fn missing(id: &'static str, title: &'static str, detail: String, fix: String) -> Check {
    Check {
        id,
        title,
        status: Status::Missing,
        detail,
        fix: Some(fix),
    }
}

fn sysctl(h: &dyn Host, name: &str) -> Option<i64> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    h.read(&path)?.trim().parse().ok()
}

/// `sysctl -w` now, and a file under /etc/sysctl.d so it survives a reboot.
fn sysctl_fix(name: &str, value: i64) -> String {
    format!(
        "sudo sysctl -w {name}={value}\necho '{name} = {value}' | sudo tee /etc/sysctl.d/50-whittle.conf"
    )
}

fn overlay(h: &dyn Host) -> Check {
    let title = "overlayfs";
    match h.read("/proc/filesystems") {
        Some(fs)
            if fs
                .lines()
                .any(|l| l.split_whitespace().last() == Some("overlay")) =>
        {
            check(
                "overlay",
                title,
                Status::Ok,
                "the kernel has overlay".into(),
            )
        }
        _ => missing(
            "overlay",
            title,
            "the kernel lists no overlay filesystem".into(),
            "sudo modprobe overlay".into(),
        ),
    }
}

fn userns(h: &dyn Host, root: bool) -> Check {
    let (id, title) = ("userns", "user namespaces");
    if sysctl(h, "user.max_user_namespaces") == Some(0) {
        return missing(
            id,
            title,
            "user.max_user_namespaces is 0".into(),
            sysctl_fix("user.max_user_namespaces", 15000),
        );
    }
    if sysctl(h, "kernel.unprivileged_userns_clone") == Some(0) && !root {
        return missing(
            id,
            title,
            "kernel.unprivileged_userns_clone is 0: only root may create them".into(),
            sysctl_fix("kernel.unprivileged_userns_clone", 1),
        );
    }
    if sysctl(h, "kernel.apparmor_restrict_unprivileged_userns") == Some(1) && !root {
        return missing(
            id,
            title,
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1)"
                .into(),
            sysctl_fix("kernel.apparmor_restrict_unprivileged_userns", 0),
        );
    }
    match h.run(&["unshare", "--user", "--map-root-user", "true"]) {
        Some(true) => check(id, title, Status::Ok, "a user namespace can be made".into()),
        Some(false) => missing(
            id,
            title,
            "`unshare --user` fails although no sysctl forbids it (a container or seccomp \
             profile may)"
                .into(),
            "run whittle where user namespaces are allowed (docs/rootless.md)".into(),
        ),
        None => missing(
            id,
            title,
            "cannot try: `unshare` (util-linux) is not installed".into(),
            "sudo apt-get install util-linux".into(),
        ),
    }
}

/// The number of subordinate ids `file` gives `uid`/`name` (several ranges add up).
fn subid_count(text: &str, uid: u32, name: Option<&str>) -> u64 {
    crate::rootless::subid::total(&crate::rootless::subid::ranges(text, uid, name))
}

fn subids(h: &dyn Host, root: bool, uid: u32, name: Option<&str>) -> Check {
    let (id, title) = ("subids", "subordinate ids");
    if root {
        return check(
            id,
            title,
            Status::NotNeeded,
            "running as root: every id is available".into(),
        );
    }
    let who = name.map_or_else(|| uid.to_string(), str::to_string);
    let uids = subid_count(&h.read("/etc/subuid").unwrap_or_default(), uid, name);
    let gids = subid_count(&h.read("/etc/subgid").unwrap_or_default(), uid, name);
    if uids >= MIN_SUBIDS && gids >= MIN_SUBIDS {
        return check(
            id,
            title,
            Status::Ok,
            format!("{who} has {uids} subordinate uids and {gids} gids"),
        );
    }
    missing(
        id,
        title,
        format!(
            "{who} has {uids} subordinate uids and {gids} gids in /etc/subuid and /etc/subgid; \
             a build needs {MIN_SUBIDS} of each, or RUN steps map only your own id (packages \
             that chown files to other users then fail)"
        ),
        format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"),
    )
}

fn uidmap(h: &dyn Host, root: bool) -> Check {
    let (id, title) = ("uidmap", "newuidmap and newgidmap");
    if root {
        return check(
            id,
            title,
            Status::NotNeeded,
            "running as root: ids are mapped directly".into(),
        );
    }
    let tools: Vec<Option<PathBuf>> = ["newuidmap", "newgidmap"]
        .iter()
        .map(|t| h.which(t))
        .collect();
    match tools.as_slice() {
        [Some(u), Some(g)] if h.setuid_root(u) && h.setuid_root(g) => check(
            id,
            title,
            Status::Ok,
            format!("{} and {} are setuid root", u.display(), g.display()),
        ),
        [Some(u), Some(_)] => missing(
            id,
            title,
            format!("{} is installed but not setuid root", u.display()),
            "sudo chmod u+s $(command -v newuidmap) $(command -v newgidmap)".into(),
        ),
        _ => missing(
            id,
            title,
            "not installed".into(),
            "sudo apt-get install uidmap".into(),
        ),
    }
}

fn overlay_in_userns(h: &dyn Host, root: bool) -> Check {
    let (id, title) = ("overlay-userns", "overlayfs in a user namespace");
    if root {
        return check(
            id,
            title,
            Status::NotNeeded,
            "running as root: overlay is mounted directly".into(),
        );
    }
    let script = "d=$(mktemp -d) && mkdir $d/l $d/u $d/w $d/m && \
                  mount -t overlay overlay -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w,userxattr $d/m; \
                  r=$?; umount $d/m 2>/dev/null; rm -rf $d; exit $r";
    match h.run(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        script,
    ]) {
        Some(true) => check(
            id,
            title,
            Status::Ok,
            "overlay mounts in a user namespace (userxattr)".into(),
        ),
        _ => missing(
            id,
            title,
            "the kernel refuses overlay in a user namespace (it needs Linux 5.11 or later): \
             rootless snapshots would be copies, slower and larger"
                .into(),
            "use a kernel of Linux 5.11 or later".into(),
        ),
    }
}

fn network(h: &dyn Host) -> Check {
    let (id, title) = ("network", "RUN network helper");
    for tool in ["pasta", "slirp4netns"] {
        if let Some(p) = h.which(tool) {
            return check(
                id,
                title,
                Status::Ok,
                format!("{} gives RUN steps an isolated network", p.display()),
            );
        }
    }
    missing(
        id,
        title,
        "neither pasta nor slirp4netns is installed: RUN steps use the host's network, \
         loopback services included"
            .into(),
        "sudo apt-get install passt".into(),
    )
}

/// pasta and slirp4netns make the RUN network's interface through `/dev/net/tun`; an ordinary
/// user (and root of a user namespace, which the device's owner is not) needs it world
/// read-writable, as Debian's udev rules make it.
fn tun(h: &dyn Host) -> Check {
    let (id, title) = ("tun", "/dev/net/tun");
    if h.open_rw(Path::new("/dev/net/tun")) {
        return check(
            id,
            title,
            Status::Ok,
            "the RUN network helper can make its interface".into(),
        );
    }
    missing(
        id,
        title,
        "cannot be opened for reading and writing: rootless RUN steps use the host's network \
         instead of an isolated one"
            .into(),
        "sudo chmod 0666 /dev/net/tun\necho 'KERNEL==\"tun\", MODE=\"0666\"' | sudo tee /etc/udev/rules.d/50-whittle-tun.rules"
            .into(),
    )
}

fn binfmt(h: &dyn Host) -> Check {
    use crate::binfmt::{self, elf, Emulation, Missing};
    let (id, title) = ("binfmt", "emulation of other platforms");
    let dir = binfmt::BINFMT_MISC;
    let foreign: Vec<_> = elf::known_platforms()
        .into_iter()
        .filter(|p| elf::arch_of(p).is_some_and(|a| Some(a) != elf::host_arch()))
        .collect();
    // (The host's 32-bit compat partner running natively is no emulation.)
    let (mut fixed, mut without, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for p in &foreign {
        match binfmt::status(h, dir, p) {
            Ok(Emulation::Emulated {
                fix_binary: true, ..
            }) => fixed.push(p.to_string()),
            Ok(Emulation::Native) => {}
            Ok(Emulation::Emulated { handler, .. }) => without.push(format!("{p} ({handler})")),
            Err(e) => errors.push(e),
        }
    }
    if errors.iter().any(|e| e.missing == Missing::NotMounted) {
        return missing(
            id,
            title,
            "binfmt_misc is not mounted: RUN steps for other platforms cannot run".into(),
            "sudo apt-get install qemu-user-static\n\
             sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\n\
             sudo whittle binfmt --install"
                .into(),
        );
    }
    if let Some(e) = errors.iter().find(|e| e.missing == Missing::Disabled) {
        return missing(
            id,
            title,
            "binfmt_misc is disabled: RUN steps for other platforms cannot run".into(),
            e.fix.join("\n"),
        );
    }
    if !without.is_empty() {
        return missing(
            id,
            title,
            format!(
                "{} registered without the F flag: the emulator is looked up inside the \
                 container, where it is not",
                without.join(", ")
            ),
            "sudo whittle binfmt --install".into(),
        );
    }
    if fixed.is_empty() {
        // qemu-user-static installs every interpreter: one found means the package is there.
        let apt = if errors.iter().any(|e| {
            matches!(
                e.missing,
                Missing::NoHandler {
                    qemu_installed: true
                }
            )
        }) {
            ""
        } else {
            "sudo apt-get install qemu-user-static\n"
        };
        return missing(
            id,
            title,
            "no emulator is registered: RUN steps for other platforms cannot run".into(),
            format!("{apt}sudo whittle binfmt --install"),
        );
    }
    check(
        id,
        title,
        Status::Ok,
        format!(
            "{} emulated with the F flag ({} other platforms not: `whittle binfmt` lists them)",
            fixed.join(", "),
            errors.len()
        ),
    )
}

/// The machine whittle runs on.
pub struct RealHost;

impl Host for RealHost {
    fn read(&self, path: &str) -> Option<String> {
        use std::io::Read;
        // Bounded: these are sysctls and id maps, never large.
        let mut s = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(1 << 20)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    }

    fn run(&self, argv: &[&str]) -> Option<bool> {
        let (prog, args) = argv.split_first()?;
        std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .map(|s| s.success())
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    }

    fn setuid_root(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0)
    }

    fn user(&self) -> (u32, Option<String>) {
        // In whittle's rootless namespace the process is root there, but what the machine
        // allows depends on the user on the host.
        let uid = crate::rootless::current()
            .map_or_else(|| rustix::process::geteuid().as_raw(), |e| e.uid);
        let name = self.read("/etc/passwd").and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _ = f.next()?;
                (f.next()? == uid.to_string()).then(|| name.to_string())
            })
        });
        (uid, name)
    }

    fn list(&self, dir: &str) -> Option<Vec<String>> {
        std::fs::read_dir(dir)
            .ok()?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .ok()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn compat32(&self) -> bool {
        crate::sys::kernel_runs_compat32()
    }

    fn open_rw(&self, path: &Path) -> bool {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A machine described by its files, the commands that succeed and its programs.
    #[derive(Default)]
    struct Fake {
        files: HashMap<&'static str, &'static str>,
        ok_commands: Vec<&'static str>,
        programs: Vec<&'static str>,
        setuid: bool,
        uid: u32,
    }

    impl Host for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.files.get(path).map(|s| s.to_string())
        }
        fn run(&self, argv: &[&str]) -> Option<bool> {
            // The probe is named by its last word (`true`, or the overlay script).
            let last = argv.last()?;
            Some(self.ok_commands.iter().any(|c| last.contains(c)))
        }
        fn which(&self, program: &str) -> Option<PathBuf> {
            self.programs
                .contains(&program)
                .then(|| PathBuf::from("/usr/bin").join(program))
        }
        fn setuid_root(&self, _: &Path) -> bool {
            self.setuid
        }
        fn user(&self) -> (u32, Option<String>) {
            (self.uid, (self.uid != 0).then(|| "ci".to_string()))
        }
        fn list(&self, dir: &str) -> Option<Vec<String>> {
            let prefix = format!("{dir}/");
            let mut names: Vec<String> = self
                .files
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(str::to_string)
                .collect();
            names.sort();
            Some(names)
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(path.to_str().unwrap_or_default())
        }
        fn compat32(&self) -> bool {
            true
        }
        fn open_rw(&self, path: &Path) -> bool {
            self.exists(path)
        }
    }

    /// What Debian's qemu-user-static registers for aarch64.
    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn good() -> Fake {
        Fake {
            files: HashMap::from([
                ("/proc/filesystems", "nodev\tproc\nnodev\toverlay\n"),
                ("/proc/sys/user/max_user_namespaces", "15000\n"),
                ("/etc/subuid", "ci:100000:65536\n"),
                ("/etc/subgid", "ci:100000:65536\n"),
                ("/proc/sys/fs/binfmt_misc/status", "enabled\n"),
                ("/proc/sys/fs/binfmt_misc/qemu-aarch64", QEMU_AARCH64),
                ("/dev/net/tun", ""),
            ]),
            ok_commands: vec!["true", "userxattr"],
            programs: vec!["newuidmap", "newgidmap", "pasta"],
            setuid: true,
            uid: 1000,
        }
    }

    fn by_id(checks: &[Check], id: &str) -> Check {
        checks.iter().find(|c| c.id == id).cloned().unwrap()
    }

    #[test]
    fn one_missing_piece_by_id_with_its_fix_in_one_sentence() {
        let mut h = good();
        assert_eq!(missing_piece(&h, "subids"), None);
        h.files.insert("/etc/subuid", "");
        let c = missing_piece(&h, "subids").expect("subids missing");
        let s = c.sentence();
        assert!(s.starts_with("subordinate ids: "), "{s}");
        assert!(s.contains("to fix it: sudo usermod --add-subuids"), "{s}");
        assert_eq!(missing_piece(&h, "no-such-check"), None);
    }

    #[test]
    fn a_ready_machine_has_nothing_missing() {
        let checks = diagnose(&good());
        for c in &checks {
            assert_eq!(c.status, Status::Ok, "{c:?}");
            assert!(c.fix.is_none());
        }
    }

    #[test]
    fn each_missing_piece_comes_with_its_fix() {
        let mut f = good();
        f.files.insert(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n",
        );
        f.files
            .insert("/etc/subuid", "ci:100000:1000\nother:1:70000\n");
        f.setuid = false;
        f.programs = vec!["newuidmap", "newgidmap"];
        f.ok_commands = vec!["true"];
        f.files.insert(
            "/proc/sys/fs/binfmt_misc/qemu-aarch64",
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PO\n\
             offset 0\nmagic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        );
        let checks = diagnose(&f);
        let fix = |id: &str| by_id(&checks, id).fix.unwrap_or_default();
        assert!(fix("userns").contains("kernel.apparmor_restrict_unprivileged_userns=0"));
        let s = by_id(&checks, "subids");
        assert!(s.detail.contains("1000 subordinate uids"), "{s:?}");
        assert!(fix("subids").contains("usermod --add-subuids 100000-165535"));
        assert!(fix("uidmap").contains("chmod u+s"));
        assert_eq!(by_id(&checks, "overlay-userns").status, Status::Missing);
        assert!(fix("network").contains("apt-get install passt"));
        f.files.remove("/dev/net/tun");
        let tun = missing_piece(&f, "tun").expect("tun missing");
        assert!(tun
            .fix
            .unwrap_or_default()
            .contains("chmod 0666 /dev/net/tun"));
        assert!(by_id(&checks, "binfmt")
            .detail
            .contains("without the F flag"));
        assert_eq!(by_id(&checks, "overlay").status, Status::Ok);
    }

    #[test]
    fn root_needs_no_subordinate_ids_and_sysctls_that_only_bind_users_do_not_count() {
        let mut f = good();
        f.uid = 0;
        f.files.remove("/etc/subuid");
        f.files
            .insert("/proc/sys/kernel/unprivileged_userns_clone", "0\n");
        let checks = diagnose(&f);
        assert_eq!(by_id(&checks, "subids").status, Status::NotNeeded);
        assert_eq!(by_id(&checks, "uidmap").status, Status::NotNeeded);
        assert_eq!(by_id(&checks, "userns").status, Status::Ok);
        f.files.remove("/proc/sys/fs/binfmt_misc/status");
        let b = by_id(&diagnose(&f), "binfmt");
        assert!(b.fix.unwrap().contains("mount -t binfmt_misc"));
    }

    #[test]
    fn binfmt_wants_an_emulator_not_just_the_compat_platform() {
        let mut f = good();
        f.files.remove("/proc/sys/fs/binfmt_misc/qemu-aarch64");
        f.programs.push("qemu-aarch64-static");
        let b = by_id(&diagnose(&f), "binfmt");
        assert_eq!(b.status, Status::Missing, "{b:?}");
        assert_eq!(b.fix.as_deref(), Some("sudo whittle binfmt --install"));
        f.programs.clear();
        let b = by_id(&diagnose(&f), "binfmt");
        assert!(b
            .fix
            .unwrap()
            .starts_with("sudo apt-get install qemu-user-static\n"));
        let ok = by_id(&diagnose(&good()), "binfmt");
        assert!(
            ok.detail
                .starts_with("linux/arm64 emulated with the F flag"),
            "{ok:?}"
        );
    }

    #[test]
    fn subordinate_ranges_add_up_by_name_or_uid() {
        let text = "ci:100000:30000\n1000:200000:40000\nbad line\nother:1:99999\n";
        assert_eq!(subid_count(text, 1000, Some("ci")), 70000);
        assert_eq!(subid_count(text, 1001, None), 0);
    }
}
