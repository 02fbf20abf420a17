//! [`OutputFile`]: a file written elsewhere (an archive for `save` or `build -o`) that appears
//! complete under its name or not at all, and leaves nothing behind when the writer is killed.
//!
//! The data goes to an unnamed `O_TMPFILE` in the destination's directory, which the kernel
//! frees if the process dies; only once it is complete and synced is it linked under a
//! temporary name and renamed over the destination. Filesystems without `O_TMPFILE` get a
//! named temporary file instead (the tempfile crate's, removed on every exit but SIGKILL).

use crate::error::{Result, StoreError};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file being written to `dest`; see the module docs.
pub struct OutputFile {
    dest: PathBuf,
    inner: Inner,
}

enum Inner {
    Unnamed(File),
    Named(tempfile::NamedTempFile),
}

impl OutputFile {
    /// Starts writing `dest` (an existing file is replaced only at [`OutputFile::commit`]).
    pub fn create(dest: &Path) -> Result<OutputFile> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let unnamed = rustix::fs::open(
            dir,
            rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o644),
        );
        let inner = match unnamed {
            Ok(fd) => Inner::Unnamed(File::from(fd)),
            Err(_) => Inner::Named(
                tempfile::Builder::new()
                    .prefix(".whittle-out-")
                    .tempfile_in(dir)
                    .map_err(|e| StoreError::io("create a temp file in", dir, e))?,
            ),
        };
        Ok(OutputFile {
            dest: dest.to_path_buf(),
            inner,
        })
    }

    fn file(&mut self) -> &mut File {
        match &mut self.inner {
            Inner::Unnamed(f) => f,
            Inner::Named(t) => t.as_file_mut(),
        }
    }

    /// Syncs the data and puts the file in place under its name.
    pub fn commit(mut self) -> Result<()> {
        let dest = self.dest.clone();
        let err = |op: &'static str| {
            let dest = dest.clone();
            move |e: io::Error| StoreError::io(op, dest, e)
        };
        self.file().sync_all().map_err(err("sync"))?;
        match self.inner {
            Inner::Named(t) => {
                t.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(err("chmod"))?;
                t.persist(&self.dest)
                    .map_err(|e| err("rename into")(e.error))?;
            }
            Inner::Unnamed(f) => {
                // Link the finished file under a fresh name beside the destination, then
                // rename: a destination that exists is replaced atomically.
                let dir = match self.dest.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
                let mut linked = None;
                for i in 0..100u32 {
                    let name = dir.join(format!(".whittle-out-{}-{i}", std::process::id()));
                    match rustix::fs::linkat(
                        rustix::fs::CWD,
                        proc_path.as_str(),
                        rustix::fs::CWD,
                        &name,
                        rustix::fs::AtFlags::SYMLINK_FOLLOW,
                    ) {
                        Ok(()) => {
                            linked = Some(name);
                            break;
                        }
                        Err(rustix::io::Errno::EXIST) => continue,
                        Err(e) => return Err(err("link")(e.into())),
                    }
                }
                let Some(name) = linked else {
                    return Err(err("link")(io::Error::other("no free temporary name")));
                };
                if let Err(e) = std::fs::rename(&name, &self.dest) {
                    let _ = std::fs::remove_file(&name);
                    return Err(err("rename into")(e));
                }
            }
        }
        crate::store::sync_dir(
            self.dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_when_committed_and_leaves_nothing_when_dropped() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out.tar");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = OutputFile::create(&dest).unwrap();
        f.write_all(b"new content").unwrap();
        // Nothing visible yet: the old file is intact and no temp file has a name.
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new content");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);

        let mut f = OutputFile::create(&t.path().join("never.tar")).unwrap();
        f.write_all(b"abandoned").unwrap();
        drop(f);
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.tar")]);
    }
}
