//! The treemap: a squarified layout (Bruls, Huizing, van Wijk) of the [`FsMap`] computed here,
//! written as one inline SVG of positioned rectangles. Directories are frames holding their
//! children; files, closed directories and gathered small entries are filled with the colour
//! of their layer (class `lN`, `data-l="N"` for the page's script). Names and paths are escaped;
//! every rectangle has a `<title>` with its path, size and layer. The map is bounded (see
//! `fsmap.rs`), so the SVG is too. Each open directory is a `<g>` with its path (`data-path`)
//! and its box (`data-box`, `x y w h`), which the page's script zooms to (drill-down).

use super::text::{esc, esc_short, size};
use crate::fsmap::{FsMap, MapKind, MapNode};
use crate::report::Layer;
use std::fmt::Write as _;

/// Width of the drawing, in SVG units.
pub const WIDTH: f64 = 1200.0;
/// Height of the drawing.
pub const HEIGHT: f64 = 720.0;

/// A rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// The worst aspect ratio of a row of areas summing to `sum` laid along a side of length `side`.
fn worst(sum: f64, min: f64, max: f64, side: f64) -> f64 {
    let s2 = sum * sum;
    let w2 = side * side;
    (w2 * max / s2).max(s2 / (w2 * min))
}

/// Lays out `weights` (largest first, all positive) in `r`, areas proportional to weights.
/// Returns one rectangle per weight, in order.
pub fn squarify(weights: &[f64], r: Rect) -> Vec<Rect> {
    let total: f64 = weights.iter().sum();
    let mut out = Vec::with_capacity(weights.len());
    if weights.is_empty() || total <= 0.0 || r.w <= 0.0 || r.h <= 0.0 {
        return vec![
            Rect {
                w: 0.0,
                h: 0.0,
                ..r
            };
            weights.len()
        ];
    }
    let scale = r.w * r.h / total;
    let areas: Vec<f64> = weights.iter().map(|w| w * scale).collect();
    let mut rest = r;
    let mut i = 0;
    while i < areas.len() {
        let side = rest.w.min(rest.h);
        let (mut sum, mut min, mut max) = (areas[i], areas[i], areas[i]);
        let mut j = i + 1;
        while j < areas.len() {
            let a = areas[j];
            let (s2, mn, mx) = (sum + a, min.min(a), max.max(a));
            if worst(s2, mn, mx, side) > worst(sum, min, max, side) {
                break;
            }
            (sum, min, max) = (s2, mn, mx);
            j += 1;
        }
        // The row fills the shorter side; its thickness is its area over that side.
        if rest.w >= rest.h {
            let thick = if rest.h > 0.0 { sum / rest.h } else { 0.0 };
            let mut y = rest.y;
            for a in &areas[i..j] {
                let h = if thick > 0.0 { a / thick } else { 0.0 };
                out.push(Rect {
                    x: rest.x,
                    y,
                    w: thick,
                    h,
                });
                y += h;
            }
            rest.x += thick;
            rest.w = (rest.w - thick).max(0.0);
        } else {
            let thick = if rest.w > 0.0 { sum / rest.w } else { 0.0 };
            let mut x = rest.x;
            for a in &areas[i..j] {
                let w = if thick > 0.0 { a / thick } else { 0.0 };
                out.push(Rect {
                    x,
                    y: rest.y,
                    w,
                    h: thick,
                });
                x += w;
            }
            rest.y += thick;
            rest.h = (rest.h - thick).max(0.0);
        }
        i = j;
    }
    out
}

/// The SVG of the map; `layers` name each layer's step in the tooltips.
pub fn svg(map: &FsMap, layers: &[Layer]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"treemap-svg\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} \
         {HEIGHT}\" role=\"img\" aria-label=\"treemap of the final filesystem\">"
    );
    let r = Rect {
        x: 0.0,
        y: 0.0,
        w: WIDTH,
        h: HEIGHT,
    };
    node(&mut s, &map.root, r, layers);
    s.push_str("</svg>");
    s
}

