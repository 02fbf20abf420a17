//! An imported cache (`--cache-from`): its manifest and config read when the build starts,
//! nothing else. The solver asks it for a key when its own cache misses; a layer's blob is
//! fetched ([`Imported::fetch_blob`]) only when the build needs that layer's files or the
//! output needs the blob, into the store through a digest-checking writer.
//!
//! What does not check out is never used: a config that does not parse is an error of
//! [`Imported::open`] (the build goes on without the cache, with a warning), a layer the
//! manifest does not list as the config says is refused up front ([`Imported::warnings`]), and
//! a blob that fails its digest or diff id later is refused ([`Imported::refuse`]) so that the
//! solver builds the steps that needed it.

use crate::artifact::{self, Found};
use crate::error::CacheError;
use crate::format::{CacheConfig, CacheLayer, CacheMountLayer, Selection, MAX_CONFIG};
use crate::layout;
use crate::spec::CacheFrom;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use whittle_oci::{Descriptor, Digest, Reference};
use whittle_registry::{Client, ClientOptions};
use whittle_store::Store;

enum Source {
    Registry {
        client: Box<Client>,
        reference: Reference,
    },
    Layout {
        dir: PathBuf,
    },
}

/// A record found in an imported cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hit {
    /// The step added nothing.
    Empty,
    /// The step's layer.
    Layer(CacheLayer),
}

pub struct Imported {
    name: String,
    config: CacheConfig,
    records: HashMap<String, Option<usize>>,
    selections: HashMap<String, usize>,
    explanations: HashMap<String, usize>,
    mounts: HashMap<String, usize>,
    source: Source,
    refused: Mutex<HashSet<Digest>>,
    warnings: Vec<String>,
    hits: AtomicUsize,
    matched: AtomicUsize,
    downloaded: AtomicU64,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("name", &self.name)
            .field("records", &self.records.len())
            .finish()
    }
}

fn registry_err(name: &str) -> impl Fn(whittle_registry::RegistryError) -> CacheError + '_ {
    move |source| CacheError::Registry {
        source_name: name.to_string(),
        source: Box::new(source),
    }
}

impl Imported {
    /// Reads the manifest and the config of a cache: a whittle cache artifact or an image
    /// built with inline cache, from a registry (`opts`: credentials and TLS as for pulls) or
    /// an OCI layout.
    pub fn open(from: &CacheFrom, opts: &ClientOptions) -> Result<Imported, CacheError> {
        let name = from.name();
        let bad = |problem: String| CacheError::Artifact {
            source_name: name.clone(),
            problem,
        };
        let (source, found) = match from {
            CacheFrom::Registry(r) => {
                let client = Client::connect(&r.registry, opts).map_err(registry_err(&name))?;
                let (bytes, _, _) =
                    whittle_registry::read_manifest(&client, r).map_err(registry_err(&name))?;
                let found = artifact::parse(&bytes).map_err(bad)?;
                (
                    Source::Registry {
                        client: Box::new(client),
                        reference: r.clone(),
                    },
                    found,
                )
            }
            CacheFrom::Local(dir) => {
                let desc = layout::manifest_descriptor(&name, dir)?;
                let bytes = layout::read_blob(&name, dir, &desc, layout::MAX_MANIFEST)?;
                let found = artifact::parse(&bytes).map_err(bad)?;
                (Source::Layout { dir: dir.clone() }, found)
            }
        };
        let (config_bytes, layers) = match found {
            Found::Inline { config, layers } => (config, layers),
            Found::Artifact { config, layers } => {
                let bytes = match &source {
                    Source::Registry { client, reference } => {
                        if config.size > MAX_CONFIG {
                            return Err(bad(format!(
                                "its config is {} bytes, more than {MAX_CONFIG}",
                                config.size
                            )));
                        }
                        let mut v = Vec::new();
                        whittle_registry::open_blob(client, &reference.repository, &config)
                            .map_err(registry_err(&name))?
                            .read_to_end(&mut v)
                            .map_err(|e| CacheError::Blob {
                                source_name: name.clone(),
                                blob: config.digest.to_string(),
                                problem: e.to_string(),
                            })?;
                        v
                    }
                    Source::Layout { dir } => layout::read_blob(&name, dir, &config, MAX_CONFIG)?,
                };
                (bytes, layers)
            }
        };
        let config = CacheConfig::from_slice(&config_bytes).map_err(|e| CacheError::Format {
            source_name: name.clone(),
            problem: e.to_string(),
        })?;
        Ok(Imported::new(name, config, &layers, source))
    }

