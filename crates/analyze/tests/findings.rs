//! Every finding: an image that triggers it, and one that comes close but does not.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use std::path::Path;
use whittle_analyze::{Analysis, FindingKind};

fn one(a: &Analysis, kind: FindingKind) -> &whittle_analyze::Finding {
    let v: Vec<_> = a.findings_of(kind).collect();
    assert_eq!(
        v.len(),
        1,
        "one {kind:?} finding expected: {:#?}",
        a.findings
    );
    v[0]
}

fn none(a: &Analysis, kind: FindingKind) {
    let v: Vec<_> = a.findings_of(kind).collect();
    assert!(v.is_empty(), "no {kind:?} finding expected: {v:#?}");
}

fn paths(f: &whittle_analyze::Finding) -> Vec<&str> {
    f.paths.iter().map(|p| p.path.as_str()).collect()
}

/// A two-layer image: a base with a binary, and `top` on it.
fn two(name: &str, top: &dyn Fn(&Path)) -> Analysis {
    let (_t, s) = store();
    image(
        &s,
        name,
        &[
            ("ADD rootfs /", &|d| {
                file(d, "bin/app", 3000, 1, 0o755);
                dir(d, "tmp", 0o1777);
            }),
            ("RUN step", top),
        ],
    );
    run(&s, name)
}

#[test]
fn a_clean_image_has_no_findings() {
    let a = two("clean:1", &|d| {
        file(d, "app/data.bin", 5000, 2, 0o644);
        text(d, "app/.env.example", "TOKEN=\n");
        text(d, "app/.npmrc", "//r.example/:_authToken=${NPM_TOKEN}\n");
        text(
            d,
            "etc/ssl/certs/ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
        );
        text(d, "root/.ssh/id_ed25519.pub", "ssh-ed25519 AAAA\n");
        text(d, "usr/share/doc/app/copyright", "MIT");
        text(d, "var/lib/apt/extended_states", "Package: x\n");
        file(d, "usr/lib/x86_64-linux-gnu/libgcc_s.so.1", 2000, 3, 0o644);
        file(d, "usr/local/go/src/fmt/print.go", 2000, 4, 0o644);
        file(d, "opt/jre/bin/java", 2000, 5, 0o755);
        file(d, "opt/jre/lib/modules", 2000, 6, 0o644);
        file(d, "app/target/release/app", 2000, 7, 0o755);
        file(d, "app/same1", 2000, 8, 0o644);
        file(d, "app/same2", 2000, 8, 0o644); // same content, same layer: not a duplicate
    });
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    assert_eq!(a.image.wasted_bytes, 0);
}

#[test]
fn deleted_overwritten_and_rewritten_files() {
    let (_t, s) = store();
    image(
        &s,
        "sup:1",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "gone", 1000, 1, 0o644);
                file(d, "changed", 2000, 2, 0o644);
                file(d, "chmodded", 3000, 3, 0o644);
                file(d, "again", 4000, 4, 0o644);
            }),
            ("RUN touch things", &|d| {
                whiteout(d, "gone");
                file(d, "changed", 2500, 9, 0o644);
                file(d, "chmodded", 3000, 3, 0o755);
                file(d, "again", 4000, 4, 0o644);
            }),
        ],
    );
    let a = run(&s, "sup:1");
    let del = one(&a, FindingKind::DeletedLater);
    assert_eq!((del.bytes, paths(del)), (1000, vec!["/gone"]));
    assert!(del.fix.contains("same RUN instruction"));
    let over: Vec<_> = a.findings_of(FindingKind::OverwrittenLater).collect();
    let got: Vec<(&str, u64)> = over
        .iter()
        .map(|f| (f.paths[0].path.as_str(), f.bytes))
        .collect();
    assert_eq!(
        got,
        [("/again", 4000), ("/chmodded", 3000), ("/changed", 2000)]
    );
    assert!(
        over[1].fix.contains("COPY --chmod/--chown"),
        "{}",
        over[1].fix
    );
    assert!(over[0].title.contains("unchanged"));
    assert_eq!(
        a.layer[1].files_changed, 2,
        "changed and chmodded differ; again does not"
    );
    for f in &over {
        assert_eq!((f.layer, f.related_layer), (0, Some(1)));
        assert_eq!(f.created_by.as_deref(), Some("ADD rootfs /"));
        assert_eq!(f.related_created_by.as_deref(), Some("RUN touch things"));
    }
}

