//! `docker://REF` (or `registry:REF`): an image read from its registry with the
//! `whittle-registry` client and never stored. The manifest (from an index, this machine's
//! platform), the config and the `dev.whittle.layers` annotation are read first; each layer is
//! then streamed once from the registry while it is scanned, its size and digest checked as it
//! ends.

use crate::error::{AnalyzeError, Result};
use crate::image::{self, ImageMeta, LayerMeta, Loc};
use std::io::Read;
use std::sync::Arc;
use whittle_oci::{Descriptor, Manifest, Platform, Reference, LAYERS_ANNOTATION};
use whittle_registry::{Client, ClientOptions};

/// A layer blob on a registry.
pub struct RemoteBlob {
    client: Arc<Client>,
    repository: String,
    desc: Descriptor,
}

impl std::fmt::Debug for RemoteBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}@{}",
            self.client.registry(),
            self.repository,
            self.desc.digest
        )
    }
}

impl RemoteBlob {
    /// Starts the download.
    pub fn open(&self) -> Result<Box<dyn Read>> {
        Ok(Box::new(whittle_registry::open_blob(
            &self.client,
            &self.repository,
            &self.desc,
        )?))
    }
}

/// Reads a registry image's documents; its layers are [`Loc::Remote`]s.
pub fn resolve(
    reference: &str,
    client_opts: &ClientOptions,
    max_layers: usize,
) -> Result<(ImageMeta, Vec<Loc>)> {
    let r = Reference::parse(reference)
        .map_err(|e| AnalyzeError::InvalidInput(format!("{reference}: {e}")))?;
    let client = Arc::new(Client::connect(&r.registry, client_opts)?);
    let img = whittle_registry::read_image(&client, &r, &Platform::host())?;
    if img.layers.len() > max_layers {
        return Err(AnalyzeError::Limit {
            what: "layers".into(),
            limit: max_layers as u64,
        });
    }
    let config: serde_json::Value =
        serde_json::from_slice(&img.config).map_err(|e| AnalyzeError::json("config", e))?;
    let manifest: Manifest =
        serde_json::from_slice(&img.manifest).map_err(|e| AnalyzeError::json("manifest", e))?;
    let mut layers = Vec::new();
    let mut locs = Vec::new();
    for d in &img.layers {
        layers.push(LayerMeta {
            id: d.digest.hex().to_string(),
            digest: Some(d.digest.to_string()),
            media_type: Some(d.media_type.clone()),
            blob_size: Some(d.size),
            ..LayerMeta::default()
        });
        locs.push(Loc::Remote(Arc::new(RemoteBlob {
            client: client.clone(),
            repository: r.repository.clone(),
            desc: d.clone(),
        })));
    }
    let meta = image::fill_config(
        ImageMeta {
            name: format!("docker://{reference}"),
            layers,
            config_digest: Some(img.config_descriptor.digest.to_string()),
            ..ImageMeta::default()
        },
        &config,
    );
    Ok((
        image::fill_origins(meta, manifest.annotations.get(LAYERS_ANNOTATION)),
        locs,
    ))
}
