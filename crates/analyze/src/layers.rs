//! An image's layers for readers other than the analysis (`whittle-sbom`): the image's
//! metadata, and each layer streamed once as a sequence of entries with PAX and GNU records
//! applied (capped as in `tarx.rs`) and names normalised inside the root (`path.rs`), each with
//! a reader over its content. Whiteouts and opaque markers are reported as entries, not
//! applied: stacking layers is the reader's job.

use crate::error::{AnalyzeError, Result};
use crate::image::{ImageMeta, Loc};
use crate::path::{self, PathProblem};
use crate::scan::{target_of, OPAQUE, WHITEOUT, WHITEOUT_META};
use crate::{tarx, Input, Limits};
use std::io::{self, BufReader, Read};
use whittle_store::Store;

/// One layer of an image.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// Blob digest, when the layout names one (store, OCI layouts, Docker 25+ archives).
    pub digest: Option<String>,
    /// `rootfs.diff_ids` entry: the digest of the uncompressed tar.
    pub diff_id: Option<String>,
    /// `created_by` of the history entry matched to this layer.
    pub created_by: Option<String>,
}

/// An image found, with its layers not yet read.
#[derive(Debug)]
pub struct ImageLayers {
    /// How the image was named (its tag, or the archive).
    pub name: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// Digest of the config (the image id).
    pub config_digest: Option<String>,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
    locs: Vec<Loc>,
}

/// What a layer entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; its content is the reader.
    File,
    /// A directory.
    Dir,
    /// A symbolic link to the given (raw) target.
    Symlink(Vec<u8>),
    /// A hard link to the entry with the given key.
    HardLink(Option<Vec<u8>>),
    /// A device or FIFO.
    Special,
    /// A whiteout: deletes the given key (and what is below it) from the layers below.
    Whiteout(Vec<u8>),
    /// An opaque marker: the entry's key is the directory whose lower content is hidden (the
    /// empty key is the root).
    Opaque,
}

/// One entry of a layer.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Normalised key (`path.rs`: components joined by NUL).
    pub key: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Size from the tar header.
    pub size: u64,
}

/// Finds an image (store, `docker-archive:`, `oci-archive:`, `oci:`) and its layers.
pub fn open(input: &Input, store: Option<&Store>, limits: &Limits) -> Result<ImageLayers> {
    let (meta, locs) = crate::input::locate(input, store, limits)?;
    let ImageMeta {
        name,
        layers,
        created,
        config_digest,
    } = meta;
    Ok(ImageLayers {
        name,
        created,
        config_digest,
        layers: layers
            .into_iter()
            .map(|l| LayerInfo {
                digest: l.digest,
                diff_id: l.diff_id,
                created_by: l.created_by,
            })
            .collect(),
        locs,
    })
}

impl ImageLayers {
    /// Streams layer `index` once (decompressed as needed), calling `f` for every entry in tar
    /// order with a reader over its content (empty except for regular files). `f` may read as
    /// much of it as it likes; the rest is skipped.
    pub fn walk<E, F>(&self, index: usize, limits: &Limits, mut f: F) -> Result<(), E>
    where
        E: From<AnalyzeError>,
        F: FnMut(&Entry, &mut dyn Read) -> Result<(), E>,
    {
        let loc = self
            .locs
            .get(index)
            .ok_or_else(|| AnalyzeError::InvalidInput(format!("the image has no layer {index}")))?;
        let label = match self.layers.get(index).and_then(|l| l.digest.as_ref()) {
            Some(d) => format!("{index} ({d})"),
            None => index.to_string(),
        };
        let lerr = |e: io::Error| AnalyzeError::Layer {
            layer: label.clone(),
            source: e,
        };
        let r = loc.open()?;
        let (_, dec) =
            whittle_layer::decompress(BufReader::with_capacity(256 * 1024, r)).map_err(lerr)?;
        let mut ar = tar::Archive::new(dec);
        let mut it = ar.entries().map_err(lerr)?.raw(true);
        while let Some((mut entry, mut ext)) =
            tarx::next_entry(&mut it, limits.max_extension, &label)?
        {
            let et = entry.header().entry_type();
            let size = entry.header().entry_size().map_err(lerr)?;
            let raw = tarx::path_of(&entry, &mut ext);
            let key = match path::normalize(&raw, limits.max_path) {
                Ok(Some(k)) => k.into_vec(),
                Ok(None) => continue,
                Err(PathProblem::TooLong(n)) => {
                    return Err(AnalyzeError::Limit {
                        what: format!("layer {label}: an entry name of {n} bytes"),
                        limit: limits.max_path as u64,
                    }
                    .into())
                }
                Err(PathProblem::Nul) => {
                    return Err(AnalyzeError::Unsupported {
                        layer: label.clone(),
                        what: "an entry name holding a NUL byte".into(),
                    }
                    .into())
                }
            };
            let name = path::name(&key);
            let (key, kind) = if path::components(&key).any(|c| c.starts_with(WHITEOUT_META)) {
                if name != OPAQUE {
                    continue; // aufs metadata (`.wh..wh.plnk`, ...)
                }
                (
                    path::parent(&key).unwrap_or(&[]).to_vec(),
                    EntryKind::Opaque,
                )
            } else if name == WHITEOUT {
                continue;
            } else if name.starts_with(WHITEOUT) {
                let t = target_of(&key);
                (key, EntryKind::Whiteout(t))
            } else {
                let kind = match et {
                    tar::EntryType::Regular
                    | tar::EntryType::Continuous
                    | tar::EntryType::GNUSparse
                        if !(raw.ends_with(b"/") && et.as_byte() == 0) =>
                    {
                        EntryKind::File
                    }
                    tar::EntryType::Regular | tar::EntryType::Directory => EntryKind::Dir,
                    tar::EntryType::Symlink => {
                        EntryKind::Symlink(tarx::link_of(&entry, &mut ext).unwrap_or_default())
                    }
                    tar::EntryType::Link => EntryKind::HardLink(
                        tarx::link_of(&entry, &mut ext)
                            .and_then(|l| path::normalize(&l, limits.max_path).ok().flatten())
                            .map(|k| k.into_vec()),
                    ),
                    _ => EntryKind::Special,
                };
                (key, kind)
            };
            let mode = entry.header().mode().unwrap_or(0) & 0o7777;
            let e = Entry {
                key,
                kind,
                mode,
                size,
            };
            if e.kind == EntryKind::File {
                f(&e, &mut entry)?;
            } else {
                f(&e, &mut io::empty())?;
            }
        }
        // To the end: a blob from a registry checks its digest only there.
        io::copy(&mut ar.into_inner(), &mut io::sink()).map_err(lerr)?;
        Ok(())
    }
}
