//! `whittle build` end to end: a busybox base image made here from Debian's busybox-static,
//! multi-stage builds with RUN and COPY, the cache rules, and the resulting image's files.
#![allow(clippy::unwrap_used)]

mod common;

use common::extract_image;

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};
use whittle_store::Store;

fn is_root() -> bool {
    common::privileged("building")
}

fn seed_busybox(root: &Path, name: &str) {
    common::seed_busybox(
        root,
        name,
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        }),
    );
}

struct Env {
    _t: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
}

fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed_busybox(&root, "test/busybox:1");
    let ctx = t.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    Env { _t: t, root, ctx }
}

fn build(e: &Env, extra: &[&str]) -> (bool, String, String) {
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(&e.root)
        .args(["build", "--progress=plain", "--network=none"])
        .args(extra)
        .arg(&e.ctx)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every path of a stored image with its metadata (directories get a trailing `/`), and the
/// directory they were extracted into (removed when dropped).
type Entries = (tempfile::TempDir, Vec<(String, PathBuf, fs::Metadata)>);
fn image_entries(root: &Path, name: &str) -> Entries {
    let dir = extract_image(root, name);
    let mut out = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if md.is_dir() {
                stack.push(e.path());
                out.push((format!("{rel}/"), e.path(), md));
            } else {
                out.push((rel, e.path(), md));
            }
        }
    }
    (dir, out)
}

