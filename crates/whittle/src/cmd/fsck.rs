//! `whittle fsck [--repair] [--fetch]`: re-hash every blob and check every reference.

use super::storeutil::{human_size, open};
use std::path::Path;
use std::process::ExitCode;

/// Verify the store: re-hash every blob, check that images' blobs and snapshot dirs exist, and
/// drop temp files left by interrupted writers. Exits 1 when something is wrong.
#[derive(clap::Args)]
pub struct FsckArgs {
    /// Also delete corrupt blobs (load or pull the images again afterwards).
    #[arg(long)]
    repair: bool,
    /// First fetch the layers images name that are only in a registry (a build cache's layers
    /// of a pushed image), so that they are checked too.
    #[arg(long)]
    fetch: bool,
}

/// Runs `whittle fsck`.
pub fn run(args: FsckArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    if args.fetch {
        for b in store.fetch_remote_image_blobs()? {
            println!("fetched blob {} from {}", b.digest, b.place());
        }
    }
    let r = store.fsck(args.repair)?;
    for p in &r.temp_removed {
        println!("removed leftover temp file {}", p.display());
    }
    if r.temp_in_use {
        println!("temp files left alone: another whittle process is writing");
    }
    for (name, actual) in &r.corrupt {
        let fixed = if r.corrupt_removed.contains(name) {
            " (removed)"
        } else {
            ""
        };
        println!("CORRUPT blob {name}: content hashes to {actual}{fixed}");
    }
    for p in &r.stray_files {
        println!("STRAY file {} (not named by a digest)", p.display());
    }
    for (img, blob) in &r.missing {
        println!("MISSING blob {blob} of image {img}");
    }
    for (img, blob, place) in &r.remote {
        println!("remote blob {blob} of image {img}: in {place} (whittle fsck --fetch)");
    }
    for (tag, manifest) in &r.dangling_tags {
        println!("DANGLING tag {tag}: its image {manifest} is gone (whittle rmi {tag}, then rebuild or pull it)");
    }
    for s in &r.snapshots_missing {
        println!("MISSING snapshot dir of {s}");
    }
    println!(
        "checked {} blobs ({})",
        r.blobs_checked,
        human_size(r.bytes_checked)
    );
    if r.is_clean() {
        println!("store is clean");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("store has problems");
        Ok(ExitCode::from(1))
    }
}
