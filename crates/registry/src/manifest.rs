//! The manifest documents of the distribution spec, as far as pulling and pushing need them,
//! checked as untrusted input: media types, digests and sizes.

use crate::error::{RegistryError, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use whittle_oci::media_type::{self, OCI_INDEX, OCI_MANIFEST};
use whittle_oci::{Index, Manifest, Platform};

/// What we ask registries for.
pub const ACCEPT: &str = media_type::MANIFEST_ACCEPT;
/// Largest manifest or index accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted from a registry.
pub const MAX_CONFIG: u64 = 8 << 20;

/// What is read of a document before it is parsed as what it says it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<IgnoredAny>,
    #[serde(default)]
    layers: Option<IgnoredAny>,
    #[serde(default)]
    manifests: Option<IgnoredAny>,
}

/// A descriptor (whittle_oci's: unknown fields kept, sha256 digests, sizes not negative).
pub use whittle_oci::Descriptor;

/// A parsed manifest or index.
// One is parsed per pull or push: the size of the config descriptor inline does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Document {
    /// An image manifest (OCI or Docker schema 2).
    Image {
        /// Its media type.
        media_type: String,
        /// The config blob.
        config: Descriptor,
        /// Layer blobs, bottom first.
        layers: Vec<Descriptor>,
    },
    /// An index / manifest list.
    Index {
        /// Its media type.
        media_type: String,
        /// The manifests it lists.
        manifests: Vec<Descriptor>,
    },
}

/// Parses a manifest or index given the `Content-Type` it came with (which may be missing or
/// generic). Schema 1 is refused with [`RegistryError::Schema1`].
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Document> {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    if ct.as_deref().is_some_and(media_type::is_schema1) {
        return Err(RegistryError::Schema1 {
            reference: what.to_string(),
        });
    }
    let bad = |reason: String| RegistryError::InvalidManifest {
        what: what.to_string(),
        reason,
    };
    let raw: Probe =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a manifest: {e}")))?;
    if raw.schema_version == Some(1) {
        return Err(RegistryError::Schema1 {
            reference: what.to_string(),
        });
    }
    if raw.schema_version != Some(2) {
        return Err(bad(format!(
            "schemaVersion is {:?}, expected 2",
            raw.schema_version
        )));
    }
    let mt = match (&raw.media_type, &ct) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(format!(
                "the registry says it is {b} but the document says {a}"
            )))
        }
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    if media_type::is_index(&mt) {
        if raw.manifests.is_none() {
            return Err(bad("an index without manifests".into()));
        }
        let index: Index =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not an index: {e}")))?;
        return Ok(Document::Index {
            media_type: mt,
            manifests: index.manifests,
        });
    }
    if !media_type::is_image_manifest(&mt) {
        return Err(bad(format!("unsupported media type {mt}")));
    }
    if raw.config.is_none() {
        return Err(bad("an image manifest without config".into()));
    }
    if raw.layers.is_none() {
        return Err(bad("an image manifest without layers".into()));
    }
    let Manifest { config, layers, .. } =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not an image manifest: {e}")))?;
    if !media_type::is_config(&config.media_type) {
        return Err(bad(format!(
            "config media type {:?} is not an image config",
            config.media_type
        )));
    }
    if config.size > MAX_CONFIG {
        return Err(RegistryError::TooLarge {
            what: format!("config {} of {what}", config.digest),
            limit: MAX_CONFIG,
        });
    }
    for l in &layers {
        // An attestation manifest's layers are in-toto statements (BuildKit's attestation
        // storage); never chosen as a platform's image, they are pushed and copied as they are.
        if !media_type::is_layer(&l.media_type) && l.media_type != whittle_oci::attestation::IN_TOTO
        {
            return Err(bad(format!(
                "layer {} has media type {:?}, not a filesystem layer",
                l.digest, l.media_type
            )));
        }
    }
    Ok(Document::Image {
        media_type: mt,
        config,
        layers,
    })
}

/// Picks the index entry for `want` ([`whittle_oci::platform::select`]: exact variant first,
/// then the architecture's default variant, then any variant when none was asked for).
pub fn select_platform<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    whittle_oci::platform::select(manifests, want, |d| {
        d.platform.as_ref().map(|p| p.platform())
    })
}

/// `os/arch[/variant]` of every entry that has a platform.
pub fn platforms(manifests: &[Descriptor]) -> String {
    let v: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.platform().to_string())
        .collect();
    if v.is_empty() {
        "no platforms".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_oci::media_type::DOCKER_MANIFEST;
    use whittle_oci::PlatformSpec;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn refuses_schema1() {
        let e = parse(br#"{"schemaVersion":1,"name":"x"}"#, None, "x").unwrap_err();
        assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
        let e = parse(
            b"{}",
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
    }

    #[test]
    fn parses_and_checks_manifests() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":10}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":20}}]}}"#,
            d(1),
            d(2)
        );
        let Document::Image { layers, config, .. } =
            parse(m.as_bytes(), Some(DOCKER_MANIFEST), "x").unwrap()
        else {
            panic!()
        };
        assert_eq!(config.size, 10);
        assert_eq!(layers[0].digest.to_string(), d(2));
        // Content-Type and body disagree.
        assert!(parse(m.as_bytes(), Some(OCI_MANIFEST), "x").is_err());
        // Bad digest, negative size, non-layer media type.
        for bad in [
            m.replace(&d(2), "sha256:zz"),
            m.replace("\"size\":20", "\"size\":-1"),
            m.replace(
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "text/html",
            ),
        ] {
            assert!(parse(bad.as_bytes(), None, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_platforms() {
        let e = |a: &str, v: Option<&str>, n: u8| Descriptor {
            platform: Some(PlatformSpec::from(&Platform {
                os: "linux".into(),
                arch: a.into(),
                variant: v.map(str::to_string),
            })),
            ..Descriptor::new(OCI_MANIFEST, d(n).parse().unwrap(), 1)
        };
        let list = vec![
            e("amd64", None, 1),
            e("arm", Some("v6"), 2),
            e("arm", Some("v7"), 3),
            e("arm64", Some("v8"), 4),
        ];
        let pick = |s: &str| {
            select_platform(&list, &Platform::parse(s).unwrap()).map(|d| d.digest.to_string())
        };
        assert_eq!(pick("linux/amd64"), Some(d(1)));
        assert_eq!(pick("linux/arm64"), Some(d(4)));
        assert_eq!(pick("linux/arm/v6"), Some(d(2)));
        assert_eq!(pick("linux/arm"), Some(d(3)));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(
            platforms(&list),
            "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8"
        );
    }
}
