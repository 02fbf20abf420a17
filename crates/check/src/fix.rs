//! Applying the findings' fixes: non-overlapping edits into a new text, verified by parsing and
//! planning it again (only the fixed steps may change, and only in the intended way), and shown
//! as a unified diff.

use crate::{Finding, Input};
use std::collections::BTreeSet;
use whittle_dockerfile::plan::{Base, Op};

/// The result of applying fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    /// The new Dockerfile text.
    pub text: String,
    /// (rule, line, description) of each fix applied.
    pub applied: Vec<(&'static str, usize, String)>,
    /// (rule, line) of fixes left out because they overlap one applied earlier; a second run
    /// applies them.
    pub skipped: Vec<(&'static str, usize)>,
}

impl Fixed {
    pub fn changed(&self) -> bool {
        !self.applied.is_empty()
    }
}

/// Why a fixed text was refused.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("the fixed Dockerfile no longer parses or plans ({0}); this is a bug in whittle check, please report it")]
    Reparse(whittle_dockerfile::Error),
    #[error("the fixes changed {what} (line {line}), which they were not meant to change; nothing was written")]
    Changed { line: usize, what: String },
}

/// Applies every fix of `findings` to `text` (edits are byte ranges of `text` without its
/// byte-order mark, as [`crate::check`] makes them).
pub fn apply(text: &str, findings: &[Finding]) -> Fixed {
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    // Accepted edit ranges by start, to test a new edit against its neighbours only.
    let mut taken: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    // Accepted ranges never overlap, so a new range can only meet the ranges that start inside
    // it and the last one that starts before it.
    let conflicts = |taken: &std::collections::BTreeMap<usize, Vec<usize>>, s: usize, e: usize| {
        let meets = |(start, ends): (&usize, &Vec<usize>)| {
            ends.iter().any(|end| overlaps((*start, *end), (s, e)))
        };
        taken.range(s..=e).any(meets) || taken.range(..s).next_back().is_some_and(meets)
    };
    let mut edits = Vec::new();
    let mut applied = Vec::new();
    let mut skipped = Vec::new();
    for f in findings {
        let Some(fix) = &f.fix else { continue };
        let ok = fix.edits.iter().all(|e| {
            e.start <= e.end
                && e.end <= body.len()
                && body.is_char_boundary(e.start)
                && body.is_char_boundary(e.end)
                && !conflicts(&taken, e.start, e.end)
        }) && !self_overlapping(&fix.edits);
        if !ok {
            skipped.push((f.rule, f.span.line));
            continue;
        }
        for e in &fix.edits {
            taken.entry(e.start).or_default().push(e.end);
            edits.push(e.clone());
        }
        applied.push((f.rule, f.span.line, fix.description.clone()));
    }
    // One forward pass: the text between edits, then each edit's replacement.
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out =
        String::with_capacity(body.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut at = 0;
    for e in &edits {
        out.push_str(body.get(at..e.start).unwrap_or(""));
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(body.get(at..).unwrap_or(""));
    Fixed {
        text: format!("{bom}{out}"),
        applied,
        skipped,
    }
}

/// Whether two edits of the same fix overlap each other.
fn self_overlapping(edits: &[crate::Edit]) -> bool {
    let mut r: Vec<(usize, usize)> = edits.iter().map(|e| (e.start, e.end)).collect();
    r.sort_unstable();
    r.windows(2).any(|w| overlaps(w[0], w[1]))
}

/// Two ranges conflict when they share a byte, or when both insert at the same point, or one
/// inserts inside the other.
fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    if a.0 == a.1 || b.0 == b.1 {
        return (a.0 == b.0) || (a.0 < b.0 && b.0 < a.1) || (b.0 < a.0 && a.0 < b.1);
    }
    a.0 < b.1 && b.0 < a.1
}

/// Checks that `fixed` plans like `input.text` except at the lines the fixes touched, and there
/// only in the ways fixes change things (ADD to COPY, MAINTAINER to LABEL, CMD/ENTRYPOINT to
/// JSON form, a pinned digest, a lower-cased protocol, an added flag).
pub fn verify(input: &Input, fixed: &str, findings: &[Finding]) -> Result<(), FixError> {
    let before = whittle_dockerfile::parse(input.text).map_err(FixError::Reparse)?;
    let after = whittle_dockerfile::parse(fixed).map_err(FixError::Reparse)?;
    let fixed_input = Input {
        text: fixed,
        ..input.clone()
    };
    let plan_a = match crate::plan_for(&before, input) {
        Ok(p) => p,
        Err(crate::CheckError::Dockerfile(e)) => {
            // The original does not plan: the fixed text must parse to as many instructions
            // and fail to plan the same way.
            let same = before.instructions.len() == after.instructions.len()
                && matches!(crate::plan_for(&after, &fixed_input), Err(crate::CheckError::Dockerfile(f)) if f.kind == e.kind);
            return if same {
                Ok(())
            } else {
                Err(FixError::Changed {
                    line: e.pos.line,
                    what: "how the Dockerfile fails to plan".into(),
                })
            };
        }
        Err(e) => return Err(unwrap_dockerfile(e)),
    };
    let plan_b = crate::plan_for(&after, &fixed_input).map_err(unwrap_dockerfile)?;
    let src = crate::source::Source::new(input.text);
    let touched: BTreeSet<usize> = findings
        .iter()
        .filter_map(|f| f.fix.as_ref())
        .flat_map(|x| x.edits.iter())
        .map(|e| src.line_of_offset(e.start))
        .collect();
    // Each instruction's last line, to tell which edits fall inside a step.
    let ends: std::collections::HashMap<usize, usize> = before
        .instructions
        .iter()
        .map(|i| (i.pos.line, i.end_line.max(i.pos.line)))
        .collect();
    if plan_a.stages.len() != plan_b.stages.len() || plan_a.target != plan_b.target {
        return Err(FixError::Changed {
            line: 0,
            what: "the stages".into(),
        });
    }
    for (a, b) in plan_a.stages.iter().zip(&plan_b.stages) {
        let line = a.pos.line;
        if a.name != b.name || a.needed != b.needed || a.deps.len() != b.deps.len() {
            return Err(FixError::Changed {
                line,
                what: format!("stage {}", a.label()),
            });
        }
        if a.base != b.base && !(touched.contains(&line) && pinned(&a.base, &b.base)) {
            return Err(FixError::Changed {
                line,
                what: format!("the base of stage {}", a.label()),
            });
        }
        if a.steps.len() != b.steps.len() {
            return Err(FixError::Changed {
                line,
                what: format!("the steps of stage {}", a.label()),
            });
        }
        for (sa, sb) in a.steps.iter().zip(&b.steps) {
            if sa.op == sb.op {
                continue;
            }
            let end = ends.get(&sa.pos.line).copied().unwrap_or(sa.pos.line);
            let near = touched.range(sa.pos.line..=end).next().is_some();
            if !(near && same_kind(&sa.op, &sb.op)) {
                return Err(FixError::Changed {
                    line: sa.pos.line,
                    what: format!("the step `{}`", crate::output::shorten(&sa.original)),
                });
            }
        }
    }
    Ok(())
}

fn unwrap_dockerfile(e: crate::CheckError) -> FixError {
    match e {
        crate::CheckError::Dockerfile(e) => FixError::Reparse(e),
        other => FixError::Changed {
            line: 0,
            what: other.to_string(),
        },
    }
}

fn pinned(a: &Base, b: &Base) -> bool {
    match (a, b) {
        (Base::Image { reference: x }, Base::Image { reference: y }) => {
            y.starts_with(x.as_str()) && y[x.len()..].starts_with('@')
        }
        _ => false,
    }
}

/// The changes a fix may make to a step.
fn same_kind(a: &Op, b: &Op) -> bool {
    matches!(
        (a, b),
        (Op::Add(_), Op::Copy(_))
            | (Op::Maintainer { .. }, Op::Label { .. })
            | (Op::Cmd { .. }, Op::Cmd { .. })
            | (Op::Entrypoint { .. }, Op::Entrypoint { .. })
            | (Op::Run { .. }, Op::Run { .. })
            | (Op::Expose { .. }, Op::Expose { .. })
    )
}

/// A unified diff from `old` to `new`.
pub fn diff(file: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&header("a", file), &header("b", file))
        .to_string()
}

