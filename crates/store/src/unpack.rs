//! Images as snapshots: the extracted layer directories that containers and builds mount.

use crate::error::{Result, StoreError};
use crate::store::{ImageRecord, Store};
use std::path::PathBuf;
use whittle_layer::Digest;

/// One layer of an image, extracted as a snapshot directory in overlayfs format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// The layer blob.
    pub blob: Digest,
    /// Its media type and size, from the manifest.
    pub media_type: String,
    pub size: u64,
    /// Digest of the uncompressed tar (the config's diff id).
    pub diff_id: Digest,
    /// Chain id: identifies this layer together with every layer below it.
    pub chain_id: Digest,
    /// The snapshot directory.
    pub dir: PathBuf,
}

impl Store {
    /// Makes every layer of `img` an extracted snapshot (overlay whiteouts, so the directories
    /// serve as overlayfs lower dirs), extracting those not extracted yet and checking each
    /// against its diff id. Returns the parsed config and the layers, bottom first.
    /// `on_extract(n, total, blob)` is called before each extraction (for progress).
    pub fn unpack_image(
        &self,
        img: &ImageRecord,
        on_extract: &mut dyn FnMut(usize, usize, &Digest),
    ) -> Result<(serde_json::Value, Vec<UnpackedLayer>)> {
        let (manifest, cfg) = self.manifest_and_config(img)?;
        let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if diff_ids.len() != img.layers.len() {
            return Err(StoreError::InvalidImage(format!(
                "image {} has {} layers but {} diff ids in its config",
                img.manifest,
                img.layers.len(),
                diff_ids.len()
            )));
        }
        let mut out = Vec::with_capacity(diff_ids.len());
        let mut parent: Option<Digest> = None;
        for (n, (blob, diff)) in img.layers.iter().zip(&diff_ids).enumerate() {
            let chain = whittle_layer::chain_id(parent.as_ref(), diff);
            let dir = self.snapshot_path(&chain);
            if !dir.is_dir() || !self.has_snapshot(&chain)? {
                on_extract(n, img.layers.len(), blob);
                let sd = self.prepare_snapshot()?;
                let f = self.open_blob(blob)?;
                let opts = whittle_layer::ExtractOptions {
                    whiteouts: whittle_layer::WhiteoutMode::Overlay,
                    ..whittle_layer::ExtractOptions::default()
                };
                let sum =
                    whittle_layer::extract_layer(std::io::BufReader::new(f), sd.path(), &opts)
                        .map_err(|e| StoreError::InvalidImage(format!("layer {blob}: {e}")))?;
                if &sum.diff_id != diff {
                    return Err(StoreError::InvalidImage(format!(
                        "layer {blob} has diff id {} but the image config says {diff}",
                        sum.diff_id
                    )));
                }
                sd.commit(&chain, parent.as_ref(), diff)?;
            }
            out.push(UnpackedLayer {
                blob: blob.clone(),
                media_type: manifest["layers"][n]["mediaType"]
                    .as_str()
                    .unwrap_or(whittle_layer::MEDIA_TYPE_LAYER_GZIP)
                    .to_string(),
                size: manifest["layers"][n]["size"].as_u64().unwrap_or(0),
                diff_id: diff.clone(),
                chain_id: chain.clone(),
                dir,
            });
            parent = Some(chain);
        }
        Ok((cfg, out))
    }
}
