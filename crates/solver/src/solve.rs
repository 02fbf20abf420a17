//! The solver: runs the stages a plan needs (independent stages in parallel, bounded by
//! `jobs`), each step looked up in the cache by a key derived from its definition and its
//! inputs, and exports the target stage as an image into the store.
//!
//! Snapshots are directories in overlayfs format (a RUN's upper dir as it is, a COPY's new
//! files in a fresh directory, base-image layers extracted with overlay whiteouts), keyed by
//! chain id. Layers are tarred and compressed only for the exported image; builder stages never
//! are.

use crate::config;
use crate::copy::{self, Chmod, CopyRequest};
use crate::events::{Event, Progress};
use crate::merged::Merged;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;
use whittle_context::{Index, Matcher, MemoryStatCache};
use whittle_dockerfile::ast::{CmdLine, NetworkMode};
use whittle_dockerfile::mount::{MountType, Sharing};
use whittle_dockerfile::plan::{Base, CopyOp, Op, PlannedMount, Source, Step};
use whittle_dockerfile::{Plan, Platform};
use whittle_layer::{chain_id, Compression, Digest, SourceKind, WriteOptions};
use whittle_runtime::{CancelToken, ContainerSpec, Network, Rootfs, Runtime};
use whittle_store::{ImageRecord, Store};

mod copy_step;
mod export;
mod run_step;
mod sources;

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
    /// the CLI then falls back to the host's network with a warning).
    pub network: Network,
    /// Entitlements granted (`--allow`): `RUN --network=host` needs `network.host`, and
    /// `RUN --security=insecure` `security.insecure` (checked before anything runs).
    pub allow: Vec<crate::Entitlement>,
    /// `--secret` values by id.
    pub secrets: HashMap<String, Vec<u8>>,
    /// Local `--build-context NAME=DIR` directories by name (image contexts are resolved by
    /// the planner).
    pub named_contexts: HashMap<String, PathBuf>,
    /// ssh-agent sockets by id (`--ssh`) for `RUN --mount=type=ssh` (see [`crate::ssh`]).
    pub ssh: HashMap<String, PathBuf>,
    /// At most this many RUN/COPY steps at once.
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
    /// `--annotation`s on the image manifest.
    pub annotations: std::collections::BTreeMap<String, String>,
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
    /// The manifest each image reference resolved to before the build (pulled or found in the
    /// store), keyed by [`image_key`]. References not in it are looked up by tag in the store.
    pub images: HashMap<String, whittle_store::Digest>,
}

/// The key of [`BuildOptions::images`]: an image reference as the Dockerfile names it, for
/// a platform.
pub fn image_key(reference: &str, platform: &Platform) -> String {
    format!("{reference}\0{platform}")
}

impl BuildOptions {
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
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            labels: Vec::new(),
            annotations: Default::default(),
            ulimits: Vec::new(),
            shm_size: None,
            extra_hosts: Vec::new(),
            seccomp_unconfined: false,
            epoch: whittle_layer::default_epoch(),
            compression: Compression::default(),
            dockerfile: "Dockerfile".into(),
            on_failure_shell: false,
            images: HashMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {0} is not in the local store: pull it (`whittle pull`, or build without --pull=never) or load it (`whittle load -i <archive>`)")]
    ImageNotFound(String),
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
    #[error("the build was cancelled")]
    Cancelled,
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, BuildError>;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: ImageRecord,
    pub steps_run: usize,
    pub steps_cached: usize,
}

#[derive(Debug, Clone)]
struct Layer {
    chain_id: Digest,
    diff_id: Digest,
    dir: PathBuf,
    /// (digest, media type, size) of the blob, for base-image layers.
    blob: Option<(Digest, String, u64)>,
}

#[derive(Debug, Clone)]
struct StageState {
    layers: Vec<Layer>,
    config: Value,
    key: String,
    /// CMD still comes from the base (an ENTRYPOINT in this stage resets it).
    inherited_cmd: bool,
}

impl StageState {
    fn merged(&self) -> Merged {
        Merged::new(self.layers.iter().rev().map(|l| l.dir.clone()).collect())
    }
    /// What identifies this stage's files (for COPY --from keys).
    fn content_id(&self) -> String {
        match self.layers.last() {
            Some(l) => l.chain_id.to_string(),
            None => "empty".into(),
        }
    }
}

