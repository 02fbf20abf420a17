//! The image's filesystem as of one layer, for the interactive view: the layers below stacked
//! (whiteouts, opaque directories, implied directories), then the selected layer on top with
//! each path marked added, changed or unchanged by it, and what it deleted or hid kept in the
//! tree marked removed.
//!
//! The per-layer lists are copied out of the scans before they are merged (keys are shared
//! `Arc`s, so the copy costs a few words an entry); a snapshot is rebuilt when another layer is
//! selected: linear in the entries of the layers up to it.

use crate::path;
use crate::scan::{Kind, LayerScan};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One entry of a layer, as the view needs it.
#[derive(Clone, Debug)]
pub struct ViewEntry {
    /// Normalised key (`path.rs`).
    pub key: Arc<[u8]>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size field of the tar entry.
    pub size: u64,
    /// Content hash (files, symlink targets).
    pub hash: [u8; 16],
    /// Symbolic link target, as written.
    pub link: Option<Arc<[u8]>>,
}

/// One layer, as the view needs it.
#[derive(Clone, Debug, Default)]
pub struct ViewLayer {
    /// Entries sorted by key (whiteouts not included).
    pub entries: Vec<ViewEntry>,
    /// What the layer's whiteouts delete.
    pub deletes: Vec<Arc<[u8]>>,
    /// Directories the layer marks opaque.
    pub opaque: Vec<Arc<[u8]>>,
}

impl ViewLayer {
    /// Copies what the view needs out of a scan.
    pub(crate) fn from_scan(s: &LayerScan) -> ViewLayer {
        ViewLayer {
            entries: s
                .entries
                .iter()
                .filter(|e| e.kind != Kind::Whiteout)
                .map(|e| ViewEntry {
                    key: e.key.clone(),
                    kind: e.kind,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    size: e.size,
                    hash: e.hash,
                    link: if e.kind == Kind::Symlink {
                        e.link.clone()
                    } else {
                        None
                    },
                })
                .collect(),
            deletes: s.whiteouts.iter().map(|(_, t)| t.clone()).collect(),
            opaque: s.opaque.clone(),
        }
    }
}

/// What the selected layer did to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not touched by the selected layer.
    Unchanged,
    /// New: not there below.
    Added,
    /// There below, and the layer wrote it again with other content, type, mode or owner.
    Changed,
    /// There below, and the layer deleted it (whiteout) or hid it (opaque directory).
    Removed,
}

impl Status {
    /// One letter, so the view works without colour: `A`, `M`, `D`, or a space.
    pub fn letter(self) -> char {
        match self {
            Status::Unchanged => ' ',
            Status::Added => 'A',
            Status::Changed => 'M',
            Status::Removed => 'D',
        }
    }
}

/// One path of a snapshot.
#[derive(Clone, Debug)]
pub struct FsNode {
    /// Its key.
    pub key: Arc<[u8]>,
    /// Depth in the tree (0: a child of the root).
    pub depth: usize,
    /// Index of its parent in the snapshot, `None` at the top.
    pub parent: Option<usize>,
    /// What it is.
    pub kind: Kind,
    /// Its own size (tar size field).
    pub size: u64,
    /// A directory: the sizes of everything below it that is not removed; else its size.
    pub total: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner and group.
    pub owner: (u64, u64),
    /// Symbolic link target.
    pub link: Option<Arc<[u8]>>,
    /// The layer whose entry this is.
    pub layer: usize,
    /// What the selected layer did to it.
    pub status: Status,
    /// Whether any node lies below it.
    pub has_children: bool,
}

#[derive(Clone)]
struct Slot {
    e: ViewEntry,
    layer: usize,
    status: Status,
}

fn implied_dir(key: &[u8]) -> ViewEntry {
    ViewEntry {
        key: Arc::from(key),
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        hash: [0; 16],
        link: None,
    }
}

