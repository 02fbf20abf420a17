//! `whittle check` and `whittle build --check` from the command line: output formats, exit
//! codes like `docker build --check`, context facts, `.hadolint.yaml`, `--fix` and `--write`.

use std::path::Path;
use std::process::{Command, Output};

fn whittle(dir: &Path, args: &[&str]) -> Output {
    let no_store = std::env::temp_dir().join("whittle-check-no-store-here");
    Command::new(env!("CARGO_BIN_EXE_whittle"))
        .current_dir(dir)
        .arg("--root")
        .arg(&no_store)
        .args(args)
        .output()
        .expect("run whittle")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BAD: &str = "from alpine:3.20 as Build\nRUN apt-get update && apt-get install -y curl=8.0-1\nMAINTAINER me@example.com\nENV A b\nADD a.txt /a\nCMD run me\n";

fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("Dockerfile"), dockerfile).expect("write");
    std::fs::write(d.path().join("a.txt"), "a").expect("write");
    d
}

#[test]
fn text_output_renders_like_parse_errors_and_exits_1() {
    let d = context(BAD);
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("warning[StageNameCasing]: Stage name 'Build' should be lowercase\n --> ./Dockerfile:1:1\n  |\n1 | from alpine:3.20 as Build\n  | ^^^^^^^^^^^^^^^^^^^^^^^^^\n"),
        "{s}"
    );
    assert!(
        s.contains("https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"),
        "{s}"
    );
    assert!(s.contains("error[AddInsteadOfCopy]"), "{s}");
    assert!(s.ends_with("problems have been found (1 errors)!\n"), "{s}");
}

#[test]
fn a_clean_file_exits_0() {
    let d = context("FROM scratch\nCOPY a.txt /a\nUSER 65534\n");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "Check complete, no warnings found.\n");
}

