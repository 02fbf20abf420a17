//! `whittle check` and `whittle build --check`: gathers the inputs (Dockerfile, context facts,
//! base images from the store, `.hadolint.yaml`), runs `whittle-check`, renders the findings,
//! and with `--fix` shows or writes the fixed Dockerfile.

use super::plan::{existing_store, find_ignore, read_dockerfile, resolve_build_args, StoreImages};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_check::{ContextEntry, ContextFacts, ImageFacts, Images, Input};
use whittle_dockerfile::Platform;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The build context directory (the Dockerfile is looked up in it by default).
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// Path to the Dockerfile (`-` reads it from standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The stage to build; by default the last one (the final-image rules look at it).
    #[arg(long)]
    pub target: Option<String>,
    /// A build-time variable, `KEY=VALUE`, or `KEY` to take its value from the environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// The target platform (os/arch[/variant]); the host's by default.
    #[arg(long)]
    pub platform: Option<String>,
    /// Output format: text, json, sarif (code scanning) or github (workflow annotations).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Skip rules, by name or alias (repeatable, or comma-separated; `# check=skip=` in the
    /// file works too).
    #[arg(long = "skip", value_name = "RULE")]
    pub skip: Vec<String>,
    /// Run BuildKit's experimental checks too.
    #[arg(long)]
    pub experimental: bool,
    /// Print a unified diff of the mechanical fixes.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: write the fixed Dockerfile instead of printing the diff.
    #[arg(long, requires = "fix")]
    pub write: bool,
    /// List every rule (name, aliases, source, severity, fixable) and exit.
    #[arg(long, conflicts_with_all = ["fix", "explain"])]
    pub list_rules: bool,
    /// Explain one rule (by name or alias) and exit.
    #[arg(long, value_name = "RULE")]
    pub explain: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Github,
}

impl From<Format> for whittle_check::output::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Text => whittle_check::output::Format::Text,
            Format::Json => whittle_check::output::Format::Json,
            Format::Sarif => whittle_check::output::Format::Sarif,
            Format::Github => whittle_check::output::Format::Github,
        }
    }
}

/// Base images from the store: config, platform, user and the manifest digest.
struct StoreFacts(StoreImages);

impl Images for StoreFacts {
    fn lookup(&self, reference: &str, platform: &Platform) -> Option<ImageFacts> {
        let (image, config) = self.0.lookup(reference, platform)?;
        let info = super::plan::image_info(&config);
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        Some(ImageFacts {
            digest: Some(image.manifest.to_string()),
            os: s(&config["os"]),
            arch: s(&config["architecture"]),
            variant: config["variant"].as_str().map(str::to_string),
            env: info.env,
            workdir: info.workdir,
            shell: info.shell,
            onbuild: info.onbuild,
            user: s(&config["config"]["User"]),
        })
    }
}

/// At most this many files are visited when sizing the context's directories.
const WALK_LIMIT: usize = 1_000_000;

/// The context's top-level entries and the bytes below each (symlinks not followed; the walk
/// stops counting after [`WALK_LIMIT`] entries).
fn context_entries(dir: &Path) -> Vec<ContextEntry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut budget = WALK_LIMIT;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let mut bytes = meta.len();
        if meta.is_dir() {
            bytes = 0;
            let mut stack = vec![e.path()];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for f in rd.flatten() {
                    if budget == 0 {
                        break;
                    }
                    budget -= 1;
                    let Ok(m) = f.metadata() else { continue };
                    if m.is_dir() {
                        stack.push(f.path());
                    } else {
                        bytes += m.len();
                    }
                }
            }
        }
        out.push(ContextEntry {
            name,
            bytes,
            dir: meta.is_dir(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// At most this many files are looked at for TLS use, and this much of each.
const TLS_SCAN_FILES: usize = 20_000;
const TLS_SCAN_BYTES: u64 = 512 * 1024;

/// Evidence that the program in the context makes TLS connections: a Go file importing
/// `crypto/tls` or `net/http`, or a Cargo.toml depending on a TLS or HTTPS client crate.
/// Dependency and VCS directories are not looked into.
fn tls_evidence(dir: &Path) -> Option<String> {
    const CRATES: &[&str] = &[
        "reqwest",
        "rustls",
        "native-tls",
        "hyper-tls",
        "hyper-rustls",
        "ureq",
        "openssl",
    ];
    let mut budget = TLS_SCAN_FILES;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if budget == 0 {
                return None;
            }
            budget -= 1;
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                if !matches!(name.as_str(), ".git" | "node_modules" | "target" | "vendor") {
                    stack.push(e.path());
                }
                continue;
            }
            let go = name.ends_with(".go") && !name.ends_with("_test.go");
            if !ft.is_file() || !(go || name == "Cargo.toml") {
                continue;
            }
            let Ok(f) = std::fs::File::open(e.path()) else {
                continue;
            };
            let mut text = String::new();
            if std::io::Read::read_to_string(&mut std::io::Read::take(f, TLS_SCAN_BYTES), &mut text)
                .is_err()
            {
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| e.path());
            let rel = rel.display();
            if go {
                if let Some(pkg) = ["crypto/tls", "net/http"]
                    .iter()
                    .find(|p| text.contains(&format!("\"{p}\"")))
                {
                    return Some(format!("{rel} imports {pkg}"));
                }
            } else if let Some(c) = CRATES.iter().find(|c| {
                text.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with(*c) && l[c.len()..].trim_start().starts_with(['=', '.'])
                })
            }) {
                return Some(format!("{rel} depends on {c}"));
            }
        }
    }
    None
}

