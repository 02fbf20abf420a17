//! Expected package lists (#17): the SBOM that `build --sbom` attests for the examples, against
//! what the image's own tools say, run inside it with `whittle run`:
//! - Debian packages (the python example, on whittle-test/python:bookworm-slim): `dpkg-query -W`;
//! - Python: `pip list` in the venv the example makes;
//! - Go on scratch (go-scratch): `go version -m` on the built binary, in the golang image;
//! - Rust (rust-distroless, `--sbom=scan-stages=true`): the builder stage's SBOM against the
//!   example's Cargo.lock (the binary carries no cargo-auditable data, as BuildKit's scanner
//!   would find nothing in it either).
//!
//! The SPDX predicates taken from the attestation (the image's, and a builder stage's) are also
//! checked by the SPDX reference validator, and `whittle sbom --format cyclonedx-json` of the
//! built image by the CycloneDX one (`scripts/sbom-validators.sh`).
//!
//! Each test loads only the base images it needs into a store of its own. Root is needed (RUN).
#![allow(clippy::unwrap_used)]

mod common;

use common::whittle;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use whittle_oci::attestation::PREDICATE_SPDX;
use whittle_store::{Store, TagTarget};

struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

/// A store holding the named base images (`scripts/base-images.sh` names), or `None` (with the
/// reason printed) when not root.
fn lab(bases: &[&str]) -> Option<Lab> {
    if !common::root_or_skip("building the examples") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    for b in bases {
        let a = common::base_image(b);
        let r = whittle(&root, &["load", "-i", &a.to_string_lossy()]);
        assert!(r.ok, "load {b}: {}", r.stderr);
    }
    Some(Lab { _tmp: tmp, root })
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn build(l: &Lab, dir: &str, tag: &str, extra: &[&str]) {
    let mut args = vec!["build", "--progress=plain", "-t", tag];
    args.extend_from_slice(extra);
    args.push(dir);
    let r = whittle(&l.root, &args);
    assert!(r.ok, "build {dir}: {}", r.stderr);
}

/// The SPDX statements of the attestation of `tag`'s only image, in the manifest's order.
fn spdx_statements(l: &Lab, tag: &str) -> Vec<Value> {
    let store = Store::open(&l.root).unwrap();
    let ix = match store.tag_target(&tag.parse().unwrap()).unwrap() {
        Some(TagTarget::Index(ix)) => ix,
        other => panic!("{tag}: an index with attestations, got {other:?}"),
    };
    let image = ix.images().next().unwrap().manifest.clone();
    let att = store
        .attestation_of(&image)
        .unwrap()
        .expect("an attestation");
    store
        .attestation_statements(&att)
        .unwrap()
        .into_iter()
        .filter(|s| s.predicate_type == PREDICATE_SPDX)
        .map(|s| {
            let v: Value =
                serde_json::from_slice(&store.read_statement(&s.digest).unwrap()).unwrap();
            assert_eq!(v["subject"][0]["digest"]["sha256"], image.hex());
            v
        })
        .collect()
}

/// The image's own SBOM: the first SPDX statement.
fn image_sbom(l: &Lab, tag: &str) -> Value {
    spdx_statements(l, tag).swap_remove(0)["predicate"].take()
}

/// (name, version) of the packages whose purl starts with `pkg:TYPE/`, and whose `sourceInfo`
/// holds `at` when given.
fn packages(doc: &Value, ty: &str, at: Option<&str>) -> BTreeSet<(String, String)> {
    let prefix = format!("pkg:{ty}/");
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["referenceLocator"].as_str().unwrap().starts_with(&prefix))
            })
        })
        .filter(|p| at.is_none_or(|a| p["sourceInfo"].as_str().unwrap().contains(a)))
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Standard output of `whittle run IMAGE ARGS...`.
fn run(l: &Lab, image: &str, args: &[&str]) -> String {
    let mut a = vec!["run", "--network=none", image];
    a.extend_from_slice(args);
    let r = whittle(&l.root, &a);
    assert!(r.ok, "run {args:?}: {}", r.stderr);
    r.stdout
}

