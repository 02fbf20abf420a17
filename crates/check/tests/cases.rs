//! The check corpus: `tests/cases/<name>/` holds a `Dockerfile` and `expected.txt` (one
//! `LINE RULE` per finding, in report order; empty when nothing should be found), and may hold
//! `options.txt` (`skip RULE`, `experimental`, `platform OS/ARCH`, `target NAME`,
//! `build-arg K=V`), a `.dockerignore`, a `.hadolint.yaml`, `context.txt` (the context's
//! top-level entries: `NAME dir|file BYTES`), `tls.txt` (evidence that the program uses TLS)
//! and `images.json` (what the store knows of base
//! images). BuildKit's cases come from its rule docs and lint tests, hadolint's from its
//! documented good and bad examples.
//!
//! Every case also goes through `--fix`: the fixed text must verify (parse and plan the same
//! apart from the fixed steps), re-checking it must not raise rules the original did not, and
//! fixing converges within three rounds with no fixable finding left.
//!
//! A case may also hold `messages.txt`: `LINE RULE: message` lines that must be among its
//! findings (BuildKit's cases hold BuildKit's exact wording).
//!
//! `WHITTLE_BLESS=1` rewrites the `expected.txt` files (review the diff before committing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use whittle_check::{ContextEntry, ContextFacts, ImageFacts, Images, Input};
use whittle_dockerfile::Platform;

struct MapImages(HashMap<String, ImageFacts>);

impl Images for MapImages {
    fn lookup(&self, reference: &str, _: &Platform) -> Option<ImageFacts> {
        self.0.get(reference).cloned()
    }
}

