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
}

impl Origin {
    /// `[label step/steps]`, as progress shows it.
    pub fn progress_label(&self) -> String {
        format!("[{} {}/{}]", self.label, self.step, self.steps)
    }
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

/// A build graph for one target on one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    pub version: u32,
    pub platform: Platform,
    /// Each after the vertices it reads.
    pub vertices: Vec<Vertex>,
    /// The stages the target needs, each after the stages it is based on.
    pub images: Vec<StageImage>,
    /// The target, an index into `images`.
    pub target: usize,
    /// Images the frontend did not know: the environment of steps on them lacks the image's
    /// ENV, so the solver refuses such a graph.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unresolved_images: Vec<String>,
}

impl Graph {
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    /// The target stage's image.
    pub fn target_image(&self) -> &StageImage {
        &self.images[self.target]
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
            platform,
            vertices: self.vertices,
            images,
            target,
            unresolved_images,
        }
    }
}
