//! Layer compression: gzip (parallel, deterministic), zstd, or none; and decompression that
//! detects the format from the stream's magic bytes.
//!
//! ## Why a hand-written parallel gzip
//!
//! (This describes [`ParallelGzEncoder`], which compresses a tar stream it knows nothing
//! about, e.g. a stored layer at push. A layer written from a directory is cut into blocks at
//! entry marks instead, with the same per-block deflate: see `blocks`.)
//!
//! Layers must be byte-identical whatever the number of cores, so the output may depend only on
//! the input bytes and the level. We cut the uncompressed stream into fixed-size blocks
//! ([`GZIP_BLOCK`], at fixed offsets, independent of how callers chunk their writes), deflate each
//! block independently (no shared dictionary) on a worker thread, and end every block but the last
//! with a sync flush so the raw deflate streams concatenate into one valid deflate stream; the last
//! block ends with the final bit. One gzip header (mtime 0, no name) and one trailer (CRC-32 and
//! size of all input, computed serially, which runs at several GB/s) wrap it, so the result is a
//! single ordinary gzip member that every reader understands, not a multi-member file. This is the
//! scheme of pigz minus its 32 KiB dictionary carry-over: dropping the dictionary costs well under
//! 1% of ratio with 1 MiB blocks and removes any dependence between blocks. No maintained crate
//! offers deterministic parallel gzip (gzp's output depends on its buffer sizes and uses
//! multi-member streams in some modes), so this is the one piece written by hand.

use flate2::{Compress, Compression as Level, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Size of the independently compressed gzip blocks. Part of the output format: changing it
/// changes every gzip layer digest.
pub const GZIP_BLOCK: usize = 1 << 20;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression: `application/vnd.oci.image.layer.v1.tar`.
    None,
    /// gzip at `level` (0–9): `...tar+gzip`.
    Gzip { level: u32 },
    /// zstd at `level` (1–22): `...tar+zstd`.
    Zstd { level: i32 },
}

/// The default: gzip level 4. On bench/layer.sh's mixed 1 GB corpus it compresses as well as
/// level 6 (incompressible blocks are stored either way) at about twice the speed, which is what
/// meets 150 MB/s on 2 cores. Changing it changes layer digests.
///
/// Levels are zlib-rs's, which are zlib-ng's, not zlib's or Go's: 1 is its "quick" strategy, 2
/// "fast", 3 to 6 "medium" (longer chains as the level rises) and only 7 to 9 the lazy matching
/// of zlib's and Go's level 6. So level 6 here is not docker's 6: on a distroless-like base's
/// shared libraries its blocks are 0.2-7% larger than at 7 (1.6% in all; Go's 6 is 0.2% smaller
/// than 7), at about 1.5 times 7's speed.
impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 4 }
    }
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        use whittle_oci::media_type;
        match self {
            Compression::None => media_type::OCI_LAYER_TAR,
            Compression::Gzip { .. } => media_type::OCI_LAYER_GZIP,
            Compression::Zstd { .. } => media_type::OCI_LAYER_ZSTD,
        }
    }
}

/// Compression detected from magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Not compressed (or unknown: treated as plain).
    None,
    /// gzip magic `1f 8b`.
    Gzip,
    /// zstd magic `28 b5 2f fd`.
    Zstd,
}

/// Looks at the first bytes of a buffered stream without consuming them.
pub fn detect<R: BufRead>(r: &mut R) -> io::Result<Detected> {
    let buf = r.fill_buf()?;
    Ok(if buf.starts_with(&[0x1f, 0x8b]) {
        Detected::Gzip
    } else if buf.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Detected::Zstd
    } else {
        Detected::None
    })
}

/// Wraps a buffered stream in the decompressor its magic bytes call for.
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<(Detected, Box<dyn Read + 'a>)> {
    let kind = detect(&mut r)?;
    let reader: Box<dyn Read + 'a> = match kind {
        Detected::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Detected::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Detected::None => Box::new(r),
    };
    Ok((kind, reader))
}

