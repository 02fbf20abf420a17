//! Crafted images: each cataloger's files, whiteouts and replaced files across layers, and
//! malformed inputs (huge METADATA, zip bomb jar, bad UTF-8, truncated ELF in go_binary.rs).
#![allow(clippy::unwrap_used)]

mod common;

use common::E;
use std::io::Write;
use whittle_sbom::{catalog, Input, Options, PackageKind, Sbom};

fn run(layers: &[Vec<E>]) -> Sbom {
    let dir = tempfile::tempdir().unwrap();
    let img = common::docker_archive(dir.path(), layers);
    catalog(&Input::DockerArchive(img), None, &Options::default()).unwrap()
}

fn names(s: &Sbom) -> Vec<(String, String, PackageKind, usize)> {
    s.packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.kind, p.layer))
        .collect()
}

fn jar(members: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (n, d) in members {
        w.start_file(*n, opts).unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn meta(name: &str, version: &str) -> Vec<u8> {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n\nbody\n")
        .into_bytes()
}

#[test]
fn every_cataloger_on_crafted_files() {
    let apk = b"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nF:lib\nR:libc.musl-x86_64.so.1\n\n".to_vec();
    let pom = b"groupId=org.example\nartifactId=lib\nversion=2.0\n";
    let j = jar(
        &[("META-INF/maven/org.example/lib/pom.properties", pom)],
        zip::CompressionMethod::Deflated,
    );
    let s = run(&[vec![
        E::File("lib/apk/db/installed", apk, 0o644),
        E::File(
            "usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
            meta("requests", "2.31.0"),
            0o644,
        ),
        E::File(
            "usr/lib/python3/dist-packages/six.egg-info/PKG-INFO",
            meta("six", "1.16.0"),
            0o644,
        ),
        E::File(
            "app/node_modules/@types/node/package.json",
            br#"{"name":"@types/node","version":"20.1.0","license":"MIT"}"#.to_vec(),
            0o644,
        ),
        E::File(
            "app/node_modules/left-pad/package.json",
            br#"{"name":"left-pad","version":"1.3.0","license":{"type":"WTFPL"}}"#.to_vec(),
            0o644,
        ),
        E::File(
            "app/node_modules/left-pad/lib/package.json",
            br#"{"name":"inner","version":"0"}"#.to_vec(),
            0o644,
        ),
        E::File("app/lib.jar", j, 0o644),
        E::File(
            "src/Cargo.lock",
            b"version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.190\"\n".to_vec(),
            0o644,
        ),
    ]]);
    let purls: Vec<&str> = s.packages.iter().map(|p| p.purl.as_str()).collect();
    assert_eq!(
        purls,
        [
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64",
            "pkg:pypi/requests@2.31.0",
            "pkg:pypi/six@1.16.0",
            "pkg:cargo/serde@1.0.190",
            "pkg:maven/org.example/lib@2.0",
            "pkg:npm/%40types/node@20.1.0",
            "pkg:npm/left-pad@1.3.0",
        ]
    );
    let lp = s.packages.iter().find(|p| p.name == "left-pad").unwrap();
    assert_eq!(lp.license.as_deref(), Some("WTFPL"));
    assert_eq!(lp.locations, ["/app/node_modules/left-pad/package.json"]);
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn whiteouts_and_replacements_remove_lower_packages() {
    let s = run(&[
        vec![
            E::File("a/one.dist-info/METADATA", meta("one", "1"), 0o644),
            E::File("a/two.dist-info/METADATA", meta("two", "1"), 0o644),
            E::File("b/three.dist-info/METADATA", meta("three", "1"), 0o644),
            E::File("c/four.dist-info/METADATA", meta("four", "1"), 0o644),
            E::File("d/five.dist-info/METADATA", meta("five", "1"), 0o644),
        ],
        vec![
            E::File("a/.wh.one.dist-info", vec![], 0o644), // whiteout of its directory
            E::File("a/two.dist-info/METADATA", meta("two", "2"), 0o644), // replaced
            E::File("b/.wh..wh..opq", vec![], 0o644),      // opaque directory
            E::Link("c", "/elsewhere"),                    // a directory turned link
            E::File("d/six.dist-info/METADATA", meta("six", "1"), 0o644),
        ],
    ]);
    assert_eq!(
        names(&s),
        [
            ("five".to_string(), "1".to_string(), PackageKind::Python, 0),
            ("six".to_string(), "1".to_string(), PackageKind::Python, 1),
            ("two".to_string(), "2".to_string(), PackageKind::Python, 1),
        ]
    );
}

#[test]
fn dpkg_history_and_distroless() {
    let st1 = b"Package: base\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n"
        .to_vec();
    let st2 = b"Package: base\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\nPackage: added\nStatus: install ok installed\nArchitecture: all\nVersion: 2:1.0+x\n\n".to_vec();
    let s = run(&[
        vec![
            E::File("var/lib/dpkg/status", st1, 0o644),
            E::File(
                "etc/os-release",
                b"ID=debian\nVERSION_ID=\"12\"\n".to_vec(),
                0o644,
            ),
        ],
        vec![E::File("usr/share/x", b"x".to_vec(), 0o644)],
        vec![
            E::File("var/lib/dpkg/status", st2, 0o644),
            E::File(
                "var/lib/dpkg/info/added.list",
                b"/.\n/usr/bin/added\n".to_vec(),
                0o644,
            ),
            E::File(
                "var/lib/dpkg/status.d/tzdata",
                b"Package: tzdata\nVersion: 2024a\nArchitecture: all\n".to_vec(),
                0o644,
            ),
        ],
    ]);
    assert_eq!(
        names(&s),
        [
            (
                "added".to_string(),
                "2:1.0+x".to_string(),
                PackageKind::Deb,
                2
            ),
            ("base".to_string(), "1".to_string(), PackageKind::Deb, 0),
            (
                "tzdata".to_string(),
                "2024a".to_string(),
                PackageKind::Deb,
                2
            ),
        ]
    );
    let added = &s.packages[0];
    assert_eq!(
        added.purl,
        "pkg:deb/debian/added@2%3A1.0%2Bx?arch=all&distro=debian-12"
    );
    assert_eq!(added.files, ["/usr/bin/added"]);
}

/// An ELF executable header whose section headers lie past the end of the file.
fn fake_elf() -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    b[16] = 2; // ET_EXEC
    b[18] = 62; // x86-64
    b[20] = 1;
    b[40..48].copy_from_slice(&1_000_000u64.to_le_bytes()); // e_shoff
    b[52] = 64; // e_ehsize
    b[58] = 64; // e_shentsize
    b[60] = 5; // e_shnum
    b
}

#[test]
fn malformed_inputs_are_skipped_with_notes() {
    // A METADATA whose headers are fine but whose body is huge: read only up to the bound.
    let mut huge = meta("big", "1");
    huge.extend(std::iter::repeat_n(b'x', 9 << 20));
    // Headers that never end within the bound.
    let endless: Vec<u8> = std::iter::repeat_n(b'y', 5 << 20).collect();
    // A zip bomb: a member that inflates to 64 MiB, read through a 1 MiB bound.
    let bomb = jar(
        &[("META-INF/MANIFEST.MF", &vec![b'A'; 64 << 20])],
        zip::CompressionMethod::Deflated,
    );
    assert!(bomb.len() < 1 << 20);
    let s = run(&[vec![
        E::File("a/big.dist-info/METADATA", huge, 0o644),
        E::File("a/endless.dist-info/METADATA", endless, 0o644),
        E::File(
            "a/bad.dist-info/METADATA",
            b"Name: bad\xff\xfe\nVersion: 1\n\n".to_vec(),
            0o644,
        ),
        E::File("app/bomb.jar", bomb, 0o644),
        E::File("app/notzip.jar", b"PK not really".to_vec(), 0o644),
        E::File(
            "app/node_modules/x/package.json",
            b"{\"name\": \xff".to_vec(),
            0o644,
        ),
        E::File("Cargo.lock", b"[[package]\n".to_vec(), 0o644),
        E::File("bin/fake", fake_elf(), 0o755),
    ]]);
    let got: Vec<&str> = s.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(got, ["bad\u{fffd}\u{fffd}", "big"]);
    let noted: Vec<&str> = s.notes.iter().map(|n| n.path.as_str()).collect();
    for p in [
        "/a/endless.dist-info/METADATA",
        "/app/notzip.jar",
        "/app/node_modules/x/package.json",
        "/Cargo.lock",
        "/bin/fake",
    ] {
        assert!(noted.contains(&p), "{p} not in {:?}", s.notes);
    }
    // The bomb's manifest was read through the bound and names nothing: no package, no note.
    assert!(!noted.contains(&"/app/bomb.jar"), "{:?}", s.notes);
}
