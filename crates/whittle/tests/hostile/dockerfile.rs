//! Hostile Dockerfiles and flags through the CLI: clear errors, bounded memory, nothing raw on
//! the terminal.

use crate::whittle;
use std::fs;
use std::process::Command;

/// Runs `whittle plan` on `text` with its address space capped at 1 GiB: a memory bomb must end
/// in a clean error (exit 1), not an abort or the OOM killer.
fn plan_capped(text: &str) -> (Option<i32>, String) {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("Dockerfile"), text).unwrap();
    let out = Command::new("prlimit")
        .arg("--as=1073741824")
        .arg(assert_cmd::cargo::cargo_bin("whittle"))
        .arg("--root")
        .arg(t.path().join("store"))
        .arg("plan")
        .arg(t.path())
        .output()
        .expect("prlimit (util-linux) runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_audits_replacement_bomb_is_a_clear_error_within_a_gib() {
    let text = format!(
        "FROM scratch\nARG a={}\nENV b=${{a//a/bbbbbbbbbb}}\nENV c=${{b//b/${{b}}}}\n",
        "a".repeat(20_000)
    );
    let (code, err) = plan_capped(&text);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("longer than 1 MiB"), "{err}");
    assert!(err.contains("Dockerfile:4"), "{err}");
}

#[test]
fn a_value_copied_on_many_lines_is_a_clear_error_within_a_gib() {
    let mut text = String::from("FROM scratch\nARG a=aaaaaaaaaaaaaaaa\n");
    for _ in 0..16 {
        text.push_str("ARG a=$a$a\n");
    }
    for i in 0..2_000 {
        text.push_str(&format!("ENV b{i}=$a\n"));
    }
    let (code, err) = plan_capped(&text);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("than 64 MiB in all"), "{err}");
}

#[test]
fn control_characters_in_a_dockerfile_never_reach_the_terminal_raw() {
    let t = tempfile::tempdir().unwrap();
    let text = "FROM scratch\nCOPPY \u{1b}]0;pwned\u{7}\u{1b}[2J\0 /x\n";
    fs::write(t.path().join("Dockerfile"), text).unwrap();
    let ctx = t.path().to_string_lossy().into_owned();
    for cmd in ["plan", "build"] {
        let r = whittle(&t.path().join("store"), &[cmd, &ctx]);
        assert!(!r.ok);
        assert!(
            !r.stderr.chars().any(|c| c.is_control() && c != '\n'),
            "{cmd}: {:?}",
            r.stderr
        );
        assert!(
            r.stderr.contains("\\x1b]0;pwned\\x07"),
            "{cmd}: {}",
            r.stderr
        );
    }
}

#[test]
fn empty_build_arg_names_and_zero_jobs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    for (args, want) in [
        (&["build", "--build-arg", "=", "."][..], "the name is empty"),
        (
            &["build", "--build-arg", "=x", "."][..],
            "the name is empty",
        ),
        (&["plan", "--build-arg", "=", "."][..], "the name is empty"),
        (&["build", "--jobs", "0", "."][..], "must be at least 1"),
        (&["pull", "--jobs", "0", "x"][..], "must be at least 1"),
    ] {
        let r = whittle(&root, args);
        assert!(!r.ok, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn names_with_dot_dot_parts_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    for args in [
        &["build", "-t", "../../x:1", "."][..],
        &["tag", "whatever", "a/../../b:1"][..],
        &["tag", "whatever", "a//b:1"][..],
    ] {
        let r = whittle(&root, args);
        assert!(!r.ok, "{args:?}");
        assert!(
            r.stderr.contains("invalid image reference"),
            "{args:?}: {}",
            r.stderr
        );
    }
}
