//! One pass over one layer: every entry's key remembered (as a 64-bit hash, for stacking), its
//! whiteouts and opaque directories, and each file a cataloger wants read through a bound and
//! turned into what it says ([`Found`]). Executables are recognised by their first bytes and
//! spooled (see `elf.rs`); jars over [`JAR_IN_MEMORY`] are spooled too.

use crate::catalog::{self, Want};
use crate::elf;
use crate::error::{Result, SbomError};
use crate::package::{purl, Package, PackageKind};
use crate::{Limits, Note};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek, Write};
use whittle_analyze::layers::{Entry, EntryKind, ImageLayers};
use whittle_analyze::path;

/// Jars up to this size are read into memory; larger ones go to a temporary file.
pub const JAR_IN_MEMORY: u64 = 8 << 20;

/// What a wanted file said.
#[derive(Debug)]
pub enum Found {
    /// Packages that came with this file (Python, npm, jar, binaries, Cargo.lock).
    Packages(Vec<Package>),
    /// A package database rewritten by each layer that installs (dpkg status, apk installed):
    /// a package's layer is where this file first listed it (see `stack.rs`).
    Database(Vec<Package>),
    /// A dpkg `.list` file: the package and its files.
    DpkgList(String, Vec<String>),
    /// os-release's `ID` and `VERSION_ID`.
    OsRelease(String, String),
}

/// What one layer holds, for stacking.
#[derive(Debug, Default)]
pub struct LayerFinds {
    /// Wanted files, by key.
    pub finds: Vec<(Vec<u8>, Found)>,
    /// Hashes of every entry's key (a later entry at a key replaces the file below).
    pub present: HashSet<u64>,
    /// Hashes of the keys of entries that are not directories (they hide what is below them).
    pub nondir: HashSet<u64>,
    /// Hashes of keys deleted by whiteouts.
    pub removed: HashSet<u64>,
    /// Hashes of directories made opaque.
    pub opaque: HashSet<u64>,
    /// Files skipped, and why.
    pub notes: Vec<Note>,
}

/// The hash of a key used for stacking. SipHash with fixed keys: deterministic; two keys of one
/// image colliding (about 1 in 10^7 for 2 million entries) would at worst drop a package.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Reads at most `max` bytes; `Ok(None)` when there are more.
fn read_bounded(r: &mut dyn Read, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut v = Vec::new();
    r.take(max + 1).read_to_end(&mut v)?;
    Ok((v.len() as u64 <= max).then_some(v))
}

/// Copies `prefix` and the rest of `r` (at most `max` bytes in all) to an anonymous temporary
/// file, rewound.
fn spool(prefix: &[u8], r: &mut dyn Read, what: &str) -> Result<std::fs::File> {
    let err = |source| SbomError::Spool {
        what: what.to_string(),
        source,
    };
    let mut f = tempfile::tempfile().map_err(err)?;
    f.write_all(prefix).map_err(err)?;
    io::copy(r, &mut f).map_err(err)?;
    f.rewind().map_err(err)?;
    Ok(f)
}

/// Scans layer `index` of an image.
pub fn scan(img: &ImageLayers, index: usize, limits: &Limits) -> Result<LayerFinds> {
    scan_walk(index, limits, |f| img.walk(index, &limits.analyze, f))
}

