//! Pull, push, login and logout against Debian's `docker-registry` (the reference distribution
//! server) started on 127.0.0.1: plain HTTP, and TLS with a CA the test makes plus htpasswd
//! auth. skopeo, umoci, htpasswd and openssl come from scripts/deps.sh.
#![allow(clippy::unwrap_used)]

mod common;

use common::registry::Registry;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use whittle_layer::{write_layer, WriteOptions};
use whittle_store::Store;

/// The tools, or None with a printed reason when they are missing and we may skip (not root and
/// not CI). As root or in CI a missing tool is a failure: run scripts/deps.sh.
fn tools() -> Option<()> {
    let have = |t: &str| Path::new("/usr/bin").join(t).is_file() || which(t);
    let missing: Vec<&str> = ["docker-registry", "skopeo", "umoci", "htpasswd", "openssl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    let must = rustix::process::geteuid().is_root() || std::env::var_os("CI").is_some();
    assert!(
        !must,
        "registry test tools missing: {missing:?}; run scripts/deps.sh"
    );
    eprintln!("skipped: {missing:?} not installed (run scripts/deps.sh as root)");
    None
}

fn which(t: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    // Shown with --nocapture: the messages users get.
    eprintln!("{err}");
    err
}

/// `whittle --root <root>` with its own docker config dir (no credentials unless a test logs
/// in) and the given certs dir.
fn whittle(root: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
    c.arg("--root")
        .arg(root)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("WHITTLE_CERTS_D", home.join("certs.d"))
        .stdin(Stdio::null());
    c
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

/// A plain-HTTP registry, and a store `<tmp>/a` holding a busybox image named
/// `<registry>/<repo>` with `config` (not pushed yet).
fn registry_and_image(
    repo: &str,
    config: serde_json::Value,
) -> (Registry, tempfile::TempDir, PathBuf, String) {
    let (reg, _) = Registry::start_with(None);
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let name = format!("{}/{repo}", reg.host());
    common::seed_busybox(&a, &name, config);
    (reg, t, a, name)
}

fn manifest_of(root: &Path, name: &str) -> String {
    let s = Store::open(root).unwrap();
    s.resolve(name).unwrap().image.manifest.to_string()
}

/// Blobs and images in a store (to show that a failed pull stored nothing).
fn store_contents(root: &Path) -> (usize, usize) {
    let blobs = fs::read_dir(root.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    let images = Store::open(root).unwrap().images().unwrap().len();
    (blobs, images)
}

#[test]
fn push_then_pull_round_trips_over_plain_http() {
    if tools().is_none() {
        return;
    }
    let (reg, t, a, name) =
        registry_and_image("whittle/busybox:1", serde_json::json!({"Cmd": ["sh"]}));
    let b = t.path().join("b");
    let local = manifest_of(&a, &name);

    let pushed = ok(whittle(&a, t.path()).args(["push", &name]));
    assert_eq!(pushed.trim(), local, "push prints the local digest");
    // The registry has it under the same digest.
    let remote = ok(skopeo().args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{name}"),
    ]));
    assert_eq!(remote.trim(), local);

    let out = ok(whittle(&b, t.path()).args(["pull", &name]));
    assert!(out.contains(&local), "{out}");
    assert_eq!(manifest_of(&b, &name), local);
    // A second pull downloads nothing.
    let again = whittle(&b, t.path())
        .args(["pull", &name])
        .output()
        .unwrap();
    assert!(again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!err.contains("downloading"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    // A second push uploads nothing; a push to another repository mounts the blobs.
    let out = whittle(&a, t.path())
        .args(["push", &name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("uploading"), "{err}");
    let other = format!("{}/whittle/copy:2", reg.host());
    let out = whittle(&a, t.path())
        .args(["push", &name, &other])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("mounted from whittle/busybox"),
        "{err}"
    );
    // Pinned by digest: the same image, found without a tag.
    let c = t.path().join("c");
    let pinned = format!("{}/whittle/copy@{local}", reg.host());
    ok(whittle(&c, t.path()).args(["pull", &pinned]));
    assert_eq!(store_contents(&c).1, 1);
    assert_eq!(manifest_of(&c, &local), local);
    // Unknown tags and repositories are named.
    let e = fails(
        whittle(&c, t.path()).args(["pull", &format!("{}/whittle/busybox:nope", reg.host())]),
    );
    assert!(
        e.contains("manifest nope not found in repository whittle/busybox"),
        "{e}"
    );
}

#[test]
fn layers_stored_uncompressed_are_pushed_compressed() {
    if tools().is_none() {
        return;
    }
    let (reg, _) = Registry::start_with(None);
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let name = format!("{}/whittle/plain:1", reg.host());
    // As a base loaded from a `docker save` archive is stored.
    common::seed_busybox_with(
        &a,
        &name,
        serde_json::json!({"Cmd": ["sh"]}),
        WriteOptions {
            compression: whittle_layer::Compression::None,
            ..WriteOptions::default()
        },
    );
    let local = manifest_of(&a, &name);
    let pushed = ok(whittle(&a, t.path()).args(["push", &name]));
    assert_ne!(
        pushed.trim(),
        local,
        "the compressed image has its own manifest"
    );
    let raw = ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let plain = Store::open(&a).unwrap();
    let stored = plain.resolve(&name).unwrap().image;
    let stored_size = plain.manifest(&stored).unwrap().layers[0].size;
    assert!(
        layer["size"].as_u64().unwrap() < stored_size * 3 / 4,
        "{layer} against {stored_size} bytes stored"
    );
    // Compressed once: pushed again, the same digest and nothing uploaded.
    let out = whittle(&a, t.path())
        .args(["push", &name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("uploading"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pushed.trim());
    // `--compression uncompressed` pushes the layers as stored.
    let other = format!("{}/whittle/plain:raw", reg.host());
    let raw_digest =
        ok(whittle(&a, t.path()).args(["push", "--compression", "uncompressed", &name, &other]));
    assert_eq!(raw_digest.trim(), local);
}

#[test]
fn skopeo_and_umoci_read_what_whittle_pushes() {
    if tools().is_none() || !common::privileged("umoci unpack") {
        return;
    }
    let (_registry, t, a, name) =
        registry_and_image("interop/busybox:1", serde_json::json!({"Cmd": ["sh"]}));
    ok(whittle(&a, t.path()).args(["push", &name]));
    let layout = t.path().join("layout");
    ok(skopeo().args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:bb", layout.display()),
    ]));
    let bundle = t.path().join("bundle");
    ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:bb", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    let out =
        ok(Command::new(bundle.join("rootfs/bin/busybox")).args(["echo", "pushed by whittle"]));
    assert_eq!(out, "pushed by whittle\n");
}

/// An image for `arch` whose one layer holds `/arch` naming it.
fn arch_image(s: &Store, arch: &str) -> whittle_store::ImageRecord {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("arch"), arch).unwrap();
    let mut w = s.blob_writer(None).unwrap();
    let (info, _) = write_layer(src.path(), &WriteOptions::default(), &mut w).unwrap();
    w.commit().unwrap();
    let cfg = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
    });
    s.write_image(
        &serde_json::to_vec(&cfg).unwrap(),
        &[(info.digest, info.media_type.to_string(), info.size)],
    )
    .unwrap()
}

