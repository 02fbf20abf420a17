//! Helpers shared by the layer integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A comparable description of every object under `dir` (excluding `skip`, a direct child name).
pub fn snapshot(dir: &Path, skip: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

fn walk(base: &Path, dir: &Path, skip: Option<&str>, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        if dir == base && Some(n.to_str().unwrap()) == skip {
            continue;
        }
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let desc = if ft.is_dir() {
            walk(base, &p, skip, out);
            format!("dir {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
        } else if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let mut s = Vec::new();
            fs::File::open(&p).unwrap().read_to_end(&mut s).unwrap();
            format!(
                "file {:o} {}:{} nlink={} {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.nlink(),
                whittle_layer::Digest::of_bytes(&s)
            )
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev {:o} {}", m.mode() & 0o7777, m.rdev())
        } else {
            format!("other {:o}", m.mode())
        };
        out.insert(rel, desc);
    }
}
