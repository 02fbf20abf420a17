//! `whittle load -i FILE`: import images from docker-archive, oci-archive or an OCI layout dir.

use super::storeutil::open;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Load images from a docker-archive or oci-archive tarball (gzip/zstd or not) or an OCI
/// layout directory, with all their tags.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Archive file or OCI layout directory (default: standard input).
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print nothing.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `whittle load`.
pub fn run(args: LoadArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let input = args.input.unwrap_or_else(|| PathBuf::from("-"));
    if input == Path::new("-") && std::io::stdin().is_terminal() {
        anyhow::bail!("no input: give -i FILE or pipe an archive to standard input");
    }
    let loaded = whittle_store::load(&store, &input)
        .with_context(|| format!("loading {}", input.display()))?;
    if !args.quiet {
        for img in &loaded {
            if img.tags.is_empty() {
                println!("Loaded image ID: {}", img.id);
            }
            for t in &img.tags {
                println!("Loaded image: {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
