//! What the solver keeps in the store's cache records, typed: each record is JSON of one of
//! these, with a `v` field, so a record this version cannot read is a miss (and rewritten), never
//! a wrong result.

use serde::{Deserialize, Serialize};
use whittle_layer::Digest;

/// The result of a vertex that may add a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum StepRecord {
    /// It added nothing.
    Empty,
    /// Its layer: the snapshot by chain id, and the layer's diff id.
    Layer { chain: Digest, diff: Digest },
}

/// A built layer, compressed once: the blob, its size, and the diff id it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub diff: Digest,
}

/// The content digest of a path in a snapshot stack (memoized for `COPY --from` keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// Hex sha256 of the tree, or absent when the path does not exist.
    pub digest: Option<String>,
}

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    v: u32,
    #[serde(flatten)]
    record: T,
}

/// Encodes a record for the store.
pub fn encode<T: Serialize>(record: &T) -> String {
    serde_json::to_string(&Versioned { v: VERSION, record }).unwrap_or_default()
}

/// Decodes a record; `None` for anything this version did not write.
pub fn decode<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
    let v: Versioned<T> = serde_json::from_str(s).ok()?;
    (v.v == VERSION).then_some(v.record)
}

impl StepRecord {
    pub fn encode(&self) -> String {
        encode(self)
    }
    pub fn decode(s: &str) -> Option<Self> {
        decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_did_not_write() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let r = StepRecord::Layer {
            chain: d.clone(),
            diff: d.clone(),
        };
        assert_eq!(StepRecord::decode(&r.encode()), Some(r));
        assert_eq!(
            StepRecord::decode(&StepRecord::Empty.encode()),
            Some(StepRecord::Empty)
        );
        // The string format of earlier versions, a future version, and garbage.
        assert_eq!(
            StepRecord::decode(&format!("layer:{}:{}", d.hex(), d.hex())),
            None
        );
        assert_eq!(StepRecord::decode(r#"{"v":2,"result":"empty"}"#), None);
        assert_eq!(StepRecord::decode("empty"), None);
        let b = BlobRecord {
            digest: d.clone(),
            size: 7,
            diff: d,
        };
        assert_eq!(decode::<BlobRecord>(&encode(&b)), Some(b));
        // A digest that is not one does not decode.
        assert_eq!(
            decode::<BlobRecord>(r#"{"v":1,"digest":"x","size":1,"diff":"y"}"#),
            None
        );
    }
}
