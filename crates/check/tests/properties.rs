//! Property tests: whatever the Dockerfile, checking, fixing and verifying never panic, every
//! finding points inside the file, and fixes apply to the text they were made for.

use proptest::prelude::*;
use whittle_check::{ContextFacts, Input};

/// Fragments that hit the rules' corners when glued together at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("from alpine:3 as Build\n".to_string()),
        Just("FROM --platform=$TARGETPLATFORM b AS c\n".to_string()),
        Just("FROM --platform=linux/amd64 scratch\n".to_string()),
        Just("FROM ${X:-busybox}:$TAG AS s\n".to_string()),
        Just("ARG X=1 TAG\n".to_string()),
        Just("RUN ".to_string()),
        Just("run ".to_string()),
        Just("apt-get update && apt-get install -y curl | tee x ".to_string()),
        Just("apk add --virtual .b foo=1 ".to_string()),
        Just("pip install -r r.txt django ".to_string()),
        Just("npm i @a/b left-pad ".to_string()),
        Just("wget -qO- x ".to_string()),
        Just("go build -o /app . ".to_string()),
        Just("cargo build --release ".to_string()),
        Just("'quoted \"x\" ' ".to_string()),
        Just("COPY . .\n".to_string()),
        Just("COPY --from=b /a /b\n".to_string()),
        Just("ADD a.txt /a\n".to_string()),
        Just("ENV A b\n".to_string()),
        Just("ENV SECRET\u{1b}_TOKEN=1\n".to_string()),
        Just("LABEL k v\n".to_string()),
        Just("MAINTAINER me\n".to_string()),
        Just("CMD run me\n".to_string()),
        Just("ENTRYPOINT [\"a\"]\n".to_string()),
        Just("EXPOSE 80/TCP 1:2\n".to_string()),
        Just("WORKDIR rel/$Y\n".to_string()),
        Just("USER root\n".to_string()),
        Just("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n".to_string()),
        Just("HEALTHCHECK CMD true\n".to_string()),
        Just("# hadolint ignore=DL3008\n".to_string()),
        Just("# check=skip=all\n".to_string()),
        Just("# check=error=true\n".to_string()),
        Just("<<EOF\n".to_string()),
        Just("EOF\n".to_string()),
        Just("\\\n".to_string()),
        Just("\n".to_string()),
        Just("\n\n".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("é\u{1b}[2J".to_string()),
        Just("\r\n".to_string()),
        "[a-zA-Z0-9$={}:/@._-]{0,8}".prop_map(|s| s),
    ]
}

fn dockerfile() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn check_and_fix_never_panic(text in dockerfile(), bom in any::<bool>()) {
        let text = if bom { format!("\u{feff}{text}") } else { text };
        let ctx = ContextFacts { dockerignore: Some("*.key\nsecrets\n".into()), ..ContextFacts::default() };
        let mut input = Input::new("Dockerfile", &text);
        input.context = Some(&ctx);
        let Ok(report) = whittle_check::check(&input) else { return Ok(()) };
        let lines = text.split('\n').count();
        for f in &report.findings {
            prop_assert!(f.span.line <= lines, "{} points past the end: line {}", f.rule, f.span.line);
        }
        for format in [whittle_check::output::Format::Text, whittle_check::output::Format::Json,
                       whittle_check::output::Format::Sarif, whittle_check::output::Format::Github] {
            let out = whittle_check::output::render(format, &report, "Dockerfile", &text);
            prop_assert!(!out.contains('\u{1b}'), "control characters reach the terminal");
        }
        let fixed = whittle_check::fix::apply(&text, &report.findings);
        let _ = whittle_check::fix::verify(&input, &fixed.text, &report.findings);
        let _ = whittle_check::fix::diff("Dockerfile", &text, &fixed.text);
    }
}

/// A hostile file: one RUN of 20,000 continuation lines, each a package install the rules and
/// fixes look at, and 2,000 stages. Checking stays linear: well under the time a quadratic
/// scan would take.
#[test]
fn big_files_check_in_bounded_time() {
    let mut text = String::from("FROM debian:12 AS s0\nRUN apt-get update");
    for i in 0..20_000 {
        text.push_str(&format!(
            " \\\n && apt-get install -y p{i} && pip install q{i} | wget x"
        ));
    }
    text.push('\n');
    for i in 1..2_000 {
        text.push_str(&format!(
            "FROM s{} AS s{i}\nENV A{i} b\nCMD run it\n",
            i - 1
        ));
    }
    let t = std::time::Instant::now();
    let report = whittle_check::check(&Input::new("Dockerfile", &text)).expect("checks");
    let fixed = whittle_check::fix::apply(&text, &report.findings);
    assert!(fixed.changed());
    whittle_check::fix::verify(
        &Input::new("Dockerfile", &text),
        &fixed.text,
        &report.findings,
    )
    .expect("the fixes verify");
    let took = t.elapsed();
    // About 3 s in a debug build; the quadratic versions took a minute.
    assert!(took.as_secs() < 15, "took {took:?}");
}
