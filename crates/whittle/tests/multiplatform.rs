//! `--platform` with several platforms: one graph, shared vertices run once, one image index
//! in the store, in OCI archives and as one directory per platform; outputs that hold one
//! platform are refused before the build; save and load keep every platform.
#![allow(clippy::unwrap_used)]

mod common;

use common::{busybox_multi_layout, env, privileged, qemu_installed, whittle};
use std::fs;
use whittle_oci::{Platform, Reference};
use whittle_store::{Store, TagTarget};

/// A cross-compiling Dockerfile: the builder stage runs on the build platform (so its RUN
/// steps are native), one step is the same for every target, one uses TARGETARCH.
const CROSS: &str = "FROM --platform=$BUILDPLATFORM test/busybox:1 AS build
RUN echo shared > /shared.txt
ARG TARGETARCH TARGETVARIANT
RUN echo \"built for $TARGETARCH$TARGETVARIANT\" > /out.txt
FROM scratch
COPY --from=build /out.txt /shared.txt /
";

const THREE: &str = "linux/amd64,linux/arm64,linux/arm/v7";

/// The step headers (`#N [label] INSTRUCTION`) of a plain-progress build log that mention
/// `what`, once per step.
fn steps_with(log: &str, what: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for l in log.lines() {
        let Some((num, rest)) = l.split_once(' ') else {
            continue;
        };
        if num.starts_with('#') && rest.starts_with('[') && rest.contains(what) {
            let step = num.to_string();
            if !seen.contains(&step) {
                seen.push(step);
            }
        }
    }
    seen
}

