//! Deterministic layer tars from a directory or an overlay upper dir.

use crate::compress::{CompressWriter, Compression};
use crate::digest::{Digest, HashingWriter};
use crate::error::WriteError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Prefix of a whiteout entry: `.wh.name` deletes `name` from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker: the directory hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How to read the source directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// A plain directory: everything in it is content.
    #[default]
    Directory,
    /// An overlayfs upper dir: char devices 0:0 are whiteouts, `*.overlay.opaque=y` dirs are
    /// opaque, other overlay xattrs are dropped.
    OverlayUpper,
}

/// Options for [`write_layer`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Compression of the blob (default gzip level 4, see [`Compression::default`]).
    pub compression: Compression,
    /// Worker threads for gzip (default: available cores). Never changes the output.
    pub threads: usize,
    /// Every mtime later than this (seconds since 1970) is clamped to it. Default:
    /// [`default_epoch`] (`SOURCE_DATE_EPOCH` if set, else 0).
    pub epoch: u64,
    /// Directory or overlay upper dir.
    pub source: SourceKind,
    /// Paths (relative to the source root, no leading `/`) left out with everything below them,
    /// e.g. mount points the runtime created.
    pub exclude: Vec<PathBuf>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::default(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            epoch: default_epoch(),
            source: SourceKind::Directory,
            exclude: Vec::new(),
        }
    }
}

/// The build epoch used when none is given: `SOURCE_DATE_EPOCH` if it is set to a number, else 0
/// (1970-01-01). With 0, every mtime in a layer is 0, so the same inputs give the same layer
/// digests on any machine at any time, without a flag. Set `SOURCE_DATE_EPOCH` to keep mtimes up
/// to that moment.
pub fn default_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// What writing a layer produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// sha256 of the blob as written (compressed).
    pub digest: Digest,
    /// Size of the blob as written.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// OCI media type of the blob.
    pub media_type: &'static str,
    /// Entries whose mtime in the tar differs from the source's (clamped to the epoch): 0 means
    /// the source directory holds exactly what the tar does.
    pub mtimes_clamped: u64,
}

type Sink<W> = HashingWriter<CompressWriter<HashingWriter<W>>>;

/// Writes `src` as a layer tar into `out`, compressing and hashing in one streaming pass.
/// Returns what was written and `out` back.
pub fn write_layer<W: Write>(
    src: &Path,
    opts: &WriteOptions,
    out: W,
) -> Result<(LayerInfo, W), WriteError> {
    let blob = HashingWriter::new(out);
    let comp =
        CompressWriter::new(blob, opts.compression, opts.threads).map_err(WriteError::Output)?;
    let tar = HashingWriter::new(comp);
    let mut w = TarWriter {
        builder: tar::Builder::new(tar),
        epoch: opts.epoch,
        overlay: opts.source == SourceKind::OverlayUpper,
        exclude: opts
            .exclude
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        links: HashMap::new(),
        clamped: 0,
    };
    let meta = fs::symlink_metadata(src).map_err(|e| WriteError::io(src, e))?;
    if !meta.is_dir() {
        return Err(WriteError::NotADirectory(src.to_path_buf()));
    }
    w.walk_dir(src, &mut Vec::new())?;
    let mtimes_clamped = w.clamped;
    let tar = w.builder.into_inner().map_err(WriteError::Output)?;
    let (comp, diff_id, uncompressed_size) = tar.finish();
    let blob = comp.finish().map_err(WriteError::Output)?;
    let (out, digest, size) = blob.finish();
    Ok((
        LayerInfo {
            diff_id,
            digest,
            size,
            uncompressed_size,
            media_type: opts.compression.media_type(),
            mtimes_clamped,
        },
        out,
    ))
}

struct TarWriter<W: Write> {
    builder: tar::Builder<Sink<W>>,
    epoch: u64,
    overlay: bool,
    exclude: HashSet<Vec<u8>>,
    /// (dev, inode) of files with several links -> first tar path written.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Entries whose mtime the epoch changed.
    clamped: u64,
}