#[test]
fn duplicate_content_across_layers() {
    let a = two("dup:1", &|d| file(d, "copy/of/app", 3000, 1, 0o755));
    let f = one(&a, FindingKind::DuplicateContent);
    assert_eq!((f.bytes, f.layer, f.related_layer), (3000, 1, Some(0)));
    assert_eq!(paths(f), ["/copy/of/app"]);
    // A copy that a later layer deletes is reported as deleted, not as a duplicate.
    let (_t, s) = store();
    image(
        &s,
        "dup:2",
        &[
            ("ADD rootfs /", &|d| file(d, "bin/app", 3000, 1, 0o755)),
            ("cp", &|d| file(d, "tmp/app", 3000, 1, 0o755)),
            ("rm", &|d| whiteout(d, "tmp/app")),
        ],
    );
    let b = run(&s, "dup:2");
    none(&b, FindingKind::DuplicateContent);
    assert_eq!(one(&b, FindingKind::DeletedLater).bytes, 3000);
}

#[test]
fn package_caches() {
    let a = two("cache:1", &|d| {
        file(
            d,
            "var/lib/apt/lists/deb_dists_bookworm_main_Packages.lz4",
            5000,
            1,
            0o644,
        );
        file(d, "var/cache/apt/archives/curl.deb", 6000, 2, 0o644);
        file(d, "root/.cache/pip/http/ab/cd", 700, 3, 0o644);
        file(d, "root/.npm/_cacache/index-v5/aa", 800, 4, 0o644);
        file(d, "usr/local/share/.cache/yarn/v6/pkg", 900, 5, 0o644);
        file(d, "root/.cache/go-build/aa/bb", 1000, 6, 0o644);
        file(d, "go/pkg/mod/cache/download/x.zip", 1100, 7, 0o644);
        file(d, "usr/local/cargo/registry/cache/x.crate", 1200, 8, 0o644);
        file(d, "src/target/release/deps/libx.rlib", 1300, 9, 0o644);
        file(d, "root/.m2/repository/org/x/x.jar", 1400, 10, 0o644);
        file(d, "var/cache/apk/APKINDEX.tar.gz", 1500, 11, 0o644);
    });
    let caches: Vec<_> = a.findings_of(FindingKind::PackageCache).collect();
    assert_eq!(caches.len(), 11, "{caches:#?}");
    assert!(caches.iter().all(|f| f.layer == 1 && f.files == 1));
    let apt = caches
        .iter()
        .find(|f| f.title.contains("/var/lib/apt/lists"))
        .unwrap();
    assert_eq!(apt.bytes, 5000);
    assert!(apt.fix.contains("rm -rf /var/lib/apt/lists/*"));
    assert!(caches
        .iter()
        .any(|f| f.title.starts_with("pip cache") && f.fix.contains("--no-cache-dir")));
    // Largest first.
    assert!(caches.windows(2).all(|w| w[0].bytes >= w[1].bytes));
    // Only apt's lock file left (the lists removed in the same RUN): nothing to report.
    let b = two("cache:2", &|d| {
        text(d, "var/lib/apt/lists/lock", "");
        dir(d, "var/lib/apt/lists/partial", 0o700);
        file(d, "root/.cache/other/x", 900, 1, 0o644);
    });
    none(&b, FindingKind::PackageCache);
}

#[test]
fn toolchains_in_the_final_image() {
    let a = two("tc:1", &|d| {
        file(d, "usr/libexec/gcc/x86_64-linux-gnu/12/cc1", 4000, 1, 0o755);
        file(
            d,
            "usr/lib/gcc/x86_64-linux-gnu/12/libgcc.a",
            1000,
            2,
            0o644,
        );
        file(d, "usr/bin/x86_64-linux-gnu-gcc-12", 500, 3, 0o755);
        file(d, "usr/local/go/bin/go", 3000, 4, 0o755);
        file(d, "usr/local/go/src/fmt/print.go", 2000, 5, 0o644);
        file(d, "usr/bin/rustc", 1500, 6, 0o755);
        file(d, "usr/lib/jvm/jdk/bin/javac", 100, 7, 0o755);
        file(d, "usr/lib/jvm/jdk/bin/java", 100, 8, 0o755);
        file(d, "usr/lib/jvm/jdk/jmods/java.base.jmod", 5000, 9, 0o644);
        file(d, "usr/lib/jvm/jdk/lib/modules", 9000, 10, 0o644);
        file(d, "usr/include/python3.11/Python.h", 1200, 11, 0o644);
    });
    let tc: Vec<_> = a.findings_of(FindingKind::Toolchain).collect();
    let got: Vec<(String, u64)> = tc
        .iter()
        .map(|f| (f.title.split(' ').next().unwrap().to_string(), f.bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("gcc".to_string(), 5500),
            ("JDK".to_string(), 5100), // javac + jmods; java and lib/modules are the JRE's
            ("Go".to_string(), 5000),
            ("Rust".to_string(), 1500),
            ("Python".to_string(), 1200),
        ]
    );
    assert!(tc[0].fix.contains("builder stage"));
    assert!(tc[1].fix.contains("JRE"));
    // Pieces without the compiler are not a toolchain.
    let b = two("tc:2", &|d| {
        file(
            d,
            "usr/lib/gcc/x86_64-linux-gnu/12/libgcc.a",
            1000,
            2,
            0o644,
        );
        file(d, "usr/local/go/src/fmt/print.go", 2000, 5, 0o644);
        file(d, "usr/lib/jvm/jre/bin/java", 100, 8, 0o755);
        file(d, "usr/include/python3.11/pyconfig.h", 1200, 11, 0o644);
    });
    none(&b, FindingKind::Toolchain);
}

