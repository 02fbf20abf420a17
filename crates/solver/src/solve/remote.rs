//! Imported caches (`--cache-from`) in the lookup path, and the build's records exported
//! (`--cache-to`); the format and the transport are `whittle_remote_cache`'s.
//!
//! - A key the store's cache misses is looked up in each imported cache in order. A record
//!   whose layer was made on the filesystem below this step (its parent chain id is the chain
//!   id here) is a hit, reported as "CACHED from REF". Its layer is *lazy*: nothing is fetched.
//! - A lazy layer's blob is fetched and unpacked into a snapshot ([`Solver::ensure_files`])
//!   only when a step must read its files: a miss on top of it, a `COPY --from` whose
//!   selection the cache did not record, `--chown` names, an output of files. An image output
//!   fetches the blob alone (its diff id checked by reading it decompressed), unless the image
//!   only goes to the cache's registry: then the blob is recorded in the store as remote, and
//!   the push mounts it from the cache's repository.
//! - A blob that fails a check is refused in its cache and the build starts again
//!   ([`Solver::run_with_imports`]): what was built meanwhile is in the store's cache, and the
//!   steps that used the refused layer are built. A warning names the cache, layer and problem.
//! - An export collects, per needed vertex, its key and result (the layer it added, compressed
//!   once as the image export does, or nothing), the selections of `COPY --from` steps and
//!   what each step read (to explain a miss on another runner).

use super::*;
use std::collections::HashSet;
use whittle_remote_cache::format::INLINE_ANNOTATION;
use whittle_remote_cache::{
    CacheConfig, CacheLayer, CacheTo, CacheToKind, Explanation, Hit, Imported, Mode, Selection,
};

/// A `--cache-to`, with how to reach its registry.
#[derive(Clone)]
pub struct CacheExport {
    pub to: CacheTo,
    pub push: whittle_registry::PushOptions,
}

impl std::fmt::Debug for CacheExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheExport").field("to", &self.to).finish()
    }
}

/// A layer found in an imported cache, not fetched yet.
#[derive(Debug)]
pub(crate) struct Lazy {
    pub(crate) layer: CacheLayer,
    /// The key of the step that made it (recorded in the store once it is unpacked).
    pub(crate) key: String,
    pub(crate) from: Arc<Imported>,
}

/// A lookup's hit: from the store's cache, or from an imported one (named).
pub(crate) enum Cached {
    Local(Option<Layer>),
    Imported(Option<Layer>, String),
}

/// The build's state for imported and exported caches.
#[derive(Default)]
pub(crate) struct State {
    /// Chain ids of lazy layers unpacked into snapshots (their diff ids checked).
    unpacked: Mutex<HashSet<Digest>>,
    /// Chain ids of lazy layers whose blob is in the store and checked against the diff id.
    checked: Mutex<HashSet<Digest>>,
    /// One fetch at a time: two steps reading the same layer wait for one download.
    fetching: Mutex<()>,
    selections: Mutex<Vec<Selection>>,
    explanations: Mutex<Vec<Explanation>>,
    /// Cache mounts restored from imported caches.
    pub(super) mounts: super::remote_mounts::MountState,
}

fn contains(set: &Mutex<HashSet<Digest>>, d: &Digest) -> bool {
    set.lock().map(|s| s.contains(d)).unwrap_or(false)
}

