//! `build --sbom --provenance` (#17): attestation manifests in the image index as BuildKit
//! attaches them, in the store, OCI archives and local outputs; no secret value in any blob;
//! `whittle sbom` reads the attestation; `whittle images` marks the image and lists no
//! attestation manifest as an image. Push to a registry: tests/registry.rs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{env, whittle};
use serde_json::Value;
use std::fs;
use std::path::Path;
use whittle_store::{Store, TagTarget};

const ARG_SECRET: &str = "argsecret-7f3a9c";
const FILE_SECRET: &str = "filesecret-41d2e8";

const DOCKERFILE: &str = "FROM test/busybox:1 AS builder
RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo built > /out
FROM test/busybox:1
ARG NPM_TOKEN
ARG VERSION
COPY --from=builder /out /out
";

fn build(e: &common::Env, extra: &[&str], tag: &str) -> common::Out {
    fs::write(e.ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let secret = e.tmp.path().join("tok");
    fs::write(&secret, FILE_SECRET).unwrap();
    let sec = format!("id=tok,src={}", secret.display());
    let arg = format!("NPM_TOKEN={ARG_SECRET}");
    let ctx = e.ctx.to_string_lossy().into_owned();
    let mut args = vec![
        "build",
        "--progress=plain",
        "--network=none",
        "--secret",
        &sec,
        "--build-arg",
        &arg,
        "--build-arg",
        "VERSION=1.0",
        "-t",
        tag,
    ];
    args.extend_from_slice(extra);
    args.push(&ctx);
    whittle(&e.root, &args)
}

fn json(store: &Store, d: &whittle_store::Digest) -> Value {
    serde_json::from_slice(&store.read_statement(d).unwrap()).unwrap()
}

/// Every blob of the store and every file under `dir`: none holds a secret value.
fn assert_no_secret(root: &Path, dir: Option<&Path>) {
    let mut files: Vec<std::path::PathBuf> = fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if let Some(d) = dir {
        files.extend(fs::read_dir(d).unwrap().map(|e| e.unwrap().path()));
    }
    for f in files.iter().filter(|f| f.is_file()) {
        let bytes = fs::read(f).unwrap();
        for s in [ARG_SECRET, FILE_SECRET] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds {s}",
                f.display()
            );
        }
    }
}

