//! Findings that read file contents as the layer streams (ELF headers and sections, `.pyc`
//! headers) and the test-suite finding: each with an image that triggers it and one that comes
//! close but does not.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use std::path::Path;
use whittle_analyze::{Analysis, Finding, FindingKind};

fn of(a: &Analysis, kind: FindingKind) -> Vec<&Finding> {
    a.findings_of(kind).collect()
}

fn paths(f: &Finding) -> Vec<&str> {
    f.paths.iter().map(|p| p.path.as_str()).collect()
}

fn build(name: &str, layers: &[LayerFn<'_>]) -> Analysis {
    let (_t, s) = store();
    image(&s, name, layers);
    run(&s, name)
}

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// A glibc-like base: /lib64 a link into /usr/lib64, the loader there, libc in the multiarch
/// directory.
fn glibc_base(d: &Path) {
    symlink(d, "lib64", "usr/lib64");
    file(d, "usr/lib64/ld-linux-x86-64.so.2", 2000, 1, 0o755);
    file(d, "usr/lib/x86_64-linux-gnu/libc.so.6", 3000, 2, 0o755);
}

fn dynamic_app(extra: &[&'static str]) -> Vec<u8> {
    let mut needed = vec!["libc.so.6"];
    needed.extend_from_slice(extra);
    elf(&ElfSpec {
        interp: Some(LOADER),
        needed,
        ..ElfSpec::default()
    })
}

#[test]
fn unstripped_binaries() {
    // Sections past the probe's 64 KiB prefix, as in a real binary.
    let unstripped = elf(&ElfSpec {
        debug: 3000,
        symbols: 20,
        pad: 100_000,
        ..ElfSpec::default()
    });
    let a = build(
        "unstripped:1",
        &[
            ("ADD rootfs /", &|d| file(d, "etc/hostname", 10, 1, 0o644)),
            ("COPY --from=build /out/ /usr/local/bin/", &|d| {
                bytes(d, "usr/local/bin/server", &unstripped, 0o755);
                bytes(
                    d,
                    "usr/local/bin/tool",
                    &elf(&ElfSpec {
                        symbols: 50,
                        ..ElfSpec::default()
                    }),
                    0o755,
                );
            }),
        ],
    );
    let f = of(&a, FindingKind::Unstripped);
    assert_eq!(f.len(), 1, "{:#?}", a.findings);
    let f = f[0];
    // debug 3000 + symtab 20*24 + strtab 20*8; tool: 50*24 + 50*8
    assert_eq!(f.bytes, 3000 + 480 + 160 + 1200 + 400);
    assert_eq!(f.files, 2);
    assert_eq!(paths(f), ["/usr/local/bin/server", "/usr/local/bin/tool"]);
    assert_eq!(f.layer, 1);
    assert!(f.title.contains("symbols and debug info"), "{}", f.title);
    assert!(f.fix.contains("strip --strip-unneeded"), "{}", f.fix);
    assert!(f.fix.contains("strip = true"), "{}", f.fix);

    // Go: the fix is Go's.
    let go = elf(&ElfSpec {
        symbols: 100,
        go: true,
        ..ElfSpec::default()
    });
    let a = build(
        "unstripped-go:1",
        &[("COPY app /", &|d| bytes(d, "app", &go, 0o755))],
    );
    let f = of(&a, FindingKind::Unstripped);
    assert_eq!(f.len(), 1);
    assert!(f[0].fix.contains("-ldflags=\"-s -w\""), "{}", f[0].fix);
    assert!(!f[0].fix.contains("strip = true"));
}

#[test]
fn stripped_binaries_and_object_files_are_not_unstripped() {
    let a = build(
        "stripped:1",
        &[
            ("ADD rootfs /", &|d| {
                bytes(d, "app", &elf(&ElfSpec::default()), 0o755);
                // An object file needs its symbols.
                let obj = elf(&ElfSpec {
                    relocatable: true,
                    symbols: 100,
                    ..ElfSpec::default()
                });
                bytes(d, "usr/lib/crt1.o", &obj, 0o644);
                // Not ELF, though it starts like one.
                bytes(d, "notes.txt", b"\x7fELF is a format\n", 0o644);
                // A test fixture.
                let fixture = elf(&ElfSpec {
                    symbols: 100,
                    debug: 4000,
                    ..ElfSpec::default()
                });
                bytes(d, "usr/share/go/src/debug/testdata/x.elf", &fixture, 0o644);
                bytes(
                    d,
                    "later-stripped",
                    &elf(&ElfSpec {
                        debug: 5000,
                        ..ElfSpec::default()
                    }),
                    0o755,
                );
            }),
            ("RUN strip later-stripped", &|d| {
                bytes(d, "later-stripped", &elf(&ElfSpec::default()), 0o755)
            }),
        ],
    );
    assert!(
        of(&a, FindingKind::Unstripped).is_empty(),
        "{:#?}",
        a.findings
    );
}

#[test]
fn dynamic_programs_without_their_loader_or_libraries() {
    let app = dynamic_app(&[]);
    // On scratch: no loader at all.
    let a = build(
        "scratch-app:1",
        &[("COPY --from=build /app /app", &|d| {
            bytes(d, "app", &app, 0o755)
        })],
    );
    let f = of(&a, FindingKind::MissingLibrary);
    assert_eq!(f.len(), 1, "{:#?}", a.findings);
    assert!(f[0].title.contains(LOADER), "{}", f[0].title);
    assert!(f[0].title.contains("no such file or directory"));
    assert!(f[0].fix.contains("CGO_ENABLED=0"), "{}", f[0].fix);
    assert_eq!(paths(f[0]), ["/app"]);
    // Reported whatever its size, and before the size findings.
    assert_eq!(a.findings[0].kind, FindingKind::MissingLibrary);

    // A loader, but a library missing.
    let app2 = dynamic_app(&["libssl.so.3"]);
    let a = build(
        "missing-lib:1",
        &[
            ("ADD rootfs /", &glibc_base),
            ("COPY app /", &|d| bytes(d, "app", &app2, 0o755)),
        ],
    );
    let f = of(&a, FindingKind::MissingLibrary);
    assert_eq!(f.len(), 1, "{:#?}", a.findings);
    assert!(f[0].title.contains("libssl.so.3"), "{}", f[0].title);
    assert_eq!(f[0].layer, 1);

    // The loader deleted by a later layer.
    let a = build(
        "loader-deleted:1",
        &[
            ("ADD rootfs /", &glibc_base),
            ("COPY app /", &|d| bytes(d, "app", &app, 0o755)),
            ("RUN rm -rf /usr/lib64", &|d| whiteout(d, "usr/lib64")),
        ],
    );
    assert_eq!(
        of(&a, FindingKind::MissingLibrary).len(),
        1,
        "{:#?}",
        a.findings
    );
}

#[test]
fn dynamic_programs_that_can_start() {
    let app = dynamic_app(&["libapp.so.1", "libextra.so"]);
    let stat = elf(&ElfSpec::default()); // no PT_INTERP: static
    let a = build(
        "runs:1",
        &[
            ("ADD rootfs /", &glibc_base),
            ("COPY app /opt/app/", &|d| {
                bytes(d, "opt/app/bin/app", &app, 0o755);
                // Found through its run path ($ORIGIN/../lib is not in the crafted binary, so
                // by name elsewhere in the image, as ld.so.conf.d would find it).
                file(d, "opt/app/lib/libapp.so.1", 100, 3, 0o644);
                // Through a link in a default directory.
                symlink(d, "usr/lib/libextra.so", "/opt/app/lib/libapp.so.1");
                bytes(d, "static", &stat, 0o755);
                // A FreeBSD program, and a fixture of a test suite: not meant to run here.
                let bsd = elf(&ElfSpec {
                    interp: Some("/libexec/ld-elf.so.1"),
                    freebsd: true,
                    ..ElfSpec::default()
                });
                bytes(d, "opt/bsd-tool", &bsd, 0o755);
                let fixture = elf(&ElfSpec {
                    interp: Some("/lib/ld-musl-x86_64.so.1"),
                    ..ElfSpec::default()
                });
                bytes(d, "src/debug/elf/testdata/exec", &fixture, 0o644);
            }),
        ],
    );
    assert!(
        of(&a, FindingKind::MissingLibrary).is_empty(),
        "{:#?}",
        a.findings
    );
}

#[test]
fn stale_python_bytecode() {
    let a = build(
        "pyc:1",
        &[("RUN pip install app", &|d| {
            let lib = "usr/lib/python3.11/site-packages/app";
            text(d, &format!("{lib}/fresh.py"), "x = 1\n");
            mtime(d, &format!("{lib}/fresh.py"), 0);
            bytes(
                d,
                &format!("{lib}/__pycache__/fresh.cpython-311.pyc"),
                &pyc(0, 6, false),
                0o644,
            );
            // Compiled before the build rewrote the source's time.
            text(d, &format!("{lib}/stale.py"), "y = 2\n");
            mtime(d, &format!("{lib}/stale.py"), 0);
            bytes(
                d,
                &format!("{lib}/__pycache__/stale.cpython-311.pyc"),
                &pyc(1_700_000_000, 6, false),
                0o644,
            );
            // Right time, wrong size.
            text(d, &format!("{lib}/grown.py"), "z = 33\n");
            mtime(d, &format!("{lib}/grown.py"), 0);
            bytes(
                d,
                &format!("{lib}/__pycache__/grown.cpython-311.pyc"),
                &pyc(0, 6, false),
                0o644,
            );
            // Hash-based: never stale by time.
            text(d, &format!("{lib}/hashed.py"), "w = 4\n");
            mtime(d, &format!("{lib}/hashed.py"), 0);
            bytes(
                d,
                &format!("{lib}/__pycache__/hashed.cpython-311.pyc"),
                &pyc(99, 99, true),
                0o644,
            );
            // No source: never read.
            bytes(
                d,
                &format!("{lib}/__pycache__/gone.cpython-311.pyc"),
                &pyc(0, 1, false),
                0o644,
            );
            // Legacy sourceless bytecode is what gets imported: not judged.
            bytes(d, &format!("{lib}/legacy.pyc"), &pyc(5, 5, false), 0o644);
        })],
    );
    let f = of(&a, FindingKind::StaleBytecode);
    assert_eq!(f.len(), 2, "{:#?}", a.findings);
    let stale = f.iter().find(|f| f.title.starts_with("stale")).unwrap();
    assert_eq!(
        paths(stale),
        [
            "/usr/lib/python3.11/site-packages/app/__pycache__/grown.cpython-311.pyc",
            "/usr/lib/python3.11/site-packages/app/__pycache__/stale.cpython-311.pyc"
        ]
    );
    assert_eq!(stale.bytes, 2 * 2016);
    assert!(stale.fix.contains("--invalidation-mode unchecked-hash"));
    let orphan = f
        .iter()
        .find(|f| f.title.contains("without its source"))
        .unwrap();
    assert_eq!(
        paths(orphan),
        ["/usr/lib/python3.11/site-packages/app/__pycache__/gone.cpython-311.pyc"]
    );
}

#[test]
fn bytecode_that_matches_its_source() {
    let a = build(
        "pyc-ok:1",
        &[
            ("RUN pip install app", &|d| {
                text(d, "app/m.py", "x = 1\n");
                mtime(d, "app/m.py", 0);
                bytes(
                    d,
                    "app/__pycache__/m.cpython-311.pyc",
                    &pyc(0, 6, false),
                    0o644,
                );
                bytes(
                    d,
                    "app/__pycache__/old.cpython-311.pyc",
                    &pyc(0, 6, false),
                    0o644,
                );
            }),
            // The orphan is removed later: nothing in the final image is stale (the deletion
            // itself is the deleted-later finding's business).
            ("RUN cleanup", &|d| {
                whiteout(d, "app/__pycache__/old.cpython-311.pyc")
            }),
        ],
    );
    assert!(
        of(&a, FindingKind::StaleBytecode).is_empty(),
        "{:#?}",
        a.findings
    );
}

#[test]
fn test_suites() {
    let a = build(
        "tests:1",
        &[
            ("FROM python", &|d| {
                file(
                    d,
                    "usr/local/lib/python3.12/test/test_os.py",
                    3000,
                    1,
                    0o644,
                );
                file(d, "usr/local/lib/python3.12/os.py", 3000, 2, 0o644);
            }),
            ("RUN pip install && npm ci", &|d| {
                file(
                    d,
                    "usr/local/lib/python3.12/site-packages/numpy/core/tests/t.py",
                    2000,
                    3,
                    0o644,
                );
                file(d, "app/node_modules/lodash/test/a.js", 1500, 4, 0o644);
                file(d, "app/node_modules/@s/p/__tests__/b.js", 1500, 5, 0o644);
                // A package named test, and the application's own tests: not test suites.
                file(d, "app/node_modules/test/index.js", 1500, 6, 0o644);
                file(d, "app/tests/test_app.py", 1500, 7, 0o644);
            }),
        ],
    );
    let f = of(&a, FindingKind::Tests);
    let got: Vec<(usize, u64, u64)> = f.iter().map(|f| (f.layer, f.files, f.bytes)).collect();
    assert_eq!(got, [(0, 1, 3000), (1, 2, 3000), (1, 1, 2000)], "{f:#?}");
    assert!(f.iter().any(|f| f.fix.contains("node-prune")));
}

#[test]
fn no_test_suites() {
    let a = build(
        "no-tests:1",
        &[("COPY . /app", &|d| {
            file(d, "app/node_modules/test/index.js", 1500, 6, 0o644);
            file(d, "app/tests/test_app.py", 1500, 7, 0o644);
            file(d, "usr/lib/python3.11/testing.py", 1500, 8, 0o644);
        })],
    );
    assert!(of(&a, FindingKind::Tests).is_empty(), "{:#?}", a.findings);
}