/// A streaming compressor for one of the [`Compression`] kinds.
pub enum CompressWriter<W: Write> {
    /// Pass-through.
    None(W),
    /// Parallel deterministic gzip.
    Gzip(ParallelGzEncoder<W>),
    /// zstd, single-threaded. zstd's multi-threaded mode would be deterministic for any worker
    /// count >= 1 (checked), but on this 2-core machine it was not faster under load and its
    /// per-worker buffers pushed peak RSS to 74 MB (2 workers) and 100 MB (3); the single-threaded
    /// encoder runs at ~170 MB/s in 7 MB.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> CompressWriter<W> {
    /// Starts compressing into `inner`; `threads` is used by gzip only.
    pub fn new(inner: W, compression: Compression, threads: usize) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => CompressWriter::None(inner),
            Compression::Gzip { level } => {
                CompressWriter::Gzip(ParallelGzEncoder::new(inner, level.min(9), threads))
            }
            Compression::Zstd { level } => {
                CompressWriter::Zstd(zstd::stream::write::Encoder::new(inner, level)?)
            }
        })
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CompressWriter::None(w) => Ok(w),
            CompressWriter::Gzip(g) => g.finish(),
            CompressWriter::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for CompressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressWriter::None(w) => w.write(buf),
            CompressWriter::Gzip(g) => g.write(buf),
            CompressWriter::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressWriter::None(w) => w.flush(),
            CompressWriter::Gzip(g) => g.flush(),
            CompressWriter::Zstd(z) => z.flush(),
        }
    }
}

type BlockResult = io::Result<Vec<u8>>;

/// A job of a [`Pool`]: runs on a worker and replies on its own channel.
type Job = Box<dyn FnOnce() + Send>;

/// Whether a block looks incompressible (already-compressed media, archives, random data, or a
/// tar of many such small files): apart from runs of zeros, four 64 KiB windows spread over
/// the block have near-uniform bytes, and a fast deflate of the first does not shrink it by 3%.
/// Such blocks go through [`deflate_stored_zero_runs`] (memory speed) rather than a level that
/// would gain nothing (level 4 runs at ~25 MB/s on such data). Looks at a quarter of the block
/// (histograms), deflating at most 64 KiB of it, so the check costs a few percent of
/// compressing. Depends only on the data, so the output stays deterministic.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4 * PROBE {
        return false;
    }
    let mut probe = None;
    for k in 0..4 {
        let start = k * (data.len() / 4);
        let rest = without_zero_runs(&data[start..start + PROBE]);
        if rest.len() < PROBE / 4 {
            continue; // mostly zeros: the zero runs encode them
        }
        if entropy(&rest) < 7.5 {
            return false;
        }
        probe.get_or_insert(rest);
    }
    let Some(rest) = probe else {
        return true;
    };
    match deflate_with(&rest, 1, true) {
        Ok(out) => out.len() * 100 >= rest.len() * 97,
        Err(_) => false,
    }
}

/// Bytes of a window that [`incompressible`] looks at.
const PROBE: usize = 64 * 1024;

/// The bytes outside runs of at least [`MIN_ZERO_RUN`] zeros.
fn without_zero_runs(window: &[u8]) -> Vec<u8> {
    let mut rest = Vec::with_capacity(window.len());
    let mut i = 0;
    while i < window.len() {
        let run = window[i..].iter().take_while(|&&b| b == 0).count();
        if run >= MIN_ZERO_RUN {
            i += run;
        } else {
            let end = (i + run.max(1)).min(window.len());
            rest.extend_from_slice(&window[i..end]);
            i = end;
        }
    }
    rest
}

