//! The Dockerfile text by line, and conversions between (line, column) and byte offsets.

use crate::{Edit, Span};
use whittle_dockerfile::Pos;

pub(crate) struct Source<'a> {
    /// The text without a leading byte-order mark (the parser's positions count from there).
    pub text: &'a str,
    /// Byte offset of each line's start in `text`.
    starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, starts }
    }

    /// Line `n` (1-based) without its line break, or "" past the end.
    pub fn line(&self, n: usize) -> &'a str {
        let Some(&start) = n.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return "";
        };
        let end = self.starts.get(n).map_or(self.text.len(), |e| e - 1);
        let l = self.text.get(start..end).unwrap_or("");
        l.strip_suffix('\r').unwrap_or(l)
    }

    pub fn line_count(&self) -> usize {
        if self.text.ends_with('\n') {
            self.starts.len() - 1
        } else {
            self.starts.len()
        }
    }

    /// Bytes of line `n` including its line break, for deleting the whole line.
    pub fn whole_line(&self, n: usize) -> Option<Edit> {
        let start = *self.starts.get(n.checked_sub(1)?)?;
        let end = self.starts.get(n).copied().unwrap_or(self.text.len());
        Some(Edit {
            start,
            end,
            text: String::new(),
        })
    }

    /// The 1-based line that byte `offset` is on.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The byte offset of a position (column in characters, 1-based).
    pub fn offset(&self, pos: Pos) -> Option<usize> {
        let start = *self.starts.get(pos.line.checked_sub(1)?)?;
        let line = self.line(pos.line);
        let col = pos.col.max(1) - 1;
        let within = match line.char_indices().nth(col) {
            Some((b, _)) => b,
            None if col == line.chars().count() => line.len(),
            None => return None,
        };
        Some(start + within)
    }

    /// An edit replacing `len` characters at `pos` (on one line).
    pub fn edit(&self, pos: Pos, len: usize, text: impl Into<String>) -> Option<Edit> {
        let start = self.offset(pos)?;
        let rest = self.text.get(start..)?;
        let end = start + rest.char_indices().nth(len).map_or(rest.len(), |(b, _)| b);
        Some(Edit {
            start,
            end,
            text: text.into(),
        })
    }

    /// The span of an instruction's first line from `pos` to the end of that line.
    pub fn span_to_eol(&self, pos: Pos) -> Span {
        let width = self.line(pos.line).chars().count();
        Span {
            line: pos.line,
            col: pos.col,
            len: width.saturating_sub(pos.col.saturating_sub(1)).max(1),
        }
    }

    /// The whitespace-delimited words of lines `from.line..=last_line` from `from` on, with
    /// their positions.
    pub fn words(&self, from: Pos, last_line: usize) -> impl Iterator<Item = (Pos, &'a str)> + '_ {
        (from.line..=last_line).flat_map(move |n| {
            let line = self.line(n);
            let skip = if n == from.line {
                from.col.saturating_sub(1)
            } else {
                0
            };
            let mut out = Vec::new();
            let mut start: Option<(usize, usize)> = None;
            for (ci, (bi, c)) in line
                .char_indices()
                .enumerate()
                .chain(std::iter::once((line.chars().count(), (line.len(), ' '))))
            {
                if c.is_whitespace() {
                    if let Some((scol, sb)) = start.take() {
                        if scol >= skip {
                            out.push((Pos::new(n, scol + 1), &line[sb..bi]));
                        }
                    }
                } else if start.is_none() {
                    start = Some((ci, bi));
                }
            }
            out
        })
    }

    /// Finds `needle` (a whole whitespace-delimited word, compared case-insensitively) in lines
    /// `from.line..=last_line`, starting at `from`. Returns its position.
    pub fn find_word(&self, from: Pos, last_line: usize, needle: &str) -> Option<Pos> {
        for line_no in from.line..=last_line {
            let line = self.line(line_no);
            let skip = if line_no == from.line {
                from.col.saturating_sub(1)
            } else {
                0
            };
            let chars: Vec<char> = line.chars().collect();
            let n: Vec<char> = needle.chars().collect();
            let mut i = skip;
            while i + n.len() <= chars.len() {
                let before_ok = i == 0 || chars[i - 1].is_whitespace();
                let after_ok = i + n.len() == chars.len() || chars[i + n.len()].is_whitespace();
                if before_ok
                    && after_ok
                    && chars[i..i + n.len()]
                        .iter()
                        .zip(&n)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
                {
                    return Some(Pos::new(line_no, i + 1));
                }
                i += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_offsets_and_edits() {
        let s = Source::new("\u{feff}FROM a\r\nRUN é x\n");
        assert_eq!(s.line(1), "FROM a");
        assert_eq!(s.line(2), "RUN é x");
        assert_eq!(s.line(3), "");
        assert_eq!(s.line_count(), 2);
        assert_eq!(s.offset(Pos::new(2, 7)), Some(8 + 7));
        assert_eq!(s.line_of_offset(0), 1);
        assert_eq!(s.line_of_offset(8), 2);
        assert_eq!(s.line_of_offset(7), 1);
        let e = s.edit(Pos::new(2, 5), 1, "e").unwrap();
        assert_eq!(&s.text[e.start..e.end], "é");
        assert_eq!(s.find_word(Pos::new(2, 1), 2, "x"), Some(Pos::new(2, 7)));
        assert_eq!(s.find_word(Pos::new(1, 1), 2, "as"), None);
        let w: Vec<_> = s.words(Pos::new(1, 3), 2).collect();
        assert_eq!(
            w,
            vec![
                (Pos::new(1, 6), "a"),
                (Pos::new(2, 1), "RUN"),
                (Pos::new(2, 5), "é"),
                (Pos::new(2, 7), "x")
            ]
        );
    }
}
