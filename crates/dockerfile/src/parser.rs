//! Dockerfile text to [`Dockerfile`]: parser directives, comments, line continuations,
//! heredocs, instruction keywords, flags and arguments, following BuildKit's parser
//! (`frontend/dockerfile/parser`) and instruction parser (`instructions/parse.go`).

use crate::ast::*;
use crate::error::{suggest, Error, ErrorKind, Pos, Result};
use crate::shell::{Lexer, NoVars};

/// Parses a Dockerfile. Never panics, whatever the input.
pub fn parse(src: &str) -> Result<Dockerfile> {
    Parser::new(src).run()
}

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A logical line: physical lines joined at continuations, with a map back to the source.
struct Logical<'a> {
    text: String,
    /// (offset in `text`, 1-based physical line, byte column in that line)
    segs: Vec<(usize, usize, usize)>,
    lines: &'a [&'a str],
    /// The whole text is ASCII (so are the parts of its lines outside it: leading blanks and
    /// continuation escapes), so a byte column is the character column. Saves counting
    /// characters for every word of a long line.
    ascii: bool,
    /// The last (line, byte, column) computed: words are looked up left to right, so counting
    /// on from there keeps a long non-ASCII line linear.
    last: std::cell::Cell<(usize, usize, usize)>,
}

impl Logical<'_> {
    fn pos(&self, off: usize) -> Pos {
        let idx = self.segs.partition_point(|s| s.0 <= off).saturating_sub(1);
        let Some(&(start, line, bcol)) = self.segs.get(idx) else {
            return Pos::new(1, 1);
        };
        let byte = bcol + off.saturating_sub(start);
        let text = self.lines.get(line - 1).copied().unwrap_or("");
        if self.ascii {
            return Pos::new(line, byte.min(text.len()) + 1);
        }
        let byte = byte.min(text.len());
        let (l_line, l_byte, l_col) = self.last.get();
        let (from_byte, from_col) = if l_line == line && l_byte <= byte {
            (l_byte, l_col)
        } else {
            (0, 0)
        };
        let Some(col) = text
            .get(from_byte..byte)
            .map(|p| from_col + p.chars().count())
        else {
            return Pos::new(line, byte + 1);
        };
        self.last.set((line, byte, col));
        Pos::new(line, col + 1)
    }

    fn err(&self, kind: ErrorKind, off: usize, len: usize) -> Error {
        Error::new(kind, self.pos(off)).with_len(len)
    }
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    escape: char,
    directives_done: bool,
    syntax: Option<String>,
    check: Option<String>,
    seen_escape: bool,
    warnings: Vec<Warning>,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let mut lines: Vec<&str> = src
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        if src.ends_with('\n') || src.is_empty() {
            lines.pop();
        }
        Parser {
            lines,
            escape: '\\',
            directives_done: false,
            syntax: None,
            check: None,
            seen_escape: false,
            warnings: Vec::new(),
        }
    }

    /// Parser directives: `# key=value` lines at the very top. The first line that is not one
    /// (including an unknown key, a plain comment or an empty line) ends them.
    fn directive(&mut self, line_no: usize, line: &str) -> Result<()> {
        if self.directives_done {
            return Ok(());
        }
        let t = line.trim_start_matches(is_ws);
        let parsed = t.strip_prefix('#').and_then(|rest| {
            let rest = rest.trim_start_matches(is_ws);
            let key_len = rest
                .char_indices()
                .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_alphanumeric())))
                .map_or(rest.len(), |(i, _)| i);
            if key_len == 0 {
                return None;
            }
            let (key, after) = rest.split_at(key_len);
            let value = after.trim_start_matches(is_ws).strip_prefix('=')?;
            let value = value.trim_matches(is_ws);
            (!value.is_empty()).then(|| (key.to_ascii_lowercase(), value.to_string()))
        });
        let Some((key, value)) = parsed else {
            self.directives_done = true;
            return Ok(());
        };
        let pos = Pos::new(line_no, line.len() - t.len() + 1);
        let dup = || {
            Error::new(ErrorKind::DuplicateDirective(key.clone()), pos)
                .with_len(t.chars().count())
                .with_hint("remove one of the two directive lines")
        };
        match key.as_str() {
            "escape" => {
                if self.seen_escape {
                    return Err(dup());
                }
                self.seen_escape = true;
                match value.as_str() {
                    "\\" => self.escape = '\\',
                    "`" => self.escape = '`',
                    _ => {
                        return Err(Error::new(ErrorKind::InvalidEscape(value.clone()), pos)
                            .with_len(t.chars().count())
                            .with_hint("use `# escape=\\` (the default) or `# escape=``"))
                    }
                }
            }
            "syntax" => {
                if self.syntax.is_some() {
                    return Err(dup());
                }
                self.syntax = Some(value);
            }
            "check" => {
                if self.check.is_some() {
                    return Err(dup());
                }
                self.check = Some(value);
            }
            _ => self.directives_done = true,
        }
        Ok(())
    }

    fn is_comment(line: &str) -> bool {
        line.trim_start_matches(is_ws).starts_with('#')
    }

    /// Strips a trailing escape character (plus trailing blanks). Returns true if it was there.
    fn strip_continuation(&self, s: &mut String) -> bool {
        let trimmed = s.trim_end_matches([' ', '\t']);
        if trimmed.ends_with(self.escape) {
            let n = trimmed.len() - self.escape.len_utf8();
            s.truncate(n);
            true
        } else {
            false
        }
    }

    fn run(mut self) -> Result<Dockerfile> {
        let mut instructions = Vec::new();
        let mut i = 0;
        let lines = std::mem::take(&mut self.lines);
        while i < lines.len() {
            let raw = lines[i];
            let line_no = i + 1;
            i += 1;
            self.directive(line_no, raw)?;
            if Self::is_comment(raw) {
                continue;
            }
            let lead = raw.len() - raw.trim_start_matches(is_ws).len();
            let mut text = raw[lead..].to_string();
            let mut segs = vec![(0usize, line_no, lead)];
            let mut cont = self.strip_continuation(&mut text);
            if !cont && text.trim_matches(is_ws).is_empty() {
                continue;
            }
            let mut empty_cont = false;
            while cont && i < lines.len() {
                let next = lines[i];
                i += 1;
                self.directives_done = true;
                if Self::is_comment(next) {
                    continue;
                }
                if next.trim_matches(is_ws).is_empty() {
                    empty_cont = true;
                    continue;
                }
                let mut piece = next.to_string();
                cont = self.strip_continuation(&mut piece);
                segs.push((text.len(), i, 0));
                text.push_str(&piece);
            }
            let logical = Logical {
                ascii: text.is_ascii(),
                last: std::cell::Cell::new((0, 0, 0)),
                text,
                segs,
                lines: &lines,
            };
            if empty_cont {
                // BuildKit reports it at the instruction's last line.
                let last = logical.segs.last().map_or(line_no, |s| s.1);
                self.warnings.push(Warning {
                    pos: Pos::new(last, 1),
                    message: "empty continuation line (it will be an error in a future Dockerfile syntax); remove it or end the line above without the escape character".into(),
                });
            }
            let mut inst = self.instruction(&logical, 0, false)?;
            // Heredoc bodies follow the instruction line.
            let wants = heredoc_capable(&inst) && logical.text.contains("<<");
            if wants {
                let markers = heredoc_markers(&logical.text, self.escape)
                    .map_err(|m| logical.err(ErrorKind::Syntax(m), 0, 1))?;
                let mut docs = Vec::new();
                for mut doc in markers {
                    let mut terminated = false;
                    while i < lines.len() {
                        let body = lines[i];
                        i += 1;
                        let candidate = if doc.chomp {
                            body.trim_start_matches('\t')
                        } else {
                            body
                        };
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        let body = if doc.chomp {
                            body.trim_start_matches('\t')
                        } else {
                            body
                        };
                        doc.content.push_str(body);
                        doc.content.push('\n');
                    }
                    if !terminated {
                        return Err(Error::new(
                            ErrorKind::UnterminatedHeredoc(doc.name.clone()),
                            logical.pos(0),
                        )
                        .with_len(logical.text.chars().count())
                        .with_hint(format!(
                            "end the here-document with a line containing only {}",
                            doc.name
                        )));
                    }
                    docs.push(doc);
                }
                attach_heredocs(&mut inst, docs)?;
            }
            inst.end_line = i.max(inst.pos.line);
            instructions.push(inst);
        }
        if instructions.is_empty() {
            let (kind, line) = if lines.is_empty() {
                (ErrorKind::Empty, 0)
            } else {
                (ErrorKind::NoInstructions, lines.len())
            };
            return Err(Error::new(kind, Pos::new(line, 1))
                .with_hint("a Dockerfile needs at least a FROM instruction"));
        }
        Ok(Dockerfile {
            escape: self.escape,
            syntax: self.syntax,
            check: self.check,
            instructions,
            warnings: self.warnings,
        })
    }

    /// Parses the instruction that starts at `start` of the logical line.
    fn instruction(&self, lg: &Logical, start: usize, in_onbuild: bool) -> Result<Instruction> {
        let text = &lg.text;
        let body = &text[start..];
        let lead = body.len() - body.trim_start_matches(is_ws).len();
        let kw_start = start + lead;
        let kw_end = text[kw_start..]
            .find(is_ws)
            .map_or(text.len(), |n| kw_start + n);
        let keyword = &text[kw_start..kw_end];
        let upper = keyword.to_ascii_uppercase();
        let pos = lg.pos(kw_start);
        if !INSTRUCTIONS.contains(&upper.as_str()) {
            let mut e = lg.err(
                ErrorKind::UnknownInstruction(keyword.to_string()),
                kw_start,
                keyword.chars().count(),
            );
            e.hint = Some(match suggest(&upper, INSTRUCTIONS) {
                Some(s) => format!("did you mean {s}?"),
                None => format!("instructions are: {}", INSTRUCTIONS.join(", ")),
            });
            return Err(e);
        }
        // Flags are the leading `--words` after the keyword.
        let (flags, rest_off) = extract_flags(text, kw_end);
        let rest = text[rest_off..].trim_end_matches(is_ws);
        let original = text[start..].trim_matches(is_ws).to_string();
        let mut fl = Flags::new(&upper, flags, lg);
        let a = Args {
            lg,
            off: rest_off,
            rest,
            escape: self.escape,
        };
        let kind = match upper.as_str() {
            "FROM" => {
                let platform = fl.string("platform");
                fl.finish()?;
                let words = a.split_ws();
                let from = match words.as_slice() {
                    [img] => From {
                        image: img.clone(),
                        platform: platform?,
                        name: None,
                    },
                    [img, as_, name] if as_.text.eq_ignore_ascii_case("as") => {
                        let lower = name.text.to_ascii_lowercase();
                        if !valid_stage_name(&lower) {
                            return Err(Error::new(
                                ErrorKind::Stage(format!(
                                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                    name.text
                                )),
                                name.pos,
                            )
                            .with_len(name.text.chars().count())
                            .with_hint("stage names start with a letter and contain only letters, digits, '-', '_' and '.'"));
                        }
                        From {
                            image: img.clone(),
                            platform: platform?,
                            name: Some(Word::new(lower, name.pos)),
                        }
                    }
                    _ => {
                        return Err(a
                            .err("FROM requires either one or three arguments")
                            .with_hint("write `FROM image` or `FROM image AS name`"))
                    }
                };
                Kind::From(from)
            }
            "RUN" => {
                let mounts = fl.strings("mount");
                let network = fl.string("network");
                let security = fl.string("security");
                fl.finish()?;
                let network = match network? {
                    None => None,
                    Some(w) => Some(match w.text.as_str() {
                        "default" => NetworkMode::Default,
                        "none" => NetworkMode::None,
                        "host" => NetworkMode::Host,
                        _ => {
                            return Err(bad_flag(
                                &w,
                                "network",
                                &format!("invalid network mode {:?}", w.text),
                                "use --network=default, none or host",
                            ))
                        }
                    }),
                };
                let security = match security? {
                    None => None,
                    Some(w) => Some(match w.text.as_str() {
                        "sandbox" => SecurityMode::Sandbox,
                        "insecure" => SecurityMode::Insecure,
                        _ => {
                            return Err(bad_flag(
                                &w,
                                "security",
                                &format!("security {:?} is not valid", w.text),
                                "use --security=sandbox or insecure",
                            ))
                        }
                    }),
                };
                let mounts = mounts?;
                // As BuildKit: mount options are validated when the stage is planned (so a
                // stage the target does not need cannot fail the build), except `from`, which
                // must be literal so that the stage graph is known before any expansion.
                for m in &mounts {
                    if let Some(from) = crate::mount::literal_from(&m.text) {
                        if from.find('$').is_some_and(|i| i + 1 < from.len()) {
                            return Err(bad_flag(
                                m,
                                "mount",
                                "'from' doesn't support variable expansion, define alias stage instead",
                                "add a stage `FROM <image> AS <alias>` and mount from=<alias>",
                            ));
                        }
                    }
                }
                Kind::Run(Run {
                    cmd: a.maybe_json()?,
                    mounts: mounts.into_iter().map(|spec| Mount { spec }).collect(),
                    network,
                    security,
                    heredocs: Vec::new(),
                })
            }
            "CMD" => {
                fl.finish()?;
                Kind::Cmd(a.maybe_json()?)
            }
            "ENTRYPOINT" => {
                fl.finish()?;
                Kind::Entrypoint(a.maybe_json()?)
            }
            "SHELL" => {
                fl.finish()?;
                match a.maybe_json()? {
                    CmdLine::Exec(v) if !v.is_empty() => Kind::Shell(v),
                    CmdLine::Exec(_) => return Err(a.err("SHELL requires at least one argument")),
                    CmdLine::Shell(_) => {
                        return Err(a
                            .err("SHELL requires the arguments to be in JSON form")
                            .with_hint(r#"write it as SHELL ["/bin/sh", "-c"]"#))
                    }
                }
            }
            "COPY" | "ADD" => {
                let is_add = upper == "ADD";
                let chown = fl.string("chown");
                let chmod = fl.string("chmod");
                let link = fl.boolean("link");
                let excludes = fl.strings("exclude");
                let (from, parents, checksum, keep_git_dir, unpack);
                if is_add {
                    checksum = fl.string("checksum")?;
                    keep_git_dir = fl.boolean("keep-git-dir")?;
                    unpack = fl.boolean("unpack")?;
                    from = None;
                    parents = None;
                } else {
                    from = fl.string("from")?;
                    parents = fl.boolean("parents")?;
                    checksum = None;
                    keep_git_dir = None;
                    unpack = None;
                }
                fl.finish()?;
                let (mut words, json) = a.maybe_json_list()?;
                if words.len() < 2 {
                    return Err(a
                        .err(&format!("{upper} requires at least two arguments, but only one was provided. Destination could not be determined."))
                        .with_hint(format!("write {upper} <source>... <destination>")));
                }
                let dest = words.pop().unwrap_or_else(|| Word::new("", pos));
                let c = Copy {
                    sources: words,
                    heredocs: Vec::new(),
                    dest,
                    from,
                    chown: chown?,
                    chmod: chmod?,
                    link: link?.unwrap_or(false),
                    parents: parents.unwrap_or(false),
                    excludes: excludes?,
                    checksum,
                    keep_git_dir: keep_git_dir.unwrap_or(false),
                    unpack,
                    json,
                };
                if is_add {
                    Kind::Add(c)
                } else {
                    Kind::Copy(c)
                }
            }
            "ENV" | "LABEL" => {
                fl.finish()?;
                let kvs = a.name_vals(&upper)?;
                if upper == "ENV" {
                    Kind::Env(kvs)
                } else {
                    Kind::Label(kvs)
                }
            }
            "ARG" => {
                fl.finish()?;
                let words = a.words();
                if words.is_empty() {
                    return Err(a.err("ARG requires at least one argument"));
                }
                let mut decls = Vec::new();
                for w in words {
                    let (name, default) = match w.text.split_once('=') {
                        Some((n, v)) => (n.to_string(), Some(v.to_string())),
                        None => (w.text.clone(), None),
                    };
                    if name.is_empty() {
                        return Err(Error::new(
                            ErrorKind::Arguments("ARG names can not be blank".into()),
                            w.pos,
                        )
                        .with_len(w.text.chars().count()));
                    }
                    decls.push(ArgDecl {
                        name: Word::new(name, w.pos),
                        default,
                    });
                }
                Kind::Arg(decls)
            }
            "EXPOSE" => {
                fl.finish()?;
                let ports = a.split_ws();
                if ports.is_empty() {
                    return Err(a.err("EXPOSE requires at least one argument"));
                }
                Kind::Expose(ports)
            }
            "VOLUME" => {
                fl.finish()?;
                let (vols, _) = a.maybe_json_list()?;
                if vols.is_empty() {
                    return Err(a.err("VOLUME requires at least one argument"));
                }
                if let Some(v) = vols.iter().find(|v| v.text.trim().is_empty()) {
                    return Err(Error::new(
                        ErrorKind::Arguments("VOLUME specified can not be an empty string".into()),
                        v.pos,
                    ));
                }
                Kind::Volume(vols)
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" | "MAINTAINER" => {
                fl.finish()?;
                if rest.is_empty() {
                    return Err(a.err(&format!("{upper} requires exactly one argument")));
                }
                let w = Word::new(rest, lg.pos(rest_off));
                match upper.as_str() {
                    "USER" => Kind::User(w),
                    "WORKDIR" => Kind::Workdir(w),
                    "STOPSIGNAL" => Kind::Stopsignal(w),
                    _ => Kind::Maintainer(w.text),
                }
            }
            "HEALTHCHECK" => {
                let typ_end = rest.find(is_ws).unwrap_or(rest.len());
                let typ = rest[..typ_end].to_ascii_uppercase();
                if typ.is_empty() {
                    fl.finish()?;
                    return Err(a.err("HEALTHCHECK requires at least one argument"));
                }
                if typ == "NONE" {
                    fl.finish()?;
                    if !rest[typ_end..].trim().is_empty() {
                        return Err(a.err("HEALTHCHECK NONE takes no arguments"));
                    }
                    Kind::Healthcheck(Healthcheck::None)
                } else {
                    let interval = fl.string("interval");
                    let timeout = fl.string("timeout");
                    let start_period = fl.string("start-period");
                    let start_interval = fl.string("start-interval");
                    let retries = fl.string("retries");
                    fl.finish()?;
                    if typ != "CMD" {
                        return Err(a.err(&format!(
                            "Unknown type {:?} in HEALTHCHECK (try CMD)",
                            &rest[..typ_end]
                        )));
                    }
                    let cmd_off = rest_off
                        + typ_end
                        + (rest[typ_end..].len() - rest[typ_end..].trim_start_matches(is_ws).len());
                    let sub = Args {
                        lg,
                        off: cmd_off,
                        rest: &text[cmd_off..rest_off + rest.len()],
                        escape: self.escape,
                    };
                    let test = sub.maybe_json()?;
                    let empty = match &test {
                        CmdLine::Exec(v) => v.is_empty(),
                        CmdLine::Shell(s) => s.is_empty(),
                    };
                    if empty {
                        return Err(a.err("Missing command after HEALTHCHECK CMD"));
                    }
                    let retries = match retries? {
                        None => 0,
                        Some(w) => match w.text.parse::<i64>() {
                            Ok(n) if n < 0 => {
                                return Err(bad_flag(
                                    &w,
                                    "retries",
                                    &format!("--retries cannot be negative ({n})"),
                                    "give a count of 0 or more",
                                ))
                            }
                            Ok(n) => u32::try_from(n).map_err(|_| {
                                bad_flag(
                                    &w,
                                    "retries",
                                    "value out of range",
                                    "give a smaller count",
                                )
                            })?,
                            Err(_) => {
                                return Err(bad_flag(
                                    &w,
                                    "retries",
                                    &format!("{:?} is not a number", w.text),
                                    "give a whole number such as --retries=3",
                                ))
                            }
                        },
                    };
                    Kind::Healthcheck(Healthcheck::Cmd {
                        test,
                        interval: duration(interval?, "interval")?,
                        timeout: duration(timeout?, "timeout")?,
                        start_period: duration(start_period?, "start-period")?,
                        start_interval: duration(start_interval?, "start-interval")?,
                        retries,
                    })
                }
            }
            "ONBUILD" => {
                fl.finish()?;
                if in_onbuild {
                    return Err(lg.err(
                        ErrorKind::Syntax(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ),
                        kw_start,
                        keyword.len(),
                    ));
                }
                if rest.is_empty() {
                    return Err(a.err("ONBUILD requires at least one argument"));
                }
                let trigger_kw = rest.split(is_ws).next().unwrap_or("").to_ascii_uppercase();
                match trigger_kw.as_str() {
                    "ONBUILD" => {
                        return Err(a.err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(
                            a.err(&format!("{trigger_kw} isn't allowed as an ONBUILD trigger"))
                        )
                    }
                    _ => {}
                }
                let trigger = self.instruction(lg, rest_off, true)?;
                Kind::Onbuild(Onbuild {
                    expression: rest.to_string(),
                    trigger: Box::new(trigger),
                })
            }
            _ => unreachable_instruction(&upper, pos)?,
        };
        Ok(Instruction {
            pos,
            end_line: pos.line,
            original,
            kind,
        })
    }
}

fn unreachable_instruction(kw: &str, pos: Pos) -> Result<Kind> {
    // Every name in INSTRUCTIONS has an arm above; keep the compiler honest without a panic.
    Err(Error::new(
        ErrorKind::UnknownInstruction(kw.to_string()),
        pos,
    ))
}

fn valid_stage_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn bad_flag(w: &Word, flag: &str, reason: &str, hint: &str) -> Error {
    Error::new(
        ErrorKind::BadFlagValue {
            flag: flag.to_string(),
            reason: reason.to_string(),
        },
        w.pos,
    )
    .with_len(w.text.chars().count())
    .with_hint(hint)
}

/// Parses a Go-style duration (`30s`, `1m30s`, `500ms`) into nanoseconds.
fn duration(w: Option<Word>, flag: &str) -> Result<u64> {
    let Some(w) = w else { return Ok(0) };
    let bad = |reason: &str| {
        bad_flag(
            &w,
            flag,
            reason,
            "give a duration such as 30s, 1m30s or 500ms (at least 1ms)",
        )
    };
    let s = w.text.as_str();
    if s.is_empty() {
        return Ok(0);
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad(&format!("time: invalid duration {s:?}")));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| bad(&format!("time: invalid duration {s:?}")))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad(&format!("time: missing unit in duration {s:?}"))),
            u => return Err(bad(&format!("time: unknown unit {u:?} in duration {s:?}"))),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad("duration out of range"));
    }
    let ns = total as u64;
    if ns != 0 && ns < 1_000_000 {
        return Err(bad(&format!("Interval {flag:?} cannot be less than 1ms")));
    }
    Ok(ns)
}

