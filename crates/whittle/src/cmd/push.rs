//! `whittle push IMAGE [DESTINATION]`: upload a stored image to a registry.

use super::regutil::{progress, TransportArgs};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use whittle_oci::Reference;
use whittle_registry::PushOptions;

/// Push an image to a registry: blobs the registry has are skipped, the manifest goes last.
/// Layers stored uncompressed are compressed first (`--compression`), once: the pushed digest
/// is then that of the compressed image; otherwise it is the local one.
#[derive(clap::Args)]
pub struct PushArgs {
    /// Local image (name[:tag], id or digest); also the destination unless DESTINATION is given.
    image: String,
    /// Destination [registry/]repository[:tag] (default: IMAGE's name).
    destination: Option<String>,
    /// Also push every other local tag of the destination repository that names this image.
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Upload blobs in chunks of this size (e.g. 16MB), resuming a broken upload where it
    /// stopped; default: one request per blob.
    #[arg(long, value_name = "SIZE", value_parser = super::storeutil::parse_size)]
    chunk_size: Option<u64>,
    /// Parallel blob uploads.
    #[arg(long, default_value_t = 3, value_parser = super::plan::parse_jobs)]
    jobs: usize,
    /// Write the pushed manifest digest to FILE.
    #[arg(long, value_name = "FILE")]
    digestfile: Option<std::path::PathBuf>,
    /// Push only this platform of a multi-platform image (default: the whole index, when
    /// every platform of it is in the store; else the host's image).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print only the digest.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    compression: super::flags::CompressionArgs,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Runs `whittle push`.
pub fn run(args: PushArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = super::storeutil::open_with(root, args.transport.client_options())?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            whittle_oci::Platform::parse(p)
                .ok_or_else(|| anyhow::anyhow!("--platform {p:?} is not a platform"))
        })
        .transpose()?;
    let img = match &platform {
        Some(p) => store.resolve_platform(&args.image, p)?,
        None => store.resolve(&args.image)?,
    };
    // A tag of an index pushes the index, when all its platforms are here (a pull keeps only
    // the platforms asked for).
    let index = match (&platform, Reference::parse_tag(&args.image)) {
        (None, Ok(r)) => match store.tag_target(&r)? {
            Some(whittle_store::TagTarget::Index(ix))
                if ix.manifests.iter().all(|m| store.has_blob(&m.manifest)) =>
            {
                Some(ix)
            }
            Some(whittle_store::TagTarget::Index(_)) => {
                if !args.quiet {
                    eprintln!(
                        "note: only some platforms of {} are in the store: pushing the {} image \
                         alone",
                        args.image,
                        img.image
                            .platform
                            .as_ref()
                            .map_or_else(|| "host's".to_string(), ToString::to_string)
                    );
                }
                None
            }
            _ => None,
        },
        _ => None,
    };
    let dest_name = args.destination.as_deref().unwrap_or(&args.image);
    let dest =
        Reference::parse(dest_name).with_context(|| format!("the destination {dest_name:?}"))?;
    let mut also = Vec::new();
    if args.all_tags {
        for t in &img.tags {
            if let Ok(r) = Reference::parse(t) {
                if r.registry == dest.registry && r.repository == dest.repository {
                    also.extend(r.tag);
                }
            }
        }
    }
    let opts = PushOptions {
        client: args.transport.client_options(),
        jobs: args.jobs,
        chunk_size: args.chunk_size,
        also_tags: also,
        progress: progress(args.quiet, "uploading"),
        compression: args.compression.stored()?,
        ..PushOptions::default()
    };
    let pushed = match &index {
        Some(ix) => whittle_registry::push_index(&store, ix, &dest, &opts),
        None => whittle_registry::push_image(&store, &img.image, &dest, &opts),
    };
    let digest = pushed.with_context(|| match &args.destination {
        Some(_) => format!("pushing {} to {}", args.image, dest.canonical()),
        None => format!("pushing {}", dest.canonical()),
    })?;
    if let Some(f) = &args.digestfile {
        std::fs::write(f, digest.as_str()).with_context(|| format!("writing {}", f.display()))?;
    }
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}
