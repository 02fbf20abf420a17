//! Store behaviour: blobs, images, tags, snapshots, cache, fsck, prune, archives.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use whittle_layer::{write_layer, Compression, WriteOptions};
use whittle_oci::Reference;
use whittle_store::*;

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    (t, s)
}

/// Builds a one-layer image from generated files; returns its record.
fn make_image(s: &Store, seed: u8, compression: Compression) -> ImageRecord {
    make_image_for(s, seed, compression, "amd64")
}

/// [`make_image`] for an architecture (`arm64`, `arm/v7`).
fn make_image_for(s: &Store, seed: u8, compression: Compression, arch: &str) -> ImageRecord {
    let (arch, variant) = arch.split_once('/').unwrap_or((arch, ""));
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("bin")).unwrap();
    fs::write(
        src.path().join("bin/tool"),
        vec![seed; 50_000 + seed as usize],
    )
    .unwrap();
    fs::write(src.path().join("hello.txt"), format!("hello {seed}\n")).unwrap();
    let mut w = s.blob_writer(None).unwrap();
    let opts = WriteOptions {
        compression,
        threads: 2,
        epoch: 0,
        ..WriteOptions::default()
    };
    let (info, w2) = write_layer(src.path(), &opts, &mut w).unwrap();
    let _ = w2;
    let (digest, size) = w.commit().unwrap();
    assert_eq!(digest, info.digest);
    assert_eq!(size, info.size);
    let config = serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "variant": variant,
        "os": "linux",
        "config": {"Cmd": ["/bin/tool"]},
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "COPY . /", "comment": "seed"},
            {"created": "2024-01-01T00:00:00Z", "created_by": "CMD [\"/bin/tool\"]", "empty_layer": true}
        ]
    });
    s.write_image(
        &serde_json::to_vec(&config).unwrap(),
        &[(info.digest, info.media_type.to_string(), info.size)],
    )
    .unwrap()
}

#[test]
fn layout_and_blob_writer() {
    let (_t, s) = store();
    assert!(s.root().join("oci-layout").is_file());
    assert!(s.root().join("index.json").is_file());
    let d = s.put_bytes(b"hello").unwrap();
    assert_eq!(d, Digest::of_bytes(b"hello"));
    assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"hello");
    // Wrong expected digest: refused, nothing left behind.
    let mut w = s.blob_writer(Some(Digest::of_bytes(b"other"))).unwrap();
    w.write_all(b"hello!").unwrap();
    assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    // Dropped writer: temp file removed.
    let mut w = s.blob_writer(None).unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    assert!(!s.has_blob(&Digest::of_bytes(b"partial")));
}

