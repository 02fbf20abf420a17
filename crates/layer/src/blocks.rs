//! Gzip layers cut at tar entry boundaries, and an edited layer made from its previous
//! version's compressed blocks.
//!
//! ## The cut
//! A layer's tar stream is deflated in independent blocks, as in `compress` (each sync-flushed,
//! so they concatenate). Here a block does not end at a fixed offset but at a *mark*: the start
//! of an entry, or every [`FILE_MARK`] bytes into a file's data. A mark is a candidate when a
//! hash of its path (and offset) has its low three bits clear; a block ends at the first
//! candidate once it holds [`MIN_BLOCK`] bytes, or at [`MAX_BLOCK`] bytes. The cut depends only
//! on the tar stream, never on threads or on what was reused, so a layer's bytes are the same
//! however it was made. Because candidates come from the content (as in content-defined
//! chunking), the cuts of an edited stream fall back in step with the old ones a block or two
//! after the edit, instead of staying shifted to the end.
//!
//! ## Reuse
//! Writing a layer also gives its [`BlockIndex`]: each block's *identity* (a hash of its tar
//! headers and, for file data, the file's path and the range: not its content) and the
//! running SHA-256 (diff id and blob digest) and CRC-32 states where it starts. When the next
//! build of the same COPY hard-links the unchanged files of the previous snapshot, its layer is
//! written with the previous index and blob ([`Previous`]):
//! - as long as its blocks have the previous layer's identities and hold only files the caller
//!   says are the previous snapshot's own (same path, same inode: the same bytes, as a
//!   snapshot never changes), nothing is read or hashed: the hash states jump to the previous
//!   index's, and the previous blob's bytes are copied;
//! - after the first changed block, every block is read and hashed (the diff id needs every
//!   byte), but one whose identity the previous layer had is not compressed again: its
//!   compressed bytes are copied from the previous blob.
//!
//! A block's identity names file content by path, so it is trusted only for files the caller
//! vouches for; a changed file makes its block new. The index also records a probe of the
//! deflate code ([`codec_probe`]): a whittle built with another zlib gets no reuse, so reused
//! bytes are always the ones this whittle would have written.

use crate::compress::{Pending, Pool, GZIP_BLOCK, GZIP_HEADER};
use crate::error::WriteError;
use crate::sha256::Sha256State;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A block ends at the first candidate mark once it holds this many bytes.
pub const MIN_BLOCK: usize = 512 << 10;
/// A block never holds more than this.
pub const MAX_BLOCK: usize = GZIP_BLOCK;
/// A file's data has a mark every this many bytes.
pub const FILE_MARK: u64 = 32 << 10;
/// Version of the cut and of the index: part of the output format.
const FORMAT: u32 = 1;

fn candidate(key: u32) -> bool {
    key & 7 == 0
}

fn entry_key(path: &[u8]) -> u32 {
    crc32fast::hash(path)
}

fn file_mark_key(path: &[u8], offset: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(path);
    h.update(&offset.to_le_bytes());
    h.finalize()
}

/// A digest of what the deflate code makes of a fixed sample at `level`: equal only for the
/// same compressor, so an index written by a whittle with another zlib is not reused.
pub fn codec_probe(level: u32) -> [u8; 32] {
    static PROBES: OnceLock<std::sync::Mutex<HashMap<u32, [u8; 32]>>> = OnceLock::new();
    let map = PROBES.get_or_init(Default::default);
    if let Some(p) = map.lock().ok().and_then(|m| m.get(&level).copied()) {
        return p;
    }
    // Text-like and random-like parts, so both deflate paths (and the incompressible check)
    // take part; 256 KiB runs in about a millisecond.
    let mut sample = Vec::with_capacity(256 << 10);
    let mut x: u32 = 0x1234_5678;
    while sample.len() < 256 << 10 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (sample.len() >> 14) % 2 == 0 {
            sample.extend_from_slice(format!("line {} of the probe\n", x % 97).as_bytes());
        } else {
            sample.extend_from_slice(&x.to_le_bytes());
        }
    }
    let mut h = Sha256::new();
    h.update(FORMAT.to_le_bytes());
    for last in [false, true] {
        match crate::compress::deflate_block(&sample, level, last) {
            Ok(b) => h.update(&b),
            Err(_) => h.update(b"error"),
        }
    }
    let p: [u8; 32] = h.finalize().into();
    if let Ok(mut m) = map.lock() {
        m.insert(level, p);
    }
    p
}

