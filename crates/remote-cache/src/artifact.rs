//! The manifest that carries a cache: an OCI image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], the cache config as its config blob ([`CONFIG_MEDIA_TYPE`]) and every
//! layer a record names as its layers (sorted by digest). Registries keep what a manifest
//! names, so the layers live as long as the cache's tag.
//!
//! An image manifest rather than BuildKit's index-of-blobs: an index's entries are meant to be
//! manifests, and registries that check them refuse layer blobs there.

use crate::format::{CacheConfig, ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, INLINE_ANNOTATION};
use serde_json::Value;
use std::collections::BTreeMap;
use whittle_oci::{media_type, Descriptor, Digest, Manifest};

/// A cache as a manifest: its bytes, and every blob it names (config first).
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub blobs: Vec<Descriptor>,
}

/// The manifest for `cfg`.
pub fn build(cfg: &CacheConfig) -> Artifact {
    let config = cfg.to_vec();
    let config_desc = Descriptor::new(
        CONFIG_MEDIA_TYPE,
        Digest::of_bytes(&config),
        config.len() as u64,
    );
    let mut layers: BTreeMap<&Digest, Descriptor> = BTreeMap::new();
    for l in &cfg.layers {
        layers
            .entry(&l.blob)
            .or_insert_with(|| Descriptor::new(l.media_type.clone(), l.blob.clone(), l.size));
    }
    // Cache-mount layers are listed too, so the registry keeps them with the tag.
    for m in &cfg.mounts {
        layers
            .entry(&m.blob)
            .or_insert_with(|| Descriptor::new(m.media_type.clone(), m.blob.clone(), m.size));
    }
    let layers: Vec<Descriptor> = layers.into_values().collect();
    let mut m = Manifest::new(
        media_type::OCI_MANIFEST,
        config_desc.clone(),
        layers.clone(),
    );
    m.extra
        .insert("artifactType".into(), Value::from(ARTIFACT_TYPE));
    let manifest = serde_json::to_vec(&m).unwrap_or_default();
    let mut blobs = vec![config_desc];
    blobs.extend(layers);
    Artifact {
        manifest,
        config,
        blobs,
    }
}

/// What an imported manifest holds.
#[derive(Debug)]
pub enum Found {
    /// A cache artifact: its config's descriptor (to fetch) and its layers.
    Artifact {
        config: Box<Descriptor>,
        layers: Vec<Descriptor>,
    },
    /// An image built with inline cache: the config from its annotation, and its layers.
    Inline {
        config: Vec<u8>,
        layers: Vec<Descriptor>,
    },
}

/// Reads a manifest that should hold a cache: an image manifest, either whittle's cache
/// artifact or an image with the inline-cache annotation. Anything else is refused with a
/// sentence saying what it is.
pub fn parse(bytes: &[u8]) -> Result<Found, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if head.manifests.is_some() || head.media_type.as_deref().is_some_and(media_type::is_index) {
        return Err(
            "it is an index, not a whittle cache (a BuildKit cache is one: whittle reads only \
             its own format)"
                .into(),
        );
    }
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| format!("the manifest is not an OCI image manifest: {e}"))?;
    if m.schema_version != 2 {
        return Err(format!(
            "the manifest has schemaVersion {}, not 2",
            m.schema_version
        ));
    }
    let mt = m.media_type.as_deref().unwrap_or(media_type::OCI_MANIFEST);
    if !media_type::is_image_manifest(mt) {
        return Err(format!("media type {mt:?} is not an image manifest"));
    }
    if let Some(inline) = m.annotations.get(INLINE_ANNOTATION) {
        return Ok(Found::Inline {
            config: inline.as_bytes().to_vec(),
            layers: m.layers,
        });
    }
    let artifact = m.extra.get("artifactType").and_then(Value::as_str);
    if artifact != Some(ARTIFACT_TYPE) && m.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "it is not a whittle cache (artifact type {}, config media type {:?}){}",
            artifact.map_or_else(|| "none".to_string(), |a| format!("{a:?}")),
            m.config.media_type,
            if media_type::is_config(&m.config.media_type) {
                ": an image without inline cache"
            } else {
                ""
            }
        ));
    }
    if m.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "its config has media type {:?}, not {CONFIG_MEDIA_TYPE}",
            m.config.media_type
        ));
    }
    Ok(Found::Artifact {
        config: Box::new(m.config),
        layers: m.layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::CacheLayer;

    #[test]
    fn builds_what_it_parses() {
        let diff = Digest::of_bytes(b"tar");
        let l = CacheLayer {
            blob: Digest::of_bytes(b"blob"),
            media_type: media_type::OCI_LAYER_GZIP.into(),
            size: 4,
            chain_id: whittle_oci::chain_id(None, &diff),
            diff_id: diff,
            parent: None,
        };
        let cfg = CacheConfig::new(
            vec![(Digest::of_bytes(b"k").to_string(), Some(l))],
            Vec::new(),
            Vec::new(),
        );
        let a = build(&cfg);
        assert_eq!(a.blobs.len(), 2);
        match parse(&a.manifest).unwrap() {
            Found::Artifact { config, layers } => {
                assert_eq!(config.digest, Digest::of_bytes(&a.config));
                assert_eq!(layers.len(), 1);
            }
            Found::Inline { .. } => panic!("not inline"),
        }
        // An image, an index, garbage.
        let img = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;
        assert!(parse(img).unwrap_err().contains("without inline cache"));
        let ix = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(parse(ix).unwrap_err().contains("index"));
        assert!(parse(b"[]").is_err());
    }
}
