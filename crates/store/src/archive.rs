//! Images in and out as files: docker-archive (`docker save` output, classic and Docker 25+
//! layouts), oci-archive and OCI layout directories, gzip/zstd-compressed or not.
//!
//! Loading streams the tar once: every blob goes straight into the store while being hashed (a
//! `blobs/sha256/<hex>` file must hash to its name), only small JSON documents are kept in
//! memory, then the images are recorded from the manifests (OCI `index.json`) or, for classic
//! docker archives, from `manifest.json` with OCI manifests made for them.

use crate::blobs::MAX_DOCUMENT;
use crate::error::{Result, StoreError};
use crate::images::{
    index_entry, index_entry_for, index_json, ImageRecord, ANN_IMAGE_NAME, ANN_REF_NAME,
};
use crate::indexes::IndexRecord;
use crate::store::Store;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use whittle_layer::{decompress, detect, Detected};
use whittle_oci::Reference;
use whittle_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, PlatformSpec};

/// Output format of [`save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// docker-archive: Docker 25+ layout (`manifest.json` next to an OCI layout), which `docker
    /// load`, skopeo and whittle read.
    Docker,
    /// oci-archive: an OCI image layout in a tar.
    Oci,
}

/// One image that [`load`] recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Manifest digest.
    pub manifest: Digest,
    /// Image id (config digest).
    pub id: Digest,
    /// Tags given to it.
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Where the blobs of the images being loaded come from.
enum Source<'a> {
    /// Already streamed into the store.
    Streamed,
    /// An OCI layout directory to copy from.
    Dir(&'a Path),
}

impl Source<'_> {
    fn ensure(&self, store: &Store, d: &Digest) -> Result<()> {
        if store.has_blob(d) {
            return Ok(());
        }
        match self {
            Source::Streamed => Err(StoreError::InvalidImage(format!(
                "blob {d} is not in the archive"
            ))),
            Source::Dir(dir) => {
                let p = dir.join("blobs/sha256").join(d.hex());
                let mut f = File::open(&p).map_err(|e| StoreError::io("open", p.clone(), e))?;
                let mut w = store.blob_writer(Some(d.clone()))?;
                io::copy(&mut f, &mut w).map_err(|e| StoreError::io("copy", p.clone(), e))?;
                w.commit()?;
                Ok(())
            }
        }
    }
}

fn clean_path(p: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(p).ok()?;
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn read_limited<R: Read>(r: R, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut v)
        .map_err(|e| StoreError::io("read", what, e))?;
    if v.len() as u64 > MAX_DOCUMENT {
        return Err(StoreError::TooLarge {
            what: what.to_string(),
            limit: MAX_DOCUMENT,
        });
    }
    Ok(v)
}

/// Loads every image of a docker-archive, oci-archive (`-` reads stdin) or OCI layout directory
/// into the store and tags them as the archive names them.
///
/// All or nothing: tags are applied, in one transaction, only once every image of the archive
/// is stored and verified; when anything fails, the images this load wrote and nothing tags are
/// removed again.
pub fn load(store: &Store, input: &Path) -> Result<Vec<LoadedImage>> {
    let _lease = store.lease()?;
    let mut pending = Pending::default();
    let r = load_images(store, input, &mut pending)
        .and_then(|out| store.tag_many(&pending.tags).map(|()| out));
    if r.is_err() {
        // Best effort: what stays behind is untagged, and prune's to take.
        let _ = store.remove_untagged(&pending.written);
    }
    r
}

/// What a load will tag once everything is in, and the images it wrote.
#[derive(Default)]
struct Pending {
    tags: Vec<(Reference, Digest)>,
    written: Vec<Digest>,
}

