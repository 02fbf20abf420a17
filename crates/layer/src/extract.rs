//! Safe extraction of untrusted layers into a root directory.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`: `..` and absolute
//! symlinks planted by earlier entries (or already in the root) are resolved as if the root were
//! `/`, so no lookup can leave it, whatever chain of symlinks a layer builds. Only the parent
//! directory of an entry is resolved that way; the entry itself is created relative to that
//! directory fd with `*at` calls that never follow a final symlink (`O_NOFOLLOW`, `O_EXCL`,
//! `AT_SYMLINK_NOFOLLOW`). On top of that, names with a `..` component or a NUL byte are refused
//! with a typed error naming the entry, leading `/` is dropped, and hard link targets are resolved
//! inside the root too. Needs Linux 5.6+ (openat2).

use crate::compress::decompress;
use crate::digest::{Digest, HashingReader};
use crate::error::ExtractError;
use crate::write::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// What to do with whiteout entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Apply them: `.wh.x` deletes `x` from the root, `.wh..wh..opq` empties its directory of
    /// what earlier layers put there (for flattening layers into one tree).
    #[default]
    Apply,
    /// Turn them into overlayfs whiteouts (char device 0:0, `trusted.overlay.opaque=y`), for a
    /// snapshot dir used as an overlay lower dir. Needs root; in a user namespace (rootless,
    /// where trusted xattrs are the host root's) opaque dirs get `user.overlay.opaque=y`, what
    /// overlay mounted with `userxattr` reads.
    Overlay,
}

/// What to do with block and character device entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DevicePolicy {
    /// Create them (needs CAP_MKNOD).
    Create,
    /// Leave them out and count them in [`ExtractSummary::skipped_devices`].
    #[default]
    Skip,
    /// Refuse the layer with [`ExtractError::DeviceNotPermitted`].
    Reject,
}

/// Options for [`extract_layer`].
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Whiteout handling (default: apply).
    pub whiteouts: WhiteoutMode,
    /// Device node handling (default: skip).
    pub devices: DevicePolicy,
    /// chown entries to their uid/gid (default: when running as root).
    pub preserve_ownership: bool,
    /// Restore extended attributes (default: true; `trusted.*`/`security.*` only as root,
    /// overlay-internal ones never; not on symlinks and device nodes, which Linux does not allow
    /// `user.*` xattrs on).
    pub xattrs: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ExtractOptions {
            whiteouts: WhiteoutMode::Apply,
            devices: DevicePolicy::Skip,
            preserve_ownership: root,
            xattrs: true,
        }
    }
}

/// What extraction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractSummary {
    /// sha256 of the uncompressed tar stream (compare with the config's diff id).
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Entries in the tar (PAX headers not counted).
    pub entries: u64,
    /// Device entries left out under [`DevicePolicy::Skip`].
    pub skipped_devices: u64,
}

/// Extracts a layer blob (gzip, zstd or plain tar, detected from its first bytes) into `root`,
/// which must exist. Streams: memory use does not depend on the layer size.
pub fn extract_layer<R: Read>(
    blob: R,
    root: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractSummary, ExtractError> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::Root(root.to_path_buf(), e.into()))?;
    let (_, reader) =
        decompress(BufReader::with_capacity(256 * 1024, blob)).map_err(ExtractError::Read)?;
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let mut x = Extractor {
        root: root_fd,
        opts: opts.clone(),
        cache: None,
        created: HashSet::new(),
        dirs: Vec::new(),
        entries: 0,
        skipped_devices: 0,
    };
    for entry in archive.entries().map_err(ExtractError::Read)? {
        let entry = entry.map_err(ExtractError::Read)?;
        x.entry(entry)?;
    }
    x.finish_dirs()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(ExtractError::Read)?;
    let (_, diff_id, uncompressed_size) = rest.finish();
    Ok(ExtractSummary {
        diff_id,
        uncompressed_size,
        entries: x.entries,
        skipped_devices: x.skipped_devices,
    })
}