/// The files of a stored image, flattened (path -> content for regular files).
fn image_files(root: &Path, name: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let (_dir, entries) = image_entries(root, name);
    entries
        .into_iter()
        .map(|(rel, p, md)| {
            let data = if md.is_file() {
                fs::read(p).unwrap()
            } else {
                Vec::new()
            };
            (rel, data)
        })
        .collect()
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn multi_stage_build_cache_and_result() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        r#"FROM test/busybox:1 AS builder
WORKDIR /src
COPY deps.txt ./
RUN cat deps.txt > /deps.out
COPY main.txt ./
RUN tr a-z A-Z < main.txt > /app.out && echo built

FROM test/busybox:1 AS unused
RUN exit 1

FROM scratch
COPY --from=builder /app.out /deps.out /out/
COPY --from=builder --chown=1000:1000 /src/main.txt /home/
ENV GREETING=hi
ENTRYPOINT ["/out/app"]
"#,
    )
    .unwrap();
    fs::write(e.ctx.join("deps.txt"), "deps v1\n").unwrap();
    fs::write(e.ctx.join("main.txt"), "hello\n").unwrap();
    fs::write(e.ctx.join("ignored.log"), "x").unwrap();
    fs::write(e.ctx.join(".dockerignore"), "*.log\n").unwrap();

    let (ok, _, err) = build(&e, &["-t", "demo:1"]);
    assert!(ok, "{err}");
    assert_eq!(count(&err, "CACHED"), 0, "{err}");
    assert!(
        !err.contains("exit 1"),
        "the unused stage must not run: {err}"
    );
    let files = image_files(&e.root, "demo:1");
    assert_eq!(
        files.get("out/app.out").map(Vec::as_slice),
        Some(&b"HELLO\n"[..])
    );
    assert_eq!(
        files.get("out/deps.out").map(Vec::as_slice),
        Some(&b"deps v1\n"[..])
    );
    assert!(files.contains_key("home/main.txt"));
    assert!(
        !files.keys().any(|k| k.starts_with("bin")),
        "scratch result has no busybox: {files:?}"
    );

    // No change: everything cached, same image.
    let (ok, _, err2) = build(&e, &["-t", "demo:2"]);
    assert!(ok, "{err2}");
    assert_eq!(count(&err2, " DONE "), 0, "{err2}");
    let s = Store::open(&e.root).unwrap();
    assert_eq!(
        s.resolve("demo:1").unwrap().image.manifest,
        s.resolve("demo:2").unwrap().image.manifest,
        "a no-change rebuild gives the same image"
    );

    // Touching a file without changing it reruns nothing.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(e.ctx.join("deps.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let (ok, _, err3) = build(&e, &[]);
    assert!(ok, "{err3}");
    assert_eq!(count(&err3, " DONE "), 0, "{err3}");

    // Editing main.txt reruns only what comes after its COPY.
    fs::write(e.ctx.join("main.txt"), "changed\n").unwrap();
    let (ok, _, err4) = build(&e, &["-t", "demo:3"]);
    assert!(ok, "{err4}");
    assert!(
        err4.contains("COPY deps.txt ./\n#3 CACHED") || count(&err4, "CACHED") >= 2,
        "{err4}"
    );
    assert!(err4.contains("RUN cat deps.txt > /deps.out"), "{err4}");
    // --progress=plain says which input changed, and why the next step follows.
    assert!(err4.contains("cache miss: main.txt changed"), "{err4}");
    assert!(
        err4.contains("cache miss: an earlier step (or the base image) changed"),
        "{err4}"
    );
    let files = image_files(&e.root, "demo:3");
    assert_eq!(
        files.get("out/app.out").map(Vec::as_slice),
        Some(&b"CHANGED\n"[..])
    );

    // A directory COPY names the file that changed.
    fs::write(
        e.ctx.join("Dockerfile.dir"),
        "FROM test/busybox:1 AS b\nCOPY . /src/\nRUN echo unrelated > /other && cp /src/main.txt /picked\nFROM scratch\nCOPY --from=b /picked /\n",
    )
    .unwrap();
    let df = e.ctx.join("Dockerfile.dir");
    let (ok, _, err) = build(&e, &["-f", df.to_str().unwrap()]);
    assert!(ok, "{err}");
    fs::write(e.ctx.join("deps.txt"), "deps v2\n").unwrap();
    let (ok, _, err) = build(&e, &["-f", df.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("cache miss: deps.txt changed"), "{err}");
    // The builder reran, but /picked has the same content: COPY --from stays cached.
    assert!(err.contains("COPY --from=b /picked /\n#3 CACHED"), "{err}");

    // The .dockerignore'd file is not in the context.
    fs::write(
        e.ctx.join("Dockerfile.ignore"),
        "FROM test/busybox:1\nCOPY ignored.log /\n",
    )
    .unwrap();
    let (ok, _, err5) = build(
        &e,
        &["-f", e.ctx.join("Dockerfile.ignore").to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err5.contains("ignored.log: not found in the build context"),
        "{err5}"
    );
}

#[test]
fn failing_run_reports_stage_line_code_and_output() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1 AS b\nRUN echo one && echo two >&2 && exit 3\n",
    )
    .unwrap();
    let (ok, _, err) = build(&e, &[]);
    assert!(!ok);
    assert!(err.contains("error: stage b: process \"/bin/sh -c echo one && echo two >&2 && exit 3\" did not complete successfully: exit code: 3"), "{err}");
    assert!(err.contains(":2\n"), "names the line: {err}");
    assert!(
        err.contains("  one\n") && err.contains("  two\n"),
        "shows the output: {err}"
    );
}

#[test]
fn run_sees_env_args_workdir_user_and_mounts() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("s.txt"), "top secret").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        r#"FROM test/busybox:1
ARG VERSION=1.0
ENV NAME=world
WORKDIR /work/dir
USER app
RUN --mount=type=cache,target=/cache,uid=1000 \
    --mount=type=secret,id=tok,env=TOKEN \
    --mount=type=bind,target=/ctx \
    echo "$NAME $VERSION $(pwd) $(id -u) $TOKEN $(cat /ctx/s.txt)" > /tmp/out && \
    date >> /cache/stamp && cat /tmp/out
