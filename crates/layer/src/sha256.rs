//! A SHA-256 whose state can be saved and resumed: an edited layer starts hashing where its
//! unchanged prefix ended, from the state the previous layer saved there (see `blocks`).
//!
//! Written around `sha2::compress256` (the same block function, SHA-NI included, that
//! `sha2::Sha256` runs) because sha2 0.10 keeps its running state private and offers no way to
//! save or restore it. What is ours is only the buffering of a partial 64-byte block and the
//! final padding (FIPS 180-4, 5.1.1), both checked against `sha2::Sha256` in the tests.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A running SHA-256: the chaining value, the bytes hashed so far and the partial block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256State {
    h: [u32; 8],
    len: u64,
    /// The bytes of an unfinished 64-byte block (fewer than 64).
    tail: Vec<u8>,
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State {
            h: H0,
            len: 0,
            tail: Vec::with_capacity(64),
        }
    }
}

impl Sha256State {
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this state can be what hashing some input produced (a loaded state is checked
    /// before it is resumed).
    pub fn is_consistent(&self) -> bool {
        self.tail.len() < 64 && self.len % 64 == self.tail.len() as u64
    }

    /// Hashes `data` after what was hashed so far.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.tail);
            sha2::compress256(&mut self.h, &[block]);
            self.tail.clear();
        }
        let whole = data.len() / 64 * 64;
        // Each block is passed by reference as a one-block slice: copying them into batches
        // took as long as the hashing (SHA-NI), and a cast of the whole slice needs unsafe.
        for chunk in data[..whole].chunks_exact(64) {
            let block = GenericArray::from_slice(chunk);
            sha2::compress256(&mut self.h, std::slice::from_ref(block));
        }
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything hashed (the state itself is left as it was).
    pub fn digest(&self) -> Digest {
        let mut h = self.h;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        let blocks: Vec<_> = last
            .chunks_exact(64)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut h, &blocks);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Digest::from_sha256(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(data: &[u8]) -> Digest {
        Digest::from_sha256(sha2::Sha256::digest(data).into())
    }

    #[test]
    fn matches_sha2_for_every_split_and_length() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4095, 4096, 4097, 9999,
        ] {
            let d = &data[..len];
            for split in [0, 1, 3, 63, 64, 100, len / 2, len] {
                let split = split.min(len);
                let mut s = Sha256State::default();
                s.update(&d[..split]);
                s.update(&d[split..]);
                assert_eq!(s.digest(), reference(d), "len {len} split {split}");
                assert!(s.is_consistent());
                assert_eq!(s.len(), len as u64);
            }
        }
    }

    #[test]
    fn a_saved_state_resumes_where_it_stopped() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = Sha256State::default();
        s.update(&data[..123_457]);
        let saved = s.clone();
        s.update(&data[123_457..]);
        let mut resumed = saved;
        resumed.update(&data[123_457..]);
        assert_eq!(resumed.digest(), reference(&data));
        assert_eq!(s, resumed);
    }
}
