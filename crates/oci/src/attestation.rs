//! BuildKit's attestation storage: the names an image index uses to carry in-toto attestations
//! next to the images they describe (BuildKit's `docs/attestations/attestation-storage.md`).
//!
//! Each platform's image may have one *attestation manifest*: an image manifest whose layers
//! are in-toto statements (media type [`IN_TOTO`], each with the [`PREDICATE_TYPE`]
//! annotation), listed in the index after every image, with the platform `unknown/unknown`
//! (so no runtime picks it) and the annotations [`REFERENCE_TYPE`] = [`ATTESTATION_MANIFEST`]
//! and [`REFERENCE_DIGEST`] = the image manifest's digest.

use crate::{Descriptor, Digest};

/// Media type of an attestation blob: an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Layer annotation: the statement's `predicateType`.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// Index entry annotation: what kind of entry it is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Index entry annotation: the digest of the manifest the entry describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`REFERENCE_TYPE`] for an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The platform an attestation manifest is listed with (os and architecture).
pub const UNKNOWN: &str = "unknown";
/// The in-toto statement type BuildKit writes (in-toto-golang's `StatementInTotoV1`).
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of an SPDX SBOM.
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";
/// Predicate type of SLSA provenance v1.
pub const PREDICATE_SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of SLSA provenance v0.2.
pub const PREDICATE_SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";

/// The image an index entry attests, when the entry is an attestation manifest.
pub fn attests(d: &Descriptor) -> Option<Digest> {
    if d.annotations.get(REFERENCE_TYPE).map(String::as_str) != Some(ATTESTATION_MANIFEST) {
        return None;
    }
    d.annotations.get(REFERENCE_DIGEST)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_attests_only_with_both_annotations() {
        let img = Digest::of_bytes(b"image");
        let mut d = Descriptor::new(crate::media_type::OCI_MANIFEST, Digest::of_bytes(b"a"), 1);
        assert_eq!(attests(&d), None);
        d.annotations
            .insert(REFERENCE_DIGEST.into(), img.to_string());
        assert_eq!(attests(&d), None);
        d.annotations
            .insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
        assert_eq!(attests(&d), Some(img));
        d.annotations.insert(REFERENCE_TYPE.into(), "other".into());
        assert_eq!(attests(&d), None);
        d.annotations
            .insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
        d.annotations
            .insert(REFERENCE_DIGEST.into(), "not a digest".into());
        assert_eq!(attests(&d), None);
    }
}