USER root
RUN cat /tmp/out > /result && test ! -e /run/secrets/tok
"#,
    )
    .unwrap();
    let tok = e.ctx.parent().unwrap().join("tok");
    fs::write(&tok, "s3cr3t").unwrap();
    let secret = format!("id=tok,src={}", tok.display());
    let (ok, _, err) = build(
        &e,
        &[
            "-t",
            "envtest:1",
            "--secret",
            &secret,
            "--build-arg",
            "VERSION=2.0",
        ],
    );
    assert!(ok, "{err}");
    let files = image_files(&e.root, "envtest:1");
    assert_eq!(
        String::from_utf8_lossy(&files["result"]),
        "world 2.0 /work/dir 1000 s3cr3t top secret\n"
    );
    assert!(
        !files.keys().any(|k| k.contains("stamp")),
        "cache mounts stay out of layers"
    );
    // A changed build arg misses from its first use, and says so.
    let (ok, _, err) = build(&e, &["--secret", &secret, "--build-arg", "VERSION=3.0"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("#1 CACHED"),
        "steps before the ARG's use stay cached: {err}"
    );
    assert!(
        err.contains("cache miss: environment changed: VERSION"),
        "{err}"
    );
}

#[test]
fn outputs_oci_docker_tar_and_local() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("app.txt"), "payload\n").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1 AS b\nRUN mkdir -p /out && echo built > /out/b.txt\nFROM scratch\nCOPY app.txt /\nCOPY --from=b /out/ /out/\nCMD [\"/app\"]\n",
    )
    .unwrap();
    let dir = e.ctx.parent().unwrap().to_path_buf();
    let oci = dir.join("img.oci.tar");
    let docker = dir.join("img.docker.tar");
    let tar = dir.join("fs.tar");
    let local = dir.join("fs");
    let (ok, _, err) = build(
        &e,
        &[
            "-t",
            "out:1",
            "-o",
            "type=image",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!("type=docker,dest={}", docker.display()),
            "-o",
            &format!("type=tar,dest={}", tar.display()),
            "-o",
            local.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        fs::read_to_string(local.join("app.txt")).unwrap(),
        "payload\n"
    );
    assert_eq!(
        fs::read_to_string(local.join("out/b.txt")).unwrap(),
        "built\n"
    );
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("app.txt") && listing.contains("out/b.txt"),
        "{listing}"
    );
    // Real tools read the archives.
    for (transport, file) in [("oci-archive", &oci), ("docker-archive", &docker)] {
        let out = std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("{transport}:{}", file.display()))
            .output()
            .expect("skopeo (scripts/deps.sh installs it)");
        assert!(
            out.status.success(),
            "skopeo inspect {transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2), "{v}");
    }
    // Bad output specs are clear errors.
    let (ok, _, err) = build(&e, &["-o", "type=zip,dest=x"]);
    assert!(
        !ok && err.contains("use image, registry, oci, docker, tar or local"),
        "{err}"
    );
}

