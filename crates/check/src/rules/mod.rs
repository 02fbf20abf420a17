//! The rule table and what every rule reads: the parsed Dockerfile split into stages, the plan,
//! context facts, base-image facts.

mod buildkit;
mod hadolint;
mod packages;
mod seeds;
pub(crate) mod shellwords;

use crate::source::Source;
use crate::{ContextFacts, Finding, Fix, ImageFacts, Input, Severity, Span};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use whittle_dockerfile::ast::{self, Instruction, Kind};
use whittle_dockerfile::plan::Base;
use whittle_dockerfile::{Dockerfile, Plan, Pos};

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    BuildKit,
    Hadolint,
    Whittle,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::BuildKit => "BuildKit",
            Origin::Hadolint => "hadolint",
            Origin::Whittle => "whittle",
        }
    }
}

/// A rule's description.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub origin: Origin,
    pub severity: Severity,
    pub description: &'static str,
    pub url: &'static str,
    /// Off unless enabled (BuildKit's experimental checks).
    pub experimental: bool,
    /// `--fix` can repair it (at least in the common case).
    pub fixable: bool,
}

const fn bk(
    name: &'static str,
    aliases: &'static [&'static str],
    description: &'static str,
    url: &'static str,
    fixable: bool,
) -> RuleInfo {
    RuleInfo {
        name,
        aliases,
        origin: Origin::BuildKit,
        severity: Severity::Warning,
        description,
        url,
        experimental: false,
        fixable,
    }
}

const fn hl(
    name: &'static str,
    aliases: &'static [&'static str],
    severity: Severity,
    description: &'static str,
    url: &'static str,
    fixable: bool,
) -> RuleInfo {
    RuleInfo {
        name,
        aliases,
        origin: Origin::Hadolint,
        severity,
        description,
        url,
        experimental: false,
        fixable,
    }
}

const fn wh(name: &'static str, description: &'static str, fixable: bool) -> RuleInfo {
    RuleInfo {
        name,
        aliases: &[],
        origin: Origin::Whittle,
        severity: Severity::Warning,
        description,
        url: "",
        experimental: false,
        fixable,
    }
}

