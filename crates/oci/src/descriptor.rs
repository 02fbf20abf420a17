//! Content descriptors (`mediaType`, `digest`, `size`, ...), the links of manifests and indexes,
//! and the platform object of an index entry.
//!
//! Hand-written rather than `oci_spec::image::Descriptor`: oci-spec keeps annotations in a
//! `HashMap` (so a written manifest or `index.json` with two annotations differs from run to
//! run), drops fields it does not know, and its `Digest` accepts algorithms whittle cannot
//! verify. Here annotations are a `BTreeMap`, unknown fields are kept (`extra`) and written
//! back, and fields are written in the spec's order, which is what oci-spec wrote, so
//! manifests whittle wrote before keep their digests.

use crate::{Digest, Platform};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content (see [`crate::media_type`]).
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Where else it may be fetched from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations, in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the image it points at (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    /// Fields this type does not know (`artifactType`, `data`, ...), kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A descriptor with just media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            extra: BTreeMap::new(),
        }
    }
}

/// The platform object of an index entry, as the spec spells it (`architecture`, `os`,
/// `variant`, `os.version`, `os.features`). [`PlatformSpec::platform`] is whittle's
/// [`Platform`] of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSpec {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// OS version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows images).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl PlatformSpec {
    /// `os/arch[/variant]` as whittle names platforms (an empty variant is none).
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            arch: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

impl From<&Platform> for PlatformSpec {
    fn from(p: &Platform) -> PlatformSpec {
        PlatformSpec {
            architecture: p.arch.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            ..PlatformSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_spec_order_and_keeps_unknown_fields() {
        let d = Digest::of_bytes(b"x");
        let json = format!(
            r#"{{"mediaType":"a/b","digest":"{d}","size":3,"annotations":{{"z":"1","a":"2"}},"platform":{{"architecture":"arm","os":"linux","os.version":"10","variant":"v7","x":1}},"artifactType":"t/u"}}"#
        );
        let desc: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(
            desc.platform.as_ref().unwrap().platform().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(desc.extra["artifactType"], "t/u");
        let out = serde_json::to_string(&desc).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"mediaType":"a/b","digest":"{d}","size":3,"annotations":{{"a":"2","z":"1"}},"platform":{{"architecture":"arm","os":"linux","os.version":"10","variant":"v7","x":1}},"artifactType":"t/u"}}"#
            )
        );
        let again: Descriptor = serde_json::from_str(&out).unwrap();
        assert_eq!(again, desc);
        assert_eq!(
            serde_json::to_string(&Descriptor::new("a/b", d.clone(), 1)).unwrap(),
            format!(r#"{{"mediaType":"a/b","digest":"{d}","size":1}}"#)
        );
        assert!(serde_json::from_str::<Descriptor>(r#"{"digest":"sha256:zz","size":1}"#).is_err());
        let neg = format!(r#"{{"digest":"{d}","size":-1}}"#);
        assert!(serde_json::from_str::<Descriptor>(&neg).is_err());
    }
}
