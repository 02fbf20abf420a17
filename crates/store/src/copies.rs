//! Copy manifests, for incremental COPY: for a COPY step, the snapshot its last build made
//! and the digest of the source each of its files was copied from. The next build of the step
//! hard-links the files whose source is unchanged instead of copying them (see
//! `whittle_solver::copy::copy_into_reusing`).
//!
//! A manifest is a hint, never the truth: it is used only while its snapshot is recorded, and
//! each linked file is checked against what the copy would make (owner, mode, mtime, size)
//! before it is taken. So it is written without fsync, replaced by each build of the step, and
//! a missing, damaged or foreign file is the same as none. `copies/<step>`, where `step` names
//! the step (hex); the file is a magic line, the snapshot's chain id, then the entries.

use crate::error::{Result, StoreError};
use crate::store::Store;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use whittle_layer::Digest;

const MAGIC: &[u8] = b"whittle-copy-manifest-1\n";
/// A manifest larger than this is not read (a COPY of millions of files gets no reuse).
const MAX_BYTES: u64 = 256 << 20;

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyManifest {
    /// The snapshot the files are in.
    pub chain: Digest,
    /// (path in the layer, source digest), sorted by path.
    pub files: Vec<(String, [u8; 32])>,
}

impl Store {
    fn copy_manifest_path(&self, step: &str) -> Option<PathBuf> {
        let ok =
            !step.is_empty() && step.len() <= 128 && step.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| self.root.join("copies").join(step))
    }

    /// The manifest of a COPY step's last build, if there is one and its snapshot is still
    /// recorded.
    pub fn copy_manifest(&self, step: &str) -> Option<CopyManifest> {
        let path = self.copy_manifest_path(step)?;
        let f = fs::File::open(path).ok()?;
        let mut bytes = Vec::new();
        f.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
        let m = decode(&bytes)?;
        self.has_snapshot(&m.chain).ok()?.then_some(m)
    }

    /// Replaces a COPY step's manifest (see the module docs: no fsync).
    pub fn put_copy_manifest(&self, step: &str, m: &CopyManifest) -> Result<()> {
        let Some(path) = self.copy_manifest_path(step) else {
            return Err(StoreError::InvalidImage(format!(
                "bad copy step name {step:?}"
            )));
        };
        let body = postcard::to_stdvec(&m.files)
            .map_err(|e| StoreError::InvalidImage(format!("copy manifest: {e}")))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 72 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(m.chain.as_str().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&body);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(step);
        crate::hints::replace(&self.root.join("copies"), name, &out)
    }

    /// Removes the manifests whose snapshot is no longer recorded, and temp files left by a
    /// killed build (under the exclusive gc lock: no build is writing one). Returns how many.
    pub(crate) fn prune_copy_manifests(&self) -> Result<u64> {
        crate::hints::prune(&self.root.join("copies"), |e| {
            fs::File::open(e.path())
                .ok()
                .and_then(|f| {
                    let mut head = Vec::new();
                    f.take((MAGIC.len() + 80) as u64)
                        .read_to_end(&mut head)
                        .ok()?;
                    chain_of(&head)
                })
                .is_some_and(|c| self.has_snapshot(&c).unwrap_or(false))
        })
    }
}

/// The chain id of a manifest's first bytes, and where its entries start.
fn header(bytes: &[u8]) -> Option<(Digest, usize)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().take(80).position(|&b| b == b'\n')?;
    let chain: Digest = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    Some((chain, MAGIC.len() + nl + 1))
}

fn chain_of(head: &[u8]) -> Option<Digest> {
    header(head).map(|(c, _)| c)
}

fn decode(bytes: &[u8]) -> Option<CopyManifest> {
    let (chain, at) = header(bytes)?;
    let mut files: Vec<(String, [u8; 32])> = postcard::from_bytes(&bytes[at..]).ok()?;
    // Written sorted; a file that is not is sorted rather than trusted.
    if !files.windows(2).all(|w| w[0].0 < w[1].0) {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files.dedup_by(|a, b| a.0 == b.0);
    }
    Some(CopyManifest { chain, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_read_back_only_while_its_snapshot_is_recorded() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let diff = Digest::of_bytes(b"layer");
        let chain = whittle_layer::chain_id(None, &diff);
        let m = CopyManifest {
            chain: chain.clone(),
            files: vec![("a".into(), [1; 32]), ("b/c".into(), [2; 32])],
        };
        s.put_copy_manifest("abc123", &m).unwrap();
        assert_eq!(s.copy_manifest("abc123"), None, "no snapshot yet");
        let sd = s.prepare_snapshot().unwrap();
        fs::write(sd.path().join("a"), "x").unwrap();
        sd.commit(&chain, None, &diff).unwrap();
        assert_eq!(s.copy_manifest("abc123"), Some(m));
        assert_eq!(s.copy_manifest("../x"), None, "a step name is hex");
        assert!(s
            .put_copy_manifest(
                "../x",
                &CopyManifest {
                    chain,
                    files: vec![]
                }
            )
            .is_err());
        // Damaged: ignored.
        fs::write(
            t.path().join("copies/abc123"),
            b"whittle-copy-manifest-1\nsha256:zz\n",
        )
        .unwrap();
        assert_eq!(s.copy_manifest("abc123"), None);
        assert_eq!(s.prune_copy_manifests().unwrap(), 1);
    }
}