/// `.hadolint.yaml` (or `.hadolint.yml`) in the context or the current directory.
fn hadolint_ignored(context: &Path) -> anyhow::Result<Vec<String>> {
    for dir in [context, Path::new(".")] {
        for name in [".hadolint.yaml", ".hadolint.yml"] {
            let p = dir.join(name);
            if let Ok(text) = std::fs::read_to_string(&p) {
                return Ok(whittle_check::directives::hadolint_ignored(
                    &text,
                    &p.display().to_string(),
                )?);
            }
        }
    }
    Ok(Vec::new())
}

/// One line per rule.
fn list_rules() -> String {
    let mut out = String::new();
    for r in whittle_check::RULES {
        let aliases = if r.aliases.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.aliases.join(", "))
        };
        out.push_str(&format!(
            "{:<32} {:<8} {:<7}{}{}{}\n",
            r.name,
            r.origin.as_str(),
            r.severity.as_str(),
            if r.fixable { " fix" } else { "    " },
            if r.experimental { " experimental" } else { "" },
            aliases
        ));
    }
    out
}

/// A rule's description, names and link.
fn explain(name: &str) -> anyhow::Result<String> {
    let Some(r) = whittle_check::rules::find(name) else {
        anyhow::bail!("no rule is called {name:?}: `whittle check --list-rules` lists them");
    };
    let mut out = format!(
        "{} ({}, {})\n\n{}\n",
        r.name,
        r.origin.as_str(),
        r.severity.as_str(),
        r.description
    );
    if !r.aliases.is_empty() {
        out.push_str(&format!("\nAlso known as: {}\n", r.aliases.join(", ")));
    }
    if !r.url.is_empty() {
        out.push_str(&format!("More: {}\n", r.url));
    }
    out.push_str(if r.fixable {
        "whittle check --fix repairs it where the change is mechanical.\n"
    } else {
        "Not fixed automatically.\n"
    });
    if r.experimental {
        out.push_str("Experimental: enable it with --experimental or # check=experimental=NAME.\n");
    }
    Ok(out)
}

/// What `whittle build --check` passes.
pub struct BuildCheck<'a> {
    pub context: &'a Path,
    pub file: Option<&'a Path>,
    pub target: Option<String>,
    pub build_args: &'a [String],
    pub platform: Option<&'a str>,
}

pub fn run(args: CheckArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        print!("{}", list_rules());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &args.explain {
        print!("{}", explain(name)?);
        return Ok(ExitCode::SUCCESS);
    }
    let b = BuildCheck {
        context: &args.context,
        file: args.file.as_deref(),
        target: args.target.clone(),
        build_args: &args.build_args,
        platform: args.platform.as_deref(),
    };
    check(&b, &args, root)
}

/// `whittle build --check`: the checks in text form, no build.
pub fn run_for_build(b: &BuildCheck, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let args = CheckArgs {
        context: b.context.to_path_buf(),
        file: b.file.map(Path::to_path_buf),
        target: b.target.clone(),
        build_args: b.build_args.to_vec(),
        platform: b.platform.map(str::to_string),
        format: Format::Text,
        skip: Vec::new(),
        experimental: false,
        fix: false,
        write: false,
        list_rules: false,
        explain: None,
    };
    check(b, &args, root)
}