fn tooltip(n: &MapNode, layers: &[Layer]) -> String {
    let what = match n.kind {
        MapKind::Rest => format!("{} ({} in {})", n.name, size(n.bytes), n.path),
        MapKind::File => format!("{} ({})", n.path, size(n.bytes)),
        MapKind::Dir | MapKind::Closed => {
            format!("{} ({}, {} files)", n.path, size(n.bytes), n.files)
        }
    };
    let by = match n.kind {
        MapKind::File | MapKind::Dir => "last written by",
        MapKind::Closed | MapKind::Rest => "mostly from",
    };
    let step = layers
        .get(n.layer)
        .map(|l| match &l.origin {
            Some(o) => format!(": {o}"),
            None => format!(": {}", l.command.chars().take(120).collect::<String>()),
        })
        .unwrap_or_default();
    esc(&format!("{what}, {by} layer {}{step}", n.layer))
}

fn node(s: &mut String, n: &MapNode, r: Rect, layers: &[Layer]) {
    if r.w < 0.5 || r.h < 0.5 {
        return;
    }
    let (x, y, w, h) = (r.x, r.y, r.w, r.h);
    if n.kind == MapKind::Dir && !n.children.is_empty() {
        let _ = write!(
            s,
            "<g data-path=\"{}\" data-box=\"{x:.1} {y:.1} {w:.1} {h:.1}\"><rect class=\"d\" \
             x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"><title>{}</title></rect>",
            esc(&n.path),
            tooltip(n, layers)
        );
        let head = if h > 40.0 && w > 40.0 { 13.0 } else { 1.0 };
        if head > 1.0 {
            label(s, &n.name, x + 2.0, y + 10.0, w - 4.0, "dl");
        }
        let inner = Rect {
            x: x + 1.0,
            y: y + head,
            w: (w - 2.0).max(0.0),
            h: (h - head - 1.0).max(0.0),
        };
        let kids: Vec<&MapNode> = n.children.iter().filter(|c| c.bytes > 0).collect();
        let weights: Vec<f64> = kids.iter().map(|c| c.bytes as f64).collect();
        for (c, cr) in kids.iter().zip(squarify(&weights, inner)) {
            node(s, c, cr, layers);
        }
        s.push_str("</g>");
        return;
    }
    let kind = match n.kind {
        MapKind::Rest => " rest",
        MapKind::Closed | MapKind::Dir => " closed",
        MapKind::File => "",
    };
    let _ = write!(
        s,
        "<rect class=\"l{l}{kind}\" data-l=\"{l}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
         height=\"{h:.1}\"><title>{}</title></rect>",
        tooltip(n, layers),
        l = n.layer
    );
    if w > 40.0 && h > 14.0 {
        label(s, &n.name, x + 3.0, y + 11.0, w - 6.0, "fl");
    }
}

/// A name inside a rectangle, cut to what fits (about 6 units a character at the page's size).
fn label(s: &mut String, name: &str, x: f64, y: f64, w: f64, class: &str) {
    let fit = (w / 6.0) as usize;
    if fit < 3 {
        return;
    }
    let _ = write!(
        s,
        "<text class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\">{}</text>",
        esc_short(name, fit)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squarified_rectangles_tile_the_area() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 600.0,
            h: 400.0,
        };
        // The paper's example: 6 6 4 3 2 2 1 on 6x4.
        let w = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0];
        let rs = squarify(&w, r);
        assert_eq!(rs.len(), w.len());
        let area: f64 = rs.iter().map(|r| r.w * r.h).sum();
        assert!((area - 240_000.0).abs() < 1e-6, "{area}");
        for (a, b) in rs.iter().zip(w) {
            assert!((a.w * a.h - b * 10_000.0).abs() < 1e-6, "{a:?}");
            assert!(a.x >= 0.0 && a.y >= 0.0 && a.x + a.w <= 600.0 + 1e-9);
            assert!(a.y + a.h <= 400.0 + 1e-9);
        }
        // The first row is the paper's: 6 and 6 stacked in the left half (3 of 6 wide).
        assert!((rs[0].w - 300.0).abs() < 1e-9 && rs[1].x.abs() < 1e-9);
        assert!((rs[1].y - 200.0).abs() < 1e-9);
        for a in &rs {
            assert!(a.w.max(a.h) / a.w.min(a.h) < 4.0, "{a:?}");
        }
    }

    #[test]
    fn degenerate_inputs_make_empty_rectangles() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 10.0,
        };
        assert!(squarify(&[1.0, 2.0], r).iter().all(|r| r.w == 0.0));
        assert!(squarify(&[], r).is_empty());
    }
}
