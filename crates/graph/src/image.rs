//! What a built stage is as an image: its filesystem (a vertex), the config it starts from, and
//! every change the stage makes to the config, history entries included, in order.

use crate::VertexId;
use serde::{Deserialize, Serialize};
use whittle_oci::Platform;

/// A stage the target needs, as an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageImage {
    /// The stage's index in the Dockerfile.
    pub stage: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The stage's name, or `stage-N`.
    pub label: String,
    pub platform: Platform,
    /// The stage's final filesystem.
    pub root: VertexId,
    pub base: ConfigBase,
    pub changes: Vec<ConfigChange>,
}

impl StageImage {
    /// The same image with its vertices renamed by `f` and the images it is based on moved by
    /// `offset` (for [`crate::Graph::merge`]).
    pub fn map_vertices(&self, f: &impl Fn(VertexId) -> VertexId, offset: usize) -> StageImage {
        StageImage {
            root: f(self.root),
            base: match self.base {
                ConfigBase::Scratch => ConfigBase::Scratch,
                ConfigBase::Image { vertex } => ConfigBase::Image { vertex: f(vertex) },
                ConfigBase::Stage { image } => ConfigBase::Stage {
                    image: image + offset,
                },
            },
            changes: self
                .changes
                .iter()
                .map(|c| match c {
                    ConfigChange::History { created_by, layer } => ConfigChange::History {
                        created_by: created_by.clone(),
                        layer: layer.map(f),
                    },
                    other => other.clone(),
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// The config a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum ConfigBase {
    /// BuildKit's empty image: `PATH` set, `/` as the working directory.
    Scratch,
    /// The config of an image source vertex.
    Image { vertex: VertexId },
    /// The final config of another stage (an index into [`crate::Graph::images`]).
    Stage { image: usize },
}

/// A health check as the image config holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Durations in nanoseconds; 0 is absent (inherit).
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u32,
}

/// One change to the image config, in Dockerfile order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "set", rename_all = "kebab-case")]
pub enum ConfigChange {
    /// The base's ONBUILD triggers ran in this stage; the image does not pass them on.
    ClearOnBuild,
    /// Variables set (replacing one of the same name in place, else appended).
    Env {
        vars: Vec<(String, String)>,
    },
    Labels {
        labels: Vec<(String, String)>,
    },
    WorkingDir {
        path: String,
    },
    User {
        user: String,
    },
    /// `port/proto`, lower case.
    ExposedPorts {
        ports: Vec<String>,
    },
    Volumes {
        paths: Vec<String>,
    },
    Cmd {
        args: Vec<String>,
    },
    /// An empty list clears it; `reset_cmd` clears a CMD that came from the base.
    Entrypoint {
        args: Vec<String>,
        reset_cmd: bool,
    },
    Healthcheck {
        check: Healthcheck,
    },
    StopSignal {
        signal: String,
    },
    Shell {
        shell: Vec<String>,
    },
    OnBuild {
        trigger: String,
    },
    Author {
        name: String,
    },
    /// A history entry. `layer` names the vertex whose layer this entry describes; the entry
    /// is an empty layer when there is none, or when that vertex added nothing.
    History {
        created_by: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        layer: Option<VertexId>,
    },
}
