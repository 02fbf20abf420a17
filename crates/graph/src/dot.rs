//! Graphviz output (`whittle plan --format dot`): one node per vertex, grouped by the stage
//! that first uses it, and one edge per input, labelled with what the input is for.

use crate::op::{MountKind, Op};
use crate::Graph;
use std::fmt::Write as _;

/// Escapes a string for a DOT double-quoted label.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The label of a vertex: its operation and what it does.
fn label(g: &Graph, i: usize) -> String {
    let v = &g.vertices[i];
    let what = match &v.op {
        Op::Scratch => "scratch".to_string(),
        Op::Image(s) => format!("image {} ({})", s.reference, s.platform),
        Op::Context(c) => match &c.name {
            Some(n) => format!("context {n}"),
            None => "build context".to_string(),
        },
        _ => v
            .origins
            .first()
            .map(|o| o.instruction.clone())
            .unwrap_or_else(|| v.op.kind().to_string()),
    };
    let short = v.digest.trim_start_matches("sha256:");
    format!(
        "{} {}\n{}",
        v.op.kind(),
        &short[..short.len().min(12)],
        shorten(&what, 60)
    )
}

/// The edges into vertex `i`: (input, what it is for).
fn edges(g: &Graph, i: usize) -> Vec<(usize, String)> {
    match &g.vertices[i].op {
        Op::Exec(e) => std::iter::once((e.root.0, String::new()))
            .chain(e.mounts.iter().filter_map(|m| match &m.kind {
                MountKind::Bind { from, source, .. } => {
                    Some((from.0, format!("mount {source} at {}", m.target)))
                }
                _ => None,
            }))
            .collect(),
        Op::Copy(c) => [(c.onto.0, String::new()), (c.from.0, "from".into())]
            .into_iter()
            .chain(c.owner.users.map(|u| (u.0, "users".into())))
            .collect(),
        Op::Download(d) => std::iter::once((d.onto.0, String::new()))
            .chain(d.owner.users.map(|u| (u.0, "users".into())))
            .collect(),
        Op::Mkdir(m) => vec![(m.root.0, String::new())],
        Op::Merge(m) => m.inputs.iter().map(|x| (x.0, String::new())).collect(),
        Op::Scratch | Op::Image(_) | Op::Context(_) => Vec::new(),
    }
}

/// The graph in Graphviz's DOT language.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from("digraph build {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    // Sources outside any stage; other vertices in the cluster of their first stage.
    let mut clusters: Vec<(usize, String, Vec<usize>)> = Vec::new();
    for (i, v) in g.vertices.iter().enumerate() {
        let line = format!("  v{i} [label={}];\n", quote(&label(g, i)));
        match v.origins.first() {
            Some(o) if !matches!(v.op, Op::Scratch | Op::Image(_) | Op::Context(_)) => {
                match clusters.iter_mut().find(|c| c.0 == o.stage) {
                    Some(c) => c.2.push(i),
                    None => clusters.push((o.stage, o.label.clone(), vec![i])),
                }
            }
            _ => out.push_str(&line),
        }
    }
    for (stage, name, members) in &clusters {
        let _ = writeln!(out, "  subgraph cluster_{stage} {{");
        let _ = writeln!(out, "    label={};", quote(&format!("stage {name}")));
        for &i in members {
            let _ = writeln!(out, "    v{i} [label={}];", quote(&label(g, i)));
        }
        out.push_str("  }\n");
    }
    for i in 0..g.vertices.len() {
        for (from, what) in edges(g, i) {
            if what.is_empty() {
                let _ = writeln!(out, "  v{from} -> v{i};");
            } else {
                let _ = writeln!(out, "  v{from} -> v{i} [label={}];", quote(&what));
            }
        }
    }
    let t = g.target_image();
    let _ = writeln!(
        out,
        "  target [shape=doubleoctagon, label={}];\n  v{} -> target;",
        quote(&format!("image {}", t.label)),
        t.root.0
    );
    out.push_str("}\n");
    out
}
