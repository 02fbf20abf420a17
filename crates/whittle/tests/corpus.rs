//! Golden tests: every Dockerfile of the frontend corpus through `whittle plan`.
//!
//! Each case `NN-name.Dockerfile` has `NN-name.expect.md` (what BuildKit does, written by hand;
//! its `args:` line gives the command-line arguments) and `NN-name.golden` (whittle's exact
//! output: exit code, stdout, stderr). Run with `WHITTLE_BLESS=1` to rewrite the goldens after
//! checking the difference against the `.expect.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dockerfile/tests/corpus")
}

/// The `args:` line of the expectation file, split like a shell would (simple quotes only).
fn case_args(expect: &str) -> Vec<String> {
    let Some(line) = expect
        .lines()
        .find_map(|l| l.trim().strip_prefix("args:").map(str::trim))
    else {
        return Vec::new();
    };
    let line = line.trim_matches('`');
    if line.starts_with('(') {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn run_case(dir: &Path, file: &str, args: &[String]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whittle"));
    // No store: base images are unknown, whatever this machine has in /var/lib/whittle.
    let no_store = std::env::temp_dir().join("whittle-corpus-no-store-here");
    cmd.current_dir(dir).arg("--root").arg(&no_store);
    cmd.arg("plan").arg("-f").arg(file);
    if !args.iter().any(|a| a.starts_with("--platform")) {
        cmd.arg("--platform=linux/amd64");
    }
    cmd.args(args);
    // Build args given without a value come from the environment: make it predictable.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.env("WHITTLE_TEST_FROM_ENV", "from-environment");
    let out = cmd.output().expect("run whittle");
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn corpus_matches_goldens() {
    let dir = corpus_dir();
    let bless = std::env::var_os("WHITTLE_BLESS").is_some();
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".Dockerfile"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "the corpus should have at least 40 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for file in &cases {
        let stem = file.trim_end_matches(".Dockerfile");
        let expect = std::fs::read_to_string(dir.join(format!("{stem}.expect.md")))
            .unwrap_or_else(|_| panic!("{stem}.expect.md is missing"));
        let got = run_case(&dir, file, &case_args(&expect));
        let golden_path = dir.join(format!("{stem}.golden"));
        if bless {
            std::fs::write(&golden_path, &got).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden_path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{stem}: output differs from the golden\n--- want\n{want}\n--- got\n{got}"
            )),
            Err(_) => failures.push(format!("{stem}: no golden file (run with WHITTLE_BLESS=1)")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn args_line_parsing() {
    assert_eq!(
        case_args("x\nargs: `--target builder --build-arg V=\"a b\"`\n"),
        vec!["--target", "builder", "--build-arg", "V=a b"]
    );
    assert!(case_args("args: (none)").is_empty());
    assert!(case_args("nothing").is_empty());
}
