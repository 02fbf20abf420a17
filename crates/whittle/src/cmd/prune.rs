//! `whittle prune [--keep-storage SIZE]`: drop what no tagged image needs, and build cache.

use super::storeutil::{human_size, open, parse_size};
use std::path::Path;
use std::process::ExitCode;
use whittle_store::PruneOptions;

/// Remove untagged images, unreferenced blobs, temp files, and build cache (snapshots, cache
/// records, cache mounts): all of it, or least recently used first until the store fits
/// --keep-storage.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Keep up to this much storage in total (e.g. 10GB, 512MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
}

/// Runs `whittle prune`.
pub fn run(args: PruneArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let r = store.prune(&PruneOptions {
        keep_storage: args.keep_storage,
    })?;
    for m in &r.images_removed {
        println!("Deleted image: {m}");
    }
    println!(
        "Removed {} blobs, {} snapshots, {} cache records, {} cache mounts, {} temp files",
        r.blobs_removed,
        r.snapshots_removed,
        r.cache_records_removed,
        r.cache_mounts_removed,
        r.temp_removed
    );
    println!(
        "Total reclaimed space: {}; in use: {}",
        human_size(r.bytes_freed),
        human_size(r.bytes_after)
    );
    Ok(ExitCode::SUCCESS)
}
