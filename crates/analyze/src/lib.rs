//! Image analysis: where an image's bytes go, and how to cut them.
//!
//! [`analyze`] reads an image (from the store, or a `docker-archive:`, `oci-archive:` or `oci:`
//! layout read in place, without adding it to the store), streams each layer's tar once (several
//! layers at once, never a whole layer in memory), stacks the layers, and returns an
//! [`Analysis`]:
//!
//! - per layer: dive's size, the history's `created_by`, files added, changed and removed;
//! - dive's figures with dive's definitions (`efficiency.rs`): efficiency score, wasted bytes,
//!   user wasted percent (the first layer counts as the base image), the inefficient files;
//! - findings beyond dive (`findings/`), each with its bytes, the layer that caused it and a
//!   fix: files deleted, hidden or overwritten by a later layer, the same content in several
//!   layers, package-manager caches, compiler toolchains, docs, test suites, unstripped
//!   binaries, stale Python bytecode, dynamically linked programs without their loader or
//!   libraries, setuid and world-writable files, secrets;
//! - [`CiRules`]: dive's `--ci` rules.
//!
//! [`diff()`] compares two images' final filesystems (`whittle diff`). [`analyze_with_map`]
//! also maps the final filesystem, and [`html::render`] writes the analysis as one
//! self-contained HTML page with a treemap of that map.
//!
//! The JSON form of an [`Analysis`] is a superset of dive's JSON export. No CLI logic lives
//! here: `whittle analyze` parses arguments, calls [`analyze`] and renders.
//!
//! ## Untrusted input
//!
//! Images are untrusted. Every entry name is normalised inside the image's root (`..` stops at
//! the root); archive members and OCI blobs are looked up by checked digests and normalised
//! paths inside the archive or layout. Memory is bounded by [`Limits`]: entries across all
//! layers (each kept entry costs roughly 150 bytes plus its path), path length, PAX/GNU record
//! size, layers, document size. When a limit is exceeded the analysis stops with
//! [`AnalyzeError::Limit`] rather than report figures for part of an image. Time is linear in
//! the uncompressed size of the layers.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod archive;
mod cache;
pub mod ci;
pub mod diff;
mod efficiency;
mod elf;
mod error;
pub mod findings;
mod fsmap;
pub mod html;
mod image;
mod input;
pub mod layers;
mod merge;
pub mod path;
mod remote;
mod report;
mod scan;
mod tarx;
mod tree;
pub mod tui;

pub use ci::{CiReport, CiRules, RuleResult, RuleStatus};
pub use diff::{diff, Diff, DiffOptions};
pub use error::{AnalyzeError, Result};
pub use fsmap::{FsMap, MapKind, MapNode, MapOptions};
pub use input::Input;
pub use report::{
    clean, Analysis, FileReference, Finding, FindingKind, FindingPath, ImageSummary, Layer,
    LayerOrigin,
};

use scan::Kind;
use whittle_store::Store;

/// Bounds on what an image may make the analysis hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tar entries across all layers (default 2,000,000: a few hundred MB at most).
    pub max_entries: u64,
    /// Bytes of one entry name (default 4096, Linux's PATH_MAX).
    pub max_path: usize,
    /// Bytes of one PAX or GNU long-name record (default 1 MiB).
    pub max_extension: u64,
    /// Layers (default 1000).
    pub max_layers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            max_path: 4096,
            max_extension: 1 << 20,
            max_layers: 1000,
        }
    }
}

/// How to analyse.
#[derive(Clone, Debug)]
pub struct Options {
    /// Layers read at once (default: the machine's cores).
    pub threads: usize,
    /// Size findings (everything but secrets, setuid and world-writable files) smaller than
    /// this are left out (default 1024 bytes: a few stray bytes are not worth a line).
    pub min_finding_bytes: u64,
    /// Bounds.
    pub limits: Limits,
    /// Use and fill the per-layer summary cache of the store (`cache.rs`) for images in the
    /// store (default true).
    pub cache: bool,
    /// How to reach registries, for `docker://REF` images (default: the environment's
    /// certificates and credentials, plain HTTP for loopback registries only).
    pub registry: whittle_registry::ClientOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            min_finding_bytes: 1024,
            limits: Limits::default(),
            cache: true,
            registry: whittle_registry::ClientOptions::default(),
        }
    }
}

/// Analyses an image. `store` is needed for [`Input::Store`] only.
pub fn analyze(input: &Input, store: Option<&Store>, opts: &Options) -> Result<Analysis> {
    let (meta, scans) = input::load(input, store, opts)?;
    Ok(build(meta, scans, opts, None).0)
}

