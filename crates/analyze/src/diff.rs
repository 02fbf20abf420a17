//! `whittle diff IMAGE_A IMAGE_B`: what changed between two images' final filesystems: files
//! added, removed and changed (content by SHA-256, type, mode, owner, link target), and the size
//! difference per directory. It shows what a rewrite saved, e.g. a multi-stage build against the
//! single-stage one.
//!
//! Each image is read as [`analyze`](crate::analyze) reads it (same inputs, same limits, each
//! layer streamed once) and stacked; only the final filesystems (the real view: whiteouts and
//! opaque directories applied) are compared. Sizes are the tar size fields, as in the analysis
//! (a hard link counts 0 bytes, its target its size once).

use crate::error::Result;
use crate::input::{self, Input};
use crate::merge;
use crate::path;
use crate::scan::Kind;
use crate::tree::{Node, Tree};
use crate::Options;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;
use whittle_store::Store;

/// How to diff.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Directories listed in [`Diff::directories`] (default 20), largest absolute difference
    /// first.
    pub top_dirs: usize,
    /// Deepest directories listed, in components (default 3: `/usr/lib/python3`).
    pub max_depth: usize,
    /// Reading the images.
    pub analyze: Options,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            top_dirs: 20,
            max_depth: 3,
            analyze: Options::default(),
        }
    }
}

/// One image of the two.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffSide {
    /// How the image was named.
    pub name: String,
    /// Layers.
    pub layers: usize,
    /// Files (everything but directories) in the final filesystem.
    pub files: u64,
    /// Their bytes.
    pub size_bytes: u64,
}

/// A file only one image has.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DiffFile {
    /// Its path.
    pub path: String,
    /// Its size.
    pub size_bytes: u64,
}

/// What differs about a file both images have.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Another type (file, directory, link, ...).
    Type,
    /// Other content (regular file), or another target (link).
    Content,
    /// Other permission bits.
    Mode,
    /// Another owner or group.
    Owner,
}

/// A file both images have, that differs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChangedFile {
    /// Its path.
    pub path: String,
    /// Size in image A.
    pub size_a: u64,
    /// Size in image B.
    pub size_b: u64,
    /// What differs.
    pub changes: Vec<Change>,
}

/// The size of one directory's files (recursively) in both images.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirDiff {
    /// Its path.
    pub path: String,
    /// Bytes below it in image A.
    pub size_a: u64,
    /// Bytes below it in image B.
    pub size_b: u64,
    /// `size_b - size_a`.
    pub diff: i64,
}

/// Totals.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DiffTotals {
    /// Files only B has.
    pub files_added: u64,
    /// Their bytes.
    pub bytes_added: u64,
    /// Files only A has.
    pub files_removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Files both have that differ.
    pub files_changed: u64,
    /// Their bytes in A.
    pub bytes_changed_a: u64,
    /// Their bytes in B.
    pub bytes_changed_b: u64,
    /// Files both have, identical.
    pub files_unchanged: u64,
    /// B's size minus A's.
    pub size_diff: i64,
}

/// What changed from image A to image B.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// Image A.
    pub a: DiffSide,
    /// Image B.
    pub b: DiffSide,
    /// Files only B has, largest first.
    pub added: Vec<DiffFile>,
    /// Files only A has, largest first.
    pub removed: Vec<DiffFile>,
    /// Files both have that differ, largest size change first.
    pub changed: Vec<ChangedFile>,
    /// Directories (down to [`DiffOptions::max_depth`]) whose size differs, largest absolute
    /// difference first, at most [`DiffOptions::top_dirs`].
    pub directories: Vec<DirDiff>,
    /// Totals.
    pub totals: DiffTotals,
}

/// Reads both images and compares their final filesystems. `store` is needed for
/// [`Input::Store`] only.
pub fn diff(a: &Input, b: &Input, store: Option<&Store>, opts: &DiffOptions) -> Result<Diff> {
    let (ta, sa) = final_tree(a, store, &opts.analyze)?;
    let (tb, sb) = final_tree(b, store, &opts.analyze)?;
    Ok(compare(&ta, sa, &tb, sb, opts))
}

fn final_tree(input: &Input, store: Option<&Store>, opts: &Options) -> Result<(Tree, DiffSide)> {
    let (meta, scans) = input::load(input, store, opts)?;
    let layers = scans.len();
    let tree = merge::merge(scans).tree;
    let (files, size_bytes) = tree
        .visible()
        .filter(|(_, n)| n.kind != Kind::Dir)
        .fold((0u64, 0u64), |(f, s), (_, n)| {
            (f + 1, s.saturating_add(n.size))
        });
    Ok((
        tree,
        DiffSide {
            name: meta.name,
            layers,
            files,
            size_bytes,
        },
    ))
}

