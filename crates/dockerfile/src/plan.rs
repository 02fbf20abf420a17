//! From a parsed Dockerfile to a build plan: ARG/ENV scoping and word expansion, stage
//! references, `--target` pruning, dependency order and parallel waves.
//!
//! Follows BuildKit's `dockerfile2llb`: global ARGs (before the first FROM) are visible only in
//! FROM lines unless redeclared in a stage; a stage's ARGs live to the end of the stage and are
//! inherited by `FROM <stage>`; ENV shadows ARG; only the stages the target needs are expanded
//! (an error in a stage that is not built does not fail the build).

use crate::ast::{self, CmdLine, Dockerfile, Healthcheck, Instruction, Kind, Word};
use crate::error::{suggest, Error, ErrorKind, Pos, Result};
use crate::mount::{self, MountSpec};
use crate::shell::{Layered, Lexer, Lookup, Vars};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A platform such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI terms.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]` (also `arch` alone, meaning linux), normalised as
    /// containerd does (`x86_64` is `amd64`, `aarch64` is `arm64`, `arm64/v8` drops the variant).
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !a.is_empty() => ("linux", *a, None),
            [o, a] if !o.is_empty() && !a.is_empty() => (*o, *a, None),
            [o, a, v] if !o.is_empty() && !a.is_empty() && !v.is_empty() => (*o, *a, Some(*v)),
            _ => return None,
        };
        let ok = |t: &str| {
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !ok(os) || !ok(arch) || !variant.is_none_or(ok) {
            return None;
        }
        let os = os.to_ascii_lowercase();
        let arch = arch.to_ascii_lowercase();
        let (arch, variant) = match (arch.as_str(), variant.map(str::to_ascii_lowercase)) {
            ("x86_64" | "x86-64", _) => ("amd64".to_string(), None),
            ("aarch64", v) | ("arm64", v) => {
                ("arm64".to_string(), v.filter(|v| v != "v8" && v != "8"))
            }
            ("armhf", _) => ("arm".into(), Some("v7".into())),
            ("armel", _) => ("arm".into(), Some("v6".into())),
            ("arm", None) => ("arm".into(), Some("v7".into())),
            ("i386" | "i686", _) => ("386".into(), None),
            (a, v) => (a.to_string(), v),
        };
        Some(Platform { os, arch, variant })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What the planner may know about a base image (from the local store, when there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub shell: Option<Vec<String>>,
    /// ONBUILD triggers, run at the start of a stage built on this image.
    pub onbuild: Vec<String>,
}

/// Looks up base images. The CLI passes one backed by the image store; tests pass maps.
pub trait ImageResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<ImageInfo>;
}

/// Knows no images.
pub struct NoImages;
impl ImageResolver for NoImages {
    fn resolve(&self, _: &str, _: &Platform) -> Option<ImageInfo> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The stage to build (name, case-insensitive); the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg` values, already resolved (a bare `--build-arg K` takes K from the caller's
    /// environment, and is dropped when unset there, as docker does).
    pub build_args: Vec<(String, String)>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    /// `--build-context NAME=...`: what `FROM NAME`, `COPY --from=NAME` and `--mount from=NAME`
    /// read instead of the image (or the stage-less name) NAME.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

/// What a `--build-context` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (the engine knows its path): `FROM NAME` starts from its files,
    /// `COPY --from=NAME` copies from it as from the build context.
    Local,
    /// An image, by the reference to use instead (`docker-image://REF`, or an OCI layout the
    /// caller imported).
    Image(String),
}

