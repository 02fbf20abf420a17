//! The copying snapshotter: what replaces overlay where the kernel refuses it (rootless, before
//! Linux 5.11). An overlay rootfs (lower dirs in overlay format, an empty upper dir) becomes a
//! plain directory: the lower dirs applied one over another ([`fill`]: whiteouts remove, opaque
//! dirs hide what is below), the container runs in it, and [`diff`] writes back into the upper
//! dir what overlay would have left there, so the layer is the same tar:
//!
//! - an entry counts as changed when its identity (inode and birth time) or ctime is not what
//!   [`fill`] left (ctime moves with every write, chmod, chown, rename or link, and cannot be
//!   set back);
//! - a changed entry is copied up with its parent dirs, as overlay copies up;
//! - an entry of the lower dirs that is gone becomes a whiteout (char device 0:0) when its
//!   dir is still the one [`fill`] made;
//! - a dir that was removed and made again (another identity) is copied whole and marked opaque,
//!   as overlay marks a dir made where one was removed.
//!
//! What overlay copies up on an open for writing that writes nothing is not seen here. Device
//! nodes are left out (the lower dirs have none: extraction skips them).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What [`fill`] left at each path (relative, "" is the root): identity and ctime.
#[derive(Debug, Default)]
pub struct Stamps {
    entries: HashMap<PathBuf, Stamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    /// The entry's identity: inode and birth time (file systems reuse a freed inode at once,
    /// so `rm -rf d && mkdir d` may give the same number; not the same birth).
    id: (u64, Option<std::time::SystemTime>),
    ctime: (i64, i64),
    dir: bool,
}

fn stamp(md: &fs::Metadata) -> Stamp {
    Stamp {
        id: (md.ino(), md.created().ok()),
        ctime: (md.ctime(), md.ctime_nsec()),
        dir: md.is_dir(),
    }
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            rustix::fs::lgetxattr(dir, *name, &mut buf).is_ok_and(|n| buf[..n] == *b"y")
        })
}

/// Applies `lower` (top-most first, overlay's order) to the empty directory `dest`, and
/// records what it made.
pub fn fill(lower: &[PathBuf], dest: &Path) -> io::Result<Stamps> {
    for layer in lower.iter().rev() {
        let mut links = HashMap::new();
        apply_dir(layer, dest, Path::new(""), &mut links)?;
    }
    let mut stamps = Stamps::default();
    record(dest, Path::new(""), &mut stamps)?;
    settle(dest, &stamps)?;
    Ok(stamps)
}

