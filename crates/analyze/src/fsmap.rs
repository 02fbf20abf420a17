//! A size map of the final filesystem for the HTML treemap: directories with their bytes, each
//! file with the layer that last wrote it, cut down to at most [`MapOptions::max_nodes`] nodes.
//!
//! The real view (what a container sees) is walked once in key order (depth first), so the
//! full tree costs one small record per path. Then the largest directories are opened first
//! while the node budget lasts; inside an opened directory, children smaller than
//! [`MapOptions::min_fraction`] of the image are gathered into one "smaller files" node. A
//! directory left closed, and a gathered node, take the colour of the layer that holds most of
//! their bytes. So an image with a million files draws at most `max_nodes` rectangles.

use crate::path;
use crate::scan::Kind;
use crate::tree::Tree;
use serde::Serialize;
use std::collections::{BinaryHeap, HashMap};

/// How large the map may get.
#[derive(Clone, Debug)]
pub struct MapOptions {
    /// Nodes kept (default 2500).
    pub max_nodes: usize,
    /// Children smaller than this fraction of the image's bytes are gathered per directory
    /// (default 0.0002: 200 KB of a 1 GB image).
    pub min_fraction: f64,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            max_nodes: 2500,
            min_fraction: 0.0002,
        }
    }
}

/// What a node of the map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapKind {
    /// A file (or link, device: anything but a directory).
    File,
    /// A directory whose children are in the map.
    Dir,
    /// A directory whose contents are not in the map (too small, or out of budget).
    Closed,
    /// Several small children of a directory, gathered.
    Rest,
}

/// One node of the map.
#[derive(Clone, Debug, Serialize)]
pub struct MapNode {
    /// Its name (for `Rest`: how many files).
    pub name: String,
    /// Its full path (for `Rest`: the directory's).
    pub path: String,
    /// What it stands for.
    pub kind: MapKind,
    /// Bytes of the regular files in it.
    pub bytes: u64,
    /// Files in it (1 for a file).
    pub files: u64,
    /// The layer that last wrote it (a file, an open directory), or that holds most of its
    /// bytes (`Closed`, `Rest`).
    pub layer: usize,
    /// Children, largest first (a `Dir` only).
    pub children: Vec<MapNode>,
}

/// The final filesystem as a bounded size map.
#[derive(Clone, Debug, Serialize)]
pub struct FsMap {
    /// `/`.
    pub root: MapNode,
    /// Nodes in the map.
    pub nodes: usize,
}

/// The whole tree, one record per path of the real view.
struct Raw {
    name: Box<str>,
    bytes: u64,
    files: u64,
    layer: usize,
    dir: bool,
    children: Vec<u32>,
}

fn build_raw(tree: &Tree) -> Vec<Raw> {
    let mut nodes = vec![Raw {
        name: "".into(),
        bytes: 0,
        files: 0,
        layer: 0,
        dir: true,
        children: Vec::new(),
    }];
    // The directories from the root down to the last path's: (name, index).
    let mut stack: Vec<(Vec<u8>, usize)> = Vec::new();
    let add = |nodes: &mut Vec<Raw>, parent: usize, raw: Raw| -> usize {
        let i = nodes.len();
        nodes.push(raw);
        nodes[parent].children.push(i as u32);
        i
    };
    for (key, n) in tree.visible() {
        let comps: Vec<&[u8]> = path::components(key).collect();
        let Some((last, dirs)) = comps.split_last() else {
            continue;
        };
        let keep = stack
            .iter()
            .zip(dirs.iter())
            .take_while(|((name, _), d)| name.as_slice() == **d)
            .count();
        stack.truncate(keep);
        // Directories with no entry of their own (an image may leave them out).
        for d in &dirs[keep..] {
            let parent = stack.last().map(|s| s.1).unwrap_or(0);
            let raw = Raw {
                name: String::from_utf8_lossy(d).into(),
                bytes: 0,
                files: 0,
                layer: n.layer,
                dir: true,
                children: Vec::new(),
            };
            let i = add(&mut nodes, parent, raw);
            stack.push((d.to_vec(), i));
        }
        let is_dir = n.kind == Kind::Dir;
        let parent = stack.last().map(|s| s.1).unwrap_or(0);
        let raw = Raw {
            name: String::from_utf8_lossy(last).into(),
            bytes: if n.kind == Kind::File { n.size } else { 0 },
            files: u64::from(!is_dir),
            layer: n.layer,
            dir: is_dir,
            children: Vec::new(),
        };
        let i = add(&mut nodes, parent, raw);
        if is_dir {
            stack.push((last.to_vec(), i));
        }
    }
    sum_up(&mut nodes);
    nodes
}