#[test]
fn several_platforms_build_into_one_index() {
    if !privileged("building images") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), CROSS).unwrap();
    let ctx = e.ctx.to_str().unwrap();
    let oci = e.tmp.path().join("multi.tar");
    let files = e.tmp.path().join("files");
    let out = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--platform",
            THREE,
            "-t",
            "multi:1",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!("type=local,dest={}", files.display()),
            "--annotation",
            "index:org.opencontainers.image.title=multi",
            "--annotation",
            "manifest[linux/arm64]:only=arm64",
            ctx,
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    // The step every platform shares ran once; the one reading TARGETARCH once per platform,
    // each named as BuildKit names a cross-compiling stage.
    assert_eq!(
        steps_with(&out.stderr, "echo shared").len(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        steps_with(&out.stderr, "built for").len(),
        3,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("[linux/amd64->arm64 build 3/3]")
            && out.stderr.contains("[linux/amd64->arm/v7 build 3/3]"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("for linux/amd64, linux/arm64, linux/arm/v7"));

    // One directory per platform, named as buildx names them, each with its own file.
    let read = |p: &str| fs::read_to_string(files.join(p)).unwrap();
    assert_eq!(read("linux_amd64/out.txt"), "built for amd64\n");
    assert_eq!(read("linux_arm64/out.txt"), "built for arm64\n");
    assert_eq!(read("linux_arm_v7/out.txt"), "built for armv7\n");
    assert_eq!(read("linux_arm64/shared.txt"), "shared\n");

    // The tag names an index of the three images, each config naming its platform.
    let s = Store::open(&e.root).unwrap();
    let Some(TagTarget::Index(ix)) = s
        .tag_target(&Reference::parse_tag("multi:1").unwrap())
        .unwrap()
    else {
        panic!("multi:1 does not name an index");
    };
    let plats: Vec<String> = ix.platforms().iter().map(ToString::to_string).collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let v7 = Platform::parse("linux/arm/v7").unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&s.read_document(&ix.digest).unwrap()).unwrap();
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "multi"
    );
    let only = |p: &str| {
        let img = s
            .resolve_platform("multi:1", &Platform::parse(p).unwrap())
            .unwrap()
            .image;
        s.manifest(&img).unwrap().annotations.get("only").cloned()
    };
    assert_eq!(only("linux/arm64").as_deref(), Some("arm64"));
    assert_eq!(only("linux/amd64"), None);
    let img = s.resolve_platform("multi:1", &v7).unwrap().image;
    let cfg = s.image_config(&img).unwrap();
    assert_eq!(cfg.architecture.get().map(String::as_str), Some("arm"));
    assert_eq!(cfg.variant.get().map(String::as_str), Some("v7"));
    let images = whittle(&e.root, &["images"]);
    for p in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
        assert!(
            images
                .stdout
                .lines()
                .any(|l| l.starts_with("multi ") && l.contains(p)),
            "{}",
            images.stdout
        );
    }

    // The OCI archive holds the index (named) and all three images.
    let unpacked = e.tmp.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&oci)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(unpacked.join("index.json")).unwrap()).unwrap();
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(entry["annotations"]["io.containerd.image.name"], "multi:1");
    let digest = entry["digest"].as_str().unwrap();
    let nested: serde_json::Value = serde_json::from_slice(
        &fs::read(unpacked.join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    let manifests = nested["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3);
    for m in manifests {
        let d = m["digest"].as_str().unwrap();
        assert!(unpacked.join("blobs/sha256").join(&d[7..]).is_file());
    }
    assert_eq!(manifests[2]["platform"]["variant"], "v7");

    // Built again: every step cached, the same index (reproducible).
    let again = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--platform",
            THREE,
            "-t",
            "multi:2",
            "--annotation",
            "index:org.opencontainers.image.title=multi",
            "--annotation",
            "manifest[linux/arm64]:only=arm64",
            ctx,
        ],
    );
    assert!(again.ok, "{}", again.stderr);
    assert!(again.stderr.contains("0 steps run"), "{}", again.stderr);
    let Some(TagTarget::Index(ix2)) = s
        .tag_target(&Reference::parse_tag("multi:2").unwrap())
        .unwrap()
    else {
        panic!("multi:2 does not name an index");
    };
    assert_eq!(ix2.digest, ix.digest);

    // save (OCI) and load keep every platform under the name.
    let saved = e.tmp.path().join("saved.tar");
    let out = whittle(
        &e.root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            saved.to_str().unwrap(),
            "multi:1",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let fresh = e.tmp.path().join("fresh");
    let out = whittle(&fresh, &["load", "-i", saved.to_str().unwrap()]);
    assert!(out.ok, "{}", out.stderr);
    let f = Store::open(&fresh).unwrap();
    assert_eq!(f.images().unwrap().len(), 3);
    let arm64 = Platform::parse("linux/arm64").unwrap();
    assert_eq!(
        f.resolve_platform("multi:1", &arm64)
            .unwrap()
            .image
            .manifest,
        s.resolve_platform("multi:1", &arm64)
            .unwrap()
            .image
            .manifest
    );
    // rmi of one name keeps the index the other name still names; of the last, removes all.
    let out = whittle(&e.root, &["rmi", "multi:2"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(s.indexes().unwrap().len(), 1);
    assert!(s.resolve_platform("multi:1", &arm64).is_ok());
    // A docker archive holds one platform: the host's, or the one asked for.
    let one = e.tmp.path().join("one.tar");
    let out = whittle(
        &e.root,
        &[
            "save",
            "--platform",
            "linux/arm64",
            "-o",
            one.to_str().unwrap(),
            "multi:1",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let out = whittle(&e.root, &["rmi", "multi:1"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(s.indexes().unwrap().is_empty());
    let left = s.images().unwrap();
    assert!(
        left.iter().all(|t| t.tags == ["test/busybox:1"]),
        "{left:?}"
    );
}

#[test]
fn outputs_of_one_platform_are_refused_before_building() {
    if !privileged("building images") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), CROSS).unwrap();
    let ctx = e.ctx.to_str().unwrap();
    let dest = e.tmp.path().join("x.tar");
    let out = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=docker,dest={}", dest.display()),
            ctx,
        ],
    );
    assert!(!out.ok);
    assert!(out.stderr.contains("holds one platform"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("RUN"),
        "nothing may run: {}",
        out.stderr
    );
    assert!(!dest.exists());
    let out = whittle(&e.root, &["build", "--platform", "linux/amd64,linux/", ctx]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("\"linux/\" is not a platform"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_base_image_without_the_platform_asked_for_is_named() {
    if !privileged("building images") {
        return;
    }
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), "FROM test/busybox:1\nRUN true\n").unwrap();
    let ctx = e.ctx.to_str().unwrap();
    let out = whittle(
        &e.root,
        &["build", "--pull=never", "--platform", "linux/arm64", ctx],
    );
    assert!(!out.ok);
    let host = Platform::host().to_string();
    assert!(
        out.stderr.contains("linux/arm64") && out.stderr.contains(&host),
        "{}",
        out.stderr
    );
}

#[test]
fn run_steps_of_other_platforms_run_emulated_on_each_platforms_base() {
    if !privileged("building images") || !qemu_installed() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    // whittle's qemu handlers (idempotent: kept when they work).
    let out = whittle(
        &root,
        &["binfmt", "--install", "linux/arm64", "linux/arm/v7"],
    );
    assert!(out.ok, "{}", out.stderr);
    // A multi-platform base: every platform stays under its one name.
    let layout = busybox_multi_layout();
    let out = whittle(&root, &["load", "-i", layout.to_str().unwrap()]);
    assert!(out.ok, "{}", out.stderr);
    let images = whittle(&root, &["images"]);
    assert_eq!(
        images
            .stdout
            .lines()
            .filter(|l| l.starts_with("whittle-test/busybox "))
            .count(),
        3,
        "{}",
        images.stdout
    );
    let ctx = t.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM whittle-test/busybox:1\nARG TARGETPLATFORM\nRUN echo \"$(uname -m) $TARGETPLATFORM\" > /arch\n",
    )
    .unwrap();
    let files = t.path().join("files");
    let out = whittle(
        &root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--pull=never",
            "--platform",
            THREE,
            "-t",
            "emulated:1",
            "-o",
            &format!("type=local,dest={}", files.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let read = |p: &str| fs::read_to_string(files.join(p).join("arch")).unwrap();
    assert_eq!(read("linux_amd64"), "x86_64 linux/amd64\n");
    assert_eq!(read("linux_arm64"), "aarch64 linux/arm64\n");
    assert_eq!(read("linux_arm_v7"), "armv7l linux/arm/v7\n");
    // whittle run --platform runs that platform's image, emulated.
    let out = whittle(
        &root,
        &[
            "run",
            "--rm",
            "--network=none",
            "--platform",
            "linux/arm64",
            "emulated:1",
            "cat",
            "/arch",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "aarch64 linux/arm64\n");
    // A platform whose emulation is missing (no s390x handler is registered) fails before
    // anything runs, naming the step and the command that fixes it.
    {
        let s = Store::open(&root).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let w = s.blob_writer(None).unwrap();
        let (info, w) = whittle_layer::write_layer(empty.path(), &Default::default(), w).unwrap();
        w.commit().unwrap();
        let cfg = serde_json::json!({"architecture": "s390x", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]}});
        let img = s
            .write_image(
                &serde_json::to_vec(&cfg).unwrap(),
                &[(info.digest, info.media_type.to_string(), info.size)],
            )
            .unwrap();
        s.tag(
            &Reference::parse_tag("s390x/base:1").unwrap(),
            &img.manifest,
        )
        .unwrap();
    }
    fs::write(ctx.join("Dockerfile"), "FROM s390x/base:1\nRUN true\n").unwrap();
    let out = whittle(
        &root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--pull=never",
            "--platform",
            "linux/s390x",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("linux/s390x") && out.stderr.contains("whittle binfmt --install"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Dockerfile:2"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("#1 "),
        "nothing may run: {}",
        out.stderr
    );
}
