//! The planner's walk: split the file into global ARGs and stages, resolve each FROM, pick the
//! target, expand every stage from what it inherits, and keep only what the target needs.

use super::expand::PLAN_WORK_BUDGET;
use super::order::{check_definition_order, reachable, topo_order, waves};
use super::{
    platform_args, Base, CopyOp, Dep, DepKind, ImageInfo, ImageResolver, NamedContext, Op, Plan,
    PlanOptions, Platform, Source, Stage, Step, DEFAULT_PATH, DEFAULT_SHELL, PROXY_ARGS,
};
use crate::ast::{self, Dockerfile, Instruction, Kind};
use crate::error::{suggest, Error, ErrorKind, Pos, Result};
use crate::shell::{Layered, Lexer, Vars};
use std::collections::{BTreeSet, HashMap};

pub(super) struct Planner<'a> {
    pub(super) df: &'a Dockerfile,
    pub(super) opts: &'a PlanOptions,
    pub(super) images: &'a dyn ImageResolver,
    pub(super) lexer: Lexer,
    pub(super) build_args: HashMap<&'a str, &'a str>,
    pub(super) used_args: BTreeSet<String>,
    pub(super) predefined: Vars,
    /// Global ARGs: name -> value (None when declared without a value).
    pub(super) meta: Vars,
    pub(super) meta_declared: BTreeSet<String>,
    pub(super) warnings: Vec<ast::Warning>,
    pub(super) unresolved: Vec<String>,
    pub(super) unresolved_seen: std::collections::HashSet<String>,
    /// Bytes all expansions of this plan have produced so far (see
    /// [`PLAN_EXPANSION_BUDGET`](super::PLAN_EXPANSION_BUDGET)).
    pub(super) expanded: std::cell::Cell<usize>,
    /// Work left for the expansions of this plan (see [`PLAN_WORK_BUDGET`]).
    pub(super) work: std::cell::Cell<u64>,
}

/// Stage names (as written after `AS`), indexed like the stages, with a map for constant-time
/// lookups: a file with 100,000 stages must still plan in linear time.
#[derive(Default)]
pub(super) struct StageNames {
    list: Vec<Option<String>>,
    first: HashMap<String, usize>,
}

impl StageNames {
    fn push(&mut self, name: Option<String>) {
        if let Some(n) = &name {
            self.first.entry(n.clone()).or_insert(self.list.len());
        }
        self.list.push(name);
    }

    /// The first stage with this exact name.
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.first.get(name).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Names to suggest from when a reference matches none; none for a file with so many
    /// stages that comparing against each of them, for every reference, would be quadratic.
    pub(super) fn suggestions(&self) -> Vec<&str> {
        if self.first.len() > 1_000 {
            return Vec::new();
        }
        self.list.iter().flatten().map(String::as_str).collect()
    }
}

