//! Mount primitives for the init helper, on the new mount API (`fsopen`/`fsmount`/`open_tree`/
//! `move_mount`): every target is an `O_PATH` descriptor resolved with `RESOLVE_IN_ROOT`, so a
//! symlink in an untrusted image can never send a mount or a `mkdir` onto the host.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};
use std::path::{Component, Path, PathBuf};

/// An error with the step that failed.
#[derive(Debug)]
pub struct MountError(pub String);

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn err(what: impl std::fmt::Display, e: Errno) -> MountError {
    MountError(format!("{what}: {}", std::io::Error::from(e)))
}

/// A filesystem option: `key=value` or a flag.
pub type FsOpt<'a> = (&'a str, Option<&'a str>);

/// Creates a new, detached mount of `fstype`.
pub fn new_fs(
    fstype: &str,
    opts: &[FsOpt<'_>],
    attrs: MountAttrFlags,
) -> Result<OwnedFd, MountError> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| err(format!("fsopen {fstype}"), e))?;
    if !opts.iter().any(|(k, _)| *k == "source") {
        fsconfig_set_string(&fs, "source", fstype)
            .map_err(|e| err(format!("{fstype} source"), e))?;
    }
    for (k, v) in opts {
        match v {
            Some(v) => fsconfig_set_string(&fs, *k, *v),
            None => fsconfig_set_flag(&fs, *k),
        }
        .map_err(|e| err(format!("{fstype} option {k}"), e))?;
    }
    fsconfig_create(&fs).map_err(|e| err(format!("create {fstype}"), e))?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| err(format!("fsmount {fstype}"), e))
}

/// A detached recursive copy of the mount tree at host path `source` (a bind mount).
pub fn clone_tree(source: &Path) -> Result<OwnedFd, MountError> {
    open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| err(format!("bind {}", source.display()), e))
}

/// Like [`clone_tree`], but a symlink at `source` itself is not followed (the clone fails): for
/// sources the build prepared, where a link could only lead somewhere on the host.
pub fn clone_tree_nofollow(source: &Path) -> Result<OwnedFd, MountError> {
    open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("bind {}", source.display()), e))
}

/// A detached recursive copy of the tree at a descriptor.
pub fn clone_fd(fd: BorrowedFd<'_>) -> Result<OwnedFd, MountError> {
    open_tree(
        fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| err("clone mount", e))
}

/// Attaches a detached mount onto the file or directory `target`.
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &str) -> Result<(), MountError> {
    move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| err(format!("mount {what}"), e))
}

/// Makes a mount tree read-only (recursively).
pub fn make_readonly(mnt: BorrowedFd<'_>, what: &str) -> Result<(), MountError> {
    crate::sys::mount_setattr_readonly(mnt, true)
        .map_err(|e| MountError(format!("read-only {what}: {e}")))
}

/// What to create when a path is missing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// Lexically normalises a container path to components below `/` (`..` stops at the root).
pub fn normalize(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Opens (`O_PATH`) `path` inside `root`, symlinks resolved as if `root` were `/`; with `create`,
/// missing directories (and a missing final file for [`Kind::File`]) are made, and their paths
/// (relative to the root) appended to `created`.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &str,
    kind: Kind,
    create: bool,
    created: &mut Vec<PathBuf>,
) -> Result<OwnedFd, MountError> {
    let rel = normalize(path);
    open_rel(root, &rel, kind, create, created)
}

fn open_path(root: BorrowedFd<'_>, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

fn open_rel(
    root: BorrowedFd<'_>,
    rel: &Path,
    kind: Kind,
    create: bool,
    created: &mut Vec<PathBuf>,
) -> Result<OwnedFd, MountError> {
    match open_path(root, rel) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if create => {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                return Err(MountError(format!("cannot create /{}", rel.display())));
            };
            let pfd = open_rel(root, parent, Kind::Dir, true, created)?;
            let made = match kind {
                Kind::Dir => rustix::fs::mkdirat(&pfd, name, Mode::from_raw_mode(0o755)),
                Kind::File => rustix::fs::openat(
                    &pfd,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC
                        | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop),
            };
            match made {
                Ok(()) => created.push(rel.to_path_buf()),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(err(format!("create /{}", rel.display()), e)),
            }
            open_path(root, rel).map_err(|e| err(format!("open /{}", rel.display()), e))
        }
        Err(e) => Err(err(format!("open /{}", rel.display()), e)),
    }
}

/// Whether an `O_PATH` descriptor is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .unwrap_or(false)
}