/// Files in the store's blob directory (compressed layers, configs, manifests).
fn blob_count(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.join("blobs")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

/// What `ls -lR` would show of a tree, in a comparable form: path, type and mode, owner,
/// size, mtime, link target; hard links as one inode number per group.
fn tree_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            use std::os::unix::fs::MetadataExt;
            let link = fs::read_link(e.path())
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let n = inodes.len();
            let ino = if md.nlink() > 1 && md.is_file() {
                *inodes.entry(md.ino()).or_insert(n)
            } else {
                usize::MAX
            };
            let size = if md.is_dir() { 0 } else { md.len() };
            out.push(format!(
                "{rel} {:o} {}:{} {size} {} {link} {ino}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
            ));
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn file_outputs_come_from_the_snapshots_and_write_no_image() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("app.txt"), "payload\n").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nCOPY app.txt /srv/\nRUN echo x > /srv/a && ln /srv/a /srv/hard \
         && ln -s a /srv/soft && chmod 4755 /srv/a && chown 12:34 /srv/app.txt \
         && rm /bin/true\n",
    )
    .unwrap();
    let dir = e.ctx.parent().unwrap().to_path_buf();
    let files = dir.join("files");
    // An old output directory holding a link out of it: the export replaces it.
    let outside = dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&files).unwrap();
    std::os::unix::fs::symlink(&outside, files.join("srv")).unwrap();
    let blobs = blob_count(&e.root);
    let (ok, stdout, err) = build(&e, &["-q", "-o", files.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(stdout, "", "no image, so no id");
    assert_eq!(
        blob_count(&e.root),
        blobs,
        "a files-only build wrote a blob"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!files.join("bin/true").exists(), "the RUN's deletion");
    // The same files as the image's layers give (the image built now, from the cache).
    let again = dir.join("again");
    let (ok, _, err) = build(&e, &["-t", "files:1", "-o", again.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("CACHED"), "{err}");
    let layers = extract_image(&e.root, "files:1");
    let want = tree_listing(layers.path());
    for got in [tree_listing(&files), tree_listing(&again)] {
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "the output differs from the layers: extra {extra:#?}, missing {missing:#?}"
        );
    }
    assert!(
        want.iter().any(|l| l.starts_with("srv/a 104755 0:0 2 0 ")),
        "{want:#?}"
    );
    assert!(want
        .iter()
        .any(|l| l.starts_with("srv/app.txt 100644 12:34 ")));
    // `-o -`: a tar of the files on standard output.
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(&e.root)
        .args(["build", "--progress=quiet", "--network=none", "-o", "-"])
        .arg(&e.ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|en| en.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert!(
        names.iter().any(|n| n.trim_end_matches('/') == "srv/hard")
            && names.iter().any(|n| n.trim_end_matches('/') == "bin/sh"),
        "{names:?}"
    );
    // Flag values are typed: clap lists what is accepted.
    let (ok, _, err) = build(&e, &["--on-failure", "retry"]);
    assert!(
        !ok && err.contains("possible values: error, shell"),
        "{err}"
    );
}

/// The layer media types of the one image in an OCI archive.
fn oci_archive_layer_types(file: &Path) -> Vec<String> {
    let mut blobs = std::collections::HashMap::new();
    let mut index = None;
    for e in tar::Archive::new(fs::File::open(file).unwrap())
        .entries()
        .unwrap()
    {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if p == "index.json" {
            index = Some(data);
        } else if let Some(h) = p.strip_prefix("blobs/sha256/") {
            if data.len() < 100_000 {
                blobs.insert(h.to_string(), data);
            }
        }
    }
    let doc = |hex: &str| -> serde_json::Value { serde_json::from_slice(&blobs[hex]).unwrap() };
    let index: serde_json::Value = serde_json::from_slice(&index.unwrap()).unwrap();
    let m = doc(&index["manifests"][0]["digest"].as_str().unwrap()[7..]);
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn layers_stored_uncompressed_leave_compressed() {
    if !is_root() {
        return;
    }
    let e = env();
    common::seed_busybox_with(
        &e.root,
        "test/plain:1",
        serde_json::json!({"Cmd": ["sh"]}),
        whittle_layer::WriteOptions {
            compression: whittle_layer::Compression::None,
            ..whittle_layer::WriteOptions::default()
        },
    );
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/plain:1\nRUN echo hi > /hi\n",
    )
    .unwrap();
    let dir = e.ctx.parent().unwrap().to_path_buf();
    let (oci, docker, zstd) = (dir.join("a.oci"), dir.join("a.docker"), dir.join("z.oci"));
    let (ok, _, err) = build(
        &e,
        &[
            "-t",
            "plain:out",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!("type=docker,dest={}", docker.display()),
        ],
    );
    assert!(ok, "{err}");
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    assert_eq!(oci_archive_layer_types(&oci), [gz, gz]);
    // A docker archive keeps the base as stored, as `docker save` writes it.
    assert_eq!(
        oci_archive_layer_types(&docker),
        ["application/vnd.oci.image.layer.v1.tar", gz]
    );
    // The store keeps the image as built; the same export again gives the same archive.
    let again = dir.join("b.oci");
    let (ok, _, err) = build(
        &e,
        &[
            "-t",
            "plain:out",
            "-o",
            &format!("type=oci,dest={}", again.display()),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        fs::read(&oci).unwrap() == fs::read(&again).unwrap(),
        "the second OCI archive differs from the first"
    );
    let (ok, _, err) = build(
        &e,
        &[
            "--compression",
            "zstd",
            "-o",
            &format!("type=oci,dest={}", zstd.display()),
        ],
    );
    assert!(ok, "{err}");
    let zs = "application/vnd.oci.image.layer.v1.tar+zstd";
    assert_eq!(oci_archive_layer_types(&zstd), [zs, zs]);
    let (ok, _, err) = build(&e, &["--compression", "gzip", "--compression-level", "12"]);
    assert!(!ok && err.contains("gzip levels are 0 to 9"), "{err}");
}

#[test]
fn tty_progress_view_in_a_terminal() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1 AS a\nRUN echo from-a\nFROM test/busybox:1 AS b\nRUN echo from-b\nFROM scratch\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n",
    )
    .unwrap();
    // `script` (util-linux) gives the command a pseudo-terminal, so --progress=auto picks the
    // live view.
    let cmd = format!(
        "{} --root {} build --network=none {}",
        env!("CARGO_BIN_EXE_whittle"),
        e.root.display(),
        e.ctx.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("✓ #"), "finished steps are marked: {text}");
    assert!(text.contains("DONE"), "{text}");
    assert!(text.contains("built sha256:"), "{text}");
    assert!(
        !text.contains("cache miss:"),
        "the tty view is not the plain one: {text}"
    );
}

/// `--on-failure=shell`: a failed RUN leaves the user in a shell in its container, with the
/// step's own changes in place; the build then fails as usual. Without a terminal: a clear error.
#[test]
fn on_failure_shell_opens_a_shell_in_the_failed_step() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nENV STAGE_VAR=from-env\nWORKDIR /work\nRUN echo partial-change > /p && exit 3\n",
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["--on-failure=shell"]);
    assert!(!ok && err.contains("must be a terminal"), "{err}");
    let cmd = format!(
        "{} --root {} build --network=none --on-failure=shell {}",
        env!("CARGO_BIN_EXE_whittle"),
        e.root.display(),
        e.ctx.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let mut stdin = child.stdin.take().unwrap();
    // Arithmetic, so that the terminal's echo of the typed line cannot pass for the answer.
    std::io::Write::write_all(
        &mut stdin,
        b"cat /p; echo \"in $(pwd) with $STAGE_VAR $((40+2))\"; exit\n",
    )
    .unwrap();
    // The pipe stays open until the build is over (script stops when its input ends).
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(stdin);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().unwrap()
        }
    };
    let text = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(!status.success(), "the build still fails: {text}");
    assert!(text.contains("failed with exit code 3"), "{text}");
    assert!(
        text.contains("partial-change"),
        "the step's changes: {text}"
    );
    assert!(text.contains("in /work with from-env 42"), "{text}");
    assert!(
        text.contains("exit code: 3"),
        "then the usual report: {text}"
    );
}

