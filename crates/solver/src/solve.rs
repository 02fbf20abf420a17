//! The solver: runs the vertices a build graph's target needs, each when the vertices it reads
//! are done (identical vertices of several stages are one vertex, so they run once), each
//! looked up in the cache by a key derived from its definition digest and its inputs' keys and
//! content digests, and exports the target as an image into the store.
//!
//! Snapshots are directories in overlayfs format (a RUN's upper dir as it is, a COPY's new
//! files in a fresh directory, base-image layers extracted with overlay whiteouts), keyed by
//! chain id. Layers are tarred and compressed only for the exported image; builder stages never
//! are.

use crate::copy::{self, Chmod, CopyRequest};
use crate::events::{Event, Progress};
use crate::exec::Executor;
use crate::merged::Merged;
use crate::record::StepRecord;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use whittle_context::{Index, Matcher, MemoryStatCache};
use whittle_graph::{Graph, Op, Origin, Vertex, VertexId};
use whittle_layer::{chain_id, Compression, Digest, SourceKind, WriteOptions};
use whittle_runtime::{CancelToken, ContainerSpec, Network, Rootfs};
use whittle_store::{ImageRecord, Store};

mod background;
mod copy_op;
mod exec_op;
mod export;
mod remote;
mod remote_mounts;
mod sources;
mod stages;

pub use export::dockerfile_label;
pub use remote::CacheExport;
pub use stages::{StageFiles, StageLayer};

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// `.dockerignore` rules.
    pub ignore: Matcher,
    /// Do not look anything up in the cache (results are still recorded).
    pub no_cache: bool,
    /// Stages (names or indexes) whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// What `RUN --network=default` (and RUN without the flag) gets: by default
    /// [`Network::Isolated`] (the runtime refuses it when no slirp4netns or pasta is installed;
    /// the CLI then falls back to the host's network with a warning). Part of those steps' keys.
    pub network: Network,
    /// Entitlements granted (`--allow`): `RUN --network=host` needs `network.host`, and
    /// `RUN --security=insecure` `security.insecure` (checked before anything runs).
    pub allow: Vec<crate::Entitlement>,
    /// `--secret` values by id.
    pub secrets: HashMap<String, Vec<u8>>,
    /// Local `--build-context NAME=DIR` directories by name (image contexts are resolved by
    /// the frontend).
    pub named_contexts: HashMap<String, PathBuf>,
    /// ssh-agent sockets by id (`--ssh`) for `RUN --mount=type=ssh` (see [`crate::ssh`]).
    pub ssh: HashMap<String, PathBuf>,
    /// At most this many RUN/COPY steps at once. The default is no limit, as in BuildKit:
    /// every step whose inputs are ready runs, and the kernel shares the cores. A limit of the
    /// core count made three balanced CPU-bound stages on 2 cores take 2 units of time instead
    /// of 1.5 (the third ran alone, on one core, after the first two).
    pub jobs: usize,
    /// `--label`s added to the image.
    pub labels: Vec<(String, String)>,
    /// `--ulimit`s for RUN steps (replacing the default of the same resource).
    pub ulimits: Vec<whittle_runtime::Rlimit>,
    /// `--shm-size` for RUN steps, in bytes.
    pub shm_size: Option<u64>,
    /// `--add-host` entries (name, address) for RUN steps' /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// `--security-opt seccomp=unconfined`: RUN steps without the seccomp filter.
    pub seccomp_unconfined: bool,
    /// `--annotation`s on every image manifest.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `--annotation manifest[PLATFORM]:K=V`: on that platform's manifest only.
    pub platform_annotations: Vec<(whittle_oci::Platform, String, String)>,
    /// `--annotation index:K=V`: on the index of a build of several platforms.
    pub index_annotations: std::collections::BTreeMap<String, String>,
    /// Timestamps in the image (created, history) and the mtime clamp of layers.
    pub epoch: u64,
    pub compression: Compression,
    /// Names the Dockerfile (its path), so that a cache miss can be explained by comparing a
    /// step with the same step of the last build of this Dockerfile in this context.
    pub dockerfile: String,
    /// When a RUN fails, open a shell (the stage's SHELL program) in its container on the
    /// terminal (`--on-failure=shell`), before the build reports the failure: the failed
    /// step's file changes, mounts, environment, user and directory are all there to look at.
    pub on_failure_shell: bool,
    /// Write the target as an image into the store (compressing its new layers). Off when
    /// every output reads only the files (`-o DIR`, `-o type=tar`): see [`crate::export`].
    pub image: bool,
    /// An output reads the target's files ([`BuildResult::rootfs`]): layers found in an
    /// imported cache are then unpacked for it. Off when every output reads only the image.
    pub files: bool,
    /// `--cache-from`: caches to look a key up in when the store's cache misses (see
    /// `solve/remote.rs`).
    pub cache_from: Vec<Arc<whittle_remote_cache::Imported>>,
    /// `--cache-to`: where the build's cache records go when it is done.
    pub cache_to: Vec<CacheExport>,
    /// The one registry (host\[:port\]) every output that reads the image pushes it to, when
    /// nothing else reads its layers' bytes (no archive, daemon or SBOM): the image's layers
    /// from an imported cache on that registry are then recorded as remote in the store, not
    /// fetched, and the push mounts them (`docs/cache.md`).
    pub push_registry: Option<String>,
    /// Give the files of the other stages each target needs ([`PlatformResult::stages`]), for
    /// `build --sbom=scan-stages=true`.
    pub stage_files: bool,
    /// Write the index of the platforms' images for a graph of several ([`BuildResult::index`]).
    /// Off when the caller writes its own (with attestations), so only one index is written.
    pub index: bool,
}