/// Directory totals, bottom up (children have larger indices than their parents).
fn sum_up(nodes: &mut [Raw]) {
    for i in (0..nodes.len()).rev() {
        if !nodes[i].dir {
            continue;
        }
        let (mut b, mut f) = (0u64, 0u64);
        for &c in &nodes[i].children {
            if let Some(n) = nodes.get(c as usize) {
                b = b.saturating_add(n.bytes);
                f = f.saturating_add(n.files);
            }
        }
        nodes[i].bytes = b;
        nodes[i].files = f;
    }
}

/// The layer holding most of the bytes below node `i` (ties: the higher layer; no bytes: the
/// layer of its last-written path).
fn dominant(nodes: &[Raw], roots: &[u32]) -> usize {
    let mut by: HashMap<usize, u64> = HashMap::new();
    let mut todo: Vec<u32> = roots.to_vec();
    let mut fallback = 0;
    while let Some(i) = todo.pop() {
        let Some(n) = nodes.get(i as usize) else {
            continue;
        };
        fallback = fallback.max(n.layer);
        if n.dir {
            todo.extend_from_slice(&n.children);
        } else {
            *by.entry(n.layer).or_default() += n.bytes;
        }
    }
    by.into_iter()
        .filter(|(_, b)| *b > 0)
        .max_by_key(|(l, b)| (*b, *l))
        .map(|(l, _)| l)
        .unwrap_or(fallback)
}

/// The map of a stacked filesystem.
pub(crate) fn build(tree: &Tree, opts: &MapOptions) -> FsMap {
    let raw = build_raw(tree);
    let total = raw.first().map(|r| r.bytes).unwrap_or(0);
    let min_bytes = (total as f64 * opts.min_fraction.max(0.0)) as u64;
    let budget = opts.max_nodes.max(2);
    // Open the largest directories first while the budget lasts.
    let mut open = vec![false; raw.len()];
    let mut used = 1usize;
    let mut heap: BinaryHeap<(u64, u32)> = BinaryHeap::new();
    heap.push((total, 0));
    while let Some((_, i)) = heap.pop() {
        let Some(n) = raw.get(i as usize) else {
            continue;
        };
        let big = n
            .children
            .iter()
            .filter(|&&c| raw[c as usize].bytes >= min_bytes.max(1))
            .count();
        let small = n.children.len() - big;
        let cost = big + usize::from(small > 0);
        if used + cost > budget {
            continue;
        }
        used += cost;
        open[i as usize] = true;
        for &c in &n.children {
            let r = &raw[c as usize];
            if r.dir && r.bytes >= min_bytes.max(1) && !r.children.is_empty() {
                heap.push((r.bytes, c));
            }
        }
    }
    let root = emit(&raw, 0, String::new(), &open, min_bytes);
    FsMap { root, nodes: used }
}

