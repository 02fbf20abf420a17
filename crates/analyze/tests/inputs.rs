//! Inputs read without the store (docker-archive, oci-archive, OCI directory, classic docker
//! archives with symlinked layers), CI rules, and hostile input.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use whittle_analyze::{analyze, AnalyzeError, CiRules, Input, Limits, Options, RuleStatus};
use whittle_oci::Reference;
use whittle_store::{save, ArchiveFormat, Store};

fn three(s: &Store) {
    image(
        s,
        "three:1",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "a", 100, 1, 0o644);
                file(d, "b", 50, 2, 0o644);
            }),
            ("make a", &|d| file(d, "a", 200, 3, 0o644)),
            ("make a again", &|d| file(d, "a", 300, 4, 0o644)),
        ],
    );
}

fn save_as(s: &Store, name: &str, format: ArchiveFormat, out: &Path) {
    let t = s.resolve(name).unwrap();
    let f = File::create(out).unwrap();
    save(
        s,
        &[(Some(Reference::parse(name).unwrap()), t.image)],
        format,
        f,
    )
    .unwrap();
}

#[test]
fn archives_and_layouts_give_the_same_figures_as_the_store() {
    let (t, s) = store();
    three(&s);
    let want = run(&s, "three:1");
    let docker = t.path().join("d.tar");
    let oci = t.path().join("o.tar");
    save_as(&s, "three:1", ArchiveFormat::Docker, &docker);
    save_as(&s, "three:1", ArchiveFormat::Oci, &oci);
    let dir = t.path().join("layout");
    fs::create_dir_all(&dir).unwrap();
    tar::Archive::new(File::open(&oci).unwrap())
        .unpack(&dir)
        .unwrap();
    let blobs_before = fs::read_dir(s.root().join("blobs/sha256")).unwrap().count();
    for input in [
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}", oci.display()),
        format!("oci:{}", dir.display()),
        format!("oci:{}:three:1", dir.display()),
    ] {
        let a = analyze(&Input::parse(&input).unwrap(), None, &opts()).unwrap();
        assert_eq!(
            a.image.efficiency_score, want.image.efficiency_score,
            "{input}"
        );
        assert_eq!(a.image.file_reference, want.image.file_reference, "{input}");
        assert_eq!(a.layer.len(), 3);
        assert_eq!(a.layer[2].created_by.as_deref(), Some("make a again"));
        assert_eq!(a.layer[2].digest_id, want.layer[2].digest_id);
        assert_eq!(a.findings.len(), want.findings.len());
    }
    // Nothing was added to the store.
    let blobs_after = fs::read_dir(s.root().join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs_before, blobs_after);
    let e = analyze(
        &Input::parse(&format!("oci:{}:nope", dir.display())).unwrap(),
        None,
        &opts(),
    );
    assert!(matches!(e, Err(AnalyzeError::InvalidImage(_))), "{e:?}");
}

