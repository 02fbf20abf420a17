//! `whittle plan --format json|dot`: the build graph, as the solver will run it.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn dir(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(d.path().join("f"), "f\n").unwrap();
    d
}

fn plan(d: &tempfile::TempDir, format: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whittle"))
        .args(["--root"])
        .arg(d.path().join("no-store"))
        .args(["plan", "--format", format])
        .arg(d.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TWO_STAGES: &str = "FROM scratch AS a\nCOPY f /f\nRUN [\"/make\"]\n\
                          FROM scratch AS b\nCOPY f /f\nRUN [\"/other\"]\n\
                          FROM scratch\nCOPY --from=a /f /a\nCOPY --link --from=b /f /b\nCMD [\"/a\"]\n";

#[test]
fn json_is_the_graph_with_shared_vertices() {
    let d = dir(TWO_STAGES);
    let (ok, out, err) = plan(&d, "json");
    assert!(ok, "{err}");
    let g: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(g["version"], 1);
    let vertices = g["vertices"].as_array().unwrap();
    // `COPY f /f` of stages a and b is one vertex with two origins.
    let copies: Vec<&serde_json::Value> = vertices
        .iter()
        .filter(|v| v["op"] == "copy" && v["dest"] == "/f")
        .collect();
    assert_eq!(copies.len(), 1, "{out}");
    assert_eq!(copies[0]["origins"].as_array().unwrap().len(), 2);
    // --link: a copy onto scratch, merged onto the stage.
    assert!(vertices.iter().any(|v| v["op"] == "merge"), "{out}");
    for v in vertices {
        assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    // The target's config changes, history included.
    let images = g["images"].as_array().unwrap();
    let target = &images[g["targets"][0]["image"].as_u64().unwrap() as usize];
    assert_eq!(g["targets"][0]["platform"]["os"], "linux");
    assert!(target["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["set"] == "cmd" && c["args"] == serde_json::json!(["/a"])));
    // plan-json is still the frontend's plan.
    let (ok, out, _) = plan(&d, "plan-json");
    assert!(ok);
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["stages"].as_array().unwrap().len(), 3);
}

#[test]
fn dot_draws_every_vertex_and_edge() {
    let d = dir(TWO_STAGES);
    let (ok, json, _) = plan(&d, "json");
    assert!(ok);
    let n = serde_json::from_str::<serde_json::Value>(&json).unwrap()["vertices"]
        .as_array()
        .unwrap()
        .len();
    let (ok, dot, err) = plan(&d, "dot");
    assert!(ok, "{err}");
    assert!(dot.starts_with("digraph build {"), "{dot}");
    let nodes = dot
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with('v') && l.contains(" [label=") && !l.contains("->")
        })
        .count();
    assert_eq!(nodes, n, "{dot}");
    assert!(dot.contains("subgraph cluster_0"), "{dot}");
    assert!(dot.trim_end().ends_with('}'));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // Far more output than a pipe holds, so whittle is still writing when `head` leaves.
    let mut text = String::from("FROM scratch\n");
    for i in 0..3000 {
        text.push_str(&format!("RUN [\"/step\", \"{i}\"]\n"));
    }
    let d = dir(&text);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --root '{}' plan --format json '{}' | head -c 1 >/dev/null",
            env!("CARGO_BIN_EXE_whittle"),
            d.path().join("no-store").display(),
            d.path().display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}