/// Scans the layer `index` whose entries `walk` hands, one at a time, to the function it is
/// given (a layer tar's, or a snapshot directory's: `dirlayer.rs`).
pub fn scan_walk<W>(index: usize, limits: &Limits, walk: W) -> Result<LayerFinds>
where
    W: FnOnce(&mut dyn FnMut(&Entry, &mut dyn Read) -> Result<()>) -> Result<()>,
{
    let mut out = LayerFinds::default();
    walk(&mut |e: &Entry, r: &mut dyn Read| -> Result<()> {
        let h = key_hash(&e.key);
        match &e.kind {
            EntryKind::Whiteout(t) => {
                out.removed.insert(key_hash(t));
                return Ok(());
            }
            EntryKind::Opaque => {
                out.opaque.insert(h);
                return Ok(());
            }
            EntryKind::Dir => {}
            _ => {
                out.nondir.insert(h);
            }
        }
        out.present.insert(h);
        if e.kind != EntryKind::File {
            return Ok(());
        }
        let shown = path::display(&e.key);
        let rerr = |source| SbomError::Read {
            layer: index,
            path: shown.clone(),
            source,
        };
        let mut note = |why: String| {
            out.notes.push(Note {
                layer: index,
                path: shown.clone(),
                why,
            })
        };
        let want = catalog::wants(&e.key);
        let found = match want {
            Some(Want::Jar) => {
                let parsed = if e.size <= JAR_IN_MEMORY {
                    match read_bounded(r, JAR_IN_MEMORY).map_err(rerr)? {
                        Some(b) => catalog::java::parse_jar(io::Cursor::new(b), &shown),
                        None => Err("larger than its header says".into()),
                    }
                } else if e.size <= limits.max_archive {
                    let f = spool(&[], &mut r.take(limits.max_archive), &shown)?;
                    catalog::java::parse_jar(f, &shown)
                } else {
                    Err(format!(
                        "{} bytes, more than the {} read",
                        e.size, limits.max_archive
                    ))
                };
                match parsed {
                    Ok(p) => Some(Found::Packages(p)),
                    Err(why) => {
                        note(why);
                        None
                    }
                }
            }
            Some(w) => {
                let max = match w {
                    Want::DpkgStatus | Want::Apk | Want::DpkgList(_) => limits.max_database,
                    _ => limits.max_metadata,
                };
                let bytes = if w == Want::Python {
                    // Only the headers at the top are needed: the first `max` bytes, whatever
                    // the size of the long description below them.
                    let mut b = Vec::new();
                    r.take(max).read_to_end(&mut b).map_err(rerr)?;
                    Some(b)
                } else {
                    read_bounded(r, max).map_err(rerr)?
                };
                let Some(bytes) = bytes else {
                    note(format!("more than {max} bytes: not read"));
                    return Ok(());
                };
                let text = String::from_utf8_lossy(&bytes);
                match w {
                    Want::DpkgStatus => {
                        Some(Found::Database(catalog::dpkg::parse_status(&text, &shown)))
                    }
                    Want::Apk => Some(Found::Database(catalog::apk::parse_installed(
                        &text, &shown,
                    ))),
                    Want::DpkgList(p) => Some(Found::DpkgList(p, catalog::dpkg::parse_list(&text))),
                    Want::OsRelease => {
                        let (id, v) = catalog::os_release(&text);
                        Some(Found::OsRelease(id, v))
                    }
                    Want::Python => match catalog::python::parse_metadata(&text, &shown) {
                        Ok(p) => Some(Found::Packages(vec![p])),
                        Err(why) => {
                            note(why);
                            None
                        }
                    },
                    Want::Npm => match catalog::npm::parse_package_json(&bytes, &shown) {
                        Ok(p) => Some(Found::Packages(vec![p])),
                        Err(why) => {
                            note(why);
                            None
                        }
                    },
                    Want::CargoLock => match catalog::cargo::parse_lock(&text, &shown) {
                        Ok(p) => Some(Found::Packages(p)),
                        Err(why) => {
                            note(format!("not a Cargo.lock: {why}"));
                            None
                        }
                    },
                    Want::Jar => None,
                }
            }
            None if e.mode & 0o111 != 0 && e.size >= 64 => {
                let mut prefix = Vec::with_capacity(elf::PREFIX);
                r.take(elf::PREFIX as u64)
                    .read_to_end(&mut prefix)
                    .map_err(rerr)?;
                if !elf::is_executable(&prefix) {
                    return Ok(());
                }
                if e.size > limits.max_binary {
                    note(format!(
                        "an executable of {} bytes, more than the {} read",
                        e.size, limits.max_binary
                    ));
                    return Ok(());
                }
                let f = spool(&prefix, &mut r.take(limits.max_binary), &shown)?;
                let emb = elf::inspect(f);
                for p in emb.problems {
                    note(p);
                }
                let mut pkgs = Vec::new();
                if let Some(bi) = &emb.go {
                    pkgs.extend(go_packages(bi, &shown));
                }
                if let Some(j) = &emb.rust {
                    pkgs.extend(catalog::cargo::from_auditable(j, &shown));
                }
                (!pkgs.is_empty()).then_some(Found::Packages(pkgs))
            }
            None => None,
        };
        if let Some(f) = found {
            out.finds.push((e.key.clone(), f));
        }
        Ok(())
    })?;
    Ok(out)
}

/// A Go module's purl: the path's last element is the name, the rest the namespace.
fn go_purl(path: &str, version: &str) -> String {
    match path.rsplit_once('/') {
        Some((ns, name)) => purl("golang", Some(ns), name, version, &[]),
        None => purl("golang", None, path, version, &[]),
    }
}

/// The packages of a Go binary: the main module, each dependency (a replacement by another
/// module takes its place; a replacement by a directory, recorded as `(devel)`, keeps the
/// required path and version, the only version anyone can look up), and the standard library.
pub fn go_packages(bi: &crate::gobuildinfo::BuildInfo, location: &str) -> Vec<Package> {
    let mut out = Vec::new();
    let mut push = |path: &str, version: &str| {
        out.push(Package::new(
            PackageKind::GoModule,
            path,
            version,
            go_purl(path, version),
            location,
        ));
    };
    if let Some(m) = &bi.main {
        push(&m.path, &m.version);
    }
    for d in &bi.deps {
        match &d.replace {
            Some(r) if !r.version.is_empty() && r.version != "(devel)" => push(&r.path, &r.version),
            _ => push(&d.path, &d.version),
        }
    }
    if !bi.go_version.is_empty() {
        let v = bi.go_version.strip_prefix("go").unwrap_or(&bi.go_version);
        let v = v.split(' ').next().unwrap_or(v);
        out.push(Package::new(
            PackageKind::GoModule,
            "stdlib",
            v,
            purl("golang", None, "stdlib", v, &[]),
            location,
        ));
    }
    out
}
