//! `whittle check`: finds what makes a Dockerfile's image big, insecure or irreproducible, says
//! why, and fixes the mechanical cases.
//!
//! One pass runs three rule sets over the parsed Dockerfile, its plan, facts about the build
//! context and, when the image store has them, the base images' configs:
//!
//! - BuildKit's build checks, with BuildKit's names, messages and URLs, so that
//!   `# check=skip=...;error=true` directives and `docker build --check` habits carry over;
//! - hadolint's rules on size, security and reproducibility, under descriptive names with the
//!   `DLxxxx` ids as aliases (`# hadolint ignore=` comments and `.hadolint.yaml` lists apply);
//! - whittle's own rules from the seeds: toolchains in the final image, dependency caches that
//!   bust on every edit, a missing `.dockerignore`, root final stages, unpinned bases, dynamic
//!   binaries on `scratch`.
//!
//! The crate does no I/O: the caller reads the Dockerfile, walks the context into
//! [`ContextFacts`] and answers base-image questions through [`Images`]. Results are typed
//! [`Finding`]s; [`fix`] turns their [`Fix`]es into a verified new text and a unified diff, and
//! [`output`] renders text, JSON, SARIF and GitHub annotations.
//!
//! ```
//! let input = whittle_check::Input::new("Dockerfile", "from alpine AS Build\nRUN echo hi\n");
//! let report = whittle_check::check(&input).unwrap();
//! let rules: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
//! assert!(rules.contains(&"StageNameCasing"));
//! assert!(rules.contains(&"ConsistentInstructionCasing"));
//! ```

pub mod directives;
pub mod fix;
pub mod output;
pub mod rules;
mod scope;
mod source;

use serde::Serialize;
use whittle_dockerfile::{Dockerfile, Plan, PlanOptions, Platform};

pub use rules::{Origin, RuleInfo, RULES};

/// How bad a finding is. BuildKit's checks are warnings unless `# check=error=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Where a finding points: a 1-based line and column (in characters) and how many characters to
/// underline. Line 0 means the file (or the context) as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

/// One replacement in the source: bytes `start..end` of the text become `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A mechanical fix: what it does and the edits that do it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub description: String,
    pub edits: Vec<Edit>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's name (BuildKit's for BuildKit's checks).
    pub rule: &'static str,
    /// Other names of the rule (hadolint ids).
    pub aliases: &'static [&'static str],
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    pub fix: Option<Fix>,
}

impl Finding {
    pub fn info(&self) -> Option<&'static RuleInfo> {
        rules::find(self.rule)
    }
}

/// What the caller learned about the build context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextFacts {
    /// The text of `.dockerignore`, if the context has one.
    pub dockerignore: Option<String>,
    /// The context's top-level entries with the bytes each holds (directories: everything
    /// below), and whether each is a directory.
    pub entries: Vec<ContextEntry>,
    /// Evidence that the program in the context makes TLS connections ("main.go imports
    /// net/http"), if the caller found any.
    pub tls_use: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub name: String,
    pub bytes: u64,
    pub dir: bool,
}

/// What the store knows about a base image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The manifest digest the reference resolves to (`sha256:...`).
    pub digest: Option<String>,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub shell: Option<Vec<String>>,
    pub onbuild: Vec<String>,
    /// The config's `User` ("" when unset: root).
    pub user: String,
}

/// Answers questions about base images; the CLI backs it with the image store.
pub trait Images {
    fn lookup(&self, reference: &str, platform: &Platform) -> Option<ImageFacts>;
}

/// Knows no images: image-dependent checks stay silent.
pub struct NoImages;
impl Images for NoImages {
    fn lookup(&self, _: &str, _: &Platform) -> Option<ImageFacts> {
        None
    }
}

/// Everything a check run reads.
#[derive(Clone)]
pub struct Input<'a> {
    /// The Dockerfile's display name (for messages).
    pub file: &'a str,
    pub text: &'a str,
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub target_platform: Platform,
    /// Rules to skip, by name or alias (`--skip`, `.hadolint.yaml` `ignored:`); `all` skips
    /// every rule.
    pub skip: Vec<String>,
    /// Run BuildKit's experimental checks too.
    pub experimental: bool,
    pub context: Option<&'a ContextFacts>,
    pub images: &'a dyn Images,
}

