//! dive's figures on crafted images whose wasted bytes and efficiency are known by construction.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use std::fs;

#[test]
fn the_same_file_changed_in_three_layers() {
    let (_t, s) = store();
    image(
        &s,
        "three:1",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "a", 100, 1, 0o644);
                file(d, "b", 50, 2, 0o644);
            }),
            ("/bin/sh -c make a", &|d| file(d, "a", 200, 3, 0o644)),
            ("/bin/sh -c make a again", &|d| file(d, "a", 300, 4, 0o644)),
        ],
    );
    let a = run(&s, "three:1");
    let sizes: Vec<u64> = a.layer.iter().map(|l| l.size_bytes).collect();
    assert_eq!(sizes, [150, 200, 300]);
    // /a: cumulative 600, smallest 100; /b: 50 and 50.
    close(a.image.efficiency_score, 150.0 / 650.0);
    assert_eq!(a.image.inefficient_bytes, 600);
    assert_eq!(a.image.wasted_bytes, 600);
    assert_eq!(a.image.user_size_bytes, 500);
    close(a.image.user_wasted_percent, 600.0 / 500.0);
    assert_eq!(a.image.file_reference.len(), 1);
    let f = &a.image.file_reference[0];
    assert_eq!((f.count, f.size_bytes, f.file.as_str()), (3, 600, "/a"));
    // dive's command drops "/bin/sh -c "; the history skips empty layers.
    assert_eq!(a.layer[1].command, "make a");
    assert_eq!(a.layer[1].created_by.as_deref(), Some("/bin/sh -c make a"));
    assert_eq!(a.layer[2].files_changed, 1);
    assert_eq!(a.layer[2].bytes_changed, 300);
    // Both replaced versions are reported, each at the layer that added it.
    let over: Vec<(usize, Option<usize>, u64)> = a
        .findings
        .iter()
        .map(|f| (f.layer, f.related_layer, f.bytes))
        .collect();
    assert_eq!(over, [(1, Some(2), 200), (0, Some(1), 100)]);
    assert!(a
        .findings
        .iter()
        .all(|f| f.kind == whittle_analyze::FindingKind::OverwrittenLater));
}

#[test]
fn whiteouts_of_a_file_and_a_directory() {
    let (_t, s) = store();
    image(
        &s,
        "wh:1",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "d/x", 1000, 1, 0o644);
                file(d, "d/y", 2000, 2, 0o644);
                file(d, "f", 500, 3, 0o644);
                file(d, "g", 10, 4, 0o644);
            }),
            ("rm -rf /d /f", &|d| {
                whiteout(d, "d");
                whiteout(d, "f");
            }),
        ],
    );
    let a = run(&s, "wh:1");
    assert_eq!(a.layer[0].size_bytes, 3510);
    assert_eq!(a.layer[1].size_bytes, 0);
    // dive: a file's whiteout counts 0 (so /f becomes inefficient: 500, smallest 0); a
    // directory's whiteout counts what was in it (3000) under its own path, seen once: not
    // inefficient. min = 1000 + 2000 + 0 + 10 + 3000, cumulative = 1000 + 2000 + 500 + 10 + 3000.
    close(a.image.efficiency_score, 6010.0 / 6510.0);
    assert_eq!(a.image.wasted_bytes, 500);
    assert_eq!(a.image.file_reference.len(), 1);
    assert_eq!(a.image.file_reference[0].file, "/f");
    assert_eq!(a.image.file_reference[0].count, 2);
    // No user bytes but bytes wasted: dive's ratio is +Inf (JSON null), and its rule fails.
    assert!(a.image.user_wasted_percent.is_infinite());
    let json = serde_json::to_value(&a).unwrap();
    assert!(json["image"]["userWastedPercent"].is_null());
    // The real view: three files (3500 bytes) removed, all reported as deleted later, which
    // dive's 500 does not show.
    assert_eq!(a.layer[1].files_removed, 3);
    assert_eq!(a.layer[1].bytes_removed, 3500);
    let del: Vec<_> = a
        .findings_of(whittle_analyze::FindingKind::DeletedLater)
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!((del[0].bytes, del[0].files, del[0].layer), (3500, 3, 0));
    assert_eq!(del[0].related_layer, Some(1));
    assert_eq!(del[0].related_created_by.as_deref(), Some("rm -rf /d /f"));
    assert_eq!(a.image.files, 1, "only /g is left");
}

#[test]
fn opaque_directories_are_ignored_by_dive_but_reported() {
    let (_t, s) = store();
    image(
        &s,
        "opq:1",
        &[
            ("ADD rootfs /", &|d| {
                file(d, "o/p", 700, 1, 0o644);
                file(d, "o/q", 300, 2, 0o644);
                file(d, "keep", 5, 3, 0o644);
            }),
            ("replace /o", &|d| {
                opaque(d, "o");
                file(d, "o/r", 100, 4, 0o644);
            }),
        ],
    );
    let a = run(&s, "opq:1");
    // dive drops the marker: nothing is visited twice, nothing wasted.
    assert_eq!(a.image.efficiency_score, 1.0);
    assert_eq!(a.image.wasted_bytes, 0);
    assert!(a.image.file_reference.is_empty());
    assert_eq!(a.layer[1].size_bytes, 100);
    // The real view: /o/p and /o/q are gone, their 1000 bytes ship for nothing.
    assert_eq!(a.layer[1].files_removed, 2);
    assert_eq!(a.layer[1].files_added, 1);
    let hid: Vec<_> = a
        .findings_of(whittle_analyze::FindingKind::HiddenByOpaque)
        .collect();
    assert_eq!(hid.len(), 1);
    assert_eq!((hid[0].bytes, hid[0].files, hid[0].layer), (1000, 2, 0));
    assert_eq!(a.image.files, 2, "/keep and /o/r");
}

