//! One pass over one layer: its tar stream (gzip, zstd or plain) read entry by entry, never
//! whole, into a [`LayerScan`]: every entry's key, kind, mode, owner, size and, for regular
//! files, a content hash. Layers are scanned independently of each other (in parallel); the
//! merge in `merge.rs` stacks them.
//!
//! While a regular file streams past (it is hashed anyway), two probes look at it: ELF files
//! get their interpreter, needed libraries and symbol/debug section sizes (`elf.rs`, which keeps
//! a bounded part of the file), and `.pyc` files their 16-byte header (`findings/bytecode.rs`).
//!
//! The `tar` crate is used in raw mode, and PAX and GNU long-name records are applied here,
//! because the crate reads those records whole into memory whatever size their header claims:
//! here each is capped at [`Limits::max_extension`](crate::Limits) bytes.

use crate::elf::{self, ElfInfo};
use crate::error::{AnalyzeError, Result};
use crate::findings::bytecode::{self, Pyc};
use crate::findings::secrets::{self, SecretKind};
use crate::path::{self, PathProblem};
use crate::tarx;
use crate::Limits;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Prefix of a whiteout entry's name.
pub const WHITEOUT: &[u8] = b".wh.";
/// Prefix of whiteout metadata names (the opaque marker, aufs's `.wh..wh.plnk`, ...).
pub const WHITEOUT_META: &[u8] = b".wh..wh.";
/// Name of the opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// What an entry is.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry (size 0 in the tar).
    HardLink,
    /// A character or block device, or a FIFO.
    Special,
    /// A whiteout (`.wh.NAME`): deletes NAME from the layers below. Its key keeps the `.wh.`.
    Whiteout,
}

/// One entry of a layer.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Entry {
    /// Normalised path (see `path.rs`); for a whiteout, the whiteout's own name.
    pub key: Arc<[u8]>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits, with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size as the tar header gives it (what dive counts: 0 for links and directories).
    pub size: u64,
    /// Hard link: key of the target; symbolic link: the target as written (not normalised: it
    /// may be relative, and is resolved inside the root when followed, see `tree.rs`).
    pub link: Option<Arc<[u8]>>,
    /// Modification time (seconds since 1970, from the tar header).
    pub mtime: u64,
    /// Regular file: the first 128 bits of the SHA-256 of its content; symlink: of its target
    /// (zero otherwise).
    pub hash: [u8; 16],
    /// Regular file that looks like a secret, by name and first bytes.
    pub secret: Option<SecretKind>,
    /// What the probes learnt from a regular file's content (ELF and `.pyc` files).
    pub facts: Option<Box<Facts>>,
}

/// What the probes learnt from a regular file's content.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Facts {
    /// An ELF file.
    Elf(ElfInfo),
    /// A Python bytecode file's header.
    Pyc(Pyc),
}

/// A whiteout: its own key, and the key of what it deletes.
pub type Whiteout = (Arc<[u8]>, Arc<[u8]>);

/// What one layer holds.
#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
pub struct LayerScan {
    /// Entries sorted by key, one per key (the last one in the tar wins, as on extraction).
    /// Opaque markers and other `.wh..wh.` metadata are not entries (dive drops them too).
    pub entries: Vec<Entry>,
    /// The whiteouts of this layer: (whiteout key, key of what it deletes), sorted.
    pub whiteouts: Vec<Whiteout>,
    /// Directories marked opaque (the empty key is the root).
    pub opaque: Vec<Arc<[u8]>>,
    /// dive's layer size: the sum of the size fields of every tar entry.
    pub size: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Tar entries read (PAX and GNU records not counted).
    pub tar_entries: u64,
    /// `sha256:<hex>` of the whole uncompressed stream (the layer's diff id), when asked for
    /// (to check a diff id before caching under it). Not cached.
    #[serde(skip)]
    pub stream_digest: Option<String>,
}

impl LayerScan {
    /// Whether `key` is an entry of this layer (binary search).
    pub fn has(&self, key: &[u8]) -> bool {
        self.entries.binary_search_by(|e| (*e.key).cmp(key)).is_ok()
    }
}

