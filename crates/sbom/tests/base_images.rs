//! Package lists of the base images of `scripts/base-images.sh` against the package manager's
//! own view, and both SBOM formats checked by the reference validators.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use whittle_sbom::{catalog, Input, Options, PackageKind, Sbom};

fn sbom_of(archive: &std::path::Path) -> Sbom {
    let input = Input::DockerArchive(archive.to_path_buf());
    catalog(&input, None, &Options::default()).unwrap()
}

fn debs(s: &Sbom) -> BTreeSet<(String, String)> {
    s.packages
        .iter()
        .filter(|p| p.kind == PackageKind::Deb)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

#[test]
fn debian_matches_dpkg_query_on_the_rootfs() {
    let Some(a) = common::base_image("debian") else {
        return;
    };
    let admindir = a.parent().unwrap().join("../rootfs/debian/var/lib/dpkg");
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args(["-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\n"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let want: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("ii "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    assert!(want.len() > 50, "{want:?}");
    let s = sbom_of(&a);
    assert_eq!(debs(&s), want);
    let libc = s.packages.iter().find(|p| p.name == "libc6").unwrap();
    assert!(
        libc.purl.starts_with("pkg:deb/debian/libc6@"),
        "{}",
        libc.purl
    );
    assert!(libc.purl.contains("distro=debian-12"), "{}", libc.purl);
    assert!(
        libc.files.iter().any(|f| f.ends_with("/libc.so.6")),
        "files from libc6's .list"
    );
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn derived_image_keeps_each_package_in_its_layer() {
    let (Some(base), Some(py)) = (common::base_image("debian"), common::base_image("python"))
    else {
        return;
    };
    let b = sbom_of(&base);
    let p = sbom_of(&py);
    let base_set = debs(&b);
    assert!(base_set.is_subset(&debs(&p)));
    for pkg in p.packages.iter().filter(|x| x.kind == PackageKind::Deb) {
        let in_base = base_set.contains(&(pkg.name.clone(), pkg.version.clone()));
        // The status file is rewritten in layer 1; packages it already listed stay in layer 0.
        assert_eq!(pkg.layer, if in_base { 0 } else { 1 }, "{}", pkg.name);
    }
    assert!(p
        .packages
        .iter()
        .any(|x| x.name == "python3-minimal" && x.layer == 1));
}

fn validate(s: &Sbom) {
    let bin = common::validators();
    let dir = tempfile::tempdir().unwrap();
    let spdx = dir.path().join("sbom.spdx.json");
    let cdx = dir.path().join("sbom.cdx.json");
    std::fs::write(
        &spdx,
        serde_json::to_vec_pretty(&whittle_sbom::spdx::to_json(s)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &cdx,
        serde_json::to_vec_pretty(&whittle_sbom::cyclonedx::to_json(s)).unwrap(),
    )
    .unwrap();
    let out = Command::new(bin.join("pyspdxtools"))
        .arg("-i")
        .arg(&spdx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let script = "import sys\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
if err: print(err); sys.exit(1)\n";
    let out = Command::new(bin.join("python"))
        .args(["-c", script])
        .arg(&cdx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "CycloneDX validation: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validators_accept_both_formats() {
    let Some(a) = common::base_image("jdk") else {
        return;
    };
    let s = sbom_of(&a);
    assert!(s
        .packages
        .iter()
        .any(|p| p.kind == PackageKind::JavaArchive));
    validate(&s);
    // Deterministic: the same image gives the same bytes.
    let again = sbom_of(&a);
    assert_eq!(
        whittle_sbom::spdx::to_json(&s).to_string(),
        whittle_sbom::spdx::to_json(&again).to_string()
    );
    assert_eq!(
        whittle_sbom::cyclonedx::to_json(&s).to_string(),
        whittle_sbom::cyclonedx::to_json(&again).to_string()
    );
}

#[test]
fn validators_reject_a_broken_document() {
    // The validation itself can fail: a document without its version is refused.
    let Some(a) = common::base_image("debian") else {
        return;
    };
    let s = sbom_of(&a);
    let bin = common::validators();
    let dir = tempfile::tempdir().unwrap();
    let spdx = dir.path().join("bad.spdx.json");
    let mut v = whittle_sbom::spdx::to_json(&s);
    v.as_object_mut().unwrap().remove("spdxVersion");
    std::fs::write(&spdx, v.to_string()).unwrap();
    let out = Command::new(bin.join("pyspdxtools"))
        .arg("-i")
        .arg(&spdx)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
