//! The one Merkle scheme whittle keys trees with: the build context's index, `COPY --from` a
//! stage or image (a union of snapshot directories), and bind-mount sources all digest their
//! files with these functions, so the same files give the same digest wherever they come from.
//!
//! An entry's digest covers what a copy of it reproduces: its kind, permission bits
//! (`mode & 0o7777`), owner, and content (a file's SHA-256, a link's target, a directory's
//! sorted children by name and digest, a device's type and number). Times are not in it: a
//! `touch` does not invalidate a copy, as in BuildKit. The context's files are digested with
//! owner 0:0, because that is what a COPY from the context gives them.
//!
//! Names are the `String`s of [`crate::names`] (bytes that are not UTF-8 escaped), so a digest
//! does not depend on which side of the context/snapshot seam produced the name.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The metadata an entry's digest covers besides its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits; the file-type bits are masked off.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    /// A context entry: root-owned, as a COPY from the context makes it.
    pub fn context(mode: u32) -> Meta {
        Meta {
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
        }
    }
}

fn entry(kind: &str, meta: Meta, tail: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(format!(
        "{:o}\0{}\0{}\0",
        meta.mode & 0o7777,
        meta.uid,
        meta.gid
    ));
    h.update(tail);
    h.finalize().into()
}

/// A regular file whose content has the SHA-256 `content` (see [`content`]).
pub fn file(meta: Meta, content: &Digest) -> Digest {
    entry("file", meta, content)
}

/// A symbolic link to `target` (a [`crate::names`] string).
pub fn symlink(meta: Meta, target: &str) -> Digest {
    entry("symlink", meta, target.as_bytes())
}

/// A FIFO, device or socket: `st_mode`'s type bits and the device number are its content.
pub fn special(meta: Meta, file_type: u32, rdev: u64) -> Digest {
    let mut tail = Vec::with_capacity(16);
    tail.extend_from_slice(&(file_type & 0o170000).to_le_bytes());
    tail.extend_from_slice(&rdev.to_le_bytes());
    entry("other", meta, &tail)
}

/// A directory's digest, fed its children in name order.
#[derive(Default)]
pub struct Dir {
    children: Sha256,
    any: bool,
}

impl Dir {
    pub fn new() -> Dir {
        Dir::default()
    }

    /// The next child (names must come in ascending order).
    pub fn child(&mut self, name: &str, digest: &Digest) {
        self.any = true;
        self.children.update(name.as_bytes());
        self.children.update([0]);
        self.children.update(digest);
    }

    /// Whether any child was added.
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    pub fn finish(self, meta: Meta) -> Digest {
        let children: Digest = self.children.finalize().into();
        entry("dir", meta, &children)
    }
}

/// The SHA-256 of everything `r` yields, and how many bytes that was (streamed).
pub fn content<R: Read>(mut r: R) -> io::Result<(Digest, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_kind_mode_owner_and_content() {
        let m = Meta::context(0o100644);
        assert_eq!(m.mode, 0o644);
        let c = content(&b"hi"[..]).unwrap().0;
        let f = file(m, &c);
        assert_ne!(f, file(Meta { mode: 0o755, ..m }, &c));
        assert_ne!(f, file(Meta { uid: 1, ..m }, &c));
        assert_ne!(f, file(m, &content(&b"ho"[..]).unwrap().0));
        assert_ne!(f, symlink(m, "hi"));
        let mut a = Dir::new();
        a.child("x", &f);
        let mut b = Dir::new();
        b.child("y", &f);
        assert_ne!(a.finish(m), b.finish(m));
        assert_eq!(file(m, &c), f, "deterministic");
    }
}
