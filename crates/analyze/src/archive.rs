//! docker-archive and oci-archive files read in place, without the store: one pass over the tar
//! headers (seeking past the data) records where each member is, then documents are read and
//! layers streamed from their byte ranges, several at once.
//!
//! Only uncompressed archives (what `docker save`, skopeo and whittle write) can be read in
//! place; a compressed one is refused with a hint. Member names are normalised inside the
//! archive, symlinks (classic `docker save` links duplicate layers) are followed lexically, at
//! most 16 hops, and never outside it.

use crate::error::{AnalyzeError, Result};
use crate::image::{Loc, Source, MAX_DOCUMENT};
use crate::path;
use crate::tarx;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The members of an archive file.
pub struct Archive {
    file: PathBuf,
    /// Regular members: normalised path → (data offset, size).
    members: HashMap<String, (u64, u64)>,
    /// Symlinks and hard links: normalised path → normalised target.
    links: HashMap<String, String>,
}

/// Most members an archive may have (images have a few per layer).
const MAX_MEMBERS: usize = 1 << 20;

fn clean(p: &[u8]) -> Option<String> {
    let k = path::normalize(p, 4096).ok()??;
    String::from_utf8(k.iter().map(|&b| if b == 0 { b'/' } else { b }).collect()).ok()
}

impl Archive {
    /// Indexes the archive at `file`.
    pub fn open(file: &Path, max_ext: u64) -> Result<Archive> {
        let mut f =
            BufReader::new(File::open(file).map_err(|e| AnalyzeError::io("open", file, e))?);
        let kind = whittle_layer::detect(&mut f).map_err(|e| AnalyzeError::io("read", file, e))?;
        if kind != whittle_layer::Detected::None {
            return Err(AnalyzeError::InvalidInput(format!(
                "{} is compressed; analyse the uncompressed archive (e.g. gunzip it first) or \
                 `whittle load` it and analyse the image from the store",
                file.display()
            )));
        }
        let f = File::open(file).map_err(|e| AnalyzeError::io("open", file, e))?;
        let mut ar = tar::Archive::new(f);
        let what = file.display().to_string();
        let mut it = ar
            .entries_with_seek()
            .map_err(|e| AnalyzeError::io("read", file, e))?
            .raw(true);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        while let Some((entry, mut ext)) = tarx::next_entry(&mut it, max_ext, &what)? {
            if members.len() + links.len() >= MAX_MEMBERS {
                return Err(AnalyzeError::Limit {
                    what: format!("{what}: archive members"),
                    limit: MAX_MEMBERS as u64,
                });
            }
            let raw = tarx::path_of(&entry, &mut ext);
            let Some(p) = clean(&raw) else { continue };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry
                        .header()
                        .entry_size()
                        .map_err(|e| AnalyzeError::io("read", file, e))?;
                    members.insert(p, (entry.raw_file_position(), size));
                }
                t @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let Some(target) = tarx::link_of(&entry, &mut ext) else {
                        continue;
                    };
                    let joined = if t == tar::EntryType::Symlink && !target.starts_with(b"/") {
                        let dir = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        let mut j = dir.as_bytes().to_vec();
                        j.push(b'/');
                        j.extend_from_slice(&target);
                        j
                    } else {
                        target
                    };
                    if let Some(t) = clean(&joined) {
                        links.insert(p, t);
                    }
                }
                _ => {}
            }
        }
        Ok(Archive {
            file: file.to_path_buf(),
            members,
            links,
        })
    }

    fn find(&self, p: &str) -> Option<(u64, u64)> {
        let mut p = clean(p.as_bytes())?;
        for _ in 0..16 {
            if let Some(m) = self.members.get(&p) {
                return Some(*m);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }
}

impl Source for Archive {
    fn doc(&self, p: &str) -> Result<Option<Vec<u8>>> {
        let Some((offset, size)) = self.find(p) else {
            return Ok(None);
        };
        if size > MAX_DOCUMENT {
            return Err(AnalyzeError::Limit {
                what: format!("{p}: bytes in a document"),
                limit: MAX_DOCUMENT,
            });
        }
        let mut f = File::open(&self.file).map_err(|e| AnalyzeError::io("open", &self.file, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| AnalyzeError::io("seek", &self.file, e))?;
        let mut v = Vec::new();
        f.take(size)
            .read_to_end(&mut v)
            .map_err(|e| AnalyzeError::io("read", &self.file, e))?;
        Ok(Some(v))
    }

    fn blob(&self, p: &str) -> Result<(Loc, u64)> {
        let (offset, len) = self
            .find(p)
            .ok_or_else(|| AnalyzeError::InvalidImage(format!("{p} is not in the archive")))?;
        Ok((
            Loc::Slice {
                file: self.file.clone(),
                offset,
                len,
            },
            len,
        ))
    }
}

/// An OCI image layout directory.
pub struct Dir {
    /// Its root.
    pub root: PathBuf,
}

impl Dir {
    /// `p` (from a manifest: untrusted) normalised under the root.
    fn inside(&self, p: &str) -> Result<PathBuf> {
        let rel = clean(p.as_bytes())
            .ok_or_else(|| AnalyzeError::InvalidImage(format!("bad path {p:?} in the layout")))?;
        Ok(self.root.join(rel))
    }
}

impl Source for Dir {
    fn doc(&self, p: &str) -> Result<Option<Vec<u8>>> {
        let path = self.inside(p)?;
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AnalyzeError::io("open", path, e)),
        };
        let mut v = Vec::new();
        f.take(MAX_DOCUMENT + 1)
            .read_to_end(&mut v)
            .map_err(|e| AnalyzeError::io("read", &path, e))?;
        if v.len() as u64 > MAX_DOCUMENT {
            return Err(AnalyzeError::Limit {
                what: format!("{}: bytes in a document", path.display()),
                limit: MAX_DOCUMENT,
            });
        }
        Ok(Some(v))
    }

    fn blob(&self, p: &str) -> Result<(Loc, u64)> {
        let path = self.inside(p)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| AnalyzeError::io("stat", &path, e))?
            .len();
        Ok((Loc::File(path), size))
    }
}
