//! Build cache records: cache key -> what the step produced.

use crate::error::Result;
use crate::store::{db_err, now, parse, to_json, Store, CACHE};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use whittle_layer::Digest;

/// A build cache record: cache key -> result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheRecord {
    /// What the step produced, as the engine encodes it (e.g. a chain id or a config digest).
    pub result: String,
    /// The snapshot it keeps alive, if any.
    pub snapshot: Option<Digest>,
    /// Created (seconds since 1970).
    pub created: u64,
    /// Last used (seconds since 1970).
    pub last_used: u64,
}

impl Store {
    /// Records `key -> result`.
    pub fn put_cache(&self, key: &str, result: &str, snapshot: Option<&Digest>) -> Result<()> {
        let t0 = now();
        let rec = CacheRecord {
            result: result.to_string(),
            snapshot: snapshot.cloned(),
            created: t0,
            last_used: t0,
        };
        let Some(json) = self.defer(false, key, to_json(&rec)?) else {
            return Ok(());
        };
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(CACHE)
                .map_err(db_err)?
                .insert(key, json.as_str())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Looks a cache key up (and marks it used).
    pub fn get_cache(&self, key: &str) -> Result<Option<CacheRecord>> {
        // A read transaction: lookups must not cost an fsync each (a no-change rebuild does
        // one per step). Callers report what they used with [`Store::touch_cache`].
        if let Some(json) = self.pending().cache.get(key).cloned() {
            return Ok(Some(parse("cache record", &json)?));
        }
        self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let found = t.get(key).map_err(db_err)?.map(|v| v.value().to_string());
            match found {
                Some(s) => Ok(Some(parse("cache record", &s)?)),
                None => Ok(None),
            }
        })
    }

    /// Marks cache records as used now (for `prune`'s age rule), in one transaction.
    pub fn touch_cache(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let t0 = now();
        // Only records not marked within the hour: a quick rebuild writes (and fsyncs) nothing.
        let stale: Vec<&String> = self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let mut out = Vec::new();
            for key in keys {
                if let Some(v) = t.get(key.as_str()).map_err(db_err)? {
                    let r: CacheRecord = parse("cache record", v.value())?;
                    if r.last_used + 3600 < t0 {
                        out.push(key);
                    }
                }
            }
            Ok(out)
        })?;
        if stale.is_empty() {
            return Ok(());
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CACHE).map_err(db_err)?;
                for key in stale {
                    let found = t
                        .get(key.as_str())
                        .map_err(db_err)?
                        .map(|v| v.value().to_string());
                    if let Some(s) = found {
                        let mut r: CacheRecord = parse("cache record", &s)?;
                        r.last_used = t0;
                        t.insert(key.as_str(), to_json(&r)?.as_str())
                            .map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    pub(crate) fn cache_records(&self) -> Result<Vec<(String, CacheRecord)>> {
        self.with_read(|tx| {
            let t = tx.open_table(CACHE).map_err(db_err)?;
            let mut v = Vec::new();
            for e in t.iter().map_err(db_err)? {
                let (k, val) = e.map_err(db_err)?;
                v.push((k.value().to_string(), parse("cache record", val.value())?));
            }
            Ok(v)
        })
    }

    pub(crate) fn remove_cache_records(&self, keys: &[String]) -> Result<()> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CACHE).map_err(db_err)?;
                for k in keys {
                    t.remove(k.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}
