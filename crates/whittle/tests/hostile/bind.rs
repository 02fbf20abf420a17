//! `RUN --mount=type=bind`: the source is selected inside its root and copied, so no path, link
//! or `rw` flag reaches the host's files, and `.dockerignore` applies as it does to COPY.

use crate::{build, env, image_file, root_or_skip};
use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn dotdot_source_is_refused() {
    if !root_or_skip("bind mounts") {
        return;
    }
    let e = env();
    let r = build(
        &e,
        "FROM test/busybox:1\nRUN --mount=type=bind,source=../../../../../../../../etc,target=/m cp /m/shadow /leaked\n",
        "leak:1",
    );
    assert!(!r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains("leads outside the build context"),
        "{}",
        r.stderr
    );
    assert!(image_file(&e.root, "leak:1", "leaked").is_none());
}

#[test]
fn symlink_out_of_the_context_is_not_followed_on_the_host() {
    if !root_or_skip("bind mounts") {
        return;
    }
    let e = env();
    symlink("/etc", e.ctx.join("abslink")).unwrap();
    symlink("../../../../../../../../etc", e.ctx.join("rellink")).unwrap();
    for link in ["abslink", "rellink"] {
        let r = build(
            &e,
            &format!(
                "FROM test/busybox:1\nRUN --mount=type=bind,source={link},target=/m cat /m/passwd > /leaked\n"
            ),
            "leak:1",
        );
        // The link resolves inside the context, where there is no etc: not found.
        assert!(!r.ok, "{link}: {}", r.stderr);
        assert!(
            r.stderr.contains("inside the build context: not found"),
            "{}",
            r.stderr
        );
        assert!(image_file(&e.root, "leak:1", "leaked").is_none());
    }
    // The same through a stage: a link to a file the stage does not have must not be
    // followed on the host when the mount is made.
    let r = build(
        &e,
        "FROM test/busybox:1 AS s\nRUN ln -s /etc/shadow /f\n\
         FROM test/busybox:1\n\
         RUN --mount=type=bind,from=s,source=/f,target=/m cat /m > /leaked\n",
        "leak:2",
    );
    assert!(!r.ok, "{}", r.stderr);
    assert!(r.stderr.contains("inside the source stage"), "{}", r.stderr);
    assert!(image_file(&e.root, "leak:2", "leaked").is_none());
    // A directory symlink that stays inside the context is followed, as in BuildKit.
    fs::create_dir(e.ctx.join("real")).unwrap();
    fs::write(e.ctx.join("real/f"), "inside\n").unwrap();
    symlink("real", e.ctx.join("inlink")).unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1\nRUN --mount=type=bind,source=inlink,target=/m cat /m/f > /out\n",
        "ok:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "ok:1", "out").unwrap(), b"inside\n");
}

#[test]
fn dockerignored_files_are_not_visible_through_a_bind_mount() {
    if !root_or_skip("bind mounts") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("secret.txt"), "do not ship\n").unwrap();
    fs::write(e.ctx.join("kept.txt"), "kept\n").unwrap();
    fs::write(e.ctx.join(".dockerignore"), "secret.txt\n").unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1\nRUN --mount=type=bind,target=/m test ! -e /m/secret.txt && cat /m/kept.txt > /out\n",
        "ign:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "ign:1", "out").unwrap(), b"kept\n");
    let r = build(
        &e,
        "FROM test/busybox:1\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s > /out\n",
        "ign:2",
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("secret.txt: not found"), "{}", r.stderr);
}

#[test]
fn writes_through_a_rw_bind_mount_never_reach_the_context() {
    if !root_or_skip("bind mounts") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("kept.txt"), "original\n").unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1\nRUN --mount=type=bind,target=/m,rw echo changed > /m/kept.txt && touch /m/new && cat /m/kept.txt > /out\n",
        "rw:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(image_file(&e.root, "rw:1", "out").unwrap(), b"changed\n");
    assert_eq!(
        fs::read_to_string(e.ctx.join("kept.txt")).unwrap(),
        "original\n"
    );
    assert!(!e.ctx.join("new").exists());
}

#[test]
fn a_single_file_from_a_stage_mounts_as_a_file() {
    if !root_or_skip("bind mounts") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("one.txt"), "one\n").unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1 AS src\nRUN echo from-stage > /f\n\
         FROM test/busybox:1\n\
         RUN --mount=type=bind,from=src,source=/f,target=/sf --mount=type=bind,source=one.txt,target=/one \
         cat /sf /one > /out\n",
        "file:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "file:1", "out").unwrap(),
        b"from-stage\none\n"
    );
}
