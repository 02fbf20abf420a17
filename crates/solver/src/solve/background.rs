//! Layers compressed for a `mode=max` cache export while the build still runs.
//!
//! The cache export compresses every step's layer, builder stages' included, and it ran after
//! the last step, on the build's critical path. Each layer is known as soon as its step is
//! done, so one background thread at nice 10 (a niced thread's gzip workers inherit it)
//! compresses it then, on the cores the steps leave idle (a RUN's single-threaded compile,
//! the file copies of a COPY, the image export), and the export finds the blob recorded
//! ([`Solver::compressed_blob`]). The thread is joined before the build's outputs, so the
//! export never compresses the same layer at the same time. What it compresses is what the
//! export would: same layer, compression and epoch, so the same bytes. A failure is left for
//! the export to meet and report.

use super::*;
use std::sync::mpsc::{channel, Sender};
use whittle_remote_cache::{CacheToKind, Mode};

/// Nice value of the background thread: below the build's own work, above nothing else.
const NICE: i32 = 10;

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
        scope.spawn(move || {
            // This thread only: Linux's nice is per thread (who = 0 is the calling thread).
            let _ = rustix::process::setpriority_process(None, NICE);
            for l in rx {
                if self.cancel.is_cancelled() {
                    break;
                }
                let _ = self.compressed_blob(&l, compression);
            }
        });
        Some(tx)
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
