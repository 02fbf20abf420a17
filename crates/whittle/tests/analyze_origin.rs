//! The Dockerfile line and stage of each layer: `whittle build` records them in the manifest's
//! `dev.whittle.layers` annotation (config and history untouched), and `whittle analyze` shows
//! them in text and JSON, read from the store and from an OCI archive. Images without the
//! annotation analyse as before.
#![allow(clippy::unwrap_used)]

mod common;

use common::{env, whittle};
use std::fs;

const DOCKERFILE: &str = "FROM test/busybox:1 AS builder\n\
                          RUN echo hi > /hello\n\
                          \n\
                          FROM builder\n\
                          RUN dd if=/dev/zero of=/big bs=1024 count=64\n\
                          RUN rm /big\n";

fn json(o: &common::Out) -> serde_json::Value {
    assert!(o.ok, "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

#[test]
fn built_layers_carry_their_dockerfile_lines() {
    if !common::root_or_skip("building") {
        return;
    }
    let e = env();
    let b = common::build(&e, DOCKERFILE, "lines:1");
    assert!(b.ok, "{}", b.stderr);
    let s = whittle_store::Store::open(&e.root).unwrap();
    let t = s.resolve("lines:1").unwrap();
    let (manifest, config) = s.manifest_and_config(&t.image).unwrap();
    let base = t.image.layers.len() - 3;
    let mut want: Vec<serde_json::Value> = vec![serde_json::Value::Null; base];
    want.extend([
        serde_json::json!({"file": "Dockerfile", "line": 2, "stage": "builder"}),
        serde_json::json!({"file": "Dockerfile", "line": 5, "stage": "stage-1"}),
        serde_json::json!({"file": "Dockerfile", "line": 6, "stage": "stage-1"}),
    ]);
    let ann = manifest["annotations"]["dev.whittle.layers"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(ann).unwrap(),
        serde_json::Value::Array(want)
    );
    assert!(!ann.contains(' '), "compact JSON: {ann}");
    assert!(
        !config.to_string().contains("dev.whittle"),
        "the config is left alone: {config}"
    );

    // Text: the layer table and the finding name the lines.
    let o = whittle(&e.root, &["analyze", "lines:1"]);
    assert!(o.ok, "{}", o.stderr);
    let out = &o.stdout;
    assert!(out.contains("Dockerfile:2 (stage builder) RUN"), "{out}");
    assert!(out.contains("Dockerfile:5 (stage stage-1) RUN"), "{out}");
    let findings = &out[out.find("Findings:").unwrap()..];
    assert!(
        findings.contains("Dockerfile:5 (stage stage-1)")
            && findings.contains("Dockerfile:6 (stage stage-1)"),
        "the deleted file's layer and the deleting one: {findings}"
    );

    // JSON: each layer's origin, and the finding's.
    let v = json(&whittle(
        &e.root,
        &["analyze", "--format", "json", "lines:1"],
    ));
    let layers = v["layer"].as_array().unwrap();
    assert!(layers[0].get("origin").is_none(), "{}", layers[0]);
    assert_eq!(layers[base + 1]["origin"]["line"], 5);
    assert_eq!(layers[base]["origin"]["stage"], "builder");
    let deleted = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "deleted-later")
        .unwrap();
    assert_eq!(deleted["origin"]["line"], 5);
    assert_eq!(deleted["relatedOrigin"]["line"], 6);

    // Read from an OCI archive the same way.
    let arch = e.tmp.path().join("lines.oci.tar");
    let arch_s = arch.to_string_lossy().into_owned();
    let o = whittle(
        &e.root,
        &["save", "--format", "oci", "-o", &arch_s, "lines:1"],
    );
    assert!(o.ok, "{}", o.stderr);
    let o = whittle(&e.root, &["analyze", &format!("oci-archive:{arch_s}")]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("Dockerfile:6 (stage stage-1)"),
        "{}",
        o.stdout
    );

    // Built again from the cache: the same lines, the same manifest.
    let again = common::build(&e, DOCKERFILE, "lines:3");
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(
        s.resolve("lines:3").unwrap().image.manifest,
        t.image.manifest
    );

    // A user's annotation of the same name wins.
    let ctx = e.ctx.to_string_lossy().into_owned();
    let o = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--annotation",
            "dev.whittle.layers=mine",
            "-t",
            "lines:2",
            &ctx,
        ],
    );
    assert!(o.ok, "{}", o.stderr);
    let t = s.resolve("lines:2").unwrap();
    let (manifest, _) = s.manifest_and_config(&t.image).unwrap();
    assert_eq!(manifest["annotations"]["dev.whittle.layers"], "mine");
    let o = whittle(&e.root, &["analyze", "lines:2"]);
    assert!(o.ok, "an unreadable annotation is ignored: {}", o.stderr);
    assert!(!o.stdout.contains("Dockerfile:"), "{}", o.stdout);
}

#[test]
fn a_dockerfile_elsewhere_is_named_by_its_file_name() {
    if !common::root_or_skip("building") {
        return;
    }
    let e = env();
    let df = e.tmp.path().join("app.Dockerfile");
    fs::write(&df, "FROM test/busybox:1\nRUN touch /x\n").unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let df_s = df.to_string_lossy().into_owned();
    let o = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "-f",
            &df_s,
            "-t",
            "f:1",
            &ctx,
        ],
    );
    assert!(o.ok, "{}", o.stderr);
    let o = whittle(&e.root, &["analyze", "f:1"]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("app.Dockerfile:2 (stage stage-0) RUN"),
        "no builder directories in the image: {}",
        o.stdout
    );
}

#[test]
fn images_without_the_annotation_analyse_as_before() {
    let e = env();
    let v = json(&whittle(
        &e.root,
        &["analyze", "--format", "json", "test/busybox:1"],
    ));
    for l in v["layer"].as_array().unwrap() {
        assert!(l.get("origin").is_none(), "{l}");
    }
    let o = whittle(&e.root, &["analyze", "test/busybox:1"]);
    assert!(o.ok, "{}", o.stderr);
    assert!(!o.stdout.contains("Dockerfile:"), "{}", o.stdout);
}