/// Mounts an overlay of `lower` (top-most first) with `upper`/`work` on the host path `target`.
/// In a user namespace (rootless) with `userxattr`: overlay keeps its metadata (opaque dirs) in
/// `user.overlay.*` xattrs, as the trusted ones belong to the host's root.
///
/// With `lowerdir+` (Linux 6.8+) every layer is its own `fsconfig` call, so the number of
/// layers is bounded only by overlayfs (500), not by the 4096-byte option page of `mount(2)`.
/// Older kernels (or `legacy`) get `mount(2)` with one `lowerdir=` string whose entries are
/// short symlinks (`0`, `1`, ...) made in `scratch`, a private directory we `chdir` into: about
/// four bytes a layer, whatever the layers' real paths.
pub fn overlay(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    legacy: bool,
    target: &Path,
    scratch: &Path,
) -> Result<(), MountError> {
    if lower.is_empty() {
        return Err(MountError(
            "overlay needs at least one lower directory".into(),
        ));
    }
    if !legacy {
        match overlay_new_api(lower, upper, work) {
            Ok(mnt) => {
                let dst = rustix::fs::open(
                    target,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(format!("open {}", target.display()), e))?;
                return attach(mnt.as_fd(), dst.as_fd(), "overlay");
            }
            Err(None) => {} // no lowerdir+: fall back
            Err(Some(e)) => return Err(e),
        }
    }
    let links = scratch.join("layers");
    std::fs::create_dir_all(&links)
        .map_err(|e| MountError(format!("create {}: {e}", links.display())))?;
    let mut lowerdir = String::new();
    for (i, dir) in lower.iter().enumerate() {
        let name = format!("{i:x}");
        std::os::unix::fs::symlink(dir, links.join(&name))
            .map_err(|e| MountError(format!("link layer {}: {e}", dir.display())))?;
        if i > 0 {
            lowerdir.push(':');
        }
        lowerdir.push_str(&name);
    }
    let mut data = format!("lowerdir={lowerdir}");
    for (k, v) in [("upperdir", upper), ("workdir", work)] {
        let v = v
            .to_str()
            .ok_or_else(|| MountError(format!("non-UTF-8 path {}", v.display())))?;
        if v.contains([',', ':', '\\']) {
            return Err(MountError(format!(
                "{k} {v:?} has a character overlayfs options cannot carry"
            )));
        }
        data.push_str(&format!(",{k}={v}"));
    }
    data.push_str(&format!(
        ",redirect_dir={},metacopy=off,volatile",
        redirect_dir()
    ));
    if crate::rootless::in_user_namespace() {
        data.push_str(",userxattr");
    }
    if data.len() >= 4096 {
        return Err(MountError(format!(
            "{} layers need a {}-byte option string, over the kernel's page",
            lower.len(),
            data.len()
        )));
    }
    let data =
        std::ffi::CString::new(data).map_err(|_| MountError("NUL in overlay options".into()))?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    rustix::process::chdir(&links).map_err(|e| err(format!("chdir {}", links.display()), e))?;
    let r = rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| err("mount overlay (lowerdir=)", e));
    let _ = rustix::process::chdir(&cwd);
    r
}

/// Renamed directories are copied up whole, never recorded as redirects (a layer tar has no way
/// to say "renamed"): `off`, or with `userxattr` (a user namespace) `nofollow`, the only mode
/// the kernel accepts with it (`off` may mean "follow" there, per `redirect_always_follow`).
fn redirect_dir() -> &'static str {
    if crate::rootless::in_user_namespace() {
        "nofollow"
    } else {
        "off"
    }
}

/// `Err(None)` when the kernel has no `lowerdir+`.
fn overlay_new_api(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<OwnedFd, Option<MountError>> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| Some(err("fsopen overlay", e)))?;
    fsconfig_set_string(&fs, "source", "overlay").map_err(|e| Some(err("overlay source", e)))?;
    for (i, dir) in lower.iter().enumerate() {
        match fsconfig_set_string(&fs, "lowerdir+", dir) {
            Ok(()) => {}
            Err(Errno::INVAL) if i == 0 => return Err(None),
            Err(e) => return Err(Some(err(format!("overlay lower {}", dir.display()), e))),
        }
    }
    for (k, v) in [
        ("upperdir", upper.as_os_str()),
        ("workdir", work.as_os_str()),
        ("redirect_dir", redirect_dir().as_ref()),
        ("metacopy", "off".as_ref()),
    ] {
        fsconfig_set_string(&fs, k, v).map_err(|e| Some(err(format!("overlay option {k}"), e)))?;
    }
    // `volatile`: no syncs of the upper filesystem, above all not the full `sync_filesystem` of
    // it that unmounting an overlay otherwise does when the container's namespace dies (tens
    // of ms on a busy disk, per step). A step's upper dir is a scratch area until the build
    // engine commits it as a layer, which is where durability belongs.
    fsconfig_set_flag(&fs, "volatile").map_err(|e| Some(err("overlay option volatile", e)))?;
    if crate::rootless::in_user_namespace() {
        fsconfig_set_flag(&fs, "userxattr")
            .map_err(|e| Some(err("overlay option userxattr", e)))?;
    }
    match fsconfig_create(&fs) {
        Ok(()) => {}
        // Before 6.5 overlayfs took fsconfig keys through the legacy adapter, which accepts any
        // key and only fails here: treat that as "no lowerdir+" too (if something else was
        // wrong, the legacy mount reports it).
        Err(Errno::INVAL) => return Err(None),
        Err(e) => return Err(Some(err("create overlay", e))),
    }
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| Some(err("fsmount overlay", e)))
}

/// Descriptor helper: borrow an `OwnedFd`.
pub fn b(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_clamps_at_root() {
        assert_eq!(normalize("/a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(normalize("../../etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(normalize("/"), PathBuf::new());
    }
}
