//! A read-only union view over a stack of snapshot directories in overlayfs format (what the
//! kernel would show if they were mounted as lower dirs): a char device 0:0 hides the same name
//! below it, a directory with `trusted.overlay.opaque=y` hides everything below it in lower
//! layers. Used to read another stage's files (`COPY --from`), the image's `/etc/passwd` for
//! `--chown` names, and what already exists at a `COPY` destination, without mounting anything.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The stack, top-most layer first (overlayfs `lowerdir=` order).
#[derive(Debug, Clone, Default)]
pub struct Merged {
    layers: Vec<PathBuf>,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        let mut buf = [0u8; 4];
        if let Ok(n) = rustix::fs::lgetxattr(dir, name, &mut buf) {
            if buf[..n] == *b"y" {
                return true;
            }
        }
    }
    false
}

/// Splits a slash path into its normal components (`/a/./b/` is `["a", "b"]`; `..` is refused
/// by the callers, who resolve paths first).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

impl Merged {
    pub fn new(layers_top_first: Vec<PathBuf>) -> Self {
        Merged {
            layers: layers_top_first,
        }
    }

    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The physical locations of `path` in every layer that contributes to it, top first.
    /// For a file only the first matters; for a directory all of them are merged.
    fn contributions(&self, comps: &[&str]) -> Vec<(PathBuf, fs::Metadata)> {
        let mut out = Vec::new();
        for layer in &self.layers {
            let mut p = layer.clone();
            let mut stop_below = false;
            let mut found = None;
            for (i, c) in comps.iter().enumerate() {
                p.push(whittle_context::names::decode(c));
                let Ok(md) = fs::symlink_metadata(&p) else {
                    break;
                };
                if is_whiteout(&md) {
                    return out;
                }
                if i + 1 == comps.len() {
                    found = Some(md);
                    break;
                }
                if !md.is_dir() {
                    // A file (or link) here shadows a directory of lower layers.
                    return out;
                }
                if is_opaque(&p) {
                    stop_below = true;
                }
            }
            if comps.is_empty() {
                if let Ok(md) = fs::symlink_metadata(layer) {
                    found = Some(md);
                }
            }
            if let Some(md) = found {
                let is_dir = md.is_dir();
                let opaque = is_dir && is_opaque(&p);
                out.push((p, md));
                if !is_dir || opaque {
                    return out;
                }
            }
            if stop_below {
                return out;
            }
        }
        out
    }

    /// The top-most physical file for `path` (no symlink following) and its metadata.
    pub fn locate(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        self.contributions(&components(path)).into_iter().next()
    }

