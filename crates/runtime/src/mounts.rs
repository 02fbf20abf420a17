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
    crate::sys::mount_setattr_readonly(mnt, 0)
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

/// Mounts an overlay of `lower` (top-most first) with `upper`/`work` and returns it detached.
///
/// With `lowerdir+` (Linux 6.8+) every layer is its own `fsconfig` call, so the number of
/// layers is bounded only by overlayfs (500), not by the 4096-byte option page. Older kernels
/// get one `lowerdir=` string of paths relative to the layers' common parent (we `chdir` there),
/// which keeps e.g. 100 `…/snapshots/<64 hex>` layers well under the limit.
pub fn overlay(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    legacy: bool,
) -> Result<OwnedFd, MountError> {
    if lower.is_empty() {
        return Err(MountError(
            "overlay needs at least one lower directory".into(),
        ));
    }
    let fs =
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen overlay", e))?;
    let mut use_legacy = legacy;
    if !use_legacy {
        for dir in lower {
            match fsconfig_set_string(&fs, "lowerdir+", dir) {
                Ok(()) => {}
                // The kernel has no `lowerdir+` (pre-6.8): fall back to one string.
                Err(Errno::INVAL) if dir == &lower[0] => {
                    use_legacy = true;
                    break;
                }
                Err(e) => return Err(err(format!("overlay lower {}", dir.display()), e)),
            }
        }
    }
    let fs = if use_legacy {
        drop(fs);
        let fs =
            fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen overlay", e))?;
        let base = common_parent(lower);
        rustix::process::chdir(&base).map_err(|e| err(format!("chdir {}", base.display()), e))?;
        let mut s = String::new();
        for (i, dir) in lower.iter().enumerate() {
            let rel = dir.strip_prefix(&base).unwrap_or(dir);
            let text = rel
                .to_str()
                .ok_or_else(|| MountError(format!("non-UTF-8 layer path {}", dir.display())))?;
            if i > 0 {
                s.push(':');
            }
            // overlayfs splits on ':' and ',' unless escaped.
            for ch in text.chars() {
                if matches!(ch, ':' | ',' | '\\') {
                    s.push('\\');
                }
                s.push(ch);
            }
        }
        if s.len() >= 4000 {
            return Err(MountError(format!(
                "{} layers make a {}-byte lowerdir= option, over the kernel's page limit, and this kernel has no lowerdir+",
                lower.len(),
                s.len()
            )));
        }
        fsconfig_set_string(&fs, "lowerdir", s.as_str()).map_err(|e| err("overlay lowerdir", e))?;
        fs
    } else {
        fs
    };
    for (k, v) in [
        ("upperdir", upper.as_os_str()),
        ("workdir", work.as_os_str()),
        ("redirect_dir", "off".as_ref()),
        ("metacopy", "off".as_ref()),
    ] {
        fsconfig_set_string(&fs, k, v).map_err(|e| err(format!("overlay option {k}"), e))?;
    }
    fsconfig_create(&fs).map_err(|e| err("create overlay", e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| err("fsmount overlay", e))?;
    if use_legacy {
        rustix::process::chdir("/").map_err(|e| err("chdir /", e))?;
    }
    Ok(mnt)
}

fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut base = paths[0]
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    for p in &paths[1..] {
        while !p.starts_with(&base) {
            if !base.pop() {
                return PathBuf::from("/");
            }
        }
    }
    base
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

    #[test]
    fn common_parent_of_layers() {
        let l = vec![
            PathBuf::from("/s/snap/1/fs"),
            PathBuf::from("/s/snap/2/fs"),
            PathBuf::from("/s/other/x"),
        ];
        assert_eq!(common_parent(&l), PathBuf::from("/s"));
        assert_eq!(common_parent(&l[..1]), PathBuf::from("/s/snap/1"));
    }
}
