//! Instruction expansion: ARG/ENV scoping, word expansion within the plan's budgets, `--from`
//! references, and the checks on flag values, one instruction at a time.

use super::stages::{Planner, StageNames};
use super::{CopyOp, Dep, DepKind, InlineFile, NamedContext, Op, PlannedMount, Source, PROXY_ARGS};
use crate::ast::{self, Instruction, Kind, Word};
use crate::error::{suggest, Error, ErrorKind, Pos, Result};
use crate::mount;
use crate::shell::{Layered, Lexer, Lookup, Vars};

/// How many characters the expansions of one plan may step over in all (modifiers scanning or
/// copying values): about a second of work. Each word has its own limit too, but a file of
/// many `${V%x}` on a 1 MiB value would otherwise cost a million steps each.
pub const PLAN_WORK_BUDGET: u64 = 200_000_000;

/// The most bytes the expansions of one plan may produce in all. Each value is capped at
/// [`crate::shell::MAX_EXPANSION`], but a few bytes per line (`ENV b1=$a`, `ENV b2=$a`, ...)
/// could still multiply a 1 MiB value into gigabytes; real Dockerfiles expand to kilobytes.
pub const PLAN_EXPANSION_BUDGET: usize = 64 << 20;

impl Planner<'_> {
    /// Expands `text` with `lexer`, drawing on the plan's work budget.
    fn lex_word(
        &self,
        lexer: &Lexer,
        text: &str,
        env: &dyn Lookup,
    ) -> std::result::Result<String, String> {
        let mut left = self.work.get();
        let r = lexer.process_word_within(text, env, &mut left);
        self.work.set(left);
        r
    }

    /// Expands and splits `text`, drawing on the plan's work budget.
    fn lex_words(&self, text: &str, env: &dyn Lookup) -> std::result::Result<Vec<String>, String> {
        let mut left = self.work.get();
        let r = self.lexer.process_words_within(text, env, &mut left);
        self.work.set(left);
        r
    }

    /// Counts `n` expanded bytes against the plan's budget.
    pub(super) fn charge(&self, n: usize) -> std::result::Result<(), String> {
        let total = self.expanded.get().saturating_add(n);
        self.expanded.set(total);
        if total > PLAN_EXPANSION_BUDGET {
            return Err(format!(
                "the Dockerfile's variable expansions (and the ARGs each RUN sees) come to more \
                 than {} MiB in all",
                PLAN_EXPANSION_BUDGET >> 20
            ));
        }
        Ok(())
    }

    pub(super) fn expand(&self, w: &Word, env: &dyn Lookup) -> Result<String> {
        self.expand_text(&w.text, w.pos, env)
    }

    fn expand_text(&self, text: &str, pos: Pos, env: &dyn Lookup) -> Result<String> {
        let r = self.lex_word(&self.lexer, text, env).and_then(|v| {
            self.charge(v.len())?;
            Ok(v)
        });
        r.map_err(|m| {
            Error::new(ErrorKind::Expansion(m), pos)
                .with_len(text.chars().count())
                .with_hint("check the variable reference; quote a literal $ as \\$")
        })
    }

    pub(super) fn meta_arg(&mut self, decls: &[ast::ArgDecl]) -> Result<()> {
        for d in decls {
            let name = d.name.text.as_str();
            self.meta_declared.insert(name.to_string());
            let value = if let Some(v) = self.build_args.get(name) {
                self.used_args.insert(name.to_string());
                Some(v.to_string())
            } else if let Some(def) = &d.default {
                let env = Layered(&self.meta, &self.predefined);
                Some(self.expand_text(def, d.name.pos, &env)?)
            } else {
                None
            };
            match value {
                Some(v) => self.meta.set(name, &v),
                None => self.meta.remove(name),
            }
        }
        Ok(())
    }

    /// Resolves a `--from` / `from=` value: a stage name, a stage index, or an image.
    fn resolve_from(&mut self, value: &str, w_pos: Pos, names: &StageNames) -> Result<Source> {
        let lower = value.to_ascii_lowercase();
        if let Some(j) = names.position(&lower) {
            return Ok(Source::Stage { index: j });
        }
        match self.opts.named_contexts.get(value) {
            Some(NamedContext::Image(r)) => {
                return Ok(Source::Image {
                    reference: r.clone(),
                })
            }
            Some(NamedContext::Local) => {
                return Ok(Source::Named {
                    name: value.to_string(),
                })
            }
            None => {}
        }
        if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
            return match value.parse::<usize>() {
                Ok(j) if j < names.len() => Ok(Source::Stage { index: j }),
                _ => Err(Error::new(
                    ErrorKind::Stage(format!("invalid stage index {value}")),
                    w_pos,
                )
                .with_len(value.len())
                .with_hint(format!(
                    "stages are numbered from 0; this Dockerfile has {} (0 to {})",
                    names.len(),
                    names.len().saturating_sub(1)
                ))),
            };
        }
        {
            let known = names.suggestions();
            if !value.contains(['/', ':', '@']) {
                if let Some(s) = suggest(&lower, &known) {
                    self.warnings.push(ast::Warning {
                        pos: w_pos,
                        message: format!(
                            "{value:?} is not a stage of this Dockerfile, so it is taken as an image name (did you mean stage {s}?)"
                        ),
                    });
                }
            }
        }
        Ok(Source::Image {
            reference: value.to_string(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        inst: &Instruction,
        pos: Pos,
        names: &StageNames,
        env: &mut Vars,
        args: &mut Vars,
        workdir: &mut String,
        shell: &mut Vec<String>,
        deps: &mut Vec<Dep>,
    ) -> Result<Op> {
        let line = pos.line;
        let ex = |this: &Self, w: &Word, env: &Vars, args: &Vars| -> Result<String> {
            this.expand(w, &Layered(env, args))
        };
        Ok(match &inst.kind {
            Kind::From(_) => unreachable_from(inst)?,
            Kind::Arg(decls) => {
                let mut out = Vec::new();
                for d in decls {
                    let name = d.name.text.as_str();
                    let value = if let Some(v) = self.build_args.get(name) {
                        self.used_args.insert(name.to_string());
                        Some(v.to_string())
                    } else if let Some(def) = &d.default {
                        let w = Word::new(def.clone(), d.name.pos);
                        Some(ex(self, &w, env, args)?)
                    } else if let Some(v) = self.meta.get(name) {
                        Some(v.to_string())
                    } else {
                        self.predefined.get(name).map(str::to_string)
                    };
                    match &value {
                        Some(v) => args.set(name, v),
                        None => args.remove(name),
                    }
                    out.push((name.to_string(), value));
                }
                Op::Arg { args: out }
            }
            Kind::Env(kvs) | Kind::Label(kvs) => {
                let mut out = Vec::new();
                for kv in kvs {
                    let k = ex(self, &kv.key, env, args)?;
                    let v = ex(self, &Word::new(kv.value.clone(), kv.key.pos), env, args)?;
                    out.push((k, v));
                }
                if let Kind::Env(_) = inst.kind {
                    for (k, v) in &out {
                        env.set(k, v);
                    }
                    Op::Env { vars: out }
                } else {
                    Op::Label { labels: out }
                }
            }
            Kind::Run(r) => {
                let mut mounts = Vec::new();
                for m in &r.mounts {
                    let l = Layered(env, args);
                    let lexer = self.lexer;
                    let expand = |v: &str| {
                        let r = self.lex_word(&lexer, v, &l)?;
                        self.charge(r.len())?;
                        Ok(r)
                    };
                    let spec = mount::parse(&m.spec.text, expand, false).map_err(|e| {
                        Error::new(
                            ErrorKind::BadFlagValue {
                                flag: "mount".into(),
                                reason: e.message,
                            },
                            m.spec.pos,
                        )
                        .with_len(m.spec.text.chars().count())
                        .with_hint(e.hint)
                    })?;
                    let source_ref = match &spec.from {
                        Some(f) => {
                            let s = self.resolve_from(f, m.spec.pos, names)?;
                            if let Source::Stage { index } = s {
                                deps.push(Dep {
                                    stage: index,
                                    kind: DepKind::MountFrom,
                                    line,
                                });
                            }
                            Some(s)
                        }
                        None => None,
                    };
                    mounts.push(PlannedMount { spec, source_ref });
                }
                let mut run_args: Vec<(String, String)> = args
                    .iter()
                    .filter(|(k, _)| env.get(k).is_none())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                for p in PROXY_ARGS {
                    if let Some(v) = self.build_args.get(p) {
                        if args.get(p).is_none() && env.get(p).is_none() {
                            run_args.push((p.to_string(), v.to_string()));
                        }
                    }
                }
                // Every RUN holds its own copy of the ARGs it sees: count them, or 50,000 ARGs
                // and 50,000 RUNs would be billions of copies.
                let held = run_args.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
                self.charge(held).map_err(|m| {
                    Error::new(ErrorKind::Expansion(m), pos).with_len(inst.original.chars().count())
                })?;
                Op::Run {
                    cmd: r.cmd.clone(),
                    shell: shell.clone(),
                    heredocs: r.heredocs.clone(),
                    mounts,
                    network: r.network,
                    security: r.security,
                    args: run_args,
                }
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let is_add = matches!(inst.kind, Kind::Add(_));
                let mut sources = Vec::new();
                for s in &c.sources {
                    sources.push(ex(self, s, env, args)?);
                }
                let mut inline = Vec::new();
                for h in &c.heredocs {
                    let content = if h.expand {
                        let mut lx = self.lexer;
                        lx.raw_quotes = true;
                        lx.raw_escapes = true;
                        let l = Layered(env, args);
                        let r = self.lex_word(&lx, &h.content, &l).and_then(|v| {
                            self.charge(v.len())?;
                            Ok(v)
                        });
                        match r {
                            Ok(v) => v,
                            Err(m) => return Err(Error::new(
                                ErrorKind::Expansion(m),
                                pos,
                            )
                            .with_len(inst.original.chars().count())
                            .with_hint(
                                "quote the heredoc delimiter (<<'EOF') to take the body literally",
                            )),
                        }
                    } else {
                        h.content.clone()
                    };
                    inline.push(InlineFile {
                        name: h.name.clone(),
                        content,
                    });
                }
                let dest = ex(self, &c.dest, env, args)?;
                let from = match &c.from {
                    Some(f) => {
                        let v = ex(self, f, env, args)?;
                        if v.is_empty() {
                            return Err(Error::new(
                                ErrorKind::BadFlagValue {
                                    flag: "from".into(),
                                    reason: "empty value".into(),
                                },
                                f.pos,
                            )
                            .with_hint("name a stage, a stage index or an image"));
                        }
                        let s = self.resolve_from(&v, f.pos, names)?;
                        if let Source::Stage { index } = s {
                            deps.push(Dep {
                                stage: index,
                                kind: DepKind::CopyFrom,
                                line,
                            });
                        }
                        s
                    }
                    None => Source::Context,
                };
                let chown = c
                    .chown
                    .as_ref()
                    .map(|w| ex(self, w, env, args))
                    .transpose()?;
                let chmod = match &c.chmod {
                    Some(w) => {
                        let v = ex(self, w, env, args)?;
                        if !valid_chmod(&v) {
                            return Err(Error::new(
                                ErrorKind::BadFlagValue {
                                    flag: "chmod".into(),
                                    reason: format!("invalid mode {v:?}"),
                                },
                                w.pos,
                            )
                            .with_len(w.text.chars().count())
                            .with_hint("give an octal mode (0755) or a symbolic one (u+x,go-w)"));
                        }
                        Some(v)
                    }
                    None => None,
                };
                let checksum = match &c.checksum {
                    Some(w) => {
                        let v = ex(self, w, env, args)?;
                        if !valid_checksum(&v) {
                            return Err(Error::new(
                                ErrorKind::BadFlagValue {
                                    flag: "checksum".into(),
                                    reason: format!("invalid checksum digest {v:?}"),
                                },
                                w.pos,
                            )
                            .with_len(w.text.chars().count())
                            .with_hint("write --checksum=sha256:<64 hex digits>"));
                        }
                        Some(v)
                    }
                    None => None,
                };
                let mut excludes = Vec::new();
                for e in &c.excludes {
                    excludes.push(ex(self, e, env, args)?);
                }
                let op = CopyOp {
                    sources,
                    inline,
                    dest,
                    from,
                    chown,
                    chmod,
                    link: c.link,
                    parents: c.parents,
                    excludes,
                    checksum,
                    keep_git_dir: c.keep_git_dir,
                    unpack: c.unpack,
                    workdir: workdir.clone(),
                };
                if is_add {
                    Op::Add(op)
                } else {
                    Op::Copy(op)
                }
            }
            Kind::Workdir(w) => {
                let v = ex(self, w, env, args)?;
                let joined = if v.starts_with('/') {
                    v
                } else {
                    format!("{}/{}", workdir.trim_end_matches('/'), v)
                };
                *workdir = clean_path(&joined);
                Op::Workdir {
                    path: workdir.clone(),
                }
            }
            Kind::User(w) => Op::User {
                user: ex(self, w, env, args)?,
            },
            Kind::Stopsignal(w) => Op::Stopsignal {
                signal: ex(self, w, env, args)?,
            },
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let l = Layered(env, args);
                    let r = self.lex_words(&p.text, &l).and_then(|ws| {
                        // Each word is a port spec; a range stands for every port in it, as
                        // BuildKit stores them.
                        let mut keys = Vec::new();
                        for w in ws {
                            keys.extend(crate::ports::expand(&w)?);
                        }
                        self.charge(keys.iter().map(String::len).sum())?;
                        Ok(keys)
                    });
                    match r {
                        Ok(ws) => out.extend(ws),
                        Err(m) => {
                            return Err(Error::new(ErrorKind::Expansion(m), p.pos)
                                .with_len(p.text.chars().count()))
                        }
                    }
                }
                Op::Expose { ports: out }
            }
            Kind::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    out.push(ex(self, v, env, args)?);
                }
                Op::Volume { paths: out }
            }
            Kind::Cmd(c) => Op::Cmd {
                cmd: c.clone(),
                shell: shell.clone(),
            },
            Kind::Entrypoint(c) => Op::Entrypoint {
                cmd: c.clone(),
                shell: shell.clone(),
            },
            Kind::Healthcheck(h) => Op::Healthcheck {
                check: h.clone(),
                shell: shell.clone(),
            },
            Kind::Shell(s) => {
                *shell = s.clone();
                Op::Shell { shell: s.clone() }
            }
            Kind::Maintainer(m) => Op::Maintainer { name: m.clone() },
            Kind::Onbuild(o) => Op::Onbuild {
                trigger: o.expression.clone(),
            },
        })
    }
}

fn unreachable_from(inst: &Instruction) -> Result<Op> {
    // FROM lines start stages and never reach `step`; an ONBUILD FROM is refused by the parser.
    Err(Error::new(
        ErrorKind::Syntax("FROM is not allowed here".into()),
        inst.pos,
    ))
}

/// Lexically cleans an absolute path (`/a/./b/../c` is `/a/c`).
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if p.ends_with('/') && out.len() > 1 {
        out.push('/');
    }
    out
}

pub use whittle_graph::valid_chmod;

fn valid_checksum(v: &str) -> bool {
    let Some((alg, hex)) = v.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}
