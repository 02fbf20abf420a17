//! Golden build graphs: every Dockerfile of the frontend corpus and of the conformance suite,
//! planned and lowered, gives the same definition digests on every run and machine. A change
//! to a digest changes every cache key built on it, so it must be deliberate: rerun with
//! `WHITTLE_BLESS=1` to rewrite `graph-golden.txt`, and bump `whittle_graph::VERSION` when an
//! operation's meaning changed without its encoding changing.

#![allow(clippy::unwrap_used)]

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use whittle_dockerfile::{ImageInfo, ImageResolver, PlanOptions, Platform};
use whittle_graph::{definition_digest_at, Graph, VERSION};

/// Every image is known, with a fixed config and a manifest derived from its name, so the
/// graphs do not depend on what this machine has.
struct FixedImages;
impl ImageResolver for FixedImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<ImageInfo> {
        let manifest = hex(Sha256::digest(format!("{reference} {platform}").as_bytes()));
        Some(ImageInfo {
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            workdir: None,
            shell: None,
            onbuild: Vec::new(),
            user: None,
            manifest: Some(format!("sha256:{manifest}")),
        })
    }
}

fn hex(b: impl AsRef<[u8]>) -> String {
    b.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn cases() -> Vec<(String, PathBuf)> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for e in std::fs::read_dir(here.join("tests/corpus")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "Dockerfile") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((format!("corpus/{name}"), p));
        }
    }
    let conf = here.join("../whittle/tests/conformance/cases");
    for e in std::fs::read_dir(conf).unwrap() {
        let p = e.unwrap().path().join("Dockerfile");
        if p.is_file() {
            let name = p
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((format!("conformance/{name}"), p));
        }
    }
    out.sort();
    out
}

/// The graph of a Dockerfile for linux/amd64 (the same on every machine).
fn lowered(path: &Path) -> Result<Graph, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let df = whittle_dockerfile::parse(&text).map_err(|e| e.to_string())?;
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let opts = PlanOptions {
        target_platform: amd64.clone(),
        build_platform: amd64,
        ..PlanOptions::default()
    };
    let plan =
        whittle_dockerfile::plan_with(&df, &opts, &FixedImages).map_err(|e| e.to_string())?;
    whittle_dockerfile::lower(&plan, &FixedImages).map_err(|e| e.to_string())
}

/// One line per case: the target's root digest, a digest of the whole graph as JSON (config
/// changes, history and origins included), the vertex count, and a digest of every vertex's
/// key definition (`Graph::key_definition`, what its cache key starts from).
fn line(name: &str, g: &Result<Graph, String>) -> String {
    match g {
        Ok(g) => {
            let root = &g.vertex(g.target_image().root).digest;
            let json = serde_json::to_vec(g).unwrap();
            let keys: String = (0..g.vertices.len())
                .map(|i| g.key_definition(whittle_graph::VertexId(i)) + "\n")
                .collect();
            format!(
                "{name} root={} graph={} vertices={} keys={}",
                &root.trim_start_matches("sha256:")[..16],
                &hex(Sha256::digest(&json))[..16],
                g.vertices.len(),
                &hex(Sha256::digest(keys.as_bytes()))[..16],
            )
        }
        Err(_) => format!("{name} error"),
    }
}

#[test]
fn definition_digests_are_stable() {
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graph-golden.txt");
    let mut text = String::new();
    let mut lowered_ok = 0;
    for (name, path) in cases() {
        let g = lowered(&path);
        lowered_ok += usize::from(g.is_ok());
        // Twice, to be sure nothing in a graph depends on the order of a hash map.
        assert_eq!(line(&name, &g), line(&name, &lowered(&path)), "{name}");
        text.push_str(&line(&name, &g));
        text.push('\n');
    }
    assert!(lowered_ok >= 140, "only {lowered_ok} cases lowered");
    if std::env::var_os("WHITTLE_BLESS").is_some() {
        std::fs::write(&golden_path, &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap_or_default();
    let diff: Vec<String> = text
        .lines()
        .zip(golden.lines().chain(std::iter::repeat("(missing)")))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  now: {a}\n  was: {b}"))
        .collect();
    assert!(
        diff.is_empty() && text.lines().count() == golden.lines().count(),
        "build graphs changed (every cache key built on them changes too); if this is \
         deliberate, rerun with WHITTLE_BLESS=1:\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_new_graph_version_changes_every_digest() {
    for (name, path) in cases() {
        let Ok(g) = lowered(&path) else { continue };
        let mut next: Vec<String> = Vec::new();
        for v in &g.vertices {
            let named =
                v.op.map_inputs(&mut |i: &whittle_graph::VertexId| next[i.0].clone());
            let d = definition_digest_at(VERSION + 1, &named);
            assert_ne!(
                d, v.digest,
                "{name}: a vertex kept its digest under a new version"
            );
            // Today's version recomputes to the recorded digest.
            let named_now =
                v.op.map_inputs(&mut |i: &whittle_graph::VertexId| g.vertices[i.0].digest.clone());
            assert_eq!(
                definition_digest_at(VERSION, &named_now),
                v.digest,
                "{name}"
            );
            next.push(d);
        }
    }
}