#[test]
fn docs_and_man_pages() {
    let a = two("doc:1", &|d| {
        file(d, "usr/share/doc/curl/changelog.gz", 3000, 1, 0o644);
        file(d, "usr/share/doc/curl/copyright", 900, 2, 0o644);
        file(d, "usr/share/man/man1/curl.1.gz", 1000, 3, 0o644);
    });
    let f = one(&a, FindingKind::Docs);
    assert_eq!((f.bytes, f.files), (4000, 2), "copyright files are kept");
    assert!(f.fix.contains("path-exclude"));
    let b = two("doc:2", &|d| {
        file(d, "usr/share/doc/curl/copyright", 900, 2, 0o644)
    });
    none(&b, FindingKind::Docs);
}

#[test]
fn setuid_and_world_writable() {
    let a = two("perm:1", &|d| {
        file(d, "usr/bin/su", 2000, 1, 0o4755);
        file(d, "usr/bin/wall", 1000, 2, 0o2755);
        file(d, "app/log.txt", 10, 3, 0o666);
        dir(d, "app/shared", 0o777);
    });
    let su = one(&a, FindingKind::Setuid);
    assert_eq!((su.files, su.bytes), (2, 3000));
    let ww = one(&a, FindingKind::WorldWritable);
    assert_eq!(paths(ww), ["/app/log.txt", "/app/shared"]);
    // Findings about permissions come after the size findings.
    assert_eq!(kinds(&a), [FindingKind::Setuid, FindingKind::WorldWritable]);
    let b = two("perm:2", &|d| {
        file(d, "usr/bin/ls", 2000, 1, 0o755);
        dir(d, "var/tmp", 0o1777);
    });
    none(&b, FindingKind::Setuid);
    none(&b, FindingKind::WorldWritable);
}

#[test]
fn secrets_shipped_and_secrets_deleted_later() {
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    let (_t, s) = store();
    image(
        &s,
        "sec:1",
        &[
            ("ADD rootfs /", &|d| file(d, "bin/app", 3000, 1, 0o755)),
            ("COPY . /app", &|d| {
                text(d, "app/.env", "DB_PASSWORD=hunter2\n");
                text(
                    d,
                    "app/.npmrc",
                    "//registry.example/:_authToken=npm_0123456789\n",
                );
                text(d, "root/.ssh/id_ed25519", key);
                text(d, "app/.git/HEAD", "ref: refs/heads/main\n");
                file(d, "app/.git/objects/pack/p.pack", 5000, 2, 0o644);
            }),
            ("RUN rm /root/.ssh/id_ed25519", &|d| {
                whiteout(d, "root/.ssh/id_ed25519")
            }),
        ],
    );
    let a = run(&s, "sec:1");
    let sec: Vec<_> = a.findings_of(FindingKind::Secret).collect();
    let titles: Vec<&str> = sec.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(sec.len(), 4, "{titles:#?}");
    // Secrets come first of all findings.
    assert!(a.findings[..4]
        .iter()
        .all(|f| f.kind == FindingKind::Secret));
    let find = |p: &str| sec.iter().find(|f| f.paths[0].path == p).unwrap();
    assert!(find("/app/.env")
        .title
        .starts_with(".env file in the image"));
    assert!(find("/app/.npmrc").fix.contains("type=secret"));
    let git = find("/app/.git");
    assert_eq!((git.files, git.bytes), (2, 5021));
    let k = find("/root/.ssh/id_ed25519");
    assert!(
        k.title.contains("deleted later, but still shipped"),
        "{}",
        k.title
    );
    assert!(k.fix.contains("ships in layer 1"));
    assert_eq!(k.layer, 1);
    assert_eq!(k.created_by.as_deref(), Some("COPY . /app"));
}
