//! Attestation manifests (BuildKit's attestation storage; the names are in
//! [`whittle_oci::attestation`]): in-toto statements about an image, kept as an image manifest
//! listed in the image's index with the platform `unknown/unknown`.
//!
//! The store records an attestation manifest as an image (so its blobs live as long as a tag
//! names its index, and save, load and push carry it like any member of an index); the index
//! record marks it ([`crate::IndexMember::attests`]) so it is never chosen as an image to run,
//! and [`crate::TaggedImage::attests`] lets listings leave it out.

use crate::error::{Result, StoreError};
use crate::images::{ImageRecord, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::indexes::IndexRecord;
use crate::store::Store;
use std::collections::BTreeMap;
use std::io::Read;
use whittle_oci::attestation::{
    ATTESTATION_MANIFEST, IN_TOTO, PREDICATE_TYPE, REFERENCE_DIGEST, REFERENCE_TYPE, UNKNOWN,
};
use whittle_oci::{Descriptor, Digest, Index, Manifest, PlatformSpec};

/// Largest statement [`Store::read_statement`] reads (BuildKit's limit is 40 MiB).
pub const MAX_STATEMENT: u64 = 64 << 20;

/// One entry of an index a build writes.
#[derive(Clone, Copy, Debug)]
pub enum IndexEntry<'a> {
    /// A platform's image (its record must know its platform).
    Image(&'a ImageRecord),
    /// The attestation manifest `manifest` of the image `of`.
    Attestation {
        manifest: &'a ImageRecord,
        of: &'a Digest,
    },
}

/// One statement of an attestation manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRef {
    /// The layer's `in-toto.io/predicate-type`.
    pub predicate_type: String,
    /// The statement's blob.
    pub digest: Digest,
    pub size: u64,
}

impl Store {
    /// Writes an attestation manifest of in-toto statements `(predicate type, statement JSON)`
    /// as BuildKit writes it: each statement a layer of media type `application/vnd.in-toto+json`
    /// annotated with its predicate type, and a config naming the platform `unknown/unknown`
    /// with the statements as its diff ids. Records it as an image.
    pub fn write_attestation_manifest(&self, statements: &[(&str, &[u8])]) -> Result<ImageRecord> {
        let mut layers = Vec::new();
        for (predicate, bytes) in statements {
            let d = self.put_bytes(bytes)?;
            let mut desc = Descriptor::new(IN_TOTO, d, bytes.len() as u64);
            desc.annotations
                .insert(PREDICATE_TYPE.into(), (*predicate).to_string());
            layers.push(desc);
        }
        // BuildKit's `attestationsConfig`, field for field and in its order.
        let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.digest)).collect();
        let config = format!(
            "{{\"architecture\":\"{UNKNOWN}\",\"os\":\"{UNKNOWN}\",\"config\":{{}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}}}}",
            diff_ids.join(",")
        );
        let cd = self.put_bytes(config.as_bytes())?;
        let manifest = Manifest::new(
            MEDIA_TYPE_MANIFEST,
            Descriptor::new(MEDIA_TYPE_CONFIG, cd, config.len() as u64),
            layers,
        );
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| StoreError::json("attestation manifest", e))?;
        let md = self.put_bytes(&bytes)?;
        self.put_image(&md)
    }

    /// Writes an OCI index of `entries` and records it: images first, in the order given,
    /// then attestation manifests (each listed with the platform `unknown/unknown` and the
    /// annotations naming the image it describes), as BuildKit orders them.
    pub fn write_index_of(
        &self,
        entries: &[IndexEntry<'_>],
        annotations: &BTreeMap<String, String>,
    ) -> Result<IndexRecord> {
        let mut images = Vec::new();
        let mut attestations = Vec::new();
        for e in entries {
            match e {
                IndexEntry::Image(img) => {
                    let p = img.platform.as_ref().ok_or_else(|| {
                        StoreError::InvalidImage(format!(
                            "image {} has no platform in its config, so it cannot go into an \
                             index",
                            img.manifest
                        ))
                    })?;
                    let mut d = Descriptor::new(
                        img.media_type.clone(),
                        img.manifest.clone(),
                        img.manifest_size,
                    );
                    d.platform = Some(PlatformSpec::from(p));
                    images.push(d);
                }
                IndexEntry::Attestation { manifest, of } => {
                    let mut d = Descriptor::new(
                        manifest.media_type.clone(),
                        manifest.manifest.clone(),
                        manifest.manifest_size,
                    );
                    d.platform = Some(PlatformSpec {
                        architecture: UNKNOWN.into(),
                        os: UNKNOWN.into(),
                        ..PlatformSpec::default()
                    });
                    d.annotations
                        .insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
                    d.annotations
                        .insert(REFERENCE_DIGEST.into(), of.to_string());
                    attestations.push(d);
                }
            }
        }
        images.extend(attestations);
        let mut idx = Index::new(MEDIA_TYPE_INDEX, images);
        idx.annotations = annotations.clone();
        let bytes = serde_json::to_vec(&idx).map_err(|e| StoreError::json("index", e))?;
        let d = self.put_bytes(&bytes)?;
        self.put_index(&d)
    }

    /// The attestation manifest of the image `manifest`: the one a tagged index lists for it
    /// (the first such index by digest, so the answer does not depend on tag order).
    pub fn attestation_of(&self, manifest: &Digest) -> Result<Option<ImageRecord>> {
        let mut tagged = self.tagged_indexes()?;
        tagged.sort();
        for d in tagged {
            let Some(ix) = self.index_record(&d)? else {
                continue;
            };
            if let Some(m) = ix.attestation_of(manifest) {
                if self.has_blob(&m.manifest) {
                    return self.put_image(&m.manifest).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The statements of an attestation manifest (layers of other media types are skipped, as
    /// BuildKit's readers skip them).
    pub fn attestation_statements(&self, att: &ImageRecord) -> Result<Vec<StatementRef>> {
        let m = self.manifest(att)?;
        Ok(m.layers
            .into_iter()
            .filter(|l| l.media_type == IN_TOTO)
            .map(|l| StatementRef {
                predicate_type: l
                    .annotations
                    .get(PREDICATE_TYPE)
                    .cloned()
                    .unwrap_or_default(),
                digest: l.digest,
                size: l.size,
            })
            .collect())
    }

    /// Reads one statement blob, at most [`MAX_STATEMENT`] bytes.
    pub fn read_statement(&self, d: &Digest) -> Result<Vec<u8>> {
        let f = self.open_blob(d)?;
        let mut v = Vec::new();
        f.take(MAX_STATEMENT + 1)
            .read_to_end(&mut v)
            .map_err(|e| StoreError::io("read", self.blob_path(d), e))?;
        if v.len() as u64 > MAX_STATEMENT {
            return Err(StoreError::TooLarge {
                what: d.to_string(),
                limit: MAX_STATEMENT,
            });
        }
        Ok(v)
    }
}
