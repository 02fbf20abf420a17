//! Exporting the target: its config made from the graph's config changes (on the config of the
//! image or stage it starts from), its layers tarred and compressed once (remembered by diff
//! id), the config and the manifest written into the store.
//!
//! The manifest gets the annotation [`LAYERS_ANNOTATION`]: for each layer, the Dockerfile, line
//! and stage that made it (`whittle analyze` shows them). It goes on the manifest, not into the
//! config or its history, which stay byte for byte what BuildKit writes.

use super::*;
use crate::record::BlobRecord;
use whittle_graph::{ConfigBase, ConfigChange};
use whittle_oci::{Field, ImageConfig, LayerOrigin, RootFs, LAYERS_ANNOTATION};

impl Solver<'_> {
    /// The config (history included) of the graph's image `i`.
    fn image_config(&self, i: usize, done: &HashMap<VertexId, Arc<Output>>) -> Result<ImageConfig> {
        let img = self
            .graph
            .images
            .get(i)
            .ok_or_else(|| BuildError::Graph(format!("there is no image {i}")))?;
        let mut cfg = match img.base {
            ConfigBase::Scratch => crate::config::scratch(&img.platform),
            ConfigBase::Image { vertex } => done
                .get(&vertex)
                .and_then(|o| o.config.clone())
                .ok_or_else(|| {
                    BuildError::Graph(format!(
                        "the base image {vertex} of {} is missing",
                        img.label
                    ))
                })?,
            ConfigBase::Stage { image } if image < i => self.image_config(image, done)?,
            ConfigBase::Stage { image } => {
                return Err(BuildError::Graph(format!(
                    "image {i} is based on image {image}, which does not come before it"
                )))
            }
        };
        for change in &img.changes {
            match change {
                ConfigChange::History { created_by, layer } => {
                    let added = layer.and_then(|v| done.get(&v)).is_some_and(|o| o.added);
                    crate::config::push_history(&mut cfg, &self.created(), created_by, !added);
                }
                other => crate::config::apply(&mut cfg, other),
            }
        }
        Ok(cfg)
    }

    /// Writes a target as an image into the store.
    pub(super) fn export(
        &self,
        t: &whittle_graph::Target,
        done: &HashMap<VertexId, Arc<Output>>,
    ) -> Result<ImageRecord> {
        let target = self
            .graph
            .images
            .get(t.image)
            .ok_or_else(|| BuildError::Graph(format!("there is no image {}", t.image)))?;
        let root = done
            .get(&target.root)
            .ok_or_else(|| BuildError::Graph("the target produced nothing".into()))?;
        self.progress.event(Event::Note {
            message: "exporting layers".into(),
        });
        let mut descs = Vec::new();
        let mut diff_ids: Vec<Digest> = Vec::new();
        let mut annotations = self.opts.annotations.clone();
        for (p, k, v) in &self.opts.platform_annotations {
            if *p == t.platform {
                annotations.insert(k.clone(), v.clone());
            }
        }
        if let Some(v) = self.layers_annotation(&root.layers) {
            // A user's `--annotation` of the same name wins.
            annotations
                .entry(LAYERS_ANNOTATION.to_string())
                .or_insert(v);
        }
        for l in &root.layers {
            if let Some((d, media, size)) = &l.blob {
                descs.push((d.clone(), media.clone(), *size));
                diff_ids.push(l.diff_id.clone());
                continue;
            }
            let (digest, media_type, size, diff_id) =
                self.compressed_blob(l, self.opts.compression)?;
            descs.push((digest, media_type, size));
            diff_ids.push(diff_id);
        }
        // `--cache-to type=inline`: the cache config, made of these very blobs, on the manifest.
        let blobs: std::collections::HashSet<&Digest> = descs.iter().map(|(d, _, _)| d).collect();
        if let Some(v) = self.inline_cache(done, &blobs)? {
            annotations.insert(
                whittle_remote_cache::format::INLINE_ANNOTATION.to_string(),
                v,
            );
        }
        let mut cfg = self.image_config(t.image, done)?;
        cfg.rootfs = Field::Set(RootFs {
            kind: Field::Set("layers".into()),
            diff_ids: Field::Set(diff_ids),
            ..RootFs::default()
        });
        cfg.created = Field::Set(self.created());
        let p = &t.platform;
        cfg.architecture = Field::Set(p.arch.clone());
        cfg.os = Field::Set(p.os.clone());
        cfg.variant = p.variant.clone().into();
        if !self.opts.labels.is_empty() {
            crate::config::apply(
                &mut cfg,
                &ConfigChange::Labels {
                    labels: self.opts.labels.clone(),
                },
            );
        }
        // Sorted keys, compact: the bytes whittle has always written for a config.
        let bytes = cfg.to_json()?;
        Ok(self
            .store
            .write_image_annotated(&bytes, &descs, &annotations)?)
    }

    /// A built layer's blob: compressed once per diff id, compression and epoch, remembered
    /// in a cache record, so that the image, its pushes and the exported build cache share
    /// one blob. Returns its digest, media type, size and diff id.
    pub(super) fn compressed_blob(
        &self,
        l: &Layer,
        compression: whittle_layer::Compression,
    ) -> Result<(Digest, String, u64, Digest)> {
        let known = self
            .store
            .get_cache(&self.blob_key(&l.diff_id, compression))?
            .and_then(|rec| crate::record::decode::<BlobRecord>(&rec.result))
            .filter(|b| self.store.has_blob(&b.digest));
        if let Some(b) = known {
            return Ok((
                b.digest,
                compression.media_type().to_string(),
                b.size,
                b.diff,
            ));
        }
        let (info, b) = self.write_blob(&l.dir, compression)?;
        let (digest, size) = (b.digest.clone(), b.size);
        self.remember_blob(&info.diff_id, compression, b)?;
        Ok((digest, info.media_type.to_string(), size, info.diff_id))
    }

    /// The cache key of a layer's blob for a compression and its level (the epoch clamps its
    /// mtimes). With the media type alone, a `--compression-level` other than the one a
    /// layer was first compressed at got the old blob.
    fn blob_key(&self, diff_id: &Digest, compression: whittle_layer::Compression) -> String {
        format!("blob:{diff_id}:{compression:?}:{}", self.opts.epoch)
    }

    /// Tars and compresses a snapshot directory into a new blob of the store.
    pub(super) fn write_blob(
        &self,
        dir: &Path,
        compression: whittle_layer::Compression,
    ) -> Result<(whittle_layer::LayerInfo, BlobRecord)> {
        self.write_blob_reusing(dir, compression, None)
            .map(|(info, rec, _)| (info, rec))
    }

    /// [`Solver::write_blob`], taking the unchanged gzip blocks of the layer of the snapshot
    /// `hint` names (whittle_layer's `blocks` module); gives the new blob's block index.
    pub(super) fn write_blob_reusing(
        &self,
        dir: &Path,
        compression: whittle_layer::Compression,
        hint: Option<&super::LayerHint>,
    ) -> Result<(
        whittle_layer::LayerInfo,
        BlobRecord,
        Option<whittle_layer::BlockIndex>,
    )> {
        // The layer writer hashes the blob as it writes it: the store does not again.
        let w = self.store.produced_blob_writer()?;
        let opts = WriteOptions {
            compression,
            threads: self.opts.threads(),
            epoch: self.opts.epoch,
            source: SourceKind::OverlayUpper,
            exclude: Vec::new(),
        };
        let previous = match (hint, compression) {
            (Some(h), whittle_layer::Compression::Gzip { level }) => self
                .store
                .layer_blocks(&h.previous, level)
                .map(|(index, blob)| (index, blob, h)),
            _ => None,
        };
        let unchanged = |path: &[u8], dev: u64, ino: u64| {
            let Some((_, _, h)) = &previous else {
                return false;
            };
            std::str::from_utf8(path)
                .ok()
                .and_then(|p| h.linked.get(p))
                .is_some_and(|&inode| inode == (dev, ino))
        };
        let prev = previous.as_ref().and_then(|(index, blob, _)| {
            Some(whittle_layer::Previous {
                index,
                blob: blob.try_clone().ok()?,
                unchanged: &unchanged,
            })
        });
        let (info, index, w) =
            whittle_layer::write_layer_reusing(dir, &opts, w, prev).map_err(|source| {
                BuildError::Layer {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
        let (digest, size) = w.commit_as(&info.digest, info.size)?;
        let rec = BlobRecord {
            digest,
            size,
            diff: info.diff_id.clone(),
        };
        Ok((info, rec, index))
    }

    /// Records which blob holds a layer compressed this way (see [`Solver::compressed_blob`]).
    pub(super) fn remember_blob(
        &self,
        diff_id: &Digest,
        compression: whittle_layer::Compression,
        blob: BlobRecord,
    ) -> Result<()> {
        self.store.put_cache(
            &self.blob_key(diff_id, compression),
            &crate::record::encode(&blob),
            None,
        )?;
        Ok(())
    }

    /// The value of [`LAYERS_ANNOTATION`] for these layers (`None` when no step made one).
    fn layers_annotation(&self, layers: &[Layer]) -> Option<String> {
        let file = self.dockerfile_label();
        let list: Vec<Option<LayerOrigin>> = layers
            .iter()
            .map(|l| {
                l.made_by.as_ref().map(|(stage, line)| LayerOrigin {
                    file: file.clone(),
                    line: *line,
                    stage: stage.clone(),
                })
            })
            .collect();
        whittle_oci::layer_origins_json(&list)
    }

    fn dockerfile_label(&self) -> String {
        dockerfile_label(self.opts)
    }
}

/// The Dockerfile as the image's annotation and provenance name it: its path inside the
/// context when it is there, else its file name (a path outside the context would put the
/// builder's directories into the image and change its digest from one checkout to the next).
pub fn dockerfile_label(opts: &BuildOptions) -> String {
    let p = std::path::Path::new(&opts.dockerfile);
    if let Ok(rel) = p.strip_prefix(&opts.context) {
        if !rel.as_os_str().is_empty() {
            return rel.to_string_lossy().into_owned();
        }
    }
    if p.is_absolute() || p.starts_with("..") {
        if let Some(name) = p.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    opts.dockerfile.clone()
}
