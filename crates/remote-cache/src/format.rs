//! The cache config: whittle's build-cache records as one versioned JSON document.
//!
//! ```json
//! {"version":1,
//!  "layers":[{"blob":"sha256:…","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",
//!             "size":123,"diffId":"sha256:…","chainId":"sha256:…","parent":"sha256:…"}],
//!  "records":[{"key":"sha256:…","layer":0},{"key":"sha256:…","layer":null}],
//!  "selections":[{"key":"sha256:…","id":"…","files":{"/app":"…"}}],
//!  "explanations":[{"step":"sha256:…","inputs":{…}}],
//!  "mounts":[{"id":"…","blob":"sha256:…","mediaType":"…","size":123,"diffId":"sha256:…"}]}
//! ```
//!
//! - A record is one vertex's result under its cache key (the solver's key: definition
//!   digest, input keys, content digests): the layer it added, or `null` when it added
//!   nothing. The layer's `parent` is the chain id of the filesystem it was made on, so the
//!   importer checks that the record fits where it is used and can commit the snapshot under
//!   its chain id.
//! - A selection is what a `COPY --from` selected in a source filesystem (keyed by that
//!   filesystem's chain id and the patterns): with it a copy's key is known without the
//!   source's files, so an imported builder stage is never downloaded just to key the copy.
//! - An explanation is what a step read, keyed by the step's place in the Dockerfile, to say
//!   why it missed (`main.go changed`) on a runner that never built it.
//!
//! - A mount (`--cache-to ...,mounts=true`) is the contents of a `RUN --mount=type=cache`
//!   directory as a layer, under the mount's id (which already names the owner and mode that
//!   make it another cache). `mounts` is optional and left out when empty, so a cache without
//!   mounts is the same bytes as before it existed, and a reader that predates it ignores it
//!   (its records mean what they meant): an extension of version 1, not a new version.
//!
//! Entries are sorted (layers by chain id, the rest by key) and written compactly, so the
//! same cache is the same bytes. Reading checks everything ([`CacheConfig::from_slice`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use whittle_oci::{chain_id, media_type, Digest};

/// The format version this code writes and reads; another is refused, never guessed at.
pub const VERSION: u32 = 1;
/// Media type of the config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.whittle.cache.config.v1+json";
/// `artifactType` of the manifest that carries a cache.
pub const ARTIFACT_TYPE: &str = "application/vnd.whittle.cache.v1";
/// The manifest annotation of an image built with inline cache (`--cache-to type=inline`).
pub const INLINE_ANNOTATION: &str = "dev.whittle.cache.v1";
/// The longest cache-mount id read.
pub const MAX_MOUNT_ID: usize = 4096;
/// The largest config read.
pub const MAX_CONFIG: u64 = 32 << 20;
/// The most entries of each kind read.
pub const MAX_ENTRIES: usize = 200_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    pub version: u32,
    pub layers: Vec<CacheLayer>,
    pub records: Vec<CacheRecord>,
    #[serde(default)]
    pub selections: Vec<Selection>,
    #[serde(default)]
    pub explanations: Vec<Explanation>,
    /// Cache-mount contents (`mounts=true`), sorted by id; absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<CacheMountLayer>,
}

/// The contents of a cache mount as a layer (a tar of the directory's contents).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheMountLayer {
    /// The mount's id as the build graph has it (`id=`, or the target, with the owner and
    /// mode when they were given).
    pub id: String,
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
    /// The uncompressed tar's digest, checked when it is restored.
    pub diff_id: Digest,
}

/// A layer a record points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheLayer {
    /// The compressed blob, as it is in the artifact.
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: Digest,
    /// `chain_id(parent, diff_id)`: checked on reading.
    pub chain_id: Digest,
    /// The chain id below it; `null` for a layer made on an empty filesystem.
    pub parent: Option<Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The solver's cache key.
    pub key: String,
    /// Index into `layers`; `None`: the step added nothing.
    pub layer: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub key: String,
    /// What the copy's key is made of.
    pub id: String,
    /// The selected paths and their digests (to explain a later miss).
    #[serde(default)]
    pub files: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The step's place (Dockerfile, stage, step), hashed.
    pub step: String,
    /// What it read.
    pub inputs: Value,
}

