//! Files a later layer deleted, hid or replaced: their bytes still ship in the layer that
//! added them. One finding per (layer that added them, layer that superseded them, how).

use super::{finding, Acc};
use crate::merge::{How, Merged};
use crate::report::{Finding, FindingKind};
use std::collections::BTreeMap;

/// Files a package manager rewrites whenever it installs something.
pub fn is_package_db(key: &[u8]) -> bool {
    let p = crate::path::display(key);
    [
        "/var/lib/dpkg/",
        "/var/cache/debconf/",
        "/var/lib/rpm/",
        "/lib/apk/db/",
        "/var/lib/apt/",
    ]
    .iter()
    .any(|d| p.starts_with(d))
        || p == "/etc/ld.so.cache"
}

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(usize, usize, How, bool), Acc> = BTreeMap::new();
    for s in &m.superseded {
        let db = s.how == How::Changed && is_package_db(&s.key);
        groups
            .entry((s.origin, s.by, s.how, db))
            .or_default()
            .add(&s.key, s.bytes);
    }
    for ((origin, by, how, db), acc) in groups {
        let n = acc.files;
        let files = if n == 1 { "file" } else { "files" };
        let (kind, title, fix) = match how {
            How::Deleted => (
                FindingKind::DeletedLater,
                format!("{n} {files} added by layer {origin} and deleted by layer {by}"),
                format!(
                    "Deleting in a later layer does not shrink the image: the bytes still ship in \
                     layer {origin}. Delete them in the same RUN instruction that creates them, or \
                     produce them in a build stage and COPY --from only what the image needs."
                ),
            ),
            How::Hidden => (
                FindingKind::HiddenByOpaque,
                format!("{n} {files} added by layer {origin} and hidden by layer {by}, which replaces their directory"),
                format!(
                    "Layer {by} replaces the whole directory, so the copy from layer {origin} ships \
                     for nothing. Create the directory once, in its final form, in one step."
                ),
            ),
            How::Changed if db => (
                FindingKind::OverwrittenLater,
                format!("{n} package-database {files} added by layer {origin} and rewritten by layer {by}"),
                "Every layer that installs packages rewrites the package database (dpkg status, \
                 debconf, ld.so.cache), so each copy ships. Install packages in as few layers as \
                 possible: one RUN, or the base image."
                    .to_string(),
            ),
            How::Changed => (
                FindingKind::OverwrittenLater,
                format!("{n} {files} added by layer {origin} and replaced by layer {by}"),
                format!(
                    "Both versions ship. Create the files once in their final form, or change them \
                     in the same RUN instruction that creates them (layer {origin})."
                ),
            ),
            How::MetadataOnly => (
                FindingKind::OverwrittenLater,
                format!("{n} {files} added by layer {origin} and copied again by layer {by} only to change mode or owner"),
                format!(
                    "Changing the mode or owner in a later layer copies the whole file. Set them \
                     when the files are added: COPY --chmod/--chown, or chmod/chown in the same RUN \
                     instruction (layer {origin})."
                ),
            ),
            How::Identical => (
                FindingKind::OverwrittenLater,
                format!("{n} {files} added by layer {origin} and added again, unchanged, by layer {by}"),
                format!("Layer {by} ships the same files again; drop the second copy."),
            ),
        };
        out.push(finding(kind, title, origin, Some(by), acc, fix));
    }
}