#[test]
fn images_tags_history_and_index_json() {
    let (_t, s) = store();
    let img = make_image(&s, 1, Compression::default());
    let r = Reference::parse("demo/app:v1").unwrap();
    s.tag(&r, &img.manifest).unwrap();
    s.tag(&Reference::parse("demo/app").unwrap(), &img.manifest)
        .unwrap();
    let all = s.images().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].tags, vec!["demo/app:latest", "demo/app:v1"]);
    assert_eq!(s.resolve("demo/app:v1").unwrap().image, img);
    assert_eq!(s.resolve(&img.config.hex()[..12]).unwrap().image, img);
    assert_eq!(s.resolve(img.manifest.as_str()).unwrap().image, img);
    assert!(matches!(
        s.resolve("nope"),
        Err(StoreError::ImageNotFound(_))
    ));
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
    let m = idx["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["digest"], img.manifest.as_str());
    assert_eq!(
        m[1]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(
        m[1]["annotations"]["io.containerd.image.name"],
        "demo/app:v1"
    );
    let h = s.history(&img).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].created_by.as_deref(), Some("CMD [\"/bin/tool\"]"));
    assert_eq!(h[0].layer, None);
    assert_eq!(h[1].layer.as_ref(), Some(&img.layers[0]));
    assert!(h[1].size > 0);
    assert_eq!(s.untag(&r).unwrap(), Some(img.manifest.clone()));
    assert_eq!(s.resolve("demo/app").unwrap().tags, vec!["demo/app:latest"]);
    let removed = s.remove_image(&img.manifest).unwrap();
    assert_eq!(removed, vec!["demo/app:latest"]);
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn snapshots_cache_records_and_cache_mounts() {
    let (_t, s) = store();
    let base = Digest::of_bytes(b"base");
    let top_diff = Digest::of_bytes(b"top");
    let top = whittle_layer::chain_id(Some(&base), &top_diff);
    let d = s.prepare_snapshot().unwrap();
    fs::write(d.path().join("f"), b"base").unwrap();
    d.commit(&base, None, &base).unwrap();
    let d = s.prepare_snapshot().unwrap();
    let tmp_path = d.path().to_path_buf();
    fs::write(d.path().join("g"), b"top").unwrap();
    let rec = d.commit(&top, Some(&base), &top_diff).unwrap();
    assert!(!tmp_path.exists());
    assert_eq!(rec.size, 3);
    assert_eq!(fs::read(s.snapshot_path(&top).join("g")).unwrap(), b"top");
    let chain = s.snapshot_chain(&top).unwrap();
    assert_eq!(
        chain.iter().map(|c| c.chain_id.clone()).collect::<Vec<_>>(),
        vec![top.clone(), base.clone()]
    );
    // Uncommitted snapshot dirs vanish on drop.
    let d = s.prepare_snapshot().unwrap();
    let p = d.path().to_path_buf();
    drop(d);
    assert!(!p.exists());

    s.put_cache("key-1", "result-1", Some(&top)).unwrap();
    let c = s.get_cache("key-1").unwrap().unwrap();
    assert_eq!(c.result, "result-1");
    assert_eq!(c.snapshot, Some(top.clone()));
    assert!(s.get_cache("key-2").unwrap().is_none());

    let m = s.cache_mount("go-build", true).unwrap();
    fs::write(m.path.join("obj"), b"o").unwrap();
    assert!(m.lock.is_some());
    // Held exclusively: another open cannot lock it.
    let name = Digest::of_bytes(b"go-build").hex()[..32].to_string();
    let lock = s.root().join("locks").join(format!("cache-{name}.lock"));
    assert!(FileLock::try_exclusive(&lock).unwrap().is_none());
    drop(m);
    assert!(FileLock::try_exclusive(&lock).unwrap().is_some());
    let again = s.cache_mount("go-build", false).unwrap();
    assert_eq!(fs::read(again.path.join("obj")).unwrap(), b"o");
}

#[test]
fn fsck_finds_corruption_and_drops_temp_files() {
    let (_t, s) = store();
    let img = make_image(&s, 2, Compression::default());
    s.tag(&Reference::parse("x").unwrap(), &img.manifest)
        .unwrap();
    let r = s.fsck(false).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.blobs_checked, 3);
    // Leftovers of a killed writer.
    fs::write(s.root().join("tmp/blob-dead"), b"half").unwrap();
    fs::create_dir(s.root().join("snapshots/tmp-dead")).unwrap();
    // Bit rot in a layer.
    let p = s.blob_path(&img.layers[0]);
    let mut bytes = fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let r = s.fsck(false).unwrap();
    assert!(!r.is_clean());
    assert_eq!(r.corrupt.len(), 1);
    assert_eq!(r.corrupt[0].0, img.layers[0]);
    assert_eq!(r.temp_removed.len(), 2);
    assert!(!s.root().join("tmp/blob-dead").exists());
    // Temp files are left alone while a writer holds a lease.
    let lease = s.lease().unwrap();
    fs::write(s.root().join("tmp/blob-live"), b"x").unwrap();
    let r = s.fsck(false).unwrap();
    assert!(r.temp_in_use && s.root().join("tmp/blob-live").exists());
    drop(lease);
    let r = s.fsck(true).unwrap();
    assert_eq!(r.corrupt_removed, vec![img.layers[0].clone()]);
    let r = s.fsck(false).unwrap();
    assert_eq!(
        r.missing,
        vec![(img.manifest.clone(), img.layers[0].clone())]
    );
}

