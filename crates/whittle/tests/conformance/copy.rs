//! COPY's selection of sources: symlinks, wildcards, names.

use crate::{build, env, image_file, root_or_skip};
use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn a_source_reached_through_a_symlink_is_keyed_on_its_content() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("file"), "v1\n").unwrap();
    symlink("file", e.ctx.join("link")).unwrap();
    fs::create_dir(e.ctx.join("dir")).unwrap();
    fs::write(e.ctx.join("dir/f"), "d1\n").unwrap();
    symlink("dir", e.ctx.join("dirlink")).unwrap();
    let df = "FROM test/busybox:1\nCOPY link /x\nCOPY dirlink/f /y\nCOPY dirlink /z\n";
    let r = build(&e, df, "sym:1");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "sym:1", "x").unwrap(), b"v1\n");
    fs::write(e.ctx.join("file"), "v2\n").unwrap();
    fs::write(e.ctx.join("dir/f"), "d2\n").unwrap();
    let r = build(&e, df, "sym:2");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "sym:2", "x").unwrap(), b"v2\n");
    assert_eq!(image_file(&e.root, "sym:2", "y").unwrap(), b"d2\n");
    assert_eq!(image_file(&e.root, "sym:2", "z/f").unwrap(), b"d2\n");
    // Re-pointing the link is a change too.
    fs::write(e.ctx.join("other"), "other\n").unwrap();
    fs::remove_file(e.ctx.join("link")).unwrap();
    symlink("other", e.ctx.join("link")).unwrap();
    let r = build(&e, df, "sym:3");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "sym:3", "x").unwrap(), b"other\n");
}

#[test]
fn a_wildcard_may_match_nothing_but_a_plain_path_must_exist() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("package.json"), "{}\n").unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1\nWORKDIR /app\nCOPY package.json yarn.lock* ./\nCOPY *.nomatch /none/\n",
        "wild:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "wild:1", "app/package.json").unwrap(),
        b"{}\n"
    );
    let r = build(&e, "FROM test/busybox:1\nCOPY yarn.lock ./\n", "wild:2");
    assert!(!r.ok);
    assert!(r.stderr.contains("/yarn.lock: not found"), "{}", r.stderr);
}

#[test]
fn a_symlink_copied_into_a_directory_keeps_its_own_name() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("libx.so.1"), "lib\n").unwrap();
    symlink("libx.so.1", e.ctx.join("libx.so")).unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1 AS s\nRUN mkdir /lib2 && echo lib2 > /lib2/liby.so.1 && ln -s liby.so.1 /lib2/liby.so\n\
         FROM test/busybox:1\nCOPY libx.so /d1/\nCOPY --from=s /lib2/liby.so /d2/\n",
        "name:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "name:1", "d1/libx.so").unwrap(),
        b"lib\n"
    );
    assert!(image_file(&e.root, "name:1", "d1/libx.so.1").is_none());
    assert_eq!(
        image_file(&e.root, "name:1", "d2/liby.so").unwrap(),
        b"lib2\n"
    );
    assert!(image_file(&e.root, "name:1", "d2/liby.so.1").is_none());
}
