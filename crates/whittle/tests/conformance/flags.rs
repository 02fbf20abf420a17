//! `docker build` flags: `--build-context`, and the clear refusals of what is not supported yet.

use crate::{build, env, image_file, root_or_skip, whittle};
use std::fs;

#[test]
fn a_local_build_context_is_a_stage_a_copy_source_and_a_mount() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let extra = e.tmp.path().join("extra");
    fs::create_dir_all(extra.join("sub")).unwrap();
    fs::write(extra.join("sub/f"), "v1\n").unwrap();
    fs::write(extra.join("secret.env"), "nope\n").unwrap();
    fs::write(extra.join(".dockerignore"), "secret.env\n").unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM extra AS files\n\
         FROM test/busybox:1\n\
         COPY --from=extra sub/f /copied\n\
         COPY --from=files /sub/f /from-stage\n\
         RUN --mount=type=bind,from=extra,target=/m cat /m/sub/f > /mounted && ls /m > /listed\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let arg = format!("extra={}", extra.display());
    let go = |tag: &str| {
        let r = whittle(
            &e.root,
            &[
                "build",
                "--network=none",
                "--build-context",
                &arg,
                "-t",
                tag,
                &ctx,
            ],
        );
        assert!(r.ok, "{}", r.stderr);
    };
    go("named:1");
    for (p, want) in [
        ("copied", "v1\n"),
        ("from-stage", "v1\n"),
        ("mounted", "v1\n"),
        ("listed", "sub\n"),
    ] {
        assert_eq!(
            String::from_utf8(image_file(&e.root, "named:1", p).unwrap()).unwrap(),
            want,
            "/{p}"
        );
    }
    // An edit in the named context is a change, for all three uses.
    fs::write(extra.join("sub/f"), "v2\n").unwrap();
    go("named:2");
    for p in ["copied", "from-stage", "mounted"] {
        assert_eq!(image_file(&e.root, "named:2", p).unwrap(), b"v2\n", "/{p}");
    }
    // Without the flag, `extra` is an image name that does not exist.
    let r = whittle(&e.root, &["build", "--pull=never", &ctx]);
    assert!(!r.ok);
    assert!(r.stderr.contains("extra"), "{}", r.stderr);
}

#[test]
fn image_contexts_replace_the_image_a_dockerfile_names() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let ctx = e.ctx.to_string_lossy().into_owned();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM alpine:3.19\nRUN echo from-busybox > /x\nCOPY --from=tools:latest /bin/busybox /bb\n",
    )
    .unwrap();
    let r = whittle(
        &e.root,
        &[
            "build",
            "--pull=never",
            "--network=none",
            "--build-context",
            "alpine:3.19=docker-image://test/busybox:1",
            "--build-context",
            "tools:latest=docker-image://test/busybox:1",
            "-t",
            "img:1",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "img:1", "x").unwrap(),
        b"from-busybox\n"
    );
    assert!(image_file(&e.root, "img:1", "bb").is_some());

    // An OCI layout: the image is imported and used by digest.
    let archive = e.tmp.path().join("bb.oci.tar");
    let r = whittle(
        &e.root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().unwrap(),
            "test/busybox:1",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let layout = e.tmp.path().join("layout");
    fs::create_dir(&layout).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let arg = format!("alpine:3.19=oci-layout://{}", layout.display());
    let r = whittle(
        &e.root,
        &[
            "build",
            "--pull=never",
            "--network=none",
            "--build-context",
            &arg,
            "--build-context",
            "tools:latest=docker-image://test/busybox:1",
            "-t",
            "img:2",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "img:2", "x").unwrap(),
        b"from-busybox\n"
    );
    let bad = format!("a=oci-layout://{}", e.tmp.path().display());
    let r = whittle(&e.root, &["build", "--build-context", &bad, &ctx]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("is not an OCI image layout"),
        "{}",
        r.stderr
    );
    let r = whittle(
        &e.root,
        &[
            "build",
            "--build-context",
            "a=https://example.com/x.git",
            &ctx,
        ],
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains("URLs and git contexts are not yet"),
        "{}",
        r.stderr
    );
}