/// Every rule, BuildKit's first (in BuildKit's order), then hadolint's, then whittle's.
pub static RULES: &[RuleInfo] = &[
    bk("StageNameCasing", &[], "Stage names should be lowercase", "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/", true),
    bk("FromAsCasing", &[], "The 'as' keyword should match the case of the 'from' keyword", "https://docs.docker.com/go/dockerfile/rule/from-as-casing/", true),
    bk("NoEmptyContinuation", &[], "Empty continuation lines will become errors in a future release", "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/", true),
    bk("ConsistentInstructionCasing", &[], "All commands within the Dockerfile should use the same casing (either upper or lower)", "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/", true),
    bk("DuplicateStageName", &["DL3024"], "Stage names should be unique", "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/", false),
    bk("ReservedStageName", &[], "Reserved words should not be used as stage names", "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/", false),
    bk("JSONArgsRecommended", &["DL3025"], "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals", "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/", true),
    bk("MaintainerDeprecated", &["DL4000"], "The MAINTAINER instruction is deprecated, use a label instead to define an image author", "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/", true),
    bk("UndefinedArgInFrom", &[], "FROM command must use declared ARGs", "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/", false),
    bk("WorkdirRelativePath", &["DL3000"], "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes", "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/", false),
    bk("UndefinedVar", &[], "Variables should be defined before their use", "https://docs.docker.com/go/dockerfile/rule/undefined-var/", false),
    bk("MultipleInstructionsDisallowed", &["DL4003", "DL4004"], "Multiple instructions of the same type should not be used in the same stage", "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/", false),
    bk("LegacyKeyValueFormat", &[], "Legacy key/value format with whitespace separator should not be used", "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/", true),
    bk("InvalidBaseImagePlatform", &[], "Base image platform does not match expected target platform", "", false),
    bk("RedundantTargetPlatform", &[], "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior", "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/", true),
    bk("SecretsUsedInArgOrEnv", &[], "Sensitive data should not be used in the ARG or ENV commands", "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/", false),
    bk("InvalidDefaultArgInFrom", &[], "Default value for global ARG results in an empty or invalid base image name", "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/", false),
    bk("FromPlatformFlagConstDisallowed", &[], "FROM --platform flag should not use a constant value", "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/", false),
    bk("CopyIgnoredFile", &[], "Attempting to Copy file that is excluded by .dockerignore", "https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/", false),
    RuleInfo {
        experimental: true,
        ..bk("InvalidDefinitionDescription", &[], "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.", "https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/", false)
    },
    bk("ExposeProtoCasing", &[], "Protocol in EXPOSE instruction should be lowercase", "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/", true),
    bk("ExposeInvalidFormat", &[], "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release", "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/", false),
    hl("LastUserRoot", &["DL3002"], Severity::Warning, "Last USER should not be root", "https://github.com/hadolint/hadolint/wiki/DL3002", false),
    hl("UntaggedImage", &["DL3006"], Severity::Warning, "Always tag the version of an image explicitly", "https://github.com/hadolint/hadolint/wiki/DL3006", false),
    hl("LatestTag", &["DL3007"], Severity::Warning, "Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag", "https://github.com/hadolint/hadolint/wiki/DL3007", false),
    hl("AptUnpinned", &["DL3008"], Severity::Warning, "Pin versions in apt get install. Instead of `apt-get install <package>` use `apt-get install <package>=<version>`", "https://github.com/hadolint/hadolint/wiki/DL3008", false),
    hl("AptListsNotDeleted", &["DL3009"], Severity::Info, "Delete the apt-get lists after installing something", "https://github.com/hadolint/hadolint/wiki/DL3009", true),
    hl("PipUnpinned", &["DL3013"], Severity::Warning, "Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`", "https://github.com/hadolint/hadolint/wiki/DL3013", false),
    hl("AptInstallRecommends", &["DL3015"], Severity::Info, "Avoid additional packages by specifying `--no-install-recommends`", "https://github.com/hadolint/hadolint/wiki/DL3015", true),
    hl("NpmUnpinned", &["DL3016"], Severity::Warning, "Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`", "https://github.com/hadolint/hadolint/wiki/DL3016", false),
    hl("ApkUnpinned", &["DL3018"], Severity::Warning, "Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`", "https://github.com/hadolint/hadolint/wiki/DL3018", false),
    hl("ApkCacheKept", &["DL3019"], Severity::Info, "Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages", "https://github.com/hadolint/hadolint/wiki/DL3019", true),
    hl("AddInsteadOfCopy", &["DL3020"], Severity::Error, "Use COPY instead of ADD for files and folders", "https://github.com/hadolint/hadolint/wiki/DL3020", true),
    hl("CopyFromUnknownStage", &["DL3022"], Severity::Warning, "COPY --from should reference a previously defined FROM alias", "https://github.com/hadolint/hadolint/wiki/DL3022", false),
    hl("CopyFromOwnStage", &["DL3023"], Severity::Error, "COPY --from cannot reference its own FROM alias", "https://github.com/hadolint/hadolint/wiki/DL3023", false),
    hl("PipCacheKept", &["DL3042"], Severity::Warning, "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`", "https://github.com/hadolint/hadolint/wiki/DL3042", true),
    hl("WgetProgressBar", &["DL3047"], Severity::Warning, "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`", "https://github.com/hadolint/hadolint/wiki/DL3047", true),
    hl("ConsecutiveRuns", &["DL3059"], Severity::Info, "Multiple consecutive `RUN` instructions. Consider consolidation.", "https://github.com/hadolint/hadolint/wiki/DL3059", false),
    hl("PipefailMissing", &["DL4006"], Severity::Warning, "Set the SHELL option -o pipefail before RUN with a pipe in it", "https://github.com/hadolint/hadolint/wiki/DL4006", false),
    wh("ToolchainInFinalImage", "The final stage is built on a compiler toolchain image; build in one stage and copy the result into a small runtime image", false),
    wh("DependenciesAfterSources", "The whole context is copied before the dependency install, so every source edit re-downloads the dependencies; copy the manifests first", false),
    wh("MissingDockerignore", "The context has no .dockerignore but holds .git, dependency or build directories, or other large directories; or its .dockerignore leaves .git, node_modules or target in", false),
    wh("FinalStageRoot", "The final stage runs as root", false),
    RuleInfo {
        severity: Severity::Info,
        ..wh("BaseImageNotPinned", "A base image is named by tag only; pin its digest so builds are reproducible", true)
    },
    wh(
        "ScratchWithoutCaCerts",
        "A scratch final stage has no CA certificates while the program in the context makes TLS connections",
        false,
    ),
    wh("DynamicBinaryOnScratch", "A scratch final stage receives a binary that is probably dynamically linked, which cannot run there", false),
];

