//! Any bytes through the parser, the planner (for the last stage and for a named target),
//! and error rendering: nothing may panic, hang or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whittle_dockerfile::{parse, plan, PlanOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match parse(src) {
        Ok(df) => {
            for target in [None, Some("build".to_string())] {
                let opts = PlanOptions {
                    target,
                    build_args: vec![("A".into(), "x y".into())],
                    ..PlanOptions::default()
                };
                if let Err(e) = plan(&df, &opts) {
                    let _ = e.render("Dockerfile", src);
                }
            }
        }
        Err(e) => {
            let _ = e.render("Dockerfile", src);
        }
    }
});
