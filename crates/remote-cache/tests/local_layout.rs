//! `--cache-to type=local,dest=DIR` into a directory that an earlier export wrote: the blobs
//! the new cache does not name are removed, those it names are kept, and the layout reads
//! back as the new cache.
#![allow(clippy::unwrap_used)]

use std::fs;
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Digest;
use whittle_remote_cache::{CacheConfig, CacheFrom, CacheLayer, Imported};
use whittle_store::Store;

/// A layer of one file in the store, as a cache layer made on an empty filesystem.
fn layer(s: &Store, content: &str) -> CacheLayer {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), content).unwrap();
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(src.path(), &WriteOptions::default(), w).unwrap();
    w.commit().unwrap();
    CacheLayer {
        blob: info.digest,
        media_type: info.media_type.to_string(),
        size: info.size,
        chain_id: whittle_oci::chain_id(None, &info.diff_id),
        diff_id: info.diff_id,
        parent: None,
    }
}

fn key(n: u8) -> String {
    Digest::of_bytes(&[n]).to_string()
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_export_removes_the_blobs_of_the_one_before_that_it_does_not_name() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("store")).unwrap();
    let dir = t.path().join("cache");
    let (old, kept, new) = (layer(&s, "old"), layer(&s, "kept"), layer(&s, "new"));
    let first = CacheConfig::new(
        vec![(key(1), Some(old.clone())), (key(2), Some(kept.clone()))],
        Vec::new(),
        Vec::new(),
    );
    whittle_remote_cache::export::to_local(&s, &first, &dir).unwrap();
    let before = files(&dir);
    assert_eq!(before.len(), 4, "2 layers, config, manifest: {before:?}");
    // Not a digest: not the export's to remove.
    fs::write(dir.join("blobs/sha256/notes.txt"), "mine").unwrap();

    let second = CacheConfig::new(
        vec![(key(2), Some(kept.clone())), (key(3), Some(new.clone()))],
        Vec::new(),
        Vec::new(),
    );
    whittle_remote_cache::export::to_local(&s, &second, &dir).unwrap();
    let after = files(&dir);
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(!after.contains(&old.blob.hex().to_string()), "{after:?}");
    assert!(after.contains(&kept.blob.hex().to_string()));
    assert!(after.contains(&new.blob.hex().to_string()));
    assert!(after.contains(&"notes.txt".to_string()));
    // The first export's config and manifest are gone with it.
    let gone: Vec<&String> = before.iter().filter(|f| !after.contains(f)).collect();
    assert_eq!(
        gone.len(),
        3,
        "old layer, old config, old manifest: {gone:?}"
    );

    // It reads back as the second cache.
    let imp = Imported::open(
        &CacheFrom::Local(dir.clone()),
        &whittle_registry::ClientOptions::default(),
    )
    .unwrap();
    assert!(imp.has(&key(2)) && imp.has(&key(3)) && !imp.has(&key(1)));
}