impl<'a> Input<'a> {
    /// A Dockerfile alone: no context, no images, default options.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Input {
            file,
            text,
            target: None,
            build_args: Vec::new(),
            target_platform: Platform::host(),
            skip: Vec::new(),
            experimental: false,
            context: None,
            images: &NoImages,
        }
    }
}

/// Why checking could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The Dockerfile does not parse, or cannot be planned (render with
    /// [`whittle_dockerfile::Error::render`]).
    #[error("{0}")]
    Dockerfile(whittle_dockerfile::Error),
    /// The `# check=` directive is malformed.
    #[error("{file}:{line}: invalid check directive: {reason}")]
    Directive {
        file: String,
        line: usize,
        reason: String,
    },
    /// `.dockerignore` does not parse.
    #[error(transparent)]
    Ignore(#[from] whittle_context::ignore::IgnoreError),
}

/// The result of a check run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Sorted by line, then rule.
    pub findings: Vec<Finding>,
    /// `# check=error=true`: BuildKit's checks fail a build.
    pub error_on_warning: bool,
    /// Why the Dockerfile does not plan, if it does not (render it with
    /// [`whittle_dockerfile::Error::render`]).
    #[serde(skip)]
    pub error: Option<whittle_dockerfile::Error>,
}

impl Report {
    /// A report for a Dockerfile that does not parse: no findings, the error.
    pub fn from_error(error: whittle_dockerfile::Error) -> Report {
        Report {
            findings: Vec::new(),
            error_on_warning: false,
            error: Some(error),
        }
    }

    /// The exit status of `docker build --check`: 1 when anything was found or the Dockerfile
    /// does not plan, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.findings.is_empty() || self.error.is_some())
    }
}

/// Parses, plans and checks. A Dockerfile that parses but does not plan (a duplicate stage
/// name, an unknown `--target`...) is still checked; the planning error is in
/// [`Report::error`], as BuildKit reports a build error next to its warnings.
pub fn check(input: &Input) -> Result<Report, CheckError> {
    let df = whittle_dockerfile::parse(input.text).map_err(CheckError::Dockerfile)?;
    match plan_for(&df, input) {
        Ok(plan) => check_parsed(input, &df, Some(&plan)),
        Err(CheckError::Dockerfile(e)) => {
            let mut report = check_parsed(input, &df, None)?;
            report.error = Some(e);
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

/// Plans `df` the way `input` asks, with base images from `input.images`.
pub fn plan_for(df: &Dockerfile, input: &Input) -> Result<Plan, CheckError> {
    let opts = PlanOptions {
        target: input.target.clone(),
        build_args: input.build_args.clone(),
        target_platform: input.target_platform.clone(),
        ..PlanOptions::default()
    };
    whittle_dockerfile::plan_with(df, &opts, &Resolver(input.images))
        .map_err(CheckError::Dockerfile)
}

struct Resolver<'a>(&'a dyn Images);
impl whittle_dockerfile::ImageResolver for Resolver<'_> {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Option<whittle_dockerfile::ImageInfo> {
        self.0
            .lookup(reference, platform)
            .map(|f| whittle_dockerfile::ImageInfo {
                env: f.env,
                workdir: f.workdir,
                shell: f.shell,
                onbuild: f.onbuild,
                ..Default::default()
            })
    }
}

