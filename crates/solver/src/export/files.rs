//! The image's files, copied out of the build's snapshot directories (read as one tree through
//! [`Merged`]) into a directory: what `-o DIR` and `-o type=tar` write. Nothing is compressed
//! or extracted again, and nothing is read from a layer blob.
//!
//! What lands in the directory is what extracting the image's layers would give:
//! - mtimes later than the build's epoch are clamped to it, as the layers clamp them (a
//!   snapshot keeps the build's real mtimes, which make and cargo need while building);
//! - owners are kept when running as root (not for a rootless `-o DIR`), modes (setuid included) and extended attributes
//!   too, except overlayfs's own;
//! - files linked several times in one snapshot are hard links again;
//! - device nodes and sockets are left out (counted), as extraction leaves devices out.
//!
//! The destination may already exist, as with BuildKit's local exporter: what the image has
//! replaces what is there, and other files are left alone. Nothing in it is followed: a
//! symlink at a path where the image has a directory is replaced, never written through, so
//! an old link to `/etc` cannot make the export write outside the directory.

use crate::merged::Merged;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use whittle_context::names;

/// A file the export could not read or write.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct FilesError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What [`copy_tree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesSummary {
    /// Entries written (files, directories, links, fifos).
    pub entries: u64,
    /// Bytes of regular files copied.
    pub bytes: u64,
    /// Device nodes and sockets left out.
    pub skipped: u64,
}

/// Copies the merged tree into `dest` (created if missing), with the image's owners when
/// running as root. See the module docs.
pub fn copy_tree(merged: &Merged, dest: &Path, epoch: u64) -> Result<FilesSummary, FilesError> {
    copy_tree_with(merged, dest, epoch, rustix::process::geteuid().is_root())
}

/// [`copy_tree`], keeping the image's owners only if `owners` (and running as root).
/// Rootless `-o DIR` passes false: the files are for the user, who could not remove files of
/// the namespace's other ids (`docs/rootless.md`); `-o type=tar` keeps them, its tar says who
/// owns what.
pub fn copy_tree_with(
    merged: &Merged,
    dest: &Path,
    epoch: u64,
    owners: bool,
) -> Result<FilesSummary, FilesError> {
    let err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| FilesError { what, path, source }
    };
    fs::create_dir_all(dest).map_err(err("creating", dest))?;
    let mut c = Copier {
        epoch,
        owners: owners && rustix::process::geteuid().is_root(),
        linked: HashMap::new(),
        summary: FilesSummary::default(),
    };
    if merged.layers().is_empty() {
        return Ok(c.summary);
    }
    c.copy_dir_contents(merged, "", dest)?;
    Ok(c.summary)
}

struct Copier {
    epoch: u64,
    owners: bool,
    /// (dev, inode) of a file with several links -> its first copy.
    linked: HashMap<(u64, u64), PathBuf>,
    summary: FilesSummary,
}

impl Copier {
    fn copy_dir_contents(
        &mut self,
        merged: &Merged,
        rel: &str,
        to: &Path,
    ) -> Result<(), FilesError> {
        let entries = merged.read_dir(rel).map_err(|source| FilesError {
            what: "reading the image's directory",
            path: PathBuf::from(format!("/{rel}")),
            source,
        })?;
        for (name, phys, md) in entries {
            let child_rel = if rel.is_empty() {
                names::encode(&name).into_owned()
            } else {
                format!("{rel}/{}", names::encode(&name))
            };
            let target = to.join(&name);
            self.copy_entry(merged, &child_rel, &phys, &md, &target)?;
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        merged: &Merged,
        rel: &str,
        phys: &Path,
        md: &fs::Metadata,
        target: &Path,
    ) -> Result<(), FilesError> {
        let ft = md.file_type();
        if ft.is_block_device() || ft.is_char_device() || ft.is_socket() {
            self.summary.skipped += 1;
            return Ok(());
        }
        let w = |what: &'static str| {
            let path = target.to_path_buf();
            move |source| FilesError { what, path, source }
        };
        clear_for(target, ft.is_dir()).map_err(w("replacing"))?;
        if ft.is_dir() {
            if fs::symlink_metadata(target).is_err() {
                fs::create_dir(target).map_err(w("creating"))?;
            }
            self.copy_dir_contents(merged, rel, target)?;
        } else if ft.is_symlink() {
            let link = fs::read_link(phys).map_err(|source| FilesError {
                what: "reading",
                path: phys.to_path_buf(),
                source,
            })?;
            std::os::unix::fs::symlink(&link, target).map_err(w("creating"))?;
        } else if ft.is_fifo() {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                target,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .map_err(io::Error::from)
            .map_err(w("creating"))?;
        } else {
            let key = (md.dev(), md.ino());
            if md.nlink() > 1 {
                if let Some(first) = self.linked.get(&key) {
                    fs::hard_link(first, target).map_err(w("linking"))?;
                    self.summary.entries += 1;
                    return Ok(());
                }
                self.linked.insert(key, target.to_path_buf());
            }
            // `fs::copy` uses copy_file_range: a reflink or an in-kernel copy where it can.
            let n = fs::copy(phys, target).map_err(w("copying to"))?;
            self.summary.bytes += n;
        }
        self.set_metadata(phys, md, target)
            .map_err(w("setting the metadata of"))?;
        self.summary.entries += 1;
        Ok(())
    }

