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
    /// Hard link: the target's key; symbolic link: the target as written.
    pub link: Option<Arc<[u8]>>,
    /// Modification time.
    pub mtime: u64,
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

    /// The node at `key` in the real view when layer `layer` put it there (the final image
    /// holds that layer's file, not a later one's).
    pub fn added_by(&self, key: &[u8], layer: usize) -> Option<&Node> {
        self.map.get(key).filter(|n| !n.hidden && n.layer == layer)
    }

    /// Follows `key` through symbolic links, inside the root (an absolute target starts again
    /// at the image's root, `..` stops there), as the kernel would inside the container: the
    /// key of what it names and its node in the real view, or `None` when it does not exist, a
    /// link loops, or more than 40 links are followed (the kernel's limit).
    pub fn resolve(&self, key: &[u8]) -> Option<(Vec<u8>, &Node)> {
        let mut todo: Vec<Vec<u8>> = path::components(key)
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        todo.reverse();
        let mut cur: Vec<u8> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    let cut = cur.iter().rposition(|&b| b == path::SEP).unwrap_or(0);
                    cur.truncate(cut);
                    continue;
                }
                _ => {}
            }
            let mut next = cur.clone();
            if !next.is_empty() {
                next.push(path::SEP);
            }
            next.extend_from_slice(&c);
            let n = self.map.get(next.as_slice()).filter(|n| !n.hidden)?;
            if n.kind == Kind::Symlink {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = n.link.as_deref()?;
                if target.starts_with(b"/") {
                    cur.clear();
                }
                todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                continue;
            }
            cur = next;
        }
        if cur.is_empty() {
            return None; // the root itself
        }
        let n = self.map.get(cur.as_slice())?;
        Some((cur, n))
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
            mtime: 0,
            layer: 0,
            dive_dir: false,
            hidden: false,
        }
    }

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let mut t = Tree::default();
        let link = |to: &str| Node {
            kind: Kind::Symlink,
            link: Some(Arc::from(to.as_bytes())),
            ..node(0)
        };
        let dir = Node {
            kind: Kind::Dir,
            ..node(0)
        };
        t.insert(Arc::from(path::key("usr")), dir.clone());
        t.insert(Arc::from(path::key("usr/lib")), dir.clone());
        t.insert(Arc::from(path::key("usr/lib/ld.so")), node(5));
        t.insert(Arc::from(path::key("lib")), link("usr/lib"));
        t.insert(Arc::from(path::key("lib64")), link("/usr/../../lib"));
        t.insert(Arc::from(path::key("loop")), link("loop/x"));
        t.insert(
            Arc::from(path::key("usr/lib/up")),
            link("../../../../usr/lib/ld.so"),
        );
        let r = |p: &str| t.resolve(&path::key(p)).map(|(k, _)| path::display(&k));
        assert_eq!(r("lib64/ld.so").as_deref(), Some("/usr/lib/ld.so"));
        assert_eq!(r("lib/up").as_deref(), Some("/usr/lib/ld.so"));
        assert_eq!(r("lib64/missing"), None);
        assert_eq!(r("loop"), None, "a loop ends at the hop limit");
        assert_eq!(r("usr/lib").as_deref(), Some("/usr/lib"));
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
