//! What `IMAGE` names (an image in the store, `docker-archive:FILE`, `oci-archive:FILE`,
//! `oci:DIR[:NAME]`) and reading it: its metadata, then every layer scanned, several at once.

use crate::archive::{Archive, Dir};
use crate::cache::SummaryCache;
use crate::error::{AnalyzeError, Result};
use crate::image::{self, ImageMeta, LayerMeta, Loc};
use crate::scan::{scan_layer, LayerScan};
use crate::Options;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use whittle_store::Store;

/// An image to analyse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// An image in the store: `name[:tag]`, id or digest.
    Store(String),
    /// `docker-archive:FILE`: what `docker save` writes (classic or Docker 25+ layout).
    DockerArchive(PathBuf),
    /// `oci-archive:FILE`: an OCI image layout in a tar.
    OciArchive(PathBuf),
    /// `oci:DIR[:NAME]`: an OCI image layout directory (DIR without ':', as for skopeo); NAME
    /// picks one of several images by its `org.opencontainers.image.ref.name` (the full name or
    /// the tag).
    OciDir {
        /// The layout's root.
        dir: PathBuf,
        /// Which image.
        reference: Option<String>,
    },
    /// `docker://REF` or `registry:REF`: an image on a registry (for this machine's platform
    /// when REF names an index), read without being stored.
    Registry(String),
}

