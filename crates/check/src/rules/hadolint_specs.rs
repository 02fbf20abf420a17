//! hadolint's specs for the rules that read a whole Dockerfile (test/Hadolint/Rule/*Spec.hs),
//! as tables of Dockerfiles and whether each is flagged.

use crate::Input;

fn raises(rule: &str, text: &str) -> bool {
    crate::check(&Input::new("Dockerfile", text))
        .unwrap()
        .findings
        .iter()
        .any(|f| f.rule == rule)
}

/// hadolint's DL4006 spec (test/Hadolint/Rule/DL4006Spec.hs).
#[test]
fn pipefail_as_hadolint_specifies() {
    let pipe = "RUN wget -O - https://some.site | wc -l file > /number\n";
    for (shell, flagged) in [
        ("", true),
        (
            "SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        (
            "SHELL [\"/bin/bash\", \"-e\", \"-o\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        (
            "SHELL [\"/bin/bash\", \"-o\", \"errexit\", \"-o\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        (
            "SHELL [\"/bin/zsh\", \"-o\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        (
            "SHELL [\"/usr/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        (
            "SHELL [\"/usr/local/bin/zsh\", \"-o\", \"pipefail\", \"-c\"]\n",
            false,
        ),
        ("SHELL [\"/bin/sh\", \"-o\", \"pipefail\", \"-c\"]\n", true),
        ("SHELL [\"pwsh\", \"-c\"]\n", false),
        ("SHELL [\"powershell.exe\"]\n", false),
        ("SHELL [\"cmd.exe\", \"/c\"]\n", false),
    ] {
        let text = format!("FROM scratch AS build\n{shell}{pipe}");
        assert_eq!(raises("PipefailMissing", &text), flagged, "{text}");
    }
    assert!(!raises(
        "PipefailMissing",
        "FROM scratch\nRUN wget -O - https://some.site && wc -l file > /number\n"
    ));
    // A new stage from another base starts without the SHELL; a later SHELL replaces it.
    assert!(raises("PipefailMissing", &format!("FROM scratch AS a\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n{pipe}FROM scratch AS b\n{pipe}")));
    assert!(raises("PipefailMissing", &format!("FROM scratch\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n{pipe}SHELL [\"/bin/sh\", \"-c\"]\n{pipe}")));
}

/// hadolint's DL3009 spec (test/Hadolint/Rule/DL3009Spec.hs).
#[test]
fn apt_lists_as_hadolint_specifies() {
    for (text, flagged) in [
        ("FROM scratch\nRUN apt-get update && apt-get install python\n", true),
        ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python\nFROM scratch\nRUN echo hey!\n", false),
        ("FROM ubuntu AS foo\nRUN hey!\nFROM scratch\nRUN apt-get update && apt-get install python\n", true),
        ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python\nFROM foo\nRUN hey!\n", true),
        ("FROM ubuntu AS foo\nRUN apt-get update && apt-get install python && rm -rf /var/lib/apt/lists/*\nFROM foo\nRUN hey!\n", false),
        ("FROM scratch\nRUN apt-get update && apt-get install python && rm -rf /var/lib/apt/lists/*\n", false),
        ("FROM scratch\nRUN --mount=type=cache,target=/var/lib/apt/lists \\\n    apt-get update && apt-get install python\n", false),
        ("FROM scratch\nRUN --mount=type=cache,target=/var/lib/apt \\\n    --mount=type=cache,target=/var/cache/apt \\\n    rm -f /etc/apt/apt.conf.d/docker-clean && \\\n    apt-get update && apt-get install python\n", false),
        ("FROM scratch\nRUN --mount=type=cache,target=/var/cache/apt \\\n    rm -f /etc/apt/apt.conf.d/docker-clean && \\\n    apt-get update && apt-get install python\n", true),
        ("FROM scratch\nRUN rm -f /etc/apt/apt.conf.d/docker-clean\nRUN --mount=type=cache,target=/var/lib/apt \\\n    apt-get update && apt-get install python\n", true),
    ] {
        assert_eq!(raises("AptListsNotDeleted", text), flagged, "{text}");
    }
}

/// hadolint's DL3059 spec (test/Hadolint/Rule/DL3059Spec.hs).
#[test]
fn consecutive_runs_as_hadolint_specifies() {
    for (body, flagged) in [
        ("", false),
        ("RUN /foo.sh\n", false),
        ("RUN /foo.sh\nWORKDIR /\nRUN /bar.sh\n", false),
        ("RUN /foo.sh\nRUN /bar.sh\n", true),
        ("RUN /foo.sh\n# a comment\nRUN /bar.sh\n", true),
        (
            "RUN /foo.sh\n# a comment\n# another comment\nRUN /bar.sh\n",
            true,
        ),
        ("# a comment\nRUN /foo.sh\n", false),
        (
            "RUN --mount=type=secret,id=foo /foo.sh\nRUN /bar.sh\n",
            false,
        ),
        (
            "RUN --mount=type=secret,id=foo /foo.sh\nRUN --mount=type=secret,id=bar /bar.sh\n",
            false,
        ),
        (
            "RUN --mount=type=secret,id=foo /foo.sh\nRUN --mount=type=secret,id=foo /bar.sh\n",
            true,
        ),
        ("RUN foo && bar\nRUN foobar\n", false),
        ("RUN foo; bar\nRUN foobar\n", false),
        ("RUN foobar\nRUN foo && bar\n", false),
        ("RUN foobar\nRUN foo; bar\n", false),
        ("RUN foo && bar\nRUN foo; bar\n", false),
        ("RUN foo && bar\nRUN foo\nRUN bar\n", true),
    ] {
        let text = format!("FROM debian:10\n{body}");
        assert_eq!(raises("ConsecutiveRuns", &text), flagged, "{body}");
    }
}

