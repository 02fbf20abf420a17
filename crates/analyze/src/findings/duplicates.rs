//! The same content added by several layers at different paths (a copy instead of a move, the
//! same file COPY'd twice): each later layer's copy is dead weight. Only copies that are still
//! in the final image count (a deleted or replaced copy is reported as such); copies within
//! one layer do not count.

use super::{finding, Acc};
use crate::merge::Merged;
use crate::report::{Finding, FindingKind};
use std::collections::BTreeMap;

/// Adds the findings: one per (layer holding the extra copies, earliest layer with the content).
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(usize, usize), Acc> = BTreeMap::new();
    for copies in &m.copies {
        let mut alive: Vec<&crate::merge::Copy> = copies
            .iter()
            .filter(|c| {
                m.tree
                    .get(&c.key)
                    .is_some_and(|n| !n.hidden && n.layer == c.layer)
            })
            .collect();
        alive.sort_by(|a, b| (a.layer, &a.key).cmp(&(b.layer, &b.key)));
        let Some(first) = alive.first() else { continue };
        let first_layer = first.layer;
        let mut last_layer = first_layer;
        for c in &alive {
            if c.layer == last_layer {
                continue;
            }
            last_layer = c.layer;
            groups
                .entry((c.layer, first_layer))
                .or_default()
                .add(&c.key, c.size);
        }
    }
    for ((layer, first), acc) in groups {
        let n = acc.files;
        let files = if n == 1 { "file" } else { "files" };
        out.push(finding(
            FindingKind::DuplicateContent,
            format!("{n} {files} in layer {layer} with the same content as files of layer {first}"),
            layer,
            Some(first),
            acc,
            format!(
                "The same bytes ship twice. Move instead of copy (`mv`, or one COPY to the final \
                 place), or use a symlink; if layer {layer} copies from another stage, copy only \
                 what layer {first} does not already hold."
            ),
        ));
    }
}