/// `a/Dockerfile` for relative names, as git writes them; absolute paths as they are.
fn header(side: &str, file: &str) -> String {
    if file.starts_with('/') || file.starts_with('<') {
        file.to_string()
    } else {
        format!("{side}/{}", file.trim_start_matches("./"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_edits() {
        assert!(overlaps((0, 4), (2, 6)));
        assert!(!overlaps((0, 4), (4, 6)));
        assert!(overlaps((3, 3), (3, 3)));
        assert!(overlaps((1, 5), (3, 3)));
        assert!(!overlaps((1, 5), (5, 5)));
    }

    #[test]
    fn fixes_apply_and_verify() {
        let text = "from alpine:3.20 as build\nRUN echo hi\nMAINTAINER me@example.com\nENV A b\nCMD run me\n";
        let input = Input::new("Dockerfile", text);
        let report = crate::check(&input).unwrap();
        let fixed = apply(text, &report.findings);
        assert!(fixed.changed());
        verify(&input, &fixed.text, &report.findings).unwrap();
        assert!(fixed.text.contains("RUN echo hi") || fixed.text.contains("run echo hi"));
        let d = diff("Dockerfile", text, &fixed.text);
        assert!(d.starts_with("--- a/Dockerfile\n+++ b/Dockerfile\n"), "{d}");
    }

    #[test]
    fn verify_refuses_a_changed_step() {
        let text = "FROM alpine:3.20\nRUN echo hi\n";
        let input = Input::new("Dockerfile", text);
        let err = verify(&input, "FROM alpine:3.20\nRUN echo bye\n", &[]).unwrap_err();
        assert!(matches!(err, FixError::Changed { line: 2, .. }), "{err}");
    }
}