/// The running states where a block starts (or the last one ends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// SHA-256 of the tar so far (its length is the tar offset).
    pub tar: Sha256State,
    /// CRC-32 of the tar so far.
    pub crc: u32,
    /// SHA-256 of the blob so far (its length is the blob offset).
    pub blob: Sha256State,
}

/// One deflated block of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// See the module docs.
    pub ident: [u8; 32],
    /// States before the block.
    pub start: Resume,
    /// Uncompressed bytes.
    pub tar_len: u64,
    /// Compressed bytes.
    pub gz_len: u64,
}

/// How a gzip layer blob is cut, with the states to resume at each block (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    format: u32,
    level: u32,
    probe: [u8; 32],
    /// The blocks, in order.
    pub blocks: Vec<BlockRecord>,
    /// States after the last block, before the gzip trailer.
    pub end: Resume,
}

impl BlockIndex {
    /// Whether this index can describe a blob of `size` bytes written at `level` by this
    /// whittle: contiguous blocks, consistent states. A damaged or foreign index is not used.
    pub fn usable(&self, level: u32, size: u64) -> bool {
        if self.format != FORMAT || self.level != level || self.probe != codec_probe(level) {
            return false;
        }
        let mut tar = 0u64;
        let mut gz = GZIP_HEADER.len() as u64;
        for b in &self.blocks {
            if b.start.tar.len() != tar
                || b.start.blob.len() != gz
                || !b.start.tar.is_consistent()
                || !b.start.blob.is_consistent()
                || b.tar_len > MAX_BLOCK as u64
                || b.gz_len > 2 * MAX_BLOCK as u64
            {
                return false;
            }
            tar += b.tar_len;
            gz = match gz.checked_add(b.gz_len) {
                Some(g) => g,
                None => return false,
            };
        }
        !self.blocks.is_empty()
            && self.end.tar.len() == tar
            && self.end.blob.len() == gz
            && self.end.tar.is_consistent()
            && self.end.blob.is_consistent()
            && gz + 8 == size
    }
}

/// The previous version of a layer (see the module docs).
pub struct Previous<'a> {
    /// Its index (checked with [`BlockIndex::usable`] by the caller).
    pub index: &'a BlockIndex,
    /// Its blob.
    pub blob: File,
    /// Whether the file at this tar path, with this (device, inode), is the previous layer's
    /// file of the same path (a hard link to it).
    pub unchanged: &'a dyn Fn(&[u8], u64, u64) -> bool,
}

enum Piece {
    /// Bytes of `Block::lit`.
    Lit { start: usize, len: usize },
    /// A range of a regular file's data.
    File {
        abs: PathBuf,
        path: Vec<u8>,
        offset: u64,
        len: usize,
    },
}

#[derive(Default)]
struct Block {
    pieces: Vec<Piece>,
    lit: Vec<u8>,
    len: usize,
    ident: Sha256,
    /// Every file piece is vouched for (see [`Previous::unchanged`]).
    known: bool,
}

/// A block's tar bytes and compressed bytes, made on a worker.
type BlockBytes = Result<(Vec<u8>, Vec<u8>), WriteError>;