#[test]
fn prune_drops_unreferenced_and_respects_keep_storage() {
    let (_t, s) = store();
    let kept = make_image(&s, 3, Compression::default());
    s.tag(&Reference::parse("kept").unwrap(), &kept.manifest)
        .unwrap();
    let dangling = make_image(&s, 4, Compression::default());
    let stray = s.put_bytes(b"stray").unwrap();
    let mk = |name: &[u8], parent: Option<&Digest>, bytes: usize| {
        let d = s.prepare_snapshot().unwrap();
        fs::write(d.path().join("data"), vec![1u8; bytes]).unwrap();
        let id = Digest::of_bytes(name);
        d.commit(&id, parent, &id).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        id
    };
    let a = mk(b"a", None, 100_000);
    let b = mk(b"b", Some(&a), 100_000);
    let c = mk(b"c", None, 100_000);
    s.put_cache("k-b", "b", Some(&b)).unwrap();
    s.put_cache("k-c", "c", Some(&c)).unwrap();
    // c is used last, so b (a leaf, older) goes first, then a; c stays.
    s.snapshot(&c).unwrap();
    let blobs = s.disk_usage().unwrap() - 300_000;
    let r = s
        .prune(&PruneOptions {
            keep_storage: Some(blobs + 150_000),
        })
        .unwrap();
    assert_eq!(r.images_removed, vec![dangling.manifest.clone()]);
    assert!(!s.has_blob(&stray) && !s.has_blob(&dangling.layers[0]));
    assert!(kept.blobs().all(|b| s.has_blob(b)));
    assert!(s.snapshot(&c).unwrap().is_some());
    assert!(s.snapshot(&b).unwrap().is_none() && s.snapshot(&a).unwrap().is_none());
    assert!(!s.snapshot_path(&a).exists());
    assert!(s.get_cache("k-b").unwrap().is_none());
    assert!(s.get_cache("k-c").unwrap().is_some());
    // No budget: all build cache goes, tagged images stay.
    let r = s.prune(&PruneOptions::default()).unwrap();
    assert_eq!(r.snapshots_removed, 1);
    assert!(s.get_cache("k-c").unwrap().is_none());
    assert!(s.fsck(false).unwrap().is_clean());
    assert_eq!(s.resolve("kept").unwrap().image, kept);
}

fn archive_bytes(s: &Store, refs: &[&str], format: ArchiveFormat) -> Vec<u8> {
    let imgs: Vec<_> = refs
        .iter()
        .map(|r| {
            (
                Some(Reference::parse(r).unwrap()),
                s.resolve(r).unwrap().image,
            )
        })
        .collect();
    save(s, &imgs, format, Vec::new()).unwrap()
}

#[test]
fn save_and_load_round_trip_identically() {
    let (t, a) = store();
    let i1 = make_image(&a, 5, Compression::default());
    let i2 = make_image(&a, 6, Compression::Zstd { level: 3 });
    a.tag(&Reference::parse("one:1").unwrap(), &i1.manifest)
        .unwrap();
    a.tag(&Reference::parse("one:also").unwrap(), &i1.manifest)
        .unwrap();
    a.tag(&Reference::parse("reg.local/two").unwrap(), &i2.manifest)
        .unwrap();
    let refs = ["one:1", "one:also", "reg.local/two:latest"];
    for format in [ArchiveFormat::Oci, ArchiveFormat::Docker] {
        let bytes = archive_bytes(&a, &refs, format);
        assert_eq!(
            bytes,
            archive_bytes(&a, &refs, format),
            "save is deterministic"
        );
        let file = t.path().join("x.tar");
        fs::write(&file, &bytes).unwrap();
        let b = Store::open(t.path().join(format!("b-{format:?}"))).unwrap();
        let loaded = load(&b, &file).unwrap();
        assert_eq!(loaded.len(), 2, "{loaded:?}");
        assert_eq!(loaded[0].manifest, i1.manifest);
        assert_eq!(loaded[0].tags, vec!["one:1", "one:also"]);
        assert_eq!(loaded[1].manifest, i2.manifest);
        assert_eq!(b.resolve("reg.local/two").unwrap().image.layers, i2.layers);
        // And saved again from there: the same bytes.
        assert_eq!(archive_bytes(&b, &refs, format), bytes);
        assert!(b.fsck(false).unwrap().is_clean());
    }
    // gzip-compressed archive.
    let bytes = archive_bytes(&a, &["one:1"], ArchiveFormat::Oci);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let file = t.path().join("x.tar.gz");
    fs::write(&file, gz.finish().unwrap()).unwrap();
    let c = Store::open(t.path().join("c")).unwrap();
    assert_eq!(load(&c, &file).unwrap()[0].manifest, i1.manifest);
    // The store root is itself an OCI layout directory.
    let d = Store::open(t.path().join("d")).unwrap();
    let loaded = load(&d, a.root()).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(d.resolve("one:also").unwrap().image.manifest, i1.manifest);
}

fn tar_append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, data).unwrap();
}

