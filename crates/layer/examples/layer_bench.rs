//! Driver for bench/layer.sh: generates a mixed-file corpus, writes layers and extracts them,
//! printing throughput and the process's peak RSS (VmHWM) as one JSON line.
//!
//! ```text
//! layer_bench gen DIR MB                     # corpus of about MB megabytes
//! layer_bench write DIR OUT gzip[:LEVEL]|zstd[:LEVEL]|none THREADS
//! layer_bench extract BLOB DIR
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use whittle_layer::*;

fn peak_rss_kb() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

const WORDS: &[&str] = &[
    "fn",
    "let",
    "mut",
    "return",
    "struct",
    "impl",
    "match",
    "self",
    "const",
    "static",
    "pub",
    "use",
    "crate",
    "if",
    "else",
    "for",
    "while",
    "loop",
    "break",
    "continue",
    "Result",
    "Option",
    "String",
    "Vec",
    "u64",
    "i32",
    "true",
    "false",
    "error",
    "value",
    "config",
    "layer",
    "digest",
    "buffer",
    "reader",
    "writer",
    "(",
    ")",
    "{",
    "}",
    ";",
    "=",
    "==",
    "->",
    "=>",
    "::",
    ".",
    ",",
    "&",
    "0",
    "1",
    "42",
    "0x1f",
    "\"hello\"",
    "// comment",
    "\n",
    "\n    ",
];

fn gen(dir: &Path, mb: u64) {
    let target = mb * 1_000_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    let mut n = 0u64;
    while total < target {
        n += 1;
        let sub = dir.join(format!("d{:02}/s{:02}", n % 37, n % 11));
        fs::create_dir_all(&sub).unwrap();
        let kind = rng.next() % 100;
        let (name, data): (String, Vec<u8>) = if kind < 40 {
            // Source-like text: compresses about 4:1.
            let len = rng.range(4_000, 200_000) as usize;
            let mut v = Vec::with_capacity(len + 32);
            while v.len() < len {
                v.extend_from_slice(WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes());
                v.push(b' ');
            }
            (format!("f{n}.rs"), v)
        } else if kind < 55 {
            // Incompressible (already compressed media, archives).
            let len = rng.range(100_000, 8_000_000) as usize;
            let mut v = Vec::with_capacity(len + 8);
            while v.len() < len {
                v.extend_from_slice(&rng.next().to_le_bytes());
            }
            (format!("f{n}.bin"), v)
        } else if kind < 75 {
            // Binary-like: structured records with noise, compresses about 2:1.
            let len = rng.range(50_000, 4_000_000) as usize;
            let mut v = Vec::with_capacity(len + 16);
            let mut i = 0u32;
            while v.len() < len {
                v.extend_from_slice(&i.to_le_bytes());
                v.extend_from_slice(&[0, 0, 0x48, 0x89]);
                v.extend_from_slice(&(rng.next() as u32 & 0x0fff).to_le_bytes());
                v.extend_from_slice(&[0xe8, 0, 0, 0]);
                i = i.wrapping_add(1);
            }
            (format!("f{n}.so"), v)
        } else {
            // Many small files.
            let len = rng.range(50, 4_000) as usize;
            let v = (0..len)
                .map(|i| b"abcdefgh\n"[(i + n as usize) % 9])
                .collect();
            (format!("small{n}.txt"), v)
        };
        total += data.len() as u64;
        fs::write(sub.join(&name), &data).unwrap();
        if n % 97 == 0 {
            let _ = std::os::unix::fs::symlink(&name, sub.join(format!("link{n}")));
        }
        if n % 131 == 0 {
            let _ = fs::hard_link(sub.join(&name), sub.join(format!("hard{n}")));
        }
    }
    println!("{{\"files\":{n},\"bytes\":{total}}}");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("gen") => gen(Path::new(&a[2]), a[3].parse().unwrap()),
        Some("write") => {
            // gzip (the default level), gzip:N, zstd, zstd:N, none.
            let (kind, level) = a[4].split_once(':').unwrap_or((a[4].as_str(), ""));
            let compression = match (kind, level.parse::<i32>().ok()) {
                ("gzip", None) => Compression::default(),
                ("gzip", Some(l)) => Compression::Gzip { level: l as u32 },
                ("zstd", l) => Compression::Zstd { level: l.unwrap_or(3) },
                _ => Compression::None,
            };
            let threads: usize = a[5].parse().unwrap();
            let out = BufWriter::with_capacity(1 << 20, fs::File::create(&a[3]).unwrap());
            let t = Instant::now();
            let opts = WriteOptions { compression, threads, epoch: 0, ..WriteOptions::default() };
            let (info, mut out) = write_layer(Path::new(&a[2]), &opts, out).unwrap();
            out.flush().unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"op\":\"write\",\"compression\":\"{}\",\"threads\":{threads},\"secs\":{secs:.3},\"tar_bytes\":{},\"blob_bytes\":{},\"mb_per_s\":{:.1},\"peak_rss_kb\":{},\"digest\":\"{}\"}}",
                a[4],
                info.uncompressed_size,
                info.size,
                info.uncompressed_size as f64 / 1e6 / secs,
                peak_rss_kb(),
                info.digest
            );
        }
        Some("extract") => {
            let f = fs::File::open(&a[2]).unwrap();
            let t = Instant::now();
            let s = extract_layer(f, Path::new(&a[3]), &ExtractOptions::default()).unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"op\":\"extract\",\"secs\":{secs:.3},\"tar_bytes\":{},\"mb_per_s\":{:.1},\"peak_rss_kb\":{}}}",
                s.uncompressed_size,
                s.uncompressed_size as f64 / 1e6 / secs,
                peak_rss_kb()
            );
        }
        _ => eprintln!("usage: layer_bench gen DIR MB | write DIR OUT gzip[:N]|zstd[:N]|none THREADS | extract BLOB DIR"),
    }
}