/// The sink of a gzip layer's tar stream: cuts, reuses, deflates, hashes and writes blocks.
pub(crate) struct GzLayerSink<'p, W: Write> {
    out: W,
    pool: Pool,
    level: u32,
    /// Blocks submitted, written in order: (index in `index`, its tar and compressed bytes).
    pending: VecDeque<(usize, Pending<BlockBytes>)>,
    tar: Sha256State,
    crc: crc32fast::Hasher,
    blob: Sha256State,
    cur: Block,
    index: Vec<BlockRecord>,
    prev: Option<Previous<'p>>,
    /// Previous blocks by identity, for reuse after the first change.
    by_ident: HashMap<[u8; 32], usize>,
    /// Still in the prefix equal to the previous layer's: nothing written yet.
    skipping: bool,
    /// Something was written (the header at least).
    started: bool,
    /// Tar bytes taken from the previous layer's blocks.
    reused: u64,
    /// Of those, bytes in the unchanged prefix: neither read nor hashed.
    skipped: u64,
    /// The previous blob, for workers to read reused blocks from.
    old_blob: Option<Arc<File>>,
}

impl<'p, W: Write> GzLayerSink<'p, W> {
    pub(crate) fn new(out: W, level: u32, threads: usize, prev: Option<Previous<'p>>) -> Self {
        let prev = prev.filter(|p| p.index.level == level);
        let old_blob = prev
            .as_ref()
            .and_then(|p| p.blob.try_clone().ok())
            .map(Arc::new);
        GzLayerSink {
            out,
            pool: Pool::new(threads),
            level,
            pending: VecDeque::new(),
            tar: Sha256State::default(),
            crc: crc32fast::Hasher::new(),
            blob: Sha256State::default(),
            cur: Block {
                known: true,
                ..Block::default()
            },
            index: Vec::new(),
            skipping: prev.is_some(),
            started: false,
            prev,
            by_ident: HashMap::new(),
            reused: 0,
            skipped: 0,
            old_blob,
        }
    }

    /// An entry starts here.
    pub(crate) fn entry(&mut self, path: &[u8]) -> Result<(), WriteError> {
        if self.cur.len >= MIN_BLOCK && candidate(entry_key(path)) {
            self.end_block(false)?;
        }
        Ok(())
    }

    /// Bytes of the tar (headers, padding).
    pub(crate) fn bytes(&mut self, mut b: &[u8]) -> Result<(), WriteError> {
        while !b.is_empty() {
            let n = (MAX_BLOCK - self.cur.len).min(b.len());
            let start = self.cur.lit.len();
            self.cur.lit.extend_from_slice(&b[..n]);
            self.cur.ident.update([0]);
            self.cur.ident.update((n as u64).to_le_bytes());
            self.cur.ident.update(&b[..n]);
            self.cur.pieces.push(Piece::Lit { start, len: n });
            self.cur.len += n;
            b = &b[n..];
            if self.cur.len == MAX_BLOCK {
                self.end_block(false)?;
            }
        }
        Ok(())
    }

    /// `len` bytes of data of the regular file `abs` (tar path `path`, metadata `m`).
    pub(crate) fn file(
        &mut self,
        abs: &Path,
        path: &[u8],
        m: &std::fs::Metadata,
        len: u64,
    ) -> Result<(), WriteError> {
        let known = self
            .prev
            .as_ref()
            .is_some_and(|p| (p.unchanged)(path, m.dev(), m.ino()));
        let mut offset = 0u64;
        while offset < len {
            let next_mark = (offset / FILE_MARK + 1) * FILE_MARK;
            let room = (MAX_BLOCK - self.cur.len) as u64;
            let n = (len - offset).min(room).min(next_mark - offset);
            self.cur.ident.update([1]);
            self.cur.ident.update((path.len() as u64).to_le_bytes());
            self.cur.ident.update(path);
            self.cur.ident.update(offset.to_le_bytes());
            self.cur.ident.update(n.to_le_bytes());
            self.cur.known &= known;
            self.cur.pieces.push(Piece::File {
                abs: abs.to_path_buf(),
                path: path.to_vec(),
                offset,
                len: n as usize,
            });
            self.cur.len += n as usize;
            offset += n;
            let at_candidate = offset == next_mark
                && offset < len
                && self.cur.len >= MIN_BLOCK
                && candidate(file_mark_key(path, offset));
            if self.cur.len == MAX_BLOCK || at_candidate {
                self.end_block(false)?;
            }
        }
        Ok(())
    }