#[test]
fn context_on_stdin_metadata_file_and_rawjson() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("hello.txt"), "from the tar\n").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nCOPY hello.txt /\nRUN cat /hello.txt\n",
    )
    .unwrap();
    let tarball = e.ctx.parent().unwrap().join("ctx.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&e.ctx)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let meta = e.ctx.parent().unwrap().join("meta.json");
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .arg("--root")
        .arg(&e.root)
        .args([
            "build",
            "--network=none",
            "--progress=rawjson",
            "-t",
            "stdin:1",
        ])
        .arg("--metadata-file")
        .arg(&meta)
        .arg("-")
        .pipe_stdin(&tarball)
        .unwrap()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Every progress line is a JSON event; the RUN's output is among them.
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|v| v["event"] == "log" && v["line"] == "from the tar"),
        "{err}"
    );
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    let s = Store::open(&e.root).unwrap();
    assert_eq!(
        m["containerimage.digest"].as_str().unwrap(),
        s.resolve("stdin:1").unwrap().image.manifest.as_str()
    );
    // A Dockerfile on stdin builds with an empty context.
    let out = Command::cargo_bin("whittle")
        .unwrap()
        .arg("--root")
        .arg(&e.root)
        .args(["build", "--network=none", "-q", "-"])
        .write_stdin("FROM test/busybox:1\nRUN echo no context > /x\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sha256:"));
}