#[test]
fn a_multi_arch_index_pushed_by_skopeo_pulls_the_right_platform() {
    if tools().is_none() {
        return;
    }
    let (reg, _) = Registry::start_with(None);
    let t = tempfile::tempdir().unwrap();
    // Two images in an OCI layout under one index, as a multi-platform build makes them.
    let host = whittle_dockerfile::Platform::host().arch;
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let layout = t.path().join("layout");
    let s = Store::open(&layout).unwrap();
    let (hi, oi) = (arch_image(&s, &host), arch_image(&s, other));
    let entry = |i: &whittle_store::ImageRecord, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": i.manifest.to_string(), "size": i.manifest_size,
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&oi, other), entry(&hi, &host)],
    }))
    .unwrap();
    let index_digest = s.put_bytes(&index).unwrap();
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest.to_string(), "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    let name = format!("{}/multi/arch:1", reg.host());
    ok(skopeo().args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{name}"),
    ]));

    let a = t.path().join("a");
    ok(whittle(&a, t.path()).args(["pull", &name]));
    assert_eq!(manifest_of(&a, &name), hi.manifest.to_string());
    let b = t.path().join("b");
    ok(whittle(&b, t.path()).args(["pull", "--platform", &format!("linux/{other}"), &name]));
    assert_eq!(manifest_of(&b, &name), oi.manifest.to_string());
    // Pinned to the index: resolved to the platform too.
    let c = t.path().join("c");
    let pinned = format!("{}/multi/arch@{index_digest}", reg.host());
    let out = ok(whittle(&c, t.path()).args(["pull", "-q", &pinned]));
    assert_eq!(out.trim(), hi.manifest.to_string());
    // A platform the index lacks is named, with what it has; nothing is stored.
    let d = t.path().join("d");
    let e = fails(whittle(&d, t.path()).args(["pull", "--platform", "linux/s390x", &name]));
    assert!(e.contains("has no image for linux/s390x"), "{e}");
    assert!(
        e.contains(&format!("linux/{host}")) && e.contains(&format!("linux/{other}")),
        "{e}"
    );
    assert_eq!(store_contents(&d), (0, 0));

    // The other platform pulled into the same store: both stay under the one tag, and the
    // tag pushes back as the very same index.
    ok(whittle(&a, t.path()).args(["pull", "--platform", &format!("linux/{other}"), &name]));
    let s = Store::open(&a).unwrap();
    let tagged = s.images().unwrap();
    let tagged: Vec<_> = tagged.iter().filter(|i| i.tags.contains(&name)).collect();
    assert_eq!(tagged.len(), 2, "{tagged:?}");
    let o = whittle_oci::Platform::parse(&format!("linux/{other}")).unwrap();
    assert_eq!(
        s.resolve_platform(&name, &o).unwrap().image.manifest,
        oi.manifest
    );
    let copy = format!("{}/multi/copy:1", reg.host());
    let pushed = ok(whittle(&a, t.path()).args(["push", "-q", &name, &copy]));
    assert_eq!(pushed.trim(), index_digest.to_string());
    let raw = ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{copy}"),
    ]));
    assert_eq!(raw.as_bytes(), &index[..]);
}

