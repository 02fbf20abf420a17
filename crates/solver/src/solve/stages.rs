//! The files of the stages a target needs besides its own (`BuildOptions::stage_files`), for
//! `build --sbom=scan-stages=true`: BuildKit's `BUILDKIT_SBOM_SCAN_STAGE` catalogues each built
//! stage the target reads (a `COPY --from`, a `FROM` of another stage, a mount), never one
//! that was not built.

use super::{needed, Output, Result, Solver};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use whittle_graph::{Target, VertexId};
use whittle_layer::Digest;

/// A stage's filesystem as the build left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFiles {
    /// The stage's index in the Dockerfile.
    pub stage: usize,
    /// Its name, or `stage-N`.
    pub label: String,
    /// Its layers, bottom first. They stay while the caller holds a store lease.
    pub layers: Vec<StageLayer>,
}

/// One layer of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLayer {
    /// The snapshot directory (an overlayfs upper directory: whiteouts are 0/0 character
    /// devices).
    pub dir: PathBuf,
    /// The digest of its tar.
    pub diff_id: Digest,
    /// The Dockerfile step that made it (its stage's label and line); none for a base image's.
    pub made_by: Option<(String, usize)>,
}

impl Solver<'_> {
    /// The other stages target `t` needs, in Dockerfile order, with their files unpacked.
    pub(super) fn stage_files(
        &self,
        t: &Target,
        done: &HashMap<VertexId, Arc<Output>>,
    ) -> Result<Vec<StageFiles>> {
        let mut one = self.graph.clone();
        one.targets = vec![t.clone()];
        let need = needed(&one);
        let own = self.graph.images.get(t.image).map(|i| i.stage);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for img in &self.graph.images {
            // A graph of several platforms holds each platform's stages: the target's
            // platform's are the ones it needs (a stage built once for all is one vertex).
            if Some(img.stage) == own || !need.contains(&img.root) || !seen.insert(img.stage) {
                continue;
            }
            let Some(o) = done.get(&img.root) else {
                continue;
            };
            self.ensure_files(o)?;
            out.push(StageFiles {
                stage: img.stage,
                label: img.label.clone(),
                layers: o
                    .layers
                    .iter()
                    .map(|l| StageLayer {
                        dir: l.dir.clone(),
                        diff_id: l.diff_id.clone(),
                        made_by: l.made_by.clone(),
                    })
                    .collect(),
            });
        }
        out.sort_by_key(|s| s.stage);
        Ok(out)
    }
}