impl BuildOptions {
    /// Worker threads for one piece of work (scanning the context, compressing a layer): the
    /// cores, or fewer with a lower `--jobs`.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.jobs.clamp(1, cores)
    }

    pub fn new(context: PathBuf) -> Self {
        BuildOptions {
            context,
            ignore: Matcher::default(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            network: Network::Isolated,
            allow: Vec::new(),
            secrets: HashMap::new(),
            ssh: HashMap::new(),
            named_contexts: HashMap::new(),
            jobs: usize::MAX,
            labels: Vec::new(),
            annotations: Default::default(),
            platform_annotations: Vec::new(),
            index_annotations: Default::default(),
            ulimits: Vec::new(),
            shm_size: None,
            extra_hosts: Vec::new(),
            seccomp_unconfined: false,
            epoch: whittle_layer::default_epoch(),
            compression: Compression::default(),
            dockerfile: "Dockerfile".into(),
            on_failure_shell: false,
            image: true,
            files: true,
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            push_registry: None,
            stage_files: false,
            index: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {0} is not in the local store: pull it (`whittle pull`, or build without --pull=never) or load it (`whittle load -i <archive>`)")]
    ImageNotFound(String),
    /// The frontend did not know these images, so the environment it gave RUN steps on them
    /// lacks their ENV.
    #[error("the build graph was made without the config of {}: pull or load {} first", .0.join(", "), if .0.len() == 1 { "it" } else { "them" })]
    Unresolved(Vec<String>),
    #[error("stage {stage}, line {line}: {summary}\n  {message}")]
    Step {
        stage: String,
        line: usize,
        summary: String,
        message: String,
    },
    #[error("stage {stage}, line {line}: process \"{command}\" did not complete successfully: exit code: {code}")]
    RunFailed {
        stage: String,
        line: usize,
        command: String,
        code: i32,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// A RUN asks for an entitlement the build was not given (`--allow`).
    #[error("stage {stage}, line {line}: {summary}: {entitlement} is not allowed: pass --allow {entitlement} to grant it")]
    NotAllowed {
        stage: String,
        line: usize,
        summary: String,
        entitlement: crate::Entitlement,
    },
    #[error("the build context: {0}")]
    Context(String),
    #[error("store: {0}")]
    Store(#[from] whittle_store::StoreError),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the layer of {}: {source}", path.display())]
    Layer {
        path: PathBuf,
        source: whittle_layer::WriteError,
    },
    #[error("cannot encode the image config: {0}")]
    Config(#[from] serde_json::Error),
    /// A graph whose vertices do not come before their users, or a target that is not a
    /// vertex: a frontend defect, never the Dockerfile's.
    #[error("the build graph is malformed: {0}")]
    Graph(String),
    #[error("the build was cancelled")]
    Cancelled,
    /// A layer of an imported cache failed a check when it was fetched: the build starts
    /// again without it (it never fails a build).
    #[error("{0}")]
    CacheImport(String),
    /// `--cache-to` could not write the cache.
    #[error("exporting the build cache: {0}")]
    CacheExport(String),
}

type Result<T> = std::result::Result<T, BuildError>;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image, when [`BuildOptions::image`] asked for one: the only platform's, or for a
    /// graph of several platforms, the first's.
    pub image: Option<ImageRecord>,
    /// The first target's files: the snapshot directories of its layers, read as one tree.
    /// They stay while the caller holds a store lease (prune leaves leased stores alone).
    pub rootfs: Merged,
    /// Every target, in the graph's order (one for a single-platform build).
    pub platforms: Vec<PlatformResult>,
    /// The index of the platforms' images, for a graph of several platforms (unless
    /// [`BuildOptions::index`] is off).
    pub index: Option<whittle_store::IndexRecord>,
    /// The build context's digest (the Merkle digest of its files after `.dockerignore`, in
    /// `whittle_context::merkle`'s scheme), when a step read it: for provenance.
    pub context_digest: Option<Digest>,
    pub steps_run: usize,
    pub steps_cached: usize,
    /// Bytes of new layers (uncompressed) whose compressed blocks were taken from the
    /// previous version of the same layer rather than compressed again (incremental COPY).
    pub layer_bytes_reused: u64,
}

/// What a build produced for one platform.
#[derive(Debug, Clone)]
pub struct PlatformResult {
    pub platform: whittle_oci::Platform,
    pub image: Option<ImageRecord>,
    pub rootfs: Merged,
    /// With [`BuildOptions::stage_files`]: the other stages the target needed, in Dockerfile
    /// order.
    pub stages: Vec<StageFiles>,
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) chain_id: Digest,
    pub(crate) diff_id: Digest,
    pub(crate) dir: PathBuf,
    /// (digest, media type, size) of the blob, for base-image layers.
    pub(crate) blob: Option<(Digest, String, u64)>,
    /// The Dockerfile step that made the layer (none for a base image's layers): its stage's
    /// label and its line. Written into the manifest's `dev.whittle.layers` annotation.
    pub(crate) made_by: Option<(String, usize)>,
    /// A layer found in an imported cache: its files are unpacked, and its blob fetched, only
    /// when something reads them (`solve/remote.rs`).
    pub(crate) lazy: Option<Arc<remote::Lazy>>,
}

/// A vertex's result.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    /// The filesystem, bottom layer first.
    layers: Vec<Layer>,
    /// The cache key.
    key: String,
    /// The vertex added a layer (its history entry is not empty).
    added: bool,
    /// An image source's config.
    config: Option<whittle_oci::ImageConfig>,
    /// A context source: its directory and index.
    local: Option<(PathBuf, Arc<Index>)>,
    /// A context source: the files whose content changed since its last scan (see
    /// `MemoryStatCache::changed_since_load`), to name them when a large COPY misses.
    changes: Option<Arc<Vec<String>>>,
}

impl Output {
    fn merged(&self) -> Merged {
        Merged::new(self.layers.iter().rev().map(|l| l.dir.clone()).collect())
    }
    /// What identifies this filesystem's files (for COPY --from keys).
    fn content_id(&self) -> String {
        match self.layers.last() {
            Some(l) => l.chain_id.to_string(),
            None => "empty".into(),
        }
    }
}

pub(crate) fn fold(prev: &str, kind: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update([0]);
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0]);
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A vertex's cache key: its definition digest (which names its inputs' definitions and the
/// graph version), its inputs' keys (which carry what they read), and the content digests the
/// vertex itself reads (`content`: selected files, a downloaded file, the solver's settings).
pub fn cache_key(definition: &str, input_keys: &[&str], content: &[&[u8]]) -> String {
    let mut parts: Vec<&[u8]> = vec![definition.as_bytes()];
    parts.extend(input_keys.iter().map(|k| k.as_bytes()));
    let n = (input_keys.len() as u64).to_le_bytes();
    parts.push(&n);
    parts.extend_from_slice(content);
    fold("", "vertex", &parts)
}

/// A counting semaphore for `--jobs`.
struct Jobs {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Jobs);

impl Jobs {
    fn new(n: usize) -> Self {
        Jobs {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }
    fn acquire(&self) -> Permit<'_> {
        let mut g = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *g == 0 {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        *g -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut g = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *g += 1;
        self.0.cv.notify_one();
    }
}

/// Runs a graph's target into an image in the store.
pub fn build(
    graph: &Graph,
    opts: &BuildOptions,
    store: &Store,
    executor: &dyn Executor,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<BuildResult> {
    if !graph.unresolved_images.is_empty() {
        return Err(BuildError::Unresolved(graph.unresolved_images.clone()));
    }
    // Before any work: a RUN the user did not allow fails the build as a whole.
    crate::entitlements::check(graph, &opts.allow)?;
    // The lease first: prune must not remove the scratch dirs made below, nor snapshots this
    // build has written but not yet recorded.
    let _lease = store.lease()?;
    // Cache and snapshot records are written in one transaction at the end (or every few
    // seconds, and when the build fails), not one per step: see `WriteBatch`.
    let batch = store.batch_writes();
    let dir = store.root().join("snapshots");
    let empty = tempfile::Builder::new()
        .prefix("empty-")
        .tempdir_in(&dir)
        .map_err(|source| BuildError::Io {
            what: "create a scratch dir in",
            path: dir.clone(),
            source,
        })?;
    let solver = Solver {
        graph,
        opts,
        store,
        executor,
        progress,
        cancel: cancel.clone(),
        ids: AtomicUsize::new(0),
        run: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        reused_bytes: std::sync::atomic::AtomicU64::new(0),
        jobs: Jobs::new(opts.jobs),
        empty_dir: empty.path().to_path_buf(),
        used_keys: Mutex::new(Vec::new()),
        remote: remote::State::default(),
        image_layers: if opts.image {
            image_layers(graph)
                .into_iter()
                .map(|v| graph.vertex(v).digest.as_str())
                .collect()
        } else {
            HashSet::new()
        },
    };
    // A layer of an imported cache that fails its checks when fetched is refused and the
    // build starts again: what was built meanwhile is in the store's cache by then.
    let done = solver.run_with_imports()?;
    let mut platforms = Vec::new();
    for t in &graph.targets {
        let image = if opts.image {
            Some(solver.export(t, &done)?)
        } else {
            None
        };
        let rootfs = graph
            .images
            .get(t.image)
            .and_then(|img| done.get(&img.root))
            .map(|o| o.merged())
            .unwrap_or_default();
        let stages = if opts.stage_files {
            solver.stage_files(t, &done)?
        } else {
            Vec::new()
        };
        platforms.push(PlatformResult {
            platform: t.platform.clone(),
            image,
            rootfs,
            stages,
        });
    }
    let index = if opts.image && opts.index && platforms.len() > 1 {
        let images: Vec<&ImageRecord> = platforms.iter().filter_map(|p| p.image.as_ref()).collect();
        Some(store.write_image_index(&images, &opts.index_annotations)?)
    } else {
        None
    };
    let image = platforms.first().and_then(|p| p.image.clone());
    let rootfs = platforms
        .first()
        .map(|p| p.rootfs.clone())
        .unwrap_or_default();
    solver.export_cache(&done)?;
    solver.report_imports();
    let context_digest = graph
        .vertices
        .iter()
        .enumerate()
        .find_map(|(i, vx)| match &vx.op {
            Op::Context(c) if c.name.is_none() => done
                .get(&VertexId(i))
                .and_then(|o| o.local.as_ref())
                .and_then(|(_, ix)| ix.get(""))
                .map(|e| Digest::from_sha256(e.digest)),
            _ => None,
        });
    batch.finish()?;
    let used = solver
        .used_keys
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    store.touch_cache(&used)?;
    Ok(BuildResult {
        image,
        rootfs,
        platforms,
        index,
        context_digest,
        steps_run: solver.run.load(Ordering::Relaxed),
        steps_cached: solver.cached.load(Ordering::Relaxed),
        layer_bytes_reused: solver.reused_bytes.load(Ordering::Relaxed),
    })
}

pub(crate) struct Solver<'a> {
    graph: &'a Graph,
    opts: &'a BuildOptions,
    store: &'a Store,
    executor: &'a dyn Executor,
    progress: &'a dyn Progress,
    cancel: CancelToken,
    ids: AtomicUsize,
    run: AtomicUsize,
    cached: AtomicUsize,
    /// See [`BuildResult::layer_bytes_reused`].
    reused_bytes: std::sync::atomic::AtomicU64,
    jobs: Jobs,
    empty_dir: PathBuf,
    /// Cache records this build used, marked used in one transaction at the end.
    used_keys: Mutex<Vec<String>>,
    /// Imported caches' layers unpacked so far, and what an export of the cache needs.
    remote: remote::State,
    /// The definition digests of the vertices whose layers go into an exported image (see
    /// [`image_layers`]): their commit writes the compressed blob in the same pass that
    /// computes the diff id.
    image_layers: HashSet<&'a str>,
}

/// The vertices whose layers end up in the targets' images: from each target image's root,
/// down the filesystems each step is made on (a RUN's root, what a COPY, ADD or WORKDIR adds
/// onto, every part of a merge), never into what a step only reads (a COPY's source stage, a
/// bind mount).
pub fn image_layers(graph: &Graph) -> BTreeSet<VertexId> {
    let mut todo: Vec<VertexId> = graph
        .targets
        .iter()
        .filter_map(|t| graph.images.get(t.image).map(|i| i.root))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(v) = todo.pop() {
        if v.0 >= graph.vertices.len() || !seen.insert(v) {
            continue;
        }
        match &graph.vertex(v).op {
            Op::Scratch | Op::Image(_) | Op::Context(_) => {}
            Op::Exec(e) => todo.push(e.root),
            Op::Copy(c) => todo.push(c.onto),
            Op::Download(d) => todo.push(d.onto),
            Op::Mkdir(m) => todo.push(m.root),
            Op::Merge(m) => todo.extend(m.inputs.iter().copied()),
        }
    }
    seen
}

/// The vertices the targets need: their filesystems, and the image sources whose configs
/// their images (and the stages they are based on) start from.
pub fn needed(graph: &Graph) -> BTreeSet<VertexId> {
    let mut roots = Vec::new();
    for t in &graph.targets {
        let mut image = Some(t.image);
        while let Some(i) = image.take() {
            let Some(img) = graph.images.get(i) else {
                break;
            };
            roots.push(img.root);
            match img.base {
                whittle_graph::ConfigBase::Image { vertex } => roots.push(vertex),
                whittle_graph::ConfigBase::Stage { image: j } if j < i => image = Some(j),
                _ => {}
            }
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(v) = roots.pop() {
        if v.0 < graph.vertices.len() && seen.insert(v) {
            roots.extend(graph.vertex(v).op.inputs());
        }
    }
    seen
}

impl Solver<'_> {
    /// Runs every needed vertex once its inputs are done, independent ones on threads of their
    /// own (the work itself bounded by `--jobs`). A thread is started only when its vertex is
    /// ready, so no thread waits on others, and a vertex that is the only one that can run
    /// runs on the scheduler's thread: a 36-step chain costs no spawn at all. Stops starting vertices at the first failure and cancels the
    /// running ones.
    pub(crate) fn run_vertices(&self) -> Result<HashMap<VertexId, Arc<Output>>> {
        let needed = needed(self.graph);
        for &v in &needed {
            if self.graph.vertex(v).op.inputs().iter().any(|i| i.0 >= v.0) {
                return Err(BuildError::Graph(format!(
                    "{v} reads a vertex that does not come before it"
                )));
            }
        }
        let mut waiting: Vec<(VertexId, Vec<VertexId>)> = needed
            .iter()
            .map(|&v| (v, self.graph.vertex(v).op.inputs()))
            .collect();
        let mut done: HashMap<VertexId, Arc<Output>> = HashMap::new();
        let mut failed: Option<BuildError> = None;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<(VertexId, Result<Output>)>();
            let mut running = 0usize;
            // `mode=max` cache exports: layers compressed while the next steps run.
            let compress = self.start_compressor(s);
            loop {
                if failed.is_none() {
                    let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut waiting)
                        .into_iter()
                        .partition(|(_, deps)| deps.iter().all(|d| done.contains_key(d)));
                    waiting = rest;
                    // A chain (one vertex ready, nothing running: nothing else can become
                    // ready meanwhile) runs on this thread: no spawn per step.
                    let inline = ready.len() == 1 && running == 0;
                    for (v, deps) in ready {
                        let inputs: HashMap<VertexId, Arc<Output>> = deps
                            .iter()
                            .filter_map(|d| done.get(d).map(|o| (*d, o.clone())))
                            .collect();
                        let tx = tx.clone();
                        running += 1;
                        let work = move || {
                            let r = if self.cancel.is_cancelled() {
                                Err(BuildError::Cancelled)
                            } else {
                                self.vertex(v, &inputs)
                            };
                            let _ = tx.send((v, r));
                        };
                        if inline {
                            work();
                        } else {
                            s.spawn(work);
                        }
                    }
                }
                if running == 0 {
                    break;
                }
                let Ok((v, r)) = rx.recv() else { break };
                running -= 1;
                match r {
                    Ok(out) => {
                        if let (Some(c), Some(l)) = (&compress, background::new_layer(&out)) {
                            let _ = c.send(l);
                        }
                        done.insert(v, Arc::new(out));
                    }
                    Err(e) => {
                        // A refused imported layer restarts the build: the running steps
                        // finish (and are recorded), nothing new starts.
                        if !matches!(e, BuildError::CacheImport(_)) {
                            self.cancel.cancel();
                        }
                        if failed.is_none() {
                            failed = Some(e);
                        }
                    }
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some((v, _)) = waiting.first() {
            return Err(BuildError::Graph(format!("{v} never became ready")));
        }
        Ok(done)
    }

    /// One vertex: its key, then its result from the cache or made.
    fn vertex(&self, v: VertexId, inputs: &HashMap<VertexId, Arc<Output>>) -> Result<Output> {
        let vx = self.graph.vertex(v);
        let input = |id: &VertexId| -> Result<&Output> {
            inputs
                .get(id)
                .map(|a| a.as_ref())
                .ok_or_else(|| BuildError::Graph(format!("{id}, read by {v}, did not finish")))
        };
        match &vx.op {
            Op::Scratch => Ok(Output {
                key: cache_key(&self.graph.key_definition(v), &[], &[]),
                ..Output::default()
            }),
            Op::Image(s) => self.image_source(vx, s),
            Op::Context(c) => {
                let (root, index, changes) = self.local_dir(c.name.as_deref())?;
                Ok(Output {
                    changes,
                    key: cache_key(&self.graph.key_definition(v), &[], &[]),
                    local: Some((root, index)),
                    ..Output::default()
                })
            }
            Op::Exec(e) => self.exec(v, vx, e, inputs),
            Op::Copy(c) => {
                let users = c.owner.users.as_ref().map(input).transpose()?;
                self.copy(v, vx, c, input(&c.onto)?, input(&c.from)?, users)
            }
            Op::Download(d) => {
                let users = d.owner.users.as_ref().map(input).transpose()?;
                self.download(v, vx, d, input(&d.onto)?, users)
            }
            Op::Mkdir(m) => self.mkdir(v, vx, m, input(&m.root)?),
            Op::Merge(m) => {
                let mut layers: Vec<Layer> = Vec::new();
                let mut keys = Vec::new();
                for i in &m.inputs {
                    let o = input(i)?;
                    keys.push(o.key.as_str());
                    for l in &o.layers {
                        // Stacked on what is below: the chain id changes, the diff and the
                        // snapshot dir (and a base layer's blob) do not.
                        let parent = layers.last().map(|p| p.chain_id.clone());
                        layers.push(Layer {
                            chain_id: chain_id(parent.as_ref(), &l.diff_id),
                            ..l.clone()
                        });
                    }
                }
                Ok(Output {
                    key: cache_key(&self.graph.key_definition(v), &keys, &[]),
                    added: m.inputs.len() > 1,
                    layers,
                    ..Output::default()
                })
            }
        }
    }

    /// An image source: the pinned manifest (or the reference's tag in the store), its layers
    /// extracted into snapshots once.
    fn image_source(&self, vx: &Vertex, s: &whittle_graph::ImageSource) -> Result<Output> {
        let (img, cfg, layers) = self.base_image(&s.reference, s.manifest.as_deref())?;
        Ok(Output {
            key: cache_key(&vx.digest, &[], &[img.manifest.as_str().as_bytes()]),
            layers,
            config: Some(cfg),
            ..Output::default()
        })
    }

    /// Resolves an image in the store and makes sure its layers are extracted snapshots.
    fn base_image(
        &self,
        reference: &str,
        manifest: Option<&str>,
    ) -> Result<(ImageRecord, whittle_oci::ImageConfig, Vec<Layer>)> {
        let img = match manifest.and_then(|m| m.parse::<Digest>().ok()) {
            Some(manifest) => self
                .store
                .put_image(&manifest)
                .map_err(|_| BuildError::ImageNotFound(format!("{reference} ({manifest})")))?,
            None => {
                self.store
                    .resolve(reference)
                    .map_err(|_| BuildError::ImageNotFound(reference.to_string()))?
                    .image
            }
        };
        let (cfg, unpacked) = self.store.unpack_image(&img, &|n, total, blob| {
            self.progress.event(Event::Note {
                message: format!(
                    "extracting layer {}/{total} of {reference} ({})",
                    n + 1,
                    &blob.hex()[..12]
                ),
            })
        })?;
        let layers: Vec<Layer> = unpacked
            .into_iter()
            .map(|u| Layer {
                chain_id: u.chain_id,
                diff_id: u.diff_id,
                dir: u.dir,
                blob: Some((u.blob, u.media_type, u.size)),
                made_by: None,
                lazy: None,
            })
            .collect();
        Ok((img, cfg, layers))
    }

    fn created(&self) -> String {
        crate::config::rfc3339(self.opts.epoch)
    }

    fn next_id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Where a vertex is reported: its first origin (a vertex shared by several stages is
    /// built once, under the first stage that reads it).
    fn origin<'v>(&self, vx: &'v Vertex) -> std::borrow::Cow<'v, Origin> {
        match vx.origins.first() {
            Some(o) => std::borrow::Cow::Borrowed(o),
            None => std::borrow::Cow::Owned(Origin {
                stage: 0,
                label: "source".into(),
                step: 0,
                steps: 0,
                line: 0,
                instruction: vx.op.kind().to_string(),
                shell: None,
                platform: None,
            }),
        }
    }

    /// A failed step's error.
    fn step_error(&self, vx: &Vertex, message: String) -> BuildError {
        let o = self.origin(vx);
        BuildError::Step {
            stage: o.label.clone(),
            line: o.line,
            summary: o.instruction.clone(),
            message,
        }
    }

    /// The cache is off for this vertex: `--no-cache`, or `--no-cache-filter` names a stage
    /// the vertex is part of.
    fn no_cache_for(&self, vx: &Vertex) -> bool {
        self.opts.no_cache
            || vx.origins.iter().any(|o| {
                self.opts.no_cache_filter.iter().any(|f| {
                    self.graph.images.iter().any(|img| {
                        img.stage == o.stage
                            && (img.name.as_deref() == Some(f.to_ascii_lowercase().as_str())
                                || *f == img.stage.to_string())
                    })
                })
            })
    }

    /// Looks a key up in the store's cache, then in the imported caches (`--cache-from`).
    /// A miss is explained by the same step's inputs in the last build here, else in the
    /// imported caches (`step` names the step there).
    #[allow(clippy::too_many_arguments)]
    fn lookup(
        &self,
        vx: &Vertex,
        key: &str,
        id: usize,
        identity: &str,
        step: &str,
        inputs: &Value,
        below: &Output,
    ) -> Result<Option<remote::Cached>> {
        if self.no_cache_for(vx) {
            self.progress.event(Event::StepMiss {
                id,
                reason: "the cache is disabled for this stage (--no-cache)".into(),
            });
            return Ok(None);
        }
        let mut pruned = false;
        if let Some(rec) = self.store.get_cache(key)? {
            if let Ok(mut used) = self.used_keys.lock() {
                used.push(key.to_string());
            }
            match StepRecord::decode(&rec.result) {
                Some(StepRecord::Empty) => return Ok(Some(remote::Cached::Local(None))),
                Some(StepRecord::Layer { chain, diff }) => {
                    let dir = self.store.snapshot_path(&chain);
                    if dir.is_dir() && self.store.has_snapshot(&chain)? {
                        return Ok(Some(remote::Cached::Local(Some(Layer {
                            dir,
                            chain_id: chain,
                            diff_id: diff,
                            blob: None,
                            made_by: None,
                            lazy: None,
                        }))));
                    }
                    pruned = true;
                }
                // A record this version cannot read: built again, and overwritten.
                None => {}
            }
        }
        let unused = match self.imported(key, below) {
            Ok(hit) => return Ok(Some(hit)),
            Err(why) => why,
        };
        let reason = if pruned {
            "the cached snapshot was pruned".to_string()
        } else {
            let last = match self
                .store
                .get_cache(identity)?
                .and_then(|r| serde_json::from_str::<Value>(&r.result).ok())
            {
                Some(v) => Some(v),
                None => self.imported_explanation(step),
            };
            explain_miss(last.as_ref(), inputs)
        };
        let reason = match unused {
            Some(why) => format!("{reason} ({why})"),
            None => reason,
        };
        self.progress.event(Event::StepMiss { id, reason });
        Ok(None)
    }

    /// What names a step from one build to the next, whatever its key (hex): the context, the
    /// Dockerfile, the stage and the step's place in it. The last build of the same step
    /// explains a miss, and gives an incremental COPY its files.
    pub(crate) fn step_name(&self, origin: &Origin) -> String {
        hex::encode(Sha256::digest(
            format!(
                "{}\0{}\0{}\0{}",
                self.stat_cache_file().display(),
                self.opts.dockerfile,
                origin.stage,
                origin.progress_label()
            )
            .as_bytes(),
        ))
    }

    /// A vertex that may add a layer onto `below`: cache lookup, else `fill` a fresh
    /// directory, then commit it as a snapshot (no layer if it stayed empty) and record the
    /// result.
    pub(crate) fn layer_step(
        &self,
        vx: &Vertex,
        below: &Output,
        key: String,
        inputs: Value,
        reads: &[&Output],
        fill: impl FnOnce(&Path, &Merged, usize) -> std::result::Result<(), String>,
    ) -> Result<Output> {
        self.layer_step_hinted(vx, below, key, inputs, reads, |dir, merged, id| {
            fill(dir, merged, id).map(|()| None)
        })
    }

    /// [`Solver::layer_step`] whose fill may say which snapshot its files were linked from,
    /// so that the layer takes that snapshot's compressed blocks ([`LayerHint`]).
    pub(crate) fn layer_step_hinted(
        &self,
        vx: &Vertex,
        below: &Output,
        key: String,
        inputs: Value,
        reads: &[&Output],
        fill: impl FnOnce(&Path, &Merged, usize) -> std::result::Result<Option<LayerHint>, String>,
    ) -> Result<Output> {
        let origin = self.origin(vx);
        let id = self.next_id();
        let started = Instant::now();
        self.progress.event(Event::StepStarted {
            id,
            stage: origin.stage,
            label: origin.progress_label(),
            summary: origin.instruction.clone(),
            line: origin.line,
        });
        // What this step read, kept to explain the next build's cache miss.
        let mut inputs = inputs;
        inputs["instruction"] = json!(origin.instruction);
        inputs["parent"] = json!(below.key);
        let identity = format!("explain:{}", self.step_name(&origin));
        // The same step in another runner's cache (its context lives elsewhere).
        let step = remote::step_id(
            &self.opts.dockerfile,
            origin.stage,
            &origin.progress_label(),
        );
        self.note_step(&step, &inputs);
        let mut layers = below.layers.clone();
        let added = match self.lookup(vx, &key, id, &identity, &step, &inputs, below)? {
            Some(hit) => {
                self.cached.fetch_add(1, Ordering::Relaxed);
                match hit {
                    remote::Cached::Local(l) => {
                        self.progress.event(Event::StepCached { id });
                        l
                    }
                    remote::Cached::Imported(l, from) => {
                        self.progress.event(Event::StepCachedFrom { id, from });
                        l
                    }
                }
            }
            None => {
                // The files this step reads, unpacked if they came from an imported cache.
                self.ensure_files(below)?;
                for o in reads {
                    self.ensure_files(o)?;
                }
                let _permit = self.jobs.acquire();
                let sd = self.store.prepare_snapshot()?;
                let merged = below.merged();
                let fill_start = Instant::now();
                let hint = match fill(sd.path(), &merged, id) {
                    Ok(h) => h,
                    Err(message) => {
                        self.progress.event(Event::StepFailed {
                            id,
                            elapsed: started.elapsed(),
                            error: message.clone(),
                        });
                        return Err(self.step_error(vx, message));
                    }
                };
                let mut phases = vec![("fill", fill_start.elapsed())];
                let to_image = self.image_layers.contains(vx.digest.as_str());
                let layer = self.commit(sd, below, to_image, hint.as_ref(), &mut phases)?;
                let record = match &layer {
                    Some(l) => StepRecord::Layer {
                        chain: l.chain_id.clone(),
                        diff: l.diff_id.clone(),
                    },
                    None => StepRecord::Empty,
                };
                self.store.put_cache(
                    &key,
                    &record.encode(),
                    layer.as_ref().map(|l| &l.chain_id),
                )?;
                self.store.put_cache(&identity, &inputs.to_string(), None)?;
                self.run.fetch_add(1, Ordering::Relaxed);
                self.progress.event(Event::StepDone {
                    id,
                    elapsed: started.elapsed(),
                    phases,
                });
                layer
            }
        };
        self.store
            .flush_writes_if_older(std::time::Duration::from_secs(2))?;
        let added = match added {
            Some(mut l) => {
                // A vertex without origins (none so far) gets no line rather than a made-up one.
                l.made_by = (!vx.origins.is_empty()).then(|| (origin.label.clone(), origin.line));
                layers.push(l);
                true
            }
            None => false,
        };
        Ok(Output {
            layers,
            key,
            added,
            ..Output::default()
        })
    }

    /// Turns a filled directory into a snapshot; `None` if it holds nothing.
    ///
    /// The snapshot keeps the real mtimes the step left (a COPY keeps the context's): make and
    /// cargo, in later steps and in cache mounts, need an edited source to look newer than its
    /// object. Its layer clamps them to the epoch; a snapshot whose mtimes differ from its
    /// layer's is marked, so an image is run (and built upon) from a copy that holds exactly
    /// what ships (`Store::unpack_image`).
    ///
    /// A layer that goes into the image (`to_image`) is compressed in the same pass that
    /// computes its diff id, and the blob remembered as [`Solver::compressed_blob`] remembers
    /// it: the export then reads nothing again (a one-file edit of a 170 MB COPY read and
    /// hashed the whole tree twice).
    fn commit(
        &self,
        mut sd: whittle_store::SnapshotDir,
        below: &Output,
        to_image: bool,
        hint: Option<&LayerHint>,
        phases: &mut Vec<(&'static str, std::time::Duration)>,
    ) -> Result<Option<Layer>> {
        let is_empty = std::fs::read_dir(sd.path())
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if is_empty {
            return Ok(None);
        }
        let t = Instant::now();
        let mut blocks = None;
        let info = if to_image {
            let (info, blob, index) =
                self.write_blob_reusing(sd.path(), self.opts.compression, hint)?;
            blocks = index.map(|i| (blob.digest.clone(), i));
            self.reused_bytes.fetch_add(info.reused, Ordering::Relaxed);
            self.remember_blob(&info.diff_id, self.opts.compression, blob)?;
            info
        } else {
            let opts = WriteOptions {
                compression: Compression::None,
                threads: 1,
                epoch: self.opts.epoch,
                source: SourceKind::OverlayUpper,
                exclude: Vec::new(),
            };
            let (info, _) = whittle_layer::write_layer(sd.path(), &opts, std::io::sink()).map_err(
                |source| BuildError::Layer {
                    path: sd.path().to_path_buf(),
                    source,
                },
            )?;
            info
        };
        phases.push(("diff", t.elapsed()));
        if info.mtimes_clamped > 0 {
            sd.mark_local_mtimes();
        }
        sd.mark_built(self.opts.epoch);
        let parent = below.layers.last().map(|l| l.chain_id.clone());
        let chain = chain_id(parent.as_ref(), &info.diff_id);
        let t = Instant::now();
        sd.commit(&chain, parent.as_ref(), &info.diff_id)?;
        if let Some((blob, index)) = blocks {
            // Only a hint for the next edit of this layer: failing to write it fails nothing.
            let _ = self.store.put_layer_blocks(&chain, &blob, &index);
        }
        phases.push(("commit", t.elapsed()));
        Ok(Some(Layer {
            dir: self.store.snapshot_path(&chain),
            chain_id: chain,
            diff_id: info.diff_id,
            blob: None,
            made_by: None,
            lazy: None,
        }))
    }

    /// WORKDIR's directory: nothing when it exists, else created (with missing parents) in its
    /// own layer, as BuildKit does, new directories owned by the stage's USER so that user can
    /// work in it.
    fn mkdir(
        &self,
        v: VertexId,
        vx: &Vertex,
        m: &whittle_graph::Mkdir<VertexId>,
        below: &Output,
    ) -> Result<Output> {
        let key = cache_key(&self.graph.key_definition(v), &[&below.key], &[]);
        // On layers of an imported cache whose record is known, the record says (whether the
        // directory existed or not); otherwise the files answer.
        if !(self.is_lazy(below) && self.imported_has(&key)) {
            self.ensure_files(below)?;
        }
        let merged = below.merged();
        let exists = !self.is_lazy(below)
            && merged
                .resolve(&m.path, true)
                .ok()
                .and_then(|p| merged.locate(&p))
                .is_some_and(|(_, md)| md.is_dir());
        if exists {
            return Ok(Output {
                layers: below.layers.clone(),
                key,
                ..Output::default()
            });
        }
        let path = m.path.clone();
        let owner = m.owner.clone();
        self.layer_step(vx, below, key, json!({}), &[], |dir, below, _| {
            let rel = below
                .resolve(&path, true)
                .unwrap_or_else(|_| path.trim_start_matches('/').to_string());
            let (new_uid, new_gid) = match &owner {
                Some(u) => copy::resolve_chown(u, below)
                    .map_err(|e| format!("cannot create the directory for USER {u}: {e}"))?,
                None => (0, 0),
            };
            let mut cur = dir.to_path_buf();
            for c in crate::merged::components(&rel) {
                cur.push(c);
                if !cur.is_dir() {
                    std::fs::create_dir(&cur).map_err(|e| e.to_string())?;
                    let sub = cur.strip_prefix(dir).map_err(|e| e.to_string())?;
                    let like = below.locate(&sub.to_string_lossy());
                    use std::os::unix::fs::{MetadataExt, PermissionsExt};
                    let (mode, uid, gid) = match like {
                        Some((_, md)) if md.is_dir() => (md.mode() & 0o7777, md.uid(), md.gid()),
                        _ => (0o755, new_uid, new_gid),
                    };
                    std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| e.to_string())?;
                    std::os::unix::fs::lchown(&cur, Some(uid), Some(gid))
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        })
    }
}

/// What a step's fill says about the snapshot it made: its files that are hard links to the
/// files of an earlier snapshot of the same step (incremental COPY), so its layer takes the
/// earlier layer's compressed blocks where they hold the same entries.
pub(crate) struct LayerHint {
    /// Chain id of the earlier snapshot.
    pub(crate) previous: Digest,
    /// Path in the layer -> (device, inode) of the earlier snapshot's file it links to.
    pub(crate) linked: std::collections::HashMap<String, (u64, u64)>,
}

/// The `--chown` (names looked up in `users`, else in `below`) and `--chmod` of a copy.
type CopySettings = (Option<(u32, u32)>, Option<Chmod>);
fn copy_settings(
    owner: &whittle_graph::Owner<VertexId>,
    users: Option<&Output>,
    below: &Output,
) -> std::result::Result<CopySettings, String> {
    let chown = match &owner.chown {
        Some(spec) => {
            let tree = users.unwrap_or(below).merged();
            Some(copy::resolve_chown(spec, &tree).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let chmod = match &owner.chmod {
        Some(m) => Some(Chmod::parse(m).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((chown, chmod))
}

/// Records what a COPY source selected, for explaining a later miss: the files below a
/// directory (up to 2,000; past that the directory as a whole), else the path itself.
fn explain_files(
    index: &Index,
    path: &str,
    digest: &str,
    changes: Option<&[String]>,
    out: &mut serde_json::Map<String, Value>,
    notes: &mut serde_json::Map<String, Value>,
) {
    const MAX: usize = 2000;
    let is_dir = index
        .get(path)
        .is_some_and(|e| e.kind == whittle_context::EntryKind::Dir);
    if is_dir {
        let below: Vec<(&String, &whittle_context::Entry)> = index
            .below(path)
            .filter(|(_, e)| e.kind != whittle_context::EntryKind::Dir)
            .take(MAX + 1)
            .collect();
        if below.len() <= MAX {
            for (p, e) in below {
                out.insert(p.clone(), json!(hex::encode(e.digest)));
            }
            return;
        }
    }
    let name = if path.is_empty() {
        "the build context".to_string()
    } else {
        path.to_string()
    };
    // Too many files to list: the directory's digest stands for them, and the files the
    // context's last scan saw change below it are noted, to name them if this misses.
    if let Some(changes) = changes {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let below: Vec<&String> = changes.iter().filter(|p| p.starts_with(&prefix)).collect();
        if !below.is_empty() {
            notes.insert(
                name.clone(),
                json!({
                    "paths": below.iter().take(NAMED_CHANGES).collect::<Vec<_>>(),
                    "more": below.len().saturating_sub(NAMED_CHANGES),
                }),
            );
        }
    }
    out.insert(name, json!(digest));
}

/// How many changed files a miss explanation names before "and N more".
const NAMED_CHANGES: usize = 5;

/// Why a step missed the cache: what differs from the same step's inputs in the last build.
pub(crate) fn explain_miss(last: Option<&Value>, now: &Value) -> String {
    let Some(last) = last else {
        return "not built before".into();
    };
    let mut reasons = Vec::new();
    if last["instruction"] != now["instruction"] {
        reasons.push(format!(
            "the instruction changed (was: {})",
            last["instruction"].as_str().unwrap_or("?")
        ));
    }
    let vars = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let empty = serde_json::Map::new();
    let (old, new) = (
        last["files"].as_object().unwrap_or(&empty),
        now["files"].as_object().unwrap_or(&empty),
    );
    let mut changed: Vec<String> = Vec::new();
    for (p, d) in new {
        match old.get(p) {
            Some(o) if o == d => {}
            Some(_) => match now["changed"].get(p) {
                // A directory too large to list, with the files its last scan saw change.
                Some(note) => {
                    let paths = vars(&note["paths"]);
                    let more = note["more"].as_u64().unwrap_or(0);
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    changed.push(format!("{p} changed: {}{more}", paths.join(", ")));
                }
                None => changed.push(format!("{p} changed")),
            },
            None => changed.push(format!("{p} added")),
        }
    }
    for p in old.keys().filter(|p| !new.contains_key(*p)) {
        changed.push(format!("{p} removed"));
    }
    if !changed.is_empty() {
        let n = changed.len();
        changed.truncate(3);
        let more = if n > 3 {
            format!(" (and {} more)", n - 3)
        } else {
            String::new()
        };
        reasons.push(format!("{}{more}", changed.join(", ")));
    }
    let (oe, ne) = (vars(&last["env"]), vars(&now["env"]));
    let mut names: Vec<String> = ne
        .iter()
        .filter(|kv| !oe.contains(kv))
        .chain(oe.iter().filter(|kv| !ne.contains(kv)))
        .map(|kv| kv.split('=').next().unwrap_or(kv).to_string())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        reasons.push(format!("environment changed: {}", names.join(", ")));
    }
    for (k, what) in [
        ("workdir", "working directory"),
        ("user", "user"),
        ("mounts", "mounted files"),
        ("owner", "--chown"),
        (
            "settings",
            "the build's RUN settings (--network, --ulimit, ...)",
        ),
    ] {
        if last[k] != now[k] {
            reasons.push(format!("{what} changed"));
        }
    }
    if reasons.is_empty() {
        if last["parent"] != now["parent"] {
            return "an earlier step (or the base image) changed".into();
        }
        return "no cached result for these inputs".into();
    }
    reasons.join("; ")
}

/// The context paths a COPY (or bind mount) source pattern selects, each with the digest of
/// what the copy reads: the copy's own selection (symlinks followed inside the context, as the
/// copy follows them), so a changed link target misses the cache. A pattern the copy would
/// refuse keys as "missing"; the copy then reports the error.
fn fingerprint(index: &Index, root: &Path, pattern: &str) -> Vec<(String, String)> {
    let src = copy::Source::Context { root, index };
    match src.select(pattern) {
        Ok(sel) => sel
            .into_iter()
            .map(|(shown, read)| {
                let d = index
                    .get(&read)
                    .map_or_else(|| "missing".to_string(), |e| hex::encode(e.digest));
                (shown, d)
            })
            .collect(),
        Err(_) => vec![(
            crate::merged::components(pattern).join("/"),
            "missing".to_string(),
        )],
    }
}

/// A private copy of a bind mount's source `sub` (a directory or a single file), selected with
/// COPY's rules inside its root, in a temporary directory under the store. Returns the path of
/// the copied entry: a directory for a directory source, a file for a file source.
fn materialize(
    src: &copy::Source,
    sub: &str,
    keep_owner: bool,
    store: &Store,
    keep: &mut Vec<tempfile::TempDir>,
) -> std::result::Result<PathBuf, String> {
    let tmp = tempfile::Builder::new()
        .prefix("bind-")
        .tempdir_in(store.root().join("snapshots"))
        .map_err(|e| format!("cannot create a bind source: {e}"))?;
    let req = CopyRequest {
        keyword: "RUN --mount",
        sources: &[sub.to_string()],
        inline: &[],
        dest: "/source".into(),
        chown: None,
        chmod: None,
        excludes: &[],
        parents: false,
        unpack_archives: false,
        keep_owner,
    };
    copy::copy_into(&req, src, &Merged::default(), tmp.path())
        .map_err(|e| format!("RUN --mount=type=bind source {sub:?}: {e}"))?;
    let p = tmp.path().join("source");
    // A link whose target is not inside the source (dangling there) is copied as the link
    // itself; mounted, the host would follow it. A bind source must be a file or a directory.
    match std::fs::symlink_metadata(&p) {
        Ok(md) if md.file_type().is_symlink() => {
            return Err(format!(
                "RUN --mount=type=bind source {sub:?}: a symbolic link to nothing inside the \
                 {}: not found",
                src.what()
            ))
        }
        Ok(_) => {}
        // Every source was a wildcard that matched nothing.
        Err(_) => {
            return Err(format!(
                "RUN --mount=type=bind source {sub:?}: not found in the {}",
                src.what()
            ))
        }
    }
    keep.push(tmp);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miss_explanations() {
        let now = json!({"instruction": "COPY . .", "parent": "k1",
            "files": {"a.go": "1", "b.go": "2", "c.go": "3"}, "env": ["A=1", "B=2"]});
        assert_eq!(explain_miss(None, &now), "not built before");
        let last = json!({"instruction": "COPY . .", "parent": "k1",
            "files": {"a.go": "1", "b.go": "0", "d.go": "4"}, "env": ["A=1", "B=3"]});
        assert_eq!(
            explain_miss(Some(&last), &now),
            "b.go changed, c.go added, d.go removed; environment changed: B"
        );
        let last = json!({"instruction": "COPY . /x", "parent": "k0", "files": now["files"], "env": now["env"]});
        assert_eq!(
            explain_miss(Some(&last), &now),
            "the instruction changed (was: COPY . /x)"
        );
        let last = json!({"instruction": "COPY . .", "parent": "k0", "files": now["files"], "env": now["env"]});
        assert_eq!(
            explain_miss(Some(&last), &now),
            "an earlier step (or the base image) changed"
        );
    }

    #[test]
    fn keys_depend_on_every_part() {
        let k = cache_key("sha256:d", &["k1"], &[b"x"]);
        assert_eq!(k, cache_key("sha256:d", &["k1"], &[b"x"]));
        assert_ne!(k, cache_key("sha256:e", &["k1"], &[b"x"]));
        assert_ne!(k, cache_key("sha256:d", &["k2"], &[b"x"]));
        assert_ne!(k, cache_key("sha256:d", &["k1"], &[b"y"]));
        // An input key and a content part never stand in for each other.
        assert_ne!(
            cache_key("sha256:d", &["k1", "x"], &[]),
            cache_key("sha256:d", &["k1"], &[b"x"])
        );
    }
}
