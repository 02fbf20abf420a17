//! What `IMAGE` names (an image in the store, `docker-archive:FILE`, `oci-archive:FILE`,
//! `oci:DIR[:NAME]`) and reading it: its metadata, then every layer scanned, several at once.

use crate::archive::{Archive, Dir};
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
}

impl Input {
    /// Parses an `IMAGE` argument. Anything without one of the transport prefixes is an image
    /// in the store; a registry reference is refused (not supported yet).
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
        for t in ["docker://", "registry:", "docker-daemon:"] {
            if s.starts_with(t) {
                return Err(AnalyzeError::InvalidInput(format!(
                    "{s}: analysing from a registry or daemon is not supported yet; \
                     `whittle pull` it, then analyse the image from the store"
                )));
            }
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
    let (meta, locs) = locate(input, store, &opts.limits)?;
    let scans = scan_all(&meta, &locs, opts)?;
    Ok((meta, scans))
}

/// Finds an image: its metadata and where each layer's blob is.
pub fn locate(
    input: &Input,
    store: Option<&Store>,
    limits: &crate::Limits,
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

/// Scans every layer, `opts.threads` at a time.
fn scan_all(meta: &ImageMeta, locs: &[Loc], opts: &Options) -> Result<Vec<LayerScan>> {
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
        let r = locs[i].open()?;
        let s = scan_layer(r, &label, &opts.limits, &budget)?;
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
        assert!(Input::parse("docker://alpine").is_err());
    }
}
