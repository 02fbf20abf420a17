//! Layers compressed, and uploaded, for a `mode=max` cache export while the build still runs.
//!
//! The cache export compresses every step's layer, builder stages' included, and it ran after
//! the last step, on the build's critical path. Each layer is known as soon as its step is
//! done, so one background thread at nice 10 (a niced thread's gzip workers inherit it)
//! compresses it then, on the cores the steps leave idle (a RUN's single-threaded compile,
//! the file copies of a COPY, the image export), and the export finds the blob recorded
//! ([`Solver::compressed_blob`]). The threads are joined before the build's outputs, so the
//! export never compresses the same layer at the same time (each layer is sent once). What it compresses is what the
//! export would: same layer, compression and epoch, so the same bytes. For a registry export
//! the blob is then uploaded to the cache's repository (HEAD first, as the export would), and
//! the export, sharing `PushOptions::known`, does not ask about it again: what is left after
//! the last step is the config and the manifest. A failure is left for the export to meet and
//! report (it uploads what is missing). A build that fails after some steps leaves their blobs
//! in the repository with no manifest naming them, as an interrupted push does; the registry's
//! garbage collection removes them.

use super::*;
use std::sync::mpsc::{channel, Sender};
use whittle_remote_cache::{CacheToKind, Mode};

/// Nice value of the background threads: below the build's own work, above nothing else.
const NICE: i32 = 10;

/// Background threads: the last steps' layers are compressed and uploaded side by side, so
/// the wait for them after the last step is the longest one's, not their sum. Each is mostly
/// waiting on the registry; their gzip has the build's `--jobs` workers.
const WORKERS: usize = 3;

impl Solver<'_> {
    /// The compression a `mode=max` registry or local cache export will use, if there is one.
    fn early_compression(&self) -> Option<Compression> {
        self.opts
            .cache_to
            .iter()
            .find(|c| c.to.kind != CacheToKind::Inline && c.to.mode == Mode::Max)
            .map(|c| c.to.compression.unwrap_or(self.opts.compression))
    }

    /// Starts the background compressor in `scope` when a cache export will want every layer;
    /// returns where to send layers (dropping it lets the thread finish).
    pub(super) fn start_compressor<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Option<Sender<Layer>> {
        let compression = self.early_compression()?;
        let (tx, rx) = channel::<Layer>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            let rx = rx.clone();
            scope.spawn(move || {
                // This thread only: Linux's nice is per thread (who = 0 is the calling thread).
                let _ = rustix::process::setpriority_process(None, NICE);
                loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    let Some(l) = next else { break };
                    if self.cancel.is_cancelled() {
                        break;
                    }
                    if let Ok((digest, media_type, size, _)) = self.compressed_blob(&l, compression)
                    {
                        let desc = whittle_oci::Descriptor::new(media_type, digest, size);
                        self.upload_early(&desc, compression);
                    }
                }
            });
        }
        Some(tx)
    }
}

impl Solver<'_> {
    /// Uploads a layer's blob to every `mode=max` registry cache export of that compression
    /// (quietly: the build's progress is on screen; the export reports what it finds).
    fn upload_early(&self, desc: &whittle_oci::Descriptor, compression: Compression) {
        for ce in &self.opts.cache_to {
            let CacheToKind::Registry(target) = &ce.to.kind else {
                continue;
            };
            if ce.to.mode != Mode::Max
                || ce.to.compression.unwrap_or(self.opts.compression) != compression
            {
                continue;
            }
            let opts = whittle_registry::PushOptions {
                progress: None,
                ..ce.push.clone()
            };
            let _ = whittle_registry::push_blobs_early(
                self.store,
                target,
                std::slice::from_ref(desc),
                &opts,
            );
        }
    }
}

/// The layer `out` added that a cache export would compress: built here (not from an image or
/// an imported cache).
pub(super) fn new_layer(out: &Output) -> Option<Layer> {
    if !out.added {
        return None;
    }
    out.layers
        .last()
        .filter(|l| l.blob.is_none() && l.lazy.is_none())
        .cloned()
}
