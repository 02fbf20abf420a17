//! Blobs the store knows only as remote (`remote_blobs.rs`): an image may name them, readers
//! fetch them through the store's fetcher (size and digest checked), fsck tells them from
//! missing ones, prune drops their records with the last image naming them.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use whittle_layer::{write_layer, Compression, WriteOptions};
use whittle_oci::Reference;
use whittle_store::*;

/// A registry in memory: blob bytes by digest, and how many fetches it served.
#[derive(Default)]
struct FakeRegistry {
    blobs: Mutex<HashMap<Digest, Vec<u8>>>,
    fetches: AtomicUsize,
}

impl BlobFetcher for FakeRegistry {
    fn fetch(
        &self,
        blob: &RemoteBlob,
        into: &mut dyn Write,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let bytes = self
            .blobs
            .lock()
            .unwrap()
            .get(&blob.digest)
            .cloned()
            .ok_or("404 blob unknown")?;
        into.write_all(&bytes)?;
        Ok(())
    }
}

/// A one-layer image whose layer is remote: its bytes are only in `reg`. Returns the image and
/// the layer's bytes.
fn half_remote_image(s: &Store, reg: &FakeRegistry) -> (ImageRecord, Vec<u8>) {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello.txt"), "hello\n").unwrap();
    let mut bytes = Vec::new();
    let opts = WriteOptions {
        compression: Compression::Gzip { level: 6 },
        threads: 1,
        ..WriteOptions::default()
    };
    let (info, _) = write_layer(src.path(), &opts, &mut bytes).unwrap();
    reg.blobs
        .lock()
        .unwrap()
        .insert(info.digest.clone(), bytes.clone());
    s.record_remote_blobs(&[RemoteBlob {
        digest: info.digest.clone(),
        size: info.size,
        media_type: info.media_type.to_string(),
        registry: "registry.example".into(),
        repository: "app/cache".into(),
    }])
    .unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
    });
    let img = s
        .write_image(
            &serde_json::to_vec(&config).unwrap(),
            &[(info.digest.clone(), info.media_type.to_string(), info.size)],
        )
        .unwrap();
    (img, bytes)
}

fn store() -> (tempfile::TempDir, Store, Arc<FakeRegistry>) {
    let t = tempfile::tempdir().unwrap();
    let reg = Arc::new(FakeRegistry::default());
    let s = Store::open(t.path().join("root"))
        .unwrap()
        .with_fetcher(reg.clone());
    (t, s, reg)
}

#[test]
fn an_image_may_name_a_remote_blob_and_reading_it_fetches_it_once() {
    let (_t, s, reg) = store();
    let (img, bytes) = half_remote_image(&s, &reg);
    let layer = &img.layers[0];
    assert!(!s.has_blob(layer));
    assert!(s.knows_blob(layer).unwrap());
    assert_eq!(s.blob_size(layer).unwrap(), bytes.len() as u64);
    assert_eq!(
        reg.fetches.load(Ordering::SeqCst),
        0,
        "recording fetches nothing"
    );
    // The image is whole in every sense but the bytes: its size counts the layer.
    assert!(img.size > bytes.len() as u64);
    let mut got = Vec::new();
    s.open_blob(layer).unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, bytes);
    assert!(s.has_blob(layer));
    s.open_blob(layer).unwrap();
    s.ensure_blob(layer).unwrap();
    assert_eq!(reg.fetches.load(Ordering::SeqCst), 1);
    // The record stays (a push can still mount the blob from there).
    assert_eq!(
        s.remote_blob(layer).unwrap().unwrap().repository,
        "app/cache"
    );
}

#[test]
fn a_fetched_blob_that_does_not_check_out_is_not_kept() {
    let (_t, s, reg) = store();
    let (img, bytes) = half_remote_image(&s, &reg);
    let layer = img.layers[0].clone();
    let place = "registry.example/app/cache";
    let mut other = bytes.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    for (what, served) in [
        ("other bytes", other),
        ("more bytes", [bytes.clone(), b"x".to_vec()].concat()),
        ("fewer bytes", bytes[..bytes.len() - 1].to_vec()),
    ] {
        reg.blobs.lock().unwrap().insert(layer.clone(), served);
        let e = s.open_blob(&layer).unwrap_err();
        assert!(matches!(e, StoreError::RemoteBlob { .. }), "{what}: {e}");
        assert!(e.to_string().contains(place), "{what}: {e}");
        assert!(!s.has_blob(&layer), "{what}");
    }
    reg.blobs.lock().unwrap().remove(&layer);
    let e = s.ensure_blob(&layer).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    // A handle without a fetcher says where the blob is.
    let plain = Store::open(s.root()).unwrap();
    let e = plain.open_blob(&layer).unwrap_err();
    assert!(e.to_string().contains(place), "{e}");
    // A blob neither here nor recorded is missing, as before.
    let nowhere = Digest::of_bytes(b"nowhere");
    assert!(matches!(
        s.open_blob(&nowhere).unwrap_err(),
        StoreError::BlobMissing(_)
    ));
    assert!(matches!(
        s.blob_size(&nowhere).unwrap_err(),
        StoreError::BlobMissing(_)
    ));
}

#[test]
fn fsck_reports_remote_blobs_apart_from_missing_ones_and_prune_drops_their_records() {
    let (_t, s, reg) = store();
    let (img, _) = half_remote_image(&s, &reg);
    let name = Reference::parse_tag("app:1").unwrap();
    s.tag(&name, &img.manifest).unwrap();
    let r = s.fsck(false).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert!(r.missing.is_empty());
    assert_eq!(
        r.remote,
        vec![(
            img.manifest.clone(),
            img.layers[0].clone(),
            "registry.example/app/cache".to_string()
        )]
    );
    // Tagged: prune keeps the record.
    let p = s.prune(&PruneOptions::default()).unwrap();
    assert_eq!(p.remote_records_removed, 0);
    assert_eq!(s.remote_blobs().unwrap().len(), 1);
    // fsck --fetch's half: the blob fetched, then checked like any other.
    let fetched = s.fetch_remote_image_blobs().unwrap();
    assert_eq!(fetched.len(), 1);
    let r = s.fsck(false).unwrap();
    assert!(r.is_clean() && r.remote.is_empty(), "{r:?}");
    // Untagged: the image, its blobs and the record go.
    s.untag(&name).unwrap();
    let p = s.prune(&PruneOptions::default()).unwrap();
    assert_eq!(p.remote_records_removed, 1);
    assert!(s.remote_blobs().unwrap().is_empty());
    assert!(!s.has_blob(&img.layers[0]));
}
