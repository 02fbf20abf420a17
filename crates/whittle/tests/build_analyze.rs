//! `whittle build --analyze`: after the build, the image's summary and findings on standard
//! error (short form: no layer table), with the findings a real build produces.
#![allow(clippy::unwrap_used)]

mod common;

use common::{env, whittle};
use std::fs;

#[test]
fn build_prints_the_analysis() {
    if !common::root_or_skip("building") {
        return;
    }
    let e = env();
    // A glibc program (this machine's ls) copied onto busybox, which has no glibc loader;
    // a file written by one RUN and deleted by the next.
    fs::copy("/bin/ls", e.ctx.join("ls")).unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\n\
         COPY ls /usr/local/bin/ls\n\
         RUN dd if=/dev/zero of=/big bs=1024 count=64\n\
         RUN rm /big\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let args = |extra: &'static [&'static str]| -> Vec<String> {
        let mut v: Vec<String> = ["build", "--progress=plain", "--network=none", "-t", "a:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(ctx.clone());
        v
    };
    let run = |extra: &'static [&'static str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        whittle(&e.root, &a)
    };

    let o = run(&["--analyze"]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        !o.stdout.contains("Findings:"),
        "the analysis goes to stderr"
    );
    let err = &o.stderr;
    let at = err.find("Image: a:1").unwrap_or_else(|| panic!("{err}"));
    let report = &err[at..];
    assert!(report.contains("efficiency:"), "{report}");
    assert!(report.contains("wastedBytes: 65536 bytes"), "{report}");
    assert!(!report.contains("Layers:"), "short form: {report}");
    assert!(report.contains("[deleted-later]"), "{report}");
    assert!(
        report.contains("RUN rm /big") || report.contains("rm /big"),
        "{report}"
    );
    assert!(
        report.contains("[missing-library]") && report.contains("/usr/local/bin/ls"),
        "{report}"
    );
    // The same as `whittle analyze` says about the image.
    let full = whittle(&e.root, &["analyze", "a:1"]);
    assert!(full.ok, "{}", full.stderr);
    let findings = |s: &str| s[s.find("Findings:").unwrap()..].to_string();
    assert_eq!(findings(report), findings(&full.stdout));

    // Without the flag: no analysis.
    let o = run(&[]);
    assert!(o.ok, "{}", o.stderr);
    assert!(!o.stderr.contains("Findings:"), "{}", o.stderr);
}
