//! Hostile build contexts: special files, link loops and names that are not UTF-8.

use crate::{build, env, extract_image, root_or_skip, Env};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

fn sh(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

/// Image `name` extracted into a temporary directory.
fn extracted(e: &Env, name: &str) -> tempfile::TempDir {
    let s = whittle_store::Store::open(&e.root).unwrap();
    let t = s.resolve(name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for l in &t.image.layers {
        whittle_layer::extract_layer(
            std::io::BufReader::new(s.open_blob(l).unwrap()),
            dir.path(),
            &whittle_layer::ExtractOptions {
                devices: whittle_layer::DevicePolicy::Create,
                ..Default::default()
            },
        )
        .unwrap();
    }
    dir
}

fn p(base: &Path, rel: &str) -> String {
    base.join(rel).to_string_lossy().into_owned()
}

#[test]
fn fifos_and_device_nodes_are_copied_and_sockets_refused_by_name() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    sh("mkfifo", &[&p(&e.ctx, "fifo")]);
    fs::create_dir(e.ctx.join("dir")).unwrap();
    sh("mkfifo", &[&p(&e.ctx, "dir/fifo")]);
    sh("mknod", &[&p(&e.ctx, "dir/null"), "c", "1", "3"]);
    fs::write(e.ctx.join("dir/file"), "f\n").unwrap();
    let _sock = UnixListener::bind(e.ctx.join("dir/sock")).unwrap();
    let _top = UnixListener::bind(e.ctx.join("sock")).unwrap();
    let r = build(
        &e,
        "FROM test/busybox:1\nCOPY fifo /x\nCOPY dir /d\n",
        "special:1",
    );
    assert!(r.ok, "{}", r.stderr);
    let img = extracted(&e, "special:1");
    assert!(fs::symlink_metadata(img.path().join("x"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(fs::symlink_metadata(img.path().join("d/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(img.path().join("d/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), fs::metadata("/dev/null").unwrap().rdev());
    assert!(img.path().join("d/file").exists());
    // A socket inside a directory is left out; named as a source it is an error.
    assert!(!img.path().join("d/sock").exists());
    let r = build(&e, "FROM test/busybox:1\nCOPY sock /s\n", "special:2");
    assert!(!r.ok);
    assert!(
        r.stderr.contains("/sock: a socket cannot be copied"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_whiteout_shaped_device_is_refused() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    sh("mknod", &[&p(&e.ctx, "wh"), "c", "0", "0"]);
    let r = build(&e, "FROM test/busybox:1\nCOPY wh /bin/busybox\n", "wh:1");
    assert!(!r.ok);
    assert!(r.stderr.contains("marks a deleted file"), "{}", r.stderr);
}

#[test]
fn symlink_loops_fail_instead_of_copying_a_link() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    std::os::unix::fs::symlink("b", e.ctx.join("a")).unwrap();
    std::os::unix::fs::symlink("a", e.ctx.join("b")).unwrap();
    for src in ["a", "a/x", "[a]"] {
        let r = build(
            &e,
            &format!("FROM test/busybox:1\nCOPY {src} /x\n"),
            "loop:1",
        );
        assert!(!r.ok, "{src}");
        assert!(
            r.stderr.contains("too many levels of symbolic links"),
            "{src}: {}",
            r.stderr
        );
    }
    let r = build(
        &e,
        "FROM test/busybox:1 AS s\nRUN ln -s l1 /l2 && ln -s l2 /l1\n\
         FROM test/busybox:1\nCOPY --from=s /l1 /x\n",
        "loop:2",
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains("too many levels of symbolic links"),
        "{}",
        r.stderr
    );
}

#[test]
fn names_that_are_not_utf8_are_copied_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(e.ctx.join(name), "latin-1 name\n").unwrap();
    fs::create_dir(e.ctx.join("dir")).unwrap();
    fs::write(e.ctx.join("dir").join(name), "inside\n").unwrap();
    std::os::unix::fs::symlink(name, e.ctx.join("dir/link")).unwrap();
    fs::write(e.ctx.join("ok.txt"), "ok\n").unwrap();
    // Ignored: the build never looks at them.
    fs::write(e.ctx.join(".dockerignore"), "caf*\ndir\n").unwrap();
    let r = build(&e, "FROM test/busybox:1\nCOPY . /c/\n", "bytes:1");
    assert!(r.ok, "{}", r.stderr);
    assert!(!extract_image(&e.root, "bytes:1")
        .path()
        .join("c")
        .join(name)
        .exists());
    // Not ignored: copied under exactly their own names, from the context and from a stage,
    // and an edit is a change for the cache.
    fs::write(e.ctx.join(".dockerignore"), "").unwrap();
    let df = "FROM test/busybox:1 AS s\nCOPY . /c/\n\
              RUN printf x > \"/c/$(printf 'made\\377')\"\n\
              FROM test/busybox:1\nCOPY --from=s /c /from-stage\nCOPY dir/* /glob/\n";
    let r = build(&e, df, "bytes:2");
    assert!(r.ok, "{}", r.stderr);
    let img = extract_image(&e.root, "bytes:2");
    let root = img.path();
    assert_eq!(
        fs::read(root.join("from-stage").join(name)).unwrap(),
        b"latin-1 name\n"
    );
    assert_eq!(
        fs::read(root.join("from-stage/dir").join(name)).unwrap(),
        b"inside\n"
    );
    assert_eq!(
        fs::read_link(root.join("from-stage/dir/link"))
            .unwrap()
            .as_os_str(),
        name
    );
    let made = std::ffi::OsStr::from_bytes(b"made\xff");
    assert_eq!(fs::read(root.join("from-stage").join(made)).unwrap(), b"x");
    assert_eq!(fs::read(root.join("glob").join(name)).unwrap(), b"inside\n");
    fs::write(e.ctx.join(name), "edited\n").unwrap();
    let r = build(&e, df, "bytes:3");
    assert!(r.ok, "{}", r.stderr);
    let img = extract_image(&e.root, "bytes:3");
    assert_eq!(
        fs::read(img.path().join("from-stage").join(name)).unwrap(),
        b"edited\n"
    );
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_copy_names_the_disk_not_the_context() {
    if !root_or_skip("mounting a tmpfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    fs::create_dir(&mnt).unwrap();
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=12m",
            "tmpfs",
            &mnt.to_string_lossy(),
        ],
    );
    let _guard = Tmpfs(mnt.clone());
    let root = mnt.join("store");
    crate::common::seed_busybox(
        &root,
        "test/busybox:1",
        serde_json::json!({"Env": ["PATH=/bin"]}),
    );
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("big"), vec![7u8; 16 << 20]).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM test/busybox:1\nCOPY big /big\n",
    )
    .unwrap();
    let r = crate::whittle(
        &root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            &ctx.to_string_lossy(),
        ],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("is full"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&root.to_string_lossy().into_owned()),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("cannot read"), "{}", r.stderr);
}
