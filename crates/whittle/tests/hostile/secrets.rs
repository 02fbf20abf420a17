//! Secrets stay out of everything a build keeps: layers, history, config, cache records, the
//! metadata database and exported archives.

use crate::{env, root_or_skip, whittle};
use std::fs;
use std::io::Read;
use std::path::Path;

const VALUE: &str = "s3cr3t-VALUE-9f2c7e";

/// Every file below `dir`, raw and (when it is a compressed stream) decompressed, searched for
/// `needle`; returns the files that hold it.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                todo.push(p);
                continue;
            }
            if !md.is_file() {
                continue;
            }
            let raw = fs::read(&p).unwrap_or_default();
            let mut plain = Vec::new();
            if let Ok((_, mut r)) = whittle_layer::decompress(std::io::Cursor::new(&raw)) {
                let _ = r.read_to_end(&mut plain);
            }
            if raw.windows(needle.len()).any(|w| w == needle)
                || plain.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn secret_values_are_in_no_layer_record_or_archive() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let src = e.tmp.path().join("tok");
    fs::write(&src, VALUE).unwrap();
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\n\
         RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /used\n\
         RUN --mount=type=secret,id=tok,env=TOKEN echo \"${#TOKEN}\" > /used-env\n",
    )
    .unwrap();
    let secret = format!("id=tok,src={}", src.display());
    let archive = e.tmp.path().join("img.tar");
    let out = format!("type=docker,dest={}", archive.display());
    let r = whittle(
        &e.root,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "--secret",
            &secret,
            "-t",
            "sec:1",
            "-o",
            &out,
            &e.ctx.to_string_lossy(),
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = whittle(
        &e.root,
        &[
            "run",
            "--rm",
            "--network=none",
            "sec:1",
            "cat",
            "/used",
            "/used-env",
        ],
    );
    assert_eq!(r.stdout, "19\n19\n", "{}", r.stderr);
    let r = whittle(&e.root, &["history", "--no-trunc", "sec:1"]);
    assert!(r.ok && !r.stdout.contains(VALUE), "{}", r.stdout);
    let hits = files_holding(&e.root, VALUE.as_bytes());
    assert!(hits.is_empty(), "the secret is stored in {hits:?}");
    let hits = files_holding(archive.parent().unwrap(), VALUE.as_bytes());
    assert_eq!(
        hits,
        vec![src.display().to_string()],
        "only the source file holds it"
    );
}
