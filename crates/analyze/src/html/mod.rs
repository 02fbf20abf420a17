//! `whittle analyze --format html`: the analysis as one self-contained page. No network: the
//! CSS and the script (`page.css`, `page.js`, hand-written, no framework) are inlined, there
//! are no fonts, images or links to fetch. The page holds:
//!
//! - the image's totals and dive's figures, and dive's inefficient files;
//! - a treemap of the final filesystem coloured by the layer that last wrote each file
//!   (`treemap.rs`: squarified, computed here, bounded by the [`FsMap`]);
//! - the layers: size, files added, changed and removed, the Dockerfile `file:line` and stage
//!   when whittle built the image, the history's command;
//! - the findings with their bytes, layers, example paths and fixes.
//!
//! Everything from the image (names, paths, history, titles that quote paths) goes through
//! [`text::esc`]; the page's script reads only attributes this module wrote (layer numbers).

pub(crate) mod text;
pub mod treemap;

use crate::fsmap::FsMap;
use crate::report::{Analysis, Finding, Layer};
use std::fmt::Write as _;
use std::io::{self, Write};
use text::{esc, esc_short, percent, size};

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// Rows of dive's inefficient files shown.
const MAX_INEFFICIENT: usize = 50;

/// The colour of layer `i`: hues spread by the golden angle, two lightnesses alternating.
pub fn layer_colour(i: usize) -> String {
    let hue = (i as f64 * 137.508) % 360.0;
    let light = if i % 2 == 0 { 58 } else { 70 };
    format!("hsl({hue:.0},62%,{light}%)")
}

/// Writes the page.
pub fn render(w: &mut dyn Write, a: &Analysis, map: &FsMap) -> io::Result<()> {
    w.write_all(page(a, map).as_bytes())
}

/// The page as a string.
pub fn page(a: &Analysis, map: &FsMap) -> String {
    let mut s = String::with_capacity(64 << 10);
    let name = esc(&a.image.name);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
         <title>whittle analyze: {name}</title><style>{CSS}"
    );
    for i in 0..a.layer.len() {
        let c = layer_colour(i);
        let _ = write!(s, ".l{i}{{fill:{c}}}.b{i}{{background:{c}}}");
    }
    s.push_str("</style></head><body>");
    header(&mut s, a);
    treemap_section(&mut s, a, map);
    layers(&mut s, a);
    findings(&mut s, a);
    inefficient(&mut s, a);
    s.push_str("</main><script>");
    s.push_str(JS);
    s.push_str("</script></body></html>\n");
    s
}

/// The page's header, then `<main>` opened with dive's figures.
fn header(s: &mut String, a: &Analysis) {
    let img = &a.image;
    let compressed = img
        .blob_size_bytes
        .map(|b| format!(" ({} compressed)", size(b)))
        .unwrap_or_default();
    let _ = write!(
        s,
        "<header><h1>{}</h1><div>{}{compressed} in {} layers, {} files</div></header>",
        esc(&img.name),
        size(img.size_bytes),
        a.layer.len(),
        img.files
    );
    let _ = write!(
        s,
        "<main><section id=\"figures\"><h2>dive's figures</h2><div class=\"figs\">\
         <div class=\"fig\">efficiency<b id=\"efficiency\">{:.4} %</b></div>\
         <div class=\"fig\">wasted bytes<b id=\"wasted\">{}</b><span class=\"muted\">{} \
         bytes</span></div><div class=\"fig\">user wasted<b>{}</b></div>\
         <div class=\"fig\">findings<b>{}</b></div></div></section>",
        img.efficiency_score * 100.0,
        size(img.wasted_bytes),
        img.wasted_bytes,
        percent(img.user_wasted_percent),
        a.findings.len()
    );
}

fn treemap_section(s: &mut String, a: &Analysis, map: &FsMap) {
    let _ = write!(
        s,
        "<section id=\"treemap\"><h2>Final filesystem by layer</h2><p class=\"muted\">Each \
         rectangle is a file or directory, its area its size, its colour the layer that last \
         wrote it (closed directories and gathered small entries: the layer holding most of \
         their bytes). Hover for the path; hover or click a layer to pick out its files; click a \
         directory to zoom into it, and the path above the map to go back. \
         {} files in {} nodes (small entries gathered per directory).</p>\
         <div id=\"legend\">",
        map.root.files, map.nodes
    );
    for l in &a.layer {
        let _ = write!(
            s,
            "<span data-layer=\"{i}\"><i class=\"sw b{i}\"></i> {i}</span>",
            i = l.index
        );
    }
    s.push_str("</div><nav id=\"treemap-crumbs\" aria-label=\"zoomed directory\"></nav>");
    s.push_str(&treemap::svg(map, &a.layer));
    s.push_str("</section>");
}

