//! From a parsed Dockerfile to a build plan: ARG/ENV scoping and word expansion, stage
//! references, `--target` pruning, dependency order and parallel waves.
//!
//! Follows BuildKit's `dockerfile2llb`: global ARGs (before the first FROM) are visible only in
//! FROM lines unless redeclared in a stage; a stage's ARGs live to the end of the stage and are
//! inherited by `FROM <stage>`; ENV shadows ARG; only the stages the target needs are expanded
//! (an error in a stage that is not built does not fail the build).
//!
//! The types of a plan are here; the work is in `stages` (splitting the file into stages and
//! walking each one), `expand` (one instruction at a time), `order` (cycles, build order and
//! waves), `platform` and `summary`.

use crate::ast::{self, CmdLine, Dockerfile, Healthcheck};
use crate::error::{Pos, Result};
use crate::mount::MountSpec;
use crate::shell::Vars;
use serde::Serialize;
use std::collections::BTreeMap;

mod expand;
mod order;
mod platform;
mod stages;
mod summary;

pub use expand::{clean_path, valid_chmod, PLAN_EXPANSION_BUDGET, PLAN_WORK_BUDGET};
pub use platform::{platform_args, Platform};
use stages::Planner;

/// What the planner may know about a base image (from the local store, when there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub shell: Option<Vec<String>>,
    /// ONBUILD triggers, run at the start of a stage built on this image.
    pub onbuild: Vec<String>,
    /// The config's USER.
    pub user: Option<String>,
    /// The manifest digest (`sha256:...`) the reference resolves to, pinned in the build graph.
    pub manifest: Option<String>,
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

/// Plans a build without knowledge of base images.
pub fn plan(df: &Dockerfile, opts: &PlanOptions) -> Result<Plan> {
    plan_with(df, opts, &NoImages)
}

/// Plans a build; `images` supplies what is known about base images (ENV, WORKDIR, ONBUILD).
pub fn plan_with(df: &Dockerfile, opts: &PlanOptions, images: &dyn ImageResolver) -> Result<Plan> {
    Planner::new(df, opts, images).run()
}
