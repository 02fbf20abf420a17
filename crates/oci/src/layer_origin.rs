//! whittle's manifest annotation naming the Dockerfile step that made each layer.
//!
//! [`LAYERS_ANNOTATION`] (`dev.whittle.layers`) holds compact JSON: a list with one entry per
//! layer of the manifest, bottom first, each `{"file":"Dockerfile","line":12,"stage":"builder"}`
//! or `null` for a layer no step of the Dockerfile made (a base image's). `whittle build` writes
//! it (on the manifest, so the config and its history stay what BuildKit writes); `whittle
//! analyze` reads it to show `Dockerfile:12 (stage builder)` beside each layer.

use serde::{Deserialize, Serialize};

/// The annotation's name.
pub const LAYERS_ANNOTATION: &str = "dev.whittle.layers";

/// The largest annotation value [`parse_layer_origins`] reads (1 MiB: thousands of layers).
pub const MAX_LAYERS_ANNOTATION: usize = 1 << 20;

/// The step that made one layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerOrigin {
    /// The Dockerfile, as a path inside the build context (or its file name).
    pub file: String,
    /// The instruction's line (1-based).
    pub line: usize,
    /// The stage's name, or `stage-N` for an unnamed one.
    pub stage: String,
}

impl std::fmt::Display for LayerOrigin {
    /// `Dockerfile:12 (stage builder)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} (stage {})", self.file, self.line, self.stage)
    }
}

/// The annotation's value for these layers; `None` when no layer has an origin.
pub fn layer_origins_json(layers: &[Option<LayerOrigin>]) -> Option<String> {
    if layers.iter().all(Option::is_none) {
        return None;
    }
    serde_json::to_string(layers).ok()
}

/// Reads the annotation's value for a manifest of `layers` layers. Anything that is not such a
/// list (not JSON, too long, another number of entries, an entry of another shape) gives
/// `None`: the annotation is a hint from whoever wrote the manifest, never a reason to fail.
pub fn parse_layer_origins(value: &str, layers: usize) -> Option<Vec<Option<LayerOrigin>>> {
    if value.len() > MAX_LAYERS_ANNOTATION {
        return None;
    }
    let list: Vec<Option<LayerOrigin>> = serde_json::from_str(value).ok()?;
    (list.len() == layers).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_what_does_not_fit() {
        let o = LayerOrigin {
            file: "Dockerfile".into(),
            line: 12,
            stage: "builder".into(),
        };
        assert_eq!(o.to_string(), "Dockerfile:12 (stage builder)");
        let v = layer_origins_json(&[None, Some(o.clone())]).unwrap();
        assert_eq!(
            v,
            r#"[null,{"file":"Dockerfile","line":12,"stage":"builder"}]"#
        );
        assert_eq!(parse_layer_origins(&v, 2), Some(vec![None, Some(o)]));
        assert_eq!(parse_layer_origins(&v, 3), None, "another number of layers");
        assert_eq!(parse_layer_origins("{}", 0), None);
        assert_eq!(parse_layer_origins(r#"[{"line":"x"}]"#, 1), None);
        assert_eq!(layer_origins_json(&[None, None]), None);
    }
}