    /// Owner, then mode (a chown clears setuid), xattrs, then times (last: writing the
    /// directory's entries changed its mtime).
    fn set_metadata(&self, phys: &Path, md: &fs::Metadata, target: &Path) -> io::Result<()> {
        let is_link = md.file_type().is_symlink();
        if self.owners {
            std::os::unix::fs::lchown(target, Some(md.uid()), Some(md.gid()))?;
        }
        if !is_link {
            fs::set_permissions(target, fs::Permissions::from_mode(md.mode() & 0o7777))?;
            copy_xattrs(phys, target)?;
        }
        let secs = md
            .mtime()
            .clamp(0, i64::try_from(self.epoch).unwrap_or(i64::MAX));
        let at = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            target,
            &rustix::fs::Timestamps {
                last_access: at,
                last_modification: at,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }
}

/// Makes room at `target` for a new entry: removes what is there unless it is a directory and
/// a directory is wanted. A symlink is removed, never followed.
fn clear_for(target: &Path, want_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && want_dir => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(target),
        Ok(_) => fs::remove_file(target),
    }
}

/// The extended attributes of `from` onto `to`, but overlayfs's own (whiteout and opaque
/// markers, redirects), which are the snapshot's bookkeeping, not the image's. `trusted.*` and
/// `security.*` need root; without it they are left out, as extraction leaves them out.
fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(from, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(rustix::io::Errno::RANGE) => {
            let need = rustix::fs::llistxattr(from, &mut [0u8; 0][..])?;
            names.resize(need, 0);
            rustix::fs::llistxattr(from, &mut names)?
        }
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let need = match rustix::fs::lgetxattr(from, name, &mut [0u8; 0][..]) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let mut value = vec![0u8; need];
        let Ok(got) = rustix::fs::lgetxattr(from, name, &mut value) else {
            continue;
        };
        match rustix::fs::lsetxattr(to, name, &value[..got], rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn merges_layers_keeps_links_and_never_writes_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        let out = t.path().join("out");
        let outside = t.path().join("outside");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(lower.join("etc/passwd"), "old").unwrap();
        fs::write(lower.join("etc/group"), "g").unwrap();
        fs::write(upper.join("etc/passwd"), "new").unwrap();
        fs::write(upper.join("a"), "x").unwrap();
        fs::hard_link(upper.join("a"), upper.join("b")).unwrap();
        symlink("etc/passwd", upper.join("l")).unwrap();
        // What a user's old output left behind: `etc` pointing outside.
        fs::create_dir_all(&out).unwrap();
        symlink(&outside, out.join("etc")).unwrap();
        fs::write(out.join("keep"), "mine").unwrap();

        let m = Merged::new(vec![upper, lower]);
        let s = copy_tree(&m, &out, 0).unwrap();
        assert_eq!(fs::read_to_string(out.join("etc/passwd")).unwrap(), "new");
        assert_eq!(fs::read_to_string(out.join("etc/group")).unwrap(), "g");
        assert!(fs::symlink_metadata(out.join("etc")).unwrap().is_dir());
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "wrote through a link"
        );
        assert_eq!(fs::read_to_string(out.join("keep")).unwrap(), "mine");
        let (a, b) = (
            fs::metadata(out.join("a")).unwrap(),
            fs::metadata(out.join("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            fs::read_link(out.join("l")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(a.mtime(), 0, "mtime clamped to the epoch");
        assert_eq!(s.bytes, 3 + 1 + 1);
    }

    #[test]
    fn whiteouts_hide_lower_files() {
        if !rustix::process::geteuid().is_root() {
            return; // a whiteout is a char device 0:0, which needs CAP_MKNOD
        }
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        fs::create_dir_all(&lower).unwrap();
        fs::create_dir_all(&upper).unwrap();
        fs::write(lower.join("gone"), "x").unwrap();
        fs::write(lower.join("kept"), "x").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
        let out = t.path().join("out");
        copy_tree(&Merged::new(vec![upper, lower]), &out, u64::MAX).unwrap();
        assert!(!out.join("gone").exists());
        assert!(out.join("kept").exists());
    }
}