/// The validators' venv `bin` directory (`scripts/sbom-validators.sh`).
fn validators() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sbom-validators.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The SPDX reference validator (`pyspdxtools`) accepts `doc`.
fn validate_spdx(doc: &Value, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sbom.spdx.json");
    std::fs::write(&f, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = Command::new(validators().join("pyspdxtools"))
        .arg("-i")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools on {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CycloneDX reference validator (cyclonedx-python-lib, schema 1.5, strict) accepts the
/// document in `file`.
fn validate_cyclonedx(file: &Path) {
    let script = "import sys\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
if err: print(err); sys.exit(1)\n";
    let out = Command::new(validators().join("python"))
        .args(["-c", script])
        .arg(file)
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
fn python_example_matches_dpkg_query_and_pip_list_inside() {
    let Some(l) = lab(&["python"]) else {
        return;
    };
    build(&l, &example("python-venv"), "py:1", &["--sbom"]);
    let doc = image_sbom(&l, "py:1");

    // Debian: what dpkg says is installed in the image.
    let out = run(
        &l,
        "py:1",
        &[
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Abbrev}\\t${Package}\\t${Version}\\n",
        ],
    );
    let want: BTreeSet<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (st, name, version) = (f.next()?, f.next()?, f.next()?);
            (st.trim() == "ii").then(|| (name.to_string(), version.to_string()))
        })
        .collect();
    assert!(want.len() > 50, "{out}");
    assert!(want.iter().any(|(n, _)| n == "python3-minimal"), "{out}");
    assert_eq!(packages(&doc, "deb", None), want);

    // Python: what pip says the venv holds (the interpreter's own packages are Debian's).
    let out = run(&l, "py:1", &["pip", "list", "--format=freeze"]);
    let want: BTreeSet<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert!(want.iter().any(|(n, _)| n == "pip"), "{out}");
    assert_eq!(packages(&doc, "pypi", None), want);
    assert_eq!(packages(&doc, "pypi", Some("/opt/venv/")), want);

    // The reference validators: the attested SPDX document, and the CycloneDX document of the
    // same image.
    validate_spdx(&doc, "the attested SBOM of the python example");
    let cdx = l._tmp.path().join("py.cdx.json");
    let r = whittle(
        &l.root,
        &[
            "sbom",
            "py:1",
            "--format",
            "cyclonedx-json",
            "-o",
            &cdx.to_string_lossy(),
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    validate_cyclonedx(&cdx);
}

/// `go version -m` output: the Go version as the stdlib package, and each module (`mod`,
/// `dep`, a replacement `=>` in place of what it replaces).
fn go_version_m(out: &str) -> BTreeSet<(String, String)> {
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    let go = first.rsplit(' ').next().unwrap();
    let mut set = BTreeSet::new();
    set.insert((
        "stdlib".to_string(),
        go.strip_prefix("go").unwrap().to_string(),
    ));
    let mut last: Option<(String, String)> = None;
    for l in lines {
        let f: Vec<&str> = l.split('\t').filter(|s| !s.is_empty()).collect();
        match f.as_slice() {
            ["mod" | "dep", path, version, ..] => {
                if let Some(p) = last.replace((path.to_string(), version.to_string())) {
                    set.insert(p);
                }
            }
            ["=>", path, version, ..] if *version != "(devel)" => {
                last = Some((path.to_string(), version.to_string()));
            }
            _ => {}
        }
    }
    set.extend(last);
    set
}

#[test]
fn go_example_on_scratch_matches_go_version_m() {
    let Some(l) = lab(&["golang"]) else {
        return;
    };
    build(&l, &example("go-scratch"), "go:1", &["--sbom"]);
    let doc = image_sbom(&l, "go:1");
    // The binary, read by the Go toolchain of the builder's image.
    let ctx = l._tmp.path().join("check");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM whittle-test/golang:bookworm\nCOPY --from=go:1 /hello /hello\n",
    )
    .unwrap();
    build(&l, &ctx.to_string_lossy(), "gocheck:1", &[]);
    let out = run(&l, "gocheck:1", &["go", "version", "-m", "/hello"]);
    let want = go_version_m(&out);
    assert!(
        want.contains(&("example.com/hello".into(), "(devel)".into())),
        "{out}"
    );
    assert_eq!(packages(&doc, "golang", None), want, "{out}");
    // Nothing else: scratch has no package database.
    assert_eq!(
        doc["packages"].as_array().unwrap().len(),
        want.len() + 1,
        "the image and its Go modules only"
    );
    validate_spdx(&doc, "the attested SBOM of the go-scratch example");
}

#[test]
fn go_version_m_is_parsed_with_replacements() {
    let out = "/hello: go1.21.3\n\tpath\texample.com/hello\n\tmod\texample.com/hello\t(devel)\t\n\
\tdep\tgolang.org/x/text\tv0.3.0\th1:abc=\n\tdep\texample.com/old\tv1.0.0\n\t=>\texample.com/new\tv1.1.0\th1:x=\n\
\tdep\texample.com/local\tv1.2.0\n\t=>\t../local\t(devel)\t\n\tbuild\tCGO_ENABLED=0\n";
    let got = go_version_m(out);
    let want: BTreeSet<(String, String)> = [
        ("stdlib", "1.21.3"),
        ("example.com/hello", "(devel)"),
        ("golang.org/x/text", "v0.3.0"),
        ("example.com/new", "v1.1.0"),
        ("example.com/local", "v1.2.0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

/// `[[package]]` names and versions of a Cargo.lock.
fn cargo_lock(text: &str) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    let mut name = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = l.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                set.insert((n, v.trim_matches('"').to_string()));
            }
        }
    }
    set
}

#[test]
fn rust_example_builder_stage_matches_cargo_lock() {
    let Some(l) = lab(&["rust", "cc"]) else {
        return;
    };
    build(
        &l,
        &example("rust-distroless"),
        "rs:1",
        &["--sbom=scan-stages=true"],
    );
    let stmts = spdx_statements(&l, "rs:1");
    // The image's SBOM, then the builder stage's, as BuildKit's scanner writes one document a
    // stage (`sbom-builder`): all about the image.
    assert_eq!(stmts.len(), 2, "{stmts:?}");
    let image = &stmts[0]["predicate"];
    let stage = &stmts[1]["predicate"];
    assert!(
        stage["name"].as_str().unwrap().contains("builder"),
        "{}",
        stage["name"]
    );
    let lock =
        std::fs::read_to_string(Path::new(&example("rust-distroless")).join("Cargo.lock")).unwrap();
    let want = cargo_lock(&lock);
    assert!(want.contains(&("greet".into(), "0.1.0".into())), "{lock}");
    assert_eq!(packages(stage, "cargo", Some("/app/Cargo.lock")), want);
    // The final image holds the binary only: no Cargo.lock, and no cargo-auditable data.
    assert!(packages(image, "cargo", None).is_empty());
    // The builder stage's toolchain is Debian's: rustc and cargo are there, not in the image.
    let stage_debs = packages(stage, "deb", None);
    assert!(
        stage_debs.iter().any(|(n, _)| n == "rustc"),
        "{stage_debs:?}"
    );
    assert!(!packages(image, "deb", None)
        .iter()
        .any(|(n, _)| n == "rustc"));
    validate_spdx(image, "the attested SBOM of the rust example");
    validate_spdx(
        stage,
        "the attested SBOM of the rust example's builder stage",
    );
}
