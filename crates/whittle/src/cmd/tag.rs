//! `whittle tag SOURCE TARGET`: give an image another name.

use super::storeutil::open;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use whittle_oci::Reference;

/// Create a tag TARGET that refers to SOURCE.
#[derive(clap::Args)]
pub struct TagArgs {
    /// Image to tag: name[:tag], image id or digest.
    source: String,
    /// New name[:tag].
    target: String,
}

/// Runs `whittle tag`.
pub fn run(args: TagArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let target = Reference::parse_tag(&args.target).context("the new tag")?;
    let store = open(root)?;
    let img = store.resolve(&args.source)?;
    store.tag(&target, &img.image.manifest)?;
    Ok(ExitCode::SUCCESS)
}
