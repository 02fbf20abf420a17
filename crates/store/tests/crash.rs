//! Kills a writer process (writing blobs, images, tags, snapshots, cache records, and pruning)
//! with SIGKILL at random moments, then checks that `fsck` finds the
//! store clean (after dropping the killed writer's temp files) and that it stays usable.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use whittle_oci::Reference;
use whittle_store::{Digest, Store};

const CHILD_ENV: &str = "WHITTLE_CRASH_CHILD_ROOT";

/// The writer: runs only when spawned by `kill_writer_at_random_points` (it is `#[ignore]`d so a
/// normal run skips it), loops writing blobs, images, tags, snapshots and cache records until it
/// is killed.
#[test]
#[ignore = "helper process for kill_writer_at_random_points"]
fn crash_child_writer() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let s = Store::open(root).unwrap();
    let mut x: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for i in 0u64.. {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Layer-sized blobs (0.5–4 MiB) written in chunks, so kills land mid-write.
        let size = 512 * 1024 + (x % (3584 * 1024)) as usize;
        let mut w = s.blob_writer(None).unwrap();
        let chunk = vec![(i % 251) as u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            w.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        w.write_all(&i.to_le_bytes()).unwrap();
        let (layer, lsize) = w.commit().unwrap();
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
        );
        let img = s
            .write_image(
                cfg.as_bytes(),
                &[(
                    layer.clone(),
                    whittle_layer::MEDIA_TYPE_LAYER_TAR.to_string(),
                    lsize,
                )],
            )
            .unwrap();
        s.tag(
            &Reference::parse(&format!("crash:{}", i % 5)).unwrap(),
            &img.manifest,
        )
        .unwrap();
        let snap = s.prepare_snapshot().unwrap();
        std::fs::write(snap.path().join("f"), vec![1u8; 100_000]).unwrap();
        let id = Digest::of_bytes(&i.to_le_bytes());
        snap.commit(&id, None, &id).unwrap();
        s.put_cache(&format!("key{i}"), "r", Some(&id)).unwrap();
        if i % 4 == 2 {
            // Kills also land inside prune: deleting blobs, snapshots, records.
            s.prune(&whittle_store::PruneOptions {
                keep_storage: Some(2_000_000),
            })
            .unwrap();
        }
        if i % 7 == 3 {
            s.untag(&Reference::parse(&format!("crash:{}", (i + 1) % 5)).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn kill_writer_at_random_points() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    // Opened before the first kill and kept: its read handle stays open across the kills and
    // the repairs that follow them, and must keep reading what a fresh open reads.
    let watcher = Store::open(&root).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ std::process::id() as u64;
    let mut temp_dropped = 0;
    let start = Instant::now();
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + seed % 700));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let s = Store::open(&root).unwrap();
        let r = s.fsck(false).unwrap();
        assert!(
            r.is_clean(),
            "round {round}: store not clean after kill: {r:?}"
        );
        temp_dropped += r.temp_removed.len();
        let again = s.fsck(false).unwrap();
        assert!(
            again.temp_removed.is_empty(),
            "fsck must leave no temp files behind"
        );
        // Still usable: every tag resolves to an image whose blobs are all there.
        for img in s.images().unwrap() {
            assert!(img.image.blobs().all(|b| s.has_blob(b)));
        }
        s.put_bytes(format!("after round {round}").as_bytes())
            .unwrap();
        let tags = |s: &Store| {
            s.images()
                .unwrap()
                .into_iter()
                .map(|i| (i.tags.clone(), i.image.manifest.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tags(&watcher),
            tags(&s),
            "round {round}: the kept read handle reads another state"
        );
        // A killed writer's last records are seen through the kept handle.
        for i in 0..3 {
            assert_eq!(
                watcher.get_cache(&format!("key{i}")).unwrap(),
                s.get_cache(&format!("key{i}")).unwrap()
            );
        }
    }
    assert_eq!(watcher.db_opens().0, 1, "the kept read handle was reopened");
    let s = Store::open(&root).unwrap();
    assert!(
        !s.images().unwrap().is_empty(),
        "the writer never got far enough to record an image"
    );
    eprintln!(
        "12 kills in {:?}, {temp_dropped} temp files dropped by fsck",
        start.elapsed()
    );
}
