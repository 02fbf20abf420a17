//! `whittle analyze IMAGE`: where an image's bytes go (dive's figures) and how to cut them
//! (findings with fixes). Thin: parses, calls `whittle_analyze`, renders (`analyze_text.rs`;
//! HTML: `whittle_analyze::html`).

use super::analyze_text;
use super::storeutil::open;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_analyze::{CiRules, Input, Options};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// A superset of dive's JSON export (`layer`, `image`), plus `findings` (and `ci`).
    Json,
    /// One self-contained HTML page (no network use): a treemap of the final filesystem
    /// coloured by layer, the layers, dive's figures and the findings.
    Html,
}

/// Show where an image's bytes go, dive's efficiency figures, and findings with fixes.
#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// Image: name[:tag], id or digest in the store; docker-archive:FILE; oci-archive:FILE;
    /// oci:DIR[:NAME]; docker://REF or registry:REF (read from the registry). Archives,
    /// layouts and registry images are read in place, not added to the store.
    image: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write the output to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Check dive's CI rules and exit 1 when one is broken (or misconfigured).
    #[arg(long)]
    ci: bool,
    /// dive's CI rules file (YAML, `rules:`), read when it exists; flags override it.
    #[arg(long = "ci-config", value_name = "FILE", default_value = ".dive-ci")]
    ci_config: PathBuf,
    /// With --ci: fail when the efficiency score is below this ratio (dive's default 0.9), or
    /// "disabled".
    #[arg(long = "lowestEfficiency", value_name = "RATIO")]
    lowest_efficiency: Option<String>,
    /// With --ci: fail when more bytes are wasted (e.g. 20MB, 1GiB; dive's default "disabled").
    #[arg(long = "highestWastedBytes", value_name = "BYTES")]
    highest_wasted_bytes: Option<String>,
    /// With --ci: fail when wasted bytes exceed this ratio of the bytes above the base layer
    /// (dive's default 0.1), or "disabled".
    #[arg(long = "highestUserWastedPercent", value_name = "RATIO")]
    highest_user_wasted_percent: Option<String>,
    /// Layers read at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Browse the image in the terminal: layers, and the file tree as of the selected layer
    /// with what it added, changed and removed marked (? in the view lists the keys).
    #[arg(short = 'i', long, conflicts_with_all = ["output", "ci", "format"])]
    interactive: bool,
    #[command(flatten)]
    transport: super::regutil::TransportArgs,
}

/// The CI rules from the defaults, the `.dive-ci` file and the flags.
fn ci_rules(args: &AnalyzeArgs) -> anyhow::Result<CiRules> {
    let mut rules = CiRules::default();
    match std::fs::read_to_string(&args.ci_config) {
        Ok(text) => rules
            .apply_dive_ci(&text)
            .with_context(|| format!("reading {}", args.ci_config.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", args.ci_config.display()));
        }
    }
    if let Some(v) = &args.lowest_efficiency {
        rules.lowest_efficiency = v.clone();
    }
    if let Some(v) = &args.highest_wasted_bytes {
        rules.highest_wasted_bytes = v.clone();
    }
    if let Some(v) = &args.highest_user_wasted_percent {
        rules.highest_user_wasted_percent = v.clone();
    }
    Ok(rules)
}

/// `whittle analyze -i`: the view runs in the library; here only the terminal check comes
/// first, so a redirected run fails before the image is read.
fn interactive(
    image: &str,
    input: &Input,
    store: Option<&whittle_store::Store>,
    opts: &Options,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "whittle analyze -i needs a terminal on standard output; without -i it prints a \
             report (--format text, json or html) that can be redirected"
        );
    }
    let mut app = whittle_analyze::analyze_interactive(input, store, opts)
        .with_context(|| format!("analysing {image}"))?;
    whittle_analyze::tui::run(&mut app)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `whittle analyze`.
pub fn run(args: AnalyzeArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let input = Input::parse(&args.image)?;
    let mut opts = Options::default();
    if let Some(j) = args.jobs {
        opts.threads = j.max(1);
    }
    opts.registry = args.transport.client_options();
    let rules = if args.ci {
        Some(ci_rules(&args)?)
    } else {
        None
    };
    let store = match input {
        Input::Store(_) => Some(open(root)?),
        _ => None,
    };
    if args.interactive {
        return interactive(&args.image, &input, store.as_ref(), &opts);
    }
    let (analysis, map) = if args.format == Format::Html {
        let (a, m) = whittle_analyze::analyze_with_map(
            &input,
            store.as_ref(),
            &opts,
            &whittle_analyze::MapOptions::default(),
        )
        .with_context(|| format!("analysing {}", args.image))?;
        (a, Some(m))
    } else {
        let a = whittle_analyze::analyze(&input, store.as_ref(), &opts)
            .with_context(|| format!("analysing {}", args.image))?;
        (a, None)
    };
    let ci = rules.map(|r| r.evaluate(&analysis));
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match (args.format, &map) {
        (Format::Json, _) => {
            let mut v = serde_json::to_value(&analysis)?;
            if let (Some(ci), Some(obj)) = (&ci, v.as_object_mut()) {
                obj.insert("ci".into(), serde_json::to_value(ci)?);
            }
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        (Format::Html, Some(m)) => {
            whittle_analyze::html::render(&mut out, &analysis, m)?;
            if let Some(ci) = &ci {
                // The page has no CI section: the results go to stderr, the exit code holds.
                analyze_text::render_ci(&mut std::io::stderr().lock(), ci)?;
            }
        }
        (Format::Text | Format::Html, _) => {
            analyze_text::render(&mut out, &analysis)?;
            if let Some(ci) = &ci {
                analyze_text::render_ci(&mut out, ci)?;
            }
        }
    }
    out.flush()?;
    Ok(match ci {
        Some(c) if !c.pass => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
