//! Word expansion with hostile words and long variable values: every expansion must end quickly
//! and within its output budget. Run with a memory limit, e.g.
//!   cargo fuzz run expand -- -rss_limit_mb=512
//! so that an expansion that grows past its budget before checking it is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whittle_dockerfile::shell::{Lexer, Vars};
use whittle_dockerfile::{parse, plan, PlanOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the word; the rest are values of A, B, C (each repeated to grow it).
    let mut lines = src.splitn(4, '\n');
    let word = lines.next().unwrap_or("");
    let mut vars = Vars::default();
    for (name, v) in ["A", "B", "C"].iter().zip(lines) {
        let times = 1 + v.len() % 7 * 4_000;
        vars.set(name, &v.repeat(times.min(200_000 / v.len().max(1) + 1)));
    }
    for escape in ['\\', '`'] {
        let lx = Lexer::new(escape);
        let _ = lx.process_word(word, &vars);
        let _ = lx.process_words(word, &vars);
    }
    // The same word in ENV lines that feed each other, through the planner and its budget.
    let df = format!("FROM scratch\nARG A=aaaaaaaa\nENV A={word}\nENV B={word} C=$A$A\nENV D={word}\n");
    if let Ok(df) = parse(&df) {
        let _ = plan(&df, &PlanOptions::default());
    }
});
