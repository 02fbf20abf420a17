//! The graph: vertices in topological order, interned by definition digest so that identical
//! operations on identical inputs (in several stages, or read by several) are one vertex.

use crate::image::StageImage;
use crate::op::Op;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use whittle_oci::Platform;

/// The version of the definition encoding. Every definition digest, and so every cache key,
/// includes it: bump it when an operation's meaning changes without its encoding changing.
pub const VERSION: u32 = 1;

/// A vertex's position in [`Graph::vertices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VertexId(pub usize);

impl std::fmt::Display for VertexId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Where a vertex comes from in the Dockerfile (for progress, errors and `plan`). Not part of
/// the definition: two identical steps in two stages are one vertex with two origins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The stage's index in the Dockerfile, and its label (name or `stage-N`).
    pub stage: usize,
    pub label: String,
    /// 1-based step number in the stage, and the stage's number of steps.
    pub step: usize,
    pub steps: usize,
    /// The line of the instruction (0 for a stage's base).
    pub line: usize,
    /// The instruction after expansion, in Dockerfile syntax.
    pub instruction: String,
    /// The SHELL program in effect (what `--on-failure=shell` opens for a failed RUN).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shell: Option<String>,
    /// The platform of the stage, in a graph of several platforms (progress names it, as
    /// BuildKit does: `[linux/arm64 builder 2/4]`, and `linux/amd64->arm64` for a stage on
    /// the build platform that builds for arm64).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<String>,
}

impl Origin {
    /// `[label step/steps]`, as progress shows it (`[platform label step/steps]` in a build of
    /// several platforms).
    pub fn progress_label(&self) -> String {
        match &self.platform {
            Some(p) => format!("[{p} {} {}/{}]", self.label, self.step, self.steps),
            None => format!("[{} {}/{}]", self.label, self.step, self.steps),
        }
    }
}

/// An image the graph builds: the target stage for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub platform: Platform,
    /// An index into [`Graph::images`].
    pub image: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    /// The definition digest: `sha256` of the graph version and the operation, with its inputs
    /// named by their own definition digests.
    pub digest: String,
    #[serde(flatten)]
    pub op: Op<VertexId>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub origins: Vec<Origin>,
}

/// A build graph: the target stage for one platform, or for several ([`Graph::merge`]), in
/// one graph so that what the platforms share is one vertex and runs once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    pub version: u32,
    /// Each after the vertices it reads.
    pub vertices: Vec<Vertex>,
    /// The stages the targets need, each after the stages it is based on.
    pub images: Vec<StageImage>,
    /// The images to build, one per platform, in the order the platforms were asked for
    /// (never empty).
    pub targets: Vec<Target>,
    /// Images the frontend did not know: the environment of steps on them lacks the image's
    /// ENV, so the solver refuses such a graph.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unresolved_images: Vec<String>,
}

impl Graph {
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    /// The first target's image (the only one of a single-platform graph).
    pub fn target_image(&self) -> &StageImage {
        &self.images[self.targets[0].image]
    }

    /// The first target's platform.
    pub fn platform(&self) -> &Platform {
        &self.targets[0].platform
    }

    /// One graph for several platforms' graphs: their vertices interned together, so an
    /// operation that is the same for several platforms (a stage pinned to `$BUILDPLATFORM`,
    /// a context) is one vertex, and their targets in order. In a graph of more than one
    /// platform, each origin names its stage's platform.
    pub fn merge(graphs: Vec<Graph>) -> Graph {
        let several = graphs.len() > 1;
        let mut b = Builder::new();
        let mut images: Vec<StageImage> = Vec::new();
        let mut targets = Vec::new();
        let mut unresolved: Vec<String> = Vec::new();
        for g in graphs {
            // A stage on another platform than the target's (`FROM --platform=$BUILDPLATFORM`)
            // is named as BuildKit names it: `linux/amd64->arm64`.
            let target = g.targets.first().map(|t| t.platform.clone());
            let stage_platform = |stage: usize| {
                let p = &g.images.iter().find(|i| i.stage == stage)?.platform;
                Some(match &target {
                    Some(t) if t != p => {
                        let arch = match &t.variant {
                            Some(v) => format!("{}/{v}", t.arch),
                            None => t.arch.clone(),
                        };
                        format!("{p}->{arch}")
                    }
                    _ => p.to_string(),
                })
            };
            let mut map: Vec<VertexId> = Vec::with_capacity(g.vertices.len());
            for v in &g.vertices {
                let op = v.op.map_inputs(&mut |i: &VertexId| map[i.0]);
                let mut id = None;
                for o in &v.origins {
                    let mut o = o.clone();
                    if several {
                        o.platform = stage_platform(o.stage);
                    }
                    id = Some(b.add(op.clone(), Some(o)));
                }
                map.push(id.unwrap_or_else(|| b.add(op, None)));
            }
            let offset = images.len();
            for img in &g.images {
                images.push(img.map_vertices(&|v| map[v.0], offset));
            }
            for t in &g.targets {
                targets.push(Target {
                    platform: t.platform.clone(),
                    image: t.image + offset,
                });
            }
            unresolved.extend(g.unresolved_images.iter().cloned());
        }
        unresolved.sort();
        unresolved.dedup();
        Graph {
            version: VERSION,
            vertices: b.vertices,
            images,
            targets,
            unresolved_images: unresolved,
        }
    }