/// Splits a tar path into clean components: empty and `.` components dropped (so a leading `/`
/// is neutralised), `..` and NUL refused.
fn clean(raw: &[u8], entry: &str) -> Result<Vec<Vec<u8>>, ExtractError> {
    if raw.contains(&0) {
        return Err(ExtractError::NulByte {
            entry: entry.to_string(),
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(ExtractError::PathTraversal {
                    entry: entry.to_string(),
                })
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn cstr(b: &[u8]) -> CString {
    // Components never contain NUL: `clean` refused them.
    CString::new(b.to_vec()).unwrap_or_default()
}

struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Extractor {
    root: OwnedFd,
    opts: ExtractOptions,
    /// Last resolved parent directory (path, fd), reused by consecutive regular files: taken by
    /// [`Extractor::parent`], given back after a regular file that removed nothing.
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Paths this layer created (for opaque markers, which hide only what lies below).
    created: HashSet<Vec<u8>>,
    /// Directories whose mode and mtime are set at the end, after their contents.
    dirs: Vec<(Vec<u8>, u32, u64)>,
    entries: u64,
    skipped_devices: u64,
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Extractor {
    /// Opens `path` (clean components) as a directory, resolving it inside the root.
    fn open_in_root(&self, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let p = if path.is_empty() {
            cstr(b".")
        } else {
            cstr(path)
        };
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.root,
                p.as_c_str(),
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                resolve_flags(),
            ) {
                // The kernel asks to retry when a rename raced with `..` resolution.
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                // Without openat2 there is no safe way to resolve in the root here: refuse.
                Err(Errno::NOSYS) => return Err(Errno::NOSYS),
                r => return r,
            }
        }
    }

    /// The directory fd of `parent`, creating missing directories (0755) inside the root.
    fn parent(&mut self, parent: &[Vec<u8>], entry: &str) -> Result<OwnedFd, ExtractError> {
        let path = join(parent);
        if self.cache.as_ref().is_some_and(|(p, _)| *p == path) {
            if let Some((_, fd)) = self.cache.take() {
                return Ok(fd);
            }
        }
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let fd = match self.open_in_root(&path, dir_flags) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let mut cur = rustix::io::dup(&self.root)
                    .map_err(|e| ExtractError::io(entry, "dup", e.into()))?;
                for i in 0..parent.len() {
                    let prefix = join(&parent[..=i]);
                    cur = match self.open_in_root(&prefix, dir_flags) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT) => {
                            match rustix::fs::mkdirat(
                                &cur,
                                cstr(&parent[i]).as_c_str(),
                                Mode::from_raw_mode(0o755),
                            ) {
                                Ok(()) => {}
                                Err(Errno::EXIST) => {
                                    return Err(ExtractError::ParentNotDirectory {
                                        entry: entry.to_string(),
                                    })
                                }
                                Err(e) => {
                                    return Err(ExtractError::io(entry, "mkdir parent", e.into()))
                                }
                            }
                            self.open_in_root(&prefix, dir_flags)
                                .map_err(|e| ExtractError::io(entry, "open parent", e.into()))?
                        }
                        Err(Errno::NOTDIR) => {
                            return Err(ExtractError::ParentNotDirectory {
                                entry: entry.to_string(),
                            })
                        }
                        Err(e) => return Err(ExtractError::io(entry, "resolve parent", e.into())),
                    };
                }
                cur
            }
            Err(Errno::NOTDIR) => {
                return Err(ExtractError::ParentNotDirectory {
                    entry: entry.to_string(),
                })
            }
            Err(e) => return Err(ExtractError::io(entry, "resolve parent", e.into())),
        };
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw_path = e.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = e.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        self.entries += 1;
        let comps = clean(&raw_path, &name)?;
        let hdr = e.header();
        let mut meta = Meta {
            mode: hdr
                .mode()
                .map_err(|err| ExtractError::io(&name, "read mode", err))?
                & 0o7777,
            // Some writers leave these fields blank: read blank as 0 rather than refuse the layer.
            uid: hdr.uid().unwrap_or(0),
            gid: hdr.gid().unwrap_or(0),
            mtime: hdr.mtime().unwrap_or(0),
            xattrs: Vec::new(),
        };
        let device = (
            hdr.device_major().ok().flatten().unwrap_or(0),
            hdr.device_minor().ok().flatten().unwrap_or(0),
        );
        let link = e.link_name_bytes().map(|l| l.into_owned());
        if let Some(exts) = e
            .pax_extensions()
            .map_err(|err| ExtractError::io(&name, "read PAX header", err))?
        {
            for ext in exts {
                let ext = ext.map_err(|err| ExtractError::io(&name, "read PAX header", err))?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                };
                if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    meta.xattrs.push((x.to_string(), value.to_vec()));
                } else if key == "uid" {
                    meta.uid = num().unwrap_or(meta.uid);
                } else if key == "gid" {
                    meta.gid = num().unwrap_or(meta.gid);
                } else if key == "mtime" {
                    if let Some(s) = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
                    {
                        meta.mtime = s;
                    }
                }
            }
        }
        let Some((base, parent)) = comps.split_last() else {
            // The root itself ("./" or "/"): only a directory may name it, and it is left alone.
            return if kind == tar::EntryType::Directory {
                Ok(())
            } else {
                Err(ExtractError::ReplacesRoot { entry: name })
            };
        };
        let base = base.clone();
        let parent = parent.to_vec();

        // Whiteouts.
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            self.cache = None;
            return self.whiteout(&parent, target, &name);
        }

        let regular = matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        );
        if !regular {
            self.cache = None;
        }
        let pfd = self.parent(&parent, &name)?;
        let b = cstr(&base);
        let is_dir = kind == tar::EntryType::Directory;
        if matches!(kind, tar::EntryType::Block | tar::EntryType::Char) {
            match self.opts.devices {
                DevicePolicy::Create => {}
                DevicePolicy::Skip => {
                    self.skipped_devices += 1;
                    return Ok(());
                }
                DevicePolicy::Reject => {
                    return Err(ExtractError::DeviceNotPermitted { entry: name })
                }
            }
        }
        // Make room: anything at the name goes, except a directory that stays a directory.
        // (Regular files try to create first and make room only if the name is taken.)
        let existing = if regular {
            Err(Errno::NOENT)
        } else {
            rustix::fs::statat(&pfd, b.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        };
        match existing {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if !(existing_dir && is_dir) {
                    self.cache = None;
                    remove_at(&pfd, &base)
                        .map_err(|err| ExtractError::io(&name, "remove existing", err))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(err) => return Err(ExtractError::io(&name, "stat", err.into())),
        }
        let mut full = join(&parent);
        if !full.is_empty() {
            full.push(b'/');
        }
        full.extend_from_slice(&base);
        self.created.insert(full.clone());
        let ename = name.clone();
        let io = move |op: &'static str| {
            let ename = ename.clone();
            move |err: Errno| ExtractError::io(&ename, op, err.into())
        };
        match kind {
            // GNU sparse files read back with their holes filled in by the tar crate.
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let create = || {
                    rustix::fs::openat(
                        &pfd,
                        b.as_c_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                };
                let mut removed = false;
                let fd = match create() {
                    Err(Errno::EXIST) => {
                        // Whatever is there (file, symlink, directory tree) goes, unfollowed.
                        removed = true;
                        remove_at(&pfd, &base)
                            .map_err(|err| ExtractError::io(&name, "remove existing", err))?;
                        create()
                    }
                    r => r,
                }
                .map_err(io("create file"))?;
                let mut f = File::from(fd);
                io::copy(&mut e, &mut f)
                    .map_err(|err| ExtractError::io(&name, "write file", err))?;
                self.apply_fd(f.as_fd(), &meta, &name, true)?;
                if !removed {
                    self.cache = Some((join(&parent), pfd));
                }
            }
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&pfd, b.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(err) => return Err(io("mkdir")(err)),
                }
                let fd = rustix::fs::openat(
                    &pfd,
                    b.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io("open dir"))?;
                self.apply_fd(fd.as_fd(), &meta, &name, false)?;
                self.dirs.push((full, meta.mode, meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = link.unwrap_or_default();
                if target.contains(&0) {
                    return Err(ExtractError::NulByte { entry: name });
                }
                rustix::fs::symlinkat(cstr(&target).as_c_str(), &pfd, b.as_c_str())
                    .map_err(io("symlink"))?;
                self.apply_at(&pfd, &b, &meta, &name, false)?;
            }
            tar::EntryType::Link => {
                let target = link.unwrap_or_default();
                let tname = String::from_utf8_lossy(&target).into_owned();
                let tcomps = clean(&target, &name).map_err(|_| ExtractError::LinkTraversal {
                    entry: name.clone(),
                    target: tname.clone(),
                })?;
                let Some((tbase, tparent)) = tcomps.split_last() else {
                    return Err(ExtractError::LinkToDirectory {
                        entry: name,
                        target: tname,
                    });
                };
                let tfd = match self.open_in_root(&join(tparent), OFlags::PATH | OFlags::DIRECTORY)
                {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::NOTDIR) => {
                        return Err(ExtractError::LinkTargetMissing {
                            entry: name,
                            target: tname,
                        })
                    }
                    Err(err) => return Err(io("resolve link target")(err)),
                };
                match rustix::fs::linkat(
                    &tfd,
                    cstr(tbase).as_c_str(),
                    &pfd,
                    b.as_c_str(),
                    AtFlags::empty(),
                ) {
                    Ok(()) => {}
                    Err(Errno::NOENT) => {
                        return Err(ExtractError::LinkTargetMissing {
                            entry: name,
                            target: tname,
                        })
                    }
                    Err(Errno::PERM) => {
                        return Err(ExtractError::LinkToDirectory {
                            entry: name,
                            target: tname,
                        })
                    }
                    Err(err) => return Err(io("hard link")(err)),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(device.0, device.1);
                rustix::fs::mknodat(&pfd, b.as_c_str(), ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(io("mknod"))?;
                self.apply_at(&pfd, &b, &meta, &name, true)?;
            }
            other => {
                return Err(ExtractError::UnsupportedType {
                    entry: name,
                    kind: format!("{other:?}"),
                });
            }
        }
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        target: &[u8],
        name: &str,
    ) -> Result<(), ExtractError> {
        let opaque = target == &OPAQUE_MARKER.as_bytes()[WHITEOUT_PREFIX.len()..];
        if !opaque && target.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are aufs metadata (hard link dirs etc.): not content.
            return Ok(());
        }
        if !opaque && (target.is_empty() || target == b"." || target == b"..") {
            return Err(ExtractError::InvalidWhiteout {
                entry: name.to_string(),
            });
        }
        let ppath = join(parent);
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let pfd = match self.open_in_root(&ppath, OFlags::RDONLY | OFlags::DIRECTORY) {
                    Ok(fd) => fd,
                    // Nothing there to hide.
                    Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()),
                    Err(e) => {
                        return Err(ExtractError::io(name, "resolve whiteout parent", e.into()))
                    }
                };
                if opaque {
                    for child in
                        list_dir(&pfd).map_err(|e| ExtractError::io(name, "list opaque dir", e))?
                    {
                        let mut full = ppath.clone();
                        if !full.is_empty() {
                            full.push(b'/');
                        }
                        full.extend_from_slice(&child);
                        if !self.created.contains(&full) {
                            remove_at(&pfd, &child)
                                .map_err(|e| ExtractError::io(name, "apply opaque marker", e))?;
                        }
                    }
                } else {
                    match remove_at(&pfd, target) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(ExtractError::io(name, "apply whiteout", e)),
                    }
                }
            }
            WhiteoutMode::Overlay => {
                let pfd = self.parent(parent, name)?;
                if opaque {
                    let dfd = self
                        .open_in_root(&ppath, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(|e| ExtractError::io(name, "open opaque dir", e.into()))?;
                    set_opaque(&dfd)
                        .map_err(|e| ExtractError::io(name, "set opaque xattr", e.into()))?;
                } else {
                    let t = cstr(target);
                    match remove_at(&pfd, target) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(ExtractError::io(name, "replace with whiteout", e)),
                    }
                    rustix::fs::mknodat(
                        &pfd,
                        t.as_c_str(),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        0,
                    )
                    .map_err(|e| ExtractError::io(name, "create overlay whiteout", e.into()))?;
                }
            }
        }
        Ok(())
    }

    fn keep_xattr(&self, key: &str) -> bool {
        if !self.opts.xattrs
            || key.starts_with("trusted.overlay.")
            || key.starts_with("user.overlay.")
        {
            return false;
        }
        self.opts.preserve_ownership || key.starts_with("user.")
    }

    /// Ownership, mode, xattrs and times through an fd (files; directories get mode/mtime later).
    fn apply_fd(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        m: &Meta,
        name: &str,
        mode_and_time: bool,
    ) -> Result<(), ExtractError> {
        if self.opts.preserve_ownership {
            rustix::fs::fchown(fd, Some(uid(m.uid)), Some(gid(m.gid)))
                .map_err(|e| ExtractError::io(name, "chown", e.into()))?;
        }
        for (k, v) in &m.xattrs {
            if self.keep_xattr(k) {
                match rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
                    Ok(()) | Err(Errno::OPNOTSUPP) => {}
                    Err(e) => return Err(ExtractError::io(name, "set xattr", e.into())),
                }
            }
        }
        if mode_and_time {
            // After chown, which clears setuid/setgid.
            rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode))
                .map_err(|e| ExtractError::io(name, "chmod", e.into()))?;
            rustix::fs::futimens(fd, &times(m.mtime))
                .map_err(|e| ExtractError::io(name, "set times", e.into()))?;
        }
        Ok(())
    }

    /// Ownership, mode and times by name in `dir` without following a symlink (symlinks, nodes).
    fn apply_at(
        &self,
        dir: &OwnedFd,
        base: &CString,
        m: &Meta,
        name: &str,
        chmod: bool,
    ) -> Result<(), ExtractError> {
        if self.opts.preserve_ownership {
            rustix::fs::chownat(
                dir,
                base.as_c_str(),
                Some(uid(m.uid)),
                Some(gid(m.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| ExtractError::io(name, "chown", e.into()))?;
        }
        if chmod {
            // Only for device nodes and fifos, never symlinks (Linux has no lchmod).
            rustix::fs::chmodat(
                dir,
                base.as_c_str(),
                Mode::from_raw_mode(m.mode),
                AtFlags::empty(),
            )
            .map_err(|e| ExtractError::io(name, "chmod", e.into()))?;
        }
        rustix::fs::utimensat(
            dir,
            base.as_c_str(),
            &times(m.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| ExtractError::io(name, "set times", e.into()))?;
        Ok(())
    }

    /// Directory modes and mtimes, deepest first, once their contents are in place.
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, mode, mtime) in dirs.into_iter().rev() {
            let name = String::from_utf8_lossy(&path).into_owned();
            let fd = match self
                .open_in_root(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
            {
                Ok(fd) => fd,
                // Replaced or removed by a later entry of the same layer.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(ExtractError::io(&name, "reopen dir", e.into())),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| ExtractError::io(&name, "chmod", e.into()))?;
            rustix::fs::futimens(&fd, &times(mtime))
                .map_err(|e| ExtractError::io(&name, "set times", e.into()))?;
        }
        Ok(())
    }
}

fn uid(v: u64) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u32::try_from(v).unwrap_or(u32::MAX - 1))
}

