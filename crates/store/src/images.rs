//! Images and tags: image records, tagging, lookup, history, and the OCI `index.json` they
//! are listed in.

use crate::error::{Result, StoreError};
use crate::indexes::IndexRecord;
use crate::store::INDEXES;
use crate::store::{db_err, now, parse, to_json, write_atomic, Store, IMAGES, TAGS};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashMap;
use whittle_oci::Reference;
use whittle_oci::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform};

use whittle_oci::media_type;
/// The media types the store names, as before (they live in `whittle_oci::media_type`).
pub use whittle_oci::media_type::{
    OCI_CONFIG as MEDIA_TYPE_CONFIG, OCI_INDEX as MEDIA_TYPE_INDEX,
    OCI_MANIFEST as MEDIA_TYPE_MANIFEST,
};

/// A stored image: its manifest and what the manifest references.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Digest of the manifest blob (what registries call the image digest).
    pub manifest: Digest,
    /// Media type of the manifest.
    pub media_type: String,
    /// Size of the manifest blob.
    pub manifest_size: u64,
    /// Digest of the config blob (the image id).
    pub config: Digest,
    /// Layer blob digests, bottom first.
    pub layers: Vec<Digest>,
    /// Manifest + config + layer blob sizes.
    pub size: u64,
    /// `created` of the config, if any.
    pub created: Option<String>,
    /// When it entered this store (seconds since 1970).
    pub added: u64,
    /// The platform its config names (None when the config names no architecture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image config names: `os/architecture[/variant]`, None without an
/// architecture.
pub fn config_platform(cfg: &ImageConfig) -> Option<Platform> {
    let arch = cfg.architecture.get().filter(|a| !a.is_empty())?;
    let os = cfg
        .os
        .get()
        .filter(|o| !o.is_empty())
        .map_or("linux", String::as_str);
    let variant = cfg.variant.get().filter(|v| !v.is_empty());
    let text = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    Platform::parse(&text)
}

impl ImageRecord {
    /// Every blob this image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.manifest)
            .chain(std::iter::once(&self.config))
            .chain(self.layers.iter())
    }
    /// The image id (config digest), as docker shows it.
    pub fn id(&self) -> &Digest {
        &self.config
    }
}

/// An image with the tags pointing at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedImage {
    /// The image.
    pub image: ImageRecord,
    /// Its tags (`repository:tag`), sorted: its own, and those of the indexes it is in.
    pub tags: Vec<String>,
    /// The tagged index its tags come through, when they come through one.
    pub index: Option<Digest>,
    /// When that index lists it as an attestation manifest: the image it describes. Such a
    /// manifest is not an image to run or list (see `attestations.rs`).
    pub attests: Option<Digest>,
}

/// One line of an image's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When the step ran.
    pub created: Option<String>,
    /// The command that made it.
    pub created_by: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// The layer it produced (None for metadata-only steps).
    pub layer: Option<Digest>,
    /// Size of that layer blob.
    pub size: u64,
}

/// Annotation with the tag part of a reference (what skopeo and umoci use to pick an image).
pub(crate) const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the full name (what docker and containerd use).
pub(crate) const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

/// index.json (`whittle_oci::Index`: annotations in key order, so index.json and saved archives
/// are the same from run to run).
pub(crate) fn index_json(entries: Vec<Descriptor>) -> Result<Vec<u8>> {
    let idx = Index::new(MEDIA_TYPE_INDEX, entries);
    serde_json::to_vec(&idx).map_err(|e| StoreError::json("index.json", e))
}

pub(crate) fn index_entry(img: &ImageRecord, reference: Option<&Reference>) -> Descriptor {
    index_entry_for(&img.media_type, &img.manifest, img.manifest_size, reference)
}

/// An index.json entry for a manifest or an index, annotated with its name.
pub(crate) fn index_entry_for(
    media_type: &str,
    digest: &Digest,
    size: u64,
    reference: Option<&Reference>,
) -> Descriptor {
    let mut annotations = BTreeMap::new();
    if let Some(r) = reference {
        if let Some(tag) = &r.tag {
            annotations.insert(ANN_REF_NAME.to_string(), tag.clone());
        }
        annotations.insert(ANN_IMAGE_NAME.to_string(), r.to_string());
    }
    Descriptor {
        annotations,
        ..Descriptor::new(media_type.to_string(), digest.clone(), size)
    }
}

/// What a tag names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagTarget {
    /// One image (its manifest digest).
    Image(Digest),
    /// An index of several platforms' images.
    Index(IndexRecord),
}