    /// The definition digest a vertex's cache key starts from: the vertex's own operation with
    /// every input named by a placeholder instead of by its definition. The solver puts the
    /// inputs' cache keys into the key beside it, and for the input a copy reads files from,
    /// the digests of exactly the files it selects ([`CONTENT_INPUT`]) instead. So a builder
    /// stage that changed (a new ARG, another RUN line) but made the same files keeps the copy,
    /// and every step after it, cached, as in BuildKit; with the inputs' definitions in the
    /// key, any change upstream would reach every step below it.
    pub fn key_definition(&self, id: VertexId) -> String {
        let v = self.vertex(id);
        let content = match &v.op {
            Op::Copy(c) => Some(c.from),
            _ => None,
        };
        definition_digest(&v.op.map_inputs(&mut |i: &VertexId| {
            if Some(*i) == content {
                CONTENT_INPUT.to_string()
            } else {
                KEYED_INPUT.to_string()
            }
        }))
    }
}

/// How [`Graph::key_definition`] names an input whose cache key is part of the key.
pub const KEYED_INPUT: &str = "input";

/// How [`Graph::key_definition`] names an input that is keyed by content.
pub const CONTENT_INPUT: &str = "content";

/// The definition digest of `op`, whose inputs are named by their digests.
pub fn definition_digest(op: &Op<String>) -> String {
    definition_digest_at(VERSION, op)
}

/// The definition digest `op` has under graph version `version` (tests check that a new
/// version changes every digest).
pub fn definition_digest_at(version: u32, op: &Op<String>) -> String {
    // serde_json writes struct fields in declaration order and maps in insertion order (no
    // `preserve_order` surprises: the types hold no maps), so the encoding is canonical.
    let json = serde_json::to_vec(op).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(format!("whittle-graph/v{version}\n").as_bytes());
    h.update(&json);
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Builds a graph: adding an operation that is already there returns the existing vertex (and
/// records the new origin on it).
#[derive(Debug, Default)]
pub struct Builder {
    vertices: Vec<Vertex>,
    by_digest: HashMap<String, VertexId>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `op` (its inputs must already be in the graph).
    pub fn add(&mut self, op: Op<VertexId>, origin: Option<Origin>) -> VertexId {
        let named = op.map_inputs(&mut |i: &VertexId| self.vertices[i.0].digest.clone());
        let digest = definition_digest(&named);
        if let Some(&id) = self.by_digest.get(&digest) {
            if let Some(o) = origin {
                let v = &mut self.vertices[id.0];
                if !v.origins.contains(&o) {
                    v.origins.push(o);
                }
            }
            return id;
        }
        let id = VertexId(self.vertices.len());
        self.vertices.push(Vertex {
            digest: digest.clone(),
            op,
            origins: origin.into_iter().collect(),
        });
        self.by_digest.insert(digest, id);
        id
    }

    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    pub fn finish(
        self,
        platform: Platform,
        images: Vec<StageImage>,
        target: usize,
        unresolved_images: Vec<String>,
    ) -> Graph {
        Graph {
            version: VERSION,
            vertices: self.vertices,
            images,
            targets: vec![Target {
                platform,
                image: target,
            }],
            unresolved_images,
        }
    }
}