fn fold(prev: &str, kind: &str, parts: &[&[u8]]) -> String {
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

/// Runs a plan into an image in the store.
pub fn build(
    plan: &Plan,
    opts: &BuildOptions,
    store: &Store,
    runtime: &Runtime,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<BuildResult> {
    // Before any work: a RUN the user did not allow fails the build as a whole.
    crate::entitlements::check(plan, &opts.allow)?;
    // The lease first: prune must not remove the scratch dirs made below, nor snapshots this
    // build has written but not yet recorded.
    let _lease = store.lease()?;
    // Cache and snapshot records are written in one transaction at the end (or every few
    // seconds, and when the build fails), not one per step: see `WriteBatch`.
    let batch = store.batch_writes();
    let empty = tempfile::Builder::new()
        .prefix("empty-")
        .tempdir_in(store.root().join("snapshots"))
        .map_err(|e| BuildError::Other(format!("cannot create a scratch dir in the store: {e}")))?;
    let solver = Solver {
        plan,
        opts,
        store,
        runtime,
        progress,
        cancel: cancel.clone(),
        ids: AtomicUsize::new(0),
        run: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        jobs: Jobs::new(opts.jobs),
        context: OnceLock::new(),
        named: Mutex::new(HashMap::new()),
        empty_dir: empty.path().to_path_buf(),
        used_keys: Mutex::new(Vec::new()),
    };
    let state = solver.run_stages()?;
    let image = solver.export(&state)?;
    batch.finish()?;
    let used = solver
        .used_keys
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    store.touch_cache(&used)?;
    Ok(BuildResult {
        image,
        steps_run: solver.run.load(Ordering::Relaxed),
        steps_cached: solver.cached.load(Ordering::Relaxed),
    })
}

struct Solver<'a> {
    plan: &'a Plan,
    opts: &'a BuildOptions,
    store: &'a Store,
    runtime: &'a Runtime,
    progress: &'a dyn Progress,
    cancel: CancelToken,
    ids: AtomicUsize,
    run: AtomicUsize,
    cached: AtomicUsize,
    jobs: Jobs,
    context: OnceLock<std::result::Result<Arc<Index>, String>>,
    /// Indexes of the local `--build-context` directories used so far, by name.
    named: Mutex<HashMap<String, Arc<Index>>>,
    empty_dir: PathBuf,
    /// Cache records this build used, marked used in one transaction at the end.
    used_keys: Mutex<Vec<String>>,
}

/// Shared between stage threads: finished stages and the first failure.
#[derive(Default)]
struct Board {
    done: HashMap<usize, Arc<StageState>>,
    failed: Option<BuildError>,
}

impl Solver<'_> {
    fn run_stages(&self) -> Result<StageState> {
        let board = Mutex::new(Board::default());
        let cv = Condvar::new();
        std::thread::scope(|s| {
            for &i in &self.plan.order {
                let board = &board;
                let cv = &cv;
                s.spawn(move || {
                    let deps: Vec<usize> = self.plan.stages[i]
                        .deps
                        .iter()
                        .map(|d| d.stage)
                        .filter(|&d| d != i)
                        .collect();
                    let mut g = board.lock().unwrap_or_else(|e| e.into_inner());
                    while g.failed.is_none() && !deps.iter().all(|d| g.done.contains_key(d)) {
                        g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                    }
                    if g.failed.is_some() {
                        return;
                    }
                    let inputs: HashMap<usize, Arc<StageState>> = deps
                        .iter()
                        .filter_map(|d| g.done.get(d).map(|s| (*d, s.clone())))
                        .collect();
                    drop(g);
                    let r = self.run_stage(i, &inputs);
                    let mut g = board.lock().unwrap_or_else(|e| e.into_inner());
                    match r {
                        Ok(st) => {
                            g.done.insert(i, Arc::new(st));
                        }
                        Err(e) => {
                            if g.failed.is_none() {
                                g.failed = Some(e);
                            }
                            self.cancel.cancel();
                        }
                    }
                    cv.notify_all();
                });
            }
        });
        let mut b = board.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = b.failed.take() {
            return Err(e);
        }
        b.done
            .remove(&self.plan.target)
            .map(|s| Arc::try_unwrap(s).unwrap_or_else(|a| (*a).clone()))
            .ok_or_else(|| BuildError::Other("the target stage produced nothing".into()))
    }

    fn platform(&self, stage: usize) -> Platform {
        self.plan.stages[stage]
            .platform
            .as_deref()
            .and_then(Platform::parse)
            .unwrap_or_else(|| self.plan.target_platform.clone())
    }

    fn stage_label(&self, i: usize) -> String {
        self.plan.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    fn no_cache_for(&self, stage: usize) -> bool {
        self.opts.no_cache
            || self.opts.no_cache_filter.iter().any(|f| {
                let s = &self.plan.stages[stage];
                s.name.as_deref() == Some(f.to_ascii_lowercase().as_str())
                    || f == &s.index.to_string()
            })
    }

    fn run_stage(&self, i: usize, inputs: &HashMap<usize, Arc<StageState>>) -> Result<StageState> {
        let stage = &self.plan.stages[i];
        let platform = self.platform(i);
        let mut state = match &stage.base {
            Base::Scratch => StageState {
                layers: Vec::new(),
                config: config::scratch(&platform),
                key: fold("", "scratch", &[platform.to_string().as_bytes()]),
                inherited_cmd: false,
            },
            Base::Stage { index } => {
                let mut st = inputs
                    .get(index)
                    .map(|s| (**s).clone())
                    .ok_or_else(|| BuildError::Other(format!("stage {index} did not finish")))?;
                st.inherited_cmd = true;
                // The base stage's ONBUILD triggers were run by the plan; as for an image,
                // they are not passed on.
                if let Some(c) = st.config.get_mut("config").and_then(Value::as_object_mut) {
                    c.remove("OnBuild");
                }
                st
            }
            Base::Image { reference } => self.base_image(reference, &platform)?,
        };
        let total = stage.steps.len();
        for (n, step) in stage.steps.iter().enumerate() {
            if self.cancel.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            let name = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
            let label = format!("[{name} {}/{}]", n + 1, total);
            self.step(i, &label, step, &mut state, inputs)?;
        }
        Ok(state)
    }

    /// Resolves a base image in the store and makes sure its layers are extracted snapshots.
    fn base_image(&self, reference: &str, platform: &Platform) -> Result<StageState> {
        let img = match self.opts.images.get(&image_key(reference, platform)) {
            Some(manifest) => self
                .store
                .put_image(manifest)
                .map_err(|_| BuildError::ImageNotFound(format!("{reference} ({manifest})")))?,
            None => {
                self.store
                    .resolve(reference)
                    .map_err(|_| BuildError::ImageNotFound(reference.to_string()))?
                    .image
            }
        };
        let (mut cfg, unpacked) = self.store.unpack_image(&img, &|n, total, blob| {
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
            })
            .collect();
        // ONBUILD triggers were run by the plan; the new image does not pass them on.
        if let Some(c) = cfg.get_mut("config").and_then(Value::as_object_mut) {
            c.remove("OnBuild");
        }
        let _ = platform;
        Ok(StageState {
            layers,
            config: cfg,
            key: fold("", "image", &[img.manifest.as_str().as_bytes()]),
            inherited_cmd: true,
        })
    }

    fn created(&self) -> String {
        config::rfc3339(self.opts.epoch)
    }

    fn step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        state: &mut StageState,
        inputs: &HashMap<usize, Arc<StageState>>,
    ) -> Result<()> {
        let labels = self.plan.labels();
        let summary = step.op.summary(&labels);
        let op_json = serde_json::to_vec(&step.op).unwrap_or_default();
        match &step.op {
            Op::Run { .. } => self.run_step(stage, label, step, &summary, &op_json, state, inputs),
            Op::Copy(c) | Op::Add(c) => {
                let kw = if matches!(step.op, Op::Add(_)) {
                    "ADD"
                } else {
                    "COPY"
                };
                self.copy_step(stage, label, step, kw, c, &summary, &op_json, state, inputs)
            }
            Op::Workdir { path } => {
                let mut inherited = state.inherited_cmd;
                config::apply(&mut state.config, &step.op, &mut inherited);
                state.inherited_cmd = inherited;
                state.key = fold(&state.key, "workdir", &[&op_json]);
                let exists = state
                    .merged()
                    .resolve(path, true)
                    .ok()
                    .and_then(|p| state.merged().locate(&p))
                    .is_some_and(|(_, md)| md.is_dir());
                if exists {
                    config::push_history(&mut state.config, &self.created(), &summary, true);
                    return Ok(());
                }
                // The directory does not exist yet: create it in its own layer (as BuildKit),
                // the new directories owned by the stage's USER, so that user can work in it.
                let user = config::user(&state.config);
                self.layer_step(
                    stage,
                    label,
                    step,
                    &summary,
                    state,
                    "mkdir",
                    &[],
                    json!({}),
                    |dir, below, _| {
                        let rel = below
                            .resolve(path, true)
                            .unwrap_or_else(|_| path.trim_start_matches('/').to_string());
                        let (new_uid, new_gid) = match &user {
                            Some(u) => crate::copy::resolve_chown(u, below).map_err(|e| {
                                format!("cannot create the directory for USER {u}: {e}")
                            })?,
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
                                    Some((_, md)) if md.is_dir() => {
                                        (md.mode() & 0o7777, md.uid(), md.gid())
                                    }
                                    _ => (0o755, new_uid, new_gid),
                                };
                                std::fs::set_permissions(
                                    &cur,
                                    std::fs::Permissions::from_mode(mode),
                                )
                                .map_err(|e| e.to_string())?;
                                std::os::unix::fs::lchown(&cur, Some(uid), Some(gid))
                                    .map_err(|e| e.to_string())?;
                            }
                        }
                        Ok(())
                    },
                )
            }
            _ => {
                let mut inherited = state.inherited_cmd;
                config::apply(&mut state.config, &step.op, &mut inherited);
                state.inherited_cmd = inherited;
                // An ARG changes nothing by itself: its value reaches the RUN steps that see
                // it through their environment (part of their keys), so a changed build arg
                // misses only from its first use, as in BuildKit.
                if !matches!(step.op, Op::Arg { .. }) {
                    state.key = fold(&state.key, "meta", &[&op_json]);
                    // BuildKit records no history for ONBUILD (only the config changes).
                    if !matches!(step.op, Op::Onbuild { .. }) {
                        config::push_history(&mut state.config, &self.created(), &summary, true);
                    }
                }
                Ok(())
            }
        }
    }

    fn next_id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Looks a step up in the cache. `Some(None)`: cached, produced no layer.
    fn lookup(
        &self,
        stage: usize,
        key: &str,
        id: usize,
        identity: &str,
        inputs: &Value,
    ) -> Result<Option<Option<Layer>>> {
        if self.no_cache_for(stage) {
            self.progress.event(Event::StepMiss {
                id,
                reason: "the cache is disabled for this stage (--no-cache)".into(),
            });
            return Ok(None);
        }
        let Some(rec) = self.store.get_cache(key)? else {
            let last = self
                .store
                .get_cache(identity)?
                .and_then(|r| serde_json::from_str::<Value>(&r.result).ok());
            self.progress.event(Event::StepMiss {
                id,
                reason: explain_miss(last.as_ref(), inputs),
            });
            return Ok(None);
        };
        if let Ok(mut used) = self.used_keys.lock() {
            used.push(key.to_string());
        }
        if rec.result == "empty" {
            return Ok(Some(None));
        }
        let mut parts = rec.result.splitn(3, ':').skip(1);
        let mut parse_digest = || -> Option<Digest> {
            let alg = "sha256";
            let hexs = parts.next()?;
            format!("{alg}:{hexs}").parse().ok()
        };
        let (Some(chain), Some(diff)) = (parse_digest(), parse_digest()) else {
            return Ok(None);
        };
        let dir = self.store.snapshot_path(&chain);
        if !dir.is_dir() || !self.store.has_snapshot(&chain)? {
            self.progress.event(Event::StepMiss {
                id,
                reason: "the cached snapshot was pruned".into(),
            });
            return Ok(None);
        }
        Ok(Some(Some(Layer {
            chain_id: chain,
            diff_id: diff,
            dir,
            blob: None,
        })))
    }

    /// A step that may produce a layer: cache lookup, else `fill` a fresh directory, then
    /// commit it as a snapshot (no layer if it stayed empty) and record the result.
    #[allow(clippy::too_many_arguments)]
    fn layer_step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        summary: &str,
        state: &mut StageState,
        kind: &str,
        key_parts: &[&[u8]],
        inputs: Value,
        fill: impl FnOnce(&Path, &Merged, usize) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let op_json = serde_json::to_vec(&step.op).unwrap_or_default();
        let mut parts: Vec<&[u8]> = vec![&op_json];
        parts.extend_from_slice(key_parts);
        let key = fold(&state.key, kind, &parts);
        let id = self.next_id();
        let started = Instant::now();
        self.progress.event(Event::StepStarted {
            id,
            stage,
            label: label.to_string(),
            summary: summary.to_string(),
            line: step.pos.line,
        });
        // What this step read, kept to explain the next build's cache miss.
        let mut inputs = inputs;
        inputs["instruction"] = json!(summary);
        inputs["parent"] = json!(state.key);
        let identity = format!(
            "explain:{}",
            hex::encode(Sha256::digest(
                format!(
                    "{}\0{}\0{stage}\0{label}",
                    self.stat_cache_file().display(),
                    self.opts.dockerfile
                )
                .as_bytes()
            ))
        );
        let produced = match self.lookup(stage, &key, id, &identity, &inputs)? {
            Some(layer) => {
                self.cached.fetch_add(1, Ordering::Relaxed);
                self.progress.event(Event::StepCached { id });
                layer
            }
            None => {
                let _permit = self.jobs.acquire();
                let sd = self.store.prepare_snapshot()?;
                let below = state.merged();
                if let Err(message) = fill(sd.path(), &below, id) {
                    self.progress.event(Event::StepFailed {
                        id,
                        elapsed: started.elapsed(),
                        error: message.clone(),
                    });
                    return Err(BuildError::Step {
                        stage: self.stage_label(stage),
                        line: step.pos.line,
                        summary: summary.to_string(),
                        message,
                    });
                }
                let layer = self.commit(sd, state)?;
                let result = match &layer {
                    Some(l) => format!("layer:{}:{}", l.chain_id.hex(), l.diff_id.hex()),
                    None => "empty".into(),
                };
                self.store
                    .put_cache(&key, &result, layer.as_ref().map(|l| &l.chain_id))?;
                self.store.put_cache(&identity, &inputs.to_string(), None)?;
                self.run.fetch_add(1, Ordering::Relaxed);
                self.progress.event(Event::StepDone {
                    id,
                    elapsed: started.elapsed(),
                });
                layer
            }
        };
        self.store
            .flush_writes_if_older(std::time::Duration::from_secs(2))?;
        state.key = key;
        let empty = produced.is_none();
        if let Some(l) = produced {
            state.layers.push(l);
        }
        config::push_history(
            &mut state.config,
            &self.created(),
            &history_text(&step.op, summary),
            empty,
        );
        Ok(())
    }

    /// Turns a filled directory into a snapshot; `None` if it holds nothing.
    ///
    /// The snapshot keeps the real mtimes the step left (a COPY keeps the context's): make and
    /// cargo, in later steps and in cache mounts, need an edited source to look newer than its
    /// object. Its layer clamps them to the epoch; a snapshot whose mtimes differ from its
    /// layer's is marked, so an image is run (and built upon) from a copy that holds exactly
    /// what ships (`Store::unpack_image`).
    fn commit(
        &self,
        mut sd: whittle_store::SnapshotDir,
        state: &StageState,
    ) -> Result<Option<Layer>> {
        let is_empty = std::fs::read_dir(sd.path())
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if is_empty {
            return Ok(None);
        }
        let opts = WriteOptions {
            compression: Compression::None,
            threads: 1,
            epoch: self.opts.epoch,
            source: SourceKind::OverlayUpper,
            exclude: Vec::new(),
        };
        let (info, _) = whittle_layer::write_layer(sd.path(), &opts, std::io::sink())
            .map_err(|e| BuildError::Other(format!("cannot read the new layer: {e}")))?;
        if info.mtimes_clamped > 0 {
            sd.mark_local_mtimes();
        }
        let parent = state.layers.last().map(|l| l.chain_id.clone());
        let chain = chain_id(parent.as_ref(), &info.diff_id);
        sd.commit(&chain, parent.as_ref(), &info.diff_id)?;
        Ok(Some(Layer {
            dir: self.store.snapshot_path(&chain),
            chain_id: chain,
            diff_id: info.diff_id,
            blob: None,
        }))
    }
}

