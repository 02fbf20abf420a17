//! dive's efficiency score, wasted bytes and inefficient-file list, with dive's definitions
//! (`filetree/efficiency.go` and `image/analysis.go` in dive):
//!
//! - Every leaf of every layer's tree is visited, layer by layer, each layer depth first with a
//!   directory's children in name order. A leaf is a file, a link, a whiteout or a directory
//!   with nothing below it in that layer; a whiteout counts under the path it deletes.
//! - A visit adds the leaf's size to its path's cumulative size and keeps the smallest size seen.
//!   A whiteout's size is 0, unless what it deletes is a directory in the layers below: then it
//!   is the sum of the sizes in that directory.
//! - A path visited a second time becomes inefficient (appended to the list at that moment).
//! - score = sum of smallest sizes / sum of cumulative sizes over every path (1 when nothing has
//!   a size); wasted bytes = sum of the cumulative sizes of the inefficient paths (the copy that
//!   is kept counts too).
//! - The list is sorted by cumulative size, stable, and reversed: largest first, and of equal
//!   sizes the one that became inefficient last comes first (dive's order for short lists; Go's
//!   sort is not stable beyond 12 elements, so dive's order of ties there is unspecified).

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct PathData {
    cumulative: u64,
    min: u64,
    count: u32,
}

/// One path of dive's inefficient-file list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inefficiency {
    /// The path's key.
    pub key: Arc<[u8]>,
    /// How many layers have it as a leaf (dive's `count`).
    pub count: u32,
    /// Cumulative size over those layers (dive's `sizeBytes`).
    pub bytes: u64,
}

/// The running computation.
#[derive(Default)]
pub struct Efficiency {
    paths: HashMap<Arc<[u8]>, PathData>,
    inefficient: Vec<Arc<[u8]>>,
}

/// Its result.
#[derive(Debug)]
pub struct Score {
    /// dive's efficiency score, 0..=1.
    pub score: f64,
    /// Sum of the inefficient paths' cumulative sizes.
    pub wasted: u64,
    /// The inefficient paths, dive's order.
    pub files: Vec<Inefficiency>,
}

impl Efficiency {
    /// Visits one leaf.
    pub fn visit(&mut self, key: &Arc<[u8]>, size: u64) {
        let d = match self.paths.get_mut(&**key) {
            Some(d) => d,
            None => self.paths.entry(key.clone()).or_insert(PathData {
                cumulative: 0,
                min: u64::MAX,
                count: 0,
            }),
        };
        d.cumulative = d.cumulative.saturating_add(size);
        d.min = d.min.min(size);
        d.count += 1;
        if d.count == 2 {
            self.inefficient.push(key.clone());
        }
    }

    /// The score, wasted bytes and list.
    pub fn finish(self) -> Score {
        let (mut min, mut total) = (0u128, 0u128);
        for d in self.paths.values() {
            min += u128::from(d.min);
            total += u128::from(d.cumulative);
        }
        let score = if total == 0 {
            1.0
        } else {
            min as f64 / total as f64
        };
        let mut files: Vec<Inefficiency> = self
            .inefficient
            .into_iter()
            .filter_map(|k| {
                let d = self.paths.get(&k)?;
                Some(Inefficiency {
                    count: d.count,
                    bytes: d.cumulative,
                    key: k,
                })
            })
            .collect();
        files.sort_by_key(|f| f.bytes);
        files.reverse();
        let wasted = files
            .iter()
            .map(|f| f.bytes)
            .fold(0u64, u64::saturating_add);
        Score {
            score,
            wasted,
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dive_definitions() {
        let k = |s: &str| -> Arc<[u8]> { Arc::from(s.as_bytes()) };
        let mut e = Efficiency::default();
        e.visit(&k("a"), 100); // layer 0
        e.visit(&k("b"), 50);
        e.visit(&k("a"), 100); // layer 1: rewritten
        e.visit(&k("b"), 0); // layer 2: deleted (a file's whiteout counts 0)
        e.visit(&k("c"), 10);
        let s = e.finish();
        // min: a 100 + b 0 + c 10; cumulative: a 200 + b 50 + c 10
        assert!((s.score - 110.0 / 260.0).abs() < 1e-12);
        assert_eq!(s.wasted, 250);
        let got: Vec<(&[u8], u32, u64)> = s
            .files
            .iter()
            .map(|f| (&*f.key, f.count, f.bytes))
            .collect();
        assert_eq!(got, [(&b"a"[..], 2, 200), (&b"b"[..], 2, 50)]);
    }

    #[test]
    fn ties_put_the_later_first() {
        let k = |s: &str| -> Arc<[u8]> { Arc::from(s.as_bytes()) };
        let mut e = Efficiency::default();
        for p in ["x", "y", "x", "y"] {
            e.visit(&k(p), 5);
        }
        let s = e.finish();
        assert_eq!(&*s.files[0].key, b"y");
        assert_eq!(&*s.files[1].key, b"x");
    }

    #[test]
    fn nothing_sized_scores_one() {
        let mut e = Efficiency::default();
        e.visit(&Arc::from(&b"d"[..]), 0);
        assert_eq!(e.finish().score, 1.0);
    }
}