#[test]
fn flags_for_what_is_not_supported_yet_are_refused_with_a_sentence() {
    // --sbom, --provenance and --attest are supported (tests/attestations.rs); only values
    // whittle does not make are refused.
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), "FROM test/busybox:1\n").unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    for (flag, says) in [
        // Cache exports whittle does not make (type=inline and mounts=true are supported:
        // tests/remote_cache.rs).
        (
            vec!["--cache-to", "type=gha"],
            "type=gha: expected registry, local or inline",
        ),
        (
            vec!["--cache-to", "type=inline,mounts=true"],
            "type=inline carries the image's own layers only",
        ),
        // Attestation values whittle does not make are refused saying why.
        (
            vec!["--sbom=generator=docker/buildkit-syft-scanner"],
            "runs no generator image",
        ),
        (vec!["--provenance=version=v0.2"], "v0.2 is not supported"),
        (vec!["--attest", "type=vex"], "unknown attestation type"),
    ] {
        let mut args = vec!["build"];
        args.extend(flag.iter().copied());
        args.push(&ctx);
        let r = whittle(&e.root, &args);
        assert!(!r.ok, "{flag:?}");
        assert!(r.stderr.contains(says), "{flag:?}: {}", r.stderr);
        assert!(!r.stderr.contains("unexpected argument"), "{}", r.stderr);
    }
    // Switched off, they give the plain image manifest (CI scripts pass them for that).
    let r = build(&e, "FROM test/busybox:1\n", "plain:1");
    assert!(r.ok, "{}", r.stderr);
    let r = whittle(
        &e.root,
        &[
            "build",
            "--provenance=false",
            "--sbom=false",
            "-t",
            "plain:2",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
}

#[test]
fn annotations_go_on_the_manifest() {
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), "FROM test/busybox:1\nLABEL a=b\n").unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let host = whittle_dockerfile::Platform::host();
    let this = format!("manifest[{host}]:here=1");
    let r = whittle(
        &e.root,
        &[
            "build",
            "--annotation",
            "org.opencontainers.image.source=https://example.com/x:y",
            "--annotation",
            "manifest:kind=test",
            "--annotation",
            &this,
            "--annotation",
            "manifest[linux/s390x]:elsewhere=1",
            "-t",
            "ann:1",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let s = whittle_store::Store::open(&e.root).unwrap();
    let t = s.resolve("ann:1").unwrap();
    let (manifest, _) = s.manifest_and_config(&t.image).unwrap();
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({
            "org.opencontainers.image.source": "https://example.com/x:y",
            "kind": "test",
            "here": "1"
        })
    );
    let r = whittle(&e.root, &["build", "--annotation", "index:a=b", &ctx]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("index annotations need an image index"),
        "{}",
        r.stderr
    );
}

/// A docker daemon stand-in: accepts one `POST /images/load`, decodes the chunked body and
/// answers as dockerd does. Returns the request line and the body.
fn fake_daemon(sock: &std::path::Path) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::os::unix::net::UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut request = String::new();
        r.read_line(&mut request).unwrap();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf).unwrap();
        }
        let reply = "{\"stream\":\"Loaded image: load:1\\n\"}";
        let mut w = s;
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        (request, body)
    })
}

