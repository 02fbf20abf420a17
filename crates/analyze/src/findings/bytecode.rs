//! Stale Python bytecode: `__pycache__/*.pyc` files that Python will never use as they are.
//!
//! Python (3.2+, PEP 3147) looks in `__pycache__` only for a module whose source `.py` exists,
//! and (PEP 552) trusts a timestamp-based `.pyc` only when the modification time and size in its
//! header equal the source's (`int(st_mtime) & 0xFFFFFFFF`, `st_size & 0xFFFFFFFF`). So:
//!
//! - a `.pyc` in `__pycache__` without its source is never read: dead bytes;
//! - a timestamp-based `.pyc` whose header does not match its source is recompiled at every
//!   import and, where the directory is writable, rewritten into the container's layer. Builds
//!   that rewrite file times (whittle clamps them to `SOURCE_DATE_EPOCH`, 0 by default, as
//!   BuildKit's `rewrite-timestamp` does) make every such `.pyc` stale.
//!
//! Hash-based `.pyc` files (flags 1 or 3) are never stale by time and are left alone. Legacy
//! `X.pyc` files next to their module (Python 2's layout, or a sourceless distribution) are not
//! judged: without a source they are what gets imported.

use super::{finding, Acc};
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind};
use crate::scan::{Facts, Kind};
use std::collections::BTreeMap;

/// Bytes of a `.pyc` header read (PEP 552: magic, flags, mtime, size).
pub const HEADER: usize = 16;

/// How a `.pyc` says it is checked against its source.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Timestamp-based: the source's mtime and, from Python 3.3, its size.
    Timestamp {
        /// Source mtime, low 32 bits.
        mtime: u32,
        /// Source size, low 32 bits (Python 3.3+).
        size: Option<u32>,
    },
    /// Hash-based (PEP 552 flags 1 or 3).
    Hash,
}

/// A `.pyc` header.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pyc {
    /// Python's magic number (its version).
    pub magic: u16,
    /// How it is checked.
    pub check: Check,
}

/// Whether a file's first bytes should be kept for [`parse`]: a `.pyc` in `__pycache__`.
pub fn wants_header(key: &[u8]) -> bool {
    path::name(key).ends_with(b".pyc")
        && path::parent(key).is_some_and(|p| path::name(p) == b"__pycache__")
}

/// Parses a `.pyc` header (`None`: not one).
pub fn parse(h: &[u8]) -> Option<Pyc> {
    if h.get(2..4)? != b"\r\n" {
        return None;
    }
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(h.get(at..at + 4)?.try_into().ok()?))
    };
    let magic = u16::from_le_bytes([h[0], h[1]]);
    let check = match magic {
        // Python 3.7 (3390) and later: PEP 552's flags word.
        3390..=19999 if h.len() < HEADER => return None,
        3390..=19999 => match u32_at(4)? {
            0 => Check::Timestamp {
                mtime: u32_at(8)?,
                size: Some(u32_at(12)?),
            },
            _ => Check::Hash,
        },
        // Python 3.3 to 3.6: mtime and size.
        3190..=3389 => Check::Timestamp {
            mtime: u32_at(4)?,
            size: Some(u32_at(8)?),
        },
        // Python 3.0 to 3.2 and Python 2: mtime only.
        _ => Check::Timestamp {
            mtime: u32_at(4)?,
            size: None,
        },
    };
    Some(Pyc { magic, check })
}

/// The key of the source of `dir/__pycache__/NAME.TAG[.opt-N].pyc`: `dir/NAME.py`.
pub fn source_of(key: &[u8]) -> Option<Vec<u8>> {
    let cache = path::parent(key)?;
    let name = path::name(key);
    let dots = name.iter().filter(|&&b| b == b'.').count();
    if !(2..=3).contains(&dots) {
        return None; // not NAME.TAG.pyc or NAME.TAG.opt-N.pyc: Python would not map it either
    }
    let base = name
        .split(|&b| b == b'.')
        .next()
        .filter(|b| !b.is_empty())?;
    let mut src = match path::parent(cache) {
        Some(d) => {
            let mut d = d.to_vec();
            d.push(path::SEP);
            d
        }
        None => Vec::new(),
    };
    src.extend_from_slice(base);
    src.extend_from_slice(b".py");
    Some(src)
}

