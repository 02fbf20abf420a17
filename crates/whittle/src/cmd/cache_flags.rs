//! `build --cache-to` and `--cache-from`: sharing the build cache through a registry or a
//! directory (`docs/cache.md`). Imports are opened before the build (only their manifest and
//! config are read); one that cannot be read is a warning, and the build goes on without it.

use std::sync::Arc;
use whittle_remote_cache::{CacheFrom, CacheTo, Imported};
use whittle_solver::solve::CacheExport;

#[derive(clap::Args, Default)]
pub struct CacheArgs {
    /// Export the build cache: `type=registry,ref=REF[,mode=min|max][,compression=gzip|zstd]
    /// [,mounts=true]`, `type=local,dest=DIR` (an OCI layout), or `type=inline` (in the image's
    /// manifest). `mode=max` carries every stage's steps; `mounts=true` the contents of the
    /// build's `RUN --mount=type=cache` directories.
    #[arg(
        long = "cache-to",
        value_name = "type=registry,ref=REF|type=local,dest=DIR|type=inline"
    )]
    pub cache_to: Vec<CacheTo>,
    /// Use a build cache another build exported (repeatable, looked up in order):
    /// `type=registry,ref=REF`, `REF`, or `type=local,src=DIR`.
    #[arg(
        long = "cache-from",
        value_name = "type=registry,ref=REF|type=local,src=DIR"
    )]
    pub cache_from: Vec<CacheFrom>,
}

impl CacheArgs {
    /// The imports, opened (warnings on standard error), and the exports with how to push.
    pub fn open(
        &self,
        push: &whittle_registry::PushOptions,
        quiet: bool,
    ) -> anyhow::Result<(Vec<Arc<Imported>>, Vec<CacheExport>)> {
        let mut exports = Vec::new();
        for to in &self.cache_to {
            exports.push(CacheExport {
                to: to.clone(),
                push: push.clone(),
            });
        }
        let mut imports = Vec::new();
        for from in &self.cache_from {
            match Imported::open(from, &push.client) {
                Ok(i) => {
                    for w in i.warnings() {
                        eprintln!("warning: {w}");
                    }
                    if !quiet {
                        eprintln!("cache {}: {} records", i.name(), i.records());
                    }
                    imports.push(Arc::new(i));
                }
                Err(e) => eprintln!("warning: {e}; building without it"),
            }
        }
        Ok((imports, exports))
    }
}
