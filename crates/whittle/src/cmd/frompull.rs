//! Base images for `whittle build`: before the build, every `FROM <image>` of a stage the target
//! needs is made present in the store by `whittle_registry::ensure_image`: pulled when the store
//! lacks it (default), checked on the registry (`--pull`), or required locally (`--pull=never`).

use super::regutil::{progress, TransportArgs};
use anyhow::Context;
use whittle_dockerfile::plan::Base;
use whittle_dockerfile::{Plan, Platform};
use whittle_registry::{ImageRef, PullOptions, PullPolicy};
use whittle_store::Store;

/// Ensures the base images of the plan's needed stages; returns whether there were any (the
/// plan is then made again, now that their configs are in the store).
pub fn ensure_bases(
    plan: &Plan,
    store: &Store,
    policy: PullPolicy,
    transport: &TransportArgs,
    quiet: bool,
) -> anyhow::Result<bool> {
    let opts = PullOptions {
        client: transport.client_options(),
        progress: progress(quiet, "downloading"),
        ..PullOptions::default()
    };
    let mut seen: Vec<(String, Platform)> = Vec::new();
    for stage in plan.stages.iter().filter(|s| s.needed) {
        let Base::Image { reference } = &stage.base else {
            continue;
        };
        let platform = match &stage.platform {
            Some(p) => Platform::parse(p)
                .with_context(|| format!("FROM --platform={p} is not a platform"))?,
            None => Platform::host(),
        };
        if seen.iter().any(|(r, p)| r == reference && *p == platform) {
            continue;
        }
        let r = ImageRef::parse(reference)
            .with_context(|| format!("base image of stage {}", stage.label()))?;
        whittle_registry::ensure_image(store, &r, &platform, policy, &opts)
            .with_context(|| format!("base image {reference} of stage {}", stage.label()))?;
        seen.push((reference.clone(), platform));
    }
    Ok(!seen.is_empty())
}