/// hadolint's DL3042 spec (test/Hadolint/Rule/DL3042Spec.hs).
#[test]
fn pip_cache_as_hadolint_specifies() {
    let mut cases: Vec<(String, bool)> = vec![
        ("RUN pip2 install MySQL_python".into(), true),
        ("RUN pip3 install MySQL_python".into(), true),
        ("RUN pip install MySQL_python".into(), true),
        ("RUN pip2 install MySQL_python --no-cache-dir".into(), false),
        ("RUN pip3 install --no-cache-dir MySQL_python".into(), false),
        ("RUN pip install MySQL_python --no-cache-dir".into(), false),
        ("RUN pipx install software".into(), false),
        ("RUN pipenv install library".into(), false),
    ];
    for v in ["1", "on", "yes", "true"] {
        cases.push((
            format!("ENV PIP_NO_CACHE_DIR={v}\nRUN pip install MySQL_python"),
            false,
        ));
        cases.push((
            format!("RUN PIP_NO_CACHE_DIR={v} pip install MySQL_python"),
            false,
        ));
        cases.push((
            format!("RUN export PIP_NO_CACHE_DIR={v} && pip install MySQL_python"),
            false,
        ));
    }
    for v in ["0", "off", "no", "false"] {
        cases.push((
            format!("ENV PIP_NO_CACHE_DIR={v}\nRUN pip install MySQL_python"),
            true,
        ));
        cases.push((
            format!("RUN PIP_NO_CACHE_DIR={v} pip install MySQL_python"),
            true,
        ));
        cases.push((
            format!("RUN export PIP_NO_CACHE_DIR={v} && pip install MySQL_python"),
            true,
        ));
    }
    for (body, flagged) in cases {
        let text = format!("FROM python:3.12\n{body}\n");
        assert_eq!(raises("PipCacheKept", &text), flagged, "{body}");
    }
    let inherited =
        "FROM debian:buster AS base\nENV PIP_NO_CACHE_DIR=1\nFROM base\nRUN pip install six\n";
    assert!(!raises("PipCacheKept", inherited));
    let not_inherited = "FROM debian:buster AS base\nENV PIP_NO_CACHE_DIR=1\nFROM debian:buster\nRUN pip install six\n";
    assert!(raises("PipCacheKept", not_inherited));
}

/// hadolint's DL3047 spec (test/Hadolint/Rule/DL3047Spec.hs).
#[test]
fn wget_progress_as_hadolint_specifies() {
    for (run, flagged) in [
        ("wget my.xyz", true),
        ("wget --progress=dot:giga my.xyz", false),
        ("wget -q my.xyz", false),
        ("wget --quiet my.xyz", false),
        ("wget -nv my.xyz", false),
        ("wget --no-verbose my.xyz", false),
        ("wget --output-file=/tmp/wget.log my.xyz", false),
        ("wget -o /tmp/wget.log my.xyz", false),
        ("wget --append-output=/tmp/wget.log my.xyz", false),
        ("wget -a /tmp/wget.log my.xyz", false),
    ] {
        let text = format!("FROM node:22 AS foo\nRUN {run}\n");
        assert_eq!(raises("WgetProgressBar", &text), flagged, "{run}");
    }
}

/// hadolint's DL3019 spec (test/Hadolint/Rule/DL3019Spec.hs).
#[test]
fn apk_cache_as_hadolint_specifies() {
    for (run, flagged) in [
        ("apk add flex=2.6.4-r1", true),
        ("apk add --no-cache flex=2.6.4-r1", false),
        (
            "--mount=type=cache,target=/var/cache/apk apk add -U curl=7.77.0",
            false,
        ),
        (
            "--mount=type=cache,target=/var/cache/foo apk add --no-cache -U curl=7.77.0",
            false,
        ),
        (
            "--mount=type=cache,target=/var/cache/foo apk add -U curl=7.77.0",
            true,
        ),
    ] {
        let text = format!("FROM alpine:3.20\nRUN {run}\n");
        assert_eq!(raises("ApkCacheKept", &text), flagged, "{run}");
    }
}

