//! Writing layers from directories and overlay upper dirs, determinism, and extraction round trips.

#![allow(clippy::unwrap_used)]

mod common;

use common::{is_root, snapshot};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use whittle_layer::*;

fn populate(dir: &Path) {
    fs::create_dir_all(dir.join("etc/deep/er")).unwrap();
    fs::write(dir.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(dir.join("etc/deep/er/big"), vec![7u8; 3 << 20]).unwrap();
    let long = "l".repeat(120);
    fs::create_dir_all(dir.join(&long)).unwrap();
    fs::write(dir.join(&long).join("n".repeat(200)), b"long").unwrap();
    symlink("/etc/hosts", dir.join("hosts-link")).unwrap();
    symlink("x".repeat(150), dir.join("long-link")).unwrap();
    fs::write(dir.join("suid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(dir.join("a-hard"), b"shared").unwrap();
    fs::hard_link(dir.join("a-hard"), dir.join("z-hard")).unwrap();
    xattr::set(dir.join("etc/hosts"), "user.whittle", b"v1").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    if is_root() {
        rustix::fs::chown(
            dir.join("etc/hosts"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
        )
        .unwrap();
    }
}

fn opts(c: Compression, threads: usize) -> WriteOptions {
    WriteOptions {
        compression: c,
        threads,
        epoch: 0,
        ..WriteOptions::default()
    }
}

fn write(dir: &Path, o: &WriteOptions) -> (LayerInfo, Vec<u8>) {
    write_layer(dir, o, Vec::new()).unwrap()
}

fn decompressed(blob: &[u8]) -> Vec<u8> {
    let (_, mut r) = decompress(blob).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn deterministic_and_digests_match_content() {
    let t = tempfile::tempdir().unwrap();
    populate(t.path());
    let (a, blob_a) = write(t.path(), &opts(Compression::Gzip { level: 6 }, 1));
    let (b, blob_b) = write(t.path(), &opts(Compression::Gzip { level: 6 }, 2));
    let (c, _) = write(t.path(), &opts(Compression::Gzip { level: 6 }, 7));
    assert_eq!(
        blob_a, blob_b,
        "gzip output must not depend on thread count"
    );
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.digest, Digest::of_bytes(&blob_a));
    assert_eq!(a.size, blob_a.len() as u64);
    let tar = decompressed(&blob_a);
    assert_eq!(a.diff_id, Digest::of_bytes(&tar));
    assert_eq!(a.uncompressed_size, tar.len() as u64);
    assert_eq!(a.media_type, MEDIA_TYPE_LAYER_GZIP);

    // Touching files (mtime only) changes nothing with epoch 0.
    let f = fs::File::options()
        .write(true)
        .open(t.path().join("etc/hosts"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    let (d, _) = write(t.path(), &opts(Compression::Gzip { level: 6 }, 2));
    assert_eq!(d, a);

    let (z, zblob) = write(t.path(), &opts(Compression::Zstd { level: 3 }, 2));
    let (n, nblob) = write(t.path(), &opts(Compression::None, 2));
    assert_eq!(z.diff_id, a.diff_id);
    assert_eq!(n.diff_id, a.diff_id);
    assert_eq!(n.digest, n.diff_id);
    assert_eq!(nblob, tar);
    assert_eq!(decompressed(&zblob), tar);
    assert_eq!(z.media_type, MEDIA_TYPE_LAYER_ZSTD);
}

#[test]
fn tar_headers_are_sorted_numeric_pax_and_clamped() {
    let t = tempfile::tempdir().unwrap();
    populate(t.path());
    let future = 4_000_000_000u64;
    let f = fs::File::options()
        .write(true)
        .open(t.path().join("suid"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000))
        .unwrap();
    let o = WriteOptions {
        compression: Compression::None,
        epoch: future,
        threads: 1,
        ..WriteOptions::default()
    };
    let (_, blob) = write(t.path(), &o);
    let mut ar = tar::Archive::new(&blob[..]);
    let mut names = Vec::new();
    let mut saw_pax_xattr = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        assert_eq!(h.username_bytes(), Some(&b""[..]), "{name}");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "{name}");
        assert!(h.mtime().unwrap() <= future);
        if name == "suid" {
            assert_eq!(h.mtime().unwrap(), 1_000, "older mtimes are kept");
            assert_eq!(h.mode().unwrap(), 0o4755);
        }
        if name == "etc/hosts" {
            let x = e.pax_extensions().unwrap().unwrap();
            for ext in x {
                let ext = ext.unwrap();
                if ext.key().unwrap() == "SCHILY.xattr.user.whittle" {
                    saw_pax_xattr = ext.value_bytes() == b"v1";
                }
            }
            if is_root() {
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1234, 5678));
            }
        }
        if name == "z-hard" {
            assert_eq!(h.entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"a-hard");
        }
        if name == "long-link" {
            assert_eq!(e.link_name_bytes().unwrap().len(), 150);
        }
        names.push(name);
    }
    assert!(saw_pax_xattr);
    let long = format!("{}/{}", "l".repeat(120), "n".repeat(200));
    assert!(names.contains(&long), "{names:?}");
    // Depth-first, children sorted by bytes, each directory before its contents.
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(pos("a-hard") < pos("etc/"));
    assert!(pos("etc/") < pos("etc/deep/"));
    assert!(pos("etc/deep/er/big") < pos("etc/hosts"));
    assert!(pos("etc/hosts") < pos("fifo"));
    // Epoch 0 clamps everything to 0.
    let (_, blob0) = write(t.path(), &opts(Compression::None, 1));
    for e in tar::Archive::new(&blob0[..]).entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 0);
    }
}