/// The key of a tag in the tags table: the familiar `name:tag` (how every store database has
/// keyed them). A reference pinned by digest, or without a tag, is not a tag.
pub(crate) fn tag_key(reference: &Reference) -> Result<String> {
    reference.tag_key().ok_or_else(|| {
        StoreError::InvalidReference(whittle_oci::ReferenceError {
            reference: reference.to_string(),
            problem: whittle_oci::ReferenceProblem::DigestNotTag,
        })
    })
}

impl Store {
    /// Records an image from a manifest blob already in the store, after checking that its
    /// config and layer blobs are present (a layer may be recorded as remote instead:
    /// `remote_blobs.rs`).
    pub fn put_image(&self, manifest: &Digest) -> Result<ImageRecord> {
        // Already recorded (a rebuild that produced the same image): nothing to write.
        let known = self.with_read(|tx| {
            let t = tx.open_table(IMAGES).map_err(db_err)?;
            let found = t
                .get(manifest.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_string());
            found
                .map(|s| parse::<ImageRecord>("image record", &s))
                .transpose()
        })?;
        if let Some(rec) = known {
            let mut all = true;
            for b in rec.blobs() {
                all &= self.knows_blob(b)?;
            }
            if all {
                return Ok(rec);
            }
        }
        let bytes = self.read_document(manifest)?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::json(format!("manifest {manifest}"), e))?;
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string());
        if !media_type::is_image_manifest(&media_type) {
            return Err(StoreError::InvalidImage(format!(
                "{manifest} has media type {media_type}, not an image manifest"
            )));
        }
        let config = m.config.digest;
        let mut size = bytes.len() as u64 + self.blob_size(&config)?;
        let mut layers = Vec::new();
        for l in m.layers {
            size += self.blob_size(&l.digest)?;
            layers.push(l.digest);
        }
        let cfg = ImageConfig::from_slice(&self.read_document(&config)?)
            .map_err(|e| StoreError::json(format!("config {config}"), e))?;
        let rec = ImageRecord {
            manifest: manifest.clone(),
            media_type,
            manifest_size: bytes.len() as u64,
            config,
            layers,
            size,
            created: cfg.created.get().cloned(),
            added: now(),
            platform: config_platform(&cfg),
        };
        let json = to_json(&rec)?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(IMAGES).map_err(db_err)?;
                let existing = t
                    .get(manifest.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                if existing.is_none() {
                    t.insert(manifest.as_str(), json.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(rec)
    }

    /// Writes config and manifest blobs for layers already in the store and records the image.
    /// `layers` are (digest, media type, size) bottom first.
    pub fn write_image(
        &self,
        config_json: &[u8],
        layers: &[(Digest, String, u64)],
    ) -> Result<ImageRecord> {
        self.write_image_annotated(config_json, layers, &BTreeMap::new())
    }

    /// [`Store::write_image`] with annotations on the manifest (`--annotation`).
    pub fn write_image_annotated(
        &self,
        config_json: &[u8],
        layers: &[(Digest, String, u64)],
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageRecord> {
        let config = self.put_bytes(config_json)?;
        let layers = layers
            .iter()
            .map(|(d, mt, size)| Descriptor::new(mt.clone(), d.clone(), *size))
            .collect();
        let mut manifest = Manifest::new(
            MEDIA_TYPE_MANIFEST,
            Descriptor::new(MEDIA_TYPE_CONFIG, config, config_json.len() as u64),
            layers,
        );
        manifest.annotations = annotations.clone();
        let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
        let md = self.put_bytes(&bytes)?;
        self.put_image(&md)
    }

    /// Points `reference` at an image (by manifest digest), replacing an older target.
    pub fn tag(&self, reference: &Reference, manifest: &Digest) -> Result<()> {
        // Under a lease: prune must not remove the image between the check below and the
        // commit, which would leave a tag naming nothing.
        let _lease = self.lease()?;
        let name = tag_key(reference)?;
        // Already so (every rebuild tags its image again): nothing to write or fsync.
        let same = self.with_read(|tx| {
            let t = tx.open_table(TAGS).map_err(db_err)?;
            let current = t.get(name.as_str()).map_err(db_err)?;
            Ok(current.is_some_and(|v| v.value() == manifest.as_str()))
        })?;
        if same {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let images = tx.open_table(IMAGES).map_err(db_err)?;
                let indexes = tx.open_table(INDEXES).map_err(db_err)?;
                if images.get(manifest.as_str()).map_err(db_err)?.is_none()
                    && indexes.get(manifest.as_str()).map_err(db_err)?.is_none()
                {
                    return Err(StoreError::ImageNotFound(manifest.to_string()));
                }
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                t.insert(name.as_str(), manifest.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)
        })
    }

    /// Points several references at their images in one transaction: all or none.
    pub fn tag_many(&self, tags: &[(Reference, Digest)]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let _lease = self.lease()?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let images = tx.open_table(IMAGES).map_err(db_err)?;
                let indexes = tx.open_table(INDEXES).map_err(db_err)?;
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for (r, manifest) in tags {
                    if images.get(manifest.as_str()).map_err(db_err)?.is_none()
                        && indexes.get(manifest.as_str()).map_err(db_err)?.is_none()
                    {
                        return Err(StoreError::ImageNotFound(manifest.to_string()));
                    }
                    t.insert(tag_key(r)?.as_str(), manifest.as_str())
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)
        })
    }

    /// Removes those of `manifests` that no tag names (what a failed load wrote).
    pub fn remove_untagged(&self, manifests: &[Digest]) -> Result<()> {
        if manifests.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let t = tx.open_table(TAGS).map_err(db_err)?;
                let indexes = tx.open_table(INDEXES).map_err(db_err)?;
                let mut tagged = std::collections::HashSet::new();
                for e in t.iter().map_err(db_err)? {
                    let (_, v) = e.map_err(db_err)?;
                    tagged.insert(v.value().to_string());
                    if let Some(ix) = indexes.get(v.value()).map_err(db_err)? {
                        let ix: IndexRecord = parse("index record", ix.value())?;
                        tagged.extend(ix.manifests.iter().map(|m| m.manifest.to_string()));
                    }
                }
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                for m in manifests {
                    if !tagged.contains(m.as_str()) {
                        images.remove(m.as_str()).map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)
        })
    }

    /// Removes a tag; returns the manifest it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>> {
        let name = tag_key(reference)?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let old = {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                let v = t
                    .remove(name.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                v
            };
            tx.commit().map_err(db_err)?;
            self.write_index(db)?;
            old.map(|o| {
                o.parse::<Digest>()
                    .map_err(|e| StoreError::InvalidImage(e.to_string()))
            })
            .transpose()
        })
    }

    /// Removes an image record and every tag pointing at it. Blobs go at the next prune.
    pub fn remove_image(&self, manifest: &Digest) -> Result<Vec<String>> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let mut removed = Vec::new();
            {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for e in t.iter().map_err(db_err)? {
                    let (k, v) = e.map_err(db_err)?;
                    if v.value() == manifest.as_str() {
                        removed.push(k.value().to_string());
                    }
                }
                for k in &removed {
                    t.remove(k.as_str()).map_err(db_err)?;
                }
                let mut i = tx.open_table(IMAGES).map_err(db_err)?;
                i.remove(manifest.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            self.write_index(db)?;
            Ok(removed)
        })
    }

    /// Every image with its tags (an image in a tagged index has the index's tags), newest
    /// first.
    pub fn images(&self) -> Result<Vec<TaggedImage>> {
        let mut out = self.images_as_recorded()?;
        for t in &mut out {
            self.fill_platform(&mut t.image);
        }
        Ok(out)
    }

    /// Records written before the store kept platforms: the platform is read from the config.
    /// Only where it is needed: a store with many such records would otherwise read every
    /// config on each lookup.
    fn fill_platform(&self, image: &mut ImageRecord) {
        if image.platform.is_none() {
            image.platform = self
                .image_config(image)
                .ok()
                .and_then(|c| config_platform(&c));
        }
    }

    /// [`Store::images`] as the records are, without reading configs.
    fn images_as_recorded(&self) -> Result<Vec<TaggedImage>> {
        self.with_read(|tx| {
            let images = tx.open_table(IMAGES).map_err(db_err)?;
            let tags = tx.open_table(TAGS).map_err(db_err)?;
            let indexes = tx.open_table(INDEXES).map_err(db_err)?;
            let mut by_manifest: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut via: HashMap<String, Digest> = HashMap::new();
            let mut attests: HashMap<String, Digest> = HashMap::new();
            for e in tags.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                let tag = k.value().to_string();
                if let Some(ix) = indexes.get(v.value()).map_err(db_err)? {
                    let ix: IndexRecord = parse("index record", ix.value())?;
                    for m in &ix.manifests {
                        by_manifest
                            .entry(m.manifest.to_string())
                            .or_default()
                            .push(tag.clone());
                        via.insert(m.manifest.to_string(), ix.digest.clone());
                        if let Some(of) = &m.attests {
                            attests.insert(m.manifest.to_string(), of.clone());
                        }
                    }
                } else {
                    by_manifest
                        .entry(v.value().to_string())
                        .or_default()
                        .push(tag);
                }
            }
            let mut out = Vec::new();
            for e in images.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                let image: ImageRecord = parse("image record", v.value())?;
                let mut tags = by_manifest.remove(k.value()).unwrap_or_default();
                tags.sort();
                tags.dedup();
                let index = via.remove(k.value());
                let attests = attests.remove(k.value());
                out.push(TaggedImage {
                    image,
                    tags,
                    index,
                    attests,
                });
            }
            out.sort_by(|a, b| b.image.added.cmp(&a.image.added).then(a.tags.cmp(&b.tags)));
            Ok(out)
        })
    }

    /// What a tag names: None when it is not a tag of this store.
    pub fn tag_target(&self, reference: &Reference) -> Result<Option<TagTarget>> {
        let Some(name) = reference.tag_key() else {
            return Ok(None);
        };
        let target = self.with_read(|tx| {
            let t = tx.open_table(TAGS).map_err(db_err)?;
            let v = t.get(name.as_str()).map_err(db_err)?;
            Ok(v.map(|v| v.value().to_string()))
        })?;
        let Some(target) = target else {
            return Ok(None);
        };
        let d: Digest = target
            .parse()
            .map_err(|e| StoreError::InvalidImage(format!("tag {name}: {e}")))?;
        Ok(Some(match self.index_record(&d)? {
            Some(ix) => TagTarget::Index(ix),
            None => TagTarget::Image(d),
        }))
    }

    /// Finds an image by tag (`name[:tag]`), full digest, or id prefix (of the config digest or
    /// the manifest digest, at least 4 hex digits). A tag of an index gives the host platform's
    /// image (else the first platform in the store); a tag of one image gives that image,
    /// whatever its platform.
    pub fn resolve(&self, what: &str) -> Result<TaggedImage> {
        self.resolve_in(what, &Platform::host(), false)
    }

    /// [`Store::resolve`] for a platform: a tag of an index gives that platform's image, and
    /// an image of another platform is an error naming the platforms there are.
    pub fn resolve_platform(&self, what: &str, platform: &Platform) -> Result<TaggedImage> {
        self.resolve_in(what, platform, true)
    }

    fn resolve_in(&self, what: &str, platform: &Platform, strict: bool) -> Result<TaggedImage> {
        let mut found = self.resolve_recorded(what, platform, strict)?;
        self.fill_platform(&mut found.image);
        Ok(found)
    }

    fn resolve_recorded(
        &self,
        what: &str,
        platform: &Platform,
        strict: bool,
    ) -> Result<TaggedImage> {
        let all = self.images_as_recorded()?;
        let by_manifest = |d: &Digest| all.iter().find(|t| t.image.manifest == *d);
        let wrong = |available: Vec<String>| StoreError::NoPlatform {
            image: what.to_string(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        };
        if let Ok(r) = Reference::parse_tag(what) {
            match self.tag_target(&r)? {
                Some(TagTarget::Image(d)) => {
                    if let Some(t) = by_manifest(&d) {
                        let mut t = t.clone();
                        if strict {
                            self.fill_platform(&mut t.image);
                            if let Some(p) =
                                t.image.platform.as_ref().filter(|p| !p.matches(platform))
                            {
                                return Err(wrong(vec![p.to_string()]));
                            }
                        }
                        return Ok(t);
                    }
                }
                Some(TagTarget::Index(ix)) => {
                    // Attestation manifests are never an image to choose.
                    let present: Vec<_> = ix
                        .images()
                        .filter(|m| by_manifest(&m.manifest).is_some())
                        .cloned()
                        .collect();
                    // Not strict: another platform when the one asked for is not here, as for
                    // a tag of one image.
                    let chosen =
                        whittle_oci::platform::select(&present, platform, |m| m.platform.clone())
                            .or(if strict { None } else { present.first() });
                    return match chosen.and_then(|m| by_manifest(&m.manifest)) {
                        Some(t) => Ok(t.clone()),
                        None => Err(wrong(
                            present
                                .iter()
                                .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
                                .collect(),
                        )),
                    };
                }
                None => {}
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let mut found: Vec<&TaggedImage> = all
                .iter()
                .filter(|t| {
                    t.image.config.hex().starts_with(&hex)
                        || t.image.manifest.hex().starts_with(&hex)
                })
                .collect();
            found.dedup_by(|a, b| a.image.manifest == b.image.manifest);
            return match found.len() {
                0 => Err(StoreError::ImageNotFound(what.to_string())),
                1 => Ok(found[0].clone()),
                _ => Err(StoreError::Ambiguous(what.to_string())),
            };
        }
        Err(StoreError::ImageNotFound(what.to_string()))
    }

    /// The manifest of an image.
    pub fn manifest(&self, img: &ImageRecord) -> Result<Manifest> {
        serde_json::from_slice(&self.read_document(&img.manifest)?)
            .map_err(|e| StoreError::json(format!("manifest {}", img.manifest), e))
    }

    /// The config of an image, typed (unknown fields kept; see `whittle_oci::ImageConfig`).
    pub fn image_config(&self, img: &ImageRecord) -> Result<ImageConfig> {
        ImageConfig::from_slice(&self.read_document(&img.config)?)
            .map_err(|e| StoreError::json(format!("config {}", img.config), e))
    }

    /// The manifest and config of an image as JSON values, for showing them as they are
    /// (`inspect`).
    pub fn manifest_and_config(
        &self,
        img: &ImageRecord,
    ) -> Result<(serde_json::Value, serde_json::Value)> {
        let m = serde_json::from_slice(&self.read_document(&img.manifest)?)
            .map_err(|e| StoreError::json(format!("manifest {}", img.manifest), e))?;
        let c = serde_json::from_slice(&self.read_document(&img.config)?)
            .map_err(|e| StoreError::json(format!("config {}", img.config), e))?;
        Ok((m, c))
    }

    /// The config's history, each step matched with the layer it produced, newest first.
    pub fn history(&self, img: &ImageRecord) -> Result<Vec<HistoryEntry>> {
        let cfg = self.image_config(img)?;
        let mut layers = img.layers.iter();
        let mut out = Vec::new();
        for h in cfg.history() {
            let layer = if h.is_empty_layer() {
                None
            } else {
                layers.next().cloned()
            };
            let size = match &layer {
                Some(d) => self.blob_size(d).unwrap_or(0),
                None => 0,
            };
            out.push(HistoryEntry {
                created: h.created.get().cloned(),
                created_by: h.created_by.get().cloned(),
                comment: h.comment.get().cloned(),
                layer,
                size,
            });
        }
        // Layers the history does not mention (configs without history).
        for d in layers {
            out.push(HistoryEntry {
                created: None,
                created_by: None,
                comment: None,
                layer: Some(d.clone()),
                size: self.blob_size(d).unwrap_or(0),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Tags whose image record is missing: (tag, manifest it names). A consistent store has
    /// none; `fsck` reports them.
    pub(crate) fn dangling_tags(&self) -> Result<Vec<(String, Digest)>> {
        self.with_read(|tx| {
            let tags = match tx.open_table(TAGS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let images = tx.open_table(IMAGES).map_err(db_err)?;
            let indexes = tx.open_table(INDEXES).map_err(db_err)?;
            let mut out = Vec::new();
            for e in tags.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                if images.get(v.value()).map_err(db_err)?.is_none()
                    && indexes.get(v.value()).map_err(db_err)?.is_none()
                {
                    let d = v
                        .value()
                        .parse::<Digest>()
                        .map_err(|e| StoreError::InvalidImage(format!("tag {}: {e}", k.value())))?;
                    out.push((k.value().to_string(), d));
                }
            }
            Ok(out)
        })
    }

    /// Rewrites index.json from the tags table (called with the db lock held).
    fn write_index(&self, db: &Database) -> Result<()> {
        let tx = db.begin_read().map_err(db_err)?;
        let tags = tx.open_table(TAGS).map_err(db_err)?;
        let images = tx.open_table(IMAGES).map_err(db_err)?;
        let indexes = tx.open_table(INDEXES).map_err(db_err)?;
        let mut entries = Vec::new();
        for e in tags.iter().map_err(db_err)? {
            let (k, v) = e.map_err(db_err)?;
            let r = Reference::parse_tag(k.value())?;
            if let Some(ix) = indexes.get(v.value()).map_err(db_err)? {
                let ix: IndexRecord = parse("index record", ix.value())?;
                let mut d = index_entry_for(&ix.media_type, &ix.digest, ix.size, Some(&r));
                // Readers that walk the layout expect what an entry names to be there.
                if ix.manifests.iter().any(|m| !self.has_blob(&m.manifest)) {
                    d.annotations
                        .insert("dev.whittle.partial".into(), "true".into());
                }
                entries.push(d);
                continue;
            }
            let Some(rec) = images.get(v.value()).map_err(db_err)? else {
                continue;
            };
            let img: ImageRecord = parse("image record", rec.value())?;
            entries.push(index_entry(&img, Some(&r)));
        }
        write_atomic(&self.root, "index.json", &index_json(entries)?)
    }
}
