//! Parse + plan time for a 1,000-line multi-stage Dockerfile (issue target: under 2 ms).
//! Run: cargo bench -p whittle-dockerfile --bench parse_plan

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::hint::black_box;
use whittle_dockerfile::{parse, plan, PlanOptions};

/// A realistic file: global ARGs, 20 stages chained by FROM and COPY --from, every common
/// instruction, continuations, heredocs, mounts and expansions. Exactly 1,000 lines.
pub fn thousand_lines() -> String {
    let mut s = String::from(
        "# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm-slim\nARG VERSION=1.2.3\n",
    );
    let mut stage = 0;
    while s.lines().count() < 960 {
        let from = if stage == 0 {
            "${BASE}".to_string()
        } else {
            format!("s{}", stage - 1)
        };
        // Stage 0 copies from an image; later stages from the previous stage.
        let prev = if stage == 0 {
            "busybox:1".to_string()
        } else {
            format!("s{}", stage - 1)
        };
        let _ = write!(
            s,
            "FROM {from} AS s{stage}\nARG VERSION\nENV APP_HOME=/opt/app{stage} PATH=/opt/app{stage}/bin:$PATH\nWORKDIR $APP_HOME\n\
LABEL org.opencontainers.image.version=\"${{VERSION}}\" stage=\"{stage}\"\n\
COPY --chown=1000:1000 --chmod=0644 go.mod go.sum ./\n\
RUN --mount=type=cache,target=/root/.cache/s{stage} \\\n    apt-get update && \\\n    # keep the list short\n    apt-get install -y --no-install-recommends ca-certificates curl && \\\n    rm -rf /var/lib/apt/lists/*\n\
COPY . .\nRUN <<EOF\nset -e\necho building ${{VERSION%.*}}\nmake -j2 all\nEOF\n\
COPY --from={prev} /opt/app/bin/ /opt/shared/\n\
ENV GREETING=\"hello ${{USER:-world}}\" \\\n    TRIMMED=${{APP_HOME##*/}}\n\
EXPOSE 8080/tcp 9090\nUSER 1000:1000\nHEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost:8080/ || exit 1\n\
CMD [\"/opt/app/bin/server\", \"--port\", \"8080\"]\n\n",
        );
        stage += 1;
    }
    while s.lines().count() < 1000 {
        s.push_str("# padding comment\n");
    }
    s
}

fn bench(c: &mut Criterion) {
    let src = thousand_lines();
    assert_eq!(src.lines().count(), 1000);
    let opts = PlanOptions::default();
    // Sanity: the file is valid and every stage is built.
    let df = parse(&src).expect("valid");
    let p = plan(&df, &opts).expect("plans");
    assert!(p.order.len() > 10);
    c.bench_function("parse_plan_1000_lines", |b| {
        b.iter(|| {
            let df = parse(black_box(&src)).expect("valid");
            black_box(plan(&df, &opts).expect("plans"))
        })
    });
    c.bench_function("parse_1000_lines", |b| {
        b.iter(|| black_box(parse(black_box(&src)).expect("valid")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
