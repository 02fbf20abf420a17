//! Check time for a generated 1,000-line multi-stage Dockerfile without a context
//! (issue #14 target: at most 5 ms). Run: cargo bench -p whittle-check --bench check

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::hint::black_box;

/// 1,000 lines: global ARGs, stages chained by FROM and COPY --from, package installs with and
/// without the good habits, casing slips, legacy ENV, shell-form CMD.
fn thousand_lines() -> String {
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
        let _ = write!(
            s,
            "FROM {from} AS s{stage}\nARG VERSION\nENV APP_HOME=/opt/app{stage} PATH=/opt/app{stage}/bin:$PATH\nWORKDIR $APP_HOME\n\
LABEL org.opencontainers.image.version=\"${{VERSION}}\" stage=\"{stage}\"\n\
COPY go.mod go.sum ./\n\
RUN apt-get update && \\\n    apt-get install -y curl ca-certificates && \\\n    curl -fsSL https://example.com/x | sh\n\
RUN pip install requests && npm install left-pad\n\
COPY . .\nRUN go mod download && go build -o /out/app .\n\
ADD config.json /etc/app/\n\
env LEGACY value\n\
EXPOSE 8080/TCP 9090\nUSER 1000:1000\nHEALTHCHECK --interval=30s CMD curl -f http://localhost:8080/ || exit 1\n\
CMD /opt/app/bin/server --port 8080\n\n",
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
    let input = whittle_check::Input::new("Dockerfile", &src);
    let report = whittle_check::check(&input).expect("checks");
    assert!(report.findings.len() > 100, "{}", report.findings.len());
    c.bench_function("check_1000_lines", |b| {
        b.iter(|| black_box(whittle_check::check(black_box(&input)).expect("checks")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
