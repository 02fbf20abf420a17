//! Lowering a plan to the build graph: what the frontend resolves, and the steps it refuses.

#![allow(clippy::unwrap_used)]

use whittle_dockerfile::{ImageInfo, ImageResolver, PlanOptions, Platform};
use whittle_graph::{ConfigChange, Graph, MountKind, Op};

struct Base;
impl ImageResolver for Base {
    fn resolve(&self, _: &str, _: &Platform) -> Option<ImageInfo> {
        Some(ImageInfo {
            env: vec![("PATH".into(), "/bin".into()), ("LANG".into(), "C".into())],
            workdir: Some("/home".into()),
            user: Some("app".into()),
            manifest: Some(format!("sha256:{}", "b".repeat(64))),
            ..Default::default()
        })
    }
}

fn lower(text: &str, args: &[(&str, &str)]) -> Result<Graph, whittle_dockerfile::LowerError> {
    let df = whittle_dockerfile::parse(text).unwrap();
    let opts = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PlanOptions::default()
    };
    let plan = whittle_dockerfile::plan_with(&df, &opts, &Base).unwrap();
    whittle_dockerfile::lower(&plan, &Base)
}

fn execs(g: &Graph) -> Vec<&whittle_graph::Exec<whittle_graph::VertexId>> {
    g.vertices
        .iter()
        .filter_map(|v| match &v.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_sees_the_image_env_the_stage_env_and_its_args() {
    let g = lower(
        "FROM app:1\nARG V\nENV LANG=en A=1\nRUN make\nUSER root\nWORKDIR sub\nRUN [\"ls\"]\n",
        &[("V", "7")],
    )
    .unwrap();
    let e = execs(&g);
    assert_eq!(e[0].env, ["PATH=/bin", "LANG=en", "A=1", "V=7"]);
    assert_eq!(e[0].args, ["/bin/sh", "-c", "make"]);
    // The image's USER and WORKDIR, then the stage's (WORKDIR relative to the previous one).
    assert_eq!(
        (e[0].user.as_deref(), e[0].cwd.as_str()),
        (Some("app"), "/home")
    );
    assert_eq!(
        (e[1].user.as_deref(), e[1].cwd.as_str()),
        (Some("root"), "/home/sub")
    );
    // The image vertex is pinned to its manifest.
    assert!(g.vertices.iter().any(|v| matches!(&v.op,
        Op::Image(s) if s.manifest.as_deref() == Some(&format!("sha256:{}", "b".repeat(64))[..]))));
}

#[test]
fn heredocs_follow_buildkits_rules() {
    let g = lower(
        "FROM scratch\nRUN <<EOF\necho one\nEOF\nRUN <<EOF\n#!/bin/busybox sh\necho two\nEOF\nRUN cat <<A >/x\nbody\nA\n",
        &[],
    )
    .unwrap();
    let e = execs(&g);
    assert_eq!(e[0].args, ["/bin/sh", "-c", "echo one\n"]);
    assert_eq!(e[1].args, ["/dev/pipes/EOF"]);
    assert_eq!(e[1].files[0].content, "#!/bin/busybox sh\necho two\n");
    assert_eq!(e[1].files[0].mode, 0o755);
    assert_eq!(e[2].args, ["/bin/sh", "-c", "cat <<A >/x\nbody\nA"]);
}

#[test]
fn link_copies_onto_scratch_and_merges() {
    let g = lower(
        "FROM app:1\nCOPY --link --chown=app a /a\nENTRYPOINT [\"/a\"]\nCMD [\"x\"]\n",
        &[],
    )
    .unwrap();
    let copy = g
        .vertices
        .iter()
        .find_map(|v| match &v.op {
            Op::Copy(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert!(matches!(g.vertex(copy.onto).op, Op::Scratch));
    // --chown names are the stage's users.
    assert!(matches!(
        g.vertex(copy.owner.users.unwrap()).op,
        Op::Image(_)
    ));
    let root = g.vertex(g.target_image().root);
    assert!(matches!(&root.op, Op::Merge(m) if m.inputs.len() == 2));
    // ENTRYPOINT resets the CMD inherited from the image; the stage's CMD then sets it.
    let changes = &g.target_image().changes;
    assert!(changes.contains(&ConfigChange::Entrypoint {
        args: vec!["/a".into()],
        reset_cmd: true
    }));
    assert!(changes.contains(&ConfigChange::ClearOnBuild));
}

#[test]
fn mounts_are_resolved() {
    let g = lower(
        "FROM scratch AS b\nFROM scratch\nRUN --mount=type=cache,target=/c,uid=5 \
         --mount=type=bind,from=b,source=/s,target=/m --mount=type=secret,id=t [\"x\"]\n",
        &[],
    )
    .unwrap();
    let m = &execs(&g)[0].mounts;
    assert!(
        matches!(&m[0].kind, MountKind::Cache { id, .. } if id == "/c (uid 5, gid 0, mode 755)")
    );
    assert!(matches!(&m[1].kind, MountKind::Bind { source, rw: false, .. } if source == "/s"));
    assert!(matches!(&m[2].kind, MountKind::Secret { id, mode: 0o400, .. } if id == "t"));
}

#[test]
fn steps_the_graph_cannot_express_are_errors_at_their_line() {
    for (text, says) in [
        ("FROM scratch\n\nCOPY https://example.com/x /x\n", "COPY cannot download URLs: use ADD"),
        ("FROM scratch\n\nADD https://example.com/x f /d/\n", "cannot mix URLs and local files"),
        ("FROM scratch\n\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 f /f\n", "applies to URL sources only"),
        ("FROM scratch\n\nADD git@example.com:a/b.git /src\n", "git repositories"),
    ] {
        let e = lower(text, &[]).unwrap_err();
        assert_eq!(e.line, 3, "{text}");
        assert!(e.message.contains(says), "{text}: {}", e.message);
        assert!(e.to_string().contains("line 3"), "{e}");
    }
}

/// The graph of `text` for `target`, built on linux/amd64.
fn lower_for(text: &str, target: &str) -> Graph {
    let df = whittle_dockerfile::parse(text).unwrap();
    let opts = PlanOptions {
        target_platform: Platform::parse(target).unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
        ..PlanOptions::default()
    };
    let plan = whittle_dockerfile::plan_with(&df, &opts, &Base).unwrap();
    whittle_dockerfile::lower(&plan, &Base).unwrap()
}

#[test]
fn merged_platform_graphs_share_what_is_the_same_for_each() {
    let text = "FROM --platform=$BUILDPLATFORM app:1 AS build\nRUN make deps\nARG TARGETARCH\n\
                RUN make ARCH=$TARGETARCH\nFROM app:1 AS run\nCOPY --from=build /out /out\n\
                FROM run\nCMD [\"/out\"]\n";
    let amd = lower_for(text, "linux/amd64");
    let arm = lower_for(text, "linux/arm64");
    let (na, nb) = (amd.vertices.len(), arm.vertices.len());
    let g = Graph::merge(vec![amd, arm]);
    // The builder's base and `make deps` are one vertex each; the rest is per platform.
    let deps: Vec<_> = g
        .vertices
        .iter()
        .filter(|v| matches!(&v.op, Op::Exec(e) if e.args.iter().any(|a| a == "make deps")))
        .collect();
    assert_eq!(deps.len(), 1);
    assert_eq!(g.vertices.len(), na + nb - 2);
    // Its origins: the same stage on the build platform, for two targets.
    let labels: Vec<String> = deps[0].origins.iter().map(|o| o.progress_label()).collect();
    assert_eq!(
        labels,
        ["[linux/amd64 build 1/3]", "[linux/amd64->arm64 build 1/3]"]
    );
    let makes = execs(&g)
        .iter()
        .filter(|e| e.args.iter().any(|a| a.starts_with("make ARCH")))
        .count();
    assert_eq!(makes, 2);
    // Two targets; the second's images point into the second half (stage and vertices).
    assert_eq!(g.targets.len(), 2);
    assert_eq!(g.targets[1].platform.to_string(), "linux/arm64");
    let t = &g.images[g.targets[1].image];
    match t.base {
        whittle_graph::ConfigBase::Stage { image } => {
            assert!(image >= g.images.len() / 2, "{image}");
            assert_eq!(g.images[image].platform.to_string(), "linux/arm64");
        }
        ref other => panic!("{other:?}"),
    }
    // Every input of every vertex comes before it.
    for (i, v) in g.vertices.iter().enumerate() {
        assert!(v.op.inputs().iter().all(|d| d.0 < i));
    }
}