    fn resume_state(&self) -> Resume {
        Resume {
            tar: self.tar.clone(),
            crc: self.crc.clone().finalize(),
            blob: Sha256State::default(), // set when the block is written
        }
    }

    /// Ends the current block: jumps over it, reuses its compressed bytes, or deflates it.
    fn end_block(&mut self, last: bool) -> Result<(), WriteError> {
        let mut block = std::mem::replace(
            &mut self.cur,
            Block {
                known: true,
                ..Block::default()
            },
        );
        if last {
            block.ident.update([2]);
        }
        let ident: [u8; 32] = block.ident.finalize_reset().into();
        let n = self.index.len();
        if self.skipping {
            let same = self.prev.as_ref().and_then(|p| {
                let b = p.index.blocks.get(n)?;
                let is_last = n + 1 == p.index.blocks.len();
                (block.known
                    && b.ident == ident
                    && b.tar_len == block.len as u64
                    && is_last == last)
                    .then(|| {
                        let next = p.index.blocks.get(n + 1).map_or(&p.index.end, |b| &b.start);
                        (b.clone(), next.clone())
                    })
            });
            if let Some((rec, next)) = same {
                self.index.push(rec);
                self.tar = next.tar;
                self.crc = crc32fast::Hasher::new_with_initial_len(next.crc, self.tar.len());
                self.blob = next.blob;
                self.reused += block.len as u64;
                self.skipped += block.len as u64;
                return Ok(());
            }
        }
        if !self.started {
            self.leave_prefix()?;
        }
        // The block's compressed bytes in the previous blob, if it had the same block.
        let reuse = match (&self.prev, block.known) {
            (Some(p), true) => self.by_ident.get(&ident).and_then(|&j| {
                let b = &p.index.blocks[j];
                let is_last = j + 1 == p.index.blocks.len();
                (b.tar_len == block.len as u64 && is_last == last)
                    .then(|| (b.start.blob.len(), b.gz_len))
            }),
            _ => None,
        };
        if reuse.is_some() {
            self.reused += block.len as u64;
        }
        let old_blob = self.old_blob.clone();
        let level = self.level;
        let tar_len = block.len as u64;
        // Read (and deflated) on a worker; hashed and written in order by `drain_one`.
        let pending = self
            .pool
            .submit(move || -> BlockBytes {
                let data = materialize(&block)?;
                let gz = match (reuse, old_blob) {
                    (Some((at, len)), Some(f)) => {
                        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
                        f.read_exact_at(&mut bytes, at)
                            .map_err(WriteError::Output)?;
                        bytes
                    }
                    _ => crate::compress::deflate_block(&data, level, last)
                        .map_err(WriteError::Output)?,
                };
                Ok((data, gz))
            })
            .map_err(WriteError::Output)?;
        self.index.push(BlockRecord {
            ident,
            start: self.resume_state(),
            tar_len,
            gz_len: 0,
        });
        self.pending.push_back((n, pending));
        while self.pending.len() > self.pool.max_pending() {
            self.drain_one()?;
        }
        Ok(())
    }

    /// The prefix ends: the previous blob's bytes up to here are written out (what the
    /// states already account for), and from now on blocks are read.
    fn leave_prefix(&mut self) -> Result<(), WriteError> {
        self.skipping = false;
        self.started = true;
        let upto = self.blob.len();
        match &self.prev {
            Some(p) if upto > 0 => copy_prefix(&p.blob, upto, &mut self.out)?,
            // Nothing jumped over: the header is written as for a new blob.
            _ => self.write_out(&GZIP_HEADER)?,
        }
        if let Some(p) = &self.prev {
            self.by_ident = p
                .index
                .blocks
                .iter()
                .enumerate()
                .map(|(i, b)| (b.ident, i))
                .collect();
        }
        Ok(())
    }

    fn write_out(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.out.write_all(b).map_err(WriteError::Output)?;
        self.blob.update(b);
        Ok(())
    }