impl Input {
    /// Parses an `IMAGE` argument. Anything without one of the transport prefixes is an image
    /// in the store: a registry is only reached when asked for by `docker://` or `registry:`,
    /// never because a name is missing from the store.
    pub fn parse(s: &str) -> Result<Input> {
        let nonempty = |rest: &str, what: &str| -> Result<PathBuf> {
            if rest.is_empty() {
                Err(AnalyzeError::InvalidInput(format!(
                    "{what} needs a path: {what}PATH"
                )))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return Ok(Input::DockerArchive(nonempty(rest, "docker-archive:")?));
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            return Ok(Input::OciArchive(nonempty(rest, "oci-archive:")?));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            // oci:DIR[:NAME], split at the first ':' as skopeo does (DIR holds no ':').
            let (dir, reference) = match rest.split_once(':') {
                Some((d, r)) if !r.is_empty() => (d, Some(r.to_string())),
                _ => (rest, None),
            };
            return Ok(Input::OciDir {
                dir: nonempty(dir, "oci:")?,
                reference,
            });
        }
        for t in ["docker://", "registry:"] {
            if let Some(rest) = s.strip_prefix(t) {
                whittle_oci::Reference::parse(rest)
                    .map_err(|e| AnalyzeError::InvalidInput(format!("{s}: {e}")))?;
                return Ok(Input::Registry(rest.to_string()));
            }
        }
        if s.starts_with("docker-daemon:") {
            return Err(AnalyzeError::InvalidInput(format!(
                "{s}: analysing from a docker daemon is not supported; `docker save` it and \
                 analyse docker-archive:FILE"
            )));
        }
        Ok(Input::Store(s.to_string()))
    }
}

/// Reads an image: its metadata and every layer scanned.
pub fn load(
    input: &Input,
    store: Option<&Store>,
    opts: &Options,
) -> Result<(ImageMeta, Vec<LayerScan>)> {
    let (meta, locs) = locate_with(input, store, &opts.limits, &opts.registry)?;
    // Only a store's layers are cached: their blob digests were checked as they were stored.
    let cache = match (input, store) {
        (Input::Store(_), Some(s)) if opts.cache => Some(SummaryCache::in_store(s.root())),
        _ => None,
    };
    let scans = scan_all(&meta, &locs, opts, cache.as_ref())?;
    Ok((meta, scans))
}

/// Finds an image: its metadata and where each layer's blob is (registries reached with the
/// default client options).
pub fn locate(
    input: &Input,
    store: Option<&Store>,
    limits: &crate::Limits,
) -> Result<(ImageMeta, Vec<Loc>)> {
    locate_with(
        input,
        store,
        limits,
        &whittle_registry::ClientOptions::default(),
    )
}

/// [`locate`] with the client options for registries.
pub fn locate_with(
    input: &Input,
    store: Option<&Store>,
    limits: &crate::Limits,
    client: &whittle_registry::ClientOptions,
) -> Result<(ImageMeta, Vec<Loc>)> {
    let max_layers = limits.max_layers;
    let (meta, locs) = match input {
        Input::Store(name) => {
            let store = store.ok_or_else(|| AnalyzeError::NeedStore(name.clone()))?;
            from_store(store, name, max_layers)?
        }
        Input::DockerArchive(p) | Input::OciArchive(p) => {
            let a = Archive::open(p, limits.max_extension)?;
            let prefix = if matches!(input, Input::DockerArchive(_)) {
                "docker-archive:"
            } else {
                "oci-archive:"
            };
            image::resolve(&a, None, format!("{prefix}{}", p.display()), max_layers)?
        }
        Input::OciDir { dir, reference } => {
            let d = Dir { root: dir.clone() };
            let name = match reference {
                Some(r) => format!("oci:{}:{r}", dir.display()),
                None => format!("oci:{}", dir.display()),
            };
            image::resolve(&d, reference.as_deref(), name, max_layers)?
        }
        Input::Registry(r) => crate::remote::resolve(r, client, max_layers)?,
    };
    Ok((meta, locs))
}

fn from_store(store: &Store, name: &str, max_layers: usize) -> Result<(ImageMeta, Vec<Loc>)> {
    let t = store.resolve(name)?;
    if t.image.layers.len() > max_layers {
        return Err(AnalyzeError::Limit {
            what: "layers".into(),
            limit: max_layers as u64,
        });
    }
    let (manifest, config) = store.manifest_and_config(&t.image)?;
    let descs = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    let mut layers = Vec::new();
    let mut locs = Vec::new();
    for (i, d) in t.image.layers.iter().enumerate() {
        // Opening checks the blob is there (a typed error names it otherwise).
        drop(store.open_blob(d)?);
        let desc = descs.get(i);
        layers.push(LayerMeta {
            id: d.hex().to_string(),
            digest: Some(d.to_string()),
            media_type: desc
                .and_then(|x| x.get("mediaType"))
                .and_then(|x| x.as_str())
                .map(str::to_string),
            blob_size: Some(store.blob_size(d)?),
            ..LayerMeta::default()
        });
        locs.push(Loc::File(store.blob_path(d)));
    }
    let shown = t.tags.first().cloned().unwrap_or_else(|| name.to_string());
    let meta = image::fill_config(
        ImageMeta {
            name: shown,
            layers,
            config_digest: Some(t.image.config.to_string()),
            ..ImageMeta::default()
        },
        &config,
    );
    let origins = manifest
        .pointer("/annotations")
        .and_then(|a| a.get(whittle_oci::LAYERS_ANNOTATION))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok((image::fill_origins(meta, origins.as_ref()), locs))
}

/// Scans every layer, `opts.threads` at a time; with a cache, a layer summarised before (same
/// diff id, same blob) is read from it instead, and others are summarised into it.
fn scan_all(
    meta: &ImageMeta,
    locs: &[Loc],
    opts: &Options,
    cache: Option<&SummaryCache>,
) -> Result<Vec<LayerScan>> {
    let budget = AtomicU64::new(0);
    let slots: Vec<Mutex<Option<LayerScan>>> = locs.iter().map(|_| Mutex::new(None)).collect();
    let items: Vec<usize> = (0..locs.len()).collect();
    whittle_par::try_for_each(&items, opts.threads, |&i| -> Result<()> {
        let label = match meta.layers.get(i).and_then(|l| l.digest.as_ref()) {
            Some(d) => format!("{i} ({d})"),
            None => format!(
                "{i} ({})",
                meta.layers.get(i).map(|l| l.id.as_str()).unwrap_or("")
            ),
        };
        let lm = meta.layers.get(i);
        let key = match (cache, lm) {
            (Some(c), Some(l)) => match (l.diff_id.as_deref(), l.digest.as_deref()) {
                (Some(d), Some(b)) => Some((c, d, b)),
                _ => None,
            },
            _ => None,
        };
        if let Some(s) = key.and_then(|(c, d, b)| c.get(d, b)) {
            let n = s.tar_entries;
            if budget.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n
                > opts.limits.max_entries
            {
                return Err(AnalyzeError::Limit {
                    what: format!("layer {label}: tar entries in the image"),
                    limit: opts.limits.max_entries,
                });
            }
            *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            return Ok(());
        }
        let r = locs[i].open()?;
        let s = scan_layer(r, &label, &opts.limits, &budget, key.is_some())?;
        if let Some((c, d, b)) = key {
            c.put(d, b, &s);
        }
        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
        Ok(())
    })?;
    Ok(slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_arguments() {
        assert_eq!(Input::parse("app:1").unwrap(), Input::Store("app:1".into()));
        assert_eq!(
            Input::parse("docker-archive:/tmp/a.tar").unwrap(),
            Input::DockerArchive("/tmp/a.tar".into())
        );
        assert_eq!(
            Input::parse("oci-archive:a.tar").unwrap(),
            Input::OciArchive("a.tar".into())
        );
        assert_eq!(
            Input::parse("oci:/srv/layout:app:1").unwrap(),
            Input::OciDir {
                dir: "/srv/layout".into(),
                reference: Some("app:1".into())
            }
        );
        assert_eq!(
            Input::parse("oci:/srv/layout").unwrap(),
            Input::OciDir {
                dir: "/srv/layout".into(),
                reference: None
            }
        );
        assert!(Input::parse("docker-archive:").is_err());
        assert_eq!(
            Input::parse("docker://alpine").unwrap(),
            Input::Registry("alpine".into())
        );
        assert_eq!(
            Input::parse("registry:127.0.0.1:5000/app:1").unwrap(),
            Input::Registry("127.0.0.1:5000/app:1".into())
        );
        assert!(Input::parse("docker://").is_err());
        assert!(Input::parse("docker://UPPER/case").is_err());
        assert!(Input::parse("docker-daemon:app").is_err());
    }
}
