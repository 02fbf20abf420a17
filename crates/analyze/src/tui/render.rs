//! Draws the interactive view with ratatui: the layer list, the selected layer's details and
//! the image's figures on the left, the file tree as of the selected layer on the right, a
//! status line of keys at the bottom, and the help over everything when asked for. Marks are a
//! letter and a colour (`A` green, `M` yellow, `D` red), so the view reads without colour.

use super::model::{clean, App, Pane, Row, KEYS};
use super::stack::Status;
use crate::html::text::size;
use crate::scan::Kind;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

fn status_style(s: Status) -> Style {
    match s {
        Status::Added => Style::new().fg(Color::Green),
        Status::Changed => Style::new().fg(Color::Yellow),
        Status::Removed => Style::new().fg(Color::Red),
        Status::Unchanged => Style::new(),
    }
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let b = Block::bordered().title(title);
    if focused {
        b.border_style(Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD))
    } else {
        b
    }
}

/// The first row to show so that `sel` is inside a window of `height` rows.
fn scrolled(offset: usize, sel: usize, height: usize) -> usize {
    if height == 0 {
        return sel;
    }
    if sel < offset {
        sel
    } else if sel >= offset + height {
        sel + 1 - height
    } else {
        offset
    }
}

fn selected_style(focused: bool) -> Style {
    if focused {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}

/// `drwxr-xr-x` for a node.
fn mode_string(kind: Kind, mode: u32) -> String {
    let t = match kind {
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::HardLink => 'h',
        Kind::Special => 'c',
        Kind::File | Kind::Whiteout => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// What a layer's row says: `Dockerfile:12 (stage builder) RUN make` when known, else the
/// history's command.
fn layer_text(l: &crate::report::Layer) -> String {
    let cmd = clean(&l.command.replace('\n', " "));
    match &l.origin {
        Some(o) => clean(&format!("{o} {cmd}")),
        None => cmd,
    }
}

/// Draws the whole view. Records the tree's height and the lists' offsets in `app`.
pub fn draw(f: &mut Frame, app: &mut App) {
    let [main, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(f.area());
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main);
    let [layers, details, image] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(7),
        Constraint::Length(6),
    ])
    .areas(left);
    draw_layers(f, app, layers);
    draw_details(f, app, details);
    draw_image(f, app, image);
    draw_tree(f, app, right);
    let hint = "Tab pane  ↑↓/jk move  Enter/Space collapse  w wasted  c changes  ? help  q quit";
    f.render_widget(
        Paragraph::new(hint).style(Style::new().add_modifier(Modifier::DIM)),
        status,
    );
    if app.help() {
        draw_help(f, f.area());
    }
}

fn draw_layers(f: &mut Frame, app: &mut App, area: Rect) {
    let focused = app.focus() == Pane::Layers;
    let block = pane_block(
        format!(" Layers ({}) ", app.analysis().layer.len()),
        focused,
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    let h = inner.height as usize;
    app.layer_offset = scrolled(app.layer_offset, app.layer(), h);
    let lines: Vec<Line> = app
        .analysis()
        .layer
        .iter()
        .enumerate()
        .skip(app.layer_offset)
        .take(h)
        .map(|(i, l)| {
            let text = format!("{:>3} {:>9}  {}", i, size(l.size_bytes), layer_text(l));
            let mut line = Line::from(text);
            if i == app.layer() {
                line = line.style(selected_style(focused));
            }
            line
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}

fn draw_details(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(format!(" Layer {} ", app.layer()));
    let (a, c, r) = app.change_counts();
    let mut lines = vec![];
    if let Some(l) = app.analysis().layer.get(app.layer()) {
        lines.push(Line::from(vec![
            Span::raw(format!("Size {}  ", size(l.size_bytes))),
            Span::styled(format!("A {a}"), status_style(Status::Added)),
            Span::raw("  "),
            Span::styled(format!("M {c}"), status_style(Status::Changed)),
            Span::raw("  "),
            Span::styled(format!("D {r}"), status_style(Status::Removed)),
        ]));
        if let Some(o) = &l.origin {
            lines.push(Line::from(format!(
                "Dockerfile: {}:{}  stage: {}",
                clean(&o.file),
                o.line,
                clean(&o.stage)
            )));
        }
        lines.push(Line::from(format!(
            "Digest: {}",
            clean(l.blob_digest.as_deref().unwrap_or(&l.id))
        )));
        // Last: it may wrap over the remaining lines.
        lines.push(Line::from(format!(
            "Command: {}",
            clean(&l.command.replace('\n', " "))
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_image(f: &mut Frame, app: &App, area: Rect) {
    let i = &app.analysis().image;
    let pct = if i.user_wasted_percent.is_finite() {
        format!("{:.1} %", i.user_wasted_percent * 100.0)
    } else {
        "n/a".into()
    };
    let lines = vec![
        Line::from(format!("Image: {}", clean(&i.name))),
        Line::from(format!("Size {}  files {}", size(i.size_bytes), i.files)),
        Line::from(format!(
            "Efficiency {:.2} %  wasted {}",
            i.efficiency_score * 100.0,
            size(i.wasted_bytes)
        )),
        Line::from(format!(
            "User wasted {pct}  findings {}",
            app.analysis().findings.len()
        )),
    ];
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Image ")),
        area,
    );
}

fn tree_line(r: &Row, selected: bool, focused: bool) -> Line<'static> {
    let n = r.node;
    let letter = n.status.letter();
    let indent = "  ".repeat(n.depth);
    let arrow = if n.kind == Kind::Dir && n.has_children {
        if r.collapsed {
            "▸ "
        } else {
            "▾ "
        }
    } else {
        "  "
    };
    let shown_size = if n.kind == Kind::Dir { n.total } else { n.size };
    let mut name = r.name();
    if let Some(t) = &n.link {
        name.push_str(" → ");
        name.push_str(&clean(&String::from_utf8_lossy(t)));
    }
    let mut spans = vec![
        Span::styled(
            format!("{letter} "),
            status_style(n.status).add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "{} {:>9} {:>5}:{:<5} ",
            mode_string(n.kind, n.mode),
            size(shown_size),
            n.owner.0,
            n.owner.1
        )),
        Span::raw(indent),
        Span::raw(arrow),
        Span::styled(name, status_style(n.status)),
    ];
    if r.wasted {
        spans.push(Span::styled(" [wasted]", Style::new().fg(Color::Magenta)));
    }
    let line = Line::from(spans);
    if selected {
        line.style(selected_style(focused))
    } else {
        line
    }
}

fn draw_tree(f: &mut Frame, app: &mut App, area: Rect) {
    let focused = app.focus() == Pane::Tree;
    let mut title = format!(" Files as of layer {} ", app.layer());
    if app.only_changes() {
        title.push_str("[changes of this layer] ");
    }
    if app.only_wasted() {
        title.push_str("[wasted only] ");
    }
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let h = inner.height as usize;
    app.page = h.saturating_sub(1).max(1);
    app.tree_offset = scrolled(app.tree_offset, app.tree_selected(), h);
    let sel = app.tree_selected();
    let lines: Vec<Line> = app
        .rows()
        .enumerate()
        .skip(app.tree_offset)
        .take(h)
        .map(|(i, r)| tree_line(&r, i == sel, focused))
        .collect();
    if lines.is_empty() {
        f.render_widget(Paragraph::new("(nothing to show)"), inner);
    } else {
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn draw_help(f: &mut Frame, area: Rect) {
    let w = area.width.min(74);
    let h = area.height.min(KEYS.len() as u16 + 6);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(format!("{k:>20}  {what}")))
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled("A", status_style(Status::Added)),
        Span::raw(" added  "),
        Span::styled("M", status_style(Status::Changed)),
        Span::raw(" changed  "),
        Span::styled("D", status_style(Status::Removed)),
        Span::raw(" removed, by the selected layer"),
    ]));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (Esc or ? to close) ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::super::model::Key;
    use super::super::stack::tests::three_layers;
    use super::*;
    use crate::path;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::sync::Arc;

    fn app() -> App {
        let mut a = crate::report::Analysis {
            layer: (0..3)
                .map(|i| crate::report::Layer {
                    index: i,
                    command: format!("RUN step {i}"),
                    size_bytes: 1000 * (i as u64 + 1),
                    ..crate::report::Layer::default()
                })
                .collect(),
            image: crate::report::ImageSummary::default(),
            findings: vec![],
        };
        a.layer[1].origin = Some(crate::report::LayerOrigin {
            file: "Dockerfile".into(),
            line: 7,
            stage: "build".into(),
        });
        App::new(a, three_layers(), vec![Arc::from(path::key("etc/a"))])
    }

    fn screen(app: &mut App) -> String {
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn draws_layers_tree_and_marks() {
        let mut a = app();
        let s = screen(&mut a);
        assert!(s.contains("Layers (3)"), "{s}");
        assert!(s.contains("Dockerfile:7 (stage build) RUN"), "{s}");
        assert!(s.contains("Files as of layer 2"), "{s}");
        assert!(s.contains("A -rw-r--r--"), "{s}");
        assert!(s.contains("▾ app"), "{s}");
        assert!(!s.contains("etc/b") && !s.contains(" b "), "{s}");
        a.handle(Key::Up);
        let s = screen(&mut a);
        assert!(s.contains("Files as of layer 1"), "{s}");
        assert!(s.contains("Dockerfile: Dockerfile:7  stage: build"), "{s}");
        let line_of = |name: &str| s.lines().find(|l| l.contains(name)).unwrap().to_string();
        assert!(line_of("  b").contains("D -rw"), "{s}");
        assert!(line_of("  a [wasted]").contains("M -rw"), "{s}");
        assert!(line_of("  x").contains("1.00 kB"), "{s}");
    }

    #[test]
    fn help_and_filters_show() {
        let mut a = app();
        a.handle(Key::Char('w'));
        let s = screen(&mut a);
        assert!(s.contains("[wasted only]"), "{s}");
        assert!(!s.contains("sh"), "{s}");
        a.handle(Key::Char('?'));
        let s = screen(&mut a);
        assert!(s.contains("show only wasted"), "{s}");
    }

    #[test]
    fn the_selection_stays_in_view() {
        assert_eq!(scrolled(0, 5, 3), 3);
        assert_eq!(scrolled(3, 1, 3), 1);
        assert_eq!(scrolled(2, 3, 3), 2);
        // A tiny terminal draws without panicking.
        let mut a = app();
        let mut t = Terminal::new(TestBackend::new(10, 4)).unwrap();
        a.handle(Key::Char('?'));
        t.draw(|f| draw(f, &mut a)).unwrap();
    }
}