/// A stage's FROM and its instructions, found in pass one.
struct StageSrc<'a> {
    from: &'a ast::From,
    from_inst: &'a Instruction,
    body: Vec<&'a Instruction>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        df: &'a Dockerfile,
        opts: &'a PlanOptions,
        images: &'a dyn ImageResolver,
    ) -> Self {
        let mut lexer = Lexer::new(df.escape);
        lexer.escape = df.escape;
        Planner {
            df,
            opts,
            images,
            lexer,
            build_args: opts
                .build_args
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            used_args: BTreeSet::new(),
            predefined: platform_args(&opts.target_platform, &opts.build_platform),
            meta: Vars::default(),
            meta_declared: BTreeSet::new(),
            warnings: df.warnings.clone(),
            unresolved: Vec::new(),
            unresolved_seen: Default::default(),
            expanded: std::cell::Cell::new(0),
            work: std::cell::Cell::new(PLAN_WORK_BUDGET),
        }
    }

    pub(super) fn run(mut self) -> Result<Plan> {
        // Split the file into global ARGs and stages.
        let mut stages_src: Vec<StageSrc> = Vec::new();
        for inst in &self.df.instructions {
            match (&inst.kind, stages_src.last_mut()) {
                (Kind::From(f), _) => stages_src.push(StageSrc {
                    from: f,
                    from_inst: inst,
                    body: Vec::new(),
                }),
                (Kind::Arg(decls), None) => self.meta_arg(decls)?,
                (_, None) => return Err(Error::new(
                    ErrorKind::NoStage {
                        instruction: inst.kind.keyword().into(),
                    },
                    inst.pos,
                )
                .with_len(inst.kind.keyword().len())
                .with_hint(
                    "only ARG may come before the first FROM; start the stage with FROM <image>",
                )),
                (_, Some(st)) => st.body.push(inst),
            }
        }
        if stages_src.is_empty() {
            let pos = self
                .df
                .instructions
                .first()
                .map_or(Pos::new(1, 1), |i| i.pos);
            return Err(Error::new(
                ErrorKind::Stage("no build stage in the Dockerfile".into()),
                pos,
            )
            .with_hint("add a FROM instruction"));
        }

        // Stage names, FROM expansion, bases.
        let mut names = StageNames::default();
        let mut stages: Vec<Stage> = Vec::new();
        for (i, src) in stages_src.iter().enumerate() {
            let meta = Layered(&self.meta, &self.predefined);
            let image = self.expand(&src.from.image, &meta)?;
            if image.is_empty() {
                return Err(Error::new(
                    ErrorKind::Stage(format!(
                        "base name ({}) should not be blank",
                        src.from.image.text
                    )),
                    src.from.image.pos,
                )
                .with_len(src.from.image.text.chars().count())
                .with_hint(
                    "give the ARG used in FROM a default value or pass it with --build-arg",
                ));
            }
            let platform = match &src.from.platform {
                Some(p) => {
                    let v = self.expand(p, &meta)?;
                    if Platform::parse(&v).is_none() {
                        return Err(Error::new(
                            ErrorKind::BadFlagValue {
                                flag: "platform".into(),
                                reason: format!("{v:?} is not a platform"),
                            },
                            p.pos,
                        )
                        .with_len(p.text.chars().count())
                        .with_hint("write a platform as os/arch[/variant], e.g. linux/amd64"));
                    }
                    Some(v)
                }
                None => None,
            };
            let lower = image.to_ascii_lowercase();
            let mut from_context = None;
            let base = if let Some(j) = names.position(&lower) {
                Base::Stage { index: j }
            } else if let Some(nc) = self.opts.named_contexts.get(&image) {
                match nc {
                    NamedContext::Image(r) => Base::Image {
                        reference: r.clone(),
                    },
                    // The stage starts from the directory's files (see `walk`).
                    NamedContext::Local => {
                        from_context = Some(image.clone());
                        Base::Scratch
                    }
                }
            } else if image == "scratch" {
                Base::Scratch
            } else {
                Base::Image { reference: image }
            };
            if let Some(n) = &src.from.name {
                if let Some(j) = names.position(&n.text) {
                    return Err(Error::new(
                        ErrorKind::Stage(format!("duplicate stage name {:?}", n.text)),
                        n.pos,
                    )
                    .with_len(n.text.len())
                    .with_hint(format!(
                        "stage #{j} (line {}) already has this name; rename one of them",
                        stages[j].pos.line
                    )));
                }
            }
            names.push(src.from.name.as_ref().map(|n| n.text.clone()));
            let deps = match base {
                Base::Stage { index } => vec![Dep {
                    stage: index,
                    kind: DepKind::From,
                    line: src.from_inst.pos.line,
                }],
                _ => Vec::new(),
            };
            stages.push(Stage {
                index: i,
                name: names.list[i].clone(),
                pos: src.from_inst.pos,
                base,
                from_context,
                platform,
                needed: false,
                skip_reason: None,
                deps,
                steps: Vec::new(),
                final_env: Vars::default(),
                final_args: Vars::default(),
                final_workdir: "/".into(),
                final_shell: Vec::new(),
                final_onbuild: Vec::new(),
            });
        }

        // Target.
        let target = match &self.opts.target {
            None => stages.len() - 1,
            Some(t) => {
                let lt = t.to_ascii_lowercase();
                match names.position(&lt) {
                    Some(i) => i,
                    None => {
                        let known: Vec<&str> =
                            names.list.iter().flatten().map(String::as_str).collect();
                        let hint = match suggest(&lt, &known) {
                            Some(s) => format!("did you mean {s}?"),
                            None if known.is_empty() => {
                                "no stage has a name: add `AS <name>` to a FROM line".into()
                            }
                            None => format!("named stages: {}", known.join(", ")),
                        };
                        return Err(Error::new(
                            ErrorKind::UnknownTarget(t.clone()),
                            Pos::new(0, 0),
                        )
                        .with_hint(hint));
                    }
                }
            }
        };

        // One pass over every stage, in file order. A stage that fails to expand fails the
        // build only if the target needs it (BuildKit never dispatches the others), so each
        // stage's error, consumed build args and warnings are kept aside until that is known.
        let meta_used = std::mem::take(&mut self.used_args);
        let mut warnings = std::mem::take(&mut self.warnings);
        let mut outcomes = Vec::with_capacity(stages.len());
        for (i, src) in stages_src.iter().enumerate() {
            let err = self.walk(i, src, &mut stages, &names).err();
            outcomes.push((
                err,
                std::mem::take(&mut self.used_args),
                std::mem::take(&mut self.warnings),
            ));
        }
        // As BuildKit, cycles are looked for among all stages, before anything else.
        self.check_cycles(&stages)?;
        let needed = reachable(&stages, target);
        check_definition_order(&stages, &needed)?;
        self.used_args = meta_used;
        let target_label = stages[target].label();
        for (i, (err, used, warns)) in outcomes.into_iter().enumerate() {
            if needed[i] {
                if let Some(e) = err {
                    return Err(e);
                }
                stages[i].needed = true;
                self.used_args.extend(used);
                warnings.extend(warns);
            } else {
                stages[i].steps.clear();
                stages[i].skip_reason = Some(format!("not needed by target stage {target_label}"));
            }
        }
        self.warnings = warnings;

        let needed_images: std::collections::HashSet<&str> = stages
            .iter()
            .filter(|s| s.needed)
            .filter_map(|s| match &s.base {
                Base::Image { reference } => Some(reference.as_str()),
                _ => None,
            })
            .collect();
        self.unresolved
            .retain(|r| needed_images.contains(r.as_str()));
        let order = topo_order(&stages, &needed);
        let waves = waves(&stages, &order);
        let mut unused: Vec<String> = self
            .opts
            .build_args
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| {
                !self.used_args.contains(k)
                    && !PROXY_ARGS.contains(&k.as_str())
                    && k.as_str() != "SOURCE_DATE_EPOCH"
            })
            .collect();
        unused.sort();
        unused.dedup();
        Ok(Plan {
            stages,
            target,
            order,
            waves,
            unused_build_args: unused,
            target_platform: self.opts.target_platform.clone(),
            build_platform: self.opts.build_platform.clone(),
            warnings: self.warnings,
            unresolved_images: self.unresolved,
        })
    }

    /// Expands one stage. In lenient mode, expansion errors leave raw text.
    fn walk(
        &mut self,
        i: usize,
        src: &StageSrc,
        stages: &mut [Stage],
        names: &StageNames,
    ) -> Result<()> {
        // Inherited state.
        let (mut env, mut args, mut workdir, mut shell, onbuild) = match &stages[i].base {
            Base::Stage { index } => {
                let p = &stages[*index];
                // Each stage holds its own copy of what it inherits: a long chain of stages that
                // each add a variable would otherwise grow quadratically without any check.
                let held = p
                    .final_env
                    .iter()
                    .chain(p.final_args.iter())
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum();
                self.charge(held).map_err(|m| {
                    Error::new(ErrorKind::Expansion(m), src.from_inst.pos)
                        .with_len(src.from_inst.original.chars().count())
                })?;
                (
                    p.final_env.clone(),
                    p.final_args.clone(),
                    p.final_workdir.clone(),
                    p.final_shell.clone(),
                    p.final_onbuild.clone(),
                )
            }
            // BuildKit gives an image without PATH the default one.
            Base::Scratch => (
                Vars::from_pairs([("PATH".into(), DEFAULT_PATH.into())]),
                Vars::default(),
                "/".to_string(),
                Vec::new(),
                Vec::new(),
            ),
            Base::Image { reference } => {
                let platform = stages[i]
                    .platform
                    .as_deref()
                    .and_then(Platform::parse)
                    .unwrap_or_else(|| self.opts.target_platform.clone());
                let info = match self.images.resolve(reference, &platform) {
                    Some(mut info) => {
                        if !info.env.iter().any(|(k, _)| k == "PATH") {
                            info.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
                        }
                        info
                    }
                    None => {
                        if self.unresolved_seen.insert(reference.clone()) {
                            self.unresolved.push(reference.clone());
                        }
                        ImageInfo::default()
                    }
                };
                (
                    Vars::from_pairs(info.env),
                    Vars::default(),
                    info.workdir
                        .filter(|w| !w.is_empty())
                        .unwrap_or_else(|| "/".into()),
                    info.shell.unwrap_or_default(),
                    info.onbuild,
                )
            }
        };
        if shell.is_empty() {
            shell = DEFAULT_SHELL.iter().map(|s| s.to_string()).collect();
        }
        // ONBUILD triggers of the base image (or base stage) run first.
        let mut triggers = Vec::new();
        for t in &onbuild {
            match crate::parser::parse(t) {
                Ok(df) => triggers.extend(df.instructions),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Syntax(format!(
                            "the base image's ONBUILD trigger {t:?} is invalid: {}",
                            e.kind
                        )),
                        src.from_inst.pos,
                    )
                    .with_len(src.from_inst.original.chars().count()))
                }
            }
        }
        let insts: Vec<(&Instruction, bool)> = triggers
            .iter()
            .map(|t| (t, true))
            .chain(src.body.iter().map(|b| (*b, false)))
            .collect();
        let mut steps = Vec::new();
        // `FROM NAME` of a local --build-context: the stage starts as its files, copied in as
        // `COPY --from=NAME . /` would (so the cache keys them the same way).
        if let Some(name) = stages[i].from_context.clone() {
            {
                steps.push(Step {
                    pos: src.from_inst.pos,
                    original: src.from_inst.original.clone(),
                    from_onbuild: false,
                    op: Op::Copy(CopyOp {
                        sources: vec![".".into()],
                        inline: Vec::new(),
                        dest: "/".into(),
                        from: Source::Named { name },
                        chown: None,
                        chmod: None,
                        link: false,
                        parents: false,
                        excludes: Vec::new(),
                        checksum: None,
                        keep_git_dir: false,
                        unpack: None,
                        workdir: "/".into(),
                    }),
                });
            }
        }
        let mut deps = stages[i].deps.clone();
        for (inst, from_onbuild) in insts {
            let pos = if from_onbuild {
                src.from_inst.pos
            } else {
                inst.pos
            };
            let op = self.step(
                inst,
                pos,
                names,
                &mut env,
                &mut args,
                &mut workdir,
                &mut shell,
                &mut deps,
            )?;
            steps.push(Step {
                pos,
                original: inst.original.clone(),
                from_onbuild,
                op,
            });
        }
        let registered: Vec<String> = steps
            .iter()
            .filter_map(|s| match &s.op {
                Op::Onbuild { trigger } => Some(trigger.clone()),
                _ => None,
            })
            .collect();
        let st = &mut stages[i];
        st.final_onbuild = registered;
        st.steps = steps;
        st.deps = deps;
        st.final_env = env;
        st.final_args = args;
        st.final_workdir = workdir;
        st.final_shell = shell;
        Ok(())
    }
}
