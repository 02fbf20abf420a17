//! Images a build reads, made present before it starts: every `FROM <image>` of a stage the
//! target needs, and every image a needed stage reads with `COPY --from=<image>` or
//! `RUN --mount=from=<image>`. `whittle_registry::ensure_image` pulls what the store lacks
//! (default), checks the registry (`--pull`), or requires the store to have it (`--pull=never`).
//! The result pins each reference to the manifest it resolved to, so the build uses exactly
//! that image (also for digest references and `FROM --platform`).

use super::regutil::{progress, TransportArgs};
use anyhow::Context;
use std::collections::HashMap;
use whittle_dockerfile::plan::{Base, Op, Source};
use whittle_dockerfile::{Plan, Platform};
use whittle_oci::Reference;
use whittle_registry::{PullOptions, PullPolicy};
use whittle_store::{Digest, Store};

/// The images the plan's needed stages read, with the platform each is wanted for and a
/// description for errors.
fn wanted(plan: &Plan) -> anyhow::Result<Vec<(String, Platform, String)>> {
    let mut out: Vec<(String, Platform, String)> = Vec::new();
    let mut add = |reference: &str, platform: Platform, what: String| {
        if !out.iter().any(|(r, p, _)| r == reference && *p == platform) {
            out.push((reference.to_string(), platform, what));
        }
    };
    for stage in plan.stages.iter().filter(|s| s.needed) {
        let platform = match &stage.platform {
            Some(p) => Platform::parse(p)
                .with_context(|| format!("FROM --platform={p} is not a platform"))?,
            None => plan.target_platform.clone(),
        };
        if let Base::Image { reference } = &stage.base {
            add(
                reference,
                platform.clone(),
                format!("base image {reference} of stage {}", stage.label()),
            );
        }
        for step in &stage.steps {
            match &step.op {
                Op::Copy(c) | Op::Add(c) => {
                    if let Source::Image { reference } = &c.from {
                        add(
                            reference,
                            platform.clone(),
                            format!("image {reference} (COPY --from, line {})", step.pos.line),
                        );
                    }
                }
                Op::Run { mounts, .. } => {
                    for m in mounts {
                        if let Some(Source::Image { reference }) = &m.source_ref {
                            add(
                                reference,
                                plan.target_platform.clone(),
                                format!("image {reference} (RUN --mount, line {})", step.pos.line),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The key of the pinned images: an image reference as the Dockerfile names it, for a
/// platform.
pub fn image_key(reference: &str, platform: &Platform) -> String {
    format!("{reference}\0{platform}")
}

/// Ensures every image the build reads; returns the manifest each reference resolved to, keyed
/// by [`image_key`].
pub fn ensure_images(
    plan: &Plan,
    store: &Store,
    policy: PullPolicy,
    transport: &TransportArgs,
    quiet: bool,
) -> anyhow::Result<HashMap<String, Digest>> {
    let opts = PullOptions {
        client: transport.client_options(),
        progress: progress(quiet, "downloading"),
        ..PullOptions::default()
    };
    let mut resolved = HashMap::new();
    for (reference, platform, what) in wanted(plan)? {
        let r = Reference::parse(&reference).with_context(|| what.clone())?;
        let img = whittle_registry::ensure_image(store, &r, &platform, policy, &opts)
            .with_context(|| what.clone())?;
        resolved.insert(image_key(&reference, &platform), img.manifest);
    }
    Ok(resolved)
}