#[test]
fn a_multi_platform_build_pushes_an_index_that_skopeo_copies_whole() {
    if tools().is_none() || !common::privileged("whittle build") {
        return;
    }
    let (reg, t, a, base) = registry_and_image("base/busybox:1", serde_json::json!({}));
    let home = t.path();
    let ctx = home.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\n\
             RUN echo $TARGETARCH > /arch\nFROM scratch\nCOPY --from=build /arch /arch\n"
        ),
    )
    .unwrap();
    let app = format!("{}/app/multi:1", reg.host());
    let out = whittle(&a, home)
        .args([
            "build",
            "--network=none",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
            &app,
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let raw = ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{app}"),
    ]));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let pushed = whittle_oci::Digest::of_bytes(raw.as_bytes());
    assert!(err.contains(&format!("pushed {app}@{pushed}")), "{err}");
    // skopeo copies every platform into an OCI layout; whittle loads it back whole.
    let layout = home.join("layout");
    ok(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{app}"),
        &format!("oci:{}:app/multi:1", layout.display()),
    ]));
    let b = home.join("b");
    ok(whittle(&b, home).args(["load", "-i"]).arg(&layout));
    let s = Store::open(&b).unwrap();
    assert_eq!(s.images().unwrap().len(), 2);
    let arm64 = whittle_oci::Platform::parse("linux/arm64").unwrap();
    let img = s.resolve_platform("app/multi:1", &arm64);
    assert!(img.is_ok(), "{:?}", s.images().unwrap());
    // And a fresh store pulls each platform of it by name.
    let c = home.join("c");
    ok(whittle(&c, home).args(["pull", "--platform", "linux/arm64", &app]));
    let got = common::image_file(&c, &app, "arch");
    assert_eq!(got.as_deref(), Some(&b"arm64\n"[..]));
}