fn changes(a: &Node, b: &Node) -> Vec<Change> {
    let mut c = Vec::new();
    if a.kind != b.kind {
        c.push(Change::Type);
    } else if a.hash != b.hash || a.link != b.link || a.size != b.size {
        c.push(Change::Content);
    }
    if a.mode != b.mode {
        c.push(Change::Mode);
    }
    if a.uid != b.uid || a.gid != b.gid {
        c.push(Change::Owner);
    }
    c
}

/// Compares two final filesystems.
fn compare(ta: &Tree, a: DiffSide, tb: &Tree, b: DiffSide, opts: &DiffOptions) -> Diff {
    let mut out = Diff {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        directories: Vec::new(),
        totals: DiffTotals {
            size_diff: signed(b.size_bytes, a.size_bytes),
            ..DiffTotals::default()
        },
        a,
        b,
    };
    // Directory sizes: (A, B) per directory key down to max_depth.
    let mut dirs: HashMap<&[u8], (u64, u64)> = HashMap::new();
    let mut ia = ta.visible().peekable();
    let mut ib = tb.visible().peekable();
    loop {
        let ord = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        let (pa, pb) = match ord {
            Ordering::Less => (ia.next(), None),
            Ordering::Greater => (None, ib.next()),
            Ordering::Equal => (ia.next(), ib.next()),
        };
        for (side_b, p) in [(false, pa), (true, pb)] {
            if let Some((k, n)) = p {
                if n.kind == Kind::Dir || n.size == 0 {
                    continue;
                }
                let k: &[u8] = k;
                for d in path::ancestors(k).take(opts.max_depth) {
                    let e = dirs.entry(d).or_default();
                    if side_b {
                        e.1 = e.1.saturating_add(n.size);
                    } else {
                        e.0 = e.0.saturating_add(n.size);
                    }
                }
            }
        }
        let t = &mut out.totals;
        match (pa, pb) {
            (Some((k, n)), None) if n.kind != Kind::Dir => {
                t.files_removed += 1;
                t.bytes_removed = t.bytes_removed.saturating_add(n.size);
                out.removed.push(DiffFile {
                    path: path::display(k),
                    size_bytes: n.size,
                });
            }
            (None, Some((k, n))) if n.kind != Kind::Dir => {
                t.files_added += 1;
                t.bytes_added = t.bytes_added.saturating_add(n.size);
                out.added.push(DiffFile {
                    path: path::display(k),
                    size_bytes: n.size,
                });
            }
            (Some((k, na)), Some((_, nb))) if na.kind != Kind::Dir || nb.kind != Kind::Dir => {
                let c = changes(na, nb);
                if c.is_empty() {
                    t.files_unchanged += 1;
                    continue;
                }
                t.files_changed += 1;
                t.bytes_changed_a = t.bytes_changed_a.saturating_add(na.size);
                t.bytes_changed_b = t.bytes_changed_b.saturating_add(nb.size);
                out.changed.push(ChangedFile {
                    path: path::display(k),
                    size_a: na.size,
                    size_b: nb.size,
                    changes: c,
                });
            }
            _ => {} // directories present on one side or both
        }
    }
    let by_size = |x: &DiffFile, y: &DiffFile| {
        y.size_bytes
            .cmp(&x.size_bytes)
            .then_with(|| x.path.cmp(&y.path))
    };
    out.added.sort_by(by_size);
    out.removed.sort_by(by_size);
    out.changed.sort_by(|x, y| {
        signed(y.size_b, y.size_a)
            .unsigned_abs()
            .cmp(&signed(x.size_b, x.size_a).unsigned_abs())
            .then_with(|| y.size_b.max(y.size_a).cmp(&x.size_b.max(x.size_a)))
            .then_with(|| x.path.cmp(&y.path))
    });
    let mut dirs: Vec<DirDiff> = dirs
        .into_iter()
        .filter(|(_, (sa, sb))| sa != sb)
        .map(|(k, (sa, sb))| DirDiff {
            path: path::display(k),
            size_a: sa,
            size_b: sb,
            diff: signed(sb, sa),
        })
        .collect();
    dirs.sort_by(|x, y| {
        y.diff
            .unsigned_abs()
            .cmp(&x.diff.unsigned_abs())
            .then_with(|| x.path.cmp(&y.path))
    });
    dirs.truncate(opts.top_dirs);
    out.directories = dirs;
    out
}

/// `b - a` as a signed number (saturating).
fn signed(b: u64, a: u64) -> i64 {
    if b >= a {
        i64::try_from(b - a).unwrap_or(i64::MAX)
    } else {
        i64::try_from(a - b).map(|d| -d).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::signed;

    #[test]
    fn signed_differences() {
        assert_eq!(signed(5, 3), 2);
        assert_eq!(signed(3, 5), -2);
        assert_eq!(signed(u64::MAX, 0), i64::MAX);
        assert_eq!(signed(0, u64::MAX), i64::MIN);
    }
}
