//! A cache-mount restore killed part-way leaves `cache-mounts/.restore-*`; the next restore
//! removes it, and never a restore that is still running (its lock is held).
#![allow(clippy::unwrap_used)]

use std::fs;
use whittle_layer::{write_layer, WriteOptions};
use whittle_store::{FileLock, Store};

#[test]
fn the_next_restore_removes_the_debris_of_a_killed_one_and_not_a_running_one() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("root")).unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("entry"), b"cached").unwrap();
    let w = s.blob_writer(None).unwrap();
    let (info, w) = write_layer(&src, &WriteOptions::default(), w).unwrap();
    let (blob, _) = w.commit().unwrap();

    let mounts = s.root().join("cache-mounts");
    // A restore killed part-way: its dir, half filled; its lock file, held by nobody.
    let dead = mounts.join(".restore-dead01");
    fs::create_dir_all(dead.join("half")).unwrap();
    fs::write(dead.join("half/file"), b"x").unwrap();
    fs::write(s.root().join("locks/restore-dead01.lock"), b"").unwrap();
    // One without a lock file at all (killed before the lock was made can't happen: the lock
    // comes first; but a lock file removed by hand is the same as a free one).
    let orphan = mounts.join(".restore-orphan");
    fs::create_dir_all(&orphan).unwrap();
    // A restore running in another process: its lock is held.
    let live = mounts.join(".restore-live01");
    fs::create_dir_all(&live).unwrap();
    let held = FileLock::exclusive(&s.root().join("locks/restore-live01.lock")).unwrap();

    let dir = s.cache_mount("go", false).unwrap().path;
    assert!(s.fill_cache_mount("go", &blob, &info.diff_id).unwrap());
    assert_eq!(fs::read(dir.join("entry")).unwrap(), b"cached");
    assert!(!dead.exists(), "the killed restore's dir is removed");
    assert!(!s.root().join("locks/restore-dead01.lock").exists());
    assert!(!orphan.exists());
    assert!(live.exists(), "a running restore is left alone");
    // Nothing of this restore is left: its dir was renamed, its lock removed.
    let mut left: Vec<String> = fs::read_dir(&mounts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    left.sort();
    assert_eq!(left, vec![".restore-live01".to_string()]);
    let locks: Vec<String> = fs::read_dir(s.root().join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restore-"))
        .collect();
    assert_eq!(locks, vec!["restore-live01.lock".to_string()]);
    // Once that one's process is gone, the next use removes it too.
    drop(held);
    assert_eq!(s.remove_restore_debris().unwrap(), vec![live.clone()]);
    assert!(!live.exists());
}