/// What made a layer, escaped: the Dockerfile step when known, and the history's command.
fn step(origin: Option<&crate::report::LayerOrigin>, command: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(o) = origin {
        let _ = write!(out, "<b class=\"origin\">{}</b> ", esc(&o.to_string()));
    }
    if let Some(c) = command {
        let _ = write!(out, "<code>{}</code>", esc_short(c, 300));
    }
    out
}

fn layers(s: &mut String, a: &Analysis) {
    s.push_str(
        "<section id=\"layers\"><h2>Layers</h2><table><thead><tr><th>#</th>\
         <th class=\"n\">size</th><th class=\"n\">added</th><th class=\"n\">changed</th>\
         <th class=\"n\">removed</th><th>made by</th></tr></thead><tbody>",
    );
    for l in &a.layer {
        layer_row(s, l);
    }
    s.push_str("</tbody></table></section>");
}

fn layer_row(s: &mut String, l: &Layer) {
    let files = |n: u64, b: u64| {
        if n == 0 {
            "0".to_string()
        } else {
            format!("{n} <span class=\"muted\">({})</span>", size(b))
        }
    };
    let _ = write!(
        s,
        "<tr class=\"layer\" id=\"layer-{i}\" data-layer=\"{i}\"><td><i class=\"sw b{i}\"></i> \
         {i}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td>{}</td></tr>",
        size(l.size_bytes),
        files(l.files_added, l.bytes_added),
        files(l.files_changed, l.bytes_changed),
        files(l.files_removed, l.bytes_removed),
        step(l.origin.as_ref(), Some(&l.command)),
        i = l.index
    );
}

fn findings(s: &mut String, a: &Analysis) {
    s.push_str("<section id=\"findings\"><h2>Findings</h2>");
    if a.findings.is_empty() {
        s.push_str("<p>None.</p>");
    }
    for (n, f) in a.findings.iter().enumerate() {
        finding(s, n, f);
    }
    s.push_str("</section>");
}

fn finding(s: &mut String, n: usize, f: &Finding) {
    let kind = serde_json::to_value(f.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = write!(
        s,
        "<div class=\"finding {kind}\" id=\"finding-{n}\" data-kind=\"{kind}\"><h3>\
         <span class=\"kind\">[{kind}]</span> {}</h3><div>{} in {} files</div>",
        esc(&f.title),
        size(f.bytes),
        f.files
    );
    let _ = write!(
        s,
        "<div data-layer=\"{l}\">layer {l}: {}</div>",
        step(f.origin.as_ref(), f.created_by.as_deref()),
        l = f.layer
    );
    if let Some(r) = f.related_layer {
        let _ = write!(
            s,
            "<div data-layer=\"{r}\">layer {r}: {}</div>",
            step(f.related_origin.as_ref(), f.related_created_by.as_deref())
        );
    }
    if !f.paths.is_empty() {
        s.push_str("<ul class=\"mono\">");
        for p in &f.paths {
            let _ = write!(
                s,
                "<li>{} <span class=\"muted\">({})</span></li>",
                esc(&p.path),
                size(p.bytes)
            );
        }
        if f.files as usize > f.paths.len() {
            let _ = write!(
                s,
                "<li class=\"muted\">… {} more</li>",
                f.files as usize - f.paths.len()
            );
        }
        s.push_str("</ul>");
    }
    let _ = write!(
        s,
        "<div class=\"fix\"><b>Fix:</b> {}</div></div>",
        esc(&f.fix)
    );
}

fn inefficient(s: &mut String, a: &Analysis) {
    let refs = &a.image.file_reference;
    s.push_str(
        "<section id=\"inefficient\"><h2>dive's inefficient files</h2><table><thead><tr>\
         <th class=\"n\">count</th><th class=\"n\">wasted</th><th>path</th></tr></thead><tbody>",
    );
    for f in refs.iter().take(MAX_INEFFICIENT) {
        let _ = write!(
            s,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"mono\">{}</td></tr>",
            f.count,
            size(f.size_bytes),
            esc(&f.file)
        );
    }
    s.push_str("</tbody></table>");
    if refs.len() > MAX_INEFFICIENT {
        let _ = write!(
            s,
            "<p class=\"muted\">… {} more (--format json lists all)</p>",
            refs.len() - MAX_INEFFICIENT
        );
    }
    s.push_str("</section>");
}
