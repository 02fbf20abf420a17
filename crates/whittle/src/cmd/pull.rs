//! `whittle pull IMAGE`: fetch an image from a registry into the store.

use super::regutil::{progress, TransportArgs};
use super::storeutil::open;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use whittle_oci::Reference;
use whittle_registry::{Platform, PullOptions, PullPolicy};

/// Pull an image (or the image for one platform of a multi-platform index) from a registry.
#[derive(clap::Args)]
pub struct PullArgs {
    /// Image: [registry/]repository[:tag][@sha256:digest] (docker.io when no registry is named).
    image: String,
    /// Platform to pick from a multi-platform index (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Parallel layer downloads.
    #[arg(long, default_value_t = 4, value_parser = super::plan::parse_jobs)]
    jobs: usize,
    /// Print only the digest.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Runs `whittle pull`.
pub fn run(args: PullArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let r = Reference::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => {
            Platform::parse(p).with_context(|| format!("--platform {p:?} is not a platform"))?
        }
        None => Platform::host(),
    };
    let opts = PullOptions {
        client: args.transport.client_options(),
        jobs: args.jobs,
        progress: progress(args.quiet, "downloading"),
    };
    let rec = whittle_registry::ensure_image(&store, &r, &platform, PullPolicy::Always, &opts)
        .with_context(|| format!("pulling {}", r.canonical()))?;
    if args.quiet {
        println!("{}", rec.manifest);
    } else {
        println!("Digest: {}", rec.manifest);
        println!("Pulled {}", r.canonical());
    }
    Ok(ExitCode::SUCCESS)
}
