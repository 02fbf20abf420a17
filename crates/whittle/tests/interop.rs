//! Interop with real tools from Debian (skopeo, umoci; installed by scripts/deps.sh): they read
//! our store (an OCI layout) and our archives, and archives they make load into whittle.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use whittle_layer::{write_layer, Compression, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// The tools, or None with a printed reason when they are missing and we may skip (not root
/// and not CI). As root or in CI a missing tool is a failure: run scripts/deps.sh.
fn tools() -> Option<()> {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["skopeo", "umoci"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let must = root || std::env::var_os("CI").is_some();
    assert!(
        !must,
        "interop tools missing: {missing:?}; run scripts/deps.sh"
    );
    eprintln!("skipped: {missing:?} not installed (run scripts/deps.sh as root)");
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn whittle(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whittle"));
    c.arg("--root").arg(root);
    c
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

/// A busybox image: static busybox from Debian (or a generated stand-in), applet symlinks, a
/// hard link, /etc files; two layers, the second gzip and the first zstd-free plain gzip too.
fn busybox_image(root: &Path, tag: &str) -> whittle_store::ImageRecord {
    let s = Store::open(root).unwrap();
    let base = tempfile::tempdir().unwrap();
    let b = base.path();
    fs::create_dir_all(b.join("bin")).unwrap();
    fs::create_dir_all(b.join("etc")).unwrap();
    match fs::read("/bin/busybox") {
        Ok(bytes) => fs::write(b.join("bin/busybox"), bytes).unwrap(),
        Err(_) => fs::write(b.join("bin/busybox"), vec![0x7fu8; 300_000]).unwrap(),
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(b.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("busybox", b.join("bin/sh")).unwrap();
    symlink("/bin/busybox", b.join("bin/ls")).unwrap();
    fs::write(b.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::hard_link(b.join("etc/passwd"), b.join("etc/passwd-")).unwrap();
    let app = tempfile::tempdir().unwrap();
    fs::create_dir_all(app.path().join("srv")).unwrap();
    fs::write(app.path().join("srv/index.html"), "<h1>whittle</h1>\n").unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for dir in [b, app.path()] {
        let mut w = s.blob_writer(None).unwrap();
        let o = WriteOptions {
            compression: Compression::Gzip { level: 6 },
            epoch: 0,
            ..WriteOptions::default()
        };
        let (info, _) = write_layer(dir, &o, &mut w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        layers.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "created": "2024-05-01T10:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "busybox"}, {"created_by": "COPY srv /srv"}]
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &layers)
        .unwrap();
    s.tag(&Reference::parse(tag).unwrap(), &img.manifest)
        .unwrap();
    img
}

fn inspect_json(target: &str) -> serde_json::Value {
    serde_json::from_str(&run(skopeo().args(["inspect", target]))).unwrap()
}

struct Env {
    _t: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    img: whittle_store::ImageRecord,
}

fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let root = dir.join("root");
    let img = busybox_image(&root, "interop/busybox:1.0");
    Env {
        _t: t,
        dir,
        root,
        img,
    }
}

#[test]
fn skopeo_reads_the_store_layout_and_our_archives() {
    if tools().is_none() {
        return;
    }
    let e = env();
    let layers: Vec<String> = e.img.layers.iter().map(|d| d.to_string()).collect();
    // The store root is an OCI layout; the ref.name annotation is the tag.
    let v = inspect_json(&format!("oci:{}:1.0", e.root.display()));
    assert_eq!(v["Digest"], e.img.manifest.as_str());
    assert_eq!(v["Layers"], serde_json::json!(layers));
    assert_eq!(v["Env"][0], "PATH=/bin");

    let oci = e.dir.join("img-oci.tar");
    run(whittle(&e.root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("interop/busybox:1.0"));
    let v = inspect_json(&format!("oci-archive:{}:1.0", oci.display()));
    assert_eq!(v["Digest"], e.img.manifest.as_str());
    assert_eq!(v["Layers"], serde_json::json!(layers));

    let docker = e.dir.join("img-docker.tar");
    run(whittle(&e.root)
        .args(["save", "--format", "docker", "-o"])
        .arg(&docker)
        .arg("interop/busybox:1.0"));
    // Selecting the image by its RepoTags entry proves skopeo reads our manifest.json names.
    let v = inspect_json(&format!(
        "docker-archive:{}:interop/busybox:1.0",
        docker.display()
    ));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let cfg = run(skopeo()
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", docker.display())));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // skopeo copy from each of them into a fresh OCI layout keeps the manifest.
    for (i, src) in [
        format!("oci:{}:1.0", e.root.display()),
        format!("oci-archive:{}:1.0", oci.display()),
    ]
    .iter()
    .enumerate()
    {
        let dst = e.dir.join(format!("copy{i}"));
        run(skopeo()
            .args(["copy", src])
            .arg(format!("oci:{}:copied", dst.display())));
        let v = inspect_json(&format!("oci:{}:copied", dst.display()));
        assert_eq!(v["Digest"], e.img.manifest.as_str(), "copy of {src}");
    }
    let dst = e.dir.join("from-docker");
    run(skopeo()
        .arg("copy")
        .arg(format!("docker-archive:{}", docker.display()))
        .arg(format!("oci:{}:d", dst.display())));
    assert_eq!(
        inspect_json(&format!("oci:{}:d", dst.display()))["Layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn umoci_unpacks_our_layout_and_archive() {
    if tools().is_none() {
        return;
    }
    let e = env();
    let check = |bundle: &Path| {
        let rootfs = bundle.join("rootfs");
        let want = fs::read("/bin/busybox").ok();
        let got = fs::read(rootfs.join("bin/busybox")).unwrap();
        if let Some(w) = want {
            assert_eq!(got, w);
        }
        assert_eq!(
            fs::read_link(rootfs.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read_link(rootfs.join("bin/ls")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("srv/index.html")).unwrap(),
            "<h1>whittle</h1>\n"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(rootfs.join("etc/passwd")).unwrap().ino(),
            fs::metadata(rootfs.join("etc/passwd-")).unwrap().ino(),
            "hard link kept"
        );
        let cfg: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["process"]["args"][0], "/bin/sh");
    };
    // umoci may write into the layout it reads: give it a copy of the store.
    let layout = e.dir.join("layout");
    run(Command::new("cp").arg("-a").arg(&e.root).arg(&layout));
    let bundle = e.dir.join("bundle1");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.0", layout.display()))
        .arg(&bundle));
    check(&bundle);
    // From a saved oci-archive, extracted (umoci reads layout dirs).
    let oci = e.dir.join("img.tar");
    run(whittle(&e.root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("interop/busybox:1.0"));
    let x = e.dir.join("extracted");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&oci).arg("-C").arg(&x));
    let bundle = e.dir.join("bundle2");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.0", x.display()))
        .arg(&bundle));
    check(&bundle);
}

#[test]
fn skopeo_made_archives_load_and_round_trip() {
    if tools().is_none() {
        return;
    }
    let e = env();
    let src = format!("oci:{}:1.0", e.root.display());
    let da = e.dir.join("skopeo-docker.tar");
    run(skopeo()
        .args(["copy", &src])
        .arg(format!("docker-archive:{}:made/by-skopeo:v1", da.display())));
    let oa = e.dir.join("skopeo-oci.tar");
    run(skopeo()
        .args(["copy", &src])
        .arg(format!("oci-archive:{}:made/oci:v2", oa.display())));
    let od = e.dir.join("skopeo-dir");
    run(skopeo()
        .args(["copy", &src])
        .arg(format!("oci:{}:made/dir:v3", od.display())));
    let b = e.dir.join("b");
    let out = run(whittle(&b).arg("load").arg("-i").arg(&da));
    assert_eq!(out.trim(), "Loaded image: made/by-skopeo:v1");
    let out = run(whittle(&b).arg("load").arg("-i").arg(&oa));
    assert_eq!(out.trim(), "Loaded image: made/oci:v2");
    let out = run(whittle(&b).arg("load").arg("-i").arg(&od));
    assert_eq!(out.trim(), "Loaded image: made/dir:v3");
    let inspect = |r: &str| -> serde_json::Value {
        serde_json::from_str(&run(whittle(&b).args(["inspect", r]))).unwrap()
    };
    // skopeo's docker-archive holds uncompressed layers and a docker config: same diff ids.
    let d = inspect("made/by-skopeo:v1");
    let ours: serde_json::Value = serde_json::from_slice(
        &Store::open(&e.root)
            .unwrap()
            .read_document(&e.img.config)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        d[0]["Config"]["rootfs"]["diff_ids"],
        ours["rootfs"]["diff_ids"]
    );
    assert_eq!(inspect("made/oci:v2")[0]["Digest"], e.img.manifest.as_str());
    assert_eq!(inspect("made/dir:v3")[0]["Digest"], e.img.manifest.as_str());
    // The image made from skopeo's docker-archive extracts to the same files through umoci.
    let sv = e.dir.join("re.tar");
    run(whittle(&b)
        .args(["save", "--format", "oci", "-o"])
        .arg(&sv)
        .arg("made/by-skopeo:v1"));
    let v = inspect_json(&format!("oci-archive:{}:v1", sv.display()));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    // Save + load + save is byte-identical, gzip-compressed input too.
    let s1 = e.dir.join("s1.tar");
    run(whittle(&e.root)
        .args(["save", "-o"])
        .arg(&s1)
        .arg("interop/busybox:1.0"));
    run(Command::new("gzip").arg("-k").arg(&s1));
    let c = e.dir.join("c");
    run(whittle(&c)
        .arg("load")
        .arg("-i")
        .arg(e.dir.join("s1.tar.gz")));
    let s2 = e.dir.join("s2.tar");
    run(whittle(&c)
        .args(["save", "-o"])
        .arg(&s2)
        .arg("interop/busybox:1.0"));
    assert_eq!(fs::read(&s1).unwrap(), fs::read(&s2).unwrap());
}
