//! `whittle inspect IMAGE...`: manifest and config JSON.

use super::storeutil::open;
use std::path::Path;
use std::process::ExitCode;

/// Show the manifest and config of images as JSON.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Images: name[:tag], image id or digest.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `whittle inspect`.
pub fn run(args: InspectArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let mut out = Vec::new();
    for what in &args.images {
        let t = store.resolve(what)?;
        let (manifest, config) = store.manifest_and_config(&t.image)?;
        out.push(serde_json::json!({
            "Id": t.image.config.to_string(),
            "Digest": t.image.manifest.to_string(),
            "RepoTags": t.tags,
            "MediaType": t.image.media_type,
            "Size": t.image.size,
            "Manifest": manifest,
            "Config": config,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