#[test]
fn classic_docker_archive_loads() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"classic").unwrap();
    let (info, layer) = write_layer(
        &src,
        &WriteOptions {
            compression: Compression::None,
            epoch: 0,
            ..WriteOptions::default()
        },
        Vec::new(),
    )
    .unwrap();
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string(), info.diff_id.to_string()]}
    }))
    .unwrap();
    let cfg_d = Digest::of_bytes(&cfg);
    let mut b = tar::Builder::new(Vec::new());
    tar_append(&mut b, "aaa/layer.tar", &layer);
    tar_append(&mut b, "aaa/VERSION", b"1.0");
    // A repeated layer stored as a symlink, as old `docker save` does.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    tar_append(&mut b, &format!("{}.json", cfg_d.hex()), &cfg);
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", cfg_d.hex()),
        "RepoTags": ["classic:v1", "classic:v2"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"]
    }]);
    tar_append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let file = t.path().join("classic.tar");
    fs::write(&file, b.into_inner().unwrap()).unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    let loaded = load(&s, &file).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, cfg_d);
    assert_eq!(loaded[0].tags, vec!["classic:v1", "classic:v2"]);
    let img = s.resolve("classic:v2").unwrap().image;
    assert_eq!(img.layers, vec![info.diff_id.clone(), info.diff_id.clone()]);
    let (m, _) = s.manifest_and_config(&img).unwrap();
    assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(
        m["layers"][0]["mediaType"],
        whittle_layer::MEDIA_TYPE_LAYER_TAR
    );
    // A layer that does not match the config is refused.
    let bad = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(b"x").to_string()]}
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    tar_append(&mut b, "aaa/layer.tar", &layer);
    tar_append(&mut b, "cfg.json", &bad);
    tar_append(
        &mut b,
        "manifest.json",
        br#"[{"Config":"cfg.json","RepoTags":["bad:1"],"Layers":["aaa/layer.tar"]}]"#,
    );
    fs::write(&file, b.into_inner().unwrap()).unwrap();
    let err = load(&s, &file).unwrap_err();
    assert!(err.to_string().contains("config says"), "{err}");
    assert!(matches!(
        s.resolve("bad:1"),
        Err(StoreError::ImageNotFound(_))
    ));
}

#[test]
fn archive_blob_with_wrong_name_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    tar_append(
        &mut b,
        &format!("blobs/sha256/{}", Digest::of_bytes(b"real").hex()),
        b"forged",
    );
    fs::write(t.path().join("f.tar"), b.into_inner().unwrap()).unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    let err = load(&s, &t.path().join("f.tar")).unwrap_err();
    assert!(err.to_string().contains("hashes to"), "{err}");
    assert!(!s.has_blob(&Digest::of_bytes(b"real")));
}

#[test]
fn concurrent_writers_share_the_store() {
    // Separate store handles (as separate processes would have) writing at once, while this
    // thread keeps its own handle. Bounded waits: a lock cycle fails the test instead of hanging.
    let (_t, s) = store();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..4u8 {
        let root = s.root().to_path_buf();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let s = Store::open(&root).unwrap();
            for j in 0..3u8 {
                let img = make_image(&s, i * 10 + j, Compression::Gzip { level: 1 });
                s.tag(
                    &Reference::parse(&format!("t{i}:{j}")).unwrap(),
                    &img.manifest,
                )
                .unwrap();
                s.put_cache(&format!("k{i}{j}"), "r", None).unwrap();
            }
            tx.send(i).unwrap();
        });
    }
    s.images().unwrap();
    for _ in 0..4 {
        rx.recv_timeout(std::time::Duration::from_secs(60)).expect(
            "a writer was blocked for 60 s: store handles must not hold locks between calls",
        );
    }
    assert_eq!(s.images().unwrap().len(), 12);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[allow(dead_code)]
fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    fs::File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn a_multi_platform_layout_loads_every_platform_under_its_name() {
    let (t, a) = store();
    let other = make_image(&a, 7, Compression::default());
    let host = make_image(&a, 8, Compression::default());
    let dir = t.path().join("layout");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    for e in fs::read_dir(a.root().join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    let arch = whittle_store::archive::host_architecture();
    let desc = |img: &ImageRecord, arch: &str| {
        serde_json::json!({"mediaType": MEDIA_TYPE_MANIFEST, "digest": img.manifest.to_string(),
            "size": img.manifest_size, "platform": {"os": "linux", "architecture": arch}})
    };
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [desc(&other, "s390x"), desc(&host, arch)]
    }))
    .unwrap();
    let nd = Digest::of_bytes(&nested);
    fs::write(dir.join("blobs/sha256").join(nd.hex()), &nested).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": MEDIA_TYPE_INDEX, "digest": nd.to_string(), "size": nested.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi/arch:1"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let b = Store::open(t.path().join("b")).unwrap();
    let loaded = load(&b, &dir).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(
        b.resolve("multi/arch:1").unwrap().image.manifest,
        host.manifest
    );
    // Both platforms stay under the name.
    assert!(b
        .images()
        .unwrap()
        .iter()
        .any(|i| i.image.manifest == other.manifest && i.tags == ["multi/arch:1"]));
    let s390x = whittle_oci::Platform::parse("linux/s390x").unwrap();
    assert_eq!(
        b.resolve_platform("multi/arch:1", &s390x)
            .unwrap()
            .image
            .manifest,
        other.manifest
    );
}

#[test]
fn archive_whose_config_disagrees_with_its_layers_is_refused() {
    let (t, a) = store();
    let img = make_image(&a, 9, Compression::default());
    a.tag(&Reference::parse("good:1").unwrap(), &img.manifest)
        .unwrap();
    // Same layer, but a config claiming another diff id, in a manifest of its own.
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(b"not this layer").to_string()]}
    }))
    .unwrap();
    let size = a.blob_size(&img.layers[0]).unwrap();
    let bad = a
        .write_image(
            &cfg,
            &[(
                img.layers[0].clone(),
                whittle_layer::MEDIA_TYPE_LAYER_GZIP.into(),
                size,
            )],
        )
        .unwrap();
    a.tag(&Reference::parse("bad:1").unwrap(), &bad.manifest)
        .unwrap();
    let bytes = save(
        &a,
        &[(Some(Reference::parse("bad:1").unwrap()), bad)],
        ArchiveFormat::Oci,
        Vec::new(),
    )
    .unwrap();
    let file = t.path().join("bad.tar");
    fs::write(&file, bytes).unwrap();
    let b = Store::open(t.path().join("b")).unwrap();
    let err = load(&b, &file).unwrap_err();
    assert!(err.to_string().contains("but the config says"), "{err}");
    assert!(b.images().unwrap().is_empty());
}