/// Counts bytes read through it, and hashes them when asked to.
struct Counting<R> {
    inner: R,
    count: u64,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Scans one layer stream. `layer` names it in errors; `budget` counts entries across all
/// layers of the image against [`Limits::max_entries`]. With `digest`, the whole uncompressed
/// stream is hashed too (its end past the tar's end-of-archive included) into
/// [`LayerScan::stream_digest`].
pub fn scan_layer<R: Read>(
    r: R,
    layer: &str,
    limits: &Limits,
    budget: &AtomicU64,
    digest: bool,
) -> Result<LayerScan> {
    let lerr = |e: io::Error| AnalyzeError::Layer {
        layer: layer.to_string(),
        source: e,
    };
    let (_, dec) =
        whittle_layer::decompress(BufReader::with_capacity(256 * 1024, r)).map_err(lerr)?;
    let mut ar = tar::Archive::new(Counting {
        inner: dec,
        count: 0,
        hasher: digest.then(Sha256::new),
    });
    let mut out = LayerScan::default();
    let mut raw_entries: Vec<Entry> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut it = ar.entries().map_err(lerr)?.raw(true);
    while let Some((mut entry, mut ext)) = tarx::next_entry(&mut it, limits.max_extension, layer)? {
        let et = entry.header().entry_type();
        out.tar_entries += 1;
        if budget.fetch_add(1, Ordering::Relaxed) + 1 > limits.max_entries {
            return Err(AnalyzeError::Limit {
                what: format!("layer {layer}: tar entries in the image"),
                limit: limits.max_entries,
            });
        }
        let header_size = entry.header().entry_size().map_err(lerr)?;
        let size = header_size;
        out.size += size;
        let raw_path = tarx::path_of(&entry, &mut ext);
        let mut kind = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::HardLink,
            _ => Kind::Special,
        };
        if kind == Kind::File && raw_path.ends_with(b"/") && et.as_byte() == 0 {
            // Old V7 archives mark directories by a trailing slash only (Go's reader does too).
            kind = Kind::Dir;
        }
        let key = match path::normalize(&raw_path, limits.max_path) {
            Ok(Some(k)) => k,
            Ok(None) => continue, // the root itself ("./"): dive skips it as well
            Err(PathProblem::TooLong(n)) => {
                return Err(AnalyzeError::Limit {
                    what: format!("layer {layer}: an entry name of {n} bytes"),
                    limit: limits.max_path as u64,
                })
            }
            Err(PathProblem::Nul) => {
                return Err(AnalyzeError::Unsupported {
                    layer: layer.to_string(),
                    what: "an entry name holding a NUL byte".into(),
                })
            }
        };
        // Whiteout metadata anywhere on the path (opaque markers, aufs's .wh..wh.plnk/...).
        if path::components(&key).any(|c| c.starts_with(WHITEOUT_META)) {
            if path::name(&key) == OPAQUE {
                let dir = path::parent(&key).unwrap_or(&[]);
                out.opaque.push(Arc::from(dir));
            }
            continue;
        }
        let name = path::name(&key);
        if name == WHITEOUT {
            continue; // `.wh.` alone names nothing to delete
        }
        if name.starts_with(WHITEOUT) {
            kind = Kind::Whiteout;
        }
        let h = entry.header();
        // Empty numeric fields read as 0, as Go's reader (and so dive) reads them.
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let uid = match ext.uid {
            Some(u) => u,
            None => h.uid().unwrap_or(0),
        };
        let gid = match ext.gid {
            Some(g) => g,
            None => h.gid().unwrap_or(0),
        };
        let mtime = h.mtime().unwrap_or(0);
        let mut link = if kind == Kind::HardLink {
            match tarx::link_of(&entry, &mut ext).map(|l| path::normalize(&l, limits.max_path)) {
                Some(Ok(Some(k))) => Some(Arc::from(k)),
                _ => None,
            }
        } else {
            None
        };
        let mut hash = [0u8; 16];
        let mut secret = None;
        let mut facts = None;
        if kind == Kind::Symlink {
            if let Some(t) = tarx::link_of(&entry, &mut ext) {
                hash.copy_from_slice(&Sha256::digest(&t)[..16]);
                if t.len() <= limits.max_path {
                    link = Some(Arc::from(t));
                }
            }
        }
        if kind == Kind::File {
            let want = secrets::wants_prefix(&key, size);
            let want_pyc = bytecode::wants_header(&key);
            let mut prefix: Vec<u8> = Vec::new();
            let mut pyc_header: Vec<u8> = Vec::new();
            let mut probe = elf::Probe::new(size);
            let mut hasher = Sha256::new();
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(lerr(e)),
                };
                hasher.update(&buf[..n]);
                if want && prefix.len() < secrets::PREFIX {
                    let take = n.min(secrets::PREFIX - prefix.len());
                    prefix.extend_from_slice(&buf[..take]);
                }
                if want_pyc && pyc_header.len() < bytecode::HEADER {
                    let take = n.min(bytecode::HEADER - pyc_header.len());
                    pyc_header.extend_from_slice(&buf[..take]);
                }
                if let Some(p) = probe.as_mut() {
                    p.feed(&buf[..n]);
                    if p.done() {
                        probe = None;
                    }
                }
            }
            let full = hasher.finalize();
            hash.copy_from_slice(&full[..16]);
            secret = secrets::classify(&key, size, &prefix);
            facts = match probe.and_then(elf::Probe::finish) {
                Some(e) => Some(Box::new(Facts::Elf(e))),
                None if want_pyc => bytecode::parse(&pyc_header).map(|p| Box::new(Facts::Pyc(p))),
                None => None,
            };
        }
        let key: Arc<[u8]> = Arc::from(key);
        if kind == Kind::Whiteout {
            let t = target_of(&key);
            out.whiteouts.push((key.clone(), Arc::from(t)));
        }
        raw_entries.push(Entry {
            key,
            kind,
            mode,
            uid,
            gid,
            size,
            link,
            mtime,
            hash,
            secret,
            facts,
        });
    }
    let mut rest = ar.into_inner();
    out.tar_bytes = rest.count;
    // Read to the end: the padding after the end-of-archive blocks belongs to the diff id, and
    // a blob that checks its digest as it ends (from a registry) is checked only then.
    let mut hasher = rest.hasher.take();
    loop {
        let n = match rest.inner.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(lerr(e)),
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
    }
    if let Some(h) = hasher {
        out.stream_digest = Some(format!("sha256:{}", hex::encode(h.finalize())));
    }
    // Sort by key; of entries with the same key the last one wins, as when extracting.
    raw_entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut entries: Vec<Entry> = Vec::with_capacity(raw_entries.len());
    for e in raw_entries {
        match entries.last_mut() {
            Some(last) if last.key == e.key => *last = e,
            _ => entries.push(e),
        }
    }
    out.entries = entries;
    out.whiteouts.sort();
    out.whiteouts.dedup();
    out.opaque.sort();
    out.opaque.dedup();
    Ok(out)
}

/// The target key of a whiteout key (`a\0.wh.b` → `a\0b`).
pub fn target_of(key: &[u8]) -> Vec<u8> {
    let name = path::name(key);
    let mut t = key[..key.len() - name.len()].to_vec();
    t.extend_from_slice(name.strip_prefix(WHITEOUT).unwrap_or(name));
    t
}
