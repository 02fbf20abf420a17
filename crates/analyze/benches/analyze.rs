//! Analysis time for a synthetic image in the store: 3 gzip layers, 30,000 files (about 120 MB
//! of tar), with rewrites, deletions and a cache. Run: cargo bench -p whittle-analyze --bench
//! analyze. `bench/analyze.sh` times `whittle analyze` on real images.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::fs;
use std::hint::black_box;
use std::path::Path;
use whittle_analyze::{analyze, Input, Options};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

fn fill(d: &Path, layer: usize) {
    for i in 0..10_000usize {
        let dir = d.join(format!("usr/lib/pkg{}/sub{}", (i + layer) % 97, i % 13));
        fs::create_dir_all(&dir).unwrap();
        let size = 512 + (i * 7919 + layer * 31) % 7000;
        let data: Vec<u8> = (0..size)
            .map(|j| ((i * 31 + j * 7 + layer) % 251) as u8)
            .collect();
        fs::write(dir.join(format!("f{i}.so")), data).unwrap();
    }
    if layer == 2 {
        fs::create_dir_all(d.join("var/lib/apt/lists")).unwrap();
        fs::write(d.join("var/lib/apt/lists/Packages"), vec![7u8; 1 << 20]).unwrap();
        fs::create_dir_all(d.join("usr/lib/pkg1")).unwrap();
        fs::write(d.join("usr/lib/pkg1/.wh.sub1"), b"").unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in 0..3 {
        let d = tempfile::tempdir().unwrap();
        fill(d.path(), layer);
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(d.path(), &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse("bench:1").unwrap(), &img.manifest)
        .unwrap();
    let input = Input::Store("bench:1".into());
    let opts = Options::default();
    let mut g = c.benchmark_group("analyze");
    g.sample_size(10);
    g.bench_function("3 layers, 30k files", |b| {
        b.iter(|| black_box(analyze(&input, Some(&s), &opts).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
