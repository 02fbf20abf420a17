//! A Go binary on scratch, built here from a module with a dependency replaced by a local
//! module (no network), against `go version -m`.
#![allow(clippy::unwrap_used)]

mod common;

use common::E;
use std::collections::BTreeSet;
use std::process::Command;
use whittle_sbom::{catalog, Input, Options, PackageKind};

#[test]
fn go_binary_on_scratch_matches_go_version_m() {
    if Command::new("go").arg("version").output().is_err() {
        // CI runs as root and installs it; elsewhere say why nothing ran.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout
            .starts_with(b"0\n");
        assert!(!root, "golang-go is missing: apt-get install golang-go");
        eprintln!("skipped: no go toolchain");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("dep")).unwrap();
    std::fs::write(d.join("go.mod"), "module example.com/hello\n\ngo 1.19\n\nrequire example.com/dep v1.2.3\n\nreplace example.com/dep => ./dep\n").unwrap();
    std::fs::write(
        d.join("main.go"),
        "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n",
    )
    .unwrap();
    std::fs::write(d.join("dep/go.mod"), "module example.com/dep\n").unwrap();
    std::fs::write(
        d.join("dep/dep.go"),
        "package dep\n\nfunc Hello() string { return \"hi\" }\n",
    )
    .unwrap();
    let st = Command::new("go")
        .args(["build", "-o", "hello", "."])
        .current_dir(d)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", d.join("cache"))
        .env("GOPATH", d.join("gopath"))
        .env("CGO_ENABLED", "0")
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("go")
        .args(["version", "-m", "hello"])
        .current_dir(d)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // Expected: the main module, each dep (a versioned replacement in its place), the stdlib.
    let mut want = BTreeSet::new();
    let go_version = text
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_start_matches("go")
        .to_string();
    want.insert(("stdlib".to_string(), go_version));
    let mut last: Option<(String, String)> = None;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.trim_start().split('\t').collect();
        match f[0] {
            "mod" | "dep" => {
                if let Some(x) = last.take() {
                    want.insert(x);
                }
                last = Some((f[1].to_string(), f[2].to_string()));
            }
            "=>" if f.len() > 2 && !f[2].is_empty() && f[2] != "(devel)" => {
                last = Some((f[1].to_string(), f[2].to_string()));
            }
            _ => {}
        }
    }
    want.extend(last);
    assert!(
        want.contains(&("example.com/dep".to_string(), "v1.2.3".to_string())),
        "{text}"
    );

    let bin = std::fs::read(d.join("hello")).unwrap();
    let img = common::docker_archive(d, &[vec![E::File("hello", bin, 0o755)]]);
    let s = catalog(&Input::DockerArchive(img), None, &Options::default()).unwrap();
    let got: BTreeSet<(String, String)> = s
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::GoModule)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(got, want);
    let dep = s
        .packages
        .iter()
        .find(|p| p.name == "example.com/dep")
        .unwrap();
    assert_eq!(dep.purl, "pkg:golang/example.com/dep@v1.2.3");
    assert_eq!(dep.locations, ["/hello"]);
    assert!(s.notes.is_empty(), "{:?}", s.notes);

    // Truncated: a clear note, no package, no panic.
    let cut = std::fs::read(d.join("hello")).unwrap()[..20_000].to_vec();
    let img = common::docker_archive(d, &[vec![E::File("hello", cut, 0o755)]]);
    let s = catalog(&Input::DockerArchive(img), None, &Options::default()).unwrap();
    assert!(s.packages.is_empty());
    assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
}