/// Checks an already parsed (and, when it plans, planned) Dockerfile.
pub fn check_parsed(
    input: &Input,
    df: &Dockerfile,
    plan: Option<&Plan>,
) -> Result<Report, CheckError> {
    let src = source::Source::new(input.text);
    let config =
        directives::CheckConfig::parse(df, &src, &input.build_args).map_err(|(line, reason)| {
            CheckError::Directive {
                file: input.file.to_string(),
                line,
                reason,
            }
        })?;
    let ignore = match input.context.and_then(|c| c.dockerignore.as_deref()) {
        Some(text) => Some(whittle_context::Matcher::parse(text, ".dockerignore")?),
        None => None,
    };
    let ctx = rules::Ctx::new(input, df, plan, &src, ignore.as_ref());
    let mut findings = rules::run_all(&ctx);
    let inline = directives::InlineIgnores::scan(df, &src);
    findings.retain(|f| {
        let info = rules::find(f.rule);
        let experimental = info.is_some_and(|i| i.experimental);
        if experimental && !(input.experimental || config.experimental(f.rule)) {
            return false;
        }
        let skipped = |n: &str| {
            input
                .skip
                .iter()
                .any(|s| s == "all" || s.eq_ignore_ascii_case(n))
                || config.skips(n)
        };
        if std::iter::once(f.rule)
            .chain(f.aliases.iter().copied())
            .any(skipped)
        {
            return false;
        }
        !inline.ignores(f.span.line, f.rule, f.aliases)
    });
    if config.error {
        for f in &mut findings {
            if info_origin(f.rule) == Some(Origin::BuildKit) {
                f.severity = Severity::Error;
            }
        }
    }
    findings.sort_by(|a, b| (a.span, a.rule, &a.message).cmp(&(b.span, b.rule, &b.message)));
    findings.dedup_by(|a, b| a.rule == b.rule && a.span == b.span && a.message == b.message);
    Ok(Report {
        findings,
        error_on_warning: config.error,
        error: None,
    })
}

fn info_origin(rule: &str) -> Option<Origin> {
    rules::find(rule).map(|i| i.origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(input: &Input) -> Vec<(&'static str, Severity)> {
        check(input)
            .unwrap()
            .findings
            .iter()
            .map(|f| (f.rule, f.severity))
            .collect()
    }

    const TEXT: &str =
        "FROM debian:12\nMAINTAINER me\nRUN apt-get install -y curl\n# x\nFROM scratch AS b\n";

    #[test]
    fn error_true_raises_only_buildkit_checks() {
        let text = format!("# check=error=true\n{TEXT}");
        let got = rules(&Input::new("Dockerfile", &text));
        assert!(
            got.contains(&("MaintainerDeprecated", Severity::Error)),
            "{got:?}"
        );
        assert!(got.contains(&("AptUnpinned", Severity::Warning)), "{got:?}");
        assert!(
            check(&Input::new("Dockerfile", &text))
                .unwrap()
                .error_on_warning
        );
    }

    #[test]
    fn skips_by_name_alias_and_all() {
        let mut input = Input::new("Dockerfile", TEXT);
        input.skip = vec!["dl3008".into(), "MaintainerDeprecated".into()];
        let got = rules(&input);
        assert!(
            !got.iter()
                .any(|r| r.0 == "AptUnpinned" || r.0 == "MaintainerDeprecated"),
            "{got:?}"
        );
        assert!(got.iter().any(|r| r.0 == "AptInstallRecommends"), "{got:?}");
        input.skip = vec!["all".into()];
        assert!(rules(&input).is_empty());
    }

    #[test]
    fn experimental_rules_need_enabling() {
        let mut input = Input::new("Dockerfile", TEXT);
        assert!(!rules(&input)
            .iter()
            .any(|r| r.0 == "InvalidDefinitionDescription"));
        input.experimental = true;
        assert!(rules(&input)
            .iter()
            .any(|r| r.0 == "InvalidDefinitionDescription"));
    }

    #[test]
    fn bad_directive_and_dockerignore_are_errors() {
        let e = check(&Input::new("Dockerfile", "# check=skip\nFROM scratch\n")).unwrap_err();
        assert!(matches!(e, CheckError::Directive { line: 1, .. }), "{e}");
        let ctx = ContextFacts {
            dockerignore: Some("!\n".into()),
            ..ContextFacts::default()
        };
        let mut input = Input::new("Dockerfile", "FROM scratch\n");
        input.context = Some(&ctx);
        assert!(matches!(check(&input), Err(CheckError::Ignore(_))));
        assert!(matches!(
            check(&Input::new("Dockerfile", "COPPY a b\n")),
            Err(CheckError::Dockerfile(_))
        ));
    }
}