#[test]
fn load_streams_a_docker_archive_into_the_daemon() {
    let e = env();
    fs::write(e.ctx.join("Dockerfile"), "FROM test/busybox:1\nLABEL x=y\n").unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let sock = e.tmp.path().join("docker.sock");
    let daemon = fake_daemon(&sock);
    let run = |host: String, extra: &[&str]| {
        assert_cmd::Command::cargo_bin("whittle")
            .unwrap()
            .env("DOCKER_HOST", host)
            .arg("--root")
            .arg(&e.root)
            .args(["build", "-t", "load:1"])
            .args(extra)
            .arg(&ctx)
            .output()
            .unwrap()
    };
    let out = run(format!("unix://{}", sock.display()), &["--load"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("docker: Loaded image: load:1"), "{stderr}");
    let (request, body) = daemon.join().unwrap();
    assert!(request.starts_with("POST /images/load"), "{request}");
    // The body is a docker archive of the image, named as tagged.
    let mut ar = tar::Archive::new(&body[..]);
    let mut manifest = None;
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut entry, &mut s).unwrap();
            manifest = Some(s);
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&manifest.unwrap()).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["load:1"]));

    // Nobody listening: a sentence, after the image is in the store.
    let gone = e.tmp.path().join("none.sock");
    let out = run(format!("unix://{}", gone.display()), &["-o", "type=docker"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no docker daemon answers at unix://"),
        "{stderr}"
    );
    let out = run("ssh://me@host".into(), &["--load"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only unix:// and tcp://"));
}

#[test]
fn a_no_cache_filter_that_names_no_stage_is_said() {
    let e = env();
    let r = build(&e, "FROM test/busybox:1 AS base\nLABEL a=b\n", "ncf:1");
    assert!(r.ok, "{}", r.stderr);
    let ctx = e.ctx.to_string_lossy().into_owned();
    let r = whittle(
        &e.root,
        &[
            "build",
            "--no-cache-filter",
            "bsae",
            "--no-cache-filter",
            "base",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: --no-cache-filter bsae: no such stage (stages: base)"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("--no-cache-filter base:"),
        "{}",
        r.stderr
    );
}

#[test]
fn ulimit_and_shm_size_reach_run_steps() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\n\
         RUN { ulimit -Sn; ulimit -Hn; ulimit -Hc; df -k /dev/shm | awk 'NR==2 {print $2}'; } > /limits\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let r = whittle(
        &e.root,
        &[
            "build",
            "--network=none",
            "--ulimit",
            "nofile=2048:4096",
            "--ulimit",
            "core=-1",
            "--shm-size",
            "128m",
            "-t",
            "lim:1",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        String::from_utf8(image_file(&e.root, "lim:1", "limits").unwrap()).unwrap(),
        "2048\n4096\nunlimited\n131072\n"
    );
    // The defaults: nofile 1024, /dev/shm 64 MiB.
    let r = build(
        &e,
        &fs::read_to_string(e.ctx.join("Dockerfile")).unwrap(),
        "lim:2",
    );
    assert!(r.ok, "{}", r.stderr);
    let limits = String::from_utf8(image_file(&e.root, "lim:2", "limits").unwrap()).unwrap();
    assert!(
        limits.starts_with("1024\n1024\n") && limits.ends_with("\n65536\n"),
        "{limits}"
    );
    for (flag, value, says) in [
        ("--ulimit", "files=10", "is not a limit"),
        (
            "--ulimit",
            "nofile=10:5",
            "soft limit is above the hard limit",
        ),
        ("--shm-size", "lots", "expected a size"),
    ] {
        let r = whittle(&e.root, &["build", flag, value, &ctx]);
        assert!(
            !r.ok && r.stderr.contains(says),
            "{flag} {value}: {}",
            r.stderr
        );
    }
}

#[test]
fn add_host_entries_reach_run_steps_but_not_the_image() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nRUN grep -E 'db|v6' /etc/hosts > /seen\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    for (net, tag) in [("none", "hosts:1"), ("default", "hosts:2")] {
        let r = whittle(
            &e.root,
            &[
                "build",
                &format!("--network={net}"),
                "--add-host",
                "db:10.1.2.3",
                "--add-host",
                "v6=::1",
                "-t",
                tag,
                &ctx,
            ],
        );
        assert!(r.ok, "{net}: {}", r.stderr);
        assert_eq!(
            String::from_utf8(image_file(&e.root, tag, "seen").unwrap()).unwrap(),
            "10.1.2.3\tdb\n::1\tv6\n",
            "{net}"
        );
        assert!(image_file(&e.root, tag, "etc/hosts").is_none(), "{net}");
    }
    for (value, says) in [
        ("db", "expected HOST:IP"),
        ("db:10.1.2", "is not an IP address"),
        ("db:host-gateway", "host-gateway is not supported"),
    ] {
        let r = whittle(&e.root, &["build", "--add-host", value, &ctx]);
        assert!(!r.ok && r.stderr.contains(says), "{value}: {}", r.stderr);
    }
}

#[test]
fn security_opt_seccomp_unconfined_lifts_the_filter_and_others_are_refused() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nRUN if unshare -U true 2>/dev/null; then echo allowed; else echo denied; fi > /unshare\n",
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let r = build(
        &e,
        &fs::read_to_string(e.ctx.join("Dockerfile")).unwrap(),
        "sec:1",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "sec:1", "unshare").unwrap(),
        b"denied\n"
    );
    let r = whittle(
        &e.root,
        &[
            "build",
            "--network=none",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges",
            "-t",
            "sec:2",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        image_file(&e.root, "sec:2", "unshare").unwrap(),
        b"allowed\n"
    );
    let r = whittle(&e.root, &["build", "--security-opt", "label=type:x", &ctx]);
    assert!(
        !r.ok && r.stderr.contains("SELinux labels are not supported"),
        "{}",
        r.stderr
    );
}