/// One entry to write.
struct Entry {
    path: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<Vec<u8>>,
    device: Option<(u32, u32)>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    fn from_meta(path: Vec<u8>, kind: tar::EntryType, m: &Metadata, epoch: u64) -> Entry {
        Entry {
            path,
            kind,
            mode: m.mode() & 0o7777,
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            mtime: (m.mtime().max(0) as u64).min(epoch),
            size: 0,
            link: None,
            device: None,
            xattrs: BTreeMap::new(),
        }
    }
}

/// Checks that a file yields exactly the size it had when its header was written; a file that
/// grows or shrinks meanwhile would corrupt the tar.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "<len> <key>=<value>\n" where <len> counts the whole record, itself included.
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

const USTAR_MAX_ID: u64 = 0o7777777;
const USTAR_MAX_SIZE: u64 = 0o77777777777;

impl<W: Write> TarWriter<W> {
    fn append(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<(), WriteError> {
        let display = || String::from_utf8_lossy(&e.path).into_owned();
        let mut pax = Vec::new();
        if e.path.len() > 100 {
            pax_record(&mut pax, "path", &e.path);
        }
        if let Some(link) = &e.link {
            if link.len() > 100 {
                pax_record(&mut pax, "linkpath", link);
            }
        }
        if e.uid > USTAR_MAX_ID {
            pax_record(&mut pax, "uid", e.uid.to_string().as_bytes());
        }
        if e.gid > USTAR_MAX_ID {
            pax_record(&mut pax, "gid", e.gid.to_string().as_bytes());
        }
        if e.size > USTAR_MAX_SIZE {
            pax_record(&mut pax, "size", e.size.to_string().as_bytes());
        }
        for (k, v) in &e.xattrs {
            pax_record(&mut pax, &format!("SCHILY.xattr.{k}"), v);
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            set_bytes(&mut h.as_old_mut().name, b"././@PaxHeader");
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(e.mtime);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            self.builder
                .append(&h, &pax[..])
                .map_err(WriteError::Output)?;
        }
        let mut h = tar::Header::new_ustar();
        set_bytes(&mut h.as_old_mut().name, &e.path);
        if let Some(link) = &e.link {
            set_bytes(&mut h.as_old_mut().linkname, link);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(if e.uid > USTAR_MAX_ID { 0 } else { e.uid });
        h.set_gid(if e.gid > USTAR_MAX_ID { 0 } else { e.gid });
        h.set_mtime(e.mtime);
        h.set_size(e.size);
        if let Some((maj, min)) = e.device {
            h.set_device_major(maj)
                .map_err(|err| WriteError::io(Path::new(&display()), err))?;
            h.set_device_minor(min)
                .map_err(|err| WriteError::io(Path::new(&display()), err))?;
        }
        h.set_cksum();
        match data {
            Some(r) => self.builder.append(&h, r),
            None => self.builder.append(&h, io::empty()),
        }
        .map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                WriteError::FileChanged(PathBuf::from(display()))
            } else {
                WriteError::Output(err)
            }
        })
    }

    fn read_xattrs(&self, abs: &Path) -> Result<(BTreeMap<String, Vec<u8>>, bool), WriteError> {
        let mut out = BTreeMap::new();
        let mut opaque = false;
        let names = match xattr::list(abs) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                return Ok((out, false))
            }
            Err(e) => return Err(WriteError::io(abs, e)),
        };
        for name in names {
            let Some(name) = name.to_str().map(str::to_string) else {
                return Err(WriteError::BadXattrName(abs.to_path_buf()));
            };
            if is_overlay_xattr(&name) {
                if self.overlay {
                    if name.ends_with(".overlay.opaque") {
                        let v = xattr::get(abs, &name).map_err(|e| WriteError::io(abs, e))?;
                        opaque |= v.as_deref() == Some(b"y");
                    } else if name.ends_with(".overlay.redirect")
                        || name.ends_with(".overlay.metacopy")
                    {
                        return Err(WriteError::UnsupportedOverlay(abs.to_path_buf(), name));
                    }
                }
                continue;
            }
            if let Some(v) = xattr::get(abs, &name).map_err(|e| WriteError::io(abs, e))? {
                out.insert(name, v);
            }
        }
        Ok((out, opaque))
    }

    fn walk_dir(&mut self, dir: &Path, rel: &mut Vec<u8>) -> Result<(), WriteError> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(|e| WriteError::io(dir, e))?
            .map(|r| r.map(|d| d.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| WriteError::io(dir, e))?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let abs = dir.join(&name);
            let base_len = rel.len();
            rel.extend_from_slice(name.as_bytes());
            if !self.exclude.contains(rel.as_slice()) {
                self.write_one(&abs, name, rel)?;
            }
            rel.truncate(base_len);
        }
        Ok(())
    }

    fn write_one(
        &mut self,
        abs: &Path,
        name: OsString,
        rel: &mut Vec<u8>,
    ) -> Result<(), WriteError> {
        let m = fs::symlink_metadata(abs).map_err(|e| WriteError::io(abs, e))?;
        let ft = m.file_type();
        let epoch = self.epoch;
        // A tar holds whole seconds: sub-second mtimes differ from the tar's too.
        if m.mtime() < 0 || m.mtime() as u64 > epoch || m.mtime_nsec() != 0 {
            self.clamped += 1;
        }
        if self.overlay && ft.is_char_device() && m.rdev() == 0 {
            // overlayfs whiteout -> `.wh.<name>` in the same directory.
            let mut path = rel[..rel.len() - name.len()].to_vec();
            path.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
            path.extend_from_slice(name.as_bytes());
            let mut e = Entry::from_meta(path, tar::EntryType::Regular, &m, epoch);
            e.mode = 0o644;
            e.uid = 0;
            e.gid = 0;
            return self.append(&e, None);
        }
        if ft.is_socket() {
            // Sockets cannot live in a tar and are runtime artefacts: skipped, like docker does.
            return Ok(());
        }
        let (xattrs, opaque) = self.read_xattrs(abs)?;
        if ft.is_dir() {
            rel.push(b'/');
            let mut e = Entry::from_meta(rel.clone(), tar::EntryType::Directory, &m, epoch);
            e.xattrs = xattrs;
            self.append(&e, None)?;
            if opaque {
                let mut path = rel.clone();
                path.extend_from_slice(OPAQUE_MARKER.as_bytes());
                let mut o = Entry::from_meta(path, tar::EntryType::Regular, &m, epoch);
                o.mode = 0o644;
                o.uid = 0;
                o.gid = 0;
                self.append(&o, None)?;
            }
            self.walk_dir(abs, rel)?;
            rel.pop();
            return Ok(());
        }
        let mut e = Entry::from_meta(rel.clone(), tar::EntryType::Regular, &m, epoch);
        e.xattrs = xattrs;
        if ft.is_symlink() {
            e.kind = tar::EntryType::Symlink;
            e.link = Some(
                fs::read_link(abs)
                    .map_err(|err| WriteError::io(abs, err))?
                    .into_os_string()
                    .into_vec(),
            );
            return self.append(&e, None);
        }
        if ft.is_char_device() || ft.is_block_device() {
            e.kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            e.device = Some((rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())));
            return self.append(&e, None);
        }
        if ft.is_fifo() {
            e.kind = tar::EntryType::Fifo;
            return self.append(&e, None);
        }
        if m.nlink() > 1 {
            let key = (m.dev(), m.ino());
            if let Some(first) = self.links.get(&key) {
                e.kind = tar::EntryType::Link;
                e.link = Some(first.clone());
                return self.append(&e, None);
            }
            self.links.insert(key, rel.clone());
        }
        e.size = m.len();
        let file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(abs)
            .map_err(|err| WriteError::io(abs, err))?;
        let mut r = ExactReader {
            inner: io::BufReader::with_capacity(256 * 1024, file),
            remaining: e.size,
        };
        self.append(&e, Some(&mut r))
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    let n = field.len().min(value.len());
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
}
