//! `whittle save -o FILE [--format docker|oci] IMAGE...`: export images as one archive.

use super::storeutil::open;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_oci::Reference;
use whittle_store::{ArchiveFormat, TagTarget};

/// Save images to a tar archive: docker-archive (loads with `docker load`) or oci-archive.
#[derive(clap::Args)]
pub struct SaveArgs {
    /// Output file (default: standard output, which must not be a terminal).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    format: Format,
    /// Save this platform of multi-platform images (default: an OCI archive keeps every
    /// platform; a docker archive, which holds one, takes the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Images: name[:tag], image id or digest.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Docker,
    Oci,
}

/// Runs `whittle save`.
pub fn run(args: SaveArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            whittle_oci::Platform::parse(p)
                .ok_or_else(|| anyhow::anyhow!("--platform {p:?} is not a platform"))
        })
        .transpose()?;
    let mut images = Vec::new();
    let mut indexes = Vec::new();
    for what in &args.images {
        let named = Reference::parse_tag(what).ok();
        if let (Some(r), Format::Oci, None) = (&named, args.format, &platform) {
            if let Some(TagTarget::Index(ix)) = store.tag_target(r)? {
                indexes.push((Some(r.clone()), ix));
                continue;
            }
        }
        let t = match &platform {
            Some(p) => store.resolve_platform(what, p)?,
            None => store.resolve(what)?,
        };
        // Named by a tag: keep that name in the archive; by id: no name.
        let r = Reference::parse_tag(what)
            .ok()
            .filter(|r| r.tag_key().is_some_and(|k| t.tags.contains(&k)));
        images.push((r, t.image));
    }
    let format = match args.format {
        Format::Docker => ArchiveFormat::Docker,
        Format::Oci => ArchiveFormat::Oci,
    };
    match args.output.filter(|o| o != Path::new("-")) {
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                anyhow::bail!(
                    "refusing to write an archive to a terminal: use -o FILE or redirect"
                );
            }
            let mut w = whittle_store::save_with_indexes(
                &store,
                &images,
                &indexes,
                format,
                std::io::BufWriter::new(stdout.lock()),
            )?;
            w.flush()?;
        }
        Some(out) => {
            // Appears complete or not at all; a killed save leaves nothing behind.
            let f = whittle_store::OutputFile::create(&out)?;
            let w = whittle_store::save_with_indexes(
                &store,
                &images,
                &indexes,
                format,
                std::io::BufWriter::with_capacity(1 << 20, f),
            )?;
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("writing {}: {}", out.display(), e.error()))?
                .commit()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
