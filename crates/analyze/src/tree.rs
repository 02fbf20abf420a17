//! The stacked filesystem: every path of the layers merged so far, with where it came from.
//!
//! One map serves two views. dive's view ignores opaque directories (dive drops the marker), so
//! what an opaque directory hides stays in the map, flagged `hidden`; the real view (what a
//! container sees, used for the findings) skips hidden nodes. Whiteouts remove from both.

use crate::path;
use crate::scan::Kind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One path of the stacked filesystem.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size field of the entry (dive's size; 0 for a directory only implied by its children).
    pub size: u64,
    /// Content hash of a regular file.
    pub hash: [u8; 16],
    /// Hard link target.
    pub link: Option<Arc<[u8]>>,
    /// Index of the layer whose entry this is.
    pub layer: usize,
    /// dive's `IsDir` of the node's payload: false for a directory that the last layer touching
    /// it only implied (no entry of its own), because dive stacks such a node with an empty
    /// payload.
    pub dive_dir: bool,
    /// Hidden by an opaque directory of a later layer: gone in the real view, kept in dive's.
    pub hidden: bool,
}

/// The stacked filesystem.
#[derive(Default)]
pub struct Tree {
    map: BTreeMap<Arc<[u8]>, Node>,
}

impl Tree {
    /// The node at `key`, in dive's view (hidden ones included).
    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.map.get(key)
    }

    /// The node at `key`, mutable.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Node> {
        self.map.get_mut(key)
    }

    /// Inserts or replaces a node.
    pub fn insert(&mut self, key: Arc<[u8]>, node: Node) {
        self.map.insert(key, node);
    }

    /// `dir` and everything below it (the empty key: everything).
    pub fn subtree<'a>(&'a self, dir: &[u8]) -> impl Iterator<Item = (&'a Arc<[u8]>, &'a Node)> {
        let end = path::subtree_end(dir);
        let range: Box<dyn Iterator<Item = _>> = if dir.is_empty() {
            Box::new(self.map.iter())
        } else {
            Box::new(self.map.range::<[u8], _>((
                std::ops::Bound::Included(dir),
                std::ops::Bound::Excluded(end.as_slice()),
            )))
        };
        range
    }

    /// Everything strictly below `dir`, mutable.
    pub fn below_mut<'a>(
        &'a mut self,
        dir: &[u8],
    ) -> impl Iterator<Item = (&'a Arc<[u8]>, &'a mut Node)> {
        let end = path::subtree_end(dir);
        let dir_len = dir.len();
        let range: Box<dyn Iterator<Item = _>> = if dir.is_empty() {
            Box::new(self.map.iter_mut())
        } else {
            Box::new(self.map.range_mut::<[u8], _>((
                std::ops::Bound::Excluded(dir),
                std::ops::Bound::Excluded(end.as_slice()),
            )))
        };
        range.filter(move |(k, _)| k.len() > dir_len)
    }

    /// Removes `dir` and everything below it; returns what was removed.
    pub fn remove_subtree(&mut self, dir: &[u8]) -> Vec<(Arc<[u8]>, Node)> {
        let keys: Vec<Arc<[u8]>> = self.subtree(dir).map(|(k, _)| k.clone()).collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|n| (k, n)))
            .collect()
    }

    /// The nodes of the real view (not hidden), in key order.
    pub fn visible(&self) -> impl Iterator<Item = (&Arc<[u8]>, &Node)> {
        self.map.iter().filter(|(_, n)| !n.hidden)
    }

    /// Number of nodes (both views).
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(size: u64) -> Node {
        Node {
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            hash: [0; 16],
            link: None,
            layer: 0,
            dive_dir: false,
            hidden: false,
        }
    }

    #[test]
    fn subtrees_are_ranges() {
        let mut t = Tree::default();
        for (p, s) in [
            ("a", 0),
            ("a/b", 1),
            ("a/b/c", 2),
            ("a-b", 4),
            ("a.txt", 8),
            ("ab", 16),
        ] {
            t.insert(Arc::from(path::key(p)), node(s));
        }
        let sum = |t: &Tree, d: &str| t.subtree(&path::key(d)).map(|(_, n)| n.size).sum::<u64>();
        assert_eq!(sum(&t, "a"), 3);
        assert_eq!(sum(&t, "a/b"), 3);
        assert_eq!(sum(&t, ""), 31);
        assert_eq!(t.below_mut(&path::key("a")).count(), 2);
        assert_eq!(t.below_mut(&[]).count(), 6);
        let gone = t.remove_subtree(&path::key("a"));
        assert_eq!(gone.len(), 3);
        assert_eq!(t.len(), 3);
    }
}