#[test]
fn a_tampered_blob_fails_naming_it_and_stores_nothing() {
    if tools().is_none() {
        return;
    }
    let (reg, t, a, name) = registry_and_image("tamper/busybox:1", serde_json::json!({}));
    ok(whittle(&a, t.path()).args(["push", &name]));
    let img = Store::open(&a).unwrap().resolve(&name).unwrap().image;
    let layer = img.layers[0].to_string();
    // Same size, different bytes: only the digest can tell.
    let f = reg.blob_file(&layer);
    let mut bytes = fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&f, bytes).unwrap();

    let b = t.path().join("b");
    let e = fails(whittle(&b, t.path()).args(["pull", &name]));
    assert!(
        e.contains(&format!("blob {layer} has wrong content")),
        "{e}"
    );
    assert!(e.contains("nothing was stored"), "{e}");
    let s = Store::open(&b).unwrap();
    assert!(!s.has_blob(&img.layers[0]));
    assert!(s.images().unwrap().is_empty());
    assert!(s.resolve(&name).is_err());
    // Temp files of the failed download are gone.
    let tmp = fs::read_dir(b.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(tmp, 0);
}

#[test]
fn tls_and_htpasswd_auth_login_push_pull_and_refusals() {
    if tools().is_none() {
        return;
    }
    let (reg, tls) = Registry::start_with(Some(("alice", "s3cret")));
    let tls = tls.unwrap();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    // The test CA is trusted through <certs.d>/<host>/ca.crt only.
    let certs = home.join("certs.d");
    fs::rename(&tls.certs_dir, &certs).unwrap();
    let a = home.join("a");
    let name = format!("{}/secure/busybox:1", reg.host());
    common::seed_busybox(&a, &name, serde_json::json!({}));

    // No credentials: refused, and told what to do.
    let e = fails(whittle(&a, home).args(["push", &name]));
    assert!(
        e.contains(&format!(
            "{}: authentication required for repository secure/busybox",
            reg.host()
        )),
        "{e}"
    );
    assert!(e.contains("whittle login"), "{e}");
    // Wrong password: login fails and saves nothing.
    let e = fails(whittle(&a, home).args(["login", "-u", "alice", "-p", "wrong", &reg.host()]));
    assert!(
        e.contains("authentication required") || e.contains("rejected"),
        "{e}"
    );
    assert!(!home.join("docker/config.json").exists());
    // Right password, from stdin.
    let mut c = whittle(&a, home);
    c.args(["login", "-u", "alice", "--password-stdin", &reg.host()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = fs::read_to_string(home.join("docker/config.json")).unwrap();
    assert!(
        cfg.contains(&reg.host()) && cfg.contains("\"auth\""),
        "{cfg}"
    );

    // Push in 64 kB chunks over TLS.
    let local = manifest_of(&a, &name);
    let out = ok(whittle(&a, home).args(["push", "--chunk-size", "64kB", &name]));
    assert_eq!(out.trim(), local);
    let b = home.join("b");
    ok(whittle(&b, home).args(["pull", &name]));
    assert_eq!(manifest_of(&b, &name), local);

    // Without the CA the certificate is not trusted: no silent downgrade to plain HTTP.
    let mut c = whittle(&home.join("x"), home);
    c.env("WHITTLE_CERTS_D", home.join("nowhere"))
        .args(["pull", &name]);
    let e = fails(&mut c);
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );

    // --insecure-registry skips verification (for registries with self-made certificates).
    let mut c = whittle(&home.join("y"), home);
    c.env("WHITTLE_CERTS_D", home.join("nowhere")).args([
        "pull",
        "--insecure-registry",
        &reg.host(),
        &name,
    ]);
    ok(&mut c);
    assert_eq!(manifest_of(&home.join("y"), &name), local);

    // Wrong stored credentials: a clear refusal, nothing stored.
    let wrong = base64_auth("alice:not-it");
    let cfg = serde_json::json!({"auths": {reg.host(): {"auth": wrong}}});
    fs::write(home.join("docker/config.json"), cfg.to_string()).unwrap();
    let d = home.join("d");
    let e = fails(whittle(&d, home).args(["pull", &name]));
    assert!(e.contains("credentials were rejected"), "{e}");
    assert_eq!(store_contents(&d), (0, 0));

    // Logout removes them.
    let out = ok(whittle(&d, home).args(["logout", &reg.host()]));
    assert!(out.contains("Removing login credentials"), "{out}");
    assert!(!fs::read_to_string(home.join("docker/config.json"))
        .unwrap()
        .contains(&reg.host()));
}

fn base64_auth(s: &str) -> String {
    let out = ok(Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{s}' | base64 -w0")));
    out.trim().to_string()
}

#[test]
fn build_pulls_missing_base_images_and_honours_pull_policies() {
    if tools().is_none() || !common::privileged("whittle build") {
        return;
    }
    let (reg, t, a, base) = registry_and_image(
        "base/busybox:1",
        serde_json::json!({"Env": ["FROM_BASE=yes"]}),
    );
    let home = t.path();
    ok(whittle(&a, home).args(["push", "-q", &base]));
    let ctx = home.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "hello\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY f /f\nENV FROM_APP=$FROM_BASE\n"),
    )
    .unwrap();

    let b = home.join("b");
    // Offline and the store lacks it: said so, with what to do.
    let e = fails(
        whittle(&b, home)
            .args(["build", "--pull=never", "-q", "-t", "app:1"])
            .arg(&ctx),
    );
    assert!(
        e.contains("not in the store and pulling is disabled (--pull=never)"),
        "{e}"
    );
    // By default the missing base is pulled, and its config reaches the plan.
    ok(whittle(&b, home)
        .args(["build", "-q", "-t", "app:1"])
        .arg(&ctx));
    let s = Store::open(&b).unwrap();
    let base_img = s.resolve(&base).unwrap().image;
    let app = s.resolve("app:1").unwrap().image;
    assert_eq!(app.layers[0], base_img.layers[0]);
    let (_, cfg) = s.manifest_and_config(&app).unwrap();
    let env = cfg["config"]["Env"].to_string();
    assert!(env.contains("FROM_APP=yes"), "{env}");
    // --pull checks the registry; nothing is downloaded again.
    let out = whittle(&b, home)
        .args(["build", "--pull", "-t", "app:1", "--progress", "plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("already exists") && !err.contains("downloading"),
        "{err}"
    );
    // With the registry gone, the default and --pull=never build from the store.
    drop(reg);
    ok(whittle(&b, home)
        .args(["build", "-q", "-t", "app:1"])
        .arg(&ctx));
    ok(whittle(&b, home)
        .args(["build", "--pull=never", "-q", "-t", "app:1"])
        .arg(&ctx));
    let e = fails(
        whittle(&b, home)
            .args(["build", "--pull", "-q", "-t", "app:1"])
            .arg(&ctx),
    );
    assert!(e.contains("connecting"), "{e}");
}

/// A Dockerfile pinning its base by digest and copying from another remote image builds with
/// both pulled; `--push` and `-o type=registry` upload the result, whose pushed digest is the
/// local one.
#[test]
fn build_from_a_digest_copy_from_an_image_and_push() {
    if tools().is_none() || !common::privileged("whittle build") {
        return;
    }
    let (reg, t, a, base) = registry_and_image("base/busybox:1", serde_json::json!({}));
    let home = t.path();
    let other = format!("{}/other/tools:2", reg.host());
    let digest = ok(whittle(&a, home).args(["push", "-q", &base]))
        .trim()
        .to_string();
    ok(whittle(&a, home).args(["push", "-q", &base, &other]));
    let ctx = home.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let pinned = format!("{}/base/busybox@{digest}", reg.host());
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {pinned}\nCOPY --from={other} /bin/busybox /copied\nRUN --mount=type=bind,from={other},target=/m cmp /m/bin/busybox /copied\n"
        ),
    )
    .unwrap();
    let b = home.join("b");
    let app = format!("{}/app/built:1", reg.host());
    let out = whittle(&b, home)
        .args(["build", "--network=none", "--push", "-t", &app])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let local = manifest_of(&b, &app);
    assert!(err.contains(&format!("pushed {app}@{local}")), "{err}");
    let s = Store::open(&b).unwrap();
    let built = s.resolve(&app).unwrap().image;
    let (_, cfg) = s.manifest_and_config(&built).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // -o type=registry,name=... pushes under that name; -t alone is not pushed then.
    let second = format!("{}/app/built:2", reg.host());
    let out_spec = format!("type=registry,name={second}");
    ok(whittle(&b, home)
        .args(["build", "--network=none", "-q", "-o", &out_spec])
        .arg(&ctx));
    // Both names pull (into a fresh store) to the digest built locally.
    let c = home.join("c");
    for name in [&app, &second] {
        let pulled = ok(whittle(&c, home).args(["pull", "-q", name.as_str()]));
        assert_eq!(pulled.trim(), local, "{name}");
    }
    // Without a name to push to: a clear error.
    let e = fails(
        whittle(&b, home)
            .args(["build", "--network=none", "-q", "--push"])
            .arg(&ctx),
    );
    assert!(e.contains("--push needs a name"), "{e}");
}

