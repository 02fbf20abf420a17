//! Images as snapshots: the extracted layer directories that containers and builds mount.

use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::store::Store;
use std::path::PathBuf;
use whittle_oci::{media_type, Digest, ImageConfig};

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
    /// The snapshot `dir` is: the chain id, or for a layer built here whose snapshot keeps the
    /// build's mtimes, the id of its extraction (what ships).
    pub snapshot: Digest,
    /// The snapshot directory.
    pub dir: PathBuf,
}

impl Store {
    /// Makes every layer of `img` an extracted snapshot (overlay whiteouts, so the directories
    /// serve as overlayfs lower dirs), extracting those not extracted yet and checking each
    /// against its diff id. Returns the parsed config and the layers, bottom first.
    ///
    /// Layers in overlay format are independent directories, so missing ones are extracted in
    /// parallel (one worker per core): decompression is single-threaded per layer, and a base
    /// image's big layers are what a cold build waits for. `on_extract(n, total, blob)` is
    /// called as each extraction starts (for progress), from the worker threads.
    pub fn unpack_image(
        &self,
        img: &ImageRecord,
        on_extract: &(dyn Fn(usize, usize, &Digest) + Sync),
    ) -> Result<(ImageConfig, Vec<UnpackedLayer>)> {
        let manifest = self.manifest(img)?;
        let cfg = self.image_config(img)?;
        let diff_ids = cfg.diff_ids();
        if diff_ids.len() != img.layers.len() {
            return Err(StoreError::InvalidImage(format!(
                "image {} has {} layers but {} diff ids in its config",
                img.manifest,
                img.layers.len(),
                diff_ids.len()
            )));
        }
        let total = img.layers.len();
        let mut out = Vec::with_capacity(total);
        let mut missing = Vec::new();
        let mut parent: Option<Digest> = None;
        for (n, (blob, diff)) in img.layers.iter().zip(diff_ids).enumerate() {
            let chain = whittle_oci::chain_id(parent.as_ref(), diff);
            // A build's snapshot keeps the build's mtimes; the image is what its layer holds,
            // so such a layer is used from its own extraction, under a derived id.
            let snap = match self.snapshot(&chain)? {
                Some(rec) if rec.local_mtimes => shipped_id(&chain),
                _ => chain.clone(),
            };
            let dir = self.snapshot_path(&snap);
            if !dir.is_dir() || !self.has_snapshot(&snap)? {
                missing.push((n, parent.clone(), snap.clone()));
            }
            out.push(UnpackedLayer {
                blob: blob.clone(),
                media_type: manifest
                    .layers
                    .get(n)
                    .map_or(media_type::OCI_LAYER_GZIP, |l| l.media_type.as_str())
                    .to_string(),
                size: manifest.layers.get(n).map_or(0, |l| l.size),
                diff_id: diff.clone(),
                chain_id: chain.clone(),
                snapshot: snap,
                dir,
            });
            parent = Some(chain);
        }
        if missing.is_empty() {
            return Ok((cfg, out));
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        whittle_par::try_for_each(&missing, workers, |(n, parent, snap)| {
            let layer = &out[*n];
            on_extract(*n, total, &layer.blob);
            // A derived snapshot has no parent: nothing is stacked on it by chain id.
            let parent = if *snap == layer.chain_id {
                parent.as_ref()
            } else {
                None
            };
            self.extract_snapshot(layer, snap, parent)
        })?;
        Ok((cfg, out))
    }

    /// Extracts one layer blob into a new snapshot and commits it under its chain id, after
    /// checking the tar's digest against the diff id the config promises.
    fn extract_snapshot(
        &self,
        layer: &UnpackedLayer,
        snapshot: &Digest,
        parent: Option<&Digest>,
    ) -> Result<()> {
        self.extract_layer_snapshot(&layer.blob, &layer.diff_id, snapshot, parent)
    }

    /// Extracts the layer blob `blob` (in the store) into a new snapshot (overlay whiteouts)
    /// and commits it as `snapshot` on `parent`, after checking that the tar hashes to
    /// `diff_id`: a blob that does not is refused ([`StoreError::InvalidImage`]) and leaves
    /// nothing behind. For layers known by a record rather than an image (an imported build
    /// cache).
    pub fn extract_layer_snapshot(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        snapshot: &Digest,
        parent: Option<&Digest>,
    ) -> Result<()> {
        let layer = UnpackedLayer {
            blob: blob.clone(),
            media_type: String::new(),
            size: 0,
            diff_id: diff_id.clone(),
            chain_id: snapshot.clone(),
            snapshot: snapshot.clone(),
            dir: self.snapshot_path(snapshot),
        };
        let layer = &layer;
        let sd = self.prepare_snapshot()?;
        let f = self.open_blob(&layer.blob)?;
        let opts = whittle_layer::ExtractOptions {
            whiteouts: whittle_layer::WhiteoutMode::Overlay,
            ..whittle_layer::ExtractOptions::default()
        };
        let sum = whittle_layer::extract_layer(
            std::io::BufReader::with_capacity(256 * 1024, f),
            sd.path(),
            &opts,
        )
        .map_err(|e| StoreError::InvalidImage(format!("layer {}: {e}", layer.blob)))?;
        if sum.diff_id != layer.diff_id {
            return Err(StoreError::InvalidImage(format!(
                "layer {} has diff id {} but the image config says {}",
                layer.blob, sum.diff_id, layer.diff_id
            )));
        }
        sd.commit(snapshot, parent, &layer.diff_id)?;
        Ok(())
    }
}

/// The id of the extraction of a layer whose build snapshot (`chain`) keeps the build's mtimes.
fn shipped_id(chain: &Digest) -> Digest {
    Digest::of_bytes(format!("whittle shipped snapshot\0{chain}").as_bytes())
}
