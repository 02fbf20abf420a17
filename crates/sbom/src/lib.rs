//! What packages an image holds: a software bill of materials.
//!
//! [`catalog`] finds an image (the store, `docker-archive:`, `oci-archive:`, `oci:`; through
//! `whittle_analyze::layers`), streams each layer once (several at once), and hands the files
//! the catalogers want to them, each read through a bound:
//!
//! | cataloger | files | module |
//! |---|---|---|
//! | dpkg | `/var/lib/dpkg/status`, `status.d/*` (distroless), `info/*.list` | `catalog/dpkg.rs` |
//! | apk | `/lib/apk/db/installed` | `catalog/apk.rs` |
//! | Python | `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` | `catalog/python.rs` |
//! | Go | executables' build info (`.go.buildinfo`) | `elf.rs`, `gobuildinfo.rs` |
//! | Rust | executables' `.dep-v0` (cargo-auditable), `Cargo.lock` | `elf.rs`, `catalog/cargo.rs` |
//! | Java | `*.jar`/`.war`/`.ear`: `pom.properties`, `MANIFEST.MF` | `catalog/java.rs` |
//! | npm | `node_modules/**/package.json` | `catalog/npm.rs` |
//!
//! [`catalog_dirs`] reads a filesystem kept as directories, one a layer (a build stage's
//! snapshots, for `build --sbom=scan-stages=true`), through the same scan (`dirlayer.rs`).
//!
//! The layers are then stacked (`stack.rs`): whiteouts, opaque directories and replaced files
//! remove what lower layers found, and each package keeps the layer it came from. The result,
//! an [`Sbom`], is written as SPDX 2.3 JSON (`spdx.rs`) or CycloneDX 1.5 JSON
//! (`cyclonedx.rs`), both deterministic: the same image gives the same bytes (timestamps are
//! the image's `created`, identifiers derive from its config digest).
//!
//! ## Untrusted input
//!
//! Images are untrusted. Paths are normalised inside the root by `whittle_analyze`; memory is
//! bounded by [`Limits`] (metadata and database files read up to a bound, executables and large
//! jars spooled to anonymous temporary files up to a bound, zip members read through a bound).
//! A file a cataloger cannot read is skipped with a [`Note`]; only a broken image or layer
//! stream is an error.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod catalog;
pub mod cyclonedx;
mod dirlayer;
mod elf;
mod error;
pub mod gobuildinfo;
mod license;
mod package;
mod scan;
pub mod spdx;
mod stack;

pub use dirlayer::DirLayer;
pub use error::{Result, SbomError};
pub use package::{purl, Package, PackageKind};
pub use whittle_analyze::layers::LayerInfo;
pub use whittle_analyze::Input;

use std::sync::Mutex;
use whittle_store::Store;

/// Bounds on what an image may make cataloguing hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes read of a metadata file (METADATA, package.json, Cargo.lock; default 4 MiB).
    pub max_metadata: u64,
    /// Bytes read of a package database (dpkg status, apk installed, `.list`; default 64 MiB).
    pub max_database: u64,
    /// Largest executable spooled to look for Go and Rust data (default 1 GiB).
    pub max_binary: u64,
    /// Largest jar spooled (default 1 GiB).
    pub max_archive: u64,
    /// The layer walk's bounds (entries, names, PAX records, layers).
    pub analyze: whittle_analyze::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_metadata: 4 << 20,
            max_database: 64 << 20,
            max_binary: 1 << 30,
            max_archive: 1 << 30,
            analyze: whittle_analyze::Limits::default(),
        }
    }
}

/// How to catalogue.
#[derive(Clone, Debug)]
pub struct Options {
    /// Layers read at once (default: the machine's cores).
    pub threads: usize,
    /// Bounds.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            limits: Limits::default(),
        }
    }
}

/// A file skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// Layer index.
    pub layer: usize,
    /// The file.
    pub path: String,
    /// Why it was skipped.
    pub why: String,
}

/// What an image holds.
#[derive(Clone, Debug)]
pub struct Sbom {
    /// How the image was named.
    pub name: String,
    /// Its config digest (image id), when known.
    pub image_id: Option<String>,
    /// The config's `created`.
    pub created: Option<String>,
    /// Its layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// The packages, sorted by kind, name, version, location.
    pub packages: Vec<Package>,
    /// Files skipped.
    pub notes: Vec<Note>,
}

impl Sbom {
    /// The digest that names layer `i`: its diff id (the uncompressed tar's digest, what
    /// scanners call the layer id), else its blob digest.
    pub fn layer_digest(&self, i: usize) -> Option<&str> {
        let l = self.layers.get(i)?;
        l.diff_id.as_deref().or(l.digest.as_deref())
    }
}

/// Catalogues an image. `store` is needed for [`Input::Store`] only.
pub fn catalog(input: &Input, store: Option<&Store>, opts: &Options) -> Result<Sbom> {
    let img = whittle_analyze::layers::open(input, store, &opts.limits.analyze)?;
    let finds = scan_layers(img.layers.len(), opts, |i| {
        scan::scan(&img, i, &opts.limits)
    })?;
    Ok(assemble(
        img.name,
        img.config_digest,
        img.created,
        img.layers,
        finds,
    ))
}

/// Catalogues a filesystem kept as directories, one a layer, bottom first (a build stage's
/// snapshots: see `dirlayer.rs`), named `name`. The same scan and stacking as [`catalog`]; the
/// layers are named by their diff ids.
pub fn catalog_dirs(name: &str, layers: &[DirLayer], opts: &Options) -> Result<Sbom> {
    if layers.len() > opts.limits.analyze.max_layers {
        return Err(whittle_analyze::AnalyzeError::InvalidInput(format!(
            "{name} has {} layers, more than {}",
            layers.len(),
            opts.limits.analyze.max_layers
        ))
        .into());
    }
    let finds = scan_layers(layers.len(), opts, |i| {
        let dir = &layers[i].dir;
        scan::scan_walk(i, &opts.limits, |f| {
            dirlayer::walk(i, dir, &opts.limits.analyze, f)
        })
    })?;
    let infos = layers
        .iter()
        .map(|l| LayerInfo {
            digest: None,
            diff_id: l.diff_id.clone(),
            created_by: None,
        })
        .collect();
    Ok(assemble(name.to_string(), None, None, infos, finds))
}

/// Scans `n` layers, several at once, each with `scan_one`.
fn scan_layers<F>(n: usize, opts: &Options, scan_one: F) -> Result<Vec<scan::LayerFinds>>
where
    F: Fn(usize) -> Result<scan::LayerFinds> + Sync,
{
    let slots: Vec<Mutex<Option<scan::LayerFinds>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let items: Vec<usize> = (0..n).collect();
    whittle_par::try_for_each(&items, opts.threads, |&i| -> Result<()> {
        let f = scan_one(i)?;
        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Ok(())
    })?;
    Ok(slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_default()
        })
        .collect())
}

/// Stacks the layers' finds into the SBOM.
fn assemble(
    name: String,
    image_id: Option<String>,
    created: Option<String>,
    layers: Vec<LayerInfo>,
    finds: Vec<scan::LayerFinds>,
) -> Sbom {
    let packages = stack::stack(&finds);
    let notes = finds.into_iter().flat_map(|f| f.notes).collect();
    Sbom {
        name,
        image_id,
        created,
        layers,
        packages,
        notes,
    }
}