/// A build holds a lease for its whole run and uses the database now and then; `prune` waits for
/// leases. No lock may be held across that wait, or the two deadlock.
#[test]
fn lease_holders_use_the_database_while_prune_waits() {
    use std::sync::mpsc;
    use std::time::Duration;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    Store::open(&root).unwrap();
    // The "build": a lease, and no store handle kept open meanwhile.
    let lease = Store::open(&root).unwrap().lease().unwrap();
    let r = root.clone();
    let pruner = std::thread::spawn(move || {
        let p = Store::open(&r).unwrap();
        p.prune(&PruneOptions::default()).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = mpsc::channel();
    let r = root.clone();
    let user = std::thread::spawn(move || {
        let ok = Store::open(&r)
            .and_then(|s| s.put_cache("k", "v", None))
            .is_ok();
        let _ = tx.send(ok);
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    drop(lease);
    pruner.join().unwrap();
    user.join().unwrap();
    assert_eq!(
        got,
        Ok(true),
        "a lease holder could not use the database while prune waited"
    );
}

/// A write batch holds cache and snapshot records back: this handle sees them at once, other
/// processes (another handle) only after the batch writes them; dropping it writes them too.
#[test]
fn write_batch_defers_records_until_flushed() {
    let (t, s) = store();
    let other = Store::open(t.path().join("root")).unwrap();
    let batch = s.batch_writes();
    s.put_cache("k1", "r1", None).unwrap();
    let d = s.prepare_snapshot().unwrap();
    fs::write(d.path().join("f"), "x").unwrap();
    let id = Digest::of_bytes(b"snap");
    d.commit(&id, None, &id).unwrap();
    assert!(
        s.snapshot_path(&id).is_dir(),
        "the directory is in place at once"
    );
    assert_eq!(s.get_cache("k1").unwrap().unwrap().result, "r1");
    assert!(s.has_snapshot(&id).unwrap());
    assert_eq!(s.snapshots().unwrap().len(), 1);
    assert!(other.get_cache("k1").unwrap().is_none());
    assert!(!other.has_snapshot(&id).unwrap());
    // A newer record of the same key replaces the queued one.
    s.put_cache("k1", "r2", None).unwrap();
    s.flush_writes_if_older(std::time::Duration::from_secs(3600))
        .unwrap();
    assert!(other.get_cache("k1").unwrap().is_none(), "not due yet");
    s.flush_writes_if_older(std::time::Duration::ZERO).unwrap();
    assert_eq!(other.get_cache("k1").unwrap().unwrap().result, "r2");
    assert!(other.has_snapshot(&id).unwrap());
    s.put_cache("k2", "r3", None).unwrap();
    batch.finish().unwrap();
    assert_eq!(other.get_cache("k2").unwrap().unwrap().result, "r3");
    // Without a batch, writes go straight through.
    s.put_cache("k3", "r4", None).unwrap();
    assert!(other.get_cache("k3").unwrap().is_some());
    // Dropped without finish (a failed build): still written.
    {
        let _b = s.batch_writes();
        s.put_cache("k4", "r5", None).unwrap();
        assert!(other.get_cache("k4").unwrap().is_none());
    }
    assert!(other.get_cache("k4").unwrap().is_some());
    assert!(other.fsck(false).unwrap().is_clean());
}

/// A process killed inside a batch leaves snapshot directories without records: complete (they
/// were synced before being renamed into place), re-recorded by the next commit of the same
/// chain, removed by prune otherwise.
#[test]
fn unrecorded_snapshot_dirs_are_reused_or_pruned() {
    let (_t, s) = store();
    let mk = |name: &[u8]| {
        let b = s.batch_writes();
        let d = s.prepare_snapshot().unwrap();
        fs::write(d.path().join("f"), name).unwrap();
        let id = Digest::of_bytes(name);
        d.commit(&id, None, &id).unwrap();
        std::mem::forget(b); // as if killed: nothing flushed
        id
    };
    let a = mk(b"a");
    let b = mk(b"b");
    let fresh = Store::open(s.root()).unwrap();
    assert!(!fresh.has_snapshot(&a).unwrap() && fresh.snapshot_path(&a).is_dir());
    let d = fresh.prepare_snapshot().unwrap();
    fs::write(d.path().join("f"), "a").unwrap();
    d.commit(&a, None, &a).unwrap();
    assert!(fresh.has_snapshot(&a).unwrap());
    assert_eq!(fs::read(fresh.snapshot_path(&a).join("f")).unwrap(), b"a");
    fresh.prune(&PruneOptions::default()).unwrap();
    assert!(
        !fresh.snapshot_path(&b).exists(),
        "the orphan is debris for prune"
    );
}

/// Tagging an image with the tag it already has writes nothing (every rebuild does it): the
/// database and index.json stay as they are.
#[test]
fn retagging_the_same_image_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let (_t, s) = store();
    let img = make_image(&s, 3, Compression::default());
    let r = Reference::parse("same:1").unwrap();
    s.tag(&r, &img.manifest).unwrap();
    let ino = |p: &str| fs::metadata(s.root().join(p)).unwrap().ino();
    let mtime = |p: &str| fs::metadata(s.root().join(p)).unwrap().mtime_nsec();
    let (index, db) = (ino("index.json"), mtime("meta.redb"));
    s.tag(&r, &img.manifest).unwrap();
    assert_eq!(ino("index.json"), index, "index.json was rewritten");
    assert_eq!(mtime("meta.redb"), db, "the database was written");
    // Another image under the same tag is a real change.
    let other = make_image(&s, 4, Compression::default());
    s.tag(&r, &other.manifest).unwrap();
    assert_ne!(ino("index.json"), index);
    assert_eq!(s.resolve("same:1").unwrap().image.manifest, other.manifest);
}

/// A classic docker archive of `entries` (config JSON, RepoTags), all sharing one layer.
fn docker_archive_of(entries: &[(serde_json::Value, &[&str])]) -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), b"x").unwrap();
    let (info, layer) = write_layer(
        src.path(),
        &WriteOptions {
            compression: Compression::None,
            epoch: 0,
            ..WriteOptions::default()
        },
        Vec::new(),
    )
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    tar_append(&mut b, "l/layer.tar", &layer);
    let mut manifest = Vec::new();
    for (i, (cfg, tags)) in entries.iter().enumerate() {
        let mut cfg = cfg.clone();
        if cfg.pointer("/rootfs").is_none() {
            cfg["rootfs"] =
                serde_json::json!({"type": "layers", "diff_ids": [info.diff_id.to_string()]});
        }
        let name = format!("c{i}.json");
        tar_append(&mut b, &name, &serde_json::to_vec(&cfg).unwrap());
        manifest
            .push(serde_json::json!({"Config": name, "RepoTags": tags, "Layers": ["l/layer.tar"]}));
    }
    tar_append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

#[test]
fn a_load_that_fails_tags_nothing_and_leaves_no_image() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    let file = t.path().join("a.tar");
    let good = serde_json::json!({"architecture": "amd64", "os": "linux", "comment": "good"});
    let bad_layers = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(b"other").to_string()]}});
    // The first image is fine; the second does not match its layer.
    fs::write(
        &file,
        docker_archive_of(&[(good.clone(), &["first:1"]), (bad_layers, &["second:1"])]),
    )
    .unwrap();
    assert!(load(&s, &file).is_err());
    // A name with `..` parts is refused before anything is tagged.
    fs::write(
        &file,
        docker_archive_of(&[(good.clone(), &["ok:1", "../../x:1"])]),
    )
    .unwrap();
    let err = load(&s, &file).unwrap_err();
    assert!(matches!(err, StoreError::InvalidReference(..)), "{err}");
    assert!(s.images().unwrap().is_empty(), "{:?}", s.images().unwrap());
    let index = fs::read_to_string(s.root().join("index.json")).unwrap();
    assert!(
        !index.contains("first") && !index.contains("ok:1"),
        "{index}"
    );
    // The same archive without the bad name loads whole.
    fs::write(&file, docker_archive_of(&[(good, &["ok:1", "ok:2"])])).unwrap();
    let loaded = load(&s, &file).unwrap();
    assert_eq!(loaded[0].tags, vec!["ok:1", "ok:2"]);
    assert_eq!(s.images().unwrap().len(), 1);
}