fn insert(set: &Mutex<HashSet<Digest>>, d: &Digest) {
    if let Ok(mut s) = set.lock() {
        s.insert(d.clone());
    }
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A step's place, the same on every runner: the Dockerfile's file name, the stage and the
/// step's label (explanations of misses are filed under it).
pub(crate) fn step_id(dockerfile: &str, stage: usize, label: &str) -> String {
    let file = Path::new(dockerfile)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    sha(&["whittle step", &file, &stage.to_string(), label])
}

/// What a `COPY --from` selection is filed under: the source filesystem and the patterns.
fn selection_key(from: &Output, sources: &[String]) -> String {
    sha(&["whittle selection", &from.content_id(), &sources.join("\n")])
}

fn short(d: &Digest) -> &str {
    &d.hex()[..12]
}

impl Solver<'_> {
    /// Runs the graph; when a layer of an imported cache fails its checks, refuses it and
    /// runs the graph again (at most a few times), after a warning. Then makes sure what the
    /// outputs read of lazy layers is here.
    pub(super) fn run_with_imports(&self) -> Result<HashMap<VertexId, Arc<Output>>> {
        let mut attempts = 0;
        loop {
            let r = self.run_vertices().and_then(|done| {
                self.finish_imported(&done)?;
                Ok(done)
            });
            match r {
                Err(BuildError::CacheImport(message)) if attempts < 16 => {
                    attempts += 1;
                    self.progress.event(Event::Note {
                        message: format!(
                            "warning: {message}; building the steps that used it instead"
                        ),
                    });
                    self.run.store(0, Ordering::Relaxed);
                    self.cached.store(0, Ordering::Relaxed);
                }
                r => return r,
            }
        }
    }

    /// The targets' lazy layers: unpacked when an output reads the files, their blobs fetched
    /// (and checked against their diff ids) when an output reads the image.
    fn finish_imported(&self, done: &HashMap<VertexId, Arc<Output>>) -> Result<()> {
        if self.opts.cache_from.is_empty() {
            return Ok(());
        }
        for t in &self.graph.targets {
            let Some(root) = self
                .graph
                .images
                .get(t.image)
                .and_then(|i| done.get(&i.root))
            else {
                continue;
            };
            if self.opts.files {
                self.ensure_files(root)?;
            }
            if self.opts.image {
                let mut remote = Vec::new();
                for lz in root.layers.iter().filter_map(|l| l.lazy.as_ref()) {
                    match self.remote_blob(lz) {
                        Some(rb) => remote.push(rb),
                        None => self.fetch_checked(lz)?,
                    }
                }
                self.store.record_remote_blobs(&remote)?;
            }
        }
        Ok(())
    }

    /// A lazy layer of the image as a remote blob, when the image only goes to the registry
    /// its cache is on ([`BuildOptions::push_registry`]) and the blob is not here: the push
    /// mounts it from the cache's repository. Its diff id is the cache's word (docs/cache.md,
    /// "Trust").
    fn remote_blob(&self, lz: &Lazy) -> Option<whittle_store::RemoteBlob> {
        let to = self.opts.push_registry.as_ref()?;
        let from = lz.from.registry_reference()?;
        if &from.registry != to
            || self.store.has_blob(&lz.layer.blob)
            || contains(&self.remote.checked, &lz.layer.chain_id)
        {
            return None;
        }
        Some(whittle_store::RemoteBlob {
            digest: lz.layer.blob.clone(),
            size: lz.layer.size,
            media_type: lz.layer.media_type.clone(),
            registry: from.registry.clone(),
            repository: from.repository.clone(),
        })
    }

    /// A lazy layer's blob in the store, checked against its diff id.
    fn fetch_checked(&self, lz: &Lazy) -> Result<()> {
        let chain = &lz.layer.chain_id;
        if contains(&self.remote.checked, chain) && self.store.has_blob(&lz.layer.blob) {
            return Ok(());
        }
        let _one = self.remote.fetching.lock();
        self.note_fetch(lz);
        lz.from
            .fetch_blob(self.store, &lz.layer, true)
            .map_err(|e| {
                lz.from.refuse(&lz.layer.blob);
                BuildError::CacheImport(e.to_string())
            })?;
        insert(&self.remote.checked, chain);
        Ok(())
    }

    fn note_fetch(&self, lz: &Lazy) {
        if !self.store.has_blob(&lz.layer.blob) {
            self.progress.event(Event::Note {
                message: format!(
                    "fetching layer {} ({} bytes) from {}",
                    short(&lz.layer.blob),
                    lz.layer.size,
                    lz.from.name()
                ),
            });
        }
    }

    /// Whether some of `o`'s layers came from an imported cache and are not unpacked yet.
    pub(super) fn is_lazy(&self, o: &Output) -> bool {
        o.layers.iter().any(|l| {
            l.lazy
                .as_ref()
                .is_some_and(|lz| !contains(&self.remote.unpacked, &lz.layer.chain_id))
        })
    }

    /// Unpacks `o`'s lazy layers into snapshots (fetching their blobs), so its files can be
    /// read. A layer that fails a check is refused and the build starts again without it.
    pub(super) fn ensure_files(&self, o: &Output) -> Result<()> {
        for lz in o.layers.iter().filter_map(|l| l.lazy.as_ref()) {
            let chain = &lz.layer.chain_id;
            if contains(&self.remote.unpacked, chain) {
                continue;
            }
            let _one = self.remote.fetching.lock();
            if contains(&self.remote.unpacked, chain) {
                continue;
            }
            let fail = |message: String| {
                lz.from.refuse(&lz.layer.blob);
                BuildError::CacheImport(message)
            };
            if !(self.store.snapshot_path(chain).is_dir() && self.store.has_snapshot(chain)?) {
                self.note_fetch(lz);
                lz.from
                    .fetch_blob(self.store, &lz.layer, false)
                    .map_err(|e| fail(e.to_string()))?;
                self.store
                    .extract_layer_snapshot(
                        &lz.layer.blob,
                        &lz.layer.diff_id,
                        chain,
                        lz.layer.parent.as_ref(),
                    )
                    .map_err(|e| {
                        fail(format!(
                            "cache {}: layer {}: {e}",
                            lz.from.name(),
                            lz.layer.blob
                        ))
                    })?;
            }
            // The next build here finds it in the store's cache.
            let rec = StepRecord::Layer {
                chain: chain.clone(),
                diff: lz.layer.diff_id.clone(),
            };
            self.store.put_cache(&lz.key, &rec.encode(), Some(chain))?;
            insert(&self.remote.unpacked, chain);
            insert(&self.remote.checked, chain);
        }
        Ok(())
    }

    /// `key` in the imported caches, in order. A record made on other files below (another
    /// parent chain) is not used: the error says so, for the miss's explanation.
    pub(super) fn imported(
        &self,
        key: &str,
        below: &Output,
    ) -> std::result::Result<Cached, Option<String>> {
        let parent = below.layers.last().map(|l| &l.chain_id);
        let mut why = None;
        for imp in &self.opts.cache_from {
            match imp.lookup(key) {
                None if imp.refused_for(key) => {
                    why = Some(format!(
                        "{} has a result for it, but its layer was refused",
                        imp.name()
                    ));
                }
                None => {}
                Some(Hit::Empty) => return Ok(Cached::Imported(None, imp.name().to_string())),
                Some(Hit::Layer(l)) if l.parent.as_ref() != parent => {
                    why = Some(format!(
                        "{} has a result for it, made on other files below this step",
                        imp.name()
                    ));
                }
                Some(Hit::Layer(l)) => {
                    let layer = Layer {
                        dir: self.store.snapshot_path(&l.chain_id),
                        chain_id: l.chain_id.clone(),
                        diff_id: l.diff_id.clone(),
                        blob: Some((l.blob.clone(), l.media_type.clone(), l.size)),
                        made_by: None,
                        lazy: Some(Arc::new(Lazy {
                            layer: l,
                            key: key.to_string(),
                            from: imp.clone(),
                        })),
                    };
                    return Ok(Cached::Imported(Some(layer), imp.name().to_string()));
                }
            }
        }
        Err(why)
    }

    /// Whether an imported cache has a usable record for `key`.
    pub(super) fn imported_has(&self, key: &str) -> bool {
        self.opts.cache_from.iter().any(|i| i.has(key))
    }

    /// What the same step read when an imported cache was made (to explain a miss).
    pub(super) fn imported_explanation(&self, step: &str) -> Option<Value> {
        self.opts
            .cache_from
            .iter()
            .find_map(|i| i.explanation(step).cloned())
    }

    /// A `COPY --from` of lazy layers: the selection an imported cache recorded for that
    /// filesystem and these patterns (the copy's key without the files).
    pub(super) fn imported_selection(
        &self,
        from: &Output,
        sources: &[String],
        files: &mut serde_json::Map<String, Value>,
    ) -> Option<String> {
        if !self.is_lazy(from) {
            return None;
        }
        let key = selection_key(from, sources);
        let sel = self
            .opts
            .cache_from
            .iter()
            .find_map(|i| i.selection(&key))?;
        for (p, d) in &sel.files {
            files.insert(p.clone(), d.clone());
        }
        Some(sel.id.clone())
    }

    /// Keeps a `COPY --from` selection for the cache export.
    pub(super) fn note_selection(
        &self,
        from: &Output,
        sources: &[String],
        id: &str,
        files: &serde_json::Map<String, Value>,
    ) {
        if self.opts.cache_to.is_empty() {
            return;
        }
        if let Ok(mut v) = self.remote.selections.lock() {
            v.push(Selection {
                key: selection_key(from, sources),
                id: id.to_string(),
                files: files.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        }
    }

    /// Keeps what a step read for the cache export.
    pub(super) fn note_step(&self, step: &str, inputs: &Value) {
        if self.opts.cache_to.is_empty() {
            return;
        }
        if let Ok(mut v) = self.remote.explanations.lock() {
            v.push(Explanation {
                step: step.to_string(),
                inputs: inputs.clone(),
            });
        }
    }

    /// Writes every `--cache-to`.
    pub(super) fn export_cache(&self, done: &HashMap<VertexId, Arc<Output>>) -> Result<()> {
        for ce in &self.opts.cache_to {
            let t = Instant::now();
            if ce.to.kind == CacheToKind::Inline {
                // Written with the image's manifest ([`Solver::inline_cache`]).
                let message = if self.opts.image {
                    format!(
                        "embedded the build cache in the image's manifest ({INLINE_ANNOTATION})"
                    )
                } else {
                    "warning: --cache-to type=inline: this build writes no image, so no \
                     manifest carries the cache"
                        .to_string()
                };
                self.progress.event(Event::Note { message });
                continue;
            }
            let target = match &ce.to.kind {
                CacheToKind::Registry(r) => Some(r),
                _ => None,
            };
            let cfg = self.cache_config(done, &ce.to, target)?;
            let err = |e: whittle_remote_cache::CacheError| BuildError::CacheExport(e.to_string());
            let (place, digest) = match &ce.to.kind {
                CacheToKind::Registry(r) => (
                    r.to_string(),
                    whittle_remote_cache::export::to_registry(self.store, &cfg, r, &ce.push)
                        .map_err(err)?,
                ),
                CacheToKind::Local(dir) => (
                    dir.display().to_string(),
                    whittle_remote_cache::export::to_local(self.store, &cfg, dir).map_err(err)?,
                ),
                CacheToKind::Inline => continue,
            };
            self.progress.event(Event::Note {
                message: format!(
                    "exported the build cache to {place} ({digest}): {} records, {} layers, \
                     {} cache mounts, in {:.2}s",
                    cfg.records.len(),
                    cfg.layers.len(),
                    cfg.mounts.len(),
                    t.elapsed().as_secs_f64()
                ),
            });
        }
        Ok(())
    }

    /// The value of the inline-cache annotation for an image whose layers are `blobs`, when a
    /// `--cache-to type=inline` asks for one: the `mode=min` config, its layers compressed as
    /// the image's are (so they are the image's own blobs), and only the records whose layer
    /// this image lists (another platform's are in its own manifest).
    pub(super) fn inline_cache(
        &self,
        done: &HashMap<VertexId, Arc<Output>>,
        blobs: &HashSet<&Digest>,
    ) -> Result<Option<String>> {
        if !self
            .opts
            .cache_to
            .iter()
            .any(|c| c.to.kind == CacheToKind::Inline)
        {
            return Ok(None);
        }
        let to = CacheTo {
            kind: CacheToKind::Inline,
            mode: Mode::Min,
            compression: None,
            mounts: false,
        };
        let all = self.cache_config(done, &to, None)?;
        let records = all
            .records
            .iter()
            .filter_map(|r| match r.layer {
                None => Some((r.key.clone(), None)),
                Some(n) => all
                    .layers
                    .get(n)
                    .filter(|l| blobs.contains(&l.blob))
                    .map(|l| (r.key.clone(), Some(l.clone()))),
            })
            .collect();
        let cfg = CacheConfig::new(records, all.selections, all.explanations);
        Ok(Some(whittle_remote_cache::export::inline(&cfg)))
    }

    /// The cache config of this build for `to`: `mode=max` every step's record, `mode=min`
    /// those whose filesystem is part of a target's (by diff ids, so `COPY --link` layers
    /// count).
    fn cache_config(
        &self,
        done: &HashMap<VertexId, Arc<Output>>,
        to: &CacheTo,
        target: Option<&whittle_oci::Reference>,
    ) -> Result<CacheConfig> {
        let compression = to.compression.unwrap_or(self.opts.compression);
        let mut in_targets: HashSet<&Digest> = HashSet::new();
        for t in &self.graph.targets {
            if let Some(root) = self
                .graph
                .images
                .get(t.image)
                .and_then(|i| done.get(&i.root))
            {
                in_targets.extend(root.layers.iter().map(|l| &l.diff_id));
            }
        }
        let mut vertices: Vec<&VertexId> = done.keys().collect();
        vertices.sort();
        let mut records = Vec::new();
        for v in vertices {
            let out = &done[v];
            let steps = matches!(
                self.graph.vertex(*v).op,
                Op::Exec(_) | Op::Copy(_) | Op::Download(_) | Op::Mkdir(_)
            );
            if !steps {
                continue;
            }
            let top = out.layers.last();
            if to.mode == Mode::Min && !top.is_none_or(|l| in_targets.contains(&l.diff_id)) {
                continue;
            }
            let layer = match (out.added, top) {
                (true, Some(l)) => {
                    let parent = out
                        .layers
                        .len()
                        .checked_sub(2)
                        .and_then(|n| out.layers.get(n))
                        .map(|p| p.chain_id.clone());
                    match self.layer_blob(l, compression, target)? {
                        Some((blob, media_type, size)) => Some(CacheLayer {
                            blob,
                            media_type,
                            size,
                            diff_id: l.diff_id.clone(),
                            chain_id: l.chain_id.clone(),
                            parent,
                        }),
                        // Its blob could not be had: the record is left out.
                        None => continue,
                    }
                }
                _ => None,
            };
            records.push((out.key.clone(), layer));
        }
        fn take<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
            m.lock().map(|v| v.clone()).unwrap_or_default()
        }
        let cfg = CacheConfig::new(
            records,
            take(&self.remote.selections),
            take(&self.remote.explanations),
        );
        Ok(if to.mounts {
            cfg.with_mounts(self.cache_mount_layers(done, compression)?)
        } else {
            cfg
        })
    }

    /// A layer's blob for the cache: an imported layer's own (fetched unless `target` is the
    /// repository it came from, or a registry the store knows it to be on), else the layer
    /// compressed once (the record the image export keeps, so the image and the cache share
    /// blobs).
    fn layer_blob(
        &self,
        l: &Layer,
        compression: Compression,
        target: Option<&whittle_oci::Reference>,
    ) -> Result<Option<(Digest, String, u64)>> {
        if let Some(lz) = &l.lazy {
            // In the target repository already, or recorded as remote on its registry (the
            // push mounts it).
            let mountable = |r: &whittle_oci::Reference| matches!(self.store.remote_blob(&lz.layer.blob), Ok(Some(rb)) if rb.registry == r.registry);
            let there = target.is_some_and(|r| lz.from.is_repository(r) || mountable(r));
            if !there && !self.store.has_blob(&lz.layer.blob) {
                if let Err(e) = self.fetch_checked(lz) {
                    self.progress.event(Event::Note {
                        message: format!("warning: {e}; its record is not exported"),
                    });
                    return Ok(None);
                }
            }
            return Ok(Some((
                lz.layer.blob.clone(),
                lz.layer.media_type.clone(),
                lz.layer.size,
            )));
        }
        if let Some(b) = &l.blob {
            return Ok(Some(b.clone()));
        }
        let (digest, media_type, size, _) = self.compressed_blob(l, compression)?;
        Ok(Some((digest, media_type, size)))
    }

    /// Says how each imported cache served the build, and warns about one that matched
    /// nothing.
    pub(super) fn report_imports(&self) {
        for imp in &self.opts.cache_from {
            let mounts = self.mounts_restored_from(imp.name());
            let message = if imp.matched() == 0 && imp.records() > 0 && mounts == 0 {
                format!(
                    "warning: cache {}: none of its {} records matched this build (made from \
                     another Dockerfile, other build arguments or another base image?)",
                    imp.name(),
                    imp.records()
                )
            } else {
                format!(
                    "cache {}: {} steps found, {} cache mounts restored, {} bytes of layers \
                     fetched",
                    imp.name(),
                    imp.hits(),
                    mounts,
                    imp.downloaded()
                )
            };
            self.progress.event(Event::Note { message });
        }
    }
}