fn remove_below(map: &mut BTreeMap<Arc<[u8]>, Slot>, dir: &[u8], with_dir: bool) -> Vec<Slot> {
    let keys: Vec<Arc<[u8]>> = if dir.is_empty() {
        map.keys().cloned().collect()
    } else {
        let end = path::subtree_end(dir);
        map.range::<[u8], _>((
            std::ops::Bound::Included(dir),
            std::ops::Bound::Excluded(end.as_slice()),
        ))
        .map(|(k, _)| k.clone())
        .filter(|k| with_dir || k.len() > dir.len())
        .collect()
    };
    keys.into_iter().filter_map(|k| map.remove(&k)).collect()
}

/// The filesystem as of layer `upto` (layers `0..=upto` stacked; `upto` past the last layer
/// means the last), in key order (depth first, children by name), marked by what layer `upto`
/// did.
pub fn snapshot(layers: &[ViewLayer], upto: usize) -> Vec<FsNode> {
    let mut map: BTreeMap<Arc<[u8]>, Slot> = BTreeMap::new();
    let last = upto.min(layers.len().saturating_sub(1));
    for (li, l) in layers.iter().enumerate().take(last + 1) {
        let top = li == last;
        let mut gone: HashMap<Arc<[u8]>, Slot> = HashMap::new();
        for t in &l.deletes {
            for s in remove_below(&mut map, t, true) {
                gone.insert(s.e.key.clone(), s);
            }
        }
        for d in &l.opaque {
            for s in remove_below(&mut map, d, false) {
                gone.insert(s.e.key.clone(), s);
            }
        }
        for e in &l.entries {
            let prev = map.get(&e.key).cloned().or_else(|| gone.remove(&e.key));
            let status = match &prev {
                _ if !top => Status::Unchanged,
                None => Status::Added,
                Some(p)
                    if p.e.kind != e.kind
                        || p.e.hash != e.hash
                        || p.e.mode != e.mode
                        || p.e.uid != e.uid
                        || p.e.gid != e.gid =>
                {
                    Status::Changed
                }
                Some(_) => Status::Unchanged,
            };
            map.insert(
                e.key.clone(),
                Slot {
                    e: e.clone(),
                    layer: li,
                    status,
                },
            );
        }
        // Directories the layer implies without entries of their own.
        for e in &l.entries {
            let ancestors: Vec<&[u8]> = path::ancestors(&e.key).collect();
            for a in ancestors.into_iter().rev() {
                if map.contains_key(a) {
                    break; // and so are its ancestors (a subtree is only ever removed whole)
                }
                let prev = gone.remove(a);
                let status = match prev {
                    _ if !top => Status::Unchanged,
                    None => Status::Added,
                    Some(_) => Status::Unchanged,
                };
                map.insert(
                    Arc::from(a),
                    Slot {
                        e: implied_dir(a),
                        layer: li,
                        status,
                    },
                );
            }
        }
        if top {
            for (k, mut s) in gone {
                s.status = Status::Removed;
                map.insert(k, s);
            }
        }
    }
    flatten(map)
}