#[test]
fn hard_links_count_zero_and_keep_their_data_alive() {
    let (_t, s) = store();
    let base = |d: &std::path::Path| {
        file(d, "h/a_data", 4096, 1, 0o644);
        fs::hard_link(d.join("h/a_data"), d.join("h/b_link")).unwrap();
    };
    image(
        &s,
        "hl:1",
        &[
            ("ADD rootfs /", &base),
            ("rm /h/a_data", &|d| whiteout(d, "h/a_data")),
        ],
    );
    let a = run(&s, "hl:1");
    // The link entry has size 0: the layer is 4096 bytes.
    assert_eq!(a.layer[0].size_bytes, 4096);
    // dive: /h/a_data 4096 then 0 (smallest 0), /h/b_link 0: score 0, all 4096 wasted.
    assert_eq!(a.image.efficiency_score, 0.0);
    assert_eq!(a.image.wasted_bytes, 4096);
    // But the data is still reachable through /h/b_link: not reported as deleted.
    assert_eq!(
        a.findings_of(whittle_analyze::FindingKind::DeletedLater)
            .count(),
        0
    );

    image(
        &s,
        "hl:2",
        &[
            ("ADD rootfs /", &base),
            ("rm /h/a_data /h/b_link", &|d| {
                whiteout(d, "h/a_data");
                whiteout(d, "h/b_link");
            }),
        ],
    );
    let b = run(&s, "hl:2");
    let del: Vec<_> = b
        .findings_of(whittle_analyze::FindingKind::DeletedLater)
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].bytes, 4096);
}

/// dive's own test image (`.data/test-docker-image.tar`, checked by dive's export test),
/// rebuilt layer by layer with a small base: dive lists exactly these three inefficient files,
/// in this order, for 32025 bytes.
#[test]
fn dives_own_test_image() {
    let (_t, s) = store();
    const N: usize = 6405;
    let layers: [LayerFn<'_>; 14] = [
        ("#(nop) ADD file:base in / ", &|d| {
            file(d, "bin/sh", 1000, 9, 0o755);
            dir(d, "root", 0o700);
            dir(d, "tmp", 0o1777);
        }),
        ("#(nop) ADD file:readme in /somefile.txt ", &|d| {
            file(d, "somefile.txt", N, 1, 0o644)
        }),
        ("mkdir -p /root/example/really/nested", &|d| {
            dir(d, "root/example/really/nested", 0o755)
        }),
        ("cp /somefile.txt /root/example/somefile1.txt", &|d| {
            file(d, "root/example/somefile1.txt", N, 1, 0o644)
        }),
        ("chmod 444 /root/example/somefile1.txt", &|d| {
            file(d, "root/example/somefile1.txt", N, 1, 0o444)
        }),
        ("cp /somefile.txt /root/example/somefile2.txt", &|d| {
            file(d, "root/example/somefile2.txt", N, 1, 0o644)
        }),
        ("cp /somefile.txt /root/example/somefile3.txt", &|d| {
            file(d, "root/example/somefile3.txt", N, 1, 0o644)
        }),
        ("mv /root/example/somefile3.txt /root/saved.txt", &|d| {
            whiteout(d, "root/example/somefile3.txt");
            file(d, "root/saved.txt", N, 1, 0o644);
        }),
        ("cp /root/saved.txt /root/.saved.txt", &|d| {
            file(d, "root/.saved.txt", N, 1, 0o644)
        }),
        ("rm -rf /root/example/", &|d| whiteout(d, "root/example")),
        ("#(nop) ADD dir:data in /root/.data/ ", &|d| {
            file(d, "root/.data/tag.txt", 2187, 2, 0o644)
        }),
        ("cp /root/saved.txt /tmp/saved.again1.txt", &|d| {
            file(d, "tmp/saved.again1.txt", N, 1, 0o644)
        }),
        ("cp /root/saved.txt /root/.data/saved.again2.txt", &|d| {
            file(d, "root/.data/saved.again2.txt", N, 1, 0o644)
        }),
        ("chmod +x /root/saved.txt", &|d| {
            file(d, "root/saved.txt", N, 1, 0o755)
        }),
    ];
    image(&s, "dive-test:1", &layers);
    let a = run(&s, "dive-test:1");
    let sizes: Vec<u64> = a.layer.iter().map(|l| l.size_bytes).collect();
    let n = N as u64;
    assert_eq!(sizes, [1000, n, 0, n, n, n, n, n, n, 0, 2187, n, n, n]);
    let refs: Vec<(u32, u64, &str)> = a
        .image
        .file_reference
        .iter()
        .map(|f| (f.count, f.size_bytes, f.file.as_str()))
        .collect();
    assert_eq!(
        refs,
        [
            (2, 12810, "/root/saved.txt"),
            (2, 12810, "/root/example/somefile1.txt"),
            (2, 6405, "/root/example/somefile3.txt"),
        ]
    );
    assert_eq!(a.image.inefficient_bytes, 32025);
    // Smallest sizes: /bin/sh 1000, /root/.data/tag.txt 2187, seven paths of 6405 (somefile,
    // somefile1, somefile2, saved, .saved, again1, again2), /root/example's whiteout 12810
    // (somefile1 + somefile2), somefile3 0. Cumulative: 1000 + 2187 + six single 6405s +
    // 12810 three times (somefile1, saved, /root/example).
    close(a.image.efficiency_score, 60832.0 / 80047.0);
}
