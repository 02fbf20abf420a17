//! `whittle build --sbom --provenance` (`--attest`): what the build knows, gathered for
//! `whittle_attest`, and the attestations attached after the build (see
//! `docs/attestations.md`).

use std::collections::BTreeMap;
use whittle_attest::{Attach, Attached, BuildFacts, Material, PlatformImage, Request, Step};
use whittle_dockerfile::plan::{Op, Plan, Source};
use whittle_graph::Graph;
use whittle_oci::{Digest, Platform, Reference};
use whittle_store::Store;

/// `COPY --from=STAGE` (and `ADD --from`) lines of the needed stages: line → stage name (or
/// index), or the image copied from.
pub fn copies(plan: &Plan) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    for s in plan.stages.iter().filter(|s| s.needed) {
        for step in &s.steps {
            let (Op::Copy(c) | Op::Add(c)) = &step.op else {
                continue;
            };
            let from = match &c.from {
                Source::Stage { index } => plan
                    .stages
                    .get(*index)
                    .and_then(|st| st.name.clone())
                    .unwrap_or_else(|| index.to_string()),
                Source::Image { reference } => reference.clone(),
                Source::Named { name } => name.clone(),
                Source::Context => continue,
            };
            out.insert(step.pos.line, from);
        }
    }
    out
}

/// The Dockerfile's steps in the needed stages, as written (first line), for `mode=max`.
pub fn steps(plan: &Plan) -> Vec<Step> {
    let mut out = Vec::new();
    for s in plan.stages.iter().filter(|s| s.needed) {
        let stage = s.name.clone().unwrap_or_else(|| s.index.to_string());
        for step in s.steps.iter().filter(|st| !st.from_onbuild) {
            out.push(Step {
                stage: stage.clone(),
                line: step.pos.line,
                instruction: step.original.lines().next().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// The base images target `t` of the graph read (pinned to their manifests).
pub fn materials(graph: &Graph, t: &whittle_graph::Target) -> Vec<Material> {
    let mut one = graph.clone();
    one.targets = vec![t.clone()];
    let mut out = Vec::new();
    for v in whittle_solver::needed(&one) {
        if let whittle_graph::Op::Image(s) = &graph.vertex(v).op {
            if let Some(m) = s.manifest.as_deref().and_then(|m| m.parse::<Digest>().ok()) {
                out.push(Material {
                    reference: s.reference.clone(),
                    platform: s.platform.clone(),
                    manifest: m,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.reference, &a.manifest).cmp(&(&b.reference, &b.manifest)));
    out
}

/// Whether a needed RUN step had a network (provenance's `buildkit_hermetic` is its
/// negation).
pub fn network(graph: &Graph) -> bool {
    whittle_solver::needed(graph).into_iter().any(|v| {
        matches!(&graph.vertex(v).op, whittle_graph::Op::Exec(e)
            if e.network != whittle_graph::Network::None)
    })
}

/// Everything `attach` needs from the command.
pub struct Inputs<'a> {
    pub request: &'a Request,
    pub names: &'a [Reference],
    pub facts: BuildFacts,
    pub copies: BTreeMap<usize, String>,
    pub index_annotations: &'a BTreeMap<String, String>,
    pub threads: usize,
}

/// Attaches the attestations to the built images: the index of images and attestation
/// manifests (the solver writes none then: `BuildOptions::index` is off).
pub fn attach(
    store: &Store,
    graph: &Graph,
    res: &whittle_solver::BuildResult,
    inputs: &Inputs<'_>,
) -> anyhow::Result<Attached> {
    let mut images = Vec::new();
    for (p, t) in res.platforms.iter().zip(&graph.targets) {
        let Some(image) = p.image.as_ref() else {
            anyhow::bail!("attestations need the image, and the build wrote none");
        };
        images.push(PlatformImage {
            platform: p.platform.clone(),
            image,
            materials: materials(graph, t),
            stages: p
                .stages
                .iter()
                .filter(|s| {
                    inputs
                        .request
                        .sbom
                        .as_ref()
                        .is_some_and(|r| r.scans(&s.label))
                })
                .map(|s| stage_input(s, &inputs.facts.dockerfile))
                .collect(),
        });
    }
    let a = Attach {
        request: inputs.request,
        names: inputs.names,
        facts: &inputs.facts,
        copies: &inputs.copies,
        index_annotations: inputs.index_annotations,
        threads: inputs.threads,
    };
    Ok(whittle_attest::attach(store, &a, &images)?)
}

/// A stage's files as the SBOM of `scan-stages` reads them; its layers' steps named in the
/// Dockerfile `file`, as an image's `dev.whittle.layers` annotation names them.
fn stage_input(s: &whittle_solver::StageFiles, file: &str) -> whittle_attest::sbom::StageInput {
    whittle_attest::sbom::StageInput {
        label: s.label.clone(),
        layers: s
            .layers
            .iter()
            .map(|l| whittle_sbom::DirLayer {
                dir: l.dir.clone(),
                diff_id: Some(l.diff_id.to_string()),
            })
            .collect(),
        origins: s
            .layers
            .iter()
            .map(|l| {
                l.made_by
                    .as_ref()
                    .map(|(stage, line)| whittle_oci::LayerOrigin {
                        file: file.to_string(),
                        line: *line,
                        stage: stage.clone(),
                    })
            })
            .collect(),
    }
}

/// The attestations as files of the file outputs (`-o DIR`, `-o type=tar`), as BuildKit's
/// local and tar exporters write them: next to each platform's files.
pub struct Files<'a> {
    pub attached: &'a Attached,
    pub epoch: u64,
}

impl whittle_solver::export::ExtraFiles for Files<'_> {
    fn write(
        &self,
        dir: &std::path::Path,
        platform: Option<&Platform>,
    ) -> Result<(), whittle_solver::export::ExtraError> {
        let preds = match platform {
            Some(p) => self.attached.predicates.iter().find(|(q, _)| q == p),
            None => self.attached.predicates.first(),
        };
        if let Some((_, preds)) = preds {
            whittle_attest::local::write(dir, preds, self.epoch)?;
        }
        Ok(())
    }
}