/// Analyses an image and maps its final filesystem (sizes, and the layer that last wrote each
/// file) for [`html::render`]'s treemap, bounded by `map`.
pub fn analyze_with_map(
    input: &Input,
    store: Option<&Store>,
    opts: &Options,
    map: &MapOptions,
) -> Result<(Analysis, FsMap)> {
    let (meta, scans) = input::load(input, store, opts)?;
    let (a, m) = build(meta, scans, opts, Some(map));
    let m = m.unwrap_or_else(|| fsmap::build(&tree::Tree::default(), map));
    Ok((a, m))
}

/// Analyses an image for the interactive view (`whittle analyze -i`): the analysis and the
/// view's state, with the last layer selected.
pub fn analyze_interactive(
    input: &Input,
    store: Option<&Store>,
    opts: &Options,
) -> Result<tui::App> {
    let (meta, scans) = input::load(input, store, opts)?;
    let layers: Vec<tui::ViewLayer> = scans.iter().map(tui::ViewLayer::from_scan).collect();
    let (a, _, wasted) = build_all(meta, scans, opts, None);
    Ok(tui::App::new(a, layers, wasted))
}

fn build(
    meta: image::ImageMeta,
    scans: Vec<scan::LayerScan>,
    opts: &Options,
    map: Option<&MapOptions>,
) -> (Analysis, Option<FsMap>) {
    let (a, m, _) = build_all(meta, scans, opts, map);
    (a, m)
}

/// The analysis, the map when asked for, and the keys of dive's inefficient paths.
fn build_all(
    meta: image::ImageMeta,
    scans: Vec<scan::LayerScan>,
    opts: &Options,
    map: Option<&MapOptions>,
) -> (Analysis, Option<FsMap>, Vec<std::sync::Arc<[u8]>>) {
    let m = merge::merge(scans);
    let fs_map = map.map(|o| fsmap::build(&m.tree, o));
    let findings = findings::collect(&m, &meta, opts.min_finding_bytes);
    let layer: Vec<Layer> = m
        .stats
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let lm = meta.layers.get(i).cloned().unwrap_or_default();
            let created_by = lm.created_by.clone();
            let origin = lm.origin.clone();
            let command = created_by
                .as_deref()
                .map(|c| c.strip_prefix("/bin/sh -c ").unwrap_or(c).to_string())
                .unwrap_or_else(|| "(missing)".to_string());
            Layer {
                index: i,
                id: lm.id,
                digest_id: lm.diff_id.unwrap_or_default(),
                size_bytes: st.size,
                command,
                created_by,
                origin,
                blob_digest: lm.digest,
                blob_size_bytes: lm.blob_size,
                media_type: lm.media_type,
                tar_bytes: st.tar_bytes,
                entries: st.entries,
                files_added: st.added.0,
                bytes_added: st.added.1,
                files_changed: st.changed.0,
                bytes_changed: st.changed.1,
                files_removed: st.removed.0,
                bytes_removed: st.removed.1,
            }
        })
        .collect();
    let size: u64 = layer
        .iter()
        .map(|l| l.size_bytes)
        .fold(0, u64::saturating_add);
    let user: u64 = layer
        .iter()
        .skip(1)
        .map(|l| l.size_bytes)
        .fold(0, u64::saturating_add);
    let wasted = m.score.wasted;
    let user_wasted_percent = wasted as f64 / user as f64; // dive: NaN or +Inf without user bytes
    let blob_size_bytes = layer
        .iter()
        .map(|l| l.blob_size_bytes)
        .try_fold(0u64, |a, b| b.map(|b| a.saturating_add(b)));
    let files = m
        .tree
        .visible()
        .filter(|(_, n)| n.kind != Kind::Dir)
        .count() as u64;
    let file_reference = m
        .score
        .files
        .iter()
        .map(|f| FileReference {
            count: f.count,
            size_bytes: f.bytes,
            file: path::display(&f.key),
        })
        .collect();
    let a = Analysis {
        layer,
        image: ImageSummary {
            name: meta.name,
            size_bytes: size,
            inefficient_bytes: wasted,
            efficiency_score: m.score.score,
            file_reference,
            wasted_bytes: wasted,
            user_size_bytes: user,
            user_wasted_percent,
            blob_size_bytes,
            files,
        },
        findings,
    };
    let wasted = m.score.files.iter().map(|f| f.key.clone()).collect();
    (a, fs_map, wasted)
}