#[test]
fn a_build_with_attestations_pushes_them_and_skopeo_copies_them_whole() {
    if tools().is_none() || !common::privileged("whittle build") {
        return;
    }
    let (reg, t, a, base) = registry_and_image("base/busybox:1", serde_json::json!({}));
    let home = t.path();
    let ctx = home.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "x\n").unwrap();
    fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nCOPY f /f\n")).unwrap();
    let app = format!("{}/app/attested:1", reg.host());
    let out = whittle(&a, home)
        .args(["build", "--sbom", "--provenance", "--push", "-t", &app])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let raw = ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{app}"),
    ]));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{raw}");
    let image = entries[0]["digest"].as_str().unwrap();
    let att = &entries[1];
    assert_eq!(att["platform"]["os"], "unknown");
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(att["annotations"]["vnd.docker.reference.digest"], image);
    // The attestation manifest and its statements are on the registry.
    let am = ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{}/app/attested@{}",
            reg.host(),
            att["digest"].as_str().unwrap()
        ),
    ]));
    let am: serde_json::Value = serde_json::from_str(&am).unwrap();
    let types: Vec<&str> = am["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );
    for l in am["layers"].as_array().unwrap() {
        assert!(reg.blob_file(l["digest"].as_str().unwrap()).is_file());
    }
    // skopeo copies the index whole, digests unchanged; whittle loads it back with the
    // attestation manifest kept as one, not listed as an image.
    let layout = home.join("layout");
    ok(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{app}"),
        &format!("oci:{}:app/attested:1", layout.display()),
    ]));
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        top["manifests"][0]["digest"],
        whittle_oci::Digest::of_bytes(raw.as_bytes()).to_string()
    );
    let b = home.join("b");
    ok(whittle(&b, home).args(["load", "-i"]).arg(&layout));
    let listed = ok(whittle(&b, home).args(["images", "--format", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["Digest"], image);
    assert!(rows[0]["Attestations"]["Manifest"].is_string(), "{listed}");
}