    fn new(name: String, config: CacheConfig, listed: &[Descriptor], source: Source) -> Imported {
        // A layer is used only as the manifest lists it: same digest, size and media type.
        let mut refused = HashSet::new();
        let mut warnings = Vec::new();
        let check =
            |blob: &Digest, size: u64, media: &str| match listed.iter().find(|d| &d.digest == blob)
            {
                None => Some("the manifest does not list it".to_string()),
                Some(d) if d.size != size => Some(format!(
                    "the manifest says {} bytes, the config {size}",
                    d.size
                )),
                Some(d) if d.media_type != media => Some(format!(
                    "the manifest says media type {:?}, the config {media:?}",
                    d.media_type
                )),
                Some(_) => None,
            };
        for l in &config.layers {
            if let Some(p) = check(&l.blob, l.size, &l.media_type) {
                if refused.insert(l.blob.clone()) {
                    warnings.push(format!(
                        "cache {name}: layer {} is not used: {p}; the steps that made it are \
                         built",
                        l.blob
                    ));
                }
            }
        }
        for m in &config.mounts {
            if let Some(p) = check(&m.blob, m.size, &m.media_type) {
                if refused.insert(m.blob.clone()) {
                    warnings.push(format!(
                        "cache {name}: cache mount {:?} ({}) is not restored: {p}",
                        m.id, m.blob
                    ));
                }
            }
        }
        Imported {
            records: config
                .records
                .iter()
                .map(|r| (r.key.clone(), r.layer))
                .collect(),
            selections: config
                .selections
                .iter()
                .enumerate()
                .map(|(n, s)| (s.key.clone(), n))
                .collect(),
            explanations: config
                .explanations
                .iter()
                .enumerate()
                .map(|(n, e)| (e.step.clone(), n))
                .collect(),
            mounts: config
                .mounts
                .iter()
                .enumerate()
                .map(|(n, m)| (m.id.clone(), n))
                .collect(),
            name,
            config,
            source,
            refused: Mutex::new(refused),
            warnings,
            hits: AtomicUsize::new(0),
            matched: AtomicUsize::new(0),
            downloaded: AtomicU64::new(0),
        }
    }