/// A one-file HTTP server on 127.0.0.1 for ADD <url>: `/file.txt` is `body`, anything else 404.
/// Returns the base URL and a counter of requests served.
fn http_server(body: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(50) {
            let Ok(mut conn) = conn else { continue };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let resp = if first.starts_with("GET /file.txt ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}"), hits)
}

#[test]
fn add_from_urls_with_and_without_checksum() {
    if !is_root() {
        return;
    }
    let e = env();
    let (base, hits) = http_server("remote content\n");
    // sha256 of "remote content\n"
    let sum = {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(b"remote content\n"))
        )
    };
    fs::write(
        e.ctx.join("Dockerfile"),
        format!(
            "FROM scratch\nADD {base}/file.txt /downloads/\nADD --checksum={sum} --chmod=644 {base}/file.txt /pinned.txt\n"
        ),
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["-t", "add:1"]);
    assert!(ok, "{err}");
    let files = image_files(&e.root, "add:1");
    assert_eq!(files["downloads/file.txt"], b"remote content\n");
    assert_eq!(files["pinned.txt"], b"remote content\n");
    // Rebuild: the unpinned URL is fetched again to see if it changed; the pinned one is not.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let (ok, _, err) = build(&e, &[]);
    assert!(ok, "{err}");
    assert_eq!(count(&err, "CACHED"), 2, "{err}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "{err}"
    );
    // A wrong checksum and a missing file are clear errors.
    let bad = format!("sha256:{}", "0".repeat(64));
    fs::write(
        e.ctx.join("Dockerfile"),
        format!("FROM scratch\nADD --checksum={bad} {base}/file.txt /x\n"),
    )
    .unwrap();
    let (ok, _, err) = build(&e, &[]);
    assert!(!ok && err.contains("checksum mismatch"), "{err}");
    fs::write(
        e.ctx.join("Dockerfile"),
        format!("FROM scratch\nADD {base}/nope /x\n"),
    )
    .unwrap();
    let (ok, _, err) = build(&e, &[]);
    assert!(!ok && err.contains("the server answered 404"), "{err}");
}

#[test]
fn independent_stages_run_at_the_same_time() {
    if !is_root() {
        return;
    }
    let e = env();
    // Each stage waits (up to 10 s) for the other's marker in a shared cache mount: both can
    // only succeed if they run at the same time.
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=rendezvous,target=/c touch /c/{me} && \
             for i in $(seq 200); do [ -e /c/{other} ] && exit 0; sleep 0.05; done; exit 1"
        )
    };
    fs::write(
        e.ctx.join("Dockerfile"),
        format!(
            "FROM test/busybox:1 AS a\n{}\nRUN echo a > /a\nFROM test/busybox:1 AS b\n{}\nRUN echo b > /b\nFROM scratch\nCOPY --from=a /a /\nCOPY --from=b /b /\n",
            wait("a-started", "b-started"),
            wait("b-started", "a-started")
        ),
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["--jobs", "2", "-t", "par:1"]);
    assert!(ok, "{err}");
    let files = image_files(&e.root, "par:1");
    assert!(files.contains_key("a") && files.contains_key("b"));
}

