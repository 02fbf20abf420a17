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
mod elf;
mod error;
pub mod gobuildinfo;
mod license;
mod package;
mod scan;
pub mod spdx;
mod stack;

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
    let slots: Vec<Mutex<Option<scan::LayerFinds>>> =
        img.layers.iter().map(|_| Mutex::new(None)).collect();
    let items: Vec<usize> = (0..img.layers.len()).collect();
    whittle_par::try_for_each(&items, opts.threads, |&i| -> Result<()> {
        let f = scan::scan(&img, i, &opts.limits)?;
        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Ok(())
    })?;
    let finds: Vec<scan::LayerFinds> = slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_default()
        })
        .collect();
    let packages = stack::stack(&finds);
    let notes = finds.into_iter().flat_map(|f| f.notes).collect();
    Ok(Sbom {
        name: img.name,
        image_id: img.config_digest,
        created: img.created,
        layers: img.layers,
        packages,
        notes,
    })
}
