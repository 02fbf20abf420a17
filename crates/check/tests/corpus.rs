//! Every Dockerfile of the frontend corpus (`crates/dockerfile/tests/corpus/*.Dockerfile`) and
//! of `examples/` through the checker, against the findings recorded in
//! `tests/corpus-expected.txt` (`== NAME`, then `LINE RULE` per finding, or `error LINE` when the
//! file does not parse). No context and no images: the checks that need them stay silent, so
//! the results do not depend on the machine. Every file also goes through `--fix`.
//!
//! `WHITTLE_BLESS=1` rewrites the expectation file (review the diff before committing).

use std::path::{Path, PathBuf};
use whittle_check::Input;
use whittle_dockerfile::Platform;

fn files() -> Vec<(String, PathBuf)> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let corpus = here.join("../dockerfile/tests/corpus");
    for e in std::fs::read_dir(&corpus).expect("corpus dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "Dockerfile") {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            out.push((name, p));
        }
    }
    for e in std::fs::read_dir(here.join("../../examples")).expect("examples dir") {
        let p = e.expect("entry").path().join("Dockerfile");
        if p.is_file() {
            let dir = p
                .parent()
                .expect("parent")
                .file_name()
                .expect("ok")
                .to_string_lossy()
                .into_owned();
            out.push((format!("examples/{dir}/Dockerfile"), p));
        }
    }
    out.sort();
    out
}

fn input(text: &str) -> Input<'_> {
    let mut i = Input::new("Dockerfile", text);
    i.target_platform = Platform::parse("linux/amd64").expect("platform");
    i
}

#[test]
fn corpus_and_examples_find_what_was_recorded() {
    let files = files();
    assert!(files.len() >= 79 + 8, "only {} files", files.len());
    let mut got = String::new();
    for (name, path) in &files {
        let text = std::fs::read_to_string(path).expect("read");
        got.push_str(&format!("== {name}\n"));
        match whittle_check::check(&input(&text)) {
            Ok(report) => {
                for f in &report.findings {
                    got.push_str(&format!("{} {}\n", f.span.line, f.rule));
                }
                if let Some(e) = &report.error {
                    got.push_str(&format!("plan-error {}\n", e.pos.line));
                }
            }
            Err(whittle_check::CheckError::Dockerfile(e)) => {
                got.push_str(&format!("error {}\n", e.pos.line));
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-expected.txt");
    if std::env::var_os("WHITTLE_BLESS").is_some() {
        std::fs::write(&exp, &got).expect("write");
        return;
    }
    let want = std::fs::read_to_string(&exp).expect("tests/corpus-expected.txt");
    if got != want {
        let diff = similar::TextDiff::from_lines(want.as_str(), got.as_str())
            .unified_diff()
            .header("expected", "got")
            .to_string();
        panic!("findings differ from tests/corpus-expected.txt:\n{diff}");
    }
}

#[test]
fn fix_round_trips_on_the_corpus() {
    for (name, path) in files() {
        let text = std::fs::read_to_string(&path).expect("read");
        let Ok(report) = whittle_check::check(&input(&text)) else {
            continue;
        };
        let fixed = whittle_check::fix::apply(&text, &report.findings);
        whittle_check::fix::verify(&input(&text), &fixed.text, &report.findings)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = whittle_check::check(&input(&fixed.text))
            .unwrap_or_else(|e| panic!("{name}: fixed text: {e}"));
        let before: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
        for f in &again.findings {
            assert!(
                before.contains(&f.rule),
                "{name}: the fix raised {}",
                f.rule
            );
        }
    }
}
