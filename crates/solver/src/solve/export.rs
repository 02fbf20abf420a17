//! Exporting the target stage: layers tarred and compressed once (remembered by diff id), the
//! config and the manifest written into the store.

use super::*;

impl Solver<'_> {
    /// Writes the target stage as an image into the store.
    pub(super) fn export(&self, state: &StageState) -> Result<ImageRecord> {
        self.progress.event(Event::Note {
            message: "exporting layers".into(),
        });
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for l in &state.layers {
            if let Some((d, media, size)) = &l.blob {
                descs.push((d.clone(), media.clone(), *size));
                diff_ids.push(l.diff_id.to_string());
                continue;
            }
            let ckey = format!(
                "blob:{}:{}:{}",
                l.diff_id,
                self.opts.compression.media_type(),
                self.opts.epoch
            );
            if let Some(rec) = self.store.get_cache(&ckey)? {
                let mut it = rec.result.split(' ');
                if let (Some(d), Some(sz), Some(diff)) = (it.next(), it.next(), it.next()) {
                    if let (Ok(d), Ok(sz)) = (d.parse::<Digest>(), sz.parse::<u64>()) {
                        if self.store.has_blob(&d) {
                            descs.push((d, self.opts.compression.media_type().to_string(), sz));
                            diff_ids.push(diff.to_string());
                            continue;
                        }
                    }
                }
            }
            let w = self.store.blob_writer(None)?;
            let opts = WriteOptions {
                compression: self.opts.compression,
                threads: self.opts.jobs,
                epoch: self.opts.epoch,
                source: SourceKind::OverlayUpper,
                exclude: Vec::new(),
            };
            let (info, w) = whittle_layer::write_layer(&l.dir, &opts, w)
                .map_err(|e| BuildError::Other(format!("cannot write layer: {e}")))?;
            let (digest, size) = w.commit()?;
            self.store
                .put_cache(&ckey, &format!("{digest} {size} {}", info.diff_id), None)?;
            descs.push((digest, info.media_type.to_string(), size));
            diff_ids.push(info.diff_id.to_string());
        }
        let mut cfg = state.config.clone();
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        cfg["created"] = json!(self.created());
        let p = &self.plan.target_platform;
        cfg["architecture"] = json!(p.arch);
        cfg["os"] = json!(p.os);
        if !self.opts.labels.is_empty() {
            let mut inherited = false;
            config::apply(
                &mut cfg,
                &Op::Label {
                    labels: self.opts.labels.clone(),
                },
                &mut inherited,
            );
        }
        let bytes = serde_json::to_vec(&cfg)
            .map_err(|e| BuildError::Other(format!("cannot encode the image config: {e}")))?;
        Ok(self
            .store
            .write_image_annotated(&bytes, &descs, &self.opts.annotations)?)
    }
}