fn flatten(map: BTreeMap<Arc<[u8]>, Slot>) -> Vec<FsNode> {
    let mut out: Vec<FsNode> = Vec::with_capacity(map.len());
    let mut stack: Vec<usize> = Vec::new();
    for (key, s) in map {
        while let Some(&top) = stack.last() {
            if path::is_within(&key, &out[top].key) && key.len() > out[top].key.len() {
                break;
            }
            stack.pop();
        }
        let parent = stack.last().copied();
        let own = if s.status == Status::Removed {
            0
        } else {
            s.e.size
        };
        for &a in &stack {
            out[a].total = out[a].total.saturating_add(own);
        }
        if let Some(p) = parent {
            out[p].has_children = true;
        }
        out.push(FsNode {
            depth: stack.len(),
            parent,
            kind: s.e.kind,
            size: s.e.size,
            total: own,
            mode: s.e.mode,
            owner: (s.e.uid, s.e.gid),
            link: s.e.link.clone(),
            layer: s.layer,
            status: s.status,
            has_children: false,
            key,
        });
        if s.e.kind == Kind::Dir {
            stack.push(out.len() - 1);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn entry(p: &str, kind: Kind, size: u64, fill: u8) -> ViewEntry {
        ViewEntry {
            key: Arc::from(path::key(p)),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size,
            hash: [fill; 16],
            link: None,
        }
    }

    /// Layer 0: /etc/a, /etc/b, /bin/sh. Layer 1: /etc/a changed, /app/x added (directory
    /// implied), /etc/b deleted. Layer 2: /app made opaque, /app/y added.
    pub fn three_layers() -> Vec<ViewLayer> {
        let mut l0 = ViewLayer {
            entries: vec![
                entry("bin", Kind::Dir, 0, 0),
                entry("bin/sh", Kind::File, 100, 1),
                entry("etc", Kind::Dir, 0, 0),
                entry("etc/a", Kind::File, 10, 2),
                entry("etc/b", Kind::File, 20, 3),
            ],
            ..ViewLayer::default()
        };
        l0.entries.sort_by(|a, b| a.key.cmp(&b.key));
        let l1 = ViewLayer {
            entries: vec![
                entry("app/x", Kind::File, 1000, 4),
                entry("etc/a", Kind::File, 11, 5),
            ],
            deletes: vec![Arc::from(path::key("etc/b"))],
            opaque: vec![],
        };
        let l2 = ViewLayer {
            entries: vec![
                entry("app", Kind::Dir, 0, 0),
                entry("app/y", Kind::File, 7, 6),
            ],
            deletes: vec![],
            opaque: vec![Arc::from(path::key("app"))],
        };
        vec![l0, l1, l2]
    }

    fn find<'a>(s: &'a [FsNode], p: &str) -> Option<&'a FsNode> {
        let k = path::key(p);
        s.iter().find(|n| *n.key == *k)
    }

    #[test]
    fn marks_what_the_selected_layer_did() {
        let ls = three_layers();
        let s0 = snapshot(&ls, 0);
        assert!(s0.iter().all(|n| n.status == Status::Added));
        assert!(find(&s0, "app").is_none());

        let s1 = snapshot(&ls, 1);
        assert_eq!(find(&s1, "etc/a").unwrap().status, Status::Changed);
        assert_eq!(find(&s1, "etc/b").unwrap().status, Status::Removed);
        assert_eq!(find(&s1, "app").unwrap().status, Status::Added);
        assert_eq!(find(&s1, "app/x").unwrap().status, Status::Added);
        assert_eq!(find(&s1, "bin/sh").unwrap().status, Status::Unchanged);
        // Removed files do not count in their directory's total.
        assert_eq!(find(&s1, "etc").unwrap().total, 11);
        assert_eq!(find(&s1, "app").unwrap().total, 1000);
        assert_eq!(find(&s1, "app/x").unwrap().depth, 1);

        let s2 = snapshot(&ls, 2);
        assert_eq!(find(&s2, "app/x").unwrap().status, Status::Removed);
        assert_eq!(find(&s2, "app/y").unwrap().status, Status::Added);
        assert_eq!(find(&s2, "app").unwrap().status, Status::Unchanged);
        assert!(
            find(&s2, "etc/b").is_none(),
            "deleted below, not by this layer"
        );
        assert_eq!(find(&s2, "etc/a").unwrap().status, Status::Unchanged);
        assert_eq!(find(&s2, "etc/a").unwrap().layer, 1);
    }

    #[test]
    fn parents_and_children_follow_key_order() {
        let s = snapshot(&three_layers(), 1);
        let names: Vec<String> = s.iter().map(|n| path::display(&n.key)).collect();
        assert_eq!(
            names,
            ["/app", "/app/x", "/bin", "/bin/sh", "/etc", "/etc/a", "/etc/b"]
        );
        let etc = s.iter().position(|n| &*n.key == b"etc").unwrap();
        assert_eq!(s[etc + 1].parent, Some(etc));
        assert!(s[etc].has_children);
        assert!(!s[etc + 1].has_children);
        assert_eq!(
            snapshot(&three_layers(), 99).len(),
            snapshot(&three_layers(), 2).len()
        );
        assert!(snapshot(&[], 0).is_empty());
    }
}