#[test]
fn sbom_and_provenance_are_attached_as_buildkit_attaches_them() {
    if !common::root_or_skip("RUN steps") {
        return;
    }
    let e = env();
    // Off unless asked for: a plain build keeps its image manifest.
    let r = build(&e, &[], "plain:1");
    assert!(r.ok, "{}", r.stderr);
    let store = Store::open(&e.root).unwrap();
    let plain = match store.tag_target(&"plain:1".parse().unwrap()).unwrap() {
        Some(TagTarget::Image(d)) => d,
        other => panic!("{other:?}"),
    };

    let r = build(&e, &["--sbom", "--provenance=mode=max"], "app:1");
    assert!(r.ok, "{}", r.stderr);
    let ix = match store.tag_target(&"app:1".parse().unwrap()).unwrap() {
        Some(TagTarget::Index(ix)) => ix,
        other => panic!("an index for one platform, as buildx makes it: {other:?}"),
    };
    // The image is the plain build's: attestations do not change it.
    let images: Vec<_> = ix.images().collect();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].manifest, plain);
    let att = ix.attestation_of(&plain).expect("an attestation manifest");
    assert_eq!(att.platform, None);

    // The index entry, as BuildKit writes it.
    let index: Value = serde_json::from_slice(&store.read_document(&ix.digest).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["digest"], plain.to_string());
    let a = &entries[1];
    assert_eq!(
        a["platform"],
        serde_json::json!({"architecture": "unknown", "os": "unknown"})
    );
    assert_eq!(
        a["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        a["annotations"]["vnd.docker.reference.digest"],
        plain.to_string()
    );
    assert_eq!(a["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    // The attestation manifest: an OCI config naming unknown/unknown, in-toto layers.
    let am: Value = serde_json::from_slice(&store.read_document(&att.manifest).unwrap()).unwrap();
    assert_eq!(
        am["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let cfg: Value = serde_json::from_slice(
        &store
            .read_document(&am["config"]["digest"].as_str().unwrap().parse().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["architecture"], "unknown");
    assert_eq!(cfg["os"], "unknown");
    let layers = am["layers"].as_array().unwrap();
    let types: Vec<&str> = layers
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], "application/vnd.in-toto+json");
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );
    let stmt = |i: usize| {
        json(
            &store,
            &layers[i]["digest"].as_str().unwrap().parse().unwrap(),
        )
    };
    let sbom = stmt(0);
    assert_eq!(sbom["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(sbom["subject"][0]["digest"]["sha256"], plain.hex());
    assert!(sbom["subject"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("pkg:docker/app@1?platform=linux%2F"));
    assert_eq!(sbom["predicate"]["spdxVersion"], "SPDX-2.3");
    let prov = stmt(1);
    let p = &prov["predicate"];
    let req = &p["buildDefinition"]["externalParameters"]["request"];
    assert_eq!(req["args"]["build-arg:VERSION"], "1.0");
    assert_eq!(req["args"]["build-arg:NPM_TOKEN"], "<redacted>");
    assert_eq!(req["secrets"][0]["id"], "tok");
    assert_eq!(
        p["buildDefinition"]["externalParameters"]["configSource"]["digest"]["sha256"],
        whittle_store::Digest::of_bytes(DOCKERFILE.as_bytes()).hex()
    );
    let deps = p["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let busybox = store.resolve("test/busybox:1").unwrap().image.manifest;
    assert!(
        deps.iter().any(|d| d["digest"]["sha256"] == busybox.hex()
            && d["uri"]
                .as_str()
                .unwrap()
                .starts_with("pkg:docker/test/busybox@1")),
        "{deps:?}"
    );
    assert_eq!(
        p["runDetails"]["builder"]["version"]["whittle"],
        env!("CARGO_PKG_VERSION")
    );
    assert_no_secret(&e.root, None);

    // The same build again, without the cache: the same bytes (the subjects name the tag, so
    // the same tag).
    let r = build(
        &e,
        &["--sbom", "--provenance=mode=max", "--no-cache"],
        "app:1",
    );
    assert!(r.ok, "{}", r.stderr);
    match store.tag_target(&"app:1".parse().unwrap()).unwrap() {
        Some(TagTarget::Index(ix2)) => assert_eq!(ix2.digest, ix.digest),
        other => panic!("{other:?}"),
    }

    // `whittle images`: one row for the image, marked; none for the attestation manifest.
    let r = whittle(&e.root, &["images", "--format", "json"]);
    assert!(r.ok, "{}", r.stderr);
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(!rows.iter().any(|r| r["Digest"] == att.manifest.to_string()));
    let row = rows
        .iter()
        .find(|r| r["Digest"] == plain.to_string())
        .unwrap();
    assert_eq!(row["Attestations"]["Manifest"], att.manifest.to_string());
    // `run`/`inspect` of the name take the image, never the attestation manifest.
    assert_eq!(store.resolve("app:1").unwrap().image.manifest, plain);

    // `whittle sbom` reads the attestation; --scan catalogues again (the same document).
    let r = whittle(&e.root, &["sbom", "app:1", "--format", "spdx-json"]);
    assert!(r.ok && r.stderr.contains("attestation"), "{}", r.stderr);
    let read: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(read, sbom["predicate"]);
    let r = whittle(
        &e.root,
        &["sbom", "app:1", "--format", "spdx-json", "--scan"],
    );
    assert!(r.ok && !r.stderr.contains("attestation"), "{}", r.stderr);

    // Prune keeps a tagged index's attestation blobs.
    let r = whittle(&e.root, &["prune"]);
    assert!(r.ok, "{}", r.stderr);
    for l in layers {
        assert!(store.has_blob(&l["digest"].as_str().unwrap().parse().unwrap()));
    }
}

#[test]
fn oci_archives_and_local_outputs_carry_the_attestations() {
    if !common::root_or_skip("RUN steps") {
        return;
    }
    let e = env();
    let oci = e.tmp.path().join("app.oci.tar");
    let dir = e.tmp.path().join("out");
    let docker = e.tmp.path().join("app.docker.tar");
    let o1 = format!("type=oci,dest={}", oci.display());
    let o2 = format!("type=local,dest={}", dir.display());
    let o3 = format!("type=docker,dest={}", docker.display());
    let tar = e.tmp.path().join("files.tar");
    let o4 = format!("type=tar,dest={}", tar.display());
    let r = build(
        &e,
        &[
            "--sbom",
            "--provenance",
            "-o",
            &o1,
            "-o",
            &o2,
            "-o",
            &o3,
            "-o",
            &o4,
        ],
        "app:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stderr.contains("holds no attestations"), "{}", r.stderr);
    // The OCI archive: its index.json names the index, which lists the attestation manifest.
    let x = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&oci)
        .arg("-C")
        .arg(x.path())
        .status()
        .unwrap();
    assert!(st.success());
    let top: Value =
        serde_json::from_slice(&fs::read(x.path().join("index.json")).unwrap()).unwrap();
    let ixd = top["manifests"][0]["digest"].as_str().unwrap();
    let ix: Value =
        serde_json::from_slice(&fs::read(x.path().join("blobs/sha256").join(&ixd[7..])).unwrap())
            .unwrap();
    let att = ix["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .expect("an attestation manifest in the archive");
    assert!(x
        .path()
        .join("blobs/sha256")
        .join(&att["digest"].as_str().unwrap()[7..])
        .is_file());
    // Loaded elsewhere: the name, and no "Loaded image ID" line for the attestation manifest.
    let fresh = e.tmp.path().join("fresh");
    let l = whittle(&fresh, &["load", "-i", &oci.to_string_lossy()]);
    assert!(l.ok, "{}", l.stderr);
    assert_eq!(l.stdout.trim(), "Loaded image: app:1", "{}", l.stdout);
    // The local output: the files, and the statements next to them naming them.
    assert_eq!(fs::read_to_string(dir.join("out")).unwrap(), "built\n");
    let sbom: Value =
        serde_json::from_slice(&fs::read(dir.join("sbom.spdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["predicateType"], "https://spdx.dev/Document");
    assert!(sbom["subject"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "out"));
    let prov: Value =
        serde_json::from_slice(&fs::read(dir.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["predicateType"], "https://slsa.dev/provenance/v1");
    // min: no build arguments, no secret ids.
    let req = &prov["predicate"]["buildDefinition"]["externalParameters"]["request"];
    assert!(
        req.get("args").is_none() && req.get("secrets").is_none(),
        "{req}"
    );
    // The tar output holds the same files as the local one, as BuildKit's tar exporter
    // writes them.
    let names = tar_names(&tar);
    for f in ["out", "sbom.spdx.json", "provenance.json"] {
        assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
    }
    assert_eq!(
        tar_file(&tar, "sbom.spdx.json"),
        fs::read(dir.join("sbom.spdx.json")).unwrap()
    );
    // The docker archive holds the image alone.
    assert!(docker.is_file());
    assert_no_secret(&e.root, Some(&dir));
}

/// The names in a tar (`./` dropped).
fn tar_names(tar: &Path) -> Vec<String> {
    let mut a = ::tar::Archive::new(fs::File::open(tar).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            p.trim_start_matches("./").trim_end_matches('/').to_string()
        })
        .collect()
}

/// The content of `name` in a tar.
fn tar_file(tar: &Path, name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut a = ::tar::Archive::new(fs::File::open(tar).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().trim_start_matches("./") == name {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in {}", tar.display());
}

/// A Python package's metadata at `dir` in a RUN step.
const DIST_INFO: &str = "mkdir -p /usr/lib/python3/dist-packages/{N}-1.0.dist-info && printf 'Metadata-Version: 2.1\\nName: {N}\\nVersion: 1.0\\n' > /usr/lib/python3/dist-packages/{N}-1.0.dist-info/METADATA";

#[test]
fn scan_stages_adds_an_sbom_of_each_needed_stage() {
    if !common::root_or_skip("RUN steps") {
        return;
    }
    let e = env();
    // The builder installs two packages and removes one (a whiteout in its last layer); an
    // unused stage is never built, so never catalogued.
    let dockerfile = format!(
        "FROM test/busybox:1 AS builder\nRUN {}\nRUN {}\nRUN rm -r /usr/lib/python3/dist-packages/gone-1.0.dist-info && echo built > /out\n\
FROM test/busybox:1 AS unused\nRUN {}\n\
FROM test/busybox:1\nCOPY --from=builder /out /out\n",
        DIST_INFO.replace("{N}", "kept"),
        DIST_INFO.replace("{N}", "gone"),
        DIST_INFO.replace("{N}", "unused"),
    );
    fs::write(e.ctx.join("Dockerfile"), &dockerfile).unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let dir = e.tmp.path().join("out");
    let o = format!("type=local,dest={}", dir.display());
    let names = |doc: &Value| -> Vec<String> {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (flags, tag) in [
        (vec!["--sbom=scan-stages=true"], "app:1"),
        (
            vec!["--sbom", "--build-arg", "BUILDKIT_SBOM_SCAN_STAGE=true"],
            "app:2",
        ),
    ] {
        let mut args = vec!["build", "--progress=plain", "--network=none", "-t", tag];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["-o", &o, &ctx]);
        let r = whittle(&e.root, &args);
        assert!(r.ok, "{}", r.stderr);
        let store = Store::open(&e.root).unwrap();
        let ix = match store.tag_target(&tag.parse().unwrap()).unwrap() {
            Some(TagTarget::Index(ix)) => ix,
            other => panic!("{other:?}"),
        };
        let image = ix.images().next().unwrap().manifest.clone();
        // This tag's attestation (the same image under app:1 and app:2 has one in each index).
        let att = store
            .put_image(&ix.attestation_of(&image).unwrap().manifest)
            .unwrap();
        let stmts: Vec<Value> = store
            .attestation_statements(&att)
            .unwrap()
            .iter()
            .map(|s| json(&store, &s.digest))
            .collect();
        let types: Vec<&str> = stmts
            .iter()
            .map(|s| s["predicateType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["https://spdx.dev/Document", "https://spdx.dev/Document"]
        );
        // The image's document first (what `whittle sbom` reads), then the builder's.
        assert!(names(&stmts[0]["predicate"]).is_empty());
        let stage = &stmts[1]["predicate"];
        assert_eq!(stage["name"], format!("{tag} (stage builder)"));
        assert_eq!(names(stage), ["kept"]);
        // Its comment names the step that made its layer, as the image's document does.
        let comment = stage["packages"][1]["comment"].as_str().unwrap();
        assert!(
            comment.ends_with("made by Dockerfile:2 in stage builder"),
            "{comment}"
        );
        assert_eq!(stmts[1]["subject"][0]["digest"]["sha256"], image.hex());
        // The local output: BuildKit's file name for the stage's document.
        let f: Value =
            serde_json::from_slice(&fs::read(dir.join("sbom-builder.spdx.json")).unwrap()).unwrap();
        assert_eq!(names(&f["predicate"]), ["kept"]);
        assert!(!dir.join("sbom-unused.spdx.json").exists());
    }
    // `whittle sbom` reads the attestation of the index the name tags (app:1 and app:2 are the
    // same image, each with its own).
    for tag in ["app:1", "app:2"] {
        let r = whittle(&e.root, &["sbom", tag, "--format", "spdx-json"]);
        assert!(r.ok, "{}", r.stderr);
        let doc: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(doc["name"], tag);
    }
    // BuildKit's list form: only the stages named (a name not needed, or unknown, gives none).
    for (value, want) in [("builder", 2), ("unused,nothere", 1), ("false", 1)] {
        let arg = format!("BUILDKIT_SBOM_SCAN_STAGE={value}");
        let r = whittle(
            &e.root,
            &[
                "build",
                "--progress=plain",
                "--network=none",
                "--sbom",
                "--build-arg",
                &arg,
                "-t",
                "app:3",
                &ctx,
            ],
        );
        assert!(r.ok, "{}", r.stderr);
        let store = Store::open(&e.root).unwrap();
        let ix = match store.tag_target(&"app:3".parse().unwrap()).unwrap() {
            Some(TagTarget::Index(ix)) => ix,
            other => panic!("{other:?}"),
        };
        let image = ix.images().next().unwrap().manifest.clone();
        let att = store
            .put_image(&ix.attestation_of(&image).unwrap().manifest)
            .unwrap();
        assert_eq!(
            store.attestation_statements(&att).unwrap().len(),
            want,
            "{value}"
        );
    }
}

#[test]
fn several_platforms_with_attestations_write_one_index() {
    if !common::root_or_skip("building images") {
        return;
    }
    let e = env();
    // The builder runs on the build platform (no emulation), the image is scratch.
    fs::write(
        e.ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM test/busybox:1 AS build\nRUN {}\nARG TARGETARCH\nRUN echo $TARGETARCH > /out\nFROM scratch\nCOPY --from=build /out /\n",
            DIST_INFO.replace("{N}", "tool")
        ),
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let r = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom=scan-stages=true",
            "-t",
            "multi:1",
            "-o",
            &format!("type=tar,dest={}", e.tmp.path().join("m.tar").display()),
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    // The tar: each platform's files and attestations in its directory.
    let names = tar_names(&e.tmp.path().join("m.tar"));
    for p in ["linux_amd64", "linux_arm64"] {
        for f in ["out", "sbom.spdx.json", "sbom-build.spdx.json"] {
            let n = format!("{p}/{f}");
            assert!(names.contains(&n), "{n} in {names:?}");
        }
    }
    let store = Store::open(&e.root).unwrap();
    // One index: the attestations' (the solver writes none of its own then).
    let all = store.indexes().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let ix = match store.tag_target(&"multi:1".parse().unwrap()).unwrap() {
        Some(TagTarget::Index(ix)) => ix,
        other => panic!("{other:?}"),
    };
    assert_eq!(ix.digest, all[0].digest);
    let images: Vec<_> = ix.images().map(|m| m.manifest.clone()).collect();
    assert_eq!(images.len(), 2);
    for m in &images {
        let att = store.attestation_of(m).unwrap().unwrap();
        let stmts = store.attestation_statements(&att).unwrap();
        // The image's SBOM and the shared builder stage's, for each platform.
        assert_eq!(stmts.len(), 2);
        let stage = json(&store, &stmts[1].digest);
        assert_eq!(stage["subject"][0]["digest"]["sha256"], m.hex());
        assert_eq!(stage["predicate"]["name"], "multi:1 (stage build)");
        assert!(stage["predicate"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tool"));
    }
}