/// The rule named `name` (or with `name` as an alias), case-insensitively.
pub fn find(name: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| {
        r.name.eq_ignore_ascii_case(name) || r.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// One stage of the Dockerfile as written.
pub(crate) struct StageView<'a> {
    pub index: usize,
    pub from_inst: &'a Instruction,
    pub from: &'a ast::From,
    /// The instructions after FROM.
    pub body: Vec<&'a Instruction>,
}

impl StageView<'_> {
    /// The stage name as written (the AST keeps it lower-cased).
    pub fn name(&self) -> Option<&str> {
        self.from.name.as_ref().map(|w| w.text.as_str())
    }
}

/// What rules read.
pub(crate) struct Ctx<'a> {
    pub input: &'a Input<'a>,
    pub df: &'a Dockerfile,
    /// `None` when the Dockerfile parses but does not plan (the error is in the report).
    pub plan: Option<&'a Plan>,
    pub src: &'a Source<'a>,
    pub ignore: Option<&'a whittle_context::Matcher>,
    /// Instructions before the first FROM.
    pub globals: Vec<&'a Instruction>,
    pub stages: Vec<StageView<'a>>,
    images: RefCell<HashMap<String, Option<ImageFacts>>>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        input: &'a Input<'a>,
        df: &'a Dockerfile,
        plan: Option<&'a Plan>,
        src: &'a Source<'a>,
        ignore: Option<&'a whittle_context::Matcher>,
    ) -> Self {
        let mut globals = Vec::new();
        let mut stages: Vec<StageView> = Vec::new();
        for inst in &df.instructions {
            match (&inst.kind, stages.last_mut()) {
                (Kind::From(f), _) => stages.push(StageView {
                    index: stages.len(),
                    from_inst: inst,
                    from: f,
                    body: Vec::new(),
                }),
                (_, Some(s)) => s.body.push(inst),
                (_, None) => globals.push(inst),
            }
        }
        Ctx {
            input,
            df,
            plan,
            src,
            ignore,
            globals,
            stages,
            images: RefCell::new(HashMap::new()),
        }
    }

    pub fn context(&self) -> Option<&'a ContextFacts> {
        self.input.context
    }

    /// The target stage's index.
    pub fn target(&self) -> usize {
        if let Some(p) = self.plan {
            return p.target;
        }
        let last = self.stages.len().saturating_sub(1);
        match &self.input.target {
            Some(t) => {
                let t = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .position(|s| s.from.name.as_ref().is_some_and(|n| n.text == t))
                    .unwrap_or(last)
            }
            None => last,
        }
    }

    /// What stage `i` is built on: from the plan, or, when planning failed, from the text
    /// (`None` when that needs expansion).
    pub fn base(&self, i: usize) -> Option<Base> {
        if let Some(p) = self.plan {
            return p.stages.get(i).map(|s| s.base.clone());
        }
        let st = self.stages.get(i)?;
        let text = &st.from.image.text;
        let lower = text.to_ascii_lowercase();
        if let Some(j) = self.stages[..i]
            .iter()
            .rposition(|s| s.from.name.as_ref().is_some_and(|n| n.text == lower))
        {
            return Some(Base::Stage { index: j });
        }
        if lower == "scratch" {
            Some(Base::Scratch)
        } else if text.contains('$') {
            None
        } else {
            Some(Base::Image {
                reference: text.clone(),
            })
        }
    }

    /// Stage `i`'s `FROM --platform`, expanded when the plan has it.
    pub fn stage_platform(&self, i: usize) -> Option<String> {
        match self.plan {
            Some(p) => p.stages.get(i).and_then(|s| s.platform.clone()),
            None => {
                let w = self.stages.get(i)?.from.platform.as_ref()?;
                (!w.text.contains('$')).then(|| w.text.clone())
            }
        }
    }

    /// Facts about a base image, asked once per reference.
    pub fn image(&self, reference: &str) -> Option<ImageFacts> {
        if let Some(hit) = self.images.borrow().get(reference) {
            return hit.clone();
        }
        let platform = &self.input.target_platform;
        let facts = self.input.images.lookup(reference, platform);
        self.images
            .borrow_mut()
            .insert(reference.to_string(), facts.clone());
        facts
    }

    /// A finding of `rule` (which must be in [`RULES`]) at `span`.
    pub fn finding(&self, rule: &'static str, span: Span, message: impl Into<String>) -> Finding {
        let info = find(rule);
        Finding {
            rule: info.map_or(rule, |i| i.name),
            aliases: info.map_or(&[], |i| i.aliases),
            severity: info.map_or(Severity::Warning, |i| i.severity),
            span,
            message: message.into(),
            hint: None,
            fix: None,
        }
    }

    /// The span of a whole instruction's first line.
    pub fn inst_span(&self, inst: &Instruction) -> Span {
        self.src.span_to_eol(inst.pos)
    }

    /// The span of a word.
    pub fn word_span(&self, w: &ast::Word) -> Span {
        Span {
            line: w.pos.line,
            col: w.pos.col,
            len: w.text.chars().count().max(1),
        }
    }

    /// A fix made of single-line replacements; `None` if any position is off the text.
    pub fn fix(
        &self,
        description: impl Into<String>,
        edits: &[(Pos, usize, String)],
    ) -> Option<Fix> {
        let edits = edits
            .iter()
            .map(|(pos, len, text)| self.src.edit(*pos, *len, text.clone()))
            .collect::<Option<Vec<_>>>()?;
        Some(Fix {
            description: description.into(),
            edits,
        })
    }
}