/// A classic `docker save` archive: `<id>/layer.tar`, the second image layer a symlink to the
/// first (docker links identical layers).
#[test]
fn classic_docker_archive_with_a_symlinked_layer() {
    let t = tempfile::tempdir().unwrap();
    let layer_dir = tempfile::tempdir().unwrap();
    file(layer_dir.path(), "etc/motd", 1234, 1, 0o644);
    let wo = whittle_layer::WriteOptions {
        compression: whittle_layer::Compression::None,
        ..Default::default()
    };
    let (info, layer) = whittle_layer::write_layer(layer_dir.path(), &wo, Vec::new()).unwrap();
    let cfg = serde_json::json!({
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string(), info.diff_id.to_string()]},
        "history": [{"created_by": "ADD motd"}, {"created_by": "ADD motd again"}]
    });
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let manifest = serde_json::json!([{
        "Config": "cfg.json", "RepoTags": ["classic:1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"]
    }]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let path = t.path().join("classic.tar");
    let mut b = tar::Builder::new(File::create(&path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", &manifest);
    add("cfg.json", &cfg);
    add("aaa/layer.tar", &layer);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    b.finish().unwrap();
    drop(b);
    let a = analyze(
        &Input::parse(&format!("docker-archive:{}", path.display())).unwrap(),
        None,
        &opts(),
    )
    .unwrap();
    assert!(a.image.name.ends_with("(classic:1)"), "{}", a.image.name);
    assert_eq!(a.layer.len(), 2);
    assert_eq!(a.layer[1].id, "bbb");
    assert_eq!(a.layer[1].command, "ADD motd again");
    // The same file, same content, in both layers: dive counts it twice.
    assert_eq!(a.image.wasted_bytes, 2468);
    assert_eq!(a.image.file_reference[0].file, "/etc/motd");
}

#[test]
fn ci_rules_with_dives_names_and_defaults() {
    let (_t, s) = store();
    three(&s);
    let a = run(&s, "three:1");
    // Efficiency 150/650 < 0.9 and user wasted 600/500 > 0.1: dive's defaults fail both.
    let r = CiRules::default().evaluate(&a);
    assert!(!r.pass);
    let status: Vec<(&str, RuleStatus)> = r.results.iter().map(|x| (x.rule, x.status)).collect();
    assert_eq!(
        status,
        [
            ("highestUserWastedPercent", RuleStatus::Fail),
            ("highestWastedBytes", RuleStatus::Skip),
            ("lowestEfficiency", RuleStatus::Fail),
        ]
    );
    let mut ok = CiRules {
        lowest_efficiency: "0.2".into(),
        highest_wasted_bytes: "600".into(),
        highest_user_wasted_percent: "disabled".into(),
    };
    assert!(ok.evaluate(&a).pass);
    ok.highest_wasted_bytes = "599B".into();
    let r = ok.evaluate(&a);
    assert!(!r.pass);
    assert!(r.results[1]
        .message
        .contains("wasted-bytes=600 > threshold=599"));
    let mut file = CiRules::default();
    file.apply_dive_ci("rules:\n  lowestEfficiency: 1.5\n")
        .unwrap();
    let r = file.evaluate(&a);
    assert!(r.misconfigured && !r.pass);
    assert!(r.results[0].message.contains("outside allowed range"));
}

fn layer_tar(entries: &dyn Fn(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entries(&mut b);
    b.into_inner().unwrap()
}

/// Stores one raw layer as an image and analyses it with `limits`.
fn raw_image(layer: Vec<u8>, limits: Limits) -> Result<whittle_analyze::Analysis, AnalyzeError> {
    let (_t, s) = store();
    let mut w = s.blob_writer(None).unwrap();
    w.write_all(&layer).unwrap();
    let (d, size) = w.commit().unwrap();
    let cfg = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [d.to_string()]}});
    let img = s
        .write_image(
            &serde_json::to_vec(&cfg).unwrap(),
            &[(d, whittle_layer::MEDIA_TYPE_LAYER_TAR.to_string(), size)],
        )
        .unwrap();
    s.tag(&Reference::parse("raw:1").unwrap(), &img.manifest)
        .unwrap();
    let o = Options {
        limits,
        min_finding_bytes: 0,
        ..Options::default()
    };
    analyze(&Input::Store("raw:1".into()), Some(&s), &o)
}

fn reg(b: &mut tar::Builder<Vec<u8>>, name: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn hostile_layers() {
    // `..` cannot leave the image's root: the entry is the image's /etc/passwd.
    let tar = layer_tar(&|b| reg(b, b"../../etc/passwd", b"root:x:0:0::/:/bin/sh\n"));
    let a = raw_image(tar, Limits::default()).unwrap();
    assert_eq!(a.layer[0].size_bytes, 22);
    assert_eq!(a.image.files, 1);
    // A PAX record bigger than the cap is refused before it is read whole.
    let tar = layer_tar(&|b| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let body = vec![b'x'; 2 << 20];
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, &body[..]).unwrap();
        reg(b, b"f", b"1");
    });
    let e = raw_image(tar, Limits::default()).unwrap_err();
    assert!(matches!(e, AnalyzeError::Limit { .. }), "{e}");
    // Too many entries.
    let tar = layer_tar(&|b| {
        for i in 0..20 {
            reg(b, format!("f{i}").as_bytes(), b"x");
        }
    });
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let e = raw_image(tar.clone(), limits).unwrap_err();
    assert!(e.to_string().contains("more than 10"), "{e}");
    assert!(raw_image(tar, Limits::default()).is_ok());
    // Not a tar at all.
    let e = raw_image(
        b"this is not a tar archive, not at all, no".repeat(20),
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, AnalyzeError::Layer { .. }), "{e}");
}

#[test]
fn hostile_archives() {
    let t = tempfile::tempdir().unwrap();
    // A compressed archive cannot be read in place: refused with what to do.
    let gz = t.path().join("a.tar.gz");
    fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let e = analyze(
        &Input::parse(&format!("docker-archive:{}", gz.display())).unwrap(),
        None,
        &opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("gunzip"), "{e}");
    // An OCI layout whose index names a blob by a path, not a digest.
    let dir = t.path().join("layout");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../etc/passwd","size":1}]}"#,
    )
    .unwrap();
    let e = analyze(
        &Input::parse(&format!("oci:{}", dir.display())).unwrap(),
        None,
        &opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("bad digest"), "{e}");
    // An image in the store without a store.
    let e = analyze(&Input::parse("app:1").unwrap(), None, &opts()).unwrap_err();
    assert!(matches!(e, AnalyzeError::NeedStore(_)));
}