#[test]
fn uncompressed_layers_are_compressed_once_and_deterministically() {
    let (_t, s) = store();
    let img = make_image(&s, 3, Compression::None);
    let m = s.manifest(&img).unwrap();
    assert_eq!(
        m.layers[0].media_type,
        whittle_oci::media_type::OCI_LAYER_TAR
    );
    let gz = s
        .with_compressed_layers(&img, Compression::default(), 1)
        .unwrap();
    assert_ne!(gz.manifest, img.manifest);
    assert_eq!(gz.config, img.config, "the config (and diff ids) stay");
    let gm = s.manifest(&gz).unwrap();
    assert_eq!(
        gm.layers[0].media_type,
        whittle_oci::media_type::OCI_LAYER_GZIP
    );
    assert!(gm.layers[0].size < m.layers[0].size / 4, "{gm:?}");
    // The blob decompresses to the original layer.
    let mut plain = Vec::new();
    let (_, mut r) = whittle_layer::decompress(std::io::BufReader::new(
        s.open_blob(&gm.layers[0].digest).unwrap(),
    ))
    .unwrap();
    r.read_to_end(&mut plain).unwrap();
    assert_eq!(Digest::of_bytes(&plain), m.layers[0].digest);
    // Remembered, and the same bytes with any number of threads (a fresh store).
    assert_eq!(
        s.with_compressed_layers(&img, Compression::default(), 4)
            .unwrap()
            .manifest,
        gz.manifest
    );
    let (_t2, s2) = store();
    let img2 = make_image(&s2, 3, Compression::None);
    assert_eq!(img2.manifest, img.manifest);
    let gz2 = s2
        .with_compressed_layers(&img2, Compression::default(), 4)
        .unwrap();
    assert_eq!(gz2.manifest, gz.manifest);
    // Compressed layers are kept; no compression asked keeps the image.
    assert_eq!(
        s.with_compressed_layers(&gz, Compression::Zstd { level: 3 }, 1)
            .unwrap()
            .manifest,
        gz.manifest
    );
    assert_eq!(
        s.with_compressed_layers(&img, Compression::None, 1)
            .unwrap()
            .manifest,
        img.manifest
    );
}