#[test]
fn extraction_round_trip_keeps_metadata() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    populate(&src);
    let (info, blob) = write(&src, &opts(Compression::Gzip { level: 1 }, 2));
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let sum = extract_layer(&blob[..], &dst, &ExtractOptions::default()).unwrap();
    assert_eq!(sum.diff_id, info.diff_id);
    let a = snapshot(&src, None);
    let b = snapshot(&dst, None);
    assert_eq!(a, b);
    assert_eq!(
        xattr::get(dst.join("etc/hosts"), "user.whittle")
            .unwrap()
            .as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        fs::metadata(dst.join("z-hard")).unwrap().ino(),
        fs::metadata(dst.join("a-hard")).unwrap().ino()
    );
    assert_eq!(
        fs::symlink_metadata(dst.join("suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(fs::symlink_metadata(dst.join("etc")).unwrap().mtime(), 0);
    // Rewriting the extracted tree gives the same layer.
    let (again, _) = write(&dst, &opts(Compression::Gzip { level: 1 }, 1));
    // The extracted tree holds exactly the tar's mtimes; the source did not.
    assert!(info.mtimes_clamped > 0);
    assert_eq!(again.mtimes_clamped, 0);
    assert_eq!(
        LayerInfo {
            mtimes_clamped: 0,
            ..again
        },
        LayerInfo {
            mtimes_clamped: 0,
            ..info
        }
    );
}

#[test]
fn excluded_paths_are_left_out() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("proc/x")).unwrap();
    fs::write(t.path().join("keep"), b"k").unwrap();
    let o = WriteOptions {
        exclude: vec!["proc".into()],
        ..opts(Compression::None, 1)
    };
    let (_, blob) = write(t.path(), &o);
    let names: Vec<String> = tar::Archive::new(&blob[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(names, vec!["keep"]);
}

#[test]
fn overlay_upper_dir_becomes_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts (char 0:0, trusted xattrs) need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let up = t.path();
    fs::create_dir_all(up.join("opq/inner")).unwrap();
    fs::write(up.join("opq/inner/f"), b"f").unwrap();
    xattr::set(up.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
    fs::create_dir(up.join("uopq")).unwrap();
    xattr::set(up.join("uopq"), "user.overlay.opaque", b"y").unwrap();
    fs::create_dir(up.join("plain")).unwrap();
    xattr::set(up.join("plain"), "trusted.overlay.origin", b"zzz").unwrap();
    xattr::set(up.join("plain"), "user.keep", b"1").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        up.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    let o = WriteOptions {
        source: SourceKind::OverlayUpper,
        ..opts(Compression::None, 1)
    };
    let (_, blob) = write(up, &o);
    let mut got = Vec::new();
    for e in tar::Archive::new(&blob[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut keys = Vec::new();
        if let Some(x) = e.pax_extensions().unwrap() {
            for k in x {
                keys.push(k.unwrap().key().unwrap().to_string());
            }
        }
        got.push(format!(
            "{name} {:?} {}",
            e.header().entry_type(),
            keys.join(",")
        ));
    }
    assert_eq!(
        got,
        vec![
            ".wh.gone Regular ",
            "opq/ Directory ",
            "opq/.wh..wh..opq Regular ",
            "opq/inner/ Directory ",
            "opq/inner/f Regular ",
            "plain/ Directory SCHILY.xattr.user.keep",
            "uopq/ Directory ",
            "uopq/.wh..wh..opq Regular ",
        ]
    );
    // As a plain directory the device stays a device and no marker appears.
    let (_, plain) = write(up, &opts(Compression::None, 1));
    let n: Vec<String> = tar::Archive::new(&plain[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert!(
        n.contains(&"gone".to_string()) && !n.iter().any(|x| x.contains(".wh.")),
        "{n:?}"
    );
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn whiteouts_and_opaque_markers_apply_over_lower_layers() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let lower = tar_of(&[
        ("a", None),
        ("a/x", Some(b"x")),
        ("a/y", Some(b"y")),
        ("b", Some(b"b")),
        ("c/", None),
        ("c/d", Some(b"d")),
    ]);
    extract_layer(&lower[..], root, &ExtractOptions::default()).unwrap();
    // Upper: new a/z before the opaque marker in tar order must survive it.
    let upper = tar_of(&[
        ("a/", None),
        ("a/-new", Some(b"n")),
        ("a/.wh..wh..opq", Some(b"")),
        ("a/z", Some(b"z")),
        (".wh.b", Some(b"")),
        (".wh.c", Some(b"")),
        (".wh.missing", Some(b"")),
    ]);
    extract_layer(&upper[..], root, &ExtractOptions::default()).unwrap();
    let s = snapshot(root, None);
    let names: Vec<&str> = s.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["a", "a/-new", "a/z"]);
}

#[test]
fn overlay_mode_extraction_makes_overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay-mode whiteouts need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layer = tar_of(&[
        ("d/", None),
        ("d/.wh..wh..opq", Some(b"")),
        (".wh.gone", Some(b"")),
    ]);
    let o = ExtractOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ExtractOptions::default()
    };
    extract_layer(&layer[..], t.path(), &o).unwrap();
    let m = fs::symlink_metadata(t.path().join("gone")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert_eq!(
        xattr::get(t.path().join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!t.path().join("d/.wh..wh..opq").exists());
}

#[test]
fn devices_follow_policy() {
    if !is_root() {
        eprintln!("skipped: device nodes need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    b.append_data(&mut h, "null", &[][..]).unwrap();
    let blob = b.into_inner().unwrap();
    let o = ExtractOptions {
        devices: DevicePolicy::Create,
        ..ExtractOptions::default()
    };
    extract_layer(&blob[..], t.path(), &o).unwrap();
    let m = fs::symlink_metadata(t.path().join("null")).unwrap();
    assert_eq!(
        (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())),
        (1, 3)
    );
    assert_eq!(m.mode() & 0o7777, 0o666);
    let t2 = tempfile::tempdir().unwrap();
    let s = extract_layer(&blob[..], t2.path(), &ExtractOptions::default()).unwrap();
    assert_eq!(s.skipped_devices, 1);
    assert!(!t2.path().join("null").exists());
}

#[test]
fn gnu_tar_archives_extract_including_sparse_files_and_long_names() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let long = "d".repeat(150);
    fs::create_dir_all(src.join(&long)).unwrap();
    fs::write(src.join(&long).join("f"), b"deep").unwrap();
    let sparse = src.join("sparse");
    let f = fs::File::create(&sparse).unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new().append(true).open(&sparse).unwrap();
    std::io::Write::write_all(&mut f, b"tail").unwrap();
    drop(f);
    let archive = t.path().join("gnu.tar");
    let st = std::process::Command::new("tar")
        .args(["--format=gnu", "--sparse", "-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    extract_layer(
        fs::File::open(&archive).unwrap(),
        &dst,
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(dst.join(&long).join("f")).unwrap(), b"deep");
    let got = fs::read(dst.join("sparse")).unwrap();
    assert_eq!(got.len(), (8 << 20) + 4);
    assert!(got[..8 << 20].iter().all(|&b| b == 0));
    assert_eq!(&got[8 << 20..], b"tail");
}