/// hadolint's DL3015 spec (test/Hadolint/Rule/DL3015Spec.hs).
#[test]
fn install_recommends_as_hadolint_specifies() {
    for (run, flagged) in [
        ("apt-get install --no-install-recommends python", false),
        ("apt-get install python", true),
        ("apt-get -y install python", true),
        (
            "apt-get -o APT::Install-Recommends=false install python",
            false,
        ),
    ] {
        let text = format!("FROM debian:12\nRUN {run}\n");
        assert_eq!(raises("AptInstallRecommends", &text), flagged, "{run}");
    }
}

/// hadolint's DL3020 spec (test/Hadolint/Rule/DL3020Spec.hs).
#[test]
fn add_for_copy_as_hadolint_specifies() {
    for (add, flagged) in [
        ("file.tar", false),
        ("file.gz", false),
        ("file.bz2", false),
        ("file.xz", false),
        ("file.tgz", false),
        ("http://file.com", false),
        ("file", true),
        ("file.zip", true),
        ("\"file.tgz\"", false),
        ("\"http://file.com\"", false),
        ("\"file.zip\"", true),
    ] {
        let text = format!("FROM debian:12\nADD {add} /usr/src/app/\n");
        assert_eq!(raises("AddInsteadOfCopy", &text), flagged, "{add}");
    }
}

/// hadolint's DL3006 and DL3007 specs (test/Hadolint/Rule/DL3006Spec.hs, DL3007Spec.hs).
#[test]
fn image_tags_as_hadolint_specifies() {
    for (text, untagged) in [
        ("FROM debian\n", true),
        ("FROM debian AS builder\n", true),
        ("FROM ruby@sha256:f1dbca0f5dbc9f1dbca0f5dbc9f1dbca0f5dbc9f1dbca0f5dbc9\n", false),
        ("FROM ruby:2\n", false),
        ("ARG VALUE=x\nFROM ${VALUE}\n", false),
        ("FROM golang:1.9.3-alpine3.7 AS build\nRUN foo\nFROM build AS unit-test\nRUN bar\nFROM alpine:3.7\nRUN baz\n", false),
        ("FROM golang:1.9.3-alpine3.7 AS build\nRUN foo\nFROM node AS unit-test\nRUN bar\nFROM alpine:3.7\nRUN baz\n", true),
        ("FROM scratch\n", false),
    ] {
        assert_eq!(raises("UntaggedImage", text), untagged, "{text}");
    }
    assert!(raises("LatestTag", "FROM debian:latest\n"));
    assert!(raises("LatestTag", "FROM debian:latest AS builder\n"));
    assert!(!raises("LatestTag", "FROM debian:jessie\n"));
    assert!(!raises(
        "LatestTag",
        "FROM debian:latest@sha256:f1dbca0f5dbc9f1dbca0f5dbc9f1dbca0f5dbc9f1dbca0f5dbc9\n"
    ));
}

/// hadolint's DL3002 spec (test/Hadolint/Rule/DL3002Spec.hs), with one deliberate difference:
/// a builder stage that ends as root, but is not part of the final image, is not reported.
#[test]
fn last_user_as_hadolint_specifies() {
    for (text, flagged) in [
        ("FROM scratch\nUSER root\n", true),
        ("FROM scratch\nUSER foo\n", false),
        ("FROM scratch\nUSER 0\n", true),
        ("FROM scratch\nUSER root:root\n", true),
        ("FROM scratch\nUSER 0:0\n", true),
        ("FROM scratch\nUSER root\nRUN something\nUSER foo\n", false),
        ("FROM debian AS base\nUSER root\nRUN something\nFROM base\nRUN something else\n", true),
        // hadolint: flagged (every stage). whittle: the final image runs as foo.
        ("FROM debian AS base\nUSER root\nRUN something\nFROM scratch\nUSER foo\nRUN something else\n", false),
        ("FROM debian AS base\nUSER root\nRUN something\nUSER foo\nFROM scratch\nRUN something else\n", false),
    ] {
        assert_eq!(raises("LastUserRoot", text), flagged, "{text}");
    }
}

/// hadolint's DL3022 and DL3023 specs (test/Hadolint/Rule/DL3022Spec.hs, DL3023Spec.hs).
#[test]
fn copy_from_as_hadolint_specifies() {
    for (text, flagged) in [
        ("FROM scratch\nCOPY --from=foo bar .\n", true),
        (
            "FROM scratch\nCOPY --from=build foo .\nFROM node AS build\nRUN baz\n",
            true,
        ),
        (
            "FROM scratch AS build\nRUN foo\nFROM node\nCOPY --from=build foo .\nRUN baz\n",
            false,
        ),
    ] {
        assert_eq!(raises("CopyFromUnknownStage", text), flagged, "{text}");
    }
    assert!(raises(
        "CopyFromOwnStage",
        "FROM node AS foo\nCOPY --from=foo bar .\n"
    ));
    assert!(!raises(
        "CopyFromOwnStage",
        "FROM scratch AS build\nRUN foo\nFROM node AS foo\nCOPY --from=build foo .\n"
    ));
}
