//! The solver's cache rules, scheduling and dedup, with a fake executor: no container, no root.
//!
//! The fake runs exec-form commands of its own language, writing into the step's upper dir:
//! `["write", PATH, TEXT]`, `["env", PATH]` (the environment, one per line),
//! `["sleep", MS, PATH]` (records when it ran), `["fail"]` (exit code 3).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use whittle_runtime::{CancelToken, ContainerSpec, ExitStatus, OutputSink, Rootfs, Stream};
use whittle_solver::{build, BuildError, BuildOptions, Event, Executor, Recorder};
use whittle_store::Store;

#[derive(Default)]
struct Fake {
    /// Every command run, with when it started and ended.
    runs: Mutex<Vec<(Vec<String>, Instant, Instant)>>,
}

impl Executor for Fake {
    fn run(
        &self,
        spec: &ContainerSpec,
        sink: &mut dyn OutputSink,
        _cancel: &CancelToken,
    ) -> whittle_runtime::Result<ExitStatus> {
        let start = Instant::now();
        let Rootfs::Overlay { upper, .. } = &spec.rootfs else {
            panic!("a RUN gets an overlay root");
        };
        let put = |path: &str, text: &str| {
            let p = upper.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let a = &spec.args;
        let code = match a.first().map(String::as_str) {
            Some("write") => {
                put(&a[1], &a[2]);
                0
            }
            Some("env") => {
                put(&a[1], &(spec.env.join("\n") + "\n"));
                0
            }
            Some("sleep") => {
                std::thread::sleep(Duration::from_millis(a[1].parse().unwrap()));
                put(&a[2], "slept\n");
                0
            }
            Some("fail") => {
                sink.line(Stream::Stderr, b"it failed");
                3
            }
            other => panic!("the fake does not know {other:?}"),
        };
        self.runs
            .lock()
            .unwrap()
            .push((a.clone(), start, Instant::now()));
        Ok(ExitStatus::Code(code))
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    context: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    Env {
        _dir: dir,
        store,
        context,
    }
}

fn graph(text: &str, args: &[(&str, &str)]) -> whittle_graph::Graph {
    let df = whittle_dockerfile::parse(text).unwrap();
    let opts = whittle_dockerfile::PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let plan = whittle_dockerfile::plan(&df, &opts).unwrap();
    whittle_dockerfile::lower(&plan, &whittle_dockerfile::plan::NoImages).unwrap()
}

/// What one build did: its result, the commands the fake ran, and each step's fate by
/// instruction (`run`, `cached`, or the miss reason followed by `run`).
struct Outcome {
    result: Result<whittle_solver::BuildResult, BuildError>,
    commands: Vec<Vec<String>>,
    runs: Vec<(Vec<String>, Instant, Instant)>,
    steps: HashMap<String, String>,
}

fn solve(e: &Env, g: &whittle_graph::Graph, tweak: impl FnOnce(&mut BuildOptions)) -> Outcome {
    let fake = Fake::default();
    let rec = Recorder::default();
    let mut opts = BuildOptions::new(e.context.clone());
    opts.jobs = 4;
    tweak(&mut opts);
    let cancel = CancelToken::new().unwrap();
    let result = build(g, &opts, &e.store, &fake, &rec, &cancel);
    let runs = fake.runs.into_inner().unwrap();
    let mut names = HashMap::new();
    let mut steps: HashMap<String, String> = HashMap::new();
    for ev in rec.0.into_inner().unwrap() {
        match ev {
            Event::StepStarted { id, summary, .. } => {
                names.insert(id, summary.clone());
                steps.insert(summary, String::new());
            }
            Event::StepCached { id } => {
                steps.insert(names[&id].clone(), "cached".into());
            }
            Event::StepMiss { id, reason } => {
                steps.insert(names[&id].clone(), format!("miss: {reason}"));
            }
            _ => {}
        }
    }
    Outcome {
        result,
        commands: runs.iter().map(|r| r.0.clone()).collect(),
        runs,
        steps,
    }
}

fn image_file(e: &Env, r: &whittle_solver::BuildResult, path: &str) -> Option<String> {
    let (cfg, layers) = e
        .store
        .unpack_image(r.image.as_ref().unwrap(), &|_, _, _| {})
        .expect("unpack");
    let _ = cfg;
    layers
        .iter()
        .rev()
        .map(|l| l.dir.join(path.trim_start_matches('/')))
        .find(|p| p.exists())
        .map(|p| std::fs::read_to_string(p).unwrap())
}

#[test]
fn hit_and_miss_with_explanations() {
    let e = env();
    std::fs::write(e.context.join("a.txt"), "one\n").unwrap();
    std::fs::write(e.context.join("b.txt"), "bee\n").unwrap();
    let df = "FROM scratch\nCOPY a.txt b.txt /src/\nRUN [\"write\", \"/out\", \"made\"]\n";
    let g = graph(df, &[]);
    let first = solve(&e, &g, |_| {});
    let r = first.result.unwrap();
    assert_eq!((r.steps_run, r.steps_cached), (2, 0));
    assert_eq!(
        first.steps["COPY a.txt b.txt /src/"],
        "miss: not built before"
    );
    assert_eq!(image_file(&e, &r, "/out").as_deref(), Some("made"));

    // Nothing changed: every step is a hit, nothing runs.
    let again = solve(&e, &g, |_| {});
    assert_eq!(again.result.unwrap().steps_cached, 2);
    assert!(again.commands.is_empty());
    assert!(
        again.steps.values().all(|s| s == "cached"),
        "{:?}",
        again.steps
    );

    // One file changed: the COPY says which, the RUN says why it follows.
    std::fs::write(e.context.join("b.txt"), "bee v2\n").unwrap();
    let edited = solve(&e, &g, |_| {});
    edited.result.unwrap();
    assert_eq!(
        edited.steps["COPY a.txt b.txt /src/"],
        "miss: b.txt changed"
    );
    assert_eq!(
        edited.steps["RUN [\"write\",\"/out\",\"made\"]"],
        "miss: an earlier step (or the base image) changed"
    );

    // --no-cache misses everything, and says so.
    let nc = solve(&e, &g, |o| o.no_cache = true);
    nc.result.unwrap();
    assert!(
        nc.steps.values().all(|s| s.contains("--no-cache")),
        "{:?}",
        nc.steps
    );
}

/// Recorded from the lab's BuildKit (docker 20.10.24): with `FROM lab/busybox:1`, changing
/// `LABEL x=5` to `x=6` and `EXPOSE 85` to `86` keeps `RUN echo hi > /f` CACHED (the same vertex
/// digest), and changing `ENV A=1` to `A=2` above it makes it a new vertex that runs.
#[test]
fn metadata_does_not_invalidate_later_steps_but_env_does() {
    let e = env();
    let build_with = |label: &str, env_value: &str| {
        let df = format!(
            "FROM scratch\nLABEL x={label}\nEXPOSE 8{label}\nENV V={env_value}\nRUN [\"env\", \"/env\"]\n"
        );
        solve(&e, &graph(&df, &[]), |_| {})
    };
    build_with("1", "a").result.unwrap();
    // A LABEL is config only: the RUN after it stays cached (as in BuildKit).
    let o = build_with("2", "a");
    assert_eq!(o.result.unwrap().steps_cached, 1);
    // The environment is part of the RUN's definition.
    let o = build_with("2", "b");
    assert_eq!(
        o.steps["RUN [\"env\",\"/env\"]"],
        "miss: environment changed: V"
    );
    let r = o.result.unwrap();
    let env_file = image_file(&e, &r, "/env").unwrap();
    assert!(env_file.contains("V=b\n"), "{env_file}");
}

#[test]
fn args_reach_only_the_steps_that_see_them() {
    let e = env();
    let df = "FROM scratch AS a\nARG V\nRUN [\"env\", \"/a\"]\n\
              FROM scratch AS b\nRUN [\"env\", \"/b\"]\n\
              FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    solve(&e, &graph(df, &[("V", "1")]), |_| {}).result.unwrap();
    let o = solve(&e, &graph(df, &[("V", "2")]), |_| {});
    let r = o.result.unwrap();
    // Stage a's RUN sees V; stage b's does not, so it stays cached.
    assert_eq!(
        o.steps["RUN [\"env\",\"/a\"]"],
        "miss: environment changed: V"
    );
    assert_eq!(o.steps["RUN [\"env\",\"/b\"]"], "cached");
    assert!(image_file(&e, &r, "/a").unwrap().contains("V=2\n"));
    assert!(!image_file(&e, &r, "/b").unwrap().contains("V="));
    // The build's epoch reaches RUN steps (and so their keys).
    assert!(image_file(&e, &r, "/a")
        .unwrap()
        .contains("SOURCE_DATE_EPOCH="));
}

#[test]
fn identical_vertices_run_once_and_a_shared_stage_is_built_once() {
    let e = env();
    // Two stages start with the same base and the same first RUN; a third is read by both.
    let df = "FROM scratch AS shared\nRUN [\"write\", \"/s\", \"shared\"]\n\
              FROM scratch AS one\nRUN [\"write\", \"/common\", \"c\"]\nCOPY --from=shared /s /s\nRUN [\"write\", \"/one\", \"1\"]\n\
              FROM scratch AS two\nRUN [\"write\", \"/common\", \"c\"]\nCOPY --from=shared /s /s\nRUN [\"write\", \"/two\", \"2\"]\n\
              FROM scratch\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n";
    let g = graph(df, &[]);
    // In the graph: one vertex for the common RUN, with both stages as origins.
    let common: Vec<_> = g
        .vertices
        .iter()
        .filter(|v| matches!(&v.op, whittle_graph::Op::Exec(x) if x.args[1] == "/common"))
        .collect();
    assert_eq!(common.len(), 1);
    assert_eq!(common[0].origins.len(), 2);
    let o = solve(&e, &g, |_| {});
    let r = o.result.unwrap();
    let count = |path: &str| o.commands.iter().filter(|c| c[1] == path).count();
    assert_eq!(count("/common"), 1, "{:?}", o.commands);
    assert_eq!(count("/s"), 1, "{:?}", o.commands);
    assert_eq!((count("/one"), count("/two")), (1, 1));
    assert_eq!(image_file(&e, &r, "/two").as_deref(), Some("2"));
}

#[test]
fn independent_vertices_run_at_the_same_time() {
    let e = env();
    let df = "FROM scratch AS a\nRUN [\"sleep\", \"400\", \"/a\"]\n\
              FROM scratch AS b\nRUN [\"sleep\", \"400\", \"/b\"]\n\
              FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let o = solve(&e, &graph(df, &[]), |_| {});
    o.result.unwrap();
    assert_eq!(o.runs.len(), 2);
    let (a, b) = (&o.runs[0], &o.runs[1]);
    assert!(a.1 < b.2 && b.1 < a.2, "the two sleeps did not overlap");
    // With one job they take turns.
    let e = env();
    let o = solve(&e, &graph(df, &[]), |opts| opts.jobs = 1);
    o.result.unwrap();
    let (a, b) = (&o.runs[0], &o.runs[1]);
    assert!(a.2 <= b.1 || b.2 <= a.1, "--jobs 1 ran two steps at once");
}

#[test]
fn a_linked_copy_stays_cached_when_the_stage_below_changes() {
    let e = env();
    std::fs::write(e.context.join("app"), "binary\n").unwrap();
    let build_with = |base: &str| {
        let df =
            format!("FROM scratch\nRUN [\"write\", \"/base\", \"{base}\"]\nCOPY --link app /app\n");
        solve(&e, &graph(&df, &[]), |_| {})
    };
    let first = build_with("v1").result.unwrap();
    let o = build_with("v2");
    let r = o.result.unwrap();
    assert_eq!(o.steps["COPY --link app /app"], "cached");
    assert_eq!(image_file(&e, &r, "/app").as_deref(), Some("binary\n"));
    assert_eq!(image_file(&e, &r, "/base").as_deref(), Some("v2"));
    // The same layer, stacked on another base.
    let layers = |r: &whittle_solver::BuildResult| {
        let (_, cfg) = e
            .store
            .manifest_and_config(r.image.as_ref().unwrap())
            .unwrap();
        cfg["rootfs"]["diff_ids"].as_array().unwrap().clone()
    };
    assert_eq!(layers(&first)[1], layers(&r)[1]);
    assert_ne!(layers(&first)[0], layers(&r)[0]);
}

#[test]
fn a_failed_step_reports_its_line_and_output() {
    let e = env();
    let o = solve(
        &e,
        &graph(
            "FROM scratch\nRUN [\"write\", \"/x\", \"x\"]\nRUN [\"fail\"]\n",
            &[],
        ),
        |_| {},
    );
    match o.result {
        Err(BuildError::RunFailed {
            line, code, tail, ..
        }) => {
            assert_eq!((line, code), (3, 3));
            assert_eq!(tail, vec!["it failed".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_are_stable_and_follow_the_definition() {
    // Two stores, two builds: the same Dockerfile and context give the same image.
    let df = "FROM scratch\nCOPY f /f\nRUN [\"write\", \"/o\", \"x\"]\nCMD [\"/o\"]\n";
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let e = env();
            std::fs::write(e.context.join("f"), "f\n").unwrap();
            let r = solve(&e, &graph(df, &[]), |_| {}).result.unwrap();
            r.image.as_ref().unwrap().manifest.to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    // The key of a vertex changes with its definition digest, its inputs' keys and content.
    let k = whittle_solver::cache_key("sha256:a", &["k"], &[b"c"]);
    assert_ne!(k, whittle_solver::cache_key("sha256:b", &["k"], &[b"c"]));
}

#[test]
fn the_builds_run_settings_are_part_of_run_keys() {
    let e = env();
    let g = graph("FROM scratch\nRUN [\"write\", \"/o\", \"x\"]\nRUN --network=none [\"write\", \"/p\", \"y\"]\n", &[]);
    solve(&e, &g, |o| o.network = whittle_runtime::Network::None)
        .result
        .unwrap();
    // `--network host` for the whole build: the default-network RUN is another step; the one
    // that chose its network itself is not.
    let o = solve(&e, &g, |o| o.network = whittle_runtime::Network::Host);
    o.result.unwrap();
    assert_eq!(
        o.steps["RUN [\"write\",\"/o\",\"x\"]"],
        "miss: the build's RUN settings (--network, --ulimit, ...) changed"
    );
    assert_eq!(o.commands.len(), 2, "{:?}", o.commands);
    let o = solve(&e, &g, |o| o.network = whittle_runtime::Network::Host);
    assert_eq!(o.result.unwrap().steps_cached, 2);
}

#[test]
fn a_graph_made_without_its_base_images_config_is_refused() {
    let e = env();
    let g = graph("FROM example/app:1\nRUN [\"env\", \"/env\"]\n", &[]);
    assert_eq!(g.unresolved_images, vec!["example/app:1".to_string()]);
    match solve(&e, &g, |_| {}).result {
        Err(BuildError::Unresolved(images)) => {
            assert_eq!(images, vec!["example/app:1".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

/// Recorded from the lab's BuildKit (docker 20.10.24): `FROM lab/busybox:1 AS b`, `ARG V`,
/// `RUN mkdir /out && echo same > /out/lib1.so && echo "$V" > /out/build.log`, then a stage
/// with `COPY --from=b /out/*.so /lib/` and `RUN echo after > /after`. Building with V=1 then
/// V=2, the builder's RUN runs again, and the COPY and the RUN after it are both CACHED.
#[test]
fn a_wildcard_copy_from_a_stage_is_keyed_by_what_it_selects() {
    let e = env();
    // Stage a writes two .so files and a log; the log changes with V, the libraries do not.
    let df = "FROM scratch AS a\nARG V\nRUN [\"write\", \"/out/lib1.so\", \"one\"]\n\
              RUN [\"write\", \"/out/lib2.so\", \"two\"]\nRUN [\"env\", \"/out/build.log\"]\n\
              FROM scratch\nCOPY --from=a /out/*.so /lib/\nRUN [\"write\", \"/after\", \"x\"]\n";
    solve(&e, &graph(df, &[("V", "1")]), |_| {}).result.unwrap();
    let o = solve(&e, &graph(df, &[("V", "2")]), |_| {});
    let r = o.result.unwrap();
    assert_eq!(
        o.steps["RUN [\"env\",\"/out/build.log\"]"],
        "miss: environment changed: V"
    );
    assert_eq!(
        o.steps["COPY --from=a /out/*.so /lib/"], "cached",
        "the files the wildcard selects did not change: {:?}",
        o.steps
    );
    assert_eq!(o.steps["RUN [\"write\",\"/after\",\"x\"]"], "cached");
    assert_eq!(image_file(&e, &r, "/lib/lib1.so").unwrap(), "one");
    assert!(image_file(&e, &r, "/lib/build.log").is_none());
    // A selected file that changes misses.
    let df2 = df.replace("\"two\"", "\"2\"");
    let o = solve(&e, &graph(&df2, &[("V", "2")]), |_| {});
    let r = o.result.unwrap();
    assert!(
        o.steps["COPY --from=a /out/*.so /lib/"].starts_with("miss"),
        "{:?}",
        o.steps
    );
    assert_eq!(image_file(&e, &r, "/lib/lib2.so").unwrap(), "2");
}

#[test]
fn the_context_and_a_snapshot_digest_the_same_files_the_same() {
    use whittle_context::{Index, Matcher, MemoryStatCache};
    use whittle_solver::merged::Merged;
    if !rustix::process::geteuid().is_root() {
        return; // the context's files are digested as root-owned, as COPY makes them
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("src/sub")).unwrap();
    std::fs::write(d.join("src/a.txt"), "a").unwrap();
    std::fs::write(d.join("src/sub/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("src/link")).unwrap();
    let idx = Index::scan(d, &Matcher::default(), &mut MemoryStatCache::default(), 1).unwrap();
    let merged = Merged::new(vec![d.to_path_buf()]);
    for p in ["src", "src/a.txt", "src/sub"] {
        assert_eq!(
            Some(idx.get(p).unwrap().digest),
            merged.tree_digest(p).unwrap(),
            "{p}"
        );
    }
}

#[test]
fn a_large_copy_that_misses_names_the_files_that_changed() {
    let e = env();
    // More files than a step record lists one by one.
    for i in 0..2100 {
        let d = e.context.join(format!("pkg{:02}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i:04}.txt")), format!("{i}\n")).unwrap();
    }
    let g = graph("FROM scratch\nCOPY . /data/\n", &[]);
    solve(&e, &g, |_| {}).result.unwrap();
    std::fs::write(e.context.join("pkg07/f0742.txt"), "edited\n").unwrap();
    let o = solve(&e, &g, |_| {});
    o.result.unwrap();
    assert_eq!(
        o.steps["COPY . /data/"],
        "miss: the build context changed: pkg07/f0742.txt"
    );
    // Several: five are named, then how many more.
    for i in [1, 2, 3, 4, 5, 6, 7] {
        std::fs::write(e.context.join(format!("pkg00/f000{i}.txt")), "x\n").unwrap();
    }
    std::fs::remove_file(e.context.join("pkg20/f2099.txt")).unwrap();
    let o = solve(&e, &g, |_| {});
    o.result.unwrap();
    assert_eq!(
        o.steps["COPY . /data/"],
        "miss: the build context changed: pkg00/f0001.txt, pkg00/f0002.txt, pkg00/f0003.txt, \
         pkg00/f0004.txt, pkg00/f0005.txt and 3 more"
    );
}

#[test]
fn a_step_that_ran_reports_where_its_time_went() {
    let e = env();
    std::fs::write(e.context.join("f"), "x").unwrap();
    let g = graph("FROM scratch\nCOPY f /f\n", &[]);
    let rec = Recorder::default();
    let opts = BuildOptions::new(e.context.clone());
    let cancel = CancelToken::new().unwrap();
    build(&g, &opts, &e.store, &Fake::default(), &rec, &cancel).unwrap();
    let phases: Vec<Vec<&str>> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|ev| match ev {
            Event::StepDone { phases, .. } => Some(phases.iter().map(|(n, _)| *n).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(phases, [["fill", "diff", "commit"]]);
}

/// An edited COPY's layer takes the unchanged gzip blocks of the last one (whittle_layer's
/// `blocks`): nothing but the blocks around the edit is compressed again, and the image is the
/// one a fresh store builds.
#[test]
fn an_edited_copy_takes_the_compressed_blocks_of_its_last_layer() {
    let e = env();
    // 4 MB in 400 files: several gzip blocks.
    let mut x: u64 = 1;
    for i in 0..400 {
        let d = e.context.join(format!("d{}", i / 40));
        std::fs::create_dir_all(&d).unwrap();
        let data: Vec<u8> = (0..10_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        std::fs::write(d.join(format!("f{i:03}")), data).unwrap();
    }
    let g = graph("FROM scratch\nCOPY . /data/\n", &[]);
    let first = solve(&e, &g, |_| {}).result.unwrap();
    assert_eq!(first.layer_bytes_reused, 0);
    let size = first.image.as_ref().unwrap().size;

    std::fs::write(e.context.join("d9/f399"), "edited").unwrap();
    let second = solve(&e, &g, |_| {}).result.unwrap();
    // All but the last block or two.
    assert!(
        second.layer_bytes_reused > 2_000_000,
        "{} of ~4 MB reused",
        second.layer_bytes_reused
    );
    assert!(second.image.as_ref().unwrap().size < size);

    let fresh = env();
    std::fs::remove_dir(&fresh.context).unwrap();
    let ok = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(&e.context)
        .arg(&fresh.context)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let third = solve(&fresh, &g, |_| {}).result.unwrap();
    assert_eq!(third.layer_bytes_reused, 0);
    assert_eq!(
        second.image.as_ref().unwrap().manifest,
        third.image.as_ref().unwrap().manifest
    );
}

#[test]
fn an_edited_copy_links_the_unchanged_files_of_its_last_snapshot() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let e = env();
    let c = &e.context;
    std::fs::create_dir_all(c.join("sub")).unwrap();
    for (p, v) in [
        ("a.txt", "a"),
        ("sub/b.txt", "b"),
        ("sub/c.txt", "c"),
        ("d.txt", "d"),
    ] {
        std::fs::write(c.join(p), v).unwrap();
    }
    let g = graph("FROM scratch\nCOPY . /data/\n", &[]);
    let first = solve(&e, &g, |_| {}).result.unwrap();
    let at = |r: &whittle_solver::BuildResult, p: &str| r.rootfs.locate(p).unwrap();
    let old: HashMap<&str, (PathBuf, std::fs::Metadata)> =
        ["a.txt", "sub/b.txt", "sub/c.txt", "d.txt"]
            .into_iter()
            .map(|p| (p, at(&first, &format!("data/{p}"))))
            .collect();
    // An edit, a mode change (a new digest) and a touch (same digest, another mtime).
    std::fs::write(c.join("sub/b.txt"), "edited").unwrap();
    std::fs::set_permissions(c.join("sub/c.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(c.join("d.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let o = solve(&e, &g, |_| {});
    assert!(
        o.steps["COPY . /data/"].starts_with("miss"),
        "{:?}",
        o.steps
    );
    let second = o.result.unwrap();
    let new = |p: &str| at(&second, &format!("data/{p}")).1;
    assert_eq!(
        new("a.txt").ino(),
        old["a.txt"].1.ino(),
        "unchanged: linked"
    );
    assert_ne!(new("sub/b.txt").ino(), old["sub/b.txt"].1.ino());
    assert_ne!(new("sub/c.txt").ino(), old["sub/c.txt"].1.ino());
    assert_eq!(new("sub/c.txt").mode() & 0o7777, 0o600);
    assert_ne!(new("d.txt").ino(), old["d.txt"].1.ino(), "touched: copied");
    assert_eq!(
        new("d.txt").modified().unwrap(),
        later,
        "the snapshot keeps the new mtime"
    );
    // The old snapshot is untouched, and the new image holds the edit.
    assert_eq!(std::fs::read_to_string(&old["sub/b.txt"].0).unwrap(), "b");
    assert_eq!(
        image_file(&e, &second, "/data/sub/b.txt").as_deref(),
        Some("edited")
    );
    // Linking changes nothing in the image: a fresh store builds the same one.
    let fresh = env();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let ok = std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    std::fs::remove_dir(&fresh.context).unwrap();
    copy(&e.context, &fresh.context);
    let third = solve(&fresh, &g, |_| {}).result.unwrap();
    assert_eq!(
        second.image.as_ref().unwrap().manifest,
        third.image.as_ref().unwrap().manifest
    );
}

#[test]
fn by_default_every_ready_step_runs_at_once_as_in_buildkit() {
    let e = env();
    let df = "FROM scratch AS a\nRUN [\"sleep\", \"300\", \"/a\"]\n\
              FROM scratch AS b\nRUN [\"sleep\", \"300\", \"/b\"]\n\
              FROM scratch AS c\nRUN [\"sleep\", \"300\", \"/c\"]\n\
              FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n";
    // The defaults, whatever the number of cores (a limit of the core count ran the third
    // CPU-bound stage alone, on one core, after the other two).
    let o = solve(&e, &graph(df, &[]), |opts| {
        opts.jobs = BuildOptions::new(PathBuf::new()).jobs
    });
    o.result.unwrap();
    assert_eq!(o.runs.len(), 3);
    let last_start = o.runs.iter().map(|r| r.1).max().unwrap();
    let first_end = o.runs.iter().map(|r| r.2).min().unwrap();
    assert!(
        last_start < first_end,
        "the three steps did not all run at once"
    );
}

#[test]
fn another_compression_level_gives_another_blob_not_the_cached_one() {
    let e = env();
    std::fs::write(e.context.join("a.txt"), "compress me ".repeat(4000)).unwrap();
    let g = graph("FROM scratch\nCOPY a.txt /\n", &[]);
    let level = |l| {
        move |o: &mut BuildOptions| o.compression = whittle_layer::Compression::Gzip { level: l }
    };
    let fast = solve(&e, &g, level(1)).result.unwrap();
    let best = solve(&e, &g, level(9)).result.unwrap();
    let layer = |r: &whittle_solver::BuildResult| {
        e.store.manifest(r.image.as_ref().unwrap()).unwrap().layers[0].clone()
    };
    assert_ne!(layer(&fast).digest, layer(&best).digest);
    assert!(layer(&best).size < layer(&fast).size);
}
