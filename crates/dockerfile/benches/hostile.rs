//! Planning time of the hostile-input audit's large files (issue target: 100,000 instructions
//! plan in under 1 s, linear or n log n).
//! Run: cargo bench -p whittle-dockerfile --bench hostile

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::hint::black_box;
use whittle_dockerfile::{parse, plan, PlanOptions};

fn distinct_env(n: usize) -> String {
    let mut s = String::from("FROM scratch\n");
    for i in 0..n {
        let _ = writeln!(s, "ENV V{i}=x");
    }
    s
}

fn chained_stages(n: usize) -> String {
    let mut s = String::from("FROM scratch AS s0\n");
    for i in 1..n {
        let _ = writeln!(s, "FROM s{} AS s{i}", i - 1);
    }
    s
}

fn tmpfs_mounts(n: usize) -> String {
    let mut s = String::from("FROM scratch\nRUN ");
    for i in 0..n {
        let _ = write!(s, "--mount=type=tmpfs,target=/t{i} ");
    }
    s.push_str("true\n");
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostile");
    g.sample_size(10);
    for (name, text) in [
        ("100k distinct ENV", distinct_env(100_000)),
        ("100k chained stages", chained_stages(100_000)),
        ("20k tmpfs mounts", tmpfs_mounts(20_000)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let df = parse(black_box(&text)).expect("parses");
                plan(&df, &PlanOptions::default()).expect("plans")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
