//! An image's documents: which manifest an index or archive names, its layer descriptors, and
//! the config's `rootfs.diff_ids` and `history`, matched to layers the way dive matches them.

use crate::error::{AnalyzeError, Result};
use serde::Deserialize;
use std::io::Read;
use std::path::PathBuf;
use whittle_oci::{Descriptor, Digest, Index, LayerOrigin, Manifest, LAYERS_ANNOTATION};

/// Largest manifest, index or config read (as the store's limit).
pub const MAX_DOCUMENT: u64 = 8 << 20;

const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

/// Where a layer's blob is.
#[derive(Clone, Debug)]
pub enum Loc {
    /// A whole file.
    File(PathBuf),
    /// A byte range of a file (a member of an uncompressed archive).
    Slice {
        /// The archive.
        file: PathBuf,
        /// Offset of the member's data.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A blob on a registry, downloaded as it is read.
    Remote(std::sync::Arc<crate::remote::RemoteBlob>),
}

impl Loc {
    /// Opens the blob for streaming.
    pub fn open(&self) -> Result<Box<dyn Read>> {
        use std::io::{Seek, SeekFrom};
        match self {
            Loc::File(p) => Ok(Box::new(
                std::fs::File::open(p).map_err(|e| AnalyzeError::io("open", p, e))?,
            )),
            Loc::Slice { file, offset, len } => {
                let mut f =
                    std::fs::File::open(file).map_err(|e| AnalyzeError::io("open", file, e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| AnalyzeError::io("seek", file, e))?;
                Ok(Box::new(f.take(*len)))
            }
            Loc::Remote(b) => b.open(),
        }
    }
}

/// One layer's metadata.
#[derive(Clone, Debug, Default)]
pub struct LayerMeta {
    /// dive's `id`: the blob's hex digest, or the archive member's directory.
    pub id: String,
    /// Blob digest, when the layout names one.
    pub digest: Option<String>,
    /// Media type of the blob.
    pub media_type: Option<String>,
    /// Size of the blob (compressed as stored).
    pub blob_size: Option<u64>,
    /// `rootfs.diff_ids` entry.
    pub diff_id: Option<String>,
    /// `created_by` of the history entry matched to this layer.
    pub created_by: Option<String>,
    /// The Dockerfile step that made it, from whittle's `dev.whittle.layers` annotation.
    pub origin: Option<LayerOrigin>,
}

/// What the analysis needs to know about an image besides its layers' content.
#[derive(Clone, Debug, Default)]
pub struct ImageMeta {
    /// How the image was named.
    pub name: String,
    /// Its layers, bottom first.
    pub layers: Vec<LayerMeta>,
    /// The config's `created` (RFC 3339), when it has one.
    pub created: Option<String>,
    /// Digest of the config blob (the image id), `sha256:<hex>`.
    pub config_digest: Option<String>,
}

/// A source of an image layout's documents and blobs: an OCI directory or an archive.
pub trait Source {
    /// A document by its path in the layout (`index.json`, `blobs/sha256/...`), at most
    /// [`MAX_DOCUMENT`] bytes; `None` when there is no such file.
    fn doc(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Where a blob is, by its path in the layout; with its size.
    fn blob(&self, path: &str) -> Result<(Loc, u64)>;
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `blobs/sha256/<hex>` for a digest, which is checked first (so the path stays in the layout).
pub fn blob_path(digest: &str) -> Result<String> {
    let d: Digest = digest
        .parse()
        .map_err(|_| AnalyzeError::InvalidImage(format!("bad digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{}", d.hex()))
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| AnalyzeError::json(what, e))
}

fn need(src: &dyn Source, path: &str) -> Result<Vec<u8>> {
    src.doc(path)?
        .ok_or_else(|| AnalyzeError::InvalidImage(format!("{path} is missing")))
}

/// The OCI architecture name of this machine.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn names(d: &Descriptor) -> Vec<&str> {
    [ANN_IMAGE_NAME, ANN_REF_NAME]
        .iter()
        .filter_map(|k| d.annotations.get(*k).map(String::as_str))
        .collect()
}

/// Resolves the image a layout holds: `reference` picks one of several by its ref name (full
/// `name:tag` or just the tag). Returns the image's metadata and where each layer is.
pub fn resolve(
    src: &dyn Source,
    reference: Option<&str>,
    name: String,
    max_layers: usize,
) -> Result<(ImageMeta, Vec<Loc>)> {
    if let Some(idx) = src.doc("index.json")? {
        let index: Index = parse(&idx, "index.json")?;
        let chosen: Vec<&Descriptor> = match reference {
            Some(r) => index
                .manifests
                .iter()
                .filter(|d| {
                    names(d)
                        .iter()
                        .any(|n| *n == r || n.rsplit_once(':').is_some_and(|(_, t)| t == r))
                })
                .collect(),
            None => index.manifests.iter().collect(),
        };
        let desc = match chosen.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(AnalyzeError::InvalidImage(match reference {
                    Some(r) => format!("no image named {r:?} in index.json"),
                    None => "index.json lists no image".into(),
                }))
            }
            many => {
                let all: Vec<String> = many
                    .iter()
                    .map(|d| {
                        names(d)
                            .first()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| d.digest.to_string())
                    })
                    .collect();
                return Err(AnalyzeError::InvalidImage(format!(
                    "the layout holds {} images ({}); name one as oci:DIR:NAME",
                    many.len(),
                    all.join(", ")
                )));
            }
        };
        let m = manifest_of(src, &desc, 0)?;
        return from_manifest(src, &m, name, max_layers);
    }
    let Some(list) = src.doc("manifest.json")? else {
        return Err(AnalyzeError::InvalidImage(
            "neither index.json nor manifest.json: not an image layout or archive".into(),
        ));
    };
    let entries: Vec<DockerEntry> = parse(&list, "manifest.json")?;
    let chosen: Vec<&DockerEntry> = match reference {
        Some(r) => entries
            .iter()
            .filter(|e| e.repo_tags.iter().flatten().any(|t| t == r))
            .collect(),
        None => entries.iter().collect(),
    };
    let e = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(AnalyzeError::InvalidImage(
                "manifest.json names no such image".into(),
            ))
        }
        many => {
            return Err(AnalyzeError::InvalidImage(format!(
                "the archive holds {} images; analyse one at a time",
                many.len()
            )))
        }
    };
    if e.layers.len() > max_layers {
        return Err(AnalyzeError::Limit {
            what: "layers".into(),
            limit: max_layers as u64,
        });
    }
    let config_bytes = need(src, &e.config)?;
    let config: serde_json::Value = parse(&config_bytes, &e.config)?;
    let mut layers = Vec::new();
    let mut locs = Vec::new();
    for l in &e.layers {
        let (loc, size) = src.blob(l)?;
        let id = l.split('/').next().unwrap_or(l).to_string();
        // Docker 25+ names layers by blob path: show the digest then.
        let digest = l
            .strip_prefix("blobs/sha256/")
            .map(|h| format!("sha256:{h}"));
        layers.push(LayerMeta {
            id: l
                .strip_prefix("blobs/sha256/")
                .map(str::to_string)
                .unwrap_or(id),
            digest,
            media_type: None,
            blob_size: Some(size),
            ..LayerMeta::default()
        });
        locs.push(loc);
    }
    let name = match (&e.repo_tags, reference) {
        (_, Some(r)) => format!("{name} ({r})"),
        (Some(t), None) if !t.is_empty() => format!("{name} ({})", t[0]),
        _ => name,
    };
    let meta = ImageMeta {
        name,
        layers,
        config_digest: Some(sha256_of(&config_bytes)),
        ..ImageMeta::default()
    };
    Ok((fill_config(meta, &config), locs))
}