#[test]
fn onbuild_config_and_history() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nONBUILD RUN echo triggered > /trigger\nLABEL role=base\n",
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["-t", "base:1"]);
    assert!(ok, "{err}");
    fs::write(
        e.ctx.join("Dockerfile"),
        r#"FROM base:1
ENV A=1 B="two words"
WORKDIR /srv
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME /data
LABEL org.opencontainers.image.title=child
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=2 CMD wget -q -O- http://localhost:8080/ || exit 1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#,
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["-t", "child:1"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("RUN echo triggered > /trigger"),
        "the trigger ran: {err}"
    );
    let files = image_files(&e.root, "child:1");
    assert_eq!(files["trigger"], b"triggered\n");
    let s = Store::open(&e.root).unwrap();
    let img = s.resolve("child:1").unwrap().image;
    let (_, cfg) = s.manifest_and_config(&img).unwrap();
    let c = &cfg["config"];
    assert!(
        c.get("OnBuild").is_none() || c["OnBuild"].is_null(),
        "triggers are not inherited: {c}"
    );
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["Labels"]["role"], "base");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "child");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Test"][0], "CMD-SHELL");
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hi"]));
    assert!(c["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("B=two words")));
    // One history entry per step; those without a layer are marked empty.
    let hist = cfg["history"].as_array().unwrap();
    let with_layers = hist.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(with_layers, img.layers.len(), "{hist:?}");
    let by: Vec<&str> = hist
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(by.contains(&"ENV A=1 B=\"two words\""), "{by:?}");
    assert!(
        by.contains(&"RUN /bin/sh -c echo triggered > /trigger # buildkit"),
        "{by:?}"
    );
    assert!(by.contains(&"WORKDIR /srv"), "{by:?}");
}

/// Mode, uid and gid of every path in a stored image.
fn image_modes(root: &Path, name: &str) -> std::collections::BTreeMap<String, (u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let (_dir, entries) = image_entries(root, name);
    entries
        .into_iter()
        .map(|(rel, _, md)| {
            (
                rel.trim_end_matches('/').to_string(),
                (md.mode() & 0o7777, md.uid(), md.gid()),
            )
        })
        .collect()
}

/// `COPY --link` makes its layer as if on an empty filesystem: a symlink of the stage below at
/// the destination is not followed (BuildKit), so the copied directory replaces it.
#[test]
fn copy_link_ignores_the_stage_below() {
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("f"), "data").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1 AS base\nRUN mkdir /real && ln -s /real /target\n\
         FROM base AS plain\nCOPY f /target/\n\
         FROM base AS linked\nCOPY --link f /target/\n",
    )
    .unwrap();
    for target in ["plain", "linked"] {
        let (ok, _, err) = build(&e, &["--target", target, "-t", &format!("t/{target}")]);
        assert!(ok, "{err}");
    }
    let plain = image_files(&e.root, "t/plain");
    assert_eq!(plain.get("real/f").map(Vec::as_slice), Some(&b"data"[..]));
    assert!(!plain.contains_key("target/"), "still the symlink");
    let linked = image_files(&e.root, "t/linked");
    assert_eq!(
        linked.get("target/f").map(Vec::as_slice),
        Some(&b"data"[..])
    );
    assert!(linked.contains_key("target/") && !linked.contains_key("real/f"));
}

/// setuid and setgid bits survive COPY, also with --chown (chown clears them, so the mode is
/// set after the owner).
#[test]
fn copy_keeps_setuid_bits() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("tool"), "x").unwrap();
    fs::set_permissions(e.ctx.join("tool"), fs::Permissions::from_mode(0o6755)).unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM scratch\nCOPY tool /a\nCOPY --chown=1000:1000 tool /b\n",
    )
    .unwrap();
    let (ok, _, err) = build(&e, &["-t", "t/suid"]);
    assert!(ok, "{err}");
    let modes = image_modes(&e.root, "t/suid");
    assert_eq!(modes.get("a"), Some(&(0o6755, 0, 0)));
    assert_eq!(modes.get("b"), Some(&(0o6755, 1000, 1000)));
}

