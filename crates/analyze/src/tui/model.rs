//! The interactive view's state and what each key does, with no terminal: which pane has the
//! focus, the selected layer and the snapshot of the filesystem as of it, which directories are
//! collapsed, the filters, the rows the tree shows and the selected one. `render.rs` draws it;
//! `term.rs` feeds it keys.

use super::stack::{self, FsNode, Status, ViewLayer};
use crate::path;
use crate::report::Analysis;
use crate::scan::Kind;
use std::collections::HashSet;
use std::sync::Arc;

/// A key, as the model sees it (the terminal's key events mapped by `term.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Up arrow.
    Up,
    /// Down arrow.
    Down,
    /// Left arrow.
    Left,
    /// Right arrow.
    Right,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Tab.
    Tab,
    /// Shift-Tab.
    BackTab,
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Ctrl-C.
    Interrupt,
    /// A character (space included).
    Char(char),
}

/// What the caller should do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Draw again and wait for the next key.
    Continue,
    /// Leave the view.
    Quit,
}

/// The two panes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    /// The layer list.
    Layers,
    /// The file tree.
    Tree,
}

/// The keys and what they do, for the help and the status line.
pub const KEYS: &[(&str, &str)] = &[
    ("Tab", "switch between the layer list and the file tree"),
    ("Up/Down, k/j", "move the selection"),
    (
        "PgUp/PgDn, Home/End",
        "move a page, to the first, to the last",
    ),
    ("Enter, Space", "collapse or expand the selected directory"),
    (
        "Left/Right, h/l",
        "collapse / expand (Left on a file: go to its directory)",
    ),
    ("w", "show only wasted (inefficient) files"),
    ("c", "show only what the selected layer changed"),
    ("?", "show or hide this help"),
    ("q, Esc", "quit"),
];

/// The interactive view's state.
pub struct App {
    analysis: Analysis,
    layers: Vec<ViewLayer>,
    wasted: HashSet<Arc<[u8]>>,
    focus: Pane,
    layer: usize,
    nodes: Vec<FsNode>,
    rows: Vec<usize>,
    collapsed: HashSet<Arc<[u8]>>,
    only_wasted: bool,
    only_changes: bool,
    tree_sel: usize,
    help: bool,
    /// Rows the tree pane showed at the last draw (for page moves).
    pub(crate) page: usize,
    /// First row of each list shown at the last draw.
    pub(crate) tree_offset: usize,
    pub(crate) layer_offset: usize,
}

/// One row of the tree.
pub struct Row<'a> {
    /// The path.
    pub node: &'a FsNode,
    /// A directory whose children are hidden.
    pub collapsed: bool,
    /// One of dive's inefficient paths.
    pub wasted: bool,
}

impl Row<'_> {
    /// The last component of the path, control characters escaped.
    pub fn name(&self) -> String {
        clean(&String::from_utf8_lossy(path::name(&self.node.key)))
    }
}

pub use crate::report::clean;

impl App {
    /// The view of an analysed image: the analysis, the image's layers as the view needs them
    /// (bottom first, as many as `analysis.layer`), and the keys of dive's inefficient paths.
    /// The last layer is selected, the tree focused.
    pub fn new(analysis: Analysis, layers: Vec<ViewLayer>, wasted: Vec<Arc<[u8]>>) -> App {
        let layer = layers.len().saturating_sub(1);
        let mut app = App {
            analysis,
            layers,
            wasted: wasted.into_iter().collect(),
            focus: Pane::Layers,
            layer,
            nodes: Vec::new(),
            rows: Vec::new(),
            collapsed: HashSet::new(),
            only_wasted: false,
            only_changes: false,
            tree_sel: 0,
            help: false,
            page: 10,
            tree_offset: 0,
            layer_offset: 0,
        };
        app.select_layer(layer);
        app
    }

    /// The analysis shown.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Which pane has the focus.
    pub fn focus(&self) -> Pane {
        self.focus
    }

    /// The selected layer.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Whether only wasted files are shown.
    pub fn only_wasted(&self) -> bool {
        self.only_wasted
    }

    /// Whether only the selected layer's changes are shown.
    pub fn only_changes(&self) -> bool {
        self.only_changes
    }

