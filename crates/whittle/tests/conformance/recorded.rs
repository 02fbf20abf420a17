//! The recorded conformance suite: every case under `tests/conformance/cases/` is built with
//! whittle and compared with what BuildKit gave for it (or, where the lab's BuildKit is too
//! old, with what the Dockerfile reference says), as recorded in the case's `expected/`.
//!
//! A case directory holds:
//! - `Dockerfile`, and `context/` (absent: an empty context);
//! - `setup.sh` (optional): run with `sh` in a copy of the context, for what git cannot hold
//!   (modes, empty directories, hard links);
//! - `rebuild.sh` (optional): run in the context after a first build; the case's result is
//!   a second build on the same cache;
//! - `args` (optional): more words for `build` (`--build-arg A=1 --target x`), split on
//!   whitespace, `#` lines skipped; relative paths in them are relative to the case directory;
//! - `run` (optional): the image is run (`docker run` / `whittle run`, no network) with these
//!   arguments, one a line (an empty file runs the image's own command);
//! - `expected/`: `config.json` and `tree.txt` (see `listing.rs`) and `run.txt` (standard
//!   output and `exit: N`), or `error` when the build fails (`status: N`, then the key
//!   sentence of BuildKit's error); `error-match` (optional, hand-written): words whittle's
//!   error must contain; `recorded-by`; `known-defect` (optional): the whittle defect that
//!   makes this case differ; the test then requires that it still differs; `deliberate`
//!   (optional): whittle refuses this build on purpose (a section of docs/conformance.md, and
//!   `whittle-error: <words of whittle's error>`), BuildKit's record stays beside it.
//!
//! `scripts/conformance-record.sh` records `expected/` from the lab BuildKit through the two
//! `#[ignore]`d tests at the end, which use the same listing code.

use crate::common::{seed_busybox, whittle};
use crate::listing::{list_docker_archive, Listing};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The base image every case builds on, the same bytes on both sides.
pub const BASE: &str = "test/busybox:1";

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/cases")
}

/// The cases to run: all, or those whose name contains one of the comma-separated words of
/// `WHITTLE_CONFORMANCE_CASES`.
fn case_names() -> Vec<String> {
    let filter: Vec<String> = std::env::var("WHITTLE_CONFORMANCE_CASES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut names: Vec<String> = fs::read_dir(cases_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Dockerfile").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    names.sort();
    names
}

/// Copies a case's context as git would check it out with umask 022 (directories 0755,
/// files 0644, or 0755 when executable; symlinks as they are), then runs its `setup.sh`.
/// The recording script does the same (`cp -a`, `chmod -R u=rwX,go=rX`).
fn prepare_context(case: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    let src = case.join("context");
    if src.is_dir() {
        copy_tree(&src, dest);
    }
    let setup = case.join("setup.sh");
    if setup.is_file() {
        run_script(&setup, dest);
    }
}

fn run_script(script: &Path, dir: &Path) {
    let st = Command::new("sh")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{} failed", script.display());
}