    /// Writes the oldest block submitted: hashes its tar bytes, then its compressed bytes.
    fn drain_one(&mut self) -> Result<(), WriteError> {
        if let Some((i, p)) = self.pending.pop_front() {
            let (data, gz) = p.wait().map_err(WriteError::Output)??;
            self.index[i].start = Resume {
                tar: self.tar.clone(),
                crc: self.crc.clone().finalize(),
                blob: self.blob.clone(),
            };
            self.index[i].gz_len = gz.len() as u64;
            self.tar.update(&data);
            self.crc.update(&data);
            self.write_out(&gz)?;
        }
        Ok(())
    }

    /// Ends the last block, writes the trailer; returns the writer, the index, the diff id
    /// state and blob state, and the tar bytes reused.
    pub(crate) fn finish(mut self) -> Result<Finished<W>, WriteError> {
        self.end_block(true)?;
        if !self.started {
            // Every block was the previous layer's: its blob up to the trailer.
            self.started = true;
            if let Some(p) = &self.prev {
                copy_prefix(&p.blob, self.blob.len(), &mut self.out)?;
            }
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let end = Resume {
            tar: self.tar.clone(),
            crc: self.crc.clone().finalize(),
            blob: self.blob.clone(),
        };
        let crc = self.crc.clone().finalize();
        let isize = (self.tar.len() & 0xffff_ffff) as u32;
        self.write_out(&crc.to_le_bytes())?;
        self.write_out(&isize.to_le_bytes())?;
        self.out.flush().map_err(WriteError::Output)?;
        Ok(Finished {
            index: BlockIndex {
                format: FORMAT,
                level: self.level,
                probe: codec_probe(self.level),
                blocks: self.index,
                end,
            },
            tar: self.tar,
            blob: self.blob,
            reused: self.reused,
            skipped: self.skipped,
            out: self.out,
        })
    }
}

/// The block's bytes: its literal bytes and its files' data, read now (exactly the length
/// each header said: a file that shrank meanwhile fails).
fn materialize(block: &Block) -> Result<Vec<u8>, WriteError> {
    let mut data = Vec::with_capacity(block.len);
    // A file split over pieces is opened once for them.
    let mut open: Option<(&Path, File)> = None;
    for p in &block.pieces {
        match p {
            Piece::Lit { start, len } => data.extend_from_slice(&block.lit[*start..start + len]),
            Piece::File {
                abs,
                path,
                offset,
                len,
            } => {
                let f = match open.take() {
                    Some((p, f)) if p == abs.as_path() => f,
                    _ => File::options()
                        .read(true)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(abs)
                        .map_err(|e| WriteError::io(abs, e))?,
                };
                let at = data.len();
                data.resize(at + len, 0);
                match f.read_exact_at(&mut data[at..], *offset) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(WriteError::FileChanged(PathBuf::from(
                            String::from_utf8_lossy(path).as_ref(),
                        )))
                    }
                    Err(e) => return Err(WriteError::io(abs, e)),
                }
                open = Some((abs.as_path(), f));
            }
        }
    }
    Ok(data)
}

/// Copies the first `upto` bytes of `blob` to `out` (bytes whose hash state is known), in
/// 1 MiB reads (`io::copy`'s 8 KiB buffer made this a tenth of an edit's time).
fn copy_prefix(blob: &File, upto: u64, out: &mut impl Write) -> Result<(), WriteError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < upto {
        let n = buf
            .len()
            .min(usize::try_from(upto - at).unwrap_or(usize::MAX));
        blob.read_exact_at(&mut buf[..n], at).map_err(|e| {
            WriteError::Output(io::Error::new(
                e.kind(),
                format!("the previous layer's blob is shorter than its index says: {e}"),
            ))
        })?;
        out.write_all(&buf[..n]).map_err(WriteError::Output)?;
        at += n as u64;
    }
    Ok(())
}