/// Splits the leading `--flag` words off an instruction's arguments, as BuildKit's
/// `extractBuilderFlags` does (quotes and escapes inside flag values are honoured).
/// Returns the flags (text without quotes, with offsets) and the offset of the rest.
fn extract_flags(text: &str, from: usize) -> (Vec<(String, usize)>, usize) {
    let b = text.as_bytes();
    let mut flags = Vec::new();
    let mut pos = from;
    loop {
        while pos < b.len() && (b[pos] as char).is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= b.len() {
            return (flags, b.len());
        }
        if !(b[pos] == b'-' && b.get(pos + 1) == Some(&b'-')) {
            return (flags, pos);
        }
        let start = pos;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = text[pos..].char_indices().peekable();
        let mut end = text.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None => {
                    if c.is_whitespace() {
                        end = pos + i;
                        break;
                    }
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                    } else if c == '\\' {
                        if let Some((_, n)) = chars.next() {
                            word.push(n);
                        }
                    } else {
                        word.push(c);
                    }
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                    } else if c == '\\' {
                        if let Some((_, n)) = chars.next() {
                            word.push(n);
                        }
                    } else {
                        word.push(c);
                    }
                }
            }
        }
        pos = end;
        if word == "--" {
            return (flags, pos);
        }
        flags.push((word, start));
    }
}

