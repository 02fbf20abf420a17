//! Layers leave the machine compressed. A base image loaded from a `docker save` archive keeps
//! its layers uncompressed in the store (that is how docker wrote them, and their digests are
//! the image's); pushed or written into an OCI archive as they are, they would cost three times
//! the bytes BuildKit sends. [`Store::with_compressed_layers`] gives the same image with every
//! uncompressed layer compressed, deterministically (the parallel gzip's output does not depend
//! on the thread count), once: the compressed blob is remembered by the uncompressed blob's
//! digest and the compression, so a second push compresses nothing. Layers that are already
//! compressed are kept as they are, as BuildKit keeps them without `force-compression`.

use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::io::{self, BufReader};
use whittle_layer::compress::CompressWriter;
use whittle_layer::Compression;
use whittle_oci::{media_type, Descriptor, Digest};

/// What a compressed copy of a layer blob is (a cache record's value).
#[derive(Serialize, Deserialize)]
struct CompressedBlob {
    digest: Digest,
    size: u64,
}

impl Store {
    /// `img` with its uncompressed layers compressed with `compression` (see the module docs);
    /// `img` itself when there are none, or when `compression` is [`Compression::None`]. The
    /// result is a stored (untagged) image: its manifest names the compressed blobs, with the
    /// config, the other layers and the annotations unchanged.
    pub fn with_compressed_layers(
        &self,
        img: &ImageRecord,
        compression: Compression,
        threads: usize,
    ) -> Result<ImageRecord> {
        let _lease = self.lease()?;
        let mut manifest = self.manifest(img)?;
        if compression == Compression::None
            || !manifest
                .layers
                .iter()
                .any(|l| media_type::is_uncompressed_layer(&l.media_type))
        {
            return Ok(img.clone());
        }
        let docker = manifest.media_type.as_deref() == Some(media_type::DOCKER_MANIFEST);
        let layer_type = match (docker, compression) {
            (true, Compression::Gzip { .. }) => media_type::DOCKER_LAYER_GZIP,
            (true, _) => {
                return Err(StoreError::Unsupported(format!(
                    "image {}: a Docker manifest's layers can only be gzip-compressed; use \
                     --compression gzip",
                    img.manifest
                )))
            }
            (false, c) => c.media_type(),
        };
        for layer in &mut manifest.layers {
            if !media_type::is_uncompressed_layer(&layer.media_type) {
                continue;
            }
            let blob = self.compressed_blob(&layer.digest, compression, threads)?;
            let mut d = Descriptor::new(layer_type, blob.digest, blob.size);
            d.annotations = std::mem::take(&mut layer.annotations);
            d.urls = std::mem::take(&mut layer.urls);
            *layer = d;
        }
        let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
        let digest = self.put_bytes(&bytes)?;
        self.put_image(&digest)
    }

    /// The compressed copy of one uncompressed layer blob: remembered, or made now.
    fn compressed_blob(
        &self,
        blob: &Digest,
        compression: Compression,
        threads: usize,
    ) -> Result<CompressedBlob> {
        let key = format!("compressed:{blob}:{compression:?}");
        let known = self
            .get_cache(&key)?
            .and_then(|rec| serde_json::from_str::<CompressedBlob>(&rec.result).ok())
            .filter(|c| self.has_blob(&c.digest));
        if let Some(c) = known {
            return Ok(c);
        }
        let mut from = BufReader::with_capacity(1 << 20, self.open_blob(blob)?);
        let to = self.blob_writer(None)?;
        let mut w = CompressWriter::new(to, compression, threads.max(1))
            .map_err(|e| StoreError::io("compress", self.blob_path(blob), e))?;
        io::copy(&mut from, &mut w)
            .map_err(|e| StoreError::io("compress", self.blob_path(blob), e))?;
        let to = w
            .finish()
            .map_err(|e| StoreError::io("compress", self.blob_path(blob), e))?;
        let (digest, size) = to.commit()?;
        let c = CompressedBlob { digest, size };
        let json = serde_json::to_string(&c).map_err(|e| StoreError::json("cache record", e))?;
        self.put_cache(&key, &json, None)?;
        Ok(c)
    }
}