fn emit(raw: &[Raw], i: u32, path: String, open: &[bool], min_bytes: u64) -> MapNode {
    let n = &raw[i as usize];
    let shown = if path.is_empty() {
        "/".to_string()
    } else {
        path.clone()
    };
    if !n.dir {
        return MapNode {
            name: n.name.to_string(),
            path: shown,
            kind: MapKind::File,
            bytes: n.bytes,
            files: 1,
            layer: n.layer,
            children: Vec::new(),
        };
    }
    if !open[i as usize] {
        return MapNode {
            name: n.name.to_string(),
            path: shown,
            kind: MapKind::Closed,
            bytes: n.bytes,
            files: n.files,
            layer: dominant(raw, &[i]),
            children: Vec::new(),
        };
    }
    let mut children = Vec::new();
    let mut rest: Vec<u32> = Vec::new();
    for &c in &n.children {
        let r = &raw[c as usize];
        if r.bytes >= min_bytes.max(1) {
            children.push(emit(raw, c, format!("{path}/{}", r.name), open, min_bytes));
        } else {
            rest.push(c);
        }
    }
    if !rest.is_empty() {
        let (b, f) = rest.iter().fold((0u64, 0u64), |(b, f), &c| {
            let r = &raw[c as usize];
            (b.saturating_add(r.bytes), f.saturating_add(r.files.max(1)))
        });
        children.push(MapNode {
            name: format!("{} smaller entries", rest.len()),
            path: shown.clone(),
            kind: MapKind::Rest,
            bytes: b,
            files: f,
            layer: dominant(raw, &rest),
            children: Vec::new(),
        });
    }
    children.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    MapNode {
        name: if path.is_empty() {
            "/".into()
        } else {
            n.name.to_string()
        },
        path: shown,
        kind: MapKind::Dir,
        bytes: n.bytes,
        files: n.files,
        layer: n.layer,
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;
    use std::sync::Arc;

    fn file(size: u64, layer: usize) -> Node {
        Node {
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            hash: [0; 16],
            link: None,
            mtime: 0,
            layer,
            dive_dir: false,
            hidden: false,
        }
    }

    fn count(n: &MapNode) -> usize {
        1 + n.children.iter().map(count).sum::<usize>()
    }

    fn sum(n: &MapNode) -> u64 {
        if n.kind == MapKind::Dir {
            n.children.iter().map(sum).sum()
        } else {
            n.bytes
        }
    }

    #[test]
    fn a_hundred_thousand_files_stay_within_the_budget() {
        let mut t = Tree::default();
        let mut total = 0;
        for d in 0..100u64 {
            t.insert(
                Arc::from(path::key(&format!("d{d}"))),
                Node {
                    kind: Kind::Dir,
                    ..file(0, 0)
                },
            );
            for f in 0..1000u64 {
                // Directories without entries of their own too (implied by their files).
                let size = 1 + (d * 1000 + f) % 5000;
                total += size;
                let k = path::key(&format!("d{d}/sub{}/f{f}", f % 7));
                t.insert(Arc::from(k), file(size, (f % 3) as usize));
            }
        }
        let opts = MapOptions::default();
        let started = std::time::Instant::now();
        let m = build(&t, &opts);
        assert!(started.elapsed().as_secs() < 10);
        assert!(count(&m.root) <= opts.max_nodes, "{}", count(&m.root));
        assert_eq!(count(&m.root), m.nodes);
        assert_eq!(m.root.bytes, total);
        assert_eq!(m.root.files, 100_000);
        assert_eq!(sum(&m.root), total, "gathering keeps every byte");
        assert!(m.root.children.iter().any(|c| c.kind == MapKind::Dir));
    }

    #[test]
    fn colours_follow_the_last_writer_and_the_majority() {
        let mut t = Tree::default();
        t.insert(Arc::from(path::key("a/big")), file(9000, 2));
        for i in 0..10 {
            t.insert(Arc::from(path::key(&format!("a/s{i}"))), file(10, 1));
        }
        t.insert(Arc::from(path::key("b/x")), file(100, 0));
        t.insert(Arc::from(path::key("b/y")), file(300, 3));
        let m = build(
            &t,
            &MapOptions {
                max_nodes: 100,
                min_fraction: 0.01,
            },
        );
        let a = m.root.children.iter().find(|c| c.name == "a").unwrap();
        assert_eq!(a.kind, MapKind::Dir);
        let big = a.children.iter().find(|c| c.name == "big").unwrap();
        assert_eq!(
            (big.kind, big.layer, big.path.as_str()),
            (MapKind::File, 2, "/a/big")
        );
        let rest = a.children.iter().find(|c| c.kind == MapKind::Rest).unwrap();
        assert_eq!((rest.files, rest.bytes, rest.layer), (10, 100, 1));
        // With room for only the root and its children, b stays closed, coloured by layer 3.
        let m = build(
            &t,
            &MapOptions {
                max_nodes: 3,
                min_fraction: 0.0,
            },
        );
        let b = m.root.children.iter().find(|c| c.name == "b").unwrap();
        assert_eq!((b.kind, b.layer), (MapKind::Closed, 3));
    }
}