fn check(b: &BuildCheck, args: &CheckArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let src = read_dockerfile(b.context, b.file)?;
    let target_platform = match b.platform {
        Some(p) => Platform::parse(p).with_context(|| {
            format!("--platform {p:?} is not a platform: write os/arch[/variant], e.g. linux/arm64")
        })?,
        None => Platform::host(),
    };
    let context = if b.context.is_dir() {
        let dockerignore = find_ignore(b.context, b.file).map(|(_, text)| text);
        let entries = context_entries(b.context);
        // Only a scratch image can lack certificates; skip the scan otherwise.
        let tls_use = if src.text.to_ascii_lowercase().contains("scratch") {
            tls_evidence(b.context)
        } else {
            None
        };
        Some(ContextFacts {
            dockerignore,
            entries,
            tls_use,
        })
    } else {
        None
    };
    let mut skip: Vec<String> = args
        .skip
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    skip.extend(hadolint_ignored(b.context)?);
    let images: Box<dyn Images> = match existing_store(root) {
        Some(store) => Box::new(StoreFacts(StoreImages::new(store))),
        None => Box::new(whittle_check::NoImages),
    };
    let input = Input {
        file: &src.name,
        text: &src.text,
        target: b.target.clone(),
        build_args: resolve_build_args(b.build_args),
        target_platform,
        skip,
        experimental: args.experimental,
        context: context.as_ref(),
        images: images.as_ref(),
    };
    let report = match whittle_check::check(&input) {
        Ok(r) => r,
        Err(whittle_check::CheckError::Dockerfile(e)) => whittle_check::Report::from_error(e),
        Err(e) => return Err(e.into()),
    };
    // The text format shows the error the way `whittle build` would; the others carry it.
    if let Some(e) = &report.error {
        eprint!("{}", e.render(&src.name, &src.text));
    }
    if args.fix {
        return fix(args, &input, &report, &src.name);
    }
    print!(
        "{}",
        whittle_check::output::render(args.format.into(), &report, &src.name, &src.text)
    );
    Ok(ExitCode::from(report.exit_code()))
}

fn fix(
    args: &CheckArgs,
    input: &Input,
    report: &whittle_check::Report,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let fixed = whittle_check::fix::apply(input.text, &report.findings);
    whittle_check::fix::verify(input, &fixed.text, &report.findings)?;
    if !fixed.changed() {
        eprintln!("nothing to fix mechanically in {name}");
        return Ok(ExitCode::from(report.exit_code()));
    }
    if args.write {
        if args.file.as_deref() == Some(Path::new("-")) {
            anyhow::bail!(
                "--write cannot write back to standard input; drop --write to see the diff"
            );
        }
        let path = match &args.file {
            Some(p) => p.clone(),
            None => args.context.join("Dockerfile"),
        };
        let tmp = path.with_extension("whittle-fix-tmp");
        std::fs::write(&tmp, &fixed.text).with_context(|| format!("writing {}", tmp.display()))?;
        if let Ok(meta) = std::fs::metadata(&path) {
            std::fs::set_permissions(&tmp, meta.permissions())
                .with_context(|| format!("setting the mode of {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        for (rule, line, what) in &fixed.applied {
            eprintln!(
                "fixed {name}:{line}: {rule}: {}",
                whittle_dockerfile::escape_controls(what)
            );
        }
    } else {
        let diff = whittle_check::fix::diff(name, input.text, &fixed.text);
        // A diff for `patch` must stay byte for byte; one shown on a terminal must not let the
        // Dockerfile's control characters drive it.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            let shown: Vec<String> = diff
                .split('\n')
                .map(whittle_dockerfile::escape_controls)
                .collect();
            print!("{}", shown.join("\n"));
        } else {
            print!("{diff}");
        }
    }
    if !fixed.skipped.is_empty() {
        eprintln!(
            "{} more fixes overlap the ones made; run whittle check --fix again to apply them",
            fixed.skipped.len()
        );
    }
    if !args.write {
        return Ok(ExitCode::from(report.exit_code()));
    }
    // Once written, what is left after the fixes decides the exit code.
    let after = Input {
        text: &fixed.text,
        ..input.clone()
    };
    let left = whittle_check::check(&after).map_or(1, |r| r.exit_code());
    Ok(ExitCode::from(left))
}