    /// Whether the help is shown.
    pub fn help(&self) -> bool {
        self.help
    }

    /// The rows of the tree, in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> {
        self.rows.iter().map(move |&i| self.row(i))
    }

    fn row(&self, i: usize) -> Row<'_> {
        let node = &self.nodes[i];
        Row {
            node,
            collapsed: node.has_children && self.collapsed.contains(&node.key),
            wasted: self.wasted.contains(&node.key),
        }
    }

    /// Index of the selected row (0 when the tree is empty).
    pub fn tree_selected(&self) -> usize {
        self.tree_sel
    }

    /// The selected row.
    pub fn selected_row(&self) -> Option<Row<'_>> {
        self.rows.get(self.tree_sel).map(|&i| self.row(i))
    }

    /// Counts of the selected layer's added, changed and removed paths (directories too).
    pub fn change_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for n in &self.nodes {
            match n.status {
                Status::Added => c.0 += 1,
                Status::Changed => c.1 += 1,
                Status::Removed => c.2 += 1,
                Status::Unchanged => {}
            }
        }
        c
    }

    /// Handles one key.
    pub fn handle(&mut self, key: Key) -> Outcome {
        if key == Key::Interrupt {
            return Outcome::Quit;
        }
        if self.help {
            match key {
                Key::Char('q') => return Outcome::Quit,
                Key::Esc | Key::Char('?') | Key::Enter => self.help = false,
                _ => {}
            }
            return Outcome::Continue;
        }
        match key {
            Key::Char('q') | Key::Esc => return Outcome::Quit,
            Key::Char('?') => self.help = true,
            Key::Tab | Key::BackTab => {
                self.focus = match self.focus {
                    Pane::Layers => Pane::Tree,
                    Pane::Tree => Pane::Layers,
                }
            }
            Key::Char('w') => {
                self.only_wasted = !self.only_wasted;
                self.refresh_rows();
            }
            Key::Char('c') => {
                self.only_changes = !self.only_changes;
                self.refresh_rows();
            }
            Key::Up | Key::Char('k') => self.step(-1),
            Key::Down | Key::Char('j') => self.step(1),
            Key::PageUp => self.step(-(self.page.max(1) as isize)),
            Key::PageDown => self.step(self.page.max(1) as isize),
            Key::Home | Key::Char('g') => self.step(isize::MIN),
            Key::End | Key::Char('G') => self.step(isize::MAX),
            Key::Enter | Key::Char(' ') => match self.focus {
                Pane::Layers => self.focus = Pane::Tree,
                Pane::Tree => self.toggle_selected(None),
            },
            Key::Right | Key::Char('l') if self.focus == Pane::Tree => {
                self.toggle_selected(Some(false))
            }
            Key::Left | Key::Char('h') if self.focus == Pane::Tree => self.left(),
            _ => {}
        }
        Outcome::Continue
    }

    fn step(&mut self, by: isize) {
        let (cur, len) = match self.focus {
            Pane::Layers => (self.layer, self.layers.len()),
            Pane::Tree => (self.tree_sel, self.rows.len()),
        };
        if len == 0 {
            return;
        }
        let next = (cur as isize).saturating_add(by).clamp(0, len as isize - 1) as usize;
        match self.focus {
            Pane::Layers if next != self.layer => self.select_layer(next),
            Pane::Layers => {}
            Pane::Tree => self.tree_sel = next,
        }
    }

    /// Selects a layer: the tree becomes the filesystem as of it; the selected path stays
    /// selected when it is still there.
    pub fn select_layer(&mut self, layer: usize) {
        self.layer = layer.min(self.layers.len().saturating_sub(1));
        self.nodes = stack::snapshot(&self.layers, self.layer);
        self.refresh_rows();
    }

    /// Collapses (`Some(true)`), expands (`Some(false)`) or toggles (`None`) the selected
    /// directory.
    fn toggle_selected(&mut self, to: Option<bool>) {
        let Some(&i) = self.rows.get(self.tree_sel) else {
            return;
        };
        let n = &self.nodes[i];
        if n.kind != Kind::Dir || !n.has_children {
            return;
        }
        let now = self.collapsed.contains(&n.key);
        let want = to.unwrap_or(!now);
        if want == now {
            return;
        }
        if want {
            self.collapsed.insert(n.key.clone());
        } else {
            self.collapsed.remove(&n.key);
        }
        self.refresh_rows();
    }

    fn left(&mut self) {
        let Some(&i) = self.rows.get(self.tree_sel) else {
            return;
        };
        let n = &self.nodes[i];
        if n.kind == Kind::Dir && n.has_children && !self.collapsed.contains(&n.key) {
            self.toggle_selected(Some(true));
        } else if let Some(p) = n.parent {
            if let Some(pos) = self.rows.iter().position(|&r| r == p) {
                self.tree_sel = pos;
            }
        }
    }

    fn matches(&self, n: &FsNode) -> bool {
        (!self.only_wasted || self.wasted.contains(&n.key))
            && (!self.only_changes || n.status != Status::Unchanged)
    }

    /// Recomputes the rows after a change of layer, filter or collapsed directories, keeping
    /// the selected path selected when it is still shown.
    fn refresh_rows(&mut self) {
        let selected = self
            .rows
            .get(self.tree_sel)
            .and_then(|&i| self.nodes.get(i))
            .map(|n| n.key.clone());
        let keep: Option<Vec<bool>> = (self.only_wasted || self.only_changes).then(|| {
            let mut keep = vec![false; self.nodes.len()];
            for (i, n) in self.nodes.iter().enumerate() {
                if !self.matches(n) {
                    continue;
                }
                let mut at = Some(i);
                while let Some(j) = at {
                    if keep[j] {
                        break;
                    }
                    keep[j] = true;
                    at = self.nodes[j].parent;
                }
            }
            keep
        });
        let mut rows = Vec::new();
        let mut skip_below: Option<usize> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(d) = skip_below {
                if n.depth > d {
                    continue;
                }
                skip_below = None;
            }
            if keep.as_ref().is_some_and(|k| !k[i]) {
                continue;
            }
            rows.push(i);
            if n.has_children && self.collapsed.contains(&n.key) {
                skip_below = Some(n.depth);
            }
        }
        self.rows = rows;
        self.tree_sel = selected
            .and_then(|k| self.rows.iter().position(|&i| self.nodes[i].key == k))
            .unwrap_or_else(|| self.tree_sel.min(self.rows.len().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::stack::tests::three_layers;
    use super::*;
    use crate::report::ImageSummary;

    fn analysis(n: usize) -> Analysis {
        Analysis {
            layer: (0..n)
                .map(|i| crate::report::Layer {
                    index: i,
                    command: format!("step {i}"),
                    ..crate::report::Layer::default()
                })
                .collect(),
            image: ImageSummary::default(),
            findings: vec![],
        }
    }

    fn app() -> App {
        App::new(
            analysis(3),
            three_layers(),
            vec![Arc::from(path::key("etc/a"))],
        )
    }

    fn shown(a: &App) -> Vec<String> {
        a.rows()
            .map(|r| format!("{}{}", r.node.status.letter(), path::display(&r.node.key)))
            .collect()
    }

    #[test]
    fn starts_on_the_last_layer_and_moves_between_layers() {
        let mut a = app();
        assert_eq!(a.layer(), 2);
        assert_eq!(a.focus(), Pane::Layers);
        assert!(shown(&a).contains(&"A/app/y".to_string()));
        a.handle(Key::Up);
        assert_eq!(a.layer(), 1);
        assert!(shown(&a).contains(&"D/etc/b".to_string()));
        assert!(shown(&a).contains(&"M/etc/a".to_string()));
        a.handle(Key::Char('k'));
        a.handle(Key::Char('k'));
        assert_eq!(a.layer(), 0, "stops at the first layer");
        assert_eq!(
            shown(&a),
            ["A/bin", "A/bin/sh", "A/etc", "A/etc/a", "A/etc/b"]
        );
        a.handle(Key::End);
        assert_eq!(a.layer(), 2);
        a.handle(Key::Home);
        assert_eq!(a.layer(), 0);
        a.handle(Key::Char('j'));
        assert_eq!(a.layer(), 1);
    }

    #[test]
    fn tab_switches_panes_and_the_tree_selection_moves() {
        let mut a = app();
        a.handle(Key::Tab);
        assert_eq!(a.focus(), Pane::Tree);
        assert_eq!(a.tree_selected(), 0);
        a.handle(Key::Down);
        a.handle(Key::Char('j'));
        assert_eq!(a.tree_selected(), 2);
        assert_eq!(a.layer(), 2, "moving in the tree keeps the layer");
        a.handle(Key::PageDown);
        assert_eq!(a.tree_selected(), a.rows().len() - 1);
        a.handle(Key::BackTab);
        assert_eq!(a.focus(), Pane::Layers);
    }

    #[test]
    fn directories_collapse_and_expand() {
        let mut a = app();
        a.handle(Key::Tab);
        // Select /etc.
        while a.selected_row().map(|r| path::display(&r.node.key)) != Some("/etc".into()) {
            a.handle(Key::Down);
        }
        let before = a.rows().len();
        a.handle(Key::Enter);
        assert_eq!(a.rows().len(), before - 1, "/etc/a hidden");
        assert!(a.selected_row().unwrap().collapsed);
        a.handle(Key::Char(' '));
        assert_eq!(a.rows().len(), before);
        a.handle(Key::Left);
        assert_eq!(a.rows().len(), before - 1);
        a.handle(Key::Right);
        assert_eq!(a.rows().len(), before);
        // Left on a file goes to its directory.
        a.handle(Key::Down);
        assert_eq!(path::display(&a.selected_row().unwrap().node.key), "/etc/a");
        a.handle(Key::Left);
        assert_eq!(path::display(&a.selected_row().unwrap().node.key), "/etc");
        // Collapsing a file does nothing; the collapse survives a change of layer.
        a.handle(Key::Enter);
        a.handle(Key::Tab);
        a.handle(Key::Up);
        assert!(!shown(&a).iter().any(|s| s.ends_with("/etc/a")));
        assert_eq!(path::display(&a.selected_row().unwrap().node.key), "/etc");
    }

    #[test]
    fn filters_keep_matches_and_their_directories() {
        let mut a = app();
        a.handle(Key::Up); // layer 1
        a.handle(Key::Char('c'));
        assert!(a.only_changes());
        assert_eq!(
            shown(&a),
            ["A/app", "A/app/x", " /etc", "M/etc/a", "D/etc/b"]
        );
        a.handle(Key::Char('w'));
        assert_eq!(shown(&a), [" /etc", "M/etc/a"]);
        a.handle(Key::Char('c'));
        assert_eq!(shown(&a), [" /etc", "M/etc/a"], "wasted only");
        a.handle(Key::Char('w'));
        assert_eq!(shown(&a).len(), 7);
    }

    #[test]
    fn help_and_quit() {
        let mut a = app();
        assert_eq!(a.handle(Key::Char('?')), Outcome::Continue);
        assert!(a.help());
        assert_eq!(a.handle(Key::Down), Outcome::Continue);
        assert_eq!(
            a.layer(),
            2,
            "keys other than closing ones are ignored under help"
        );
        assert_eq!(a.handle(Key::Esc), Outcome::Continue);
        assert!(!a.help());
        assert_eq!(a.handle(Key::Esc), Outcome::Quit);
        assert_eq!(app().handle(Key::Char('q')), Outcome::Quit);
        assert_eq!(app().handle(Key::Interrupt), Outcome::Quit);
        let mut h = app();
        h.handle(Key::Char('?'));
        assert_eq!(h.handle(Key::Char('q')), Outcome::Quit);
    }

    #[test]
    fn an_empty_image_is_fine() {
        let mut a = App::new(analysis(0), vec![], vec![]);
        for k in [
            Key::Down,
            Key::Tab,
            Key::Down,
            Key::Enter,
            Key::Left,
            Key::Char('w'),
        ] {
            assert_eq!(a.handle(k), Outcome::Continue);
        }
        assert_eq!(a.rows().len(), 0);
        assert!(a.selected_row().is_none());
    }

    #[test]
    fn names_are_escaped() {
        let mut l = ViewLayer::default();
        l.entries
            .push(stack::tests::entry("evil\u{1b}[31m", Kind::File, 1, 1));
        let a = App::new(analysis(1), vec![l], vec![]);
        assert_eq!(a.rows().next().unwrap().name(), "evil\\u{1b}[31m");
    }
}