impl Default for PlanOptions {
    fn default() -> Self {
        let host = Platform::host();
        PlanOptions {
            target: None,
            build_args: Vec::new(),
            target_platform: host.clone(),
            build_platform: host,
            named_contexts: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Index of the target stage.
    pub target: usize,
    /// The stages to build, each after the stages it needs.
    pub order: Vec<usize>,
    /// Groups of stages that can be built at the same time; each wave needs only earlier ones.
    pub waves: Vec<Vec<usize>>,
    /// Build args that no ARG of a built stage consumed.
    pub unused_build_args: Vec<String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    pub warnings: Vec<ast::Warning>,
    /// Base images of built stages that the resolver did not know: the ENV they set is not
    /// reflected in this plan's expansions.
    pub unresolved_images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub pos: Pos,
    pub base: Base,
    /// `FROM NAME` of a local `--build-context`: the base is scratch, and the first step copies
    /// the directory's files in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_context: Option<String>,
    /// The `FROM --platform` value after expansion.
    pub platform: Option<String>,
    pub needed: bool,
    /// Why a stage is not built.
    pub skip_reason: Option<String>,
    pub deps: Vec<Dep>,
    /// Steps after expansion (empty for stages that are not built).
    pub steps: Vec<Step>,
    /// The variables in effect at the end of the stage (image ENV first, then ARGs).
    #[serde(skip)]
    pub final_env: Vars,
    #[serde(skip)]
    final_args: Vars,
    #[serde(skip)]
    final_workdir: String,
    #[serde(skip)]
    final_shell: Vec<String>,
    /// ONBUILD triggers this stage registers; they run in a stage built `FROM` it.
    #[serde(skip)]
    final_onbuild: Vec<String>,
}

impl Plan {
    /// Display names of all stages (`name` or `#index`), indexed like `stages`.
    pub fn labels(&self) -> Vec<String> {
        self.stages.iter().map(Stage::label).collect()
    }
}

impl Stage {
    /// `name` or `#index` for messages.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("#{}", self.index),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Base {
    Scratch,
    Image { reference: String },
    Stage { index: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DepKind {
    From,
    CopyFrom,
    MountFrom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dep {
    pub stage: usize,
    pub kind: DepKind,
    pub line: usize,
}

/// Where COPY --from or a mount's `from` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Context,
    Stage {
        index: usize,
    },
    Image {
        reference: String,
    },
    /// A local `--build-context` directory, by name.
    Named {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub pos: Pos,
    /// The instruction as written.
    pub original: String,
    /// True for steps that came from an ONBUILD trigger of the base image.
    pub from_onbuild: bool,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMount {
    #[serde(flatten)]
    pub spec: MountSpec,
    /// Where the content of a bind/cache mount comes from (`None`: the build context for bind,
    /// an empty directory for cache).
    pub source_ref: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyOp {
    pub sources: Vec<String>,
    pub inline: Vec<InlineFile>,
    pub dest: String,
    pub from: Source,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
    /// The working directory the destination is relative to.
    pub workdir: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Run {
        cmd: CmdLine,
        /// The SHELL in effect, for the shell form.
        shell: Vec<String>,
        /// Here-documents, bodies as written (the shell expands them at run time).
        heredocs: Vec<ast::Heredoc>,
        mounts: Vec<PlannedMount>,
        network: Option<ast::NetworkMode>,
        security: Option<ast::SecurityMode>,
        /// The ARGs in scope (not shadowed by ENV), added to the process environment.
        args: Vec<(String, String)>,
    },
    Copy(CopyOp),
    Add(CopyOp),
    Env {
        vars: Vec<(String, String)>,
    },
    Label {
        labels: Vec<(String, String)>,
    },
    Arg {
        args: Vec<(String, Option<String>)>,
    },
    Workdir {
        path: String,
    },
    User {
        user: String,
    },
    Expose {
        ports: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    Cmd {
        cmd: CmdLine,
        shell: Vec<String>,
    },
    Entrypoint {
        cmd: CmdLine,
        shell: Vec<String>,
    },
    Healthcheck {
        check: Healthcheck,
        shell: Vec<String>,
    },
    Stopsignal {
        signal: String,
    },
    Shell {
        shell: Vec<String>,
    },
    Maintainer {
        name: String,
    },
    Onbuild {
        trigger: String,
    },
}

fn quote_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn cmdline(c: &CmdLine) -> String {
    match c {
        CmdLine::Exec(v) => quote_list(v),
        CmdLine::Shell(s) => s.clone(),
    }
}

impl Op {
    /// One line describing the step after expansion, in Dockerfile syntax. `stages` gives
    /// the display names of the stages (see [`Plan::labels`]) for `--from` references.
    pub fn summary(&self, stages: &[String]) -> String {
        let kv = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Op::Run {
                cmd,
                mounts,
                network,
                security,
                heredocs,
                ..
            } => {
                let mut s = String::from("RUN");
                for m in mounts {
                    s.push_str(&format!(" --mount={}", mount_summary(m, stages)));
                }
                if let Some(n) = network {
                    s.push_str(&format!(" --network={}", enum_str(n)));
                }
                if let Some(sec) = security {
                    s.push_str(&format!(" --security={}", enum_str(sec)));
                }
                s.push(' ');
                s.push_str(&cmdline(cmd));
                for h in heredocs {
                    let lines = h.content.lines().count();
                    s.push_str(&format!(
                        " [heredoc {}: {lines} line{}]",
                        h.name,
                        if lines == 1 { "" } else { "s" }
                    ));
                }
                s
            }
            Op::Copy(c) => copy_summary("COPY", c, stages),
            Op::Add(c) => copy_summary("ADD", c, stages),
            Op::Env { vars } => format!("ENV {}", kv(vars)),
            Op::Label { labels } => format!("LABEL {}", kv(labels)),
            Op::Arg { args } => format!(
                "ARG {}",
                args.iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={}", shell_quote(v)),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Op::Workdir { path } => format!("WORKDIR {path}"),
            Op::User { user } => format!("USER {user}"),
            Op::Expose { ports } => format!("EXPOSE {}", ports.join(" ")),
            Op::Volume { paths } => format!("VOLUME {}", quote_list(paths)),
            Op::Cmd { cmd, .. } => format!("CMD {}", cmdline(cmd)),
            Op::Entrypoint { cmd, .. } => format!("ENTRYPOINT {}", cmdline(cmd)),
            Op::Healthcheck { check, .. } => match check {
                Healthcheck::None => "HEALTHCHECK NONE".into(),
                Healthcheck::Cmd { test, .. } => format!("HEALTHCHECK CMD {}", cmdline(test)),
            },
            Op::Stopsignal { signal } => format!("STOPSIGNAL {signal}"),
            Op::Shell { shell } => format!("SHELL {}", quote_list(shell)),
            Op::Maintainer { name } => format!("MAINTAINER {name}"),
            Op::Onbuild { trigger } => format!("ONBUILD {trigger}"),
        }
    }
}

fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,+@%=".contains(c))
    {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

fn source_summary(s: &Source, stages: Option<&[String]>) -> String {
    match s {
        Source::Context => "context".into(),
        Source::Stage { index } => stages
            .and_then(|n| n.get(*index).cloned())
            .unwrap_or_else(|| index.to_string()),
        Source::Image { reference } => reference.clone(),
        Source::Named { name } => name.clone(),
    }
}

fn mount_summary(m: &PlannedMount, stages: &[String]) -> String {
    let s = &m.spec;
    let mut parts = vec![format!("type={}", s.kind.as_str())];
    if !s.target.is_empty() {
        parts.push(format!("target={}", s.target));
    }
    if let Some(r) = &m.source_ref {
        parts.push(format!("from={}", source_summary(r, Some(stages))));
    }
    if let Some(src) = &s.source {
        parts.push(format!("source={src}"));
    }
    if let Some(id) = &s.id {
        if s.kind != mount::MountType::Cache || id != &s.target {
            parts.push(format!("id={id}"));
        }
    }
    if s.kind == mount::MountType::Cache && s.sharing != mount::Sharing::Shared {
        parts.push(format!("sharing={}", enum_str(&s.sharing)));
    }
    if s.kind == mount::MountType::Bind && !s.readonly {
        parts.push("rw".into());
    }
    if let Some(e) = &s.env {
        parts.push(format!("env={e}"));
    }
    parts.join(",")
}

fn copy_summary(kw: &str, c: &CopyOp, stages: &[String]) -> String {
    let mut s = kw.to_string();
    if c.from != Source::Context {
        s.push_str(&format!(
            " --from={}",
            source_summary(&c.from, Some(stages))
        ));
    }
    if let Some(v) = &c.chown {
        s.push_str(&format!(" --chown={v}"));
    }
    if let Some(v) = &c.chmod {
        s.push_str(&format!(" --chmod={v}"));
    }
    if c.link {
        s.push_str(" --link");
    }
    if c.parents {
        s.push_str(" --parents");
    }
    for e in &c.excludes {
        s.push_str(&format!(" --exclude={e}"));
    }
    if let Some(v) = &c.checksum {
        s.push_str(&format!(" --checksum={v}"));
    }
    if c.keep_git_dir {
        s.push_str(" --keep-git-dir");
    }
    if let Some(u) = c.unpack {
        s.push_str(&format!(" --unpack={u}"));
    }
    for src in &c.sources {
        s.push(' ');
        s.push_str(src);
    }
    for f in &c.inline {
        s.push_str(&format!(" <<{}", f.name));
    }
    s.push(' ');
    s.push_str(&c.dest);
    s
}

/// Args that docker passes to RUN without an ARG declaration, and keeps out of the image.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The PATH BuildKit sets for Linux images that have none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The predefined platform ARGs (`TARGETPLATFORM`, `BUILDARCH`, ...) for a build, as BuildKit
/// sets them. The checker uses the same set, so both agree on what is defined.
pub fn platform_args(target: &Platform, build: &Platform) -> Vars {
    let mut v = Vars::default();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        v.set(&format!("{prefix}PLATFORM"), &p.to_string());
        v.set(&format!("{prefix}OS"), &p.os);
        v.set(&format!("{prefix}ARCH"), &p.arch);
        v.set(
            &format!("{prefix}VARIANT"),
            p.variant.as_deref().unwrap_or(""),
        );
    }
    v
}

/// Plans a build without knowledge of base images.
pub fn plan(df: &Dockerfile, opts: &PlanOptions) -> Result<Plan> {
    plan_with(df, opts, &NoImages)
}

/// Plans a build; `images` supplies what is known about base images (ENV, WORKDIR, ONBUILD).
pub fn plan_with(df: &Dockerfile, opts: &PlanOptions, images: &dyn ImageResolver) -> Result<Plan> {
    Planner::new(df, opts, images).run()
}

struct Planner<'a> {
    df: &'a Dockerfile,
    opts: &'a PlanOptions,
    images: &'a dyn ImageResolver,
    lexer: Lexer,
    build_args: HashMap<&'a str, &'a str>,
    used_args: BTreeSet<String>,
    predefined: Vars,
    /// Global ARGs: name -> value (None when declared without a value).
    meta: Vars,
    meta_declared: BTreeSet<String>,
    warnings: Vec<ast::Warning>,
    unresolved: Vec<String>,
    unresolved_seen: std::collections::HashSet<String>,
    /// Bytes all expansions of this plan have produced so far (see [`PLAN_EXPANSION_BUDGET`]).
    expanded: std::cell::Cell<usize>,
    /// Work left for the expansions of this plan (see [`PLAN_WORK_BUDGET`]).
    work: std::cell::Cell<u64>,
}

/// How many characters the expansions of one plan may step over in all (modifiers scanning or
/// copying values): about a second of work. Each word has its own limit too, but a file of
/// many `${V%x}` on a 1 MiB value would otherwise cost a million steps each.
pub const PLAN_WORK_BUDGET: u64 = 200_000_000;

/// The most bytes the expansions of one plan may produce in all. Each value is capped at
/// [`crate::shell::MAX_EXPANSION`], but a few bytes per line (`ENV b1=$a`, `ENV b2=$a`, ...)
/// could still multiply a 1 MiB value into gigabytes; real Dockerfiles expand to kilobytes.
pub const PLAN_EXPANSION_BUDGET: usize = 64 << 20;

/// Stage names (as written after `AS`), indexed like the stages, with a map for constant-time
/// lookups: a file with 100,000 stages must still plan in linear time.
#[derive(Default)]
struct StageNames {
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
    fn position(&self, name: &str) -> Option<usize> {
        self.first.get(name).copied()
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// Names to suggest from when a reference matches none; none for a file with so many
    /// stages that comparing against each of them, for every reference, would be quadratic.
    fn suggestions(&self) -> Vec<&str> {
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
    fn new(df: &'a Dockerfile, opts: &'a PlanOptions, images: &'a dyn ImageResolver) -> Self {
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
    fn charge(&self, n: usize) -> std::result::Result<(), String> {
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

    fn expand(&self, w: &Word, env: &dyn Lookup) -> Result<String> {
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

    fn run(mut self) -> Result<Plan> {
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

    fn meta_arg(&mut self, decls: &[ast::ArgDecl]) -> Result<()> {
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

    #[allow(clippy::too_many_arguments)]
    fn step(
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

    fn check_cycles(&self, stages: &[Stage]) -> Result<()> {
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
fn check_definition_order(stages: &[Stage], needed: &[bool]) -> Result<()> {
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

fn unreachable_from(inst: &Instruction) -> Result<Op> {
    // FROM lines start stages and never reach `step`; an ONBUILD FROM is refused by the parser.
    Err(Error::new(
        ErrorKind::Syntax("FROM is not allowed here".into()),
        inst.pos,
    ))
}

fn reachable(stages: &[Stage], target: usize) -> Vec<bool> {
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
fn topo_order(stages: &[Stage], needed: &[bool]) -> Vec<usize> {
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

fn waves(stages: &[Stage], order: &[usize]) -> Vec<Vec<usize>> {
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

/// `--chmod`: octal (up to 4 digits) or symbolic (`u+x,g-w,o=r`, `a+X`).
pub fn valid_chmod(v: &str) -> bool {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return v.len() <= 4 && u32::from_str_radix(v, 8).is_ok();
    }
    !v.is_empty()
        && v.split(',').all(|clause| {
            let who_len = clause.len() - clause.trim_start_matches(['u', 'g', 'o', 'a']).len();
            let rest = &clause[who_len..];
            let mut chars = rest.chars();
            let mut any_op = false;
            let mut cur = chars.clone();
            while let Some(op) = cur.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return false;
                }
                any_op = true;
                let perms: String = cur
                    .clone()
                    .take_while(|c| !matches!(c, '+' | '-' | '='))
                    .collect();
                let ok = perms.chars().all(|c| "rwxXst".contains(c))
                    || (perms.len() == 1 && "ugo".contains(perms.as_str()));
                if !ok {
                    return false;
                }
                for _ in 0..perms.chars().count() {
                    cur.next();
                }
            }
            let _ = chars.next();
            any_op
        })
}

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