/// What [`GzLayerSink::finish`] gives.
pub(crate) struct Finished<W> {
    pub(crate) out: W,
    pub(crate) index: BlockIndex,
    pub(crate) tar: Sha256State,
    pub(crate) blob: Sha256State,
    pub(crate) reused: u64,
    pub(crate) skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{write_layer_reusing, LayerInfo, WriteOptions};
    use crate::Compression;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// Files of 1..40 KiB, half text-like, half random-like, and one of 3 MiB (file marks).
    fn populate(dir: &Path, files: usize) {
        let mut x: u64 = 7;
        for i in 0..files {
            let d = dir.join(format!("d{:02}", i / 50));
            fs::create_dir_all(&d).unwrap();
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 1 + (x >> 33) as usize % (40 << 10);
            let data: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|k| b"abcdefgh \n"[(k * 7 + i) % 10]).collect()
            } else {
                (0..len)
                    .map(|k| ((x >> 20) as usize ^ (k * 2654435761)) as u8)
                    .collect()
            };
            fs::write(d.join(format!("f{i:04}")), data).unwrap();
        }
        let big: Vec<u8> = (0..3 << 20).map(|k: usize| (k / 3 % 251) as u8).collect();
        fs::write(dir.join("big"), big).unwrap();
    }

    /// `to` with every file of `from` hard-linked.
    fn link_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                link_tree(&e.path(), &t);
            } else {
                fs::hard_link(e.path(), t).unwrap();
            }
        }
    }

    /// Replaces a linked file with a copy whose content differs (same length).
    fn edit(path: &Path) {
        let mut data = fs::read(path).unwrap();
        fs::remove_file(path).unwrap();
        data[0] ^= 0xff;
        fs::write(path, data).unwrap();
    }

    fn opts(threads: usize) -> WriteOptions {
        WriteOptions {
            compression: Compression::Gzip { level: 4 },
            threads,
            epoch: 0,
            ..WriteOptions::default()
        }
    }

    fn write(
        dir: &Path,
        threads: usize,
        prev: Option<Previous<'_>>,
    ) -> (LayerInfo, BlockIndex, Vec<u8>) {
        let (info, index, out) =
            write_layer_reusing(dir, &opts(threads), Vec::new(), prev).unwrap();
        (info, index.unwrap(), out)
    }

    /// The previous layer, as a caller passes it: its file (dev, inode) by tar path.
    fn inodes(dir: &Path) -> HashMap<Vec<u8>, (u64, u64)> {
        fn walk(root: &Path, dir: &Path, out: &mut HashMap<Vec<u8>, (u64, u64)>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .as_bytes()
                        .to_vec();
                    out.insert(rel, (m.dev(), m.ino()));
                }
            }
        }
        let mut out = HashMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn decompress(blob: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    struct Case {
        _t: tempfile::TempDir,
        old_dir: PathBuf,
        new_dir: PathBuf,
        old_index: BlockIndex,
        old_blob: PathBuf,
        old_info: LayerInfo,
    }

    fn case() -> Case {
        let t = tempfile::tempdir().unwrap();
        let old_dir = t.path().join("old");
        populate(&old_dir, 400);
        let (old_info, old_index, blob) = write(&old_dir, 2, None);
        let old_blob = t.path().join("old.gz");
        fs::write(&old_blob, &blob).unwrap();
        let new_dir = t.path().join("new");
        link_tree(&old_dir, &new_dir);
        Case {
            _t: t,
            old_dir,
            new_dir,
            old_index,
            old_blob,
            old_info,
        }
    }

    /// Writes the new tree with the old layer as `Previous`, checks its bytes are a fresh
    /// write's, and returns what was reused.
    fn reuse_and_compare(c: &Case) -> (u64, u64) {
        let old = inodes(&c.old_dir);
        let unchanged = |p: &[u8], dev: u64, ino: u64| old.get(p) == Some(&(dev, ino));
        assert!(c.old_index.usable(4, c.old_info.size));
        let prev = Previous {
            index: &c.old_index,
            blob: File::open(&c.old_blob).unwrap(),
            unchanged: &unchanged,
        };
        let (info, index, blob) = write(&c.new_dir, 2, Some(prev));
        let (fresh_info, fresh_index, fresh_blob) = write(&c.new_dir, 1, None);
        assert!(blob == fresh_blob, "reusing must not change a byte");
        assert_eq!(index, fresh_index);
        assert_eq!(info.digest, fresh_info.digest);
        assert_eq!(info.diff_id, fresh_info.diff_id);
        assert_eq!(crate::Digest::of_bytes(&blob), info.digest);
        assert_eq!(crate::Digest::of_bytes(&decompress(&blob)), info.diff_id);
        assert_eq!(fresh_info.reused, 0);
        assert!(info.skipped <= info.reused);
        (info.reused, info.skipped)
    }

    #[test]
    fn blocks_are_cut_at_marks_between_min_and_max() {
        let c = case();
        let b = &c.old_index.blocks;
        assert!(b.len() > 4, "{} blocks", b.len());
        for r in &b[..b.len() - 1] {
            assert!(r.tar_len >= MIN_BLOCK as u64 && r.tar_len <= MAX_BLOCK as u64);
            assert_eq!(r.start.tar.len() % 512, 0, "cut inside a tar block");
        }
        // The same bytes on one thread or four.
        let one = write(&c.old_dir, 1, None).2;
        let four = write(&c.old_dir, 4, None).2;
        assert!(one == four);
    }

    #[test]
    fn an_unchanged_tree_takes_the_whole_previous_blob() {
        let c = case();
        let (reused, skipped) = reuse_and_compare(&c);
        assert_eq!(reused, c.old_info.uncompressed_size);
        assert_eq!(skipped, reused, "nothing read");
    }

    #[test]
    fn an_edit_in_the_middle_reuses_the_prefix_and_the_blocks_after_it() {
        let c = case();
        edit(&c.new_dir.join("d04/f0201"));
        let (reused, skipped) = reuse_and_compare(&c);
        let total = c.old_info.uncompressed_size;
        // All blocks but the one or two around the edit; those before it are not even read.
        assert!(reused > total - 3 * MAX_BLOCK as u64, "{reused} of {total}");
        assert!(
            skipped > total / 3 && skipped < reused,
            "{skipped} of {reused}"
        );
    }

    #[test]
    fn an_edit_at_the_start_still_reuses_the_blocks_after_it() {
        let c = case();
        edit(&c.new_dir.join("d00/f0001"));
        let (reused, _) = reuse_and_compare(&c);
        assert!(reused > c.old_info.uncompressed_size / 2, "{reused}");
    }

    #[test]
    fn a_file_not_vouched_for_is_read_even_when_its_header_is_the_same() {
        let c = case();
        // Same path, size and metadata, other content: only the inode tells.
        edit(&c.new_dir.join("d03/f0150"));
        let old = inodes(&c.old_dir);
        // A caller that vouches for every file by path alone would be wrong: this one checks
        // inodes, so the edited file's block is compressed again (the bytes differ).
        let unchanged = |p: &[u8], dev: u64, ino: u64| old.get(p) == Some(&(dev, ino));
        let prev = Previous {
            index: &c.old_index,
            blob: File::open(&c.old_blob).unwrap(),
            unchanged: &unchanged,
        };
        let (info, _, blob) = write(&c.new_dir, 2, Some(prev));
        let fresh = write(&c.new_dir, 2, None);
        assert!(blob == fresh.2);
        assert_ne!(info.digest, c.old_info.digest);
    }

    #[test]
    fn a_damaged_or_foreign_index_is_not_usable() {
        let c = case();
        let size = c.old_info.size;
        assert!(c.old_index.usable(4, size));
        assert!(!c.old_index.usable(4, size + 1), "blob of another size");
        assert!(!c.old_index.usable(6, size), "another level");
        let mut gap = c.old_index.clone();
        gap.blocks[1].gz_len += 1;
        assert!(!gap.usable(4, size + 1));
        let mut probe = c.old_index.clone();
        probe.probe[0] ^= 1;
        assert!(!probe.usable(4, size), "another deflate");
    }
}
