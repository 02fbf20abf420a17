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
    let engine = Engine {
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
    let state = engine.run_stages()?;
    let image = engine.export(&state)?;
    batch.finish()?;
    let used = engine
        .used_keys
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    store.touch_cache(&used)?;
    Ok(BuildResult {
        image,
        steps_run: engine.run.load(Ordering::Relaxed),
        steps_cached: engine.cached.load(Ordering::Relaxed),
    })
}

struct Engine<'a> {
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

impl Engine<'_> {
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

    fn context_index(&self) -> Result<Arc<Index>> {
        self.context
            .get_or_init(|| {
                let cache_file = self.stat_cache_file();
                let mut cache = MemoryStatCache::load(&cache_file);
                let idx = Index::scan(
                    &self.opts.context,
                    &self.opts.ignore,
                    &mut cache,
                    self.opts.jobs,
                )
                .map_err(|e| e.to_string())?;
                // Rewritten only when something changed: new digests, or files gone.
                if idx.stats.files_hashed > 0 || cache.len() != idx.stats.files {
                    let _ = cache.save(&cache_file, &idx);
                }
                Ok(Arc::new(idx))
            })
            .clone()
            .map_err(BuildError::Context)
    }

    /// A local `--build-context` directory and its index (its own `.dockerignore` applied).
    fn named_index(&self, name: &str) -> Result<(PathBuf, Arc<Index>)> {
        let root = self.opts.named_contexts.get(name).cloned().ok_or_else(|| {
            BuildError::Context(format!("no --build-context named {name:?} was given"))
        })?;
        let mut known = self.named.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(idx) = known.get(name) {
            return Ok((root, idx.clone()));
        }
        let what = |e: String| BuildError::Context(format!("--build-context {name}: {e}"));
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Matcher::parse(&text, &format!("{}/.dockerignore", root.display()))
                .map_err(|e| what(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Matcher::default(),
            Err(e) => return Err(what(format!("cannot read its .dockerignore: {e}"))),
        };
        let mut cache = MemoryStatCache::default();
        let idx = Arc::new(
            Index::scan(&root, &ignore, &mut cache, self.opts.jobs)
                .map_err(|e| what(e.to_string()))?,
        );
        known.insert(name.to_string(), idx.clone());
        Ok((root, idx))
    }

    fn stat_cache_file(&self) -> PathBuf {
        let abs =
            std::fs::canonicalize(&self.opts.context).unwrap_or_else(|_| self.opts.context.clone());
        // One cache per context directory and set of ignore rules: builds of the same
        // directory with different .dockerignore files keep each other's digests.
        let mut h = Sha256::new();
        h.update(abs.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(self.opts.ignore.fingerprint().as_bytes());
        let h = hex::encode(h.finalize());
        let dir = self.store.root().join("contexts");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{}.stat", &h[..32]))
    }

    /// What a `COPY --from` reads, for its cache key: the content digest of each copied path
    /// in the source stage (so a change elsewhere in that stage keeps the COPY cached, as in
    /// BuildKit), memoized per source snapshot and path. Wildcard sources fall back to the
    /// whole stage's identity.
    fn copied_content(
        &self,
        st: &StageState,
        merged: &Merged,
        sources: &[String],
        files: &mut serde_json::Map<String, Value>,
    ) -> std::result::Result<String, String> {
        let mut id = String::new();
        for src in sources {
            let digest = if src.contains(['*', '?', '[']) {
                format!("stage:{}", st.content_id())
            } else {
                let memo = format!("tree:{}:{src}", st.content_id());
                match self.store.get_cache(&memo).map_err(|e| e.to_string())? {
                    Some(rec) => rec.result,
                    None => {
                        let d = match merged.tree_digest(src).map_err(|e| format!("{src}: {e}"))? {
                            Some(d) => hex::encode(d),
                            None => "missing".to_string(),
                        };
                        self.store
                            .put_cache(&memo, &d, None)
                            .map_err(|e| e.to_string())?;
                        d
                    }
                }
            };
            id.push_str(&format!("{src}={digest}\n"));
            files.insert(src.clone(), json!(digest));
        }
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        kw: &'static str,
        c: &CopyOp,
        summary: &str,
        _op_json: &[u8],
        state: &mut StageState,
        inputs: &HashMap<usize, Arc<StageState>>,
    ) -> Result<()> {
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        if c.sources
            .iter()
            .any(|s| s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#"))
        {
            return Err(fail(
                "git repositories as ADD sources are not supported yet: clone in a RUN step or copy a checkout from the context".into(),
            ));
        }
        let urls = c.sources.iter().filter(|s| crate::fetch::is_url(s)).count();
        if urls > 0 {
            if kw == "COPY" {
                return Err(fail("COPY cannot download URLs: use ADD".into()));
            }
            if urls != c.sources.len() {
                return Err(fail(
                    "one ADD cannot mix URLs and local files: split it into two ADD instructions"
                        .into(),
                ));
            }
            return self.add_urls(stage, label, step, c, summary, state);
        }
        if c.checksum.is_some() {
            return Err(fail("--checksum applies to URL sources only".into()));
        }
        // Where the files come from, and what identifies them for the cache key.
        let index;
        let named;
        let merged_src;
        let mut files = serde_json::Map::new();
        let (src, src_id): (copy::Source, String) = match &c.from {
            Source::Named { name } => {
                named = self.named_index(name)?;
                let mut id = format!("context {name}\n");
                for s in &c.sources {
                    id.push_str(s);
                    id.push('\n');
                    for (p, d) in fingerprint(&named.1, &named.0, s) {
                        id.push_str(&format!("{p}={d}\n"));
                        explain_files(&named.1, &p, &d, &mut files);
                    }
                }
                (
                    copy::Source::Context {
                        root: &named.0,
                        index: &named.1,
                    },
                    id,
                )
            }
            Source::Context => {
                index = self.context_index()?;
                let mut id = String::new();
                for s in &c.sources {
                    id.push_str(s);
                    id.push('\n');
                    for (p, d) in fingerprint(&index, &self.opts.context, s) {
                        id.push_str(&p);
                        id.push('=');
                        id.push_str(&d);
                        id.push('\n');
                        explain_files(&index, &p, &d, &mut files);
                    }
                }
                (
                    copy::Source::Context {
                        root: &self.opts.context,
                        index: &index,
                    },
                    id,
                )
            }
            Source::Stage { index: j } => {
                let st = inputs
                    .get(j)
                    .ok_or_else(|| fail(format!("stage {j} did not finish")))?;
                merged_src = st.merged();
                let id = self
                    .copied_content(st, &merged_src, &c.sources, &mut files)
                    .map_err(fail)?;
                (copy::Source::Merged(&merged_src), id)
            }
            Source::Image { reference } => {
                let st = self.base_image(reference, &self.platform(stage))?;
                merged_src = st.merged();
                (copy::Source::Merged(&merged_src), st.content_id())
            }
        };
        let (chown, chmod, dest) = copy_settings(c, &state.merged()).map_err(fail)?;
        let inline: Vec<(String, String)> = c
            .inline
            .iter()
            .map(|f| (f.name.clone(), f.content.clone()))
            .collect();
        let local = matches!(c.from, Source::Context | Source::Named { .. });
        let unpack = kw == "ADD" && c.unpack != Some(false) && local;
        let keep_owner = !local;
        let owner_key = format!("{chown:?}");
        self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "copy",
            &[src_id.as_bytes(), owner_key.as_bytes()],
            json!({"files": files, "owner": owner_key}),
            |dir, below, _| {
                let req = CopyRequest {
                    keyword: kw,
                    sources: &c.sources,
                    inline: &inline,
                    dest: dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &c.excludes,
                    parents: c.parents,
                    unpack_archives: unpack,
                    keep_owner,
                };
                // --link: the layer is made on its own, as if on an empty filesystem (BuildKit:
                // symlinks and directories of the stage below are not looked at).
                let nothing = Merged::new(Vec::new());
                let below = if c.link { &nothing } else { below };
                copy::copy_into(&req, &src, below, dir)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
    }

    /// `ADD <url>... <dest>`: downloads become files of mode 0600 (as Docker), owned by root
    /// unless `--chown`, never unpacked. With `--checksum` the cache key is the checksum, so a
    /// hit downloads nothing; without it the content is downloaded and its digest is the key.
    fn add_urls(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        c: &CopyOp,
        summary: &str,
        state: &mut StageState,
    ) -> Result<()> {
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        let dl = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(self.store.root().join("snapshots"))
            .map_err(|e| fail(format!("cannot create a download dir: {e}")))?;
        let mut names: Vec<String> = Vec::new();
        let mut id = String::new();
        let mut files = serde_json::Map::new();
        if let (Some(sum), true) = (&c.checksum, c.sources.len() != 1) {
            return Err(fail(format!("--checksum={sum} needs exactly one URL")));
        }
        for url in &c.sources {
            let name = crate::fetch::file_name(url);
            if names.contains(&name) {
                return Err(fail(format!("two URLs download to the same name {name:?}")));
            }
            let digest = match &c.checksum {
                Some(sum) => sum.clone(),
                None => {
                    self.progress.event(Event::Note {
                        message: format!("downloading {url}"),
                    });
                    crate::fetch::download(url, &dl.path().join(&name), None)
                        .map_err(|e| fail(e.to_string()))?
                }
            };
            id.push_str(&format!("{url}={digest}\n"));
            files.insert(url.clone(), json!(digest));
            names.push(name);
        }
        let (chown, chmod, dest) = copy_settings(c, &state.merged()).map_err(fail)?;
        let owner_key = format!("{chown:?}");
        self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "add-url",
            &[id.as_bytes(), owner_key.as_bytes()],
            json!({"files": files, "owner": owner_key}),
            |dir, below, _| {
                use std::os::unix::fs::PermissionsExt;
                for (url, name) in c.sources.iter().zip(&names) {
                    let p = dl.path().join(name);
                    if !p.exists() {
                        crate::fetch::download(url, &p, c.checksum.as_deref())
                            .map_err(|e| e.to_string())?;
                    }
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| e.to_string())?;
                }
                let mut cache = MemoryStatCache::default();
                let index = Index::scan(dl.path(), &Matcher::default(), &mut cache, 1)
                    .map_err(|e| e.to_string())?;
                let src = copy::Source::Context {
                    root: dl.path(),
                    index: &index,
                };
                let req = CopyRequest {
                    keyword: "ADD",
                    sources: &names,
                    inline: &[],
                    dest: dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &[],
                    parents: false,
                    unpack_archives: false,
                    keep_owner: false,
                };
                let nothing = Merged::new(Vec::new());
                let below = if c.link { &nothing } else { below };
                copy::copy_into(&req, &src, below, dir)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        summary: &str,
        _op_json: &[u8],
        state: &mut StageState,
        inputs: &HashMap<usize, Arc<StageState>>,
    ) -> Result<()> {
        let Op::Run {
            cmd,
            shell,
            heredocs,
            mounts,
            network,
            args,
            ..
        } = &step.op
        else {
            return Ok(());
        };
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        // The command line, with BuildKit's heredoc rules.
        let mut extra_files: Vec<(String, String)> = Vec::new();
        let argv: Vec<String> = match cmd {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(line) => {
                let only_heredoc = heredocs.len() == 1
                    && whittle_dockerfile_marker(line.trim(), &heredocs[0].name);
                if only_heredoc {
                    let body = &heredocs[0].content;
                    if body.starts_with("#!") {
                        let path = format!("/dev/pipes/{}", heredocs[0].name);
                        extra_files.push((path.clone(), body.clone()));
                        vec![path]
                    } else {
                        shell.iter().cloned().chain([body.clone()]).collect()
                    }
                } else if heredocs.is_empty() {
                    shell.iter().cloned().chain([line.clone()]).collect()
                } else {
                    let mut script = line.clone();
                    for h in heredocs {
                        script.push('\n');
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                    }
                    shell.iter().cloned().chain([script]).collect()
                }
            }
        };
        if argv.is_empty() {
            return Err(fail("RUN has no command".into()));
        }
        // Environment: the image's ENV, then ARGs that ENV does not shadow.
        let mut env: Vec<String> = config::env(&state.config)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (k, v) in args {
            env.push(format!("{k}={v}"));
        }
        // Layers are clamped to the build's epoch, so build tools are told it: Python then
        // writes hash-checked .pyc files (valid whatever the mtimes), compilers use it for
        // __DATE__. BuildKit passes it only with `ARG SOURCE_DATE_EPOCH`, but it does not clamp
        // by default either (docs/conformance.md). An ENV or ARG of the same name wins.
        if !env.iter().any(|kv| kv.starts_with("SOURCE_DATE_EPOCH=")) {
            env.push(format!("SOURCE_DATE_EPOCH={}", self.opts.epoch));
        }
        let cwd = config::workdir(&state.config);
        let user = config::user(&state.config);
        // Mount inputs that change the result belong in the key.
        let mut mount_ids = String::new();
        for m in mounts {
            if m.spec.kind == MountType::Bind {
                match &m.source_ref {
                    None | Some(Source::Context) => {
                        let idx = self.context_index()?;
                        let src = m.spec.source.clone().unwrap_or_default();
                        for (p, d) in fingerprint(&idx, &self.opts.context, &src) {
                            mount_ids.push_str(&format!("{p}={d}\n"));
                        }
                    }
                    Some(Source::Named { name }) => {
                        let (root, idx) = self.named_index(name)?;
                        let src = m.spec.source.clone().unwrap_or_default();
                        mount_ids.push_str(&format!("context {name}\n"));
                        for (p, d) in fingerprint(&idx, &root, &src) {
                            mount_ids.push_str(&format!("{p}={d}\n"));
                        }
                    }
                    Some(Source::Stage { index }) => {
                        if let Some(st) = inputs.get(index) {
                            mount_ids.push_str(&st.content_id());
                        }
                    }
                    Some(Source::Image { reference }) => {
                        // The image itself, not its name: a tag can move.
                        let st = self.base_image(reference, &self.plan.target_platform)?;
                        mount_ids.push_str(&st.content_id());
                    }
                }
            }
        }
        let mut env_key = serde_json::to_vec(&json!([env, cwd, user])).unwrap_or_default();
        // Limits change what a step may do, so they are part of its key (as in BuildKit's
        // exec op); absent, the key is what it was before the flags existed.
        if !self.opts.ulimits.is_empty()
            || self.opts.shm_size.is_some()
            || !self.opts.extra_hosts.is_empty()
            || self.opts.seccomp_unconfined
        {
            let limits: Vec<String> = self
                .opts
                .ulimits
                .iter()
                .map(|l| format!("{:?}={}:{}", l.resource, l.soft, l.hard))
                .collect();
            env_key.extend_from_slice(
                format!(
                    "\0{limits:?} shm={:?} hosts={:?} unconfined={}",
                    self.opts.shm_size, self.opts.extra_hosts, self.opts.seccomp_unconfined
                )
                .as_bytes(),
            );
        }
        let net = match network {
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
            Some(NetworkMode::Default) | None => self.opts.network,
        };
        let stage_label = self.stage_label(stage);
        let command_text = match cmd {
            CmdLine::Exec(v) => v.join(" "),
            CmdLine::Shell(s) => format!("{} {s}", shell.join(" ")),
        };
        let tail: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let exit_code: Mutex<Option<i32>> = Mutex::new(None);
        let result = self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "run",
            &[&env_key, mount_ids.as_bytes()],
            json!({"env": env, "workdir": cwd, "user": user, "mounts": mount_ids}),
            |upper, below, id| {
                let lower: Vec<PathBuf> = if below.layers().is_empty() {
                    vec![self.empty_dir.clone()]
                } else {
                    below.layers().to_vec()
                };
                let mut spec = ContainerSpec::new(
                    Rootfs::Overlay {
                        lower,
                        upper: upper.to_path_buf(),
                    },
                    argv.clone(),
                );
                spec.env = env.clone();
                spec.cwd = cwd.clone();
                spec.user = user.clone();
                spec.network = net;
                for l in &self.opts.ulimits {
                    spec.rlimits.retain(|d| d.resource != l.resource);
                    spec.rlimits.push(*l);
                }
                spec.shm_size = self.opts.shm_size;
                spec.extra_hosts = self.opts.extra_hosts.clone();
                spec.seccomp_unconfined = self.opts.seccomp_unconfined;
                let mut _held = Vec::new();
                let mut tmp_dirs = Vec::new();
                let mut _agents = Vec::new();
                for m in mounts {
                    let (mount, hold) = self
                        .runtime_mount(m, inputs, &mut spec.env, &mut tmp_dirs, &mut _agents)
                        .map_err(|e| e.to_string())?;
                    if let Some(mount) = mount {
                        spec.mounts.push(mount);
                    }
                    _held.extend(hold);
                }
                for (path, body) in &extra_files {
                    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let f = d.path().join("script");
                    std::fs::write(&f, body).map_err(|e| e.to_string())?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| e.to_string())?;
                    spec.mounts.push(whittle_runtime::Mount {
                        target: path.clone(),
                        kind: whittle_runtime::MountKind::Bind {
                            source: f,
                            rw: false,
                        },
                    });
                    tmp_dirs.push(d);
                }
                let mut sink = |stream: whittle_runtime::Stream, line: &[u8]| {
                    let text = String::from_utf8_lossy(line).into_owned();
                    if let Ok(mut t) = tail.lock() {
                        t.push(text.clone());
                        if t.len() > 20 {
                            t.remove(0);
                        }
                    }
                    self.progress.event(Event::StepLog {
                        id,
                        stderr: stream == whittle_runtime::Stream::Stderr,
                        line: text,
                    });
                };
                let status = self
                    .runtime
                    .run(&spec, &mut sink, &self.cancel)
                    .map_err(|e| e.to_string())?;
                if !status.success() {
                    if let Ok(mut c) = exit_code.lock() {
                        *c = Some(status.code());
                    }
                    if self.opts.on_failure_shell {
                        let program = shell.first().map_or("/bin/sh", String::as_str);
                        self.debug_shell(spec, program, label, status.code());
                    }
                    return Err(format!("exit code: {}", status.code()));
                }
                Ok(())
            },
        );
        match result {
            Err(BuildError::Step { .. }) if exit_code.lock().ok().and_then(|c| *c).is_some() => {
                let code = exit_code.lock().ok().and_then(|c| *c).unwrap_or(1);
                Err(BuildError::RunFailed {
                    stage: stage_label,
                    line: step.pos.line,
                    command: command_text,
                    code,
                    tail: tail.into_inner().unwrap_or_default(),
                })
            }
            Err(BuildError::Step { message, .. }) if self.cancel.is_cancelled() => {
                let _ = message;
                Err(BuildError::Cancelled)
            }
            other => other,
        }
    }

    /// `--on-failure=shell`: the failed RUN's container again, with an interactive shell on the
    /// terminal instead of its command. One at a time, with the live view paused.
    fn debug_shell(&self, mut spec: ContainerSpec, program: &str, label: &str, code: i32) {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        spec.args = vec![program.to_string()];
        spec.tty = true;
        spec.stdin = whittle_runtime::Stdin::Inherit;
        let mut run = || {
            eprintln!(
                "\n{label} failed with exit code {code}: a shell in its container (its changes \
                 are discarded when the shell exits)"
            );
            let mut sink = |_: whittle_runtime::Stream, _: &[u8]| {};
            match self.runtime.run(&spec, &mut sink, &self.cancel) {
                Ok(_) => {}
                Err(e) => eprintln!("cannot open the debug shell: {e}"),
            }
        };
        self.progress.suspend(&mut run);
    }

    /// A `RUN --mount` for the runtime, plus whatever must stay alive during the run (locks).
    fn runtime_mount(
        &self,
        m: &PlannedMount,
        inputs: &HashMap<usize, Arc<StageState>>,
        env: &mut Vec<String>,
        tmp_dirs: &mut Vec<tempfile::TempDir>,
        agents: &mut Vec<crate::ssh::AgentProxy>,
    ) -> Result<(
        Option<whittle_runtime::Mount>,
        Vec<whittle_store::CacheMount>,
    )> {
        use whittle_runtime::MountKind as K;
        let s = &m.spec;
        let target = s.target.clone();
        Ok(match s.kind {
            MountType::Bind => {
                let sub = s.source.clone().unwrap_or_default();
                // Never the host path itself: the source is selected inside its root (context
                // symlinks resolved inside the context, `..` refused, `.dockerignore` applied)
                // and copied, so neither a hostile source nor a `rw` mount reaches host files.
                let source = match &m.source_ref {
                    None | Some(Source::Context) => {
                        let index = self.context_index()?;
                        let src = copy::Source::Context {
                            root: &self.opts.context,
                            index: &index,
                        };
                        materialize(&src, &sub, false, self.store, tmp_dirs)?
                    }
                    Some(Source::Named { name }) => {
                        let (root, index) = self.named_index(name)?;
                        let src = copy::Source::Context {
                            root: &root,
                            index: &index,
                        };
                        materialize(&src, &sub, false, self.store, tmp_dirs)?
                    }
                    Some(Source::Stage { index }) => {
                        let st = inputs.get(index).ok_or_else(|| {
                            BuildError::Other(format!("stage {index} did not finish"))
                        })?;
                        let merged = st.merged();
                        let src = copy::Source::Merged(&merged);
                        materialize(&src, &sub, true, self.store, tmp_dirs)?
                    }
                    Some(Source::Image { reference }) => {
                        let st = self.base_image(reference, &self.plan.target_platform)?;
                        let merged = st.merged();
                        let src = copy::Source::Merged(&merged);
                        materialize(&src, &sub, true, self.store, tmp_dirs)?
                    }
                };
                (
                    Some(whittle_runtime::Mount {
                        target,
                        kind: K::Bind {
                            source,
                            rw: !s.readonly,
                        },
                    }),
                    Vec::new(),
                )
            }
            MountType::Cache => {
                let mut id = s.id.clone().unwrap_or_else(|| s.target.clone());
                // As in BuildKit, a cache made with another owner or mode is another cache:
                // `id=x,uid=1000` and `id=x` do not share (and never fight over) the directory.
                if s.uid.is_some() || s.gid.is_some() || s.mode.is_some() {
                    id = format!(
                        "{id} (uid {}, gid {}, mode {:o})",
                        s.uid.unwrap_or(0),
                        s.gid.unwrap_or(0),
                        s.mode.unwrap_or(0o755)
                    );
                }
                let cm = self.store.cache_mount(&id, s.sharing != Sharing::Shared)?;
                let source = cm.path.clone();
                (
                    Some(whittle_runtime::Mount {
                        target,
                        kind: K::Cache {
                            source,
                            uid: s.uid,
                            gid: s.gid,
                            mode: s.mode,
                        },
                    }),
                    vec![cm],
                )
            }
            MountType::Tmpfs => (
                Some(whittle_runtime::Mount {
                    target,
                    kind: K::Tmpfs { size: s.size },
                }),
                Vec::new(),
            ),
            MountType::Secret => {
                let id = s.id.clone().unwrap_or_default();
                match self.opts.secrets.get(&id) {
                    None if s.required => {
                        return Err(BuildError::Other(format!(
                            "secret {id:?} is required but was not given: pass --secret id={id},src=<file>"
                        )))
                    }
                    None => (None, Vec::new()),
                    Some(data) => {
                        if let Some(var) = &s.env {
                            env.push(format!("{var}={}", String::from_utf8_lossy(data)));
                        }
                        if s.env.is_some() && s.target.is_empty() {
                            (None, Vec::new())
                        } else {
                            (
                                Some(whittle_runtime::Mount {
                                    target,
                                    kind: K::Secret {
                                        data: data.clone(),
                                        mode: s.mode.unwrap_or(0o400),
                                        uid: s.uid.unwrap_or(0),
                                        gid: s.gid.unwrap_or(0),
                                    },
                                }),
                                Vec::new(),
                            )
                        }
                    }
                }
            }
            MountType::Ssh => {
                let id = s.id.clone().unwrap_or_else(|| "default".into());
                // The first ssh mount is the one ssh finds, as in BuildKit, which sets this
                // also when the (optional) agent was not given.
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                match self.opts.ssh.get(&id) {
                    Some(agent) => {
                        // A socket of the step's own, relaying to the agent (see ssh.rs).
                        let proxy = crate::ssh::AgentProxy::start(
                            agent,
                            s.uid.unwrap_or(0),
                            s.gid.unwrap_or(0),
                            s.mode.unwrap_or(0o600),
                        )
                        .map_err(|e| BuildError::Other(e.to_string()))?;
                        let socket = proxy.path().to_path_buf();
                        agents.push(proxy);
                        (
                            Some(whittle_runtime::Mount {
                                target,
                                kind: K::Ssh { socket },
                            }),
                            Vec::new(),
                        )
                    }
                    None if s.required => {
                        let pass = if id == "default" {
                            "--ssh default (the agent of $SSH_AUTH_SOCK)".to_string()
                        } else {
                            format!("--ssh {id}=/path/to/key (or --ssh {id} for $SSH_AUTH_SOCK)")
                        };
                        return Err(BuildError::Other(format!(
                            "RUN --mount=type=ssh,id={id},required needs an ssh agent: pass {pass}"
                        )));
                    }
                    // Not required: the step runs without it, as in BuildKit.
                    None => (None, Vec::new()),
                }
            }
        })
    }

    /// Writes the target stage as an image into the store.
    fn export(&self, state: &StageState) -> Result<ImageRecord> {
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
