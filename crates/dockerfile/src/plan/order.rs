//! Stage dependencies: cycle and definition-order checks, what the target needs, build order
//! and parallel waves.

use super::stages::Planner;
use super::{DepKind, Stage};
use crate::error::{Error, ErrorKind, Pos, Result};

impl Planner<'_> {
    pub(super) fn check_cycles(&self, stages: &[Stage]) -> Result<()> {
        // Iterative DFS with colours from each stage in file order; the error names the stage
        // the search started from (as BuildKit does) and the hint shows the whole loop.
        let n = stages.len();
        let mut colour = vec![0u8; n];
        for start in 0..n {
            if colour[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            colour[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let deps = &stages[node].deps;
                if *next < deps.len() {
                    let d = &deps[*next];
                    *next += 1;
                    match colour[d.stage] {
                        0 => {
                            colour[d.stage] = 1;
                            stack.push((d.stage, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(s, _)| *s == d.stage).unwrap_or(0);
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(s, _)| stages[*s].label())
                                .collect();
                            path.push(stages[d.stage].label());
                            // Point at the first edge of the loop, as BuildKit does.
                            let (first, taken) = stack[from];
                            let line = stages[first]
                                .deps
                                .get(taken.saturating_sub(1))
                                .map_or(d.line, |e| e.line);
                            return Err(Error::new(
                                ErrorKind::Cycle(stages[start].label()),
                                Pos::new(line, 1),
                            )
                            .with_hint(format!(
                                "the stages form a loop ({}); a stage cannot copy from or mount itself, directly or through others",
                                path.join(" -> ")
                            )));
                        }
                        _ => {}
                    }
                } else {
                    colour[node] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }
}

/// A stage may only copy from or mount a stage defined before it (BuildKit, Dockerfile 1.7).
pub(super) fn check_definition_order(stages: &[Stage], needed: &[bool]) -> Result<()> {
    for st in stages.iter().filter(|s| needed[s.index]) {
        for d in &st.deps {
            if d.stage > st.index {
                let verb = if d.kind == DepKind::MountFrom {
                    "mount"
                } else {
                    "copy"
                };
                return Err(Error::new(
                    ErrorKind::Stage(format!(
                        "cannot {verb} from stage {:?}, it needs to be defined before current stage {:?}",
                        stages[d.stage].label(),
                        st.label()
                    )),
                    Pos::new(d.line, 1),
                )
                .with_hint(format!(
                    "move stage {} above stage {} in the Dockerfile",
                    stages[d.stage].label(),
                    st.label()
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn reachable(stages: &[Stage], target: usize) -> Vec<bool> {
    let mut seen = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if std::mem::replace(&mut seen[s], true) {
            continue;
        }
        todo.extend(stages[s].deps.iter().map(|d| d.stage));
    }
    seen
}

/// Dependency order; among stages that are ready at the same time, the earlier in the file first.
/// Kahn's algorithm with the ready stages in a min-heap: O(E log V).
pub(super) fn topo_order(stages: &[Stage], needed: &[bool]) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut waiting = vec![0usize; stages.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, st) in stages.iter().enumerate().filter(|(i, _)| needed[*i]) {
        for d in st.deps.iter().filter(|d| d.stage != i) {
            waiting[i] += 1;
            readers[d.stage].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..stages.len())
        .filter(|&i| needed[i] && waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::new();
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &r in &readers[i] {
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.push(Reverse(r));
            }
        }
    }
    order
}

pub(super) fn waves(stages: &[Stage], order: &[usize]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; stages.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in order {
        let l = stages[i]
            .deps
            .iter()
            .map(|d| level[d.stage] + 1)
            .max()
            .unwrap_or(0);
        level[i] = l;
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(i);
    }
    out
}