    /// The merged listing of a directory: names with their top-most physical paths, sorted.
    pub fn read_dir(&self, path: &str) -> io::Result<Vec<(OsString, PathBuf, fs::Metadata)>> {
        let contribs = self.contributions(&components(path));
        match contribs.first() {
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{path}: no such directory"),
                ))
            }
            Some((_, md)) if !md.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{path}: not a directory"),
                ))
            }
            _ => {}
        }
        let mut seen: std::collections::BTreeMap<OsString, Option<(PathBuf, fs::Metadata)>> =
            std::collections::BTreeMap::new();
        for (dir, md) in contribs {
            if !md.is_dir() {
                break;
            }
            for ent in fs::read_dir(&dir)? {
                let ent = ent?;
                let name = ent.file_name();
                if seen.contains_key(&name) {
                    continue;
                }
                let p = ent.path();
                let emd = fs::symlink_metadata(&p)?;
                if is_whiteout(&emd) {
                    seen.insert(name, None);
                } else {
                    seen.insert(name, Some((p, emd)));
                }
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(n, v)| v.map(|(p, m)| (n, p, m)))
            .collect())
    }

    /// Resolves symlinks in `path` inside the merged root (absolute links restart at the root,
    /// `..` never leaves it). With `follow_last`, a link in the last component is followed too.
    /// Returns the resolved path (relative, `/`-separated) whether or not it exists.
    pub fn resolve(&self, path: &str, follow_last: bool) -> io::Result<String> {
        let mut todo: Vec<String> = components(path)
            .into_iter()
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let last = todo.is_empty();
            if last && !follow_last {
                break;
            }
            let cur = done.join("/");
            let Some((phys, md)) = self.locate(&cur) else {
                continue;
            };
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::other(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = fs::read_link(&phys)?;
                let target = whittle_context::names::encode(target.as_os_str()).into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push(t.to_string());
                }
            }
        }
        Ok(done.join("/"))
    }

    /// A digest of the tree at `path` as a COPY would copy it (a symlink at `path` itself is
    /// followed), in [`whittle_context::merkle`]'s scheme, the build context's: the same files
    /// digest the same in a stage as in the context. `None` when nothing is there.
    pub fn tree_digest(&self, path: &str) -> io::Result<Option<[u8; 32]>> {
        use std::os::unix::fs::MetadataExt;
        use whittle_context::merkle::{self, Meta};
        let resolved = self.resolve(path, true)?;
        let Some((phys, md)) = self.locate(&resolved) else {
            return Ok(None);
        };
        fn walk(m: &Merged, rel: &str, phys: &Path, md: &fs::Metadata) -> io::Result<[u8; 32]> {
            let meta = Meta {
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
            };
            let ft = md.file_type();
            Ok(if ft.is_dir() {
                let mut dir = merkle::Dir::new();
                for (name, cphys, cmd) in m.read_dir(rel)? {
                    let name = whittle_context::names::encode(&name);
                    let child = if rel.is_empty() {
                        name.to_string()
                    } else {
                        format!("{rel}/{name}")
                    };
                    dir.child(&name, &walk(m, &child, &cphys, &cmd)?);
                }
                dir.finish(meta)
            } else if ft.is_symlink() {
                let target = fs::read_link(phys)?;
                merkle::symlink(meta, &whittle_context::names::encode(target.as_os_str()))
            } else if ft.is_file() {
                merkle::file(meta, &merkle::content(fs::File::open(phys)?)?.0)
            } else {
                merkle::special(meta, md.mode(), md.rdev())
            })
        }
        walk(self, &resolved, &phys, &md).map(Some)
    }

    /// Reads a small file of the merged tree (following symlinks), e.g. `/etc/passwd`.
    pub fn read_small(&self, path: &str, limit: u64) -> io::Result<Vec<u8>> {
        let resolved = self.resolve(path, true)?;
        let (phys, md) = self
            .locate(&resolved)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.to_string()))?;
        if !md.is_file() || md.len() > limit {
            return Err(io::Error::other(format!(
                "{path} is not a regular file of at most {limit} bytes"
            )));
        }
        fs::read(phys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mkwhiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn union_whiteouts_and_opaque_dirs() {
        if !is_root() {
            eprintln!("skipped: needs root for whiteouts and trusted xattrs");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let low = t.path().join("low");
        let up = t.path().join("up");
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::create_dir_all(low.join("var/cache")).unwrap();
        fs::write(low.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(low.join("etc/gone"), "x").unwrap();
        fs::write(low.join("var/cache/old"), "x").unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("var/cache")).unwrap();
        fs::write(up.join("etc/new"), "n").unwrap();
        mkwhiteout(&up.join("etc/gone"));
        rustix::fs::setxattr(
            up.join("var/cache"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        fs::write(up.join("var/cache/fresh"), "f").unwrap();
        symlink("/etc/passwd", up.join("pw")).unwrap();
        let m = Merged::new(vec![up.clone(), low.clone()]);
        let names = |p: &str| -> Vec<String> {
            m.read_dir(p)
                .unwrap()
                .into_iter()
                .map(|(n, _, _)| n.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("etc"), vec!["new", "passwd"]);
        assert_eq!(names("var/cache"), vec!["fresh"]);
        assert!(m.locate("etc/gone").is_none());
        assert!(m.locate("var/cache/old").is_none());
        assert_eq!(m.locate("etc/passwd").unwrap().0, low.join("etc/passwd"));
        assert_eq!(m.resolve("pw", true).unwrap(), "etc/passwd");
        assert!(m.read_small("/pw", 1024).unwrap().starts_with(b"root:"));
        // Content digests follow the merged view: a whiteout changes the parent's digest.
        let etc = m.tree_digest("etc").unwrap().unwrap();
        let low_only = Merged::new(vec![low.clone()])
            .tree_digest("etc")
            .unwrap()
            .unwrap();
        assert_ne!(etc, low_only);
        assert_eq!(
            m.tree_digest("etc/passwd").unwrap(),
            Merged::new(vec![low.clone()])
                .tree_digest("etc/passwd")
                .unwrap()
        );
        assert!(m.tree_digest("nope").unwrap().is_none());
    }

    #[test]
    fn symlink_loops_and_escapes() {
        let t = tempfile::tempdir().unwrap();
        let l = t.path().join("l");
        fs::create_dir_all(&l).unwrap();
        symlink("b", l.join("a")).unwrap();
        symlink("a", l.join("b")).unwrap();
        symlink("../../../../etc", l.join("up")).unwrap();
        let m = Merged::new(vec![l]);
        assert!(m.resolve("a", true).is_err());
        assert_eq!(m.resolve("up/passwd", true).unwrap(), "etc/passwd");
    }
}