/// Why a `.pyc` is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    /// No source: never read.
    Orphan,
    /// The header's time or size is not the source's.
    Mismatch,
}

/// Adds the findings: one per (reason, layer of the `.pyc`, layer of the source).
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(Why, usize, Option<usize>), Acc> = BTreeMap::new();
    for (layer, key, facts) in &m.facts {
        let Facts::Pyc(pyc) = &**facts else {
            continue;
        };
        let Some(node) = m.tree.added_by(key, *layer) else {
            continue; // replaced or removed later
        };
        let Some(src) = source_of(key) else {
            continue;
        };
        let why = match m.tree.resolve(&src) {
            None => Some((Why::Orphan, None)),
            Some((_, s)) if s.kind == Kind::File => match pyc.check {
                Check::Timestamp { mtime, size } => {
                    let stale = u64::from(mtime) != (s.mtime & 0xFFFF_FFFF)
                        || size.is_some_and(|z| u64::from(z) != (s.size & 0xFFFF_FFFF));
                    stale.then_some((Why::Mismatch, Some(s.layer)))
                }
                Check::Hash => None,
            },
            Some(_) => None, // a hard link or other: its size is not known here
        };
        if let Some((why, src_layer)) = why {
            let related = src_layer.filter(|l| l != layer);
            groups
                .entry((why, *layer, related))
                .or_default()
                .add(key, node.size);
        }
    }
    for ((why, layer, related), acc) in groups {
        let (title, fix) = match why {
            Why::Orphan => (
                format!("Python bytecode without its source, added by layer {layer}"),
                "Python reads __pycache__/*.pyc only for a module whose .py exists, so these \
                 files are never used: delete them in the step that removed the sources, or ship \
                 sourceless bytecode on purpose (`python -m compileall -b`, then remove the .py \
                 files and __pycache__)."
                    .to_string(),
            ),
            Why::Mismatch => (
                format!(
                    "stale Python bytecode (its recorded source time or size does not match), \
                     added by layer {layer}"
                ),
                "Python recompiles these at every start (and writes them into the container's \
                 layer when it can). Compile with `python -m compileall --invalidation-mode \
                 unchecked-hash` (or checked-hash) after the sources are final, which survives \
                 timestamp rewriting (SOURCE_DATE_EPOCH); or skip bytecode with \
                 `ENV PYTHONDONTWRITEBYTECODE=1` / `pip install --no-compile` and delete the \
                 __pycache__ directories."
                    .to_string(),
            ),
        };
        out.push(finding(
            FindingKind::StaleBytecode,
            title,
            layer,
            related,
            acc,
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::key;

    #[test]
    fn headers() {
        let mut h = vec![0xa7, 0x0d, b'\r', b'\n']; // 3495: Python 3.11
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&1234u32.to_le_bytes());
        h.extend_from_slice(&56u32.to_le_bytes());
        assert_eq!(
            parse(&h),
            Some(Pyc {
                magic: 3495,
                check: Check::Timestamp {
                    mtime: 1234,
                    size: Some(56)
                }
            })
        );
        h[4] = 3;
        assert_eq!(parse(&h).unwrap().check, Check::Hash);
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(&h[..10]), None, "truncated");
    }

    #[test]
    fn sources() {
        let s = |p: &str| source_of(&key(p)).map(|k| path::display(&k));
        assert_eq!(
            s("app/__pycache__/mod.cpython-311.pyc").as_deref(),
            Some("/app/mod.py")
        );
        assert_eq!(
            s("app/__pycache__/mod.cpython-311.opt-2.pyc").as_deref(),
            Some("/app/mod.py")
        );
        assert_eq!(s("__pycache__/m.cpython-311.pyc").as_deref(), Some("/m.py"));
        assert_eq!(s("app/__pycache__/mod.pyc"), None);
        assert!(wants_header(&key("a/__pycache__/m.cpython-311.pyc")));
        assert!(!wants_header(&key("a/m.pyc")));
    }
}
