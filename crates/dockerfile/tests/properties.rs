//! Property tests: the frontend never panics, errors point inside the file, and expansion
//! behaves like the shell for the cases we can state generally.

use proptest::prelude::*;
use whittle_dockerfile::shell::{Lexer, Vars};
use whittle_dockerfile::{parse, plan, PlanOptions};

/// Fragments that exercise every corner of the grammar when glued together at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("from alpine AS b\n".to_string()),
        Just("FROM --platform=$BUILDPLATFORM x\n".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ADD --chmod=755 ".to_string()),
        Just("--from=b ".to_string()),
        Just("--mount=type=cache,target=/c ".to_string()),
        Just("--mount=type=secret,id=x,env=Y ".to_string()),
        Just("ARG ".to_string()),
        Just("ENV ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("HEALTHCHECK --interval=1s CMD ".to_string()),
        Just("SHELL [\"/bin/sh\", \"-c\"]\n".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E'".to_string()),
        Just("EOF\n".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("# comment\n".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        Just(" ".to_string()),
        Just("[\"a\", \"b\"]".to_string()),
        Just("[".to_string()),
        Just("${A:-${B}}".to_string()),
        Just("${A".to_string()),
        Just("$A".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("A=1".to_string()),
        Just("=".to_string()),
        Just("/dst".to_string()),
        "[a-zA-Z0-9_./-]{1,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

fn dockerfile_like() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
}

fn line_count(s: &str) -> usize {
    s.split('\n').count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_and_plan_never_panic(src in dockerfile_like()) {
        match parse(&src) {
            Ok(df) => {
                for target in [None, Some("b".to_string())] {
                    let opts = PlanOptions { target, ..PlanOptions::default() };
                    match plan(&df, &opts) {
                        Ok(p) => {
                            // Every built stage comes after the stages it needs.
                            for (n, &i) in p.order.iter().enumerate() {
                                for d in &p.stages[i].deps {
                                    let at = p.order.iter().position(|&j| j == d.stage);
                                    prop_assert!(at.is_some_and(|a| a < n));
                                }
                            }
                            prop_assert_eq!(p.order.len(), p.waves.iter().map(Vec::len).sum::<usize>());
                        }
                        Err(e) => {
                            prop_assert!(e.pos.line <= line_count(&src) + 1);
                            let _ = e.render("Dockerfile", &src);
                        }
                    }
                }
            }
            Err(e) => {
                prop_assert!(e.pos.line <= line_count(&src) + 1, "{:?}", e);
                let _ = e.render("Dockerfile", &src);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(src in ".{0,300}") {
        let _ = parse(&src).map(|df| plan(&df, &PlanOptions::default()));
    }

    #[test]
    fn expansion_never_panics(word in ".{0,80}") {
        let env = Vars::from_pairs([("A".into(), "x y".into())]);
        let _ = Lexer::new('\\').process_word(&word, &env);
        let _ = Lexer::new('`').process_words(&word, &env);
    }

    #[test]
    fn quoted_variable_is_its_value(value in "[^\\x00]{0,40}") {
        let env = Vars::from_pairs([("V".into(), value.clone())]);
        let lx = Lexer::new('\\');
        prop_assert_eq!(lx.process_word("\"$V\"", &env).unwrap(), value.clone());
        prop_assert_eq!(lx.process_word("${V}", &env).unwrap(), value.clone());
        // A literal value survives single quotes when it has none itself.
        if !value.contains('\'') {
            let quoted = format!("'{value}'");
            prop_assert_eq!(lx.process_word(&quoted, &Vars::default()).unwrap(), value.clone());
        }
    }

    #[test]
    fn prefix_and_suffix_trimming(a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
        let env = Vars::from_pairs([("V".into(), format!("{a}.{b}"))]);
        let lx = Lexer::new('\\');
        prop_assert_eq!(lx.process_word("${V%.*}", &env).unwrap(), a.clone());
        prop_assert_eq!(lx.process_word("${V#*.}", &env).unwrap(), b.clone());
        prop_assert_eq!(lx.process_word("${V:-z}", &env).unwrap(), format!("{a}.{b}"));
    }

    #[test]
    fn env_values_round_trip(value in "[a-zA-Z0-9 _./:-]{1,30}") {
        let src = format!("FROM scratch\nENV K=\"{value}\"\nLABEL k=\"$K\"\n");
        let df = parse(&src).unwrap();
        let p = plan(&df, &PlanOptions::default()).unwrap();
        let steps = &p.stages[0].steps;
        let s = serde_json::to_value(&steps[1].op).unwrap();
        prop_assert_eq!(s["labels"][0][1].as_str().unwrap(), value.as_str());
    }
}
