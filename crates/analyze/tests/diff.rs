//! `whittle_analyze::diff` on crafted images whose differences are known by construction.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use whittle_analyze::diff::{Change, DiffFile, DiffOptions};
use whittle_analyze::{diff, Input};

fn df(path: &str, size: u64) -> DiffFile {
    DiffFile {
        path: path.into(),
        size_bytes: size,
    }
}

#[test]
fn before_and_after_a_multi_stage_rewrite() {
    let (_t, s) = store();
    // Before: one stage with the toolchain, the build tree and the docs.
    image(
        &s,
        "app:single",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "usr/bin/gcc", 50_000, 1, 0o755);
                file(d, "usr/lib/gcc/cc1", 40_000, 2, 0o755);
                file(d, "usr/share/doc/gcc/changelog", 7_000, 3, 0o644);
                file(d, "etc/os-release", 100, 4, 0o644);
                symlink(d, "bin", "usr/bin");
            }),
            ("RUN make", &|d| {
                file(d, "src/main.o", 9_000, 5, 0o644);
                file(d, "app/server", 30_000, 6, 0o755);
                file(d, "app/config", 300, 7, 0o644);
                file(d, "app/same", 400, 8, 0o644);
            }),
        ],
    );
    // After: only the binary (smaller: stripped), config made private, a new file; the old
    // file from the base deleted by a whiteout.
    image(
        &s,
        "app:multi",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "etc/os-release", 100, 4, 0o644);
                file(d, "etc/motd", 50, 9, 0o644);
                symlink(d, "bin", "usr/local/bin");
            }),
            ("COPY --from=build /app /app", &|d| {
                file(d, "app/server", 20_000, 10, 0o755);
                file(d, "app/config", 300, 7, 0o600);
                file(d, "app/same", 400, 8, 0o644);
                file(d, "app/VERSION", 20, 11, 0o644);
            }),
            ("RUN rm /etc/motd", &|d| whiteout(d, "etc/motd")),
        ],
    );
    let d = diff(
        &Input::Store("app:single".into()),
        &Input::Store("app:multi".into()),
        Some(&s),
        &DiffOptions {
            max_depth: 2,
            ..DiffOptions::default()
        },
    )
    .unwrap();
    assert_eq!((d.a.layers, d.b.layers), (2, 3));
    assert_eq!(
        d.a.size_bytes,
        50_000 + 40_000 + 7_000 + 100 + 9_000 + 30_000 + 300 + 400
    );
    assert_eq!(d.b.size_bytes, 100 + 20_000 + 300 + 400 + 20);
    assert_eq!(
        d.totals.size_diff,
        d.b.size_bytes as i64 - d.a.size_bytes as i64
    );
    assert_eq!(
        d.added,
        [df("/app/VERSION", 20)],
        "motd was deleted: not in B"
    );
    assert_eq!(
        d.removed,
        [
            df("/usr/bin/gcc", 50_000),
            df("/usr/lib/gcc/cc1", 40_000),
            df("/src/main.o", 9_000),
            df("/usr/share/doc/gcc/changelog", 7_000),
        ]
    );
    let changed: Vec<(&str, u64, u64, &[Change])> = d
        .changed
        .iter()
        .map(|c| (c.path.as_str(), c.size_a, c.size_b, c.changes.as_slice()))
        .collect();
    assert_eq!(
        changed,
        [
            ("/app/server", 30_000, 20_000, &[Change::Content][..]),
            ("/app/config", 300, 300, &[Change::Mode][..]),
            ("/bin", 0, 0, &[Change::Content][..]),
        ]
    );
    assert_eq!(d.totals.files_unchanged, 2, "os-release and app/same");
    assert_eq!(
        (
            d.totals.files_added,
            d.totals.files_removed,
            d.totals.files_changed
        ),
        (1, 4, 3)
    );
    // Directories to depth 2, largest absolute difference first.
    let dirs: Vec<(&str, i64)> = d
        .directories
        .iter()
        .map(|x| (x.path.as_str(), x.diff))
        .collect();
    assert_eq!(
        dirs,
        [
            ("/usr", -97_000),
            ("/usr/bin", -50_000),
            ("/usr/lib", -40_000),
            ("/app", -9_980),
            ("/src", -9_000),
            ("/usr/share", -7_000),
        ]
    );
    // The same image against itself: nothing differs.
    let same = diff(
        &Input::Store("app:multi".into()),
        &Input::Store("app:multi".into()),
        Some(&s),
        &DiffOptions::default(),
    )
    .unwrap();
    assert!(same.added.is_empty() && same.removed.is_empty() && same.changed.is_empty());
    assert!(same.directories.is_empty());
    assert_eq!(same.totals.files_unchanged, same.a.files);
}

#[test]
fn top_and_depth_bound_the_directory_list() {
    let (_t, s) = store();
    image(
        &s,
        "a:1",
        &[("ADD /", &|d| file(d, "x/y/z/f", 10, 1, 0o644))],
    );
    image(
        &s,
        "b:1",
        &[("ADD /", &|d| {
            for i in 0..5 {
                file(d, &format!("d{i}/f"), 100 * (i + 1), 1, 0o644);
            }
        })],
    );
    let d = diff(
        &Input::Store("a:1".into()),
        &Input::Store("b:1".into()),
        Some(&s),
        &DiffOptions {
            top_dirs: 3,
            max_depth: 2,
            ..DiffOptions::default()
        },
    )
    .unwrap();
    let dirs: Vec<(&str, i64)> = d
        .directories
        .iter()
        .map(|x| (x.path.as_str(), x.diff))
        .collect();
    assert_eq!(dirs, [("/d4", 500), ("/d3", 400), ("/d2", 300)]);
    assert!(diff(
        &Input::Store("missing:1".into()),
        &Input::Store("b:1".into()),
        Some(&s),
        &DiffOptions::default(),
    )
    .is_err());
}
