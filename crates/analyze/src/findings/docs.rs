//! Documentation in the final image: `/usr/share/doc` (copyright files excepted: licences may
//! require them), man and info pages. One finding per layer that added them.

use super::{comps, finding, Acc};
use crate::merge::Merged;
use crate::report::{Finding, FindingKind};
use crate::scan::Kind;
use std::collections::BTreeMap;

/// Whether a file is documentation that can go.
pub fn is_doc(key: &[u8]) -> bool {
    let c = comps(key);
    let share = match c.as_slice() {
        [b"usr", b"share", rest @ ..] => rest,
        [b"usr", b"local", b"share", rest @ ..] => rest,
        _ => return false,
    };
    match share {
        [b"doc", _, b"copyright"] => false,
        [b"doc", _, ..] | [b"man", _, ..] | [b"info", _, ..] | [b"gtk-doc", _, ..] => true,
        _ => false,
    }
}

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<usize, Acc> = BTreeMap::new();
    for (k, n) in m.tree.visible() {
        if n.kind == Kind::File && is_doc(k) {
            groups.entry(n.layer).or_default().add(k, n.size);
        }
    }
    for (layer, acc) in groups {
        out.push(finding(
            FindingKind::Docs,
            format!("documentation and man pages added by layer {layer}"),
            layer,
            None,
            acc,
            "Keep docs out: on Debian and Ubuntu add dpkg `path-exclude` rules for \
             /usr/share/doc/*, /usr/share/man/* and /usr/share/info/* (as the -slim images do) \
             before `apt-get install --no-install-recommends`, or `rm -rf` them in the same RUN; \
             on Alpine, do not install *-doc packages."
                .to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::key;

    #[test]
    fn doc_paths() {
        assert!(is_doc(&key("usr/share/doc/curl/changelog.gz")));
        assert!(!is_doc(&key("usr/share/doc/curl/copyright")));
        assert!(is_doc(&key("usr/share/man/man1/ls.1.gz")));
        assert!(is_doc(&key("usr/local/share/man/man1/x.1")));
        assert!(!is_doc(&key("usr/share/zoneinfo/UTC")));
        assert!(!is_doc(&key("usr/share/doc")));
    }
}