fn gid(v: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(u32::try_from(v).unwrap_or(u32::MAX - 1))
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Names in a directory (without `.` and `..`).
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir` and, for a directory, everything below it, never following symlinks.
pub(crate) fn remove_at(dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let c = cstr(name);
    let st = rustix::fs::statat(dir, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            c.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in list_dir(&sub)? {
            remove_at(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, c.as_c_str(), AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, c.as_c_str(), AtFlags::empty())?;
    }
    Ok(())
}

/// Marks a directory opaque for overlayfs: `trusted.overlay.opaque=y`, or, where the kernel
/// refuses trusted xattrs (EPERM: a user namespace), `user.overlay.opaque=y`, which overlay reads
/// when mounted with `userxattr` (as whittle's runtime mounts it in a user namespace).
fn set_opaque(dir: &OwnedFd) -> rustix::io::Result<()> {
    match rustix::fs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty()) {
        Err(rustix::io::Errno::PERM) => {
            rustix::fs::fsetxattr(dir, "user.overlay.opaque", b"y", XattrFlags::empty())
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let c = |p: &str| clean(p.as_bytes(), p).map(|v| join(&v));
        assert_eq!(c("a/b/c").unwrap(), b"a/b/c");
        assert_eq!(c("/a//./b/").unwrap(), b"a/b");
        assert_eq!(c("./").unwrap(), b"");
        assert!(matches!(
            c("a/../b"),
            Err(ExtractError::PathTraversal { .. })
        ));
        assert!(matches!(c("../a"), Err(ExtractError::PathTraversal { .. })));
        assert!(matches!(
            clean(b"a\0b", "x"),
            Err(ExtractError::NulByte { .. })
        ));
    }
}
