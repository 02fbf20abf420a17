//! Cache mounts in a shared cache (`--cache-to ...,mounts=true`): the contents of each
//! `RUN --mount=type=cache` directory the build used, as a layer under the mount's id; and on
//! the importing side, the directory filled from that layer before the first RUN that mounts
//! it, when it is empty here.
//!
//! - The id is the graph's (`id=` or the target, with the owner and mode when given), so a
//!   mount made with another owner or mode is another entry, as it is another directory.
//! - The layer keeps the files' mtimes (no clamping to the build epoch): tools trim their
//!   caches by age (Go's build cache drops entries unused for days, by mtime), and a cache
//!   mount's contents are not part of any image.
//! - A local directory with anything in it is never overwritten: it is this runner's cache.
//! - A restore that fails (a blob that is missing or does not check out) is a warning: a
//!   cache mount only makes a RUN faster, never changes what it may produce.

use super::*;
use std::collections::HashSet;
use whittle_graph::MountKind as GMount;
use whittle_remote_cache::CacheMountLayer;

/// Which cache mounts this build has restored (or decided not to).
#[derive(Default)]
pub(crate) struct MountState {
    /// Ids already seen by a RUN; held while a restore runs, so the RUNs that mount the
    /// same id wait for it.
    seen: Mutex<HashSet<String>>,
    /// The name of the imported cache each restored mount came from.
    restored_from: Mutex<Vec<String>>,
}

impl Solver<'_> {
    /// The ids of the cache mounts of the RUN steps this build needed, sorted.
    fn cache_mount_ids(&self, done: &HashMap<VertexId, Arc<Output>>) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for v in done.keys() {
            if let Op::Exec(e) = &self.graph.vertex(*v).op {
                for m in &e.mounts {
                    if let GMount::Cache { id, .. } = &m.kind {
                        ids.insert(id.clone());
                    }
                }
            }
        }
        ids
    }

    /// Each non-empty cache mount of this build as a layer blob in the store (`mounts=true`).
    pub(super) fn cache_mount_layers(
        &self,
        done: &HashMap<VertexId, Arc<Output>>,
        compression: Compression,
    ) -> Result<Vec<CacheMountLayer>> {
        let mut out = Vec::new();
        for id in self.cache_mount_ids(done) {
            let path = self.store.cache_mount_path(&id);
            let empty = std::fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if empty {
                continue;
            }
            // Held while it is read: no `sharing=locked` RUN of another build writes meanwhile.
            let _held = self.store.cache_mount(&id, true)?;
            let w = self.store.blob_writer(None)?;
            let opts = WriteOptions {
                compression,
                threads: self.opts.threads(),
                epoch: u64::MAX,
                source: SourceKind::Directory,
                exclude: Vec::new(),
            };
            let (info, w) = whittle_layer::write_layer(&path, &opts, w).map_err(|source| {
                BuildError::Layer {
                    path: path.clone(),
                    source,
                }
            })?;
            let (blob, size) = w.commit()?;
            out.push(CacheMountLayer {
                id,
                blob,
                media_type: info.media_type.to_string(),
                size,
                diff_id: info.diff_id,
            });
        }
        Ok(out)
    }

    /// How many cache mounts this build restored from the imported cache named `name`.
    pub(super) fn mounts_restored_from(&self, name: &str) -> usize {
        self.remote
            .mounts
            .restored_from
            .lock()
            .map(|v| v.iter().filter(|n| *n == name).count())
            .unwrap_or(0)
    }

    /// Before a RUN mounts cache `id` (its directory held by the caller): fills the directory
    /// from the first imported cache that has it, if it is empty here. Once per id and build.
    pub(super) fn restore_cache_mount(&self, id: &str) {
        if self.opts.cache_from.is_empty() {
            return;
        }
        let Ok(mut seen) = self.remote.mounts.seen.lock() else {
            return;
        };
        if !seen.insert(id.to_string()) {
            return;
        }
        let any = self
            .opts
            .cache_from
            .iter()
            .any(|imp| imp.mount(id).is_some());
        if !any {
            return;
        }
        // Not fetched at all when there is something here already (checked again, under the
        // rename, by `fill_cache_mount`).
        let here = std::fs::read_dir(self.store.cache_mount_path(id))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if here {
            self.progress.event(Event::Note {
                message: format!("cache mount {id:?} is not empty here: kept as it is"),
            });
            return;
        }
        for imp in &self.opts.cache_from {
            let Some(m) = imp.mount(id) else { continue };
            let restored = imp
                .fetch_mount(self.store, m)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    self.store
                        .fill_cache_mount(id, &m.blob, &m.diff_id)
                        .map_err(|e| e.to_string())
                });
            let message = match restored {
                Ok(true) => {
                    if let Ok(mut v) = self.remote.mounts.restored_from.lock() {
                        v.push(imp.name().to_string());
                    }
                    format!(
                        "restored cache mount {id:?} from {} ({} bytes)",
                        imp.name(),
                        m.size
                    )
                }
                Ok(false) => format!("cache mount {id:?} is not empty here: kept as it is"),
                Err(e) => {
                    imp.refuse(&m.blob);
                    self.progress.event(Event::Note {
                        message: format!(
                            "warning: cache {}: cache mount {id:?} not restored: {e}",
                            imp.name()
                        ),
                    });
                    continue;
                }
            };
            self.progress.event(Event::Note { message });
            return;
        }
    }
}
