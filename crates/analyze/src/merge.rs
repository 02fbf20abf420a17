//! Stacks the scanned layers bottom up. For each layer, in this order:
//!
//! 1. dive's efficiency visit of the layer's leaves, against the stack as it was below;
//! 2. whiteouts remove paths from the stack; opaque directories hide what is below them;
//! 3. the layer's entries are compared with what was there (added, changed, same) and put on the
//!    stack; directories the layer only implies (no entry of their own) are stacked as dive
//!    stacks them;
//! 4. what step 2 removed and step 3 did not put back is counted as removed.
//!
//! Along the way it records what the findings need: files a later layer deleted, hid or
//! replaced, copies of the same content, files that look like secrets, `.git` directories.
//! Whiteouts are applied before the layer's own entries (OCI's rule: they delete from the layers
//! below only); dive interleaves them in name order, which differs only for a layer that both
//! deletes and re-adds a path under a name sorting before `.wh.`.

use crate::efficiency::{Efficiency, Score};
use crate::findings::secrets::{self, SecretKind};
use crate::path;
use crate::scan::{target_of, Facts, Kind, LayerScan};
use crate::tree::{Node, Tree};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Per-layer counts of the real view's changes (directories not counted).
#[derive(Clone, Debug, Default)]
pub struct LayerStats {
    /// dive's size of the layer.
    pub size: u64,
    /// Uncompressed tar bytes.
    pub tar_bytes: u64,
    /// Tar entries.
    pub entries: u64,
    /// Files added, and their bytes.
    pub added: (u64, u64),
    /// Files changed, and their bytes.
    pub changed: (u64, u64),
    /// Files removed, and their bytes.
    pub removed: (u64, u64),
}

/// How a later layer made a file's bytes dead weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum How {
    /// Deleted by a whiteout.
    Deleted,
    /// Hidden by an opaque directory.
    Hidden,
    /// Replaced by different content (or another type).
    Changed,
    /// Replaced by the same content with another mode or owner.
    MetadataOnly,
    /// Added again, identical.
    Identical,
}

/// A regular file whose bytes ship in `origin` but that layer `by` deleted, hid or replaced.
#[derive(Clone, Debug)]
pub struct Superseded {
    /// Its path.
    pub key: Arc<[u8]>,
    /// Its size.
    pub bytes: u64,
    /// The layer that added it.
    pub origin: usize,
    /// The layer that deleted, hid or replaced it.
    pub by: usize,
    /// How.
    pub how: How,
}

/// A regular file added by a layer, for the duplicate-content finding.
#[derive(Clone, Debug)]
pub struct Copy {
    /// The layer.
    pub layer: usize,
    /// Its path.
    pub key: Arc<[u8]>,
    /// Its size.
    pub size: u64,
}

/// A file that looks like a secret.
#[derive(Clone, Debug)]
pub struct SecretHit {
    /// The layer that added it.
    pub layer: usize,
    /// Its path.
    pub key: Arc<[u8]>,
    /// Why it looks like one.
    pub kind: SecretKind,
    /// Its size.
    pub size: u64,
}

/// `.git` directories: (layer, directory) → (files, bytes) of that layer in it.
pub type GitDirs = BTreeMap<(usize, Arc<[u8]>), (u64, u64)>;

/// Everything stacking produced.
pub struct Merged {
    /// The final filesystem (real view: [`Tree::visible`]).
    pub tree: Tree,
    /// Per layer.
    pub stats: Vec<LayerStats>,
    /// dive's figures.
    pub score: Score,
    /// Files made dead weight by a later layer (hard-linked survivors excluded).
    pub superseded: Vec<Superseded>,
    /// Regular files by content hash (only hashes seen in two or more layers are kept).
    pub copies: Vec<Vec<Copy>>,
    /// Secret-looking files.
    pub secrets: Vec<SecretHit>,
    /// `.git` directories: (layer, directory) → (files, bytes) in that layer.
    pub git: GitDirs,
    /// What the probes learnt about regular files: (layer, path, facts), in layer order. A
    /// later layer may have replaced or removed the file: [`Tree::added_by`] says whether the
    /// final image holds this one.
    pub facts: Vec<(usize, Arc<[u8]>, Box<Facts>)>,
}

fn node_of(e: &crate::scan::Entry, layer: usize) -> Node {
    Node {
        kind: e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        hash: e.hash,
        link: e.link.clone(),
        mtime: e.mtime,
        layer,
        dive_dir: e.kind == Kind::Dir,
        hidden: false,
    }
}

