//! Layers kept as directories (a build's snapshots, overlayfs upper directories): each is walked
//! as its tar would be read, so the same scan (`scan.rs`) and stacking (`stack.rs`) catalogue
//! them. A whiteout is a character device 0/0, an opaque directory carries the
//! `trusted.overlay.opaque` (or `user.overlay.opaque`) attribute `y`.
//!
//! Entries come in name order (deterministic), symbolic links are never followed (a file is
//! opened with `O_NOFOLLOW`, on its first read: only the files a cataloger wants are opened,
//! and only real directories are entered), and the walk stops at
//! [`whittle_analyze::Limits::max_entries`].

use crate::error::{Result, SbomError};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use whittle_analyze::layers::{Entry, EntryKind};

/// One layer as a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirLayer {
    /// The directory.
    pub dir: PathBuf,
    /// The digest of the layer's tar, when known (it names the layer in the SBOM).
    pub diff_id: Option<String>,
}

fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            matches!(rustix::fs::lgetxattr(dir, *name, &mut buf), Ok(1) if buf[0] == b'y')
        })
}

/// A file opened on its first read: the scan reads only the files a cataloger wants, so the
/// others cost no `open`, and one that cannot be opened fails only if it is wanted.
struct LazyFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl LazyFile {
    fn new(path: PathBuf) -> Self {
        LazyFile { path, file: None }
    }
}

impl Read for LazyFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&self.path)?,
            ),
        };
        f.read(buf)
    }
}

fn io_err(layer: usize, path: &Path, source: std::io::Error) -> SbomError {
    SbomError::Read {
        layer,
        path: path.display().to_string(),
        source,
    }
}

/// Calls `f` for every entry of the layer `index` kept in `dir`.
pub fn walk(
    index: usize,
    dir: &Path,
    limits: &whittle_analyze::Limits,
    f: &mut dyn FnMut(&Entry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut count: u64 = 0;
    if is_opaque(dir) {
        f(
            &Entry {
                key: Vec::new(),
                kind: EntryKind::Opaque,
                mode: 0,
                size: 0,
            },
            &mut std::io::empty(),
        )?;
    }
    // Directories still to read: (key, path), popped in reverse name order so that entries
    // come out depth first in name order.
    let mut todo: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), dir.to_path_buf())];
    while let Some((key, path)) = todo.pop() {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(&path)
            .map_err(|e| io_err(index, &path, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| io_err(index, &path, e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            count += 1;
            if count > limits.max_entries {
                return Err(whittle_analyze::AnalyzeError::InvalidInput(format!(
                    "layer {index} has more than {} entries",
                    limits.max_entries
                ))
                .into());
            }
            let p = path.join(&name);
            let mut k = key.clone();
            if !k.is_empty() {
                k.push(0);
            }
            k.extend_from_slice(name.as_bytes());
            let md = fs::symlink_metadata(&p).map_err(|e| io_err(index, &p, e))?;
            let ft = md.file_type();
            let mode = md.mode() & 0o7777;
            let mut entry = Entry {
                key: k,
                kind: EntryKind::Special,
                mode,
                size: 0,
            };
            if ft.is_dir() {
                entry.kind = EntryKind::Dir;
                f(&entry, &mut std::io::empty())?;
                if is_opaque(&p) {
                    entry.kind = EntryKind::Opaque;
                    f(&entry, &mut std::io::empty())?;
                }
                subdirs.push((entry.key, p));
            } else if ft.is_file() {
                entry.kind = EntryKind::File;
                entry.size = md.len();
                f(&entry, &mut LazyFile::new(p))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&p).map_err(|e| io_err(index, &p, e))?;
                entry.kind = EntryKind::Symlink(target.as_os_str().as_bytes().to_vec());
                f(&entry, &mut std::io::empty())?;
            } else if ft.is_char_device() && md.rdev() == 0 {
                entry.kind = EntryKind::Whiteout(entry.key.clone());
                f(&entry, &mut std::io::empty())?;
            } else {
                f(&entry, &mut std::io::empty())?;
            }
        }
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<(String, EntryKind)> {
        let mut out = Vec::new();
        walk(0, dir, &whittle_analyze::Limits::default(), &mut |e, _| {
            out.push((
                String::from_utf8_lossy(&e.key).replace('\0', "/"),
                e.kind.clone(),
            ));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn walks_in_name_order_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("b/c")).unwrap();
        fs::write(d.path().join("b/c/f"), b"x").unwrap();
        fs::write(d.path().join("a"), b"y").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("l")).unwrap();
        let got = entries(d.path());
        assert_eq!(
            got,
            [
                ("a".to_string(), EntryKind::File),
                ("b".into(), EntryKind::Dir),
                ("l".into(), EntryKind::Symlink(b"/etc".to_vec())),
                ("b/c".into(), EntryKind::Dir),
                ("b/c/f".into(), EntryKind::File),
            ]
        );
    }

    #[test]
    fn files_are_read_through_the_reader_and_links_are_not_opened() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), b"content").unwrap();
        let mut got = Vec::new();
        walk(
            0,
            d.path(),
            &whittle_analyze::Limits::default(),
            &mut |e, r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).unwrap();
                got.push((e.size, v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, [(7, b"content".to_vec())]);
        // O_NOFOLLOW: a file that became a link is refused, not followed.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(d.path().join("f"), dir.path().join("l")).unwrap();
        let mut lazy = LazyFile::new(dir.path().join("l"));
        assert!(lazy.read(&mut [0u8; 4]).is_err());
    }

    #[test]
    fn stops_at_the_entry_limit() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..5 {
            fs::write(d.path().join(i.to_string()), b"").unwrap();
        }
        let limits = whittle_analyze::Limits {
            max_entries: 4,
            ..Default::default()
        };
        assert!(walk(0, d.path(), &limits, &mut |_, _| Ok(())).is_err());
    }
}