/// Waits until a change now would get a later ctime than any [`fill`] recorded: file systems
/// stamp times from a coarse clock (a few ms a tick), and a write in the same tick would
/// leave ctime as it was, unseen by [`diff`].
fn settle(dest: &Path, stamps: &Stamps) -> io::Result<()> {
    let latest = stamps.entries.values().map(|s| s.ctime).max();
    let probe = dest.with_extension("tick");
    for _ in 0..1000 {
        fs::write(&probe, b"")?;
        let now = fs::symlink_metadata(&probe)?;
        fs::remove_file(&probe)?;
        if Some((now.ctime(), now.ctime_nsec())) > latest {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(io::Error::other("the file system's clock does not advance"))
}

fn record(root: &Path, rel: &Path, stamps: &mut Stamps) -> io::Result<()> {
    let md = fs::symlink_metadata(root.join(rel))?;
    stamps.entries.insert(rel.to_path_buf(), stamp(&md));
    if md.is_dir() {
        for e in fs::read_dir(root.join(rel))? {
            record(root, &rel.join(e?.file_name()), stamps)?;
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// One layer's dir `rel` over `dest`.
fn apply_dir(
    layer: &Path,
    dest: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let src = layer.join(rel);
    let dst = dest.join(rel);
    let md = fs::symlink_metadata(&src)?;
    match fs::symlink_metadata(&dst) {
        Ok(d) if d.is_dir() => {
            if is_opaque(&src) {
                for e in fs::read_dir(&dst)? {
                    remove_any(&e?.path())?;
                }
            }
        }
        Ok(_) => {
            fs::remove_file(&dst)?;
            fs::create_dir(&dst)?;
        }
        Err(_) => fs::create_dir(&dst)?,
    }
    copy_xattrs(&src, &dst);
    for e in fs::read_dir(&src)? {
        let name = e?.file_name();
        let r = rel.join(&name);
        let emd = fs::symlink_metadata(layer.join(&r))?;
        if is_whiteout(&emd) {
            remove_any(&dest.join(&r))?;
        } else if emd.is_dir() {
            apply_dir(layer, dest, &r, links)?;
        } else {
            remove_any(&dest.join(&r))?;
            copy_entry(&layer.join(&r), &dest.join(&r), &emd, links)?;
        }
    }
    copy_meta(&dst, &md)
}

/// Copies a non-directory entry (a hard link to an earlier copy of the same inode).
fn copy_entry(
    src: &Path,
    dst: &Path,
    md: &fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let ft = md.file_type();
    if md.nlink() > 1 && !ft.is_dir() {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return fs::hard_link(first, dst);
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_fifo() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )?;
    } else {
        // Devices and sockets: not in snapshots (extraction skips devices), never copied.
        return Ok(());
    }
    copy_xattrs(src, dst);
    copy_meta(dst, md)
}

/// Owner, mode (after chown, which clears setuid bits), extended attributes (not overlay's)
/// and times of `md` onto `dst`.
fn copy_meta(dst: &Path, md: &fs::Metadata) -> io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps};
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        rustix::fs::chmod(dst, rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777))?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copies extended attributes other than overlay's from `src` to `dst` (best effort: a file
/// system without them has none to copy).
fn copy_xattrs(src: &Path, dst: &Path) {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names) else {
        return;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut value) {
            let _ =
                rustix::fs::lsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}

/// Writes into the empty overlay upper dir `upper` what changed in `dir` since [`fill`].
pub fn diff(dir: &Path, stamps: &Stamps, upper: &Path) -> io::Result<()> {
    let mut d = Differ {
        dir,
        stamps,
        upper,
        links: HashMap::new(),
    };
    d.walk(Path::new(""), false)?;
    // Entries of the lower dirs that are gone: a whiteout where their dir is the one fill made.
    let mut gone: Vec<&PathBuf> = stamps
        .entries
        .keys()
        .filter(|rel| !rel.as_os_str().is_empty())
        .filter(|rel| fs::symlink_metadata(dir.join(rel)).is_err())
        .collect();
    gone.sort();
    for rel in gone {
        let Some(parent) = rel.parent() else { continue };
        let same_parent = match (
            stamps.entries.get(parent),
            fs::symlink_metadata(dir.join(parent)),
        ) {
            (Some(s), Ok(now)) => now.is_dir() && stamp(&now).id == s.id,
            _ => false,
        };
        if !same_parent {
            continue;
        }
        d.parents(parent)?;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join(rel),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )?;
    }
    Ok(())
}

struct Differ<'a> {
    dir: &'a Path,
    stamps: &'a Stamps,
    upper: &'a Path,
    /// Inodes of `dir` already copied into `upper`, for hard links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Differ<'_> {
    /// `fresh`: inside a dir made during the run, where everything is new.
    fn walk(&mut self, rel: &Path, fresh: bool) -> io::Result<()> {
        let path = self.dir.join(rel);
        let md = fs::symlink_metadata(&path)?;
        let old = self.stamps.entries.get(rel);
        let changed = fresh || old.is_none_or(|o| *o != stamp(&md));
        if md.is_dir() {
            // Made again where fill made a dir: opaque, and all of it new.
            let remade = !fresh && old.is_some_and(|o| o.dir && o.id != stamp(&md).id);
            if changed {
                self.copy_dir(rel, &md)?;
                if remade {
                    rustix::fs::lsetxattr(
                        self.upper.join(rel),
                        opaque_xattr(),
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )?;
                }
            }
            let new_inside = fresh || remade || old.is_none();
            for e in fs::read_dir(&path)? {
                self.walk(&rel.join(e?.file_name()), new_inside)?;
            }
            if changed {
                // Children changed its times; set them again.
                copy_meta(&self.upper.join(rel), &md)?;
            }
        } else if changed && !md.file_type().is_char_device() && !md.file_type().is_block_device() {
            if let Some(parent) = rel.parent() {
                self.parents(parent)?;
            }
            let dst = self.upper.join(rel);
            remove_any(&dst)?;
            copy_entry(&path, &dst, &md, &mut self.links)?;
        }
        Ok(())
    }

    /// The upper dir's copy of `rel` and its parents, with their current metadata.
    fn parents(&mut self, rel: &Path) -> io::Result<()> {
        if self.upper.join(rel).is_dir() {
            return Ok(());
        }
        if let Some(p) = rel.parent() {
            self.parents(p)?;
        }
        let md = fs::symlink_metadata(self.dir.join(rel))?;
        self.copy_dir(rel, &md)
    }

    fn copy_dir(&mut self, rel: &Path, md: &fs::Metadata) -> io::Result<()> {
        if let Some(p) = rel.parent() {
            self.parents(p)?;
        }
        let dst = self.upper.join(rel);
        match fs::symlink_metadata(&dst) {
            Ok(d) if d.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&dst)?;
                fs::create_dir(&dst)?;
            }
            Err(_) => fs::create_dir(&dst)?,
        }
        copy_xattrs(&self.dir.join(rel), &dst);
        copy_meta(&dst, md)
    }
}

/// The opaque marker this process can set (see `rootless`): `user.overlay.opaque` in a user
/// namespace, where trusted xattrs are the host root's.
fn opaque_xattr() -> &'static str {
    if crate::rootless::in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}