/// Typed access to an instruction's flags; unknown, duplicate and malformed flags are errors.
struct Flags<'l, 'a> {
    instruction: String,
    given: Vec<(String, usize)>,
    used: Vec<bool>,
    known: Vec<&'static str>,
    lg: &'l Logical<'a>,
}

impl<'l, 'a> Flags<'l, 'a> {
    fn new(instruction: &str, given: Vec<(String, usize)>, lg: &'l Logical<'a>) -> Self {
        let n = given.len();
        Flags {
            instruction: instruction.to_string(),
            given,
            used: vec![false; n],
            known: Vec::new(),
            lg,
        }
    }

    fn split(flag: &str) -> (&str, Option<&str>) {
        let body = flag.strip_prefix("--").unwrap_or(flag);
        match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        }
    }

    /// All values of a repeatable flag.
    fn strings(&mut self, name: &'static str) -> Result<Vec<Word>> {
        self.known.push(name);
        let mut out = Vec::new();
        for (i, (flag, off)) in self.given.iter().enumerate() {
            let (n, v) = Self::split(flag);
            if n != name {
                continue;
            }
            self.used[i] = true;
            let Some(v) = v else {
                return Err(self
                    .lg
                    .err(ErrorKind::MissingFlagValue(name.into()), *off, flag.len())
                    .with_hint(format!("write --{name}=<value>")));
            };
            out.push(Word::new(v, self.lg.pos(off + 3 + name.len())));
        }
        Ok(out)
    }

    fn string(&mut self, name: &'static str) -> Result<Option<Word>> {
        let all = self.strings(name)?;
        if all.len() > 1 {
            let off = self.offset_of(name, 1);
            return Err(self
                .lg
                .err(ErrorKind::DuplicateFlag(name.into()), off, name.len() + 2)
                .with_hint(format!("give --{name} only once")));
        }
        Ok(all.into_iter().next())
    }

    fn boolean(&mut self, name: &'static str) -> Result<Option<bool>> {
        self.known.push(name);
        let mut value = None;
        for (i, (flag, off)) in self.given.iter().enumerate() {
            let (n, v) = Self::split(flag);
            if n != name {
                continue;
            }
            if value.is_some() {
                return Err(self
                    .lg
                    .err(ErrorKind::DuplicateFlag(name.into()), *off, flag.len())
                    .with_hint(format!("give --{name} only once")));
            }
            self.used[i] = true;
            value = Some(match v.map(str::to_ascii_lowercase).as_deref() {
                None => true,
                Some("true") => true,
                Some("false") => false,
                Some("") => {
                    return Err(self
                        .lg
                        .err(ErrorKind::MissingFlagValue(name.into()), *off, flag.len())
                        .with_hint(format!("write --{name} or --{name}=true|false")))
                }
                Some(_) => {
                    return Err(self
                        .lg
                        .err(
                            ErrorKind::BadFlagValue {
                                flag: name.into(),
                                reason: format!(
                                    "expecting boolean value for flag {name}, not: {}",
                                    v.unwrap_or("")
                                ),
                            },
                            *off,
                            flag.len(),
                        )
                        .with_hint(format!("write --{name} or --{name}=true|false")))
                }
            });
        }
        Ok(value)
    }

    fn offset_of(&self, name: &str, nth: usize) -> usize {
        self.given
            .iter()
            .filter(|(f, _)| Self::split(f).0 == name)
            .nth(nth)
            .map_or(0, |(_, o)| *o)
    }

    /// Every given flag must have been asked for.
    fn finish(self) -> Result<()> {
        for (i, (flag, off)) in self.given.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let (name, _) = Self::split(flag);
            let hint = match suggest(name, &self.known) {
                Some(s) => format!("did you mean --{s}?"),
                None if self.known.is_empty() => {
                    format!("{} takes no flags", self.instruction)
                }
                None => format!(
                    "{} accepts {}",
                    self.instruction,
                    self.known
                        .iter()
                        .map(|k| format!("--{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(self
                .lg
                .err(
                    ErrorKind::UnknownFlag {
                        instruction: self.instruction.clone(),
                        flag: name.to_string(),
                    },
                    *off,
                    name.len() + 2,
                )
                .with_hint(hint));
        }
        Ok(())
    }
}

/// The argument text of an instruction and helpers to split it the ways BuildKit does.
struct Args<'l, 'a> {
    lg: &'l Logical<'a>,
    off: usize,
    rest: &'l str,
    escape: char,
}

impl Args<'_, '_> {
    fn err(&self, msg: &str) -> Error {
        let len = self.rest.chars().count();
        self.lg
            .err(ErrorKind::Arguments(msg.to_string()), self.off, len)
    }

    /// Splits at whitespace, no quote handling (`parseStringsWhitespaceDelimited`).
    fn split_ws(&self) -> Vec<Word> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in self.rest.char_indices() {
            if is_ws(c) || c == '\n' {
                if let Some(s) = start.take() {
                    out.push(Word::new(&self.rest[s..i], self.lg.pos(self.off + s)));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            out.push(Word::new(&self.rest[s..], self.lg.pos(self.off + s)));
        }
        out
    }

    /// Splits at unquoted whitespace, keeping quotes and escapes (`parseWords`).
    fn words(&self) -> Vec<Word> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut start = 0;
        let mut in_word = false;
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        let mut it = self.rest.char_indices().peekable();
        while let Some((i, c)) = it.next() {
            match quote {
                None => {
                    if c.is_whitespace() {
                        if in_word && (blank_ok || !word.is_empty()) {
                            out.push(Word::new(
                                std::mem::take(&mut word),
                                self.lg.pos(self.off + start),
                            ));
                        }
                        word.clear();
                        in_word = false;
                        blank_ok = false;
                        continue;
                    }
                    if !in_word {
                        in_word = true;
                        start = i;
                    }
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                        blank_ok = true;
                    }
                    if c == self.escape {
                        match it.next() {
                            None => continue,
                            Some((_, n)) => {
                                word.push(c);
                                word.push(n);
                                continue;
                            }
                        }
                    }
                    word.push(c);
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                        word.push(c);
                        continue;
                    }
                    if c == self.escape && q != '\'' {
                        match it.next() {
                            None => {
                                quote = None;
                                continue;
                            }
                            Some((_, n)) => {
                                word.push(c);
                                word.push(n);
                                continue;
                            }
                        }
                    }
                    word.push(c);
                }
            }
        }
        if in_word && (blank_ok || !word.is_empty()) {
            out.push(Word::new(word, self.lg.pos(self.off + start)));
        }
        out
    }

    /// A JSON array of strings, if the text is one. `Err` when it is a JSON array with
    /// something other than strings in it (BuildKit refuses that instead of falling back).
    fn json(&self) -> Result<Option<Vec<String>>> {
        let t = self.rest.trim_start();
        if !t.starts_with('[') {
            return Ok(None);
        }
        match serde_json::from_str::<Vec<serde_json::Value>>(t) {
            Err(_) => Ok(None),
            Ok(values) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        serde_json::Value::String(s) => out.push(s),
                        _ => {
                            return Err(self
                                .err("when using JSON array syntax, arrays must be comprised of strings only")
                                .with_hint("quote every element of the array"))
                        }
                    }
                }
                Ok(Some(out))
            }
        }
    }

    /// Exec form if the text is a JSON array of strings, else the whole text as shell form.
    fn maybe_json(&self) -> Result<CmdLine> {
        Ok(match self.json()? {
            Some(v) => CmdLine::Exec(v),
            None => CmdLine::Shell(self.rest.to_string()),
        })
    }

    /// A JSON list, else whitespace-separated words. The bool says whether it was JSON.
    fn maybe_json_list(&self) -> Result<(Vec<Word>, bool)> {
        let pos = self.lg.pos(self.off);
        Ok(match self.json()? {
            Some(v) => (v.into_iter().map(|s| Word::new(s, pos)).collect(), true),
            None => (self.split_ws(), false),
        })
    }

    /// `KEY value` (legacy) or `KEY=value KEY2="v 2"...` (ENV, LABEL).
    fn name_vals(&self, instruction: &str) -> Result<Vec<KeyValue>> {
        let words = self.words();
        let Some(first) = words.first() else {
            return Err(self.err(&format!("{instruction} requires at least one argument")));
        };
        if !first.text.contains('=') {
            // Legacy form: the key, whitespace, then the rest of the line is the value.
            let key_end = self.rest.find(is_ws).unwrap_or(self.rest.len());
            let value = self.rest[key_end..].trim_start_matches(is_ws);
            if value.is_empty() {
                return Err(self
                    .err(&format!("{instruction} must have two arguments"))
                    .with_hint(format!(
                        "write {instruction} {}=<value>",
                        &self.rest[..key_end]
                    )));
            }
            return Ok(vec![KeyValue {
                key: Word::new(&self.rest[..key_end], self.lg.pos(self.off)),
                value: value.to_string(),
            }]);
        }
        let mut out = Vec::new();
        for w in words {
            let Some((k, v)) = w.text.split_once('=') else {
                return Err(Error::new(
                    ErrorKind::Syntax(format!(
                        "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                        w.text
                    )),
                    w.pos,
                )
                .with_len(w.text.chars().count())
                .with_hint("quote values that contain spaces: KEY=\"a value\""));
            };
            if k.is_empty() {
                return Err(Error::new(
                    ErrorKind::Arguments(format!("{instruction} names can not be blank")),
                    w.pos,
                )
                .with_len(w.text.chars().count()));
            }
            out.push(KeyValue {
                key: Word::new(k, w.pos),
                value: v.to_string(),
            });
        }
        Ok(out)
    }
}