/// Shannon entropy of the bytes, in bits per byte (8 for uniform random data, ~5 for text).
fn entropy(data: &[u8]) -> f64 {
    let mut hist = [0u32; 256];
    for &b in data {
        hist[b as usize] += 1;
    }
    let n = data.len() as f64;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Shorter runs of zeros are stored as they are.
const MIN_ZERO_RUN: usize = 64;

/// Deflates one block into a raw deflate stream: sync-flushed (byte aligned, not final) unless
/// `last`, in which case it carries the final-block bit.
pub(crate) fn deflate_block(data: &[u8], level: u32, last: bool) -> BlockResult {
    if level > 1 && incompressible(data) {
        return Ok(deflate_stored_zero_runs(data, last));
    }
    deflate_with(data, level, last)
}

/// Deflate as a sequence of stored blocks, with each run of zeros of at least [`MIN_ZERO_RUN`]
/// bytes as a small fixed-Huffman block (a literal zero, then length-258 copies at distance 1).
/// Incompressible data in a tar is mostly that (contents, and the zero padding and mostly-zero
/// headers between them): this keeps the padding's saving at the speed of a copy. Written by
/// hand because no deflate encoder offers it; the format is RFC 1951's.
fn deflate_stored_zero_runs(data: &[u8], last: bool) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(data.len() + data.len() / 1000 + 64);
    let mut lit_start = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] != 0 {
            i += 1;
            continue;
        }
        let run = data[i..].iter().take_while(|&&b| b == 0).count();
        if run < MIN_ZERO_RUN {
            i += run;
            continue;
        }
        w.stored(&data[lit_start..i]);
        w.zero_run(run);
        i += run;
        lit_start = i;
    }
    w.stored(&data[lit_start..]);
    // An empty stored block ends the block byte-aligned: final for the last block, otherwise
    // the same marker a sync flush writes, so blocks concatenate.
    w.bits(u32::from(last), 1);
    w.bits(0, 2);
    w.align();
    w.out.extend_from_slice(&[0, 0, 0xff, 0xff]);
    w.out
}

/// Bits of a deflate stream, least significant first (RFC 1951 3.1.1).
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn with_capacity(cap: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(cap),
            acc: 0,
            n: 0,
        }
    }

    fn bits(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: sent most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.bits(rev, len);
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.bits(0, 8 - self.n);
        }
    }

    /// Non-final stored blocks of at most 65,535 bytes each.
    fn stored(&mut self, data: &[u8]) {
        for chunk in data.chunks(u16::MAX as usize) {
            self.bits(0, 1);
            self.bits(0, 2);
            self.align();
            let len = chunk.len() as u16;
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(chunk);
        }
    }

    /// A non-final fixed-Huffman block of `run` (≥ 4) zero bytes.
    fn zero_run(&mut self, run: usize) {
        self.bits(0, 1);
        self.bits(1, 2);
        self.code(0x30, 8); // literal 0
        let mut left = run - 1;
        while left > 0 {
            // Never leave 1 or 2 bytes, which no match can cover: take them as literals last.
            let len = if left >= 258 + 3 || left == 258 {
                258
            } else if left > 258 {
                left - 3
            } else {
                left
            };
            if len < 3 {
                for _ in 0..len {
                    self.code(0x30, 8);
                }
            } else {
                self.length(len);
                self.code(0, 5); // distance code 0: distance 1
            }
            left -= len;
        }
        self.code(0, 7); // end of block (256)
    }

    /// A match length (3..=258): its symbol's fixed code and extra bits.
    fn length(&mut self, len: usize) {
        const BASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const EXTRA: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        let len = len as u16;
        let k = BASE.iter().rposition(|&b| b <= len).unwrap_or(0);
        let sym = 257 + k as u32;
        if sym <= 279 {
            self.code(sym - 256, 7);
        } else {
            self.code(0xC0 + (sym - 280), 8);
        }
        self.bits(u32::from(len - BASE[k]), u32::from(EXTRA[k]));
    }
}

