//! The result of an analysis. Serialised, it is a superset of dive's JSON export (`dive
//! --json`): the same `layer` and `image` objects with dive's field names (`index`, `id`,
//! `digestId`, `sizeBytes`, `command`; `sizeBytes`, `inefficientBytes`, `efficiencyScore`,
//! `fileReference` with `count`, `sizeBytes`, `file`), plus whittle's own fields and `findings`.

use serde::{Serialize, Serializer};
pub use whittle_oci::LayerOrigin;

/// Everything the analysis found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// One per layer, bottom first (dive: `layer`).
    pub layer: Vec<Layer>,
    /// Image totals and dive's figures (dive: `image`).
    pub image: ImageSummary,
    /// What whittle found beyond dive, largest first (secrets first of all).
    pub findings: Vec<Finding>,
}

/// One layer.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// Position, 0 at the bottom.
    pub index: usize,
    /// dive's id: the blob's hex digest (or the archive member's directory).
    pub id: String,
    /// The diff id (`rootfs.diff_ids`), as dive's `digestId`.
    pub digest_id: String,
    /// dive's size: the sum of the size fields of the layer's tar entries.
    pub size_bytes: u64,
    /// The history's `created_by`, without a leading `/bin/sh -c ` (as dive shows it).
    pub command: String,
    /// The history's `created_by` as written.
    pub created_by: Option<String>,
    /// The Dockerfile step that made the layer (`file`, `line`, `stage`), for images whittle
    /// built (its manifest's `dev.whittle.layers` annotation); left out when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<LayerOrigin>,
    /// Blob digest.
    pub blob_digest: Option<String>,
    /// Blob size as stored (compressed).
    pub blob_size_bytes: Option<u64>,
    /// Blob media type.
    pub media_type: Option<String>,
    /// Bytes of the uncompressed tar.
    pub tar_bytes: u64,
    /// Tar entries (PAX and long-name records not counted).
    pub entries: u64,
    /// Files (everything but directories) at paths that did not exist below.
    pub files_added: u64,
    /// Their bytes.
    pub bytes_added: u64,
    /// Files at paths that existed below and differ (content, type, mode or owner, as dive
    /// compares).
    pub files_changed: u64,
    /// Their bytes.
    pub bytes_changed: u64,
    /// Files of the layers below deleted by this layer's whiteouts or hidden by its opaque
    /// directories.
    pub files_removed: u64,
    /// Their bytes (still shipped in the layers that added them).
    pub bytes_removed: u64,
}

/// Image totals and dive's figures.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// How the image was named.
    pub name: String,
    /// Sum of the layers' `sizeBytes`.
    pub size_bytes: u64,
    /// dive's wasted bytes: the cumulative sizes of the inefficient paths.
    pub inefficient_bytes: u64,
    /// dive's efficiency score (0..1).
    pub efficiency_score: f64,
    /// dive's inefficient files, largest first.
    pub file_reference: Vec<FileReference>,
    /// Same as `inefficientBytes` (the name dive's CI rule uses).
    pub wasted_bytes: u64,
    /// Size of every layer but the first (dive counts the first as the base image).
    pub user_size_bytes: u64,
    /// `wastedBytes / userSizeBytes` (a ratio, as dive's `highestUserWastedPercent`); `null` when
    /// there are no user bytes and nothing is wasted (dive: NaN), infinite when bytes are wasted
    /// without user bytes (serialised as `null` too; the CI rule fails then, as dive's does).
    #[serde(serialize_with = "finite_or_null")]
    pub user_wasted_percent: f64,
    /// Bytes of the blobs as stored (compressed), when known for every layer.
    pub blob_size_bytes: Option<u64>,
    /// Files in the final filesystem.
    pub files: u64,
}

fn finite_or_null<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

/// One path of dive's inefficient-file list.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileReference {
    /// Layers in which the path is a leaf.
    pub count: u32,
    /// Its cumulative size over them.
    pub size_bytes: u64,
    /// The path (`/usr/bin/x`).
    pub file: String,
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A file that looks like a secret ships in a layer.
    Secret,
    /// Files deleted by a later layer: their bytes still ship in the layer that added them.
    DeletedLater,
    /// Files replaced by a later layer: both copies ship.
    OverwrittenLater,
    /// Files hidden by a later layer's opaque directory: their bytes still ship.
    HiddenByOpaque,
    /// The same content added by several layers.
    DuplicateContent,
    /// A package manager's cache left in the image.
    PackageCache,
    /// A compiler toolchain in the final image.
    Toolchain,
    /// Documentation and man pages.
    Docs,
    /// Test suites (Python's, npm packages').
    Tests,
    /// ELF binaries with symbol tables or debug sections.
    Unstripped,
    /// Python bytecode that is never used as it is (no source, or a stale timestamp).
    StaleBytecode,
    /// A dynamically linked program whose loader or libraries the image lacks.
    MissingLibrary,
    /// Setuid or setgid files.
    Setuid,
    /// World-writable files or directories without the sticky bit.
    WorldWritable,
}

/// One finding: what, how many bytes, which layer caused it, and how to fix it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// One line saying what was found.
    pub title: String,
    /// Bytes it costs (for setuid and world-writable files: their size).
    pub bytes: u64,
    /// Files it covers.
    pub files: u64,
    /// The layer that caused it (for deleted or overwritten files: the layer that added them,
    /// whose bytes are wasted).
    pub layer: usize,
    /// That layer's history `created_by`.
    pub created_by: Option<String>,
    /// That layer's Dockerfile step, when known (see [`Layer::origin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<LayerOrigin>,
    /// The other layer involved: the one that deleted, overwrote or hid the files, or the
    /// earlier layer holding the same content.
    pub related_layer: Option<usize>,
    /// That layer's `created_by`.
    pub related_created_by: Option<String>,
    /// That layer's Dockerfile step, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_origin: Option<LayerOrigin>,
    /// Examples, largest first (at most 10).
    pub paths: Vec<FindingPath>,
    /// What to do about it.
    pub fix: String,
}

/// One path of a finding.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FindingPath {
    /// The path.
    pub path: String,
    /// Its bytes.
    pub bytes: u64,
}

impl Analysis {
    /// The findings of one kind.
    pub fn findings_of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }
}

/// Image-supplied text (paths, history lines) with control characters escaped, so it cannot
/// drive a terminal: what the text report, `whittle diff` and the interactive view print.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