    /// How progress and warnings name this cache (the reference or directory as given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Problems found when it was opened (each names the layer and what is wrong).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many records it holds, and how many this build used.
    pub fn records(&self) -> usize {
        self.records.len()
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
    /// How many keys of this build it had a record for, used or not (a refused layer's).
    pub fn matched(&self) -> usize {
        self.matched.load(Ordering::Relaxed)
    }
    /// Bytes of layer blobs fetched from it.
    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    /// The record of `key`, unless its layer was refused.
    pub fn lookup(&self, key: &str) -> Option<Hit> {
        let rec = self.records.get(key)?;
        self.matched.fetch_add(1, Ordering::Relaxed);
        let hit = match rec {
            None => Hit::Empty,
            Some(n) => {
                let l = self.config.layers.get(*n)?;
                if self.is_refused(&l.blob) {
                    return None;
                }
                Hit::Layer(l.clone())
            }
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(hit)
    }

    /// Whether it has a record for `key` whose layer was refused.
    pub fn refused_for(&self, key: &str) -> bool {
        matches!(self.records.get(key), Some(Some(n))
            if self.config.layers.get(*n).is_some_and(|l| self.is_refused(&l.blob)))
    }

    /// Whether it has a record for `key` (without counting it as used).
    pub fn has(&self, key: &str) -> bool {
        match self.records.get(key) {
            Some(Some(n)) => self
                .config
                .layers
                .get(*n)
                .is_some_and(|l| !self.is_refused(&l.blob)),
            Some(None) => true,
            None => false,
        }
    }

    pub fn selection(&self, key: &str) -> Option<&Selection> {
        self.selections
            .get(key)
            .and_then(|n| self.config.selections.get(*n))
    }

    pub fn explanation(&self, step: &str) -> Option<&Value> {
        self.explanations
            .get(step)
            .and_then(|n| self.config.explanations.get(*n))
            .map(|e| &e.inputs)
    }

    /// The contents of cache mount `id` (`mounts=true`), unless refused.
    pub fn mount(&self, id: &str) -> Option<&CacheMountLayer> {
        self.mounts
            .get(id)
            .and_then(|n| self.config.mounts.get(*n))
            .filter(|m| !self.is_refused(&m.blob))
    }

    fn is_refused(&self, blob: &Digest) -> bool {
        self.refused
            .lock()
            .map(|r| r.contains(blob))
            .unwrap_or(true)
    }

    /// Stops using a layer (its blob failed a check): its records miss from now on.
    pub fn refuse(&self, blob: &Digest) {
        if let Ok(mut r) = self.refused.lock() {
            r.insert(blob.clone());
        }
    }

    /// Whether blobs of this cache are already in `r`'s repository (an export to the same
    /// place need not fetch them).
    pub fn is_repository(&self, r: &Reference) -> bool {
        match &self.source {
            Source::Registry { reference, .. } => {
                reference.registry == r.registry && reference.repository == r.repository
            }
            Source::Layout { .. } => false,
        }
    }

    /// The registry reference this cache was read from (`None` for an OCI layout).
    pub fn registry_reference(&self) -> Option<&Reference> {
        match &self.source {
            Source::Registry { reference, .. } => Some(reference),
            Source::Layout { .. } => None,
        }
    }

    /// Puts `layer`'s blob into the store (unless it is there), streamed through a writer that
    /// refuses it unless it hashes to the blob's digest; with `check_diff`, the blob is then
    /// read back decompressed and refused unless the tar hashes to the layer's diff id (when
    /// the layer will not be extracted, which checks that itself). Returns the bytes fetched.
    pub fn fetch_blob(
        &self,
        store: &Store,
        layer: &CacheLayer,
        check_diff: bool,
    ) -> Result<u64, CacheError> {
        let desc = Descriptor::new(layer.media_type.clone(), layer.blob.clone(), layer.size);
        self.fetch(store, &desc, &layer.diff_id, check_diff)
    }

    /// Puts a cache mount's blob into the store, as [`Imported::fetch_blob`] does (its diff id
    /// is checked when it is extracted).
    pub fn fetch_mount(&self, store: &Store, m: &CacheMountLayer) -> Result<u64, CacheError> {
        let desc = Descriptor::new(m.media_type.clone(), m.blob.clone(), m.size);
        self.fetch(store, &desc, &m.diff_id, false)
    }

    fn fetch(
        &self,
        store: &Store,
        desc: &Descriptor,
        diff_id: &Digest,
        check_diff: bool,
    ) -> Result<u64, CacheError> {
        let fail = |problem: String| CacheError::Blob {
            source_name: self.name.clone(),
            blob: desc.digest.to_string(),
            problem,
        };
        let store_err = |source| CacheError::Store {
            source_name: self.name.clone(),
            source: Box::new(source),
        };
        let mut fetched = 0;
        if !store.has_blob(&desc.digest) {
            let mut w = store
                .blob_writer(Some(desc.digest.clone()))
                .map_err(store_err)?;
            let copied = match &self.source {
                Source::Registry { client, reference } => {
                    let mut r = whittle_registry::open_blob(client, &reference.repository, desc)
                        .map_err(registry_err(&self.name))?;
                    std::io::copy(&mut r, &mut w)
                }
                Source::Layout { dir } => {
                    let p = layout::blob_path(dir, &desc.digest);
                    let f = std::fs::File::open(&p).map_err(|e| fail(format!("{e}")))?;
                    std::io::copy(&mut f.take(desc.size.saturating_add(1)), &mut w)
                }
            };
            let n = copied.map_err(|e| fail(e.to_string()))?;
            if n != desc.size {
                return Err(fail(format!("got {n} bytes, not {}", desc.size)));
            }
            w.commit().map_err(|e| fail(e.to_string()))?;
            fetched = n;
            self.downloaded.fetch_add(n, Ordering::Relaxed);
        }
        if check_diff {
            let f = store.open_blob(&desc.digest).map_err(store_err)?;
            let (_, r) = whittle_layer::decompress(BufReader::with_capacity(256 * 1024, f))
                .map_err(|e| fail(format!("cannot decompress: {e}")))?;
            let mut h = whittle_layer::HashingReader::new(r);
            std::io::copy(&mut h, &mut std::io::sink())
                .map_err(|e| fail(format!("cannot decompress: {e}")))?;
            let (_, diff, _) = h.finish();
            if &diff != diff_id {
                return Err(fail(format!(
                    "its tar has diff id {diff}, the cache says {diff_id}"
                )));
            }
        }
        Ok(fetched)
    }
}