fn images(dir: &Path) -> MapImages {
    let Ok(text) = std::fs::read_to_string(dir.join("images.json")) else {
        return MapImages(HashMap::new());
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("images.json is JSON");
    let mut m = HashMap::new();
    for (name, f) in v.as_object().expect("an object").iter() {
        let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
        m.insert(
            name.clone(),
            ImageFacts {
                digest: f["digest"].as_str().map(str::to_string),
                os: s("os"),
                arch: s("arch"),
                user: s("user"),
                env: f["env"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|kv| {
                                (
                                    kv[0].as_str().unwrap_or("").to_string(),
                                    kv[1].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                ..ImageFacts::default()
            },
        );
    }
    MapImages(m)
}

fn context(dir: &Path) -> ContextFacts {
    let entries = std::fs::read_to_string(dir.join("context.txt"))
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let p: Vec<&str> = l.split_whitespace().collect();
                    ContextEntry {
                        name: p[0].to_string(),
                        dir: p[1] == "dir",
                        bytes: p[2].parse().expect("bytes"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    ContextFacts {
        dockerignore: std::fs::read_to_string(dir.join(".dockerignore")).ok(),
        entries,
        tls_use: std::fs::read_to_string(dir.join("tls.txt"))
            .ok()
            .map(|t| t.trim().to_string()),
    }
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn input_for<'a>(
    dir: &Path,
    text: &'a str,
    ctx: &'a ContextFacts,
    imgs: &'a MapImages,
) -> Input<'a> {
    let mut input = Input::new("Dockerfile", text);
    input.context = Some(ctx);
    input.images = imgs;
    input.target_platform = Platform::parse("linux/amd64").expect("platform");
    if let Ok(opts) = std::fs::read_to_string(dir.join("options.txt")) {
        for l in opts.lines() {
            match l.split_once(' ') {
                Some(("skip", r)) => input.skip.push(r.to_string()),
                Some(("platform", p)) => {
                    input.target_platform = Platform::parse(p).expect("platform")
                }
                Some(("target", t)) => input.target = Some(t.to_string()),
                Some(("build-arg", kv)) => {
                    let (k, v) = kv.split_once('=').expect("K=V");
                    input.build_args.push((k.to_string(), v.to_string()));
                }
                None if l == "experimental" => input.experimental = true,
                _ if l.trim().is_empty() => {}
                _ => panic!("{}: unknown option line {l:?}", dir.display()),
            }
        }
    }
    if let Ok(y) = std::fs::read_to_string(dir.join(".hadolint.yaml")) {
        let ignored = whittle_check::directives::hadolint_ignored(&y, ".hadolint.yaml")
            .expect("valid .hadolint.yaml");
        input.skip.extend(ignored);
    }
    input
}

fn summary(report: &whittle_check::Report) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("{} {}\n", f.span.line, f.rule))
        .collect()
}

#[test]
fn every_case_finds_what_it_expects() {
    let bless = std::env::var_os("WHITTLE_BLESS").is_some();
    let mut failures = Vec::new();
    let dirs = case_dirs();
    assert!(dirs.len() >= 100, "only {} cases", dirs.len());
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        let ctx = context(dir);
        let imgs = images(dir);
        let input = input_for(dir, &text, &ctx, &imgs);
        let report =
            whittle_check::check(&input).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let got = summary(&report);
        let exp_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&exp_path, &got).expect("write expected.txt");
            continue;
        }
        let want = std::fs::read_to_string(&exp_path)
            .unwrap_or_else(|_| panic!("{} has no expected.txt", dir.display()));
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                dir.display()
            ));
        }
        // `messages.txt`: `LINE RULE: message` lines that must be among the findings (the
        // BuildKit cases hold BuildKit's exact wording).
        if let Ok(msgs) = std::fs::read_to_string(dir.join("messages.txt")) {
            let have: Vec<String> = report
                .findings
                .iter()
                .map(|f| format!("{} {}: {}", f.span.line, f.rule, f.message))
                .collect();
            for m in msgs.lines().filter(|l| !l.is_empty()) {
                if !have.iter().any(|h| h == m) {
                    failures.push(format!("{}: no finding {m:?}", dir.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_case_that_raises_it_and_one_that_does_not() {
    let mut raised: HashMap<String, usize> = HashMap::new();
    let mut bad_cases = 0;
    for dir in case_dirs() {
        let want = std::fs::read_to_string(dir.join("expected.txt")).unwrap_or_default();
        for l in want.lines() {
            let rule = l.split_whitespace().nth(1).expect("LINE RULE").to_string();
            *raised.entry(rule).or_default() += 1;
        }
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        bad_cases += usize::from(name.contains("-bad"));
    }
    for r in whittle_check::RULES {
        assert!(raised.contains_key(r.name), "no case raises {}", r.name);
    }
    // Good cases: at least as many as there are rules (each rule's good example).
    let good = case_dirs()
        .iter()
        .filter(|d| {
            let n = d.file_name().expect("name").to_string_lossy().into_owned();
            n.contains("-good") || n.ends_with("-ok")
        })
        .count();
    assert!(
        good >= 40 && bad_cases >= 40,
        "good {good}, bad {bad_cases}"
    );
}

#[test]
fn fix_round_trips_on_every_case() {
    for dir in case_dirs() {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        let ctx = context(&dir);
        let imgs = images(&dir);
        let input = input_for(&dir, &text, &ctx, &imgs);
        let report = whittle_check::check(&input).expect("checks");
        let rules_before: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
        let mut current = text.clone();
        let mut findings = report.findings.clone();
        for round in 0.. {
            let cur_input = Input {
                text: &current,
                ..input.clone()
            };
            let fixed = whittle_check::fix::apply(&current, &findings);
            whittle_check::fix::verify(&cur_input, &fixed.text, &findings)
                .unwrap_or_else(|e| panic!("{} round {round}: {e}", dir.display()));
            let next = Input {
                text: &fixed.text,
                ..input.clone()
            };
            let after = whittle_check::check(&next)
                .unwrap_or_else(|e| panic!("{}: fixed text: {e}", dir.display()));
            for f in &after.findings {
                assert!(
                    rules_before.contains(&f.rule),
                    "{}: the fix raised {} (line {}):\n{}",
                    dir.display(),
                    f.rule,
                    f.span.line,
                    fixed.text
                );
            }
            if !fixed.changed() {
                assert!(
                    after.findings.iter().all(|f| f.fix.is_none()),
                    "{}: a fix is left that was not applied",
                    dir.display()
                );
                break;
            }
            assert!(round < 3, "{}: fixes do not converge", dir.display());
            current = fixed.text;
            findings = after.findings;
        }
    }
}

#[test]
fn fixes_make_the_expected_text() {
    let text = "from alpine:3.20 as Build\nRUN apt-get install -y curl=8.0\nMAINTAINER me@example.com\nENV A b\nEXPOSE 80/TCP\nADD a.txt /a\nCMD run me\n";
    let mut input = Input::new("Dockerfile", text);
    input.skip.push("BaseImageNotPinned".into());
    let report = whittle_check::check(&input).expect("checks");
    let fixed = whittle_check::fix::apply(text, &report.findings);
    assert_eq!(
        fixed.text,
        "FROM alpine:3.20 AS build\nRUN apt-get install --no-install-recommends -y curl=8.0\nLABEL org.opencontainers.image.authors=\"me@example.com\"\nENV A=\"b\"\nEXPOSE 80/tcp\nCOPY a.txt /a\nCMD [\"run\", \"me\"]\n"
    );
}

#[test]
fn docs_list_every_rule_and_alias() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/check.md"))
            .expect("docs/check.md");
    for r in whittle_check::RULES {
        assert!(
            doc.contains(&format!("`{}`", r.name)),
            "docs/check.md lacks {}",
            r.name
        );
        for a in r.aliases {
            assert!(
                doc.contains(a),
                "docs/check.md lacks alias {a} of {}",
                r.name
            );
        }
    }
}