fn copy_tree(src: &Path, dest: &Path) {
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let from = e.path();
        let to = dest.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else if ft.is_dir() {
            fs::create_dir(&to).unwrap();
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).unwrap();
            let x = fs::metadata(&from).unwrap().permissions().mode() & 0o111 != 0;
            let mode = if x { 0o755 } else { 0o644 };
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// The words of a case's `args` file, with `@CASE@` replaced by the case directory.
fn build_words(case: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(case.join("args")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|w| w.replace("@CASE@", &case.to_string_lossy()))
        .collect()
}

/// The case pins its timestamps: `--build-arg SOURCE_DATE_EPOCH=...`.
fn pins_times(case: &Path) -> bool {
    build_words(case)
        .iter()
        .any(|w| w.starts_with("SOURCE_DATE_EPOCH="))
}

fn run_words(case: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(case.join("run")).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// What a build of a case gave, in the form `expected/` records it.
#[derive(Default, Debug)]
struct Outcome {
    files: BTreeMap<&'static str, String>,
}

/// `expected/error`: the exit status and the key sentence of a failed build's log, the last
/// line saying `error` (whittle's own), else its last line (docker's).
fn error_text(who: &str, status: i32, log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let key = lines
        .iter()
        .rfind(|l| l.starts_with("error"))
        .or(lines.last())
        .unwrap_or(&"");
    format!("status: {status}\n{who}: {}\n", hide_rootfs(key))
}

/// docker's errors name the step's rootfs on the host (`/var/lib/docker/overlay2/<id>/merged`),
/// a new path each build: written as `<rootfs>` so a re-recording gives the same file.
fn hide_rootfs(line: &str) -> String {
    line.split(' ')
        .map(|w| match w.find("/merged") {
            Some(i) if w.starts_with('/') => format!("<rootfs>{}", &w[i + "/merged".len()..]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_text(stdout: &str, status: i32) -> String {
    let mut s = stdout.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&format!("exit: {status}\n"));
    s
}

/// Lists a saved image into `config.json` and `tree.txt`.
fn listing_files(out: &mut Outcome, l: Listing) {
    out.files.insert("config.json", l.config);
    out.files.insert("tree.txt", l.tree);
}

/// The shared state of one test run: a store holding the base image, and its diff ids.
struct Lab {
    tmp: tempfile::TempDir,
    root: PathBuf,
    base_diff_ids: Vec<String>,
}

fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    seed_base(&root);
    let base_tar = tmp.path().join("base.tar");
    let r = whittle(&root, &["save", "-o", base_tar.to_str().unwrap(), BASE]);
    assert!(r.ok, "{}", r.stderr);
    let base_diff_ids = list_docker_archive(&base_tar, &[], false).unwrap().diff_ids;
    Lab {
        tmp,
        root,
        base_diff_ids,
    }
}

/// The base image, as `common::env()` makes it.
fn seed_base(root: &Path) {
    seed_busybox(
        root,
        BASE,
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        }),
    );
}

fn whittle_cmd(root: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("whittle"));
    c.env_remove("WHITTLE_ROOT").arg("--root").arg(root);
    c
}

/// Builds one case with whittle and lists the result as `expected/` would.
fn whittle_outcome(lab: &Lab, name: &str) -> Outcome {
    let case = cases_dir().join(name);
    let work = lab.tmp.path().join("work").join(name);
    let ctx = work.join("context");
    prepare_context(&case, &ctx);
    let tag = format!("conformance/{name}:1");
    // `--ssh default` forwards $SSH_AUTH_SOCK: any listening socket does for the cases.
    let agent = work.join("agent.sock");
    let _listener = build_words(&case)
        .iter()
        .any(|w| w == "--ssh")
        .then(|| std::os::unix::net::UnixListener::bind(&agent).unwrap());
    let build = || {
        whittle_cmd(&lab.root)
            .env("SSH_AUTH_SOCK", &agent)
            .current_dir(&case)
            .args([
                "build",
                "--progress=plain",
                "--network=none",
                "--pull=never",
            ])
            .arg("-f")
            .arg(case.join("Dockerfile"))
            .args(["-t", &tag])
            .args(build_words(&case))
            .arg(&ctx)
            .output()
            .unwrap()
    };
    let mut out = Outcome::default();
    let mut b = build();
    if b.status.success() && case.join("rebuild.sh").is_file() {
        run_script(&case.join("rebuild.sh"), &ctx);
        b = build();
    }
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&b.stderr)
    );
    out.files.insert("whittle.log", log.clone());
    if !b.status.success() {
        out.files.insert(
            "error",
            error_text("whittle", b.status.code().unwrap_or(-1), &log),
        );
        return out;
    }
    let archive = work.join("image.tar");
    let s = whittle(&lab.root, &["save", "-o", archive.to_str().unwrap(), &tag]);
    assert!(s.ok, "whittle save {tag}: {}", s.stderr);
    listing_files(
        &mut out,
        list_docker_archive(&archive, &lab.base_diff_ids, pins_times(&case)).unwrap(),
    );
    if let Some(words) = run_words(&case) {
        let r = whittle_cmd(&lab.root)
            .args(["run", "--rm", "--network=none", &tag])
            .args(&words)
            .output()
            .unwrap();
        out.files.insert(
            "run.txt",
            run_text(
                &String::from_utf8_lossy(&r.stdout),
                r.status.code().unwrap_or(-1),
            ),
        );
    }
    out
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| format!("  | {l}\n")).collect()
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

fn diff(what: &str, expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(2)
        .header(&format!("expected/{what}"), &format!("whittle's {what}"))
        .to_string()
}

/// The differences between a case's `expected/` and whittle's outcome, empty when none.
fn compare(name: &str, got: &Outcome) -> Vec<String> {
    let exp = cases_dir().join(name).join("expected");
    let mut d = Vec::new();
    // A deliberate difference listed in docs/conformance.md: whittle refuses what BuildKit
    // builds, with the sentence after `whittle-error:`.
    if let Some(text) = read(&exp.join("deliberate")) {
        let want = text
            .lines()
            .find_map(|l| l.strip_prefix("whittle-error:"))
            .map(str::trim)
            .unwrap_or_default();
        let log = &got.files["whittle.log"];
        if !got.files.contains_key("error") || want.is_empty() || !log.contains(want) {
            d.push(format!(
                "expected/deliberate says whittle refuses this build with {want:?}; it did not \
                 (if whittle now does what BuildKit does, remove expected/deliberate and its \
                 entry in docs/conformance.md):\n{}",
                tail(log, 15)
            ));
        }
        return d;
    }
    match (read(&exp.join("error")), got.files.get("error")) {
        (Some(e), None) => d.push(format!(
            "BuildKit fails this build, whittle does not. expected/error:\n{e}"
        )),
        (None, Some(g)) => d.push(format!(
            "whittle fails a build BuildKit completes:\n{g}{}",
            tail(&got.files["whittle.log"], 15)
        )),
        (Some(_), Some(_)) => {
            let log = &got.files["whittle.log"];
            if let Some(m) = read(&exp.join("error-match")) {
                for want in m.lines().filter(|l| !l.trim().is_empty()) {
                    if !log.contains(want.trim()) {
                        d.push(format!(
                            "whittle's error does not say {:?} (expected/error-match):\n{}",
                            want.trim(),
                            tail(log, 15)
                        ));
                    }
                }
            }
        }
        (None, None) => {
            for f in ["config.json", "tree.txt", "run.txt"] {
                let e = read(&exp.join(f));
                let g = got.files.get(f);
                match (e, g) {
                    (Some(e), Some(g)) if e != *g => d.push(diff(f, &e, g)),
                    (Some(_), None) => d.push(format!("whittle gave no {f}")),
                    (None, Some(_)) => d.push(format!("expected/{f} is missing: record the case")),
                    _ => {}
                }
            }
        }
    }
    d
}

