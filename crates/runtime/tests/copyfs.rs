//! The copying snapshotter (`Runtime::copy_rootfs`): the same script run on overlay and on a
//! copy leaves the same upper dir (entries, kinds, owners, modes, contents, links, whiteouts,
//! opaque dirs), over lower dirs with a whiteout and an opaque dir of their own.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use whittle_runtime::{Engine, ExitStatus, Rootfs};

/// Every entry of an upper dir, as the layer writer would see it.
fn listing(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let p = root.join(rel);
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            let mut buf = [0u8; 4];
            let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                .iter()
                .any(|n| rustix::fs::lgetxattr(&p, *n, &mut buf).is_ok_and(|k| buf[..k] == *b"y"));
            format!("dir opaque={opaque}")
        } else if ft.is_char_device() && md.rdev() == 0 {
            "whiteout".to_string()
        } else if ft.is_symlink() {
            format!("link {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            format!("file {:?} nlink={}", fs::read(&p).unwrap(), md.nlink())
        };
        out.insert(
            format!("/{}", rel.display()),
            format!("{kind} {}:{} {:o}", md.uid(), md.gid(), md.mode() & 0o7777),
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

#[test]
fn a_copy_leaves_the_upper_dir_overlay_leaves() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let base = f.path("root");
    fs::create_dir_all(base.join("data/sub")).unwrap();
    fs::write(base.join("data/a"), "a").unwrap();
    fs::write(base.join("data/sub/b"), "b").unwrap();
    fs::create_dir_all(base.join("keep/inner")).unwrap();
    fs::write(base.join("keep/inner/x"), "x").unwrap();
    fs::write(base.join("gone"), "g").unwrap();
    // A second lower dir in overlay format: a whiteout, an opaque dir, an owner.
    let top = f.path("top");
    fs::create_dir_all(top.join("keep")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        top.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        top.join("keep"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(top.join("keep/y"), "y").unwrap();
    std::os::unix::fs::chown(top.join("keep/y"), Some(7), Some(8)).unwrap();
    let script = "set -e
        test ! -e /gone && test ! -e /keep/inner && cat /keep/y
        echo more >> /data/a
        rm /data/sub/b
        rm -rf /keep && mkdir /keep && echo k > /keep/k
        mkdir -p /new/deep && echo n > /new/deep/n && ln /new/deep/n /new/hard
        chown 1000:1000 /new/deep/n && chmod 4750 /new/deep/n
        ln -s ../data/a /new/link && mkfifo /new/fifo
        touch /etc/passwd && chmod 600 /etc/group";
    let mut uppers = Vec::new();
    for (name, copy) in [("up-overlay", false), ("up-copy", true)] {
        let rt = f.rt(&Engine::BuiltIn).copy_rootfs(copy);
        let spec = sh(
            Rootfs::Overlay {
                lower: vec![top.clone(), base.clone()],
                upper: f.path(name),
            },
            script,
        );
        let out = run(&rt, &spec);
        assert_eq!(out.status, ExitStatus::Code(0), "{name}: {}", out.stderr);
        assert_eq!(out.stdout, "y\n", "{name}");
        uppers.push(listing(&f.path(name)));
    }
    whittle_runtime::wait_for_cleanup();
    assert_eq!(uppers[1], uppers[0], "copy vs overlay");
    let leftovers: Vec<_> = fs::read_dir(f.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".copy-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