/// The `--chown` (names looked up in the destination stage), `--chmod` and absolute
/// destination of a COPY/ADD.
type CopySettings = (Option<(u32, u32)>, Option<Chmod>, String);
fn copy_settings(c: &CopyOp, below: &Merged) -> std::result::Result<CopySettings, String> {
    let chown = match &c.chown {
        Some(spec) => Some(copy::resolve_chown(spec, below).map_err(|e| e.to_string())?),
        None => None,
    };
    let chmod = match &c.chmod {
        Some(m) => Some(Chmod::parse(m).map_err(|e| e.to_string())?),
        None => None,
    };
    let dest = if c.dest.starts_with('/') {
        c.dest.clone()
    } else {
        format!("{}/{}", c.workdir.trim_end_matches('/'), c.dest)
    };
    Ok((chown, chmod, dest))
}

/// Records what a COPY source selected, for explaining a later miss: the files below a
/// directory (up to 2,000; past that the directory as a whole), else the path itself.
fn explain_files(
    index: &Index,
    path: &str,
    digest: &str,
    out: &mut serde_json::Map<String, Value>,
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
    out.insert(name, json!(digest));
}

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
    let empty = serde_json::Map::new();
    let (old, new) = (
        last["files"].as_object().unwrap_or(&empty),
        now["files"].as_object().unwrap_or(&empty),
    );
    let mut changed: Vec<String> = Vec::new();
    for (p, d) in new {
        match old.get(p) {
            Some(o) if o == d => {}
            Some(_) => changed.push(format!("{p} changed")),
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
    let vars = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
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

/// Is `line` exactly the heredoc marker for `name` (`<<EOF`, `<<-EOF`, `<<'EOF'`, `<< EOF`)?
fn whittle_dockerfile_marker(line: &str, name: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim();
    let unquoted = rest.trim_matches(|c| c == '\'' || c == '"');
    unquoted == name
}

/// The history text BuildKit writes for steps.
/// The `created_by` BuildKit writes: `RUN [|N K=V...] /bin/sh -c CMD # buildkit`,
/// `COPY ... # buildkit`; WORKDIR (and metadata steps, elsewhere) as written.
fn history_text(op: &Op, summary: &str) -> String {
    match op {
        Op::Run {
            cmd, shell, args, ..
        } => {
            let mut s = String::from("RUN ");
            if !args.is_empty() {
                s.push_str(&format!("|{}", args.len()));
                for (k, v) in args {
                    s.push_str(&format!(" {k}={v}"));
                }
                s.push(' ');
            }
            match cmd {
                CmdLine::Shell(c) => s.push_str(&format!("{} {c}", shell.join(" "))),
                CmdLine::Exec(v) => s.push_str(&v.join(" ")),
            }
            s.push_str(" # buildkit");
            s
        }
        Op::Workdir { .. } => summary.to_string(),
        _ => format!("{summary} # buildkit"),
    }
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
) -> Result<PathBuf> {
    let tmp = tempfile::Builder::new()
        .prefix("bind-")
        .tempdir_in(store.root().join("snapshots"))
        .map_err(|e| BuildError::Other(format!("cannot create a bind source: {e}")))?;
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
        .map_err(|e| BuildError::Other(format!("RUN --mount=type=bind source {sub:?}: {e}")))?;
    let p = tmp.path().join("source");
    // A link whose target is not inside the source (dangling there) is copied as the link
    // itself; mounted, the host would follow it. A bind source must be a file or a directory.
    match std::fs::symlink_metadata(&p) {
        Ok(md) if md.file_type().is_symlink() => {
            return Err(BuildError::Other(format!(
                "RUN --mount=type=bind source {sub:?}: a symbolic link to nothing inside the \
                 {}: not found",
                src.what()
            )))
        }
        Ok(_) => {}
        // Every source was a wildcard that matched nothing.
        Err(_) => {
            return Err(BuildError::Other(format!(
                "RUN --mount=type=bind source {sub:?}: not found in the {}",
                src.what()
            )))
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
}