/// Every case, built by whittle and compared with its record. All cases run; the test then
/// fails naming each one that differs (or that no longer differs although it names a known
/// defect).
#[test]
fn recorded_cases_match() {
    if !crate::root_or_skip("building the recorded conformance cases") {
        return;
    }
    let names = case_names();
    assert!(
        !names.is_empty(),
        "no cases under {}",
        cases_dir().display()
    );
    let lab = lab();
    let keep = std::env::var_os("WHITTLE_CONFORMANCE_ACTUAL").map(PathBuf::from);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(name) = names.get(i) else { break };
                let got = whittle_outcome(&lab, name);
                if let Some(dir) = &keep {
                    let d = dir.join(name);
                    fs::create_dir_all(&d).unwrap();
                    for (f, text) in &got.files {
                        fs::write(d.join(f), text).unwrap();
                    }
                }
                let d = compare(name, &got);
                results.lock().unwrap().push((name.clone(), d));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort();
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for (name, d) in &results {
        let defect = read(&cases_dir().join(name).join("expected/known-defect"));
        match (defect, d.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "== case {name} differs from expected/:\n{}",
                d.join("\n")
            )),
            // Listed with their differences, so a new difference hiding behind a known
            // defect can be read in the test's output.
            (Some(k), false) => known.push(format!(
                "{name}: {}\n{}",
                k.lines().next().unwrap_or(""),
                d.join("\n")
            )),
            (Some(k), true) => failures.push(format!(
                "== case {name} now matches expected/: remove known-defect from case {name} \
                 (it said: {})",
                k.trim()
            )),
        }
    }
    eprintln!(
        "{} cases, {} differ by a known defect:\n\n{}",
        results.len(),
        known.len(),
        known.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

// ---- recording (scripts/conformance-record.sh) ----

/// The directory the recording script shares with the two tests below.
fn record_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("WHITTLE_CONFORMANCE_RECORD")
            .expect("run by scripts/conformance-record.sh (WHITTLE_CONFORMANCE_RECORD)"),
    )
}

/// Step 1 of recording: the base image as a docker archive, `base.tar`, for `docker load`.
#[test]
#[ignore = "run by scripts/conformance-record.sh"]
fn record_base_image() {
    let dir = record_dir();
    let tmp = tempfile::tempdir().unwrap();
    seed_base(tmp.path());
    let out = dir.join("base.tar");
    let r = whittle(tmp.path(), &["save", "-o", out.to_str().unwrap(), BASE]);
    assert!(r.ok, "{}", r.stderr);
}

/// Step 2 of recording: what the script collected from docker for each case
/// (`<case>/image.tar` or `<case>/build.status` + `build.log`, `<case>/run.out` +
/// `run.status`) into the case's `expected/`, listed by the same code the test uses.
#[test]
#[ignore = "run by scripts/conformance-record.sh"]
fn record_expectations() {
    let dir = record_dir();
    let recorded_by = fs::read_to_string(dir.join("recorded-by")).unwrap();
    let base = list_docker_archive(&dir.join("base.tar"), &[], false)
        .unwrap()
        .diff_ids;
    for name in case_names() {
        let got = dir.join(&name);
        if !got.is_dir() {
            continue;
        }
        let exp = cases_dir().join(&name).join("expected");
        fs::create_dir_all(&exp).unwrap();
        for f in ["config.json", "tree.txt", "run.txt", "error"] {
            let _ = fs::remove_file(exp.join(f));
        }
        let status: i32 = read(&got.join("build.status"))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut out = Outcome::default();
        if status != 0 {
            let log = read(&got.join("build.log")).unwrap_or_default();
            out.files
                .insert("error", error_text("buildkit", status, &log));
        } else {
            listing_files(
                &mut out,
                list_docker_archive(
                    &got.join("image.tar"),
                    &base,
                    pins_times(&cases_dir().join(&name)),
                )
                .unwrap(),
            );
            if let Some(stdout) = read(&got.join("run.out")) {
                let st: i32 = read(&got.join("run.status"))
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap();
                out.files.insert("run.txt", run_text(&stdout, st));
            }
        }
        for (f, text) in &out.files {
            fs::write(exp.join(f), text).unwrap();
        }
        fs::write(exp.join("recorded-by"), &recorded_by).unwrap();
        eprintln!("recorded {name}");
    }
}