#[test]
fn build_check_only_checks() {
    let d = context(BAD);
    let out = whittle(d.path(), &["build", "--check", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("warning[MaintainerDeprecated]"));
    // Nothing was built: there is no store at the --root given.
    assert!(!std::env::temp_dir()
        .join("whittle-check-no-store-here")
        .exists());
}

#[test]
fn json_sarif_and_github_formats() {
    let d = context(BAD);
    let out = whittle(d.path(), &["check", "--format", "json", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = &v["findings"][0];
    assert_eq!(first["line"], 1);
    assert!(v["findings"]
        .as_array()
        .expect("array")
        .iter()
        .any(|f| f["rule"] == "AptListsNotDeleted" && f["aliases"][0] == "DL3009"));

    let out = whittle(d.path(), &["check", "--format", "sarif", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sarif");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let results = run["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for r in results {
        let idx = r["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "./Dockerfile");
        assert!(loc["region"]["startLine"].as_u64().expect("line") >= 1);
    }

    let out = whittle(d.path(), &["check", "--format", "github", "."]);
    let s = text(&out.stdout);
    assert!(s.lines().all(|l| l.starts_with("::")), "{s}");
    assert!(s.contains("::warning file=./Dockerfile,line=1,col=1,title=StageNameCasing::Stage name 'Build' should be lowercase%0A"), "{s}");
    assert!(
        s.contains("::error file=./Dockerfile,line=5,col=1,title=AddInsteadOfCopy::"),
        "{s}"
    );
}

#[test]
fn skips_by_flag_directive_and_hadolint_yaml() {
    let d = context("FROM debian:12\nRUN apt-get install -y curl\nCMD run me\n");
    std::fs::write(d.path().join(".hadolint.yaml"), "ignored:\n  - DL3008\n").expect("write");
    let out = whittle(
        d.path(),
        &["check", "--skip", "DL3015,BaseImageNotPinned", "."],
    );
    let s = text(&out.stdout);
    assert!(
        !s.contains("AptUnpinned") && !s.contains("AptInstallRecommends"),
        "{s}"
    );
    assert!(s.contains("JSONArgsRecommended"), "{s}");
    std::fs::write(d.path().join(".hadolint.yaml"), "ignored: [unclosed\n").expect("write");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(".hadolint.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_dockerignore_reports_what_it_would_save() {
    let d = context("FROM scratch\nCOPY a.txt /a\nUSER 65534\n");
    std::fs::create_dir_all(d.path().join(".git/objects")).expect("mkdir");
    std::fs::write(d.path().join(".git/objects/pack"), vec![0u8; 300_000]).expect("write");
    let out = whittle(d.path(), &["check", "."]);
    let s = text(&out.stdout);
    assert!(s.contains("warning[MissingDockerignore]: the context has no .dockerignore, so every build reads .git (293.0 KiB)"), "{s}");
    std::fs::write(d.path().join(".dockerignore"), ".git\n").expect("write");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn fix_prints_a_diff_and_write_applies_it() {
    let d = context(BAD);
    let out = whittle(
        d.path(),
        &["check", "--fix", "--skip", "BaseImageNotPinned", "."],
    );
    let diff = text(&out.stdout);
    assert!(
        diff.starts_with("--- a/Dockerfile\n+++ b/Dockerfile\n"),
        "{diff}"
    );
    assert!(diff.contains("\n-MAINTAINER me@example.com\n"), "{diff}");
    assert!(
        diff.contains("\n+LABEL org.opencontainers.image.authors=\"me@example.com\"\n"),
        "{diff}"
    );
    // The diff alone changes nothing.
    assert_eq!(
        std::fs::read_to_string(d.path().join("Dockerfile")).expect("read"),
        BAD
    );

    let out = whittle(
        d.path(),
        &[
            "check",
            "--fix",
            "--write",
            "--skip",
            "BaseImageNotPinned",
            ".",
        ],
    );
    assert!(
        text(&out.stderr).contains("fixed ./Dockerfile:1: StageNameCasing"),
        "{}",
        text(&out.stderr)
    );
    let fixed = std::fs::read_to_string(d.path().join("Dockerfile")).expect("read");
    assert_eq!(
        fixed,
        "FROM alpine:3.20 AS build\nRUN apt-get update && apt-get install --no-install-recommends -y curl=8.0-1 && rm -rf /var/lib/apt/lists/*\nLABEL org.opencontainers.image.authors=\"me@example.com\"\nENV A=\"b\"\nCOPY a.txt /a\nCMD [\"run\", \"me\"]\n"
    );
    // What is left is not mechanical: nothing, here, once the final stage runs as root is
    // unknown (no store).
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let again = whittle(
        d.path(),
        &["check", "--fix", "--skip", "BaseImageNotPinned", "."],
    );
    assert!(
        text(&again.stderr).contains("nothing to fix"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn parse_errors_use_the_same_renderer() {
    let d = context("FROM scratch\nCOPPY a b\n");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.starts_with("error: unknown instruction: COPPY\n --> ./Dockerfile:2:1\n"),
        "{e}"
    );
}

#[test]
fn check_directive_error_true_makes_buildkit_checks_errors() {
    let d = context("# check=error=true\nFROM scratch\nMAINTAINER me\nUSER 1\n");
    let out = whittle(d.path(), &["check", "."]);
    assert!(
        text(&out.stdout).contains("error[MaintainerDeprecated]"),
        "{}",
        text(&out.stdout)
    );
    let d = context("# check=skip\nFROM scratch\n");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid check directive"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_are_in_every_format() {
    let d = context("FROM scratch\nCOPPY a b\n");
    let out = whittle(d.path(), &["check", "--format", "json", "."]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["buildError"]["line"], 2);
    assert_eq!(v["buildError"]["message"], "unknown instruction: COPPY");
    let out = whittle(d.path(), &["check", "--format", "sarif", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sarif");
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "DockerfileError");
    let out = whittle(d.path(), &["check", "--format", "github", "."]);
    assert!(
        text(&out.stdout)
            .starts_with("::error file=./Dockerfile,line=2,col=1,title=DockerfileError::unknown instruction: COPPY"),
        "{}",
        text(&out.stdout)
    );
    // A file that parses but does not plan is still checked.
    let d = context("FROM scratch AS Dup\nFROM scratch AS dup\n");
    let out = whittle(d.path(), &["check", "."]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("warning[DuplicateStageName]") && s.contains("warning[StageNameCasing]"),
        "{s}"
    );
    assert!(
        s.contains("Check stopped: ./Dockerfile has an error"),
        "{s}"
    );
    assert!(
        text(&out.stderr).contains("duplicate stage name"),
        "{}",
        text(&out.stderr)
    );
}

/// A store with one image: amd64, running as root, with ENV.
fn store_with_image(root: &Path, name: &str, arch: &str, user: &str) -> String {
    let s = whittle_store::Store::open(root).expect("store");
    let cfg = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": { "Env": ["PATH=/usr/bin:/bin", "PYTHON_VERSION=3.12.4"], "User": user },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": []
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).expect("json"), &[])
        .expect("write image");
    s.tag(
        &whittle_oci::Reference::parse(name).expect("name"),
        &img.manifest,
    )
    .expect("tag");
    img.manifest.to_string()
}

#[test]
fn base_images_from_the_store_feed_the_checks_and_the_digest_fix() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("store");
    let digest = store_with_image(&root, "lab/python:3.12", "amd64", "");
    let d = context("FROM lab/python:3.12\nARG V=$PYTHON_VERSION\nCOPY $NOPE /x\n");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_whittle"))
            .current_dir(d.path())
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .expect("run whittle")
    };
    let out = run(&[
        "check",
        "--platform",
        "linux/amd64",
        "--format",
        "json",
        ".",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rules: Vec<(&str, u64)> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().expect("rule"),
                f["line"].as_u64().expect("line"),
            )
        })
        .collect();
    // The image's ENV is known: $PYTHON_VERSION is defined, $NOPE is not.
    assert!(rules.contains(&("UndefinedVar", 3)), "{rules:?}");
    assert!(!rules.contains(&("UndefinedVar", 2)), "{rules:?}");
    // Its User is empty: the final stage runs as root.
    assert!(rules.contains(&("FinalStageRoot", 1)), "{rules:?}");
    assert!(
        !rules.iter().any(|r| r.0 == "InvalidBaseImagePlatform"),
        "{rules:?}"
    );

    let out = run(&["check", "--platform", "linux/arm64", "."]);
    assert!(
        text(&out.stdout).contains("Base image lab/python:3.12 was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&[
        "check",
        "--platform",
        "linux/amd64",
        "--fix",
        "--write",
        ".",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let fixed = std::fs::read_to_string(d.path().join("Dockerfile")).expect("read");
    assert!(
        fixed.starts_with(&format!("FROM lab/python:3.12@{digest}\n")),
        "{fixed}\n{}",
        text(&out.stderr)
    );
}

#[test]
fn list_rules_and_explain() {
    let d = context("FROM scratch\n");
    let out = whittle(d.path(), &["check", "--list-rules"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert_eq!(s.lines().count(), whittle_check::RULES.len(), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("AptUnpinned") && l.ends_with("(DL3008)")),
        "{s}"
    );
    let out = whittle(d.path(), &["check", "--explain", "dl3025"]);
    let s = text(&out.stdout);
    assert!(
        s.starts_with("JSONArgsRecommended (BuildKit, warning)\n"),
        "{s}"
    );
    assert!(
        s.contains("https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"),
        "{s}"
    );
    let out = whittle(d.path(), &["check", "--explain", "Nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--list-rules"));
}

#[test]
fn scratch_without_ca_certs_when_the_program_uses_tls() {
    let df = "FROM golang:1.22 AS build\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache CGO_ENABLED=0 go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nUSER 65534\n";
    let d = context(df);
    std::fs::create_dir_all(d.path().join("cmd/srv")).expect("mkdir");
    std::fs::write(
        d.path().join("cmd/srv/main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n",
    )
    .expect("write");
    let out = whittle(d.path(), &["check", "--format", "json", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "ScratchWithoutCaCerts")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["line"], 4);
    assert!(
        f["message"]
            .as_str()
            .expect("message")
            .contains("cmd/srv/main.go imports net/http"),
        "{f}"
    );
    // A program that makes no TLS connections, or certificates copied in: nothing to say.
    std::fs::write(
        d.path().join("cmd/srv/main.go"),
        "package main\n\nimport \"fmt\"\n",
    )
    .expect("write");
    let out = whittle(d.path(), &["check", "."]);
    assert!(
        !text(&out.stdout).contains("ScratchWithoutCaCerts"),
        "{}",
        text(&out.stdout)
    );
}
