//! Hostile Dockerfiles: inputs a careless or malicious author can write, each of which must end
//! in a clear error or a plan within a bounded time, never exhausting memory.
//!
//! The time limits are generous (they hold for a debug build on a loaded 2-core machine); the
//! release-build figures are measured by `cargo bench -p whittle-dockerfile --bench hostile`.
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::time::{Duration, Instant};
use whittle_dockerfile::{parse, plan, PlanOptions};

/// Parses and plans `text`, failing the test if it takes longer than `limit`.
fn plan_within(text: &str, limit: Duration) -> Result<whittle_dockerfile::Plan, String> {
    let start = Instant::now();
    let r = parse(text)
        .map_err(|e| e.to_string())
        .and_then(|df| plan(&df, &PlanOptions::default()).map_err(|e| e.to_string()));
    let took = start.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
    r
}

#[test]
fn replacement_bomb_fails_while_growing() {
    // The audit's 20 KB file: a 40 GB string used to be built before the 1 MiB cap was checked.
    let text = format!(
        "FROM scratch\nARG a={}\nENV b=${{a//a/bbbbbbbbbb}}\nENV c=${{b//b/${{b}}}}\n",
        "a".repeat(20_000)
    );
    let err = plan_within(&text, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("longer than 1 MiB"), "{err}");
}

#[test]
fn many_copies_of_a_long_value_exhaust_the_plan_budget() {
    // Each value stays under 1 MiB, but 200 of them would be 200 MiB of environment.
    let mut text = String::from("FROM scratch\nARG a=aaaaaaaaaaaaaaaa\n");
    for _ in 0..15 {
        text.push_str("ARG a=$a$a\n");
    }
    for i in 0..200 {
        writeln!(text, "ENV b{i}=$a").unwrap();
    }
    let err = plan_within(&text, Duration::from_secs(20)).unwrap_err();
    assert!(err.contains("than 64 MiB in all"), "{err}");
}

#[test]
fn many_long_mount_targets_exhaust_the_plan_budget() {
    let mut text = String::from("FROM scratch\nARG a=/aaaaaaaaaaaaaaa\n");
    for _ in 0..15 {
        text.push_str("ARG a=$a$a\n");
    }
    for _ in 0..200 {
        text.push_str("RUN --mount=type=tmpfs,target=$a true\n");
    }
    let err = plan_within(&text, Duration::from_secs(20)).unwrap_err();
    assert!(err.contains("than 64 MiB in all"), "{err}");
}

#[test]
fn doubling_env_is_capped() {
    let mut text = String::from("FROM scratch\nENV A=aaaaaaaa\n");
    for _ in 0..40 {
        text.push_str("ENV A=$A$A\n");
    }
    let err = plan_within(&text, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("longer than 1 MiB"), "{err}");
}

#[test]
fn hundred_thousand_distinct_env_plan_in_linear_time() {
    let mut text = String::from("FROM scratch\n");
    for i in 0..100_000 {
        writeln!(text, "ENV V{i}=x").unwrap();
    }
    let p = plan_within(&text, Duration::from_secs(20)).unwrap();
    assert_eq!(p.stages[0].steps.len(), 100_000);
}

#[test]
fn hundred_thousand_stages_plan_in_linear_time() {
    let mut text = String::from("FROM scratch AS s0\n");
    for i in 1..100_000 {
        writeln!(text, "FROM s{} AS s{i}", i - 1).unwrap();
    }
    let p = plan_within(&text, Duration::from_secs(20)).unwrap();
    assert_eq!(p.stages.len(), 100_000);
}

#[test]
fn hundred_thousand_independent_stages_plan_in_linear_time() {
    let mut text = String::new();
    for i in 0..100_000 {
        writeln!(text, "FROM scratch AS s{i}\nCOPY --from=s{} / /", i / 2).unwrap();
    }
    // Stage i copies from stage i/2: a forward reference only for i = 0 (itself), which is
    // an error BuildKit reports as a cycle.
    let err = plan_within(&text, Duration::from_secs(20)).unwrap_err();
    assert!(err.contains("circular") || err.contains("itself"), "{err}");
}

#[test]
fn hundred_thousand_duplicate_flags_fail_fast() {
    let text = format!("FROM scratch\nCOPY {}a /b\n", "--chown=1 ".repeat(100_000));
    let err = plan_within(&text, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("duplicate flag"), "{err}");
}

#[test]
fn twenty_thousand_tmpfs_mounts_plan_quickly() {
    let mut mounts = String::new();
    for i in 0..20_000 {
        write!(mounts, "--mount=type=tmpfs,target=/t{i} ").unwrap();
    }
    let text = format!("FROM scratch\nRUN {mounts}true\n");
    let p = plan_within(&text, Duration::from_secs(10)).unwrap();
    let whittle_dockerfile::plan::Op::Run { mounts, .. } = &p.stages[0].steps[0].op else {
        panic!("not a RUN");
    };
    assert_eq!(mounts.len(), 20_000);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!(
        "FROM scratch\nENV A={}x{}\n",
        "${B:-".repeat(10_000),
        "}".repeat(10_000)
    );
    let err = plan_within(&text, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("nest"), "{err}");
}

/// Inputs the `expand` fuzz target found slow, through exactly the steps it takes:
/// - `expand-slow-1` (765 bytes) took 2 s to plan: pattern matching charged one step per
///   character while each step cost the pattern's length;
/// - `expand-slow-2` (75 bytes) took minutes: a pattern built from a 200 KB value.
#[test]
fn fuzz_found_slow_expansions_end_quickly() {
    use whittle_dockerfile::shell::{Lexer, Vars};
    for (name, data) in [
        (
            "expand-slow-1",
            &include_bytes!("fuzz-found/expand-slow-1")[..],
        ),
        (
            "expand-slow-2",
            &include_bytes!("fuzz-found/expand-slow-2")[..],
        ),
    ] {
        let start = Instant::now();
        let src = String::from_utf8_lossy(data);
        let mut lines = src.splitn(4, '\n');
        let word = lines.next().unwrap_or("");
        let mut vars = Vars::default();
        for (var, v) in ["A", "B", "C"].iter().zip(lines) {
            let times = 1 + v.len() % 7 * 4_000;
            vars.set(var, &v.repeat(times.min(200_000 / v.len().max(1) + 1)));
        }
        for escape in ['\\', '`'] {
            let lx = Lexer::new(escape);
            let _ = lx.process_word(word, &vars);
            let _ = lx.process_words(word, &vars);
        }
        eprintln!("{name}: words {:?}", start.elapsed());
        let df = format!(
            "FROM scratch\nARG A=aaaaaaaa\nENV A={word}\nENV B={word} C=$A$A\nENV D={word}\n"
        );
        let _ = plan_within(&df, Duration::from_secs(5));
        eprintln!("{name}: all {:?}", start.elapsed());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            start.elapsed()
        );
    }
}
