//! Image indexes: several platforms' images under one tag.
//!
//! As in containerd's store, a tag names either an image manifest or an index, and an index
//! is kept as the registry (or the build) wrote it, even when only some of its platforms'
//! images are in the store: pulling `linux/arm64` after `linux/amd64` of the same tag stores
//! the second image under the same index, and pushing or saving the index later sends exactly
//! the document the registry had. Each index's record lists its entries with their platforms;
//! which of them are present is what the images table says.

use crate::error::{Result, StoreError};
use crate::images::{ImageRecord, MEDIA_TYPE_INDEX};
use crate::store::{db_err, now, parse, to_json, Store, INDEXES};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use whittle_oci::{media_type, Descriptor, Digest, Index, Platform, PlatformSpec};

/// A stored index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexRecord {
    /// Digest of the index blob.
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Its image manifests (nested indexes and entries that are not images are left out).
    pub manifests: Vec<IndexMember>,
    /// When it entered this store (seconds since 1970).
    pub added: u64,
}

/// One image of an index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexMember {
    pub manifest: Digest,
    pub media_type: String,
    pub size: u64,
    /// None for entries without a platform, or with `unknown/unknown` (attestations).
    pub platform: Option<Platform>,
    /// For an attestation manifest (BuildKit's `vnd.docker.reference.type:
    /// attestation-manifest`): the image manifest it describes. Never an image to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attests: Option<Digest>,
}

impl IndexRecord {
    /// The entry for `want`, by containerd's matching rules ([`whittle_oci::platform::select`]).
    pub fn select(&self, want: &Platform) -> Option<&IndexMember> {
        whittle_oci::platform::select(&self.manifests, want, |m| m.platform.clone())
    }

    /// The platforms of its entries, in index order.
    pub fn platforms(&self) -> Vec<Platform> {
        self.manifests
            .iter()
            .filter_map(|m| m.platform.clone())
            .collect()
    }

    /// Its entries that are images (not attestation manifests), in index order.
    pub fn images(&self) -> impl Iterator<Item = &IndexMember> {
        self.manifests.iter().filter(|m| m.attests.is_none())
    }

    /// The attestation manifest of the image `manifest`, when the index lists one.
    pub fn attestation_of(&self, manifest: &Digest) -> Option<&IndexMember> {
        self.manifests
            .iter()
            .find(|m| m.attests.as_ref() == Some(manifest))
    }

    /// Whether it lists attestation manifests.
    pub fn has_attestations(&self) -> bool {
        self.manifests.iter().any(|m| m.attests.is_some())
    }
}

fn member_of(d: &Descriptor) -> Option<IndexMember> {
    if !media_type::is_image_manifest(&d.media_type) {
        return None;
    }
    let platform = d
        .platform
        .as_ref()
        .map(PlatformSpec::platform)
        .filter(|p| p.os != "unknown" && p.arch != "unknown");
    Some(IndexMember {
        manifest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: d.size,
        platform,
        attests: whittle_oci::attestation::attests(d),
    })
}

impl Store {
    /// Records an index from its blob, already in the store. Its images need not be: they are
    /// recorded as they arrive ([`Store::put_image`]).
    pub fn put_index(&self, digest: &Digest) -> Result<IndexRecord> {
        if let Some(rec) = self.index_record(digest)? {
            return Ok(rec);
        }
        let bytes = self.read_document(digest)?;
        let idx: Index = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::json(format!("index {digest}"), e))?;
        let media_type = idx
            .media_type
            .clone()
            .unwrap_or_else(|| MEDIA_TYPE_INDEX.to_string());
        if !media_type::is_index(&media_type) {
            return Err(StoreError::InvalidImage(format!(
                "{digest} has media type {media_type}, not an image index"
            )));
        }
        let rec = IndexRecord {
            digest: digest.clone(),
            media_type,
            size: bytes.len() as u64,
            manifests: idx.manifests.iter().filter_map(member_of).collect(),
            added: now(),
        };
        let json = to_json(&rec)?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(INDEXES).map_err(db_err)?;
                if t.get(digest.as_str()).map_err(db_err)?.is_none() {
                    t.insert(digest.as_str(), json.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })?;
        Ok(rec)
    }

    /// Writes an OCI index of stored images (each must know its platform) and records it:
    /// what a multi-platform build makes. Entries are in the order given.
    pub fn write_image_index(
        &self,
        images: &[&ImageRecord],
        annotations: &BTreeMap<String, String>,
    ) -> Result<IndexRecord> {
        let entries: Vec<crate::IndexEntry<'_>> =
            images.iter().map(|i| crate::IndexEntry::Image(i)).collect();
        self.write_index_of(&entries, annotations)
    }

    /// The record of an index, if it is one the store knows.
    pub fn index_record(&self, digest: &Digest) -> Result<Option<IndexRecord>> {
        self.with_read(|tx| {
            let t = match tx.open_table(INDEXES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err(e)),
            };
            let v = t
                .get(digest.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_string());
            v.map(|s| parse::<IndexRecord>("index record", &s))
                .transpose()
        })
    }

    /// Every index record.
    pub fn indexes(&self) -> Result<Vec<IndexRecord>> {
        self.with_read(|tx| {
            let t = match tx.open_table(INDEXES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let (_, v) = e.map_err(db_err)?;
                out.push(parse::<IndexRecord>("index record", v.value())?);
            }
            Ok(out)
        })
    }

    /// The indexes some tag names.
    pub(crate) fn tagged_indexes(&self) -> Result<Vec<Digest>> {
        let indexes = self.indexes()?;
        let tags = self.with_read(|tx| {
            let t = tx.open_table(crate::store::TAGS).map_err(db_err)?;
            let mut out = std::collections::HashSet::new();
            for e in t.iter().map_err(db_err)? {
                let (_, v) = e.map_err(db_err)?;
                out.insert(v.value().to_string());
            }
            Ok(out)
        })?;
        Ok(indexes
            .into_iter()
            .filter(|ix| tags.contains(ix.digest.as_str()))
            .map(|ix| ix.digest)
            .collect())
    }

    /// Removes an index record (its blob goes at the next prune, its images once untagged).
    pub fn remove_index(&self, digest: &Digest) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(INDEXES).map_err(db_err)?;
                t.remove(digest.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
    }
}