/// What a reader refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the cache config is larger than {MAX_CONFIG} bytes")]
    TooLarge,
    #[error("the cache config is not valid JSON of whittle's cache format: {0}")]
    Json(String),
    #[error("the cache config has format version {0}; this whittle reads version {VERSION}")]
    Version(u32),
    #[error("the cache config has more than {MAX_ENTRIES} {0}")]
    TooMany(&'static str),
    #[error("the cache config is inconsistent: {0}")]
    Inconsistent(String),
}

fn is_key(k: &str) -> bool {
    k.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl CacheConfig {
    /// The layers and records given in any order, with duplicates, as one config: layers by
    /// chain id, records by key (the first of a key wins), selections and explanations by key.
    pub fn new(
        records: Vec<(String, Option<CacheLayer>)>,
        selections: Vec<Selection>,
        explanations: Vec<Explanation>,
    ) -> CacheConfig {
        let mut layers: BTreeMap<Digest, CacheLayer> = BTreeMap::new();
        for l in records.iter().filter_map(|(_, l)| l.as_ref()) {
            layers
                .entry(l.chain_id.clone())
                .or_insert_with(|| l.clone());
        }
        let index: BTreeMap<&Digest, usize> =
            layers.keys().enumerate().map(|(n, c)| (c, n)).collect();
        let mut recs: BTreeMap<String, Option<usize>> = BTreeMap::new();
        for (key, l) in &records {
            let at = l.as_ref().and_then(|l| index.get(&l.chain_id).copied());
            recs.entry(key.clone()).or_insert(at);
        }
        let mut sels: BTreeMap<String, Selection> = BTreeMap::new();
        for s in selections {
            sels.entry(s.key.clone()).or_insert(s);
        }
        let mut expl: BTreeMap<String, Explanation> = BTreeMap::new();
        for e in explanations {
            expl.entry(e.step.clone()).or_insert(e);
        }
        CacheConfig {
            version: VERSION,
            records: recs
                .into_iter()
                .map(|(key, layer)| CacheRecord { key, layer })
                .collect(),
            layers: layers.into_values().collect(),
            selections: sels.into_values().collect(),
            explanations: expl.into_values().collect(),
            mounts: Vec::new(),
        }
    }

    /// The same config with these cache mounts (sorted by id; the first of an id wins).
    pub fn with_mounts(mut self, mounts: Vec<CacheMountLayer>) -> CacheConfig {
        let mut by_id: BTreeMap<String, CacheMountLayer> = BTreeMap::new();
        for m in mounts {
            by_id.entry(m.id.clone()).or_insert(m);
        }
        self.mounts = by_id.into_values().collect();
        self
    }

    /// The config's bytes: compact, fields in declaration order, entries as sorted by
    /// [`CacheConfig::new`].
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads and checks a config: size, JSON, version, counts, keys, each layer's chain id
    /// and media type, each record's layer index.
    pub fn from_slice(bytes: &[u8]) -> Result<CacheConfig, FormatError> {
        if bytes.len() as u64 > MAX_CONFIG {
            return Err(FormatError::TooLarge);
        }
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
        if head.version != VERSION {
            return Err(FormatError::Version(head.version));
        }
        let cfg: CacheConfig =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
        for (what, n) in [
            ("layers", cfg.layers.len()),
            ("records", cfg.records.len()),
            ("selections", cfg.selections.len()),
            ("explanations", cfg.explanations.len()),
            ("mounts", cfg.mounts.len()),
        ] {
            if n > MAX_ENTRIES {
                return Err(FormatError::TooMany(what));
            }
        }
        let bad = |s: String| Err(FormatError::Inconsistent(s));
        for l in &cfg.layers {
            if chain_id(l.parent.as_ref(), &l.diff_id) != l.chain_id {
                return bad(format!(
                    "layer {} does not have chain id {} on its parent",
                    l.blob, l.chain_id
                ));
            }
            if !media_type::is_layer(&l.media_type) {
                return bad(format!(
                    "layer {} has media type {:?}, not a layer's",
                    l.blob, l.media_type
                ));
            }
        }
        for r in &cfg.records {
            if !is_key(&r.key) {
                return bad(format!("record key {:?} is not a cache key", r.key));
            }
            if r.layer.is_some_and(|n| n >= cfg.layers.len()) {
                return bad(format!("record {} names a layer that is not listed", r.key));
            }
        }
        for s in &cfg.selections {
            if !is_key(&s.key) {
                return bad(format!("selection key {:?} is not a cache key", s.key));
            }
        }
        for e in &cfg.explanations {
            if !is_key(&e.step) {
                return bad(format!("explanation key {:?} is not a step key", e.step));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for m in &cfg.mounts {
            if m.id.is_empty() || m.id.len() > MAX_MOUNT_ID {
                return bad(format!(
                    "a cache mount id is empty or longer than {MAX_MOUNT_ID} bytes"
                ));
            }
            if !ids.insert(m.id.as_str()) {
                return bad(format!("cache mount {:?} is listed twice", m.id));
            }
            if !media_type::is_layer(&m.media_type) {
                return bad(format!(
                    "cache mount {:?} has media type {:?}, not a layer's",
                    m.id, m.media_type
                ));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn layer(diff: char, parent: Option<Digest>) -> CacheLayer {
        let diff = d(diff);
        CacheLayer {
            blob: d('b'),
            media_type: media_type::OCI_LAYER_GZIP.into(),
            size: 3,
            chain_id: chain_id(parent.as_ref(), &diff),
            diff_id: diff,
            parent,
        }
    }

    #[test]
    fn same_cache_same_bytes_whatever_the_order() {
        let a = layer('1', None);
        let b = layer('2', Some(a.chain_id.clone()));
        let k = |c: char| d(c).to_string();
        let one = CacheConfig::new(
            vec![
                (k('a'), Some(a.clone())),
                (k('c'), None),
                (k('b'), Some(b.clone())),
            ],
            Vec::new(),
            Vec::new(),
        );
        let two = CacheConfig::new(
            vec![(k('b'), Some(b)), (k('a'), Some(a)), (k('c'), None)],
            Vec::new(),
            Vec::new(),
        );
        assert_eq!(one.to_vec(), two.to_vec());
        let back = CacheConfig::from_slice(&one.to_vec()).unwrap();
        assert_eq!(back, one);
        // Without mounts, no `mounts` key: the bytes a cache had before they existed.
        assert!(!String::from_utf8(one.to_vec()).unwrap().contains("mounts"));
        assert_eq!(back.records.len(), 3);
        assert!(back.records.iter().any(|r| r.layer.is_none()));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let good = CacheConfig::new(
            vec![(d('a').to_string(), Some(layer('1', None)))],
            Vec::new(),
            Vec::new(),
        );
        let v: Value = serde_json::from_slice(&good.to_vec()).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = v.clone();
            f(&mut v);
            CacheConfig::from_slice(&serde_json::to_vec(&v).unwrap())
        };
        assert!(with(&|_| {}).is_ok());
        assert_eq!(
            with(&|v| v["version"] = 2.into()),
            Err(FormatError::Version(2))
        );
        assert!(matches!(
            with(&|v| v["layers"][0]["parent"] = d('9').to_string().into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with(&|v| v["layers"][0]["mediaType"] = "application/json".into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with(&|v| v["records"][0]["layer"] = 5.into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with(&|v| v["records"][0]["key"] = "../x".into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with(&|v| v["layers"][0]["blob"] = "sha256:zz".into()),
            Err(FormatError::Json(_))
        ));
        let mount = CacheMountLayer {
            id: "go-build".into(),
            blob: d('c'),
            media_type: media_type::OCI_LAYER_GZIP.into(),
            size: 5,
            diff_id: d('e'),
        };
        let with_mount = good.clone().with_mounts(vec![mount.clone()]);
        let mv: Value = serde_json::from_slice(&with_mount.to_vec()).unwrap();
        let with_m = |f: &dyn Fn(&mut Value)| {
            let mut v = mv.clone();
            f(&mut v);
            CacheConfig::from_slice(&serde_json::to_vec(&v).unwrap())
        };
        assert_eq!(with_m(&|_| {}), Ok(with_mount.clone()));
        assert!(matches!(
            with_m(&|v| v["mounts"][0]["mediaType"] = "text/plain".into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with_m(&|v| v["mounts"][0]["id"] = "".into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with_m(&|v| v["mounts"][0]["id"] = "x".repeat(MAX_MOUNT_ID + 1).into()),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            with_m(&|v| {
                let m = v["mounts"][0].clone();
                v["mounts"].as_array_mut().unwrap().push(m);
            }),
            Err(FormatError::Inconsistent(_))
        ));
        assert!(matches!(
            CacheConfig::from_slice(b"{\"version\":1"),
            Err(FormatError::Json(_))
        ));
        assert_eq!(
            CacheConfig::from_slice(&vec![b' '; MAX_CONFIG as usize + 1]),
            Err(FormatError::TooLarge)
        );
    }
}
