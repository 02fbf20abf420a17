//! Image manifests and indexes (OCI, and Docker's schema 2 manifest and manifest list, which
//! have the same shape).
//!
//! Hand-written for the reasons [`crate::Descriptor`] is: deterministic annotations, unknown
//! fields kept, sha256-only digests. Fields are written in the spec's order (what oci-spec
//! wrote), so an image manifest whittle writes is byte for byte what it wrote before.
//! These types check shape only; what a reader requires of untrusted documents (schema
//! version, media types, sizes) stays with that reader.

use crate::descriptor::Descriptor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An image manifest: a config and layers, bottom first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2 (readers that care check it; a missing one reads as 0).
    #[serde(default)]
    pub schema_version: u32,
    /// Media type (OCI manifests may leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this type does not know (`artifactType`, `subject`, ...), kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An image index (or Docker manifest list): manifests, usually one per platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2 (readers that care check it; a missing one reads as 0).
    #[serde(default)]
    pub schema_version: u32,
    /// Media type (OCI indexes may leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Manifest {
    /// A schema 2 manifest of `media_type` for a config and layers.
    pub fn new(media_type: &str, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_type.to_string()),
            config,
            layers,
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

impl Index {
    /// A schema 2 index of `media_type` listing `manifests`.
    pub fn new(media_type: &str, manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type.to_string()),
            manifests,
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{media_type, Digest};

    #[test]
    fn manifests_write_what_oci_spec_wrote() {
        let c = Digest::of_bytes(b"c");
        let l = Digest::of_bytes(b"l");
        let mut m = Manifest::new(
            media_type::OCI_MANIFEST,
            Descriptor::new(media_type::OCI_CONFIG, c.clone(), 10),
            vec![Descriptor::new(media_type::OCI_LAYER_GZIP, l.clone(), 20)],
        );
        m.annotations.insert("b".into(), "2".into());
        m.annotations.insert("a".into(), "1".into());
        let out = serde_json::to_string(&m).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":10}},"layers":[{{"mediaType":"{}","digest":"{l}","size":20}}],"annotations":{{"a":"1","b":"2"}}}}"#,
                media_type::OCI_MANIFEST,
                media_type::OCI_CONFIG,
                media_type::OCI_LAYER_GZIP
            )
        );
        assert_eq!(serde_json::from_str::<Manifest>(&out).unwrap(), m);
    }

    #[test]
    fn indexes_keep_unknown_fields() {
        let d = Digest::of_bytes(b"m");
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{d}","size":5,"platform":{{"architecture":"amd64","os":"linux"}}}}],"subject":{{"x":1}}}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST
        );
        let idx: Index = serde_json::from_str(&json).unwrap();
        assert_eq!(idx.manifests.len(), 1);
        assert_eq!(serde_json::to_string(&idx).unwrap(), json);
    }
}