fn heredoc_capable(inst: &Instruction) -> bool {
    match &inst.kind {
        Kind::Run(r) => matches!(r.cmd, CmdLine::Shell(_)),
        Kind::Copy(c) | Kind::Add(c) => !c.json,
        Kind::Onbuild(o) => heredoc_capable(&o.trigger),
        _ => false,
    }
}

/// Finds the `<<EOF` markers on an instruction line, in order (BuildKit's `heredocsFromLine`).
fn heredoc_markers(line: &str, _escape: char) -> Result<Vec<Heredoc>, String> {
    let mut lx = Lexer::new('\\');
    lx.raw_quotes = true;
    lx.raw_escapes = true;
    let words = lx.process_words(line, &NoVars).unwrap_or_default();
    let mut out = Vec::new();
    let mut it = words.into_iter().peekable();
    while let Some(mut w) = it.next() {
        // `<< EOF`: whitespace between the operator and the delimiter (Dockerfile 1.16).
        let bare = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if bare == "<<" || bare == "<<-" {
            if let Some(next) = it.next() {
                w.push_str(&next);
            }
        }
        if let Some(h) = parse_heredoc_marker(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

/// Recognises one shell word as a heredoc marker: `[fd]<<[-]WORD`.
pub(crate) fn parse_heredoc_marker(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = if digits == 0 {
        0
    } else {
        word[..digits]
            .parse::<u32>()
            .map_err(|_| format!("invalid file descriptor in heredoc {word:?}"))?
    };
    let mut lx = Lexer::new('\\');
    lx.skip_unset = true;
    let words = lx.process_words(rest, &NoVars)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lx.raw_quotes = true;
    let raw = lx.process_words(rest, &NoVars)?;
    if raw.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let name = words[0].clone();
    // Quotes anywhere in the delimiter mean "do not expand the body".
    let expand = raw[0] == name;
    Ok(Some(Heredoc {
        name,
        content: String::new(),
        expand,
        chomp,
        fd,
    }))
}

fn attach_heredocs(inst: &mut Instruction, docs: Vec<Heredoc>) -> Result<()> {
    let kw = inst.kind.keyword();
    match &mut inst.kind {
        Kind::Run(r) => r.heredocs = docs,
        Kind::Copy(c) | Kind::Add(c) => {
            attach_copy_heredocs(c, docs, kw)?;
        }
        Kind::Onbuild(o) => {
            for d in &docs {
                o.expression.push('\n');
                o.expression.push_str(&d.content);
                o.expression.push_str(&d.name);
            }
            attach_heredocs(&mut o.trigger, docs)?;
        }
        _ => {}
    }
    Ok(())
}

fn attach_copy_heredocs(c: &mut Copy, docs: Vec<Heredoc>, kw: &str) -> Result<()> {
    if let Ok(Some(_)) = parse_heredoc_marker(&c.dest.text) {
        return Err(Error::new(
            ErrorKind::Syntax(format!("{kw} cannot accept a heredoc as a destination")),
            c.dest.pos,
        )
        .with_len(c.dest.text.chars().count())
        .with_hint("the destination must be a path in the image"));
    }
    let mut sources = Vec::new();
    for src in std::mem::take(&mut c.sources) {
        match parse_heredoc_marker(&src.text) {
            Ok(Some(marker)) => {
                if let Some(doc) = docs.iter().find(|d| d.name == marker.name) {
                    c.heredocs.push(doc.clone());
                }
            }
            _ => sources.push(src),
        }
    }
    c.sources = sources;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        parse(src)
            .unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", src)))
            .instructions
            .into_iter()
            .map(|i| i.kind)
            .collect()
    }

    #[test]
    fn continuation_comments_and_blank_lines() {
        let src = "FROM alpine\nRUN echo a \\\n# comment\n\n    b \\\n  c\n";
        let df = parse(src).unwrap();
        assert_eq!(df.instructions.len(), 2);
        let Kind::Run(r) = &df.instructions[1].kind else {
            panic!()
        };
        assert_eq!(r.cmd, CmdLine::Shell("echo a     b   c".into()));
        assert_eq!(df.instructions[1].end_line, 6);
        assert_eq!(df.warnings.len(), 1);
    }

    #[test]
    fn escape_directive_backtick() {
        let src = "# escape=`\nFROM x\nRUN dir c:\\ `\n  /b\n";
        let df = parse(src).unwrap();
        assert_eq!(df.escape, '`');
        let Kind::Run(r) = &df.instructions[1].kind else {
            panic!()
        };
        assert_eq!(r.cmd, CmdLine::Shell("dir c:\\   /b".into()));
    }

    #[test]
    fn directives_only_at_top() {
        let df = parse("# syntax=docker/dockerfile:1\n# ESCAPE=\\\n\n# check=skip=all\nFROM a\n")
            .unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.check, None);
        let e = parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::DuplicateDirective("escape".into()));
        assert_eq!(e.pos, Pos::new(2, 1));
        let e = parse("# escape=x\nFROM a").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidEscape("x".into()));
    }

    #[test]
    fn flags_and_errors() {
        let e = parse("FROM a\nCOPY --chmodd=755 a b\n").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::UnknownFlag {
                instruction: "COPY".into(),
                flag: "chmodd".into()
            }
        );
        assert_eq!(e.pos, Pos::new(2, 6));
        assert_eq!(e.hint.as_deref(), Some("did you mean --chmod?"));
        let e = parse("FROM a\nRUN --network=foo true\n").unwrap_err();
        assert_eq!(e.pos, Pos::new(2, 15));
        let e = parse("FROM a\nCOPY --from a b\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingFlagValue("from".into()));
        let k = kinds("FROM a\nCOPY --from=\"b c\" --link --exclude=*.md --exclude=x a b\n");
        let Kind::Copy(c) = &k[1] else { panic!() };
        assert_eq!(c.from.as_ref().unwrap().text, "b c");
        assert!(c.link);
        assert_eq!(c.excludes.len(), 2);
    }

    #[test]
    fn json_and_shell_forms() {
        let k = kinds("FROM a\nCMD [\"a\", \"b\"]\nCMD [\"a\", 'b']\nENTRYPOINT [ ]\n");
        assert_eq!(k[1], Kind::Cmd(CmdLine::Exec(vec!["a".into(), "b".into()])));
        assert_eq!(k[2], Kind::Cmd(CmdLine::Shell("[\"a\", 'b']".into())));
        assert_eq!(k[3], Kind::Entrypoint(CmdLine::Exec(vec![])));
        let e = parse("FROM a\nCMD [\"a\", 1]\n").unwrap_err();
        assert!(e.kind.to_string().contains("strings only"));
    }

    #[test]
    fn env_forms() {
        let k = kinds("FROM a\nENV A=1 B=\"x y\" C=a\\ b\nENV D hello world\n");
        let Kind::Env(e) = &k[1] else { panic!() };
        assert_eq!(
            e.iter()
                .map(|kv| (kv.key.text.as_str(), kv.value.as_str()))
                .collect::<Vec<_>>(),
            vec![("A", "1"), ("B", "\"x y\""), ("C", "a\\ b")]
        );
        let Kind::Env(e) = &k[2] else { panic!() };
        assert_eq!(e[0].value, "hello world");
        let e = parse("FROM a\nENV X\n").unwrap_err();
        assert_eq!(e.kind.to_string(), "ENV must have two arguments");
    }

    #[test]
    fn heredocs() {
        let src = "FROM a\nRUN <<EOF bash -e\necho $HOME\nEOF\nRUN <<-'A' cat - <<\"B\"\n\t\tx\n\tA\ny\nB\nCOPY <<EOF /etc/x\nhello\nEOF\n";
        let k = kinds(src);
        let Kind::Run(r) = &k[1] else { panic!() };
        assert_eq!(r.heredocs.len(), 1);
        assert_eq!(r.heredocs[0].content, "echo $HOME\n");
        assert!(r.heredocs[0].expand);
        let Kind::Run(r) = &k[2] else { panic!() };
        assert_eq!(r.heredocs.len(), 2);
        assert_eq!(r.heredocs[0].content, "x\n");
        assert!(!r.heredocs[0].expand && r.heredocs[0].chomp);
        assert_eq!(r.heredocs[1].content, "y\n");
        assert!(!r.heredocs[1].expand);
        let Kind::Copy(c) = &k[3] else { panic!() };
        assert!(c.sources.is_empty());
        assert_eq!(c.heredocs[0].content, "hello\n");
        let e = parse("FROM a\nRUN <<EOF\nabc\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedHeredoc("EOF".into()));
        assert_eq!(e.pos.line, 2);
    }

    #[test]
    fn from_forms() {
        let e = parse("FROM a b\n").unwrap_err();
        assert_eq!(
            e.kind.to_string(),
            "FROM requires either one or three arguments"
        );
        let e = parse("FROM a AS 1x\n").unwrap_err();
        assert!(e.kind.to_string().contains("invalid name for build stage"));
        let k = kinds("from --platform=$BUILDPLATFORM golang AS Build\n");
        let Kind::From(f) = &k[0] else { panic!() };
        assert_eq!(f.name.as_ref().unwrap().text, "build");
        assert_eq!(f.platform.as_ref().unwrap().text, "$BUILDPLATFORM");
    }

    #[test]
    fn unknown_instruction_suggests() {
        let e = parse("FROM a\n  COPPY a b\n").unwrap_err();
        assert_eq!(e.pos, Pos::new(2, 3));
        assert_eq!(e.hint.as_deref(), Some("did you mean COPY?"));
    }

    #[test]
    fn healthcheck() {
        let k = kinds("FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/ || exit 1\nHEALTHCHECK NONE\n");
        let Kind::Healthcheck(Healthcheck::Cmd {
            test,
            interval,
            retries,
            ..
        }) = &k[1]
        else {
            panic!()
        };
        assert_eq!(test, &CmdLine::Shell("curl -f http://x/ || exit 1".into()));
        assert_eq!(*interval, 5_000_000_000);
        assert_eq!(*retries, 3);
        assert_eq!(k[2], Kind::Healthcheck(Healthcheck::None));
        assert!(parse("FROM a\nHEALTHCHECK --interval=5q CMD x\n").is_err());
        assert!(parse("FROM a\nHEALTHCHECK --interval=1us CMD x\n").is_err());
    }

    #[test]
    fn onbuild() {
        let k = kinds("FROM a\nONBUILD RUN echo hi\n");
        let Kind::Onbuild(o) = &k[1] else { panic!() };
        assert_eq!(o.expression, "RUN echo hi");
        assert!(matches!(o.trigger.kind, Kind::Run(_)));
        assert!(parse("FROM a\nONBUILD ONBUILD RUN x\n").is_err());
        assert!(parse("FROM a\nONBUILD FROM x\n").is_err());
    }

    #[test]
    fn empty_file() {
        assert_eq!(
            parse("\n# just a comment\n").unwrap_err().kind,
            ErrorKind::NoInstructions
        );
        assert_eq!(parse("").unwrap_err().kind, ErrorKind::Empty);
    }
}
