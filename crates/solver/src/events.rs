//! Progress events the engine emits while it builds; the CLI renders them (plain lines or a
//! live terminal view). Steps are numbered in the order they start, like BuildKit's `#N`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step started. `label` is like `[builder 2/5]`; `summary` is the expanded instruction.
    StepStarted {
        id: usize,
        stage: usize,
        label: String,
        summary: String,
        line: usize,
    },
    /// The step's result came from the cache; `reason` is set when it missed instead.
    StepCached { id: usize },
    /// The step's result came from an imported cache (`--cache-from`), named by `from`.
    StepCachedFrom { id: usize, from: String },
    /// Why a step could not use the cache (for `--progress=plain`).
    StepMiss { id: usize, reason: String },
    /// One line of a RUN step's output.
    StepLog {
        id: usize,
        stderr: bool,
        line: String,
    },
    StepDone {
        id: usize,
        elapsed: Duration,
        /// Where the time went, in order: `fill` (running the RUN, copying the files), `diff`
        /// (reading the new files to hash the layer), `commit` (sizing, syncing and
        /// publishing the snapshot). Shown by `--progress=plain` and `rawjson`.
        phases: Vec<(&'static str, Duration)>,
    },
    StepFailed {
        id: usize,
        elapsed: Duration,
        error: String,
    },
    /// Something that is not a step (resolving base images, exporting).
    Note { message: String },
}

/// Receives events; called from several threads at once.
pub trait Progress: Send + Sync {
    fn event(&self, e: Event);
    /// Runs `f` with the display paused (for an interactive shell on the terminal).
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// Ignores everything (`--progress=quiet`, tests).
pub struct Silent;
impl Progress for Silent {
    fn event(&self, _: Event) {}
}

/// Collects events in memory (tests).
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);
impl Progress for Recorder {
    fn event(&self, e: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}