/// `sha256:<hex>` of some bytes.
fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The image manifest a descriptor leads to (through nested indexes: this machine's platform,
/// else the first).
fn manifest_of(src: &dyn Source, desc: &Descriptor, depth: usize) -> Result<Manifest> {
    if depth > 4 {
        return Err(AnalyzeError::InvalidImage("indexes nested too deep".into()));
    }
    let bytes = need(src, &blob_path(desc.digest.as_str())?)?;
    let m: serde_json::Value = parse(&bytes, &format!("manifest {}", desc.digest))?;
    let is_index =
        whittle_oci::media_type::is_index(&desc.media_type) || m.get("manifests").is_some();
    if is_index {
        let idx: Index = parse(&bytes, &format!("index {}", desc.digest))?;
        let pick = idx
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
            .or_else(|| idx.manifests.first())
            .ok_or_else(|| AnalyzeError::InvalidImage(format!("index {} is empty", desc.digest)))?;
        return manifest_of(src, pick, depth + 1);
    }
    let m: Manifest = parse(&bytes, &format!("manifest {}", desc.digest))?;
    if m.extra.contains_key("manifests") {
        return Err(AnalyzeError::InvalidImage(
            "an index where a manifest was expected".into(),
        ));
    }
    Ok(m)
}

fn from_manifest(
    src: &dyn Source,
    m: &Manifest,
    name: String,
    max_layers: usize,
) -> Result<(ImageMeta, Vec<Loc>)> {
    if m.layers.len() > max_layers {
        return Err(AnalyzeError::Limit {
            what: "layers".into(),
            limit: max_layers as u64,
        });
    }
    let config: serde_json::Value =
        parse(&need(src, &blob_path(m.config.digest.as_str())?)?, "config")?;
    let mut layers = Vec::new();
    let mut locs = Vec::new();
    for l in &m.layers {
        let (loc, size) = src.blob(&blob_path(l.digest.as_str())?)?;
        layers.push(LayerMeta {
            id: l.digest.hex().to_string(),
            digest: Some(l.digest.to_string()),
            media_type: Some(l.media_type.clone()),
            blob_size: Some(if l.size > 0 { l.size } else { size }),
            ..LayerMeta::default()
        });
        locs.push(loc);
    }
    let meta = fill_config(
        ImageMeta {
            name,
            layers,
            config_digest: Some(m.config.digest.to_string()),
            ..ImageMeta::default()
        },
        &config,
    );
    Ok((
        fill_origins(meta, m.annotations.get(LAYERS_ANNOTATION)),
        locs,
    ))
}

/// Adds to the layers the Dockerfile steps that made them, from the value of the manifest's
/// [`LAYERS_ANNOTATION`] (ignored unless it is a list with one entry per layer).
pub fn fill_origins(mut meta: ImageMeta, annotation: Option<&String>) -> ImageMeta {
    let Some(list) =
        annotation.and_then(|v| whittle_oci::parse_layer_origins(v, meta.layers.len()))
    else {
        return meta;
    };
    for (l, o) in meta.layers.iter_mut().zip(list) {
        l.origin = o;
    }
    meta
}

/// Adds diff ids and history to the layers from an image config.
pub fn fill_config(mut meta: ImageMeta, config: &serde_json::Value) -> ImageMeta {
    let diff_ids: Vec<Option<String>> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let history = layer_history(config, meta.layers.len());
    for (i, l) in meta.layers.iter_mut().enumerate() {
        l.diff_id = diff_ids.get(i).cloned().flatten();
        l.created_by = history.get(i).cloned().flatten();
    }
    meta.created = config
        .get("created")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    meta
}

/// The `created_by` of each layer, as dive matches them: history entries in order, skipping
/// those marked `empty_layer`; a layer with no entry left gets none.
pub fn layer_history(config: &serde_json::Value, layers: usize) -> Vec<Option<String>> {
    let hist = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let mut it = hist.iter().filter(|h| {
        !h.get("empty_layer")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    });
    (0..layers)
        .map(|_| {
            it.next().and_then(|h| {
                h.get("created_by")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_skips_empty_layers() {
        let cfg = serde_json::json!({"history": [
            {"created_by": "ADD rootfs"},
            {"created_by": "ENV A=1", "empty_layer": true},
            {"created_by": "RUN make"}
        ]});
        assert_eq!(
            layer_history(&cfg, 3),
            [Some("ADD rootfs".into()), Some("RUN make".into()), None]
        );
    }

    #[test]
    fn blob_paths_stay_in_the_layout() {
        assert!(blob_path("sha256:../../etc/passwd").is_err());
        let h = "a".repeat(64);
        assert_eq!(
            blob_path(&format!("sha256:{h}")).unwrap(),
            format!("blobs/sha256/{h}")
        );
    }
}