#[test]
fn an_index_keeps_several_platforms_under_one_tag() {
    let (_t, s) = store();
    let amd = make_image_for(&s, 1, Compression::None, "amd64");
    let arm = make_image_for(&s, 2, Compression::None, "arm64");
    let v7 = make_image_for(&s, 3, Compression::None, "arm/v7");
    assert_eq!(arm.platform.as_ref().unwrap().to_string(), "linux/arm64");
    assert_eq!(v7.platform.as_ref().unwrap().to_string(), "linux/arm/v7");
    let ix = s
        .write_image_index(&[&amd, &arm, &v7], &Default::default())
        .unwrap();
    let plats: Vec<String> = ix.platforms().iter().map(ToString::to_string).collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let r = Reference::parse_tag("multi:1").unwrap();
    s.tag(&r, &ix.digest).unwrap();

    // Every platform's image carries the tag; the tag names the index.
    let all = s.images().unwrap();
    assert_eq!(all.len(), 3);
    assert!(all
        .iter()
        .all(|t| t.tags == ["multi:1"] && t.index.as_ref() == Some(&ix.digest)));
    assert_eq!(
        s.tag_target(&r).unwrap(),
        Some(TagTarget::Index(ix.clone()))
    );

    // By platform; the host's by default.
    let p = |x: &str| whittle_oci::Platform::parse(x).unwrap();
    let got = |x: &str| s.resolve_platform("multi:1", &p(x)).unwrap().image.manifest;
    assert_eq!(got("linux/arm64"), arm.manifest);
    assert_eq!(got("linux/arm"), v7.manifest);
    assert_eq!(got("linux/amd64"), amd.manifest);
    assert_eq!(s.resolve("multi:1").unwrap().image.manifest, amd.manifest);
    let e = s
        .resolve_platform("multi:1", &p("linux/s390x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux/s390x") && e.contains("linux/amd64, linux/arm64, linux/arm/v7"),
        "{e}"
    );
    // A single image of another platform: resolve takes it, resolve_platform refuses.
    s.tag(&Reference::parse_tag("armonly:1").unwrap(), &arm.manifest)
        .unwrap();
    assert_eq!(s.resolve("armonly:1").unwrap().image.manifest, arm.manifest);
    assert!(s.resolve_platform("armonly:1", &p("linux/amd64")).is_err());
    // An index of other platforms only: resolve takes the first, resolve_platform refuses.
    let ix2 = s
        .write_image_index(&[&arm, &v7], &Default::default())
        .unwrap();
    s.tag(&Reference::parse_tag("arms:1").unwrap(), &ix2.digest)
        .unwrap();
    assert_eq!(s.resolve("arms:1").unwrap().image.manifest, arm.manifest);
    assert!(s.resolve_platform("arms:1", &p("linux/amd64")).is_err());
    s.untag(&Reference::parse_tag("arms:1").unwrap()).unwrap();

    // index.json names the index, so layout readers see one tagged index.
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
    let entry = layout["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == ix.digest.to_string())
        .unwrap();
    assert_eq!(entry["mediaType"], MEDIA_TYPE_INDEX);

    // Prune keeps a tagged index and its images; untagged, they all go.
    s.untag(&Reference::parse_tag("armonly:1").unwrap())
        .unwrap();
    s.prune(&PruneOptions::default()).unwrap();
    assert_eq!(s.images().unwrap().len(), 3);
    assert!(s.has_blob(&ix.digest));
    s.untag(&r).unwrap();
    s.prune(&PruneOptions::default()).unwrap();
    assert!(s.images().unwrap().is_empty());
    assert!(s.indexes().unwrap().is_empty());
    assert!(!s.has_blob(&ix.digest));
    assert!(s.fsck(false).unwrap().dangling_tags.is_empty());
}

/// A cache mount is filled from a layer only while it is empty, and only with a layer whose
/// tar has the diff id it was given.
#[test]
fn fill_cache_mount_fills_an_empty_mount_only() {
    let (t, s) = store();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/entry"), b"cached").unwrap();
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(&src, &WriteOptions::default(), w).unwrap();
    let (blob, _) = w.commit().unwrap();
    let other = whittle_oci::Digest::of_bytes(b"another tar");

    let dir = s.cache_mount("go", false).unwrap().path;
    assert_eq!(dir, s.cache_mount_path("go"));
    // The wrong diff id: refused, the mount stays empty and nothing is left beside it.
    assert!(s.fill_cache_mount("go", &blob, &other).is_err());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(fs::read_dir(dir.parent().unwrap()).unwrap().count(), 1);
    // Empty: filled.
    assert!(s.fill_cache_mount("go", &blob, &info.diff_id).unwrap());
    assert_eq!(fs::read(dir.join("sub/entry")).unwrap(), b"cached");
    // Not empty any more: kept as it is.
    fs::write(dir.join("sub/entry"), b"local").unwrap();
    assert!(!s.fill_cache_mount("go", &blob, &info.diff_id).unwrap());
    assert_eq!(fs::read(dir.join("sub/entry")).unwrap(), b"local");
}
