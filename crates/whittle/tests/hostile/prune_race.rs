//! `prune` running while builds tag their images: every build that succeeds must leave its
//! image tagged, complete and runnable, and `fsck` must see a consistent store.

use crate::{env, root_or_skip, whittle};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn six_builds_and_a_prune_loop_for_ten_rounds() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let root = e.root.clone();
    for round in 0..10 {
        let stop = AtomicBool::new(false);
        let results: Vec<(String, bool, String)> = std::thread::scope(|s| {
            let pruner = s.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = whittle(&root, &["prune"]);
                    assert!(r.ok, "prune failed: {}", r.stderr);
                    n += 1;
                }
                n
            });
            let builds: Vec<_> = (0..6)
                .map(|i| {
                    let root = &root;
                    let ctx = e.tmp.path().join(format!("ctx-{round}-{i}"));
                    s.spawn(move || {
                        fs::create_dir_all(&ctx).unwrap();
                        fs::write(
                            ctx.join("Dockerfile"),
                            format!("FROM test/busybox:1\nRUN echo {round}-{i} > /f\n"),
                        )
                        .unwrap();
                        let tag = format!("race/{i}:{round}");
                        let r = whittle(
                            root,
                            &[
                                "build",
                                "--progress=plain",
                                "--network=none",
                                "-t",
                                &tag,
                                &ctx.to_string_lossy(),
                            ],
                        );
                        (tag, r.ok, r.stderr)
                    })
                })
                .collect();
            let out = builds.into_iter().map(|b| b.join().unwrap()).collect();
            stop.store(true, Ordering::Relaxed);
            assert!(pruner.join().unwrap() > 0);
            out
        });
        for (i, (tag, ok, stderr)) in results.iter().enumerate() {
            assert!(ok, "round {round}: build of {tag} failed: {stderr}");
            let r = whittle(&root, &["run", "--rm", "--network=none", tag, "cat", "/f"]);
            assert!(r.ok, "round {round}: {tag} does not run: {}", r.stderr);
            assert_eq!(r.stdout, format!("{round}-{i}\n"), "{tag}");
        }
        let r = whittle(&root, &["fsck"]);
        assert!(r.ok, "round {round}: fsck: {}{}", r.stdout, r.stderr);
    }
}
