//! Findings beyond dive: what in an image costs bytes or is risky, the layer that caused it,
//! and a fix. Each kind of finding has its own module; they read what `merge.rs` recorded and
//! the final filesystem.

pub mod bytecode;
pub mod caches;
pub mod docs;
pub mod duplicates;
pub mod dynlink;
pub mod perms;
pub mod secrets;
pub mod superseded;
pub mod tests_dirs;
pub mod toolchains;
pub mod unstripped;

use crate::image::ImageMeta;
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind, FindingPath};

/// How many example paths a finding lists.
pub const MAX_PATHS: usize = 10;

/// Bytes, files and the largest example paths of one finding being collected.
#[derive(Default, Debug)]
pub struct Acc {
    /// Bytes.
    pub bytes: u64,
    /// Files.
    pub files: u64,
    /// Largest examples, largest first, ties by path.
    pub paths: Vec<FindingPath>,
}

impl Acc {
    /// Adds one file.
    pub fn add(&mut self, key: &[u8], bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.files += 1;
        self.add_path(key, bytes);
    }

    /// Adds an example path without counting a file.
    pub fn add_path(&mut self, key: &[u8], bytes: u64) {
        if self.paths.len() >= MAX_PATHS && self.paths.last().is_some_and(|l| l.bytes >= bytes) {
            return;
        }
        let p = FindingPath {
            path: path::display(key),
            bytes,
        };
        let at = self
            .paths
            .partition_point(|x| x.bytes > bytes || (x.bytes == bytes && x.path < p.path));
        self.paths.insert(at, p);
        self.paths.truncate(MAX_PATHS);
    }
}

/// A finding without the `created_by` fields (filled in by [`collect`]).
pub fn finding(
    kind: FindingKind,
    title: String,
    layer: usize,
    related_layer: Option<usize>,
    acc: Acc,
    fix: String,
) -> Finding {
    Finding {
        kind,
        title,
        bytes: acc.bytes,
        files: acc.files,
        layer,
        created_by: None,
        origin: None,
        related_layer,
        related_created_by: None,
        related_origin: None,
        paths: acc.paths,
        fix,
    }
}

/// Every finding, secrets first, then programs that cannot start, then by bytes, largest first; size findings of 0 bytes or
/// under `min_bytes` are left out.
pub fn collect(m: &Merged, meta: &ImageMeta, min_bytes: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    superseded::find(m, &mut out);
    duplicates::find(m, &mut out);
    secrets::find(m, &mut out);
    caches::find(m, &mut out);
    toolchains::find(m, &mut out);
    docs::find(m, &mut out);
    tests_dirs::find(m, &mut out);
    unstripped::find(m, &mut out);
    bytecode::find(m, &mut out);
    dynlink::find(m, &mut out);
    perms::find(m, &mut out);
    out.retain(|f| {
        matches!(
            f.kind,
            FindingKind::Secret
                | FindingKind::MissingLibrary
                | FindingKind::Setuid
                | FindingKind::WorldWritable
        ) || (f.bytes > 0 && f.bytes >= min_bytes)
    });
    let layers = meta.layers.len().max(m.stats.len());
    for f in &mut out {
        let own = meta.layers.get(f.layer);
        f.created_by = own.and_then(|l| l.created_by.clone());
        f.origin = own.and_then(|l| l.origin.clone());
        let related = f.related_layer.and_then(|r| meta.layers.get(r));
        f.related_created_by = related.and_then(|l| l.created_by.clone());
        f.related_origin = related.and_then(|l| l.origin.clone());
        if f.layer == 0
            && layers > 1
            && !matches!(f.kind, FindingKind::Secret | FindingKind::MissingLibrary)
        {
            f.fix.push_str(
                " This comes from the first layer, usually the base image's: a slimmer base \
                 (a -slim, alpine or distroless variant) or a rebuilt base avoids it.",
            );
        }
    }
    let rank = |k: FindingKind| match k {
        FindingKind::Secret => 0,
        FindingKind::MissingLibrary => 1,
        FindingKind::Setuid | FindingKind::WorldWritable => 3,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(a.kind)
            .cmp(&rank(b.kind))
            .then(b.bytes.cmp(&a.bytes))
            .then(a.layer.cmp(&b.layer))
            .then(a.kind.cmp(&b.kind))
            .then(a.title.cmp(&b.title))
    });
    out
}

/// Whether a file is a test fixture (below a `testdata` directory, Go's convention and
/// others'): fixture binaries are not meant to run or to be stripped.
pub fn is_fixture(key: &[u8]) -> bool {
    crate::path::components(key).any(|c| c == b"testdata")
}

/// Components of a key, for the path rules.
pub fn comps(key: &[u8]) -> Vec<&[u8]> {
    path::components(key).collect()
}

/// Position of `seq` as consecutive components of `c`.
pub fn find_seq(c: &[&[u8]], seq: &[&[u8]]) -> Option<usize> {
    if seq.is_empty() || c.len() < seq.len() {
        return None;
    }
    c.windows(seq.len()).position(|w| w == seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_examples() {
        let mut a = Acc::default();
        for i in 0..25u64 {
            a.add(format!("f{i:02}").as_bytes(), i % 13);
        }
        assert_eq!(a.files, 25);
        assert_eq!(a.paths.len(), MAX_PATHS);
        assert_eq!(a.paths[0].bytes, 12);
        assert!(a.paths.windows(2).all(|w| w[0].bytes >= w[1].bytes));
    }
}