#[test]
fn copy_add_heredoc_and_shell_semantics() {
    if !is_root() {
        return;
    }
    let e = env();
    let c = &e.ctx;
    fs::create_dir_all(c.join("src/pkg/sub")).unwrap();
    fs::write(c.join("src/pkg/a.go"), "a").unwrap();
    fs::write(c.join("src/pkg/a_test.go"), "t").unwrap();
    fs::write(c.join("src/pkg/sub/b.go"), "b").unwrap();
    fs::write(c.join("src/README.md"), "r").unwrap();
    fs::write(c.join("secret.env"), "s").unwrap();
    fs::write(c.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    // A tar.gz for ADD to unpack.
    let payload = tempfile::tempdir().unwrap();
    fs::create_dir_all(payload.path().join("tool/bin")).unwrap();
    fs::write(payload.path().join("tool/bin/t"), "tool").unwrap();
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(c.join("tool.tar.gz"))
        .arg("-C")
        .arg(payload.path())
        .arg("tool")
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(
        c.join("Dockerfile"),
        "FROM test/busybox:1\n\
         ADD tool.tar.gz /opt/\n\
         COPY --exclude=**/*_test.go --exclude=*.md src/ /app/\n\
         COPY --parents src/pkg/sub/b.go /p/\n\
         COPY --chmod=u+x,go-w --chown=app run.sh /usr/local/bin/\n\
         COPY <<EOF /etc/motd\nwelcome $HOSTNAME_NOT_SET\nEOF\n\
         COPY <<-'EOT' /etc/raw\n\tliteral $HOME\n\tEOT\n\
         RUN <<EOF\necho from heredoc > /heredoc.out\nEOF\n\
         RUN <<EOF\n#!/bin/sh\necho \"shebang $0\" > /shebang.out\nEOF\n\
         SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
         RUN echo \"shell is $0\" > /shell.out\n",
    )
    .unwrap();
    // The Dockerfile's own ignore file wins over the context's.
    fs::write(c.join(".dockerignore"), "run.sh\n").unwrap();
    fs::write(c.join("Dockerfile.dockerignore"), "secret.env\n").unwrap();
    let df = c.join("Dockerfile");
    let (ok, _, err) = build(&e, &["-f", df.to_str().unwrap(), "-t", "sem:1"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("kB) in ") || err.contains("MB) in "),
        "the summary shows the size: {err}"
    );
    let files = image_files(&e.root, "sem:1");
    assert_eq!(files["opt/tool/bin/t"], b"tool", "ADD unpacked the archive");
    assert!(files.contains_key("app/pkg/a.go") && files.contains_key("app/pkg/sub/b.go"));
    assert!(
        !files.contains_key("app/pkg/a_test.go") && !files.contains_key("app/README.md"),
        "--exclude: {:?}",
        files.keys().collect::<Vec<_>>()
    );
    assert!(
        files.contains_key("p/src/pkg/sub/b.go"),
        "--parents keeps the path: {files:?}"
    );
    assert_eq!(
        files["etc/motd"], b"welcome \n",
        "an unquoted heredoc is expanded"
    );
    assert_eq!(
        files["etc/raw"], b"literal $HOME\n",
        "a quoted <<- heredoc is literal"
    );
    assert_eq!(files["heredoc.out"], b"from heredoc\n");
    assert_eq!(files["shebang.out"], b"shebang /dev/pipes/EOF\n");
    assert_eq!(files["shell.out"], b"shell is /bin/sh\n");
    let modes = image_modes(&e.root, "sem:1");
    assert_eq!(
        modes["usr/local/bin/run.sh"],
        (0o744, 1000, 1000),
        "chmod u+x,go-w and chown by name"
    );
    // secret.env is ignored by Dockerfile.dockerignore; run.sh was allowed because that file wins.
    fs::write(&df, "FROM test/busybox:1\nCOPY secret.env /\n").unwrap();
    let (ok, _, err) = build(&e, &["-f", df.to_str().unwrap()]);
    assert!(
        !ok && err.contains("secret.env: not found in the build context"),
        "{err}"
    );
}
