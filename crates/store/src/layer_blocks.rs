//! Block indexes of gzip layer blobs, for an edited layer to take its unchanged blocks from the
//! previous one (`whittle_layer::blocks`). `blocks/<chain id hex>` holds, for the snapshot of
//! that chain id, the blob its layer was last compressed into and that blob's index.
//!
//! Like copy manifests, an index is a hint, never the truth: it is used only while its
//! snapshot is recorded and its blob is present with the size the index says, and
//! `BlockIndex::usable` checks it before anything is taken from it. It is written without
//! fsync and replaced by each compression of the layer; a missing, damaged or foreign file is
//! the same as none.

use crate::error::{Result, StoreError};
use crate::store::Store;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use whittle_layer::{BlockIndex, Digest};

const MAGIC: &[u8] = b"whittle-layer-blocks-2\n";
/// An index is about 300 bytes per MiB of layer; a larger file is not read.
const MAX_BYTES: u64 = 64 << 20;

impl Store {
    fn layer_blocks_path(&self, chain: &Digest) -> PathBuf {
        self.root.join("blocks").join(chain.hex())
    }

    /// The blob a snapshot's layer was last compressed into at gzip `level`, opened, with its
    /// index; `None` unless all of it is there and consistent.
    pub fn layer_blocks(&self, chain: &Digest, level: u32) -> Option<(BlockIndex, File)> {
        let f = File::open(self.layer_blocks_path(chain)).ok()?;
        let mut bytes = Vec::new();
        f.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
        let (blob, index) = decode(&bytes)?;
        if !self.has_snapshot(chain).ok()? {
            return None;
        }
        let file = File::open(self.blob_path(&blob)).ok()?;
        let size = file.metadata().ok()?.len();
        index.usable(level, size).then_some((index, file))
    }

    /// Records the index of the blob a snapshot's layer was compressed into (no fsync: see
    /// the module docs).
    pub fn put_layer_blocks(
        &self,
        chain: &Digest,
        blob: &Digest,
        index: &BlockIndex,
    ) -> Result<()> {
        let body = postcard::to_stdvec(index)
            .map_err(|e| StoreError::InvalidImage(format!("block index: {e}")))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 144 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(blob.as_str().as_bytes());
        out.push(b'\n');
        // The body's digest: a torn or damaged file (it is not synced) is never used. An edited
        // layer's diff id and digest are resumed from these states without reading the bytes.
        out.extend_from_slice(Digest::of_bytes(&body).as_str().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&body);
        crate::hints::replace(&self.root.join("blocks"), chain.hex(), &out)
    }

    /// Removes the indexes whose snapshot is no longer recorded, and temp files left by a
    /// killed build (under the exclusive gc lock). Returns how many.
    pub(crate) fn prune_layer_blocks(&self) -> Result<u64> {
        crate::hints::prune(&self.root.join("blocks"), |e| {
            e.file_name()
                .to_str()
                .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
                .is_some_and(|c| self.has_snapshot(&c).unwrap_or(false))
        })
    }
}

fn decode(bytes: &[u8]) -> Option<(Digest, BlockIndex)> {
    let line = |b: &[u8]| -> Option<(Digest, usize)> {
        let nl = b.iter().take(80).position(|&c| c == b'\n')?;
        let d: Digest = std::str::from_utf8(&b[..nl]).ok()?.parse().ok()?;
        Some((d, nl + 1))
    };
    let rest = bytes.strip_prefix(MAGIC)?;
    let (blob, at) = line(rest)?;
    let rest = &rest[at..];
    let (sum, at) = line(rest)?;
    let body = &rest[at..];
    if Digest::of_bytes(body) != sum {
        return None;
    }
    let index = postcard::from_bytes(body).ok()?;
    Some((blob, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use whittle_layer::{write_layer_reusing, Compression, WriteOptions};

    #[test]
    fn an_index_is_read_back_only_with_its_snapshot_and_blob() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), vec![7u8; 100_000]).unwrap();
        let opts = WriteOptions {
            compression: Compression::Gzip { level: 4 },
            ..WriteOptions::default()
        };
        let w = s.blob_writer(None).unwrap();
        let (info, index, w) = write_layer_reusing(src.path(), &opts, w, None).unwrap();
        let index = index.unwrap();
        let (blob, _) = w.commit().unwrap();
        let chain = whittle_layer::chain_id(None, &info.diff_id);
        s.put_layer_blocks(&chain, &blob, &index).unwrap();
        assert!(s.layer_blocks(&chain, 4).is_none(), "no snapshot yet");

        let sd = s.prepare_snapshot().unwrap();
        fs::write(sd.path().join("a"), vec![7u8; 100_000]).unwrap();
        sd.commit(&chain, None, &info.diff_id).unwrap();
        let (back, _) = s.layer_blocks(&chain, 4).unwrap();
        assert_eq!(back, index);
        assert!(s.layer_blocks(&chain, 6).is_none(), "another level");

        // A damaged file is none: truncated, or a byte flipped that still decodes.
        let path = s.layer_blocks_path(&chain);
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() - 10]).unwrap();
        assert!(s.layer_blocks(&chain, 4).is_none());
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert!(s.layer_blocks(&chain, 4).is_none());
        fs::write(&path, &good).unwrap();
        assert!(s.layer_blocks(&chain, 4).is_some());

        // Without its blob, none.
        s.put_layer_blocks(&chain, &blob, &index).unwrap();
        fs::remove_file(s.blob_path(&blob)).unwrap();
        assert!(s.layer_blocks(&chain, 4).is_none());
        assert_eq!(s.prune_layer_blocks().unwrap(), 0, "its snapshot is there");
    }
}