/// Runs every rule.
pub(crate) fn run_all(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    buildkit::run(ctx, &mut out);
    hadolint::run(ctx, &mut out);
    seeds::run(ctx, &mut out);
    out
}

/// Keyword text of an instruction as written.
pub(crate) fn keyword(inst: &Instruction) -> &str {
    inst.original.split_whitespace().next().unwrap_or("")
}

/// The RUN instructions' shell-form command text (heredoc bodies appended), or `None`.
pub(crate) fn run_text(inst: &Instruction) -> Option<String> {
    let Kind::Run(r) = &inst.kind else {
        return None;
    };
    let mut s = match &r.cmd {
        ast::CmdLine::Shell(s) => s.clone(),
        ast::CmdLine::Exec(v) => v.join(" "),
    };
    for h in &r.heredocs {
        s.push('\n');
        s.push_str(&h.content);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.name.to_ascii_lowercase()), "{}", r.name);
            for a in r.aliases {
                assert!(seen.insert(a.to_ascii_lowercase()), "{a}");
            }
            if r.origin == Origin::BuildKit && !r.url.is_empty() {
                assert!(r
                    .url
                    .starts_with("https://docs.docker.com/go/dockerfile/rule/"));
            }
        }
        assert_eq!(find("dl3008").map(|r| r.name), Some("AptUnpinned"));
        assert_eq!(
            find("jsonargsrecommended").map(|r| r.name),
            Some("JSONArgsRecommended")
        );
    }
}