fn load_images(store: &Store, input: &Path, pending: &mut Pending) -> Result<Vec<LoadedImage>> {
    if input.is_dir() {
        let idx = read_limited(
            File::open(input.join("index.json"))
                .map_err(|e| StoreError::io("open", input.join("index.json"), e))?,
            "index.json",
        )?;
        return load_index(store, &idx, &Source::Dir(input), None, pending);
    }
    let reader: Box<dyn Read> = if input == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(input).map_err(|e| StoreError::io("open", input, e))?)
    };
    let (_, r) = decompress(BufReader::with_capacity(256 * 1024, reader))
        .map_err(|e| StoreError::io("read", input, e))?;
    let mut ar = tar::Archive::new(r);
    let mut files: HashMap<String, Digest> = HashMap::new();
    let mut docs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let rd = |e: io::Error| StoreError::io("read archive", input, e);
    for entry in ar.entries().map_err(rd)? {
        let mut entry = entry.map_err(rd)?;
        let Some(path) = clean_path(&entry.path_bytes()) else {
            continue;
        };
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let top_doc = !path.contains('/')
                    && (path.ends_with(".json") || path == "repositories" || path == "oci-layout");
                if top_doc {
                    let v = read_limited(&mut entry, &path)?;
                    docs.insert(path, v);
                } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                    let d: Digest = format!("sha256:{hex}").parse().map_err(|_| {
                        StoreError::InvalidImage(format!(
                            "archive entry {path} is not named by a digest"
                        ))
                    })?;
                    if !store.has_blob(&d) {
                        let mut w = store.blob_writer(Some(d.clone()))?;
                        io::copy(&mut entry, &mut w).map_err(rd)?;
                        w.commit().map_err(|e| match e {
                            StoreError::DigestMismatch { expected, actual } => {
                                StoreError::InvalidImage(format!(
                                    "archive entry {path} hashes to {actual}, not {expected}"
                                ))
                            }
                            e => e,
                        })?;
                    }
                    files.insert(path, d);
                } else if path.ends_with(".tar")
                    || path.ends_with(".tar.gz")
                    || path.ends_with(".tgz")
                {
                    // Classic docker-archive layer (`<id>/layer.tar`).
                    let mut w = store.blob_writer(None)?;
                    io::copy(&mut entry, &mut w).map_err(rd)?;
                    let (d, _) = w.commit()?;
                    files.insert(path, d);
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let Some(target) = entry.link_name_bytes() else {
                    continue;
                };
                let t = if kind == tar::EntryType::Symlink && !target.starts_with(b"/") {
                    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let mut joined = dir.as_bytes().to_vec();
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    // Resolve `..` lexically within the archive.
                    let mut parts: Vec<&[u8]> = Vec::new();
                    for c in joined.split(|&b| b == b'/') {
                        match c {
                            b"" | b"." => {}
                            b".." => {
                                parts.pop();
                            }
                            c => parts.push(c),
                        }
                    }
                    String::from_utf8(parts.join(&b'/')).ok()
                } else {
                    clean_path(&target)
                };
                if let Some(t) = t {
                    links.insert(path, t);
                }
            }
            _ => {}
        }
    }
    let resolve = |p: &str| -> Option<Digest> {
        let mut p = clean_path(p.as_bytes())?;
        for _ in 0..16 {
            if let Some(d) = files.get(&p) {
                return Some(d.clone());
            }
            p = links.get(&p)?.clone();
        }
        None
    };
    let docker_manifest: Option<Vec<DockerManifestEntry>> = match docs.get("manifest.json") {
        Some(m) => {
            Some(serde_json::from_slice(m).map_err(|e| StoreError::json("manifest.json", e))?)
        }
        None => None,
    };
    if let Some(idx) = docs.get("index.json") {
        // OCI archive, or Docker 25+ archive (an OCI layout plus manifest.json for RepoTags).
        let mut extra: HashMap<Digest, Vec<String>> = HashMap::new();
        for e in docker_manifest.iter().flatten() {
            if let Some(cfg) = resolve(&e.config) {
                extra
                    .entry(cfg)
                    .or_default()
                    .extend(e.repo_tags.clone().unwrap_or_default());
            }
        }
        return load_index(store, idx, &Source::Streamed, Some(&extra), pending);
    }
    let Some(entries) = docker_manifest else {
        return Err(StoreError::InvalidImage(format!(
            "{} has neither index.json nor manifest.json",
            input.display()
        )));
    };
    let mut out = Vec::new();
    for e in entries {
        let cfg_bytes = match docs.get(&e.config) {
            Some(b) => b.clone(),
            None => {
                let d = resolve(&e.config).ok_or_else(|| {
                    StoreError::InvalidImage(format!("config {} is not in the archive", e.config))
                })?;
                store.read_document(&d)?
            }
        };
        let cfg = ImageConfig::from_slice(&cfg_bytes)
            .map_err(|err| StoreError::json(format!("config {}", e.config), err))?;
        let diff_ids = cfg.diff_ids();
        if diff_ids.len() != e.layers.len() {
            return Err(StoreError::InvalidImage(format!(
                "config {} lists {} diff ids for {} layers",
                e.config,
                diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, l) in e.layers.iter().enumerate() {
            let d = resolve(l).ok_or_else(|| {
                StoreError::InvalidImage(format!("layer {l} is not in the archive"))
            })?;
            let mut head = BufReader::new(store.open_blob(&d)?);
            let kind = detect(&mut head)
                .map_err(|err| StoreError::io("read", store.blob_path(&d), err))?;
            let mt = match kind {
                Detected::None => {
                    if d != diff_ids[i] {
                        return Err(StoreError::InvalidImage(format!(
                            "layer {l} hashes to {d} but the config says {}",
                            diff_ids[i]
                        )));
                    }
                    media_type::OCI_LAYER_TAR
                }
                Detected::Gzip => media_type::OCI_LAYER_GZIP,
                Detected::Zstd => media_type::OCI_LAYER_ZSTD,
            };
            layers.push((d.clone(), mt.to_string(), store.blob_size(&d)?));
        }
        let digests: Vec<Digest> = layers.iter().map(|(d, _, _)| d.clone()).collect();
        verify_diff_ids(store, &cfg_bytes, &digests)?;
        let img = store.write_image(&cfg_bytes, &layers)?;
        let tags = tag_all(
            pending,
            &img,
            e.repo_tags.unwrap_or_default().iter().map(String::as_str),
        )?;
        out.push(LoadedImage {
            manifest: img.manifest.clone(),
            id: img.config.clone(),
            tags,
        });
    }
    Ok(out)
}

/// Checks every layer against the config's `rootfs.diff_ids` by hashing its uncompressed stream
/// (one streaming pass each; the blob digest itself was checked when it was written), so an
/// archive whose config and layers disagree is refused before anything refers to it.
fn verify_diff_ids(store: &Store, config: &[u8], layers: &[Digest]) -> Result<()> {
    let cfg = ImageConfig::from_slice(config).map_err(|e| StoreError::json("image config", e))?;
    let Some(diff_ids) = cfg.rootfs.get().and_then(|r| r.diff_ids.get()) else {
        return Err(StoreError::InvalidImage(
            "image config has no rootfs.diff_ids".into(),
        ));
    };
    if diff_ids.len() != layers.len() {
        return Err(StoreError::InvalidImage(format!(
            "config lists {} diff ids for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    for (i, (layer, want)) in layers.iter().zip(diff_ids).enumerate() {
        if want == layer {
            // An uncompressed layer: its blob digest, checked when it was stored, is the diff id.
            continue;
        }
        let f = store.open_blob(layer)?;
        let (_, r) = decompress(BufReader::with_capacity(256 * 1024, f))
            .map_err(|e| StoreError::io("read", store.blob_path(layer), e))?;
        let mut h = whittle_layer::HashingReader::new(r);
        io::copy(&mut h, &mut io::sink())
            .map_err(|e| StoreError::io("decompress", store.blob_path(layer), e))?;
        let (_, got, _) = h.finish();
        if *want != got {
            return Err(StoreError::InvalidImage(format!(
                "layer {i} ({layer}) uncompresses to {got} but the config says {want}"
            )));
        }
    }
    Ok(())
}

/// Records `img` as written by this load and the tags it is to get; a name that is not a valid
/// reference fails the load before anything is tagged.
fn tag_all<'a>(
    pending: &mut Pending,
    img: &ImageRecord,
    names: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>> {
    pending.written.push(img.manifest.clone());
    let mut tags = Vec::new();
    for n in names {
        let r = Reference::parse_tag(n)?;
        let s = crate::images::tag_key(&r)?;
        pending.tags.push((r, img.manifest.clone()));
        if !tags.contains(&s) {
            tags.push(s);
        }
    }
    Ok(tags)
}

/// The name an index descriptor gives its image: the full-name annotation, else a ref.name that
/// is a full reference (`name:tag`). A bare tag (`latest`) names no repository, so it is skipped.
fn descriptor_name(ann: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = ann.get(ANN_IMAGE_NAME) {
        return Some(n.clone());
    }
    let r = ann.get(ANN_REF_NAME)?;
    (r.contains(':') || r.contains('/')).then(|| r.clone())
}

fn load_index(
    store: &Store,
    idx: &[u8],
    src: &Source<'_>,
    extra_tags: Option<&HashMap<Digest, Vec<String>>>,
    pending: &mut Pending,
) -> Result<Vec<LoadedImage>> {
    let index: Index =
        serde_json::from_slice(idx).map_err(|e| StoreError::json("index.json", e))?;
    let mut out: Vec<LoadedImage> = Vec::new();
    for desc in &index.manifests {
        let names: Vec<String> = descriptor_name(&desc.annotations).into_iter().collect();
        let at = Place {
            names: &names,
            extra_tags,
            depth: 0,
        };
        load_descriptor(store, desc, src, &at, &mut out, pending)?;
    }
    Ok(out)
}

/// Where a descriptor sits: the names it is to get, the archive's extra tags, the nesting depth.
struct Place<'a> {
    names: &'a [String],
    extra_tags: Option<&'a HashMap<Digest, Vec<String>>>,
    depth: usize,
}

fn load_descriptor(
    store: &Store,
    desc: &Descriptor,
    src: &Source<'_>,
    at: &Place<'_>,
    out: &mut Vec<LoadedImage>,
    pending: &mut Pending,
) -> Result<()> {
    let (names, extra_tags, depth) = (at.names, at.extra_tags, at.depth);
    let d = desc.digest.clone();
    src.ensure(store, &d)?;
    if media_type::is_index(&desc.media_type) {
        if depth > 4 {
            return Err(StoreError::InvalidImage("indexes nested too deep".into()));
        }
        let nested: Index = serde_json::from_slice(&store.read_document(&d)?)
            .map_err(|e| StoreError::json(format!("index {d}"), e))?;
        // Every image of a multi-platform index is loaded, and its names go to the index, so
        // the store keeps all its platforms under them. Nested indexes (an index of indexes)
        // are loaded too; only the outermost one is named.
        for m in nested.manifests.iter() {
            let inner = Place {
                names: &[],
                extra_tags,
                depth: depth + 1,
            };
            load_descriptor(store, m, src, &inner, out, pending)?;
        }
        if names.is_empty() {
            return Ok(());
        }
        let ix = store.put_index(&d)?;
        let mut tags = Vec::new();
        for n in names {
            let r = Reference::parse_tag(n)?;
            let key = crate::images::tag_key(&r)?;
            pending.tags.push((r, ix.digest.clone()));
            if !tags.contains(&key) {
                tags.push(key);
            }
        }
        // Shown on the host's image (else the first), as the image these names give here.
        let shown = nested
            .manifests
            .iter()
            .position(|m| is_host_platform(m.platform.as_ref()))
            .unwrap_or(0);
        if let Some(o) = nested
            .manifests
            .get(shown)
            .and_then(|m| out.iter_mut().find(|o| o.manifest == m.digest))
        {
            for t in tags {
                if !o.tags.contains(&t) {
                    o.tags.push(t);
                }
            }
        }
        return Ok(());
    }
    let m: Manifest = serde_json::from_slice(&store.read_document(&d)?)
        .map_err(|e| StoreError::json(format!("manifest {d}"), e))?;
    let cfg = m.config.digest;
    src.ensure(store, &cfg)?;
    let mut layers = Vec::new();
    for l in m.layers {
        src.ensure(store, &l.digest)?;
        layers.push(l.digest);
    }
    verify_diff_ids(store, &store.read_document(&cfg)?, &layers)?;
    let img = store.put_image(&d)?;
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(extra) = extra_tags.and_then(|e| e.get(&img.config)) {
        all.extend(extra.iter().map(String::as_str));
    }
    let tags = tag_all(pending, &img, all.into_iter())?;
    match out.iter_mut().find(|o| o.manifest == img.manifest) {
        Some(o) => {
            for t in tags {
                if !o.tags.contains(&t) {
                    o.tags.push(t);
                }
            }
        }
        None => out.push(LoadedImage {
            manifest: img.manifest.clone(),
            id: img.config.clone(),
            tags,
        }),
    }
    Ok(())
}

/// The OCI architecture name of this machine.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn is_host_platform(p: Option<&PlatformSpec>) -> bool {
    p.is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
}

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Writes images as one archive. Each `(name, image)` becomes an index entry (annotated with the
/// name when given) and, in docker format, a `manifest.json` entry. Output is deterministic:
/// fixed entry order, mtime 0, uid/gid 0.
pub fn save<W: Write>(
    store: &Store,
    images: &[(Option<Reference>, ImageRecord)],
    format: ArchiveFormat,
    out: W,
) -> Result<W> {
    save_with_indexes(store, images, &[], format, out)
}

/// [`save`] with multi-platform images too: each `(name, index)` becomes an index entry of
/// `index.json` (the index blob, every image it lists and their blobs are written). Only OCI
/// archives can hold them, and every platform of the index must be in the store.
pub fn save_with_indexes<W: Write>(
    store: &Store,
    images: &[(Option<Reference>, ImageRecord)],
    indexes: &[(Option<Reference>, IndexRecord)],
    format: ArchiveFormat,
    out: W,
) -> Result<W> {
    let _lease = store.lease()?;
    if format == ArchiveFormat::Docker && !indexes.is_empty() {
        return Err(StoreError::Unsupported(
            "a docker archive holds one platform per image: save a multi-platform image as an \
             OCI archive, or pick one platform"
                .into(),
        ));
    }
    let mut members: Vec<ImageRecord> = Vec::new();
    for (r, ix) in indexes {
        for m in &ix.manifests {
            let img = store.put_image(&m.manifest).map_err(|_| {
                StoreError::InvalidImage(format!(
                    "{} is only partly in the store: its {} image {} is missing (pull that \
                     platform first, or save one platform)",
                    r.as_ref()
                        .map_or_else(|| ix.digest.to_string(), ToString::to_string),
                    m.platform
                        .as_ref()
                        .map_or_else(|| "unnamed".to_string(), ToString::to_string),
                    m.manifest
                ))
            })?;
            members.push(img);
        }
    }
    let mut blobs: Vec<&Digest> = images
        .iter()
        .map(|(_, i)| i)
        .chain(members.iter())
        .flat_map(|i| i.blobs())
        .chain(indexes.iter().map(|(_, ix)| &ix.digest))
        .collect();
    blobs.sort();
    blobs.dedup();
    let wr = |e: io::Error| StoreError::io("write", "archive", e);
    let mut b = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0, true);
        b.append_data(&mut h, dir, io::empty()).map_err(wr)?;
    }
    for d in &blobs {
        let f = store.open_blob(d)?;
        let size = f
            .metadata()
            .map_err(|e| StoreError::io("stat", store.blob_path(d), e))?
            .len();
        let path = format!("blobs/sha256/{}", d.hex());
        let mut h = header(size, false);
        b.append_data(&mut h, &path, f).map_err(wr)?;
    }
    let entries: Vec<Descriptor> = images
        .iter()
        .map(|(r, i)| index_entry(i, r.as_ref()))
        .chain(
            indexes
                .iter()
                .map(|(r, ix)| index_entry_for(&ix.media_type, &ix.digest, ix.size, r.as_ref())),
        )
        .collect();
    let idx = index_json(entries)?;
    let mut h = header(idx.len() as u64, false);
    b.append_data(&mut h, "index.json", &idx[..]).map_err(wr)?;
    if format == ArchiveFormat::Docker {
        let mut groups: Vec<(&ImageRecord, Vec<String>)> = Vec::new();
        for (r, i) in images {
            let pos = groups.iter().position(|(g, _)| g.manifest == i.manifest);
            let g = match pos {
                Some(p) => &mut groups[p].1,
                None => {
                    groups.push((i, Vec::new()));
                    let last = groups.len() - 1;
                    &mut groups[last].1
                }
            };
            if let Some(r) = r {
                g.push(r.to_string());
            }
        }
        let list: Vec<serde_json::Value> = groups
            .iter()
            .map(|(i, tags)| {
                serde_json::json!({
                    "Config": format!("blobs/sha256/{}", i.config.hex()),
                    "RepoTags": tags,
                    "Layers": i.layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
                })
            })
            .collect();
        let m = serde_json::to_vec(&list).map_err(|e| StoreError::json("manifest.json", e))?;
        let mut h = header(m.len() as u64, false);
        b.append_data(&mut h, "manifest.json", &m[..]).map_err(wr)?;
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut h = header(layout.len() as u64, false);
    b.append_data(&mut h, "oci-layout", &layout[..])
        .map_err(wr)?;
    b.into_inner().map_err(wr)
}
