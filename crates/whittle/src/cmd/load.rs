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
    /// Only store the blobs; do not extract the layers now (the first build or run that uses
    /// the image extracts them).
    #[arg(long)]
    no_unpack: bool,
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
    if !args.no_unpack {
        // As `docker load` does: extract the layers now, in parallel, so that the first build
        // on this base does not wait for them.
        for img in &loaded {
            let tagged = store
                .resolve(img.manifest.as_str())
                .with_context(|| format!("finding the loaded image {}", img.manifest))?;
            // An attestation manifest's layers are in-toto statements, not filesystems.
            if tagged.attests.is_some() {
                continue;
            }
            store
                .unpack_image(&tagged.image, &|_, _, _| {})
                .with_context(|| format!("extracting the layers of {}", img.manifest))?;
        }
    }
    if !args.quiet {
        for img in &loaded {
            // An attestation manifest (BuildKit's, in an index) is no image to name.
            let attestation = || {
                store
                    .resolve(img.manifest.as_str())
                    .is_ok_and(|t| t.attests.is_some())
            };
            if img.tags.is_empty() && !attestation() {
                println!("Loaded image ID: {}", img.id);
            }
            for t in &img.tags {
                println!("Loaded image: {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