/// One block through flate2 at `level`.
fn deflate_with(data: &[u8], level: u32, last: bool) -> BlockResult {
    let mut c = Compress::new(Level::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 32 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let all_in = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Runs jobs on worker threads (or inline with one thread); each submission gives a
/// [`Pending`] result, which the caller waits for in submission order, so the output's order
/// never depends on the threads.
pub(crate) struct Pool {
    /// Workers to start: they start with the second job, so a layer of one block (most of a
    /// build's layers) starts no thread. Starting two per small layer cost many-steps' edit
    /// about 20 ms (thread heaps faulted in fresh for a few KiB of work).
    threads: usize,
    started: bool,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

/// A job's result, not yet or already there.
pub(crate) enum Pending<T> {
    Ready(T),
    Waiting(Receiver<T>),
}

impl<T> Pending<T> {
    pub(crate) fn wait(self) -> io::Result<T> {
        match self {
            Pending::Ready(b) => Ok(b),
            Pending::Waiting(rx) => rx
                .recv()
                .map_err(|_| io::Error::other("a compression worker thread died")),
        }
    }
}

/// A deflated block (see [`deflate_block`]).
pub(crate) type PendingBlock = Pending<BlockResult>;

impl Pool {
    /// `threads` workers (1 = inline, no threads), started with the second job.
    pub(crate) fn new(threads: usize) -> Self {
        Pool {
            threads: threads.max(1),
            started: false,
            jobs: None,
            workers: Vec::new(),
        }
    }

    fn start(&mut self) {
        self.started = true;
        if self.threads < 2 {
            return;
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(self.threads);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..self.threads {
            let rx = Arc::clone(&rx);
            self.workers.push(std::thread::spawn(move || loop {
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                job();
            }));
        }
        self.jobs = Some(tx);
    }

    /// How many jobs may be in flight before the oldest is waited for.
    pub(crate) fn max_pending(&self) -> usize {
        self.threads * 2
    }

    /// Runs `f` on a worker (inline with one thread).
    pub(crate) fn submit<T: Send + 'static>(
        &mut self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<Pending<T>> {
        if !self.started {
            // The first job runs here; the workers start for the next.
            self.started = true;
            return Ok(Pending::Ready(f()));
        }
        if self.jobs.is_none() && self.workers.is_empty() {
            self.start();
        }
        match &self.jobs {
            None => Ok(Pending::Ready(f())),
            Some(tx) => {
                let (reply, rx) = mpsc::sync_channel(1);
                tx.send(Box::new(move || {
                    let _ = reply.send(f());
                }))
                .map_err(|_| io::Error::other("compression worker threads died"))?;
                Ok(Pending::Waiting(rx))
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the job channel stops the workers.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The gzip header whittle writes: magic, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown):
/// nothing host-dependent.
pub(crate) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// gzip encoder that compresses fixed-size blocks on worker threads; see the module docs for why
/// its output does not depend on the thread count.
pub struct ParallelGzEncoder<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    level: u32,
    pool: Pool,
    pending: VecDeque<PendingBlock>,
    header_written: bool,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// Compresses into `inner` at `level` (0–9) with `threads` workers (1 = inline, no threads).
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        ParallelGzEncoder {
            inner: Some(inner),
            buf: Vec::with_capacity(GZIP_BLOCK),
            crc: crc32fast::Hasher::new(),
            total: 0,
            level,
            pool: Pool::new(threads),
            pending: VecDeque::new(),
            header_written: false,
        }
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip encoder already finished"))
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner()?.write_all(&GZIP_HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(p) = self.pending.pop_front() {
            let block = p.wait()??;
            self.inner()?.write_all(&block)?;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let data = std::mem::replace(
            &mut self.buf,
            if last {
                Vec::new()
            } else {
                Vec::with_capacity(GZIP_BLOCK)
            },
        );
        let level = self.level;
        let p = self
            .pool
            .submit(move || deflate_block(&data, level, last))?;
        self.pending.push_back(p);
        while self.pending.len() > self.pool.max_pending() {
            self.drain_one()?;
        }
        Ok(())
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        let isize = (self.total & 0xffff_ffff) as u32;
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(&isize.to_le_bytes())?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = GZIP_BLOCK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == GZIP_BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }
    /// Flushing cannot emit a partial block (that would make output depend on flush timing), so
    /// it only flushes the blocks already compressed.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Mixed: compressible text runs and pseudo-random bytes.
        let mut v = Vec::with_capacity(len);
        let mut x: u64 = 0x9e3779b97f4a7c15;
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x >> 60) < 8 {
                v.extend_from_slice(b"the quick brown fox jumps over the lazy dog ");
            } else {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut e = ParallelGzEncoder::new(Vec::new(), 6, threads);
        for c in data.chunks(chunk.max(1)) {
            e.write_all(c).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn identical_whatever_threads_and_chunking_and_decodes() {
        for len in [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, GZIP_BLOCK * 3 + 17] {
            let data = sample(len);
            let a = gz(&data, 1, 4096);
            let b = gz(&data, 2, 7777);
            let c = gz(&data, 5, GZIP_BLOCK * 2);
            assert_eq!(a, b, "len {len}");
            assert_eq!(a, c, "len {len}");
            // A plain single-member decoder reads it whole.
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&a[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn incompressible_blocks_are_detected() {
        let mut x: u64 = 1;
        let random: Vec<u8> = (0..GZIP_BLOCK / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        assert!(incompressible(&random));
        assert!(!incompressible(&sample(GZIP_BLOCK)));
        // Stored blocks still decode, and are barely larger than the input.
        let gz = gz(&random, 2, 9999);
        assert!(gz.len() < random.len() + random.len() / 100);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, random);
    }

    fn xorshift(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.max(1);
        (0..n.div_ceil(8))
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .take(n)
            .collect()
    }

    fn inflate(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Runs of zeros of every awkward length (around the 64-byte threshold, one match, one
    /// match plus 1 or 2, several matches), at the start, middle and end, in final and
    /// non-final blocks that must concatenate.
    #[test]
    fn stored_zero_runs_decode_to_the_input() {
        let lengths = [
            0, 1, 63, 64, 65, 66, 67, 100, 257, 258, 259, 260, 261, 262, 515, 516, 517, 518, 519,
            70_000, 140_000,
        ];
        for (i, &a) in lengths.iter().enumerate() {
            for &b in &lengths[i..] {
                let mut data = vec![0u8; a];
                data.extend(xorshift(100 + a % 7, a as u64 + 1));
                data.extend(vec![0u8; b]);
                data.extend(xorshift(70_001, b as u64 + 3));
                data.extend(vec![0u8; a]);
                let mut raw = deflate_stored_zero_runs(&data, false);
                raw.extend(deflate_stored_zero_runs(&data[..a.min(9)], true));
                let mut expect = data.clone();
                expect.extend_from_slice(&data[..a.min(9)]);
                assert_eq!(inflate(&raw), expect, "runs {a} and {b}");
            }
        }
        assert_eq!(inflate(&deflate_stored_zero_runs(&[], true)), b"");
    }

    /// A tar of many small incompressible files: detected, written at copy speed, and the zero
    /// padding and headers between the files still shrink.
    #[test]
    fn tar_of_small_random_files_keeps_the_padding_saving() {
        let mut tar = tar::Builder::new(Vec::new());
        for i in 0..400u64 {
            let body = xorshift(1 + (i as usize * 7919) % 9000, i + 1);
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, format!("dir/file{i:05}.dat"), &body[..])
                .unwrap();
        }
        let data = tar.into_inner().unwrap();
        let block = &data[..GZIP_BLOCK.min(data.len())];
        assert!(block.len() >= 4 * PROBE);
        assert!(incompressible(block));
        let out = deflate_block(block, 4, true).unwrap();
        assert_eq!(inflate(&out), block);
        assert!(
            out.len() * 100 < block.len() * 97,
            "padding kept: {} of {}",
            out.len(),
            block.len()
        );
        // Compressible data is not mistaken for it.
        assert!(!incompressible(&sample(GZIP_BLOCK)));
    }

    #[test]
    fn zstd_and_detection_roundtrip() {
        let data = sample(300_000);
        for c in [
            Compression::None,
            Compression::Gzip { level: 1 },
            Compression::Zstd { level: 3 },
        ] {
            let mut w = CompressWriter::new(Vec::new(), c, 2).unwrap();
            w.write_all(&data).unwrap();
            let blob = w.finish().unwrap();
            let (kind, mut r) = decompress(&blob[..]).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
            let expect = match c {
                Compression::None => Detected::None,
                Compression::Gzip { .. } => Detected::Gzip,
                Compression::Zstd { .. } => Detected::Zstd,
            };
            assert_eq!(kind, expect);
        }
    }
}