/// Stacks the layers, bottom first.
pub fn merge(scans: Vec<LayerScan>) -> Merged {
    let mut tree = Tree::default();
    let mut eff = Efficiency::default();
    let mut stats = Vec::with_capacity(scans.len());
    let mut superseded = Vec::new();
    let mut contents: HashMap<[u8; 16], Vec<Copy>> = HashMap::new();
    let mut secret_hits = Vec::new();
    let mut git = GitDirs::new();
    let mut facts = Vec::new();

    for (li, mut scan) in scans.into_iter().enumerate() {
        for e in &mut scan.entries {
            if let Some(f) = e.facts.take() {
                facts.push((li, e.key.clone(), f));
            }
        }
        let mut st = LayerStats {
            size: scan.size,
            tar_bytes: scan.tar_bytes,
            entries: scan.tar_entries,
            ..LayerStats::default()
        };

        // 1. dive: every leaf of this layer's tree, in name order, against the stack below.
        for (i, e) in scan.entries.iter().enumerate() {
            let leaf = scan
                .entries
                .get(i + 1)
                .is_none_or(|next| !path::is_within(&next.key, &e.key));
            if !leaf {
                continue;
            }
            if e.kind == Kind::Whiteout {
                let t: Arc<[u8]> = Arc::from(target_of(&e.key));
                let size = match tree.get(&t) {
                    Some(n) if n.dive_dir => tree
                        .subtree(&t)
                        .map(|(_, n)| n.size)
                        .fold(0u64, u64::saturating_add),
                    // dive stops visiting the layer when the deleted path does not exist below;
                    // here it counts 0 and the layer's other leaves are still visited.
                    _ => 0,
                };
                eff.visit(&t, size);
            } else {
                eff.visit(&e.key, e.size);
            }
        }

        // 2. Whiteouts delete, opaque directories hide.
        let mut gone: HashMap<Arc<[u8]>, (Node, How)> = HashMap::new();
        for (_, t) in &scan.whiteouts {
            for (k, n) in tree.remove_subtree(t) {
                if !n.hidden {
                    gone.insert(k, (n, How::Deleted));
                }
            }
        }
        for d in &scan.opaque {
            for (k, n) in tree.below_mut(d) {
                if !n.hidden {
                    n.hidden = true;
                    gone.insert(k.clone(), (n.clone(), How::Hidden));
                }
            }
        }

        // 3. The layer's entries.
        for e in scan.entries.iter().filter(|e| e.kind != Kind::Whiteout) {
            if let Some(kind) = e.secret {
                secret_hits.push(SecretHit {
                    layer: li,
                    key: e.key.clone(),
                    kind,
                    size: e.size,
                });
            }
            if let Some(root) = secrets::git_root(&e.key) {
                let acc = git.entry((li, Arc::from(root))).or_default();
                if e.kind == Kind::File {
                    acc.0 += 1;
                    acc.1 = acc.1.saturating_add(e.size);
                }
            }
            if e.kind == Kind::File && e.size > 0 {
                contents.entry(e.hash).or_default().push(Copy {
                    layer: li,
                    key: e.key.clone(),
                    size: e.size,
                });
            }
            let prev = match tree.get(&e.key) {
                Some(n) if !n.hidden => Some(n.clone()),
                _ => gone.remove(&e.key).map(|(n, _)| n),
            };
            match prev {
                None => {
                    if e.kind != Kind::Dir {
                        st.added.0 += 1;
                        st.added.1 = st.added.1.saturating_add(e.size);
                    }
                }
                Some(p) => {
                    let same_content = p.kind == e.kind && p.hash == e.hash;
                    let differs =
                        !same_content || p.mode != e.mode || p.uid != e.uid || p.gid != e.gid;
                    if differs && e.kind != Kind::Dir {
                        st.changed.0 += 1;
                        st.changed.1 = st.changed.1.saturating_add(e.size);
                    }
                    if p.kind == Kind::File && p.size > 0 && p.layer < li {
                        let how = if !same_content {
                            How::Changed
                        } else if differs {
                            How::MetadataOnly
                        } else {
                            How::Identical
                        };
                        superseded.push(Superseded {
                            key: e.key.clone(),
                            bytes: p.size,
                            origin: p.layer,
                            by: li,
                            how,
                        });
                    }
                }
            }
            tree.insert(e.key.clone(), node_of(e, li));
        }
        // Directories the layer implies without an entry: dive stacks them with an empty payload
        // (not a directory, size 0); in the real view they are directories, visible again.
        let mut implied: HashSet<&[u8]> = HashSet::new();
        for e in &scan.entries {
            for a in path::ancestors(&e.key) {
                if !implied.insert(a) || scan.has(a) {
                    continue;
                }
                match tree.get_mut(a) {
                    Some(n) => {
                        n.dive_dir = false;
                        n.size = 0;
                        n.hidden = false;
                    }
                    None => {
                        gone.remove(a);
                        tree.insert(
                            Arc::from(a),
                            Node {
                                kind: Kind::Dir,
                                mode: 0o755,
                                uid: 0,
                                gid: 0,
                                size: 0,
                                hash: [0; 16],
                                link: None,
                                mtime: 0,
                                layer: li,
                                dive_dir: false,
                                hidden: false,
                            },
                        );
                    }
                }
            }
        }

        // 4. What was deleted or hidden and not put back.
        for (k, (n, how)) in gone {
            if n.kind != Kind::Dir {
                st.removed.0 += 1;
                st.removed.1 = st.removed.1.saturating_add(n.size);
            }
            if n.kind == Kind::File && n.size > 0 {
                superseded.push(Superseded {
                    key: k,
                    bytes: n.size,
                    origin: n.layer,
                    by: li,
                    how,
                });
            }
        }
        stats.push(st);
    }

    // A file whose hard link (added by the same layer) is still in the image was not wasted:
    // its data ships once and is still reachable.
    let linked: HashSet<(usize, Arc<[u8]>)> = tree
        .visible()
        .filter(|(_, n)| n.kind == Kind::HardLink)
        .filter_map(|(_, n)| n.link.clone().map(|l| (n.layer, l)))
        .collect();
    superseded.retain(|s| !linked.contains(&(s.origin, s.key.clone())));
    superseded.sort_by(|a, b| (a.origin, a.by, &a.key).cmp(&(b.origin, b.by, &b.key)));

    let copies: Vec<Vec<Copy>> = contents
        .into_values()
        .filter(|v| {
            v.first()
                .is_some_and(|f| v.iter().any(|c| c.layer != f.layer))
        })
        .collect();

    Merged {
        tree,
        stats,
        score: eff.finish(),
        superseded,
        copies,
        secrets: secret_hits,
        git,
        facts,
    }
}
