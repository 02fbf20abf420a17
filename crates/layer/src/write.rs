//! Deterministic layer tars from a directory or an overlay upper dir.

use crate::blocks::{BlockIndex, GzLayerSink, Previous};
use crate::compress::{CompressWriter, Compression};
use crate::digest::{Digest, HashingWriter};
use crate::error::WriteError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
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
    /// Bytes of the tar whose compressed form was taken from the previous layer's blob
    /// (see [`write_layer_reusing`]).
    pub reused: u64,
    /// Of those, bytes before the first change: neither read nor hashed.
    pub skipped: u64,
}

type Sink<W> = HashingWriter<CompressWriter<HashingWriter<W>>>;

/// Where the tar stream goes: a gzip layer through [`GzLayerSink`] (cut at entries, able to
/// reuse a previous layer's blocks), other compressions through a plain stream.
enum Out<'p, W: Write> {
    Stream(Sink<W>, Vec<u8>),
    Gz(GzLayerSink<'p, W>),
}

impl<W: Write> Out<'_, W> {
    fn entry(&mut self, path: &[u8]) -> Result<(), WriteError> {
        match self {
            Out::Stream(..) => Ok(()),
            Out::Gz(g) => g.entry(path),
        }
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), WriteError> {
        match self {
            Out::Stream(w, _) => w.write_all(b).map_err(WriteError::Output),
            Out::Gz(g) => g.bytes(b),
        }
    }

    /// The data of a regular file, exactly `len` bytes (a file that shrank meanwhile fails).
    fn file(&mut self, abs: &Path, path: &[u8], m: &Metadata, len: u64) -> Result<(), WriteError> {
        match self {
            Out::Gz(g) => g.file(abs, path, m, len),
            Out::Stream(w, buf) => {
                let mut f = File::options()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(abs)
                    .map_err(|err| WriteError::io(abs, err))?;
                buf.resize(256 * 1024, 0);
                let mut left = len;
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = f
                        .read(&mut buf[..want])
                        .map_err(|e| WriteError::io(abs, e))?;
                    if n == 0 {
                        return Err(WriteError::FileChanged(PathBuf::from(
                            String::from_utf8_lossy(path).as_ref(),
                        )));
                    }
                    w.write_all(&buf[..n]).map_err(WriteError::Output)?;
                    left -= n as u64;
                }
                Ok(())
            }
        }
    }
}

/// Writes `src` as a layer tar into `out`, compressing and hashing in one streaming pass.
/// Returns what was written and `out` back.
pub fn write_layer<W: Write>(
    src: &Path,
    opts: &WriteOptions,
    out: W,
) -> Result<(LayerInfo, W), WriteError> {
    write_layer_reusing(src, opts, out, None).map(|(info, _, out)| (info, out))
}

/// [`write_layer`], taking unchanged gzip blocks from `previous` (the same layer's last
/// version, see [`crate::blocks`]), and giving this layer's [`BlockIndex`] (gzip only) for
/// the next version. The bytes are the same as without `previous`.
pub fn write_layer_reusing<W: Write>(
    src: &Path,
    opts: &WriteOptions,
    out: W,
    previous: Option<Previous<'_>>,
) -> Result<(LayerInfo, Option<BlockIndex>, W), WriteError> {
    let meta = fs::symlink_metadata(src).map_err(|e| WriteError::io(src, e))?;
    if !meta.is_dir() {
        return Err(WriteError::NotADirectory(src.to_path_buf()));
    }
    let sink = match opts.compression {
        Compression::Gzip { level } => {
            Out::Gz(GzLayerSink::new(out, level.min(9), opts.threads, previous))
        }
        c => {
            let blob = HashingWriter::new(out);
            let comp = CompressWriter::new(blob, c, opts.threads).map_err(WriteError::Output)?;
            Out::Stream(HashingWriter::new(comp), Vec::new())
        }
    };
    let mut w = TarWriter {
        out: sink,
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
    w.walk_dir(src, &mut Vec::new())?;
    // The end of the archive: two zero blocks.
    w.out.bytes(&[0; 1024])?;
    let mtimes_clamped = w.clamped;
    let media_type = opts.compression.media_type();
    match w.out {
        Out::Stream(tar, _) => {
            let (comp, diff_id, uncompressed_size) = tar.finish();
            let blob = comp.finish().map_err(WriteError::Output)?;
            let (out, digest, size) = blob.finish();
            let info = LayerInfo {
                diff_id,
                digest,
                size,
                uncompressed_size,
                media_type,
                mtimes_clamped,
                reused: 0,
                skipped: 0,
            };
            Ok((info, None, out))
        }
        Out::Gz(g) => {
            let f = g.finish()?;
            let info = LayerInfo {
                diff_id: f.tar.digest(),
                digest: f.blob.digest(),
                size: f.blob.len(),
                uncompressed_size: f.tar.len(),
                media_type,
                mtimes_clamped,
                reused: f.reused,
                skipped: f.skipped,
            };
            Ok((info, Some(f.index), f.out))
        }
    }
}

struct TarWriter<'p, W: Write> {
    out: Out<'p, W>,
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

impl<W: Write> TarWriter<'_, W> {
    /// Writes an entry: its PAX header if it needs one, its header, and for a regular file
    /// (`data`: where it is and its metadata) its data, each padded to 512 bytes.
    fn append(&mut self, e: &Entry, data: Option<(&Path, &Metadata)>) -> Result<(), WriteError> {
        let display = || String::from_utf8_lossy(&e.path).into_owned();
        self.out.entry(&e.path)?;
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
            self.out.bytes(h.as_bytes())?;
            self.out.bytes(&pax)?;
            self.pad(pax.len() as u64)?;
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
        self.out.bytes(h.as_bytes())?;
        if let Some((abs, m)) = data {
            self.out.file(abs, &e.path, m, e.size)?;
            self.pad(e.size)?;
        }
        Ok(())
    }

    /// Zeros up to the next 512-byte boundary after `len` bytes of data.
    fn pad(&mut self, len: u64) -> Result<(), WriteError> {
        let rem = (len % 512) as usize;
        if rem != 0 {
            self.out.bytes(&[0; 512][..512 - rem])?;
        }
        Ok(())
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
        self.append(&e, Some((abs, &m)))
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    let n = field.len().min(value.len());
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
}
