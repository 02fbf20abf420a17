//! Setuid/setgid files and world-writable paths in the final image. One finding per (kind,
//! layer that added them).

use super::{finding, Acc};
use crate::merge::Merged;
use crate::report::{Finding, FindingKind};
use crate::scan::Kind;
use std::collections::BTreeMap;

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(FindingKind, usize), Acc> = BTreeMap::new();
    for (k, n) in m.tree.visible() {
        if n.kind == Kind::File && n.mode & 0o6000 != 0 {
            groups
                .entry((FindingKind::Setuid, n.layer))
                .or_default()
                .add(k, n.size);
        }
        let sticky_dir = n.kind == Kind::Dir && n.mode & 0o1000 != 0;
        let has_mode = !matches!(n.kind, Kind::Symlink | Kind::HardLink | Kind::Whiteout);
        if has_mode && n.mode & 0o002 != 0 && !sticky_dir {
            groups
                .entry((FindingKind::WorldWritable, n.layer))
                .or_default()
                .add(k, n.size);
        }
    }
    for ((kind, layer), acc) in groups {
        let n = acc.files;
        let (title, fix) = if kind == FindingKind::Setuid {
            (
                format!(
                    "{n} setuid or setgid {} added by layer {layer}",
                    if n == 1 { "file" } else { "files" }
                ),
                "Remove what the image does not need, or drop the bits in the step that installs \
                 them (`chmod u-s,g-s FILE`, or `find / -xdev -perm /6000 -type f -exec chmod \
                 a-s {} +`), and run as a non-root USER."
                    .to_string(),
            )
        } else {
            (
                format!(
                    "{n} world-writable {} added by layer {layer}",
                    if n == 1 { "path" } else { "paths" }
                ),
                "Remove write access for others (`chmod o-w PATH`, or COPY --chmod); a shared \
                 directory should have the sticky bit (`chmod 1777`)."
                    .to_string(),
            )
        };
        out.push(finding(kind, title, layer, None, acc, fix));
    }
}
