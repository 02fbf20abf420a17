//! Build attestations, attached as BuildKit attaches them (`docker buildx build --sbom
//! --provenance`).
//!
//! For each platform's image, [`attach`] makes the predicates asked for ([`Request`]):
//! - an SPDX 2.3 SBOM of the image (`sbom.rs`: `whittle_sbom`'s catalogers, each package's
//!   Dockerfile step and the stage a `COPY --from` took it from; cached by manifest digest),
//!   and with `scan-stages` one of each other stage the build needed (from its snapshot
//!   directories, cached by their diff ids), as BuildKit's `BUILDKIT_SBOM_SCAN_STAGE` adds,
//! - SLSA provenance v1 (`provenance.rs`: Dockerfile and context digests, base images, build
//!   arguments in `mode=max` with secret-looking values redacted, never `--secret` values),
//!
//! wraps each in an in-toto statement whose subject is the image manifest's digest
//! (`statement.rs`), writes them as one attestation manifest per image, and writes the image
//! index: the images, then their attestation manifests (`unknown/unknown`, annotated
//! `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest`), so a
//! build with attestations is an index even for one platform, as buildx makes it. The layout is
//! in [`whittle_oci::attestation`] and `whittle_store`'s `attestations.rs`; what whittle does
//! differently from BuildKit, and why, is in `docs/attestations.md`.
//!
//! [`local`] writes the same predicates as files for `-o type=local`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
pub mod local;
pub mod provenance;
pub mod request;
pub mod sbom;
pub mod secrets;
pub mod statement;

pub use error::{AttestError, Result};
pub use provenance::{BuildFacts, Material, Step};
pub use request::{Mode, ProvenanceRequest, Request, SbomRequest};

use std::collections::BTreeMap;
use whittle_oci::attestation::{PREDICATE_SLSA_V1, PREDICATE_SPDX};
use whittle_oci::{Platform, Reference};
use whittle_store::{ImageRecord, IndexEntry, IndexRecord, Store};

/// One predicate, before it is wrapped in a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Predicate {
    /// Its file name in a local output (`sbom.spdx.json`, `sbom-STAGE.spdx.json`,
    /// `provenance.json`: BuildKit's).
    pub file_name: String,
    pub predicate_type: &'static str,
    /// JSON.
    pub predicate: Vec<u8>,
}

/// One platform's built image.
#[derive(Clone, Debug)]
pub struct PlatformImage<'a> {
    pub platform: Platform,
    pub image: &'a ImageRecord,
    /// The base images that platform's build read.
    pub materials: Vec<Material>,
    /// With `scan-stages`: the other stages the image's build needed, each catalogued into an
    /// SBOM of its own.
    pub stages: Vec<sbom::StageInput>,
}

/// What the attestations are made from, besides the images.
pub struct Attach<'a> {
    pub request: &'a Request,
    /// The `-t` names (the statements' subjects).
    pub names: &'a [Reference],
    pub facts: &'a BuildFacts,
    /// `COPY --from` steps: Dockerfile line → the stage copied from.
    pub copies: &'a BTreeMap<usize, String>,
    /// `--annotation index:...`.
    pub index_annotations: &'a BTreeMap<String, String>,
    /// Layers catalogued at once.
    pub threads: usize,
}

/// What [`attach`] wrote.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The index of the images and their attestation manifests.
    pub index: IndexRecord,
    /// Each platform's predicates (for `-o type=local`).
    pub predicates: Vec<(Platform, Vec<Predicate>)>,
}

/// The predicates for one image.
pub fn predicates(
    store: &Store,
    a: &Attach<'_>,
    img: &PlatformImage<'_>,
) -> Result<Vec<Predicate>> {
    let mut out = Vec::new();
    if a.request.sbom.is_some() {
        let name = a
            .names
            .first()
            .map_or_else(|| img.image.manifest.to_string(), ToString::to_string);
        let input = sbom::SbomInput {
            image: img.image,
            name,
            copies: a.copies,
            threads: a.threads,
        };
        out.push(Predicate {
            file_name: "sbom.spdx.json".into(),
            predicate_type: PREDICATE_SPDX,
            predicate: sbom::predicate(store, &input)?,
        });
        // BuildKit's scanner writes one document a scanned stage, `sbom-STAGE`, each its own
        // statement about the image.
        for st in &img.stages {
            out.push(Predicate {
                file_name: format!("sbom-{}.spdx.json", sbom::file_safe(&st.label)),
                predicate_type: PREDICATE_SPDX,
                predicate: sbom::stage_predicate(store, &input.name, st, a.copies, a.threads)?,
            });
        }
    }
    if let Some(req) = &a.request.provenance {
        out.push(Predicate {
            file_name: "provenance.json".into(),
            predicate_type: PREDICATE_SLSA_V1,
            predicate: provenance::predicate(req, a.facts, &img.materials),
        });
    }
    Ok(out)
}

/// Makes every image's attestations, writes their attestation manifests and the index of
/// images and attestations.
pub fn attach(store: &Store, a: &Attach<'_>, images: &[PlatformImage<'_>]) -> Result<Attached> {
    let mut manifests: Vec<ImageRecord> = Vec::new();
    let mut all = Vec::new();
    for img in images {
        let preds = predicates(store, a, img)?;
        let subjects = statement::image_subjects(a.names, &img.platform, &img.image.manifest);
        let stmts: Vec<Vec<u8>> = preds
            .iter()
            .map(|p| statement::statement(p.predicate_type, &subjects, &p.predicate))
            .collect();
        let refs: Vec<(&str, &[u8])> = preds
            .iter()
            .zip(&stmts)
            .map(|(p, s)| (p.predicate_type, s.as_slice()))
            .collect();
        manifests.push(store.write_attestation_manifest(&refs)?);
        all.push((img.platform.clone(), preds));
    }
    let mut entries: Vec<IndexEntry<'_>> =
        images.iter().map(|i| IndexEntry::Image(i.image)).collect();
    for (img, m) in images.iter().zip(&manifests) {
        entries.push(IndexEntry::Attestation {
            manifest: m,
            of: &img.image.manifest,
        });
    }
    let index = store.write_index_of(&entries, a.index_annotations)?;
    Ok(Attached {
        index,
        predicates: all,
    })
}
