//! Crafted images for the analysis tests: each layer is a directory filled by a closure, written
//! with `whittle_layer::write_layer` (whiteouts and opaque markers are plain files named
//! `.wh.NAME` and `.wh..wh..opq`, as they appear in a layer tar) and stored with
//! `Store::write_image`.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use whittle_analyze::{analyze, Analysis, Input, Options};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

/// A store in a temporary directory.
pub fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("store")).unwrap();
    (t, s)
}

/// One layer: its history line and what it holds.
pub type LayerFn<'a> = (&'a str, &'a dyn Fn(&Path));

/// Stores an image made of `layers` (bottom first) as `name`.
pub fn image(s: &Store, name: &str, layers: &[LayerFn<'_>]) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for (created_by, fill) in layers {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(dir.path(), &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
        history.push(serde_json::json!({"created_by": created_by}));
        // A metadata-only step between layers, as ENV makes: must not shift the history.
        history.push(serde_json::json!({"created_by": "ENV X=1", "empty_layer": true}));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse(name).unwrap(), &img.manifest)
        .unwrap();
}

/// Options that report every finding, however small.
pub fn opts() -> Options {
    Options {
        min_finding_bytes: 0,
        ..Options::default()
    }
}

/// Analyses a stored image.
pub fn run(s: &Store, name: &str) -> Analysis {
    analyze(&Input::Store(name.into()), Some(s), &opts()).unwrap()
}

/// Writes a file of `size` bytes (content from `seed`, so different seeds differ) with `mode`.
pub fn file(root: &Path, rel: &str, size: usize, seed: u8, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..size)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a file with the given content.
pub fn text(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// A whiteout deleting `rel` from the layers below.
pub fn whiteout(root: &Path, rel: &str) {
    let p = Path::new(rel);
    let name = p.file_name().unwrap().to_str().unwrap();
    let parent = root.join(p.parent().unwrap());
    fs::create_dir_all(&parent).unwrap();
    fs::write(parent.join(format!(".wh.{name}")), b"").unwrap();
}

/// Marks directory `rel` opaque.
pub fn opaque(root: &Path, rel: &str) {
    let d = root.join(rel);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(".wh..wh..opq"), b"").unwrap();
}

/// Creates a directory.
pub fn dir(root: &Path, rel: &str, mode: u32) {
    let d = root.join(rel);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
}

/// Kinds of the findings, in order.
pub fn kinds(a: &Analysis) -> Vec<whittle_analyze::FindingKind> {
    a.findings.iter().map(|f| f.kind).collect()
}

/// Asserts two floats are equal to 1e-12.
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// What a crafted ELF file holds (see [`elf`]).
#[derive(Clone, Default)]
pub struct ElfSpec {
    /// `ET_REL` (an object file) instead of `ET_DYN`.
    pub relocatable: bool,
    /// `PT_INTERP`.
    pub interp: Option<&'static str>,
    /// `DT_NEEDED`.
    pub needed: Vec<&'static str>,
    /// Bytes of a `.debug_info` section.
    pub debug: usize,
    /// Symbols in a `.symtab` (24 bytes each; its `.strtab` holds 8 bytes per symbol).
    pub symbols: usize,
    /// Bytes of filler after the dynamic section, so that the sections lie past the probe's
    /// prefix.
    pub pad: usize,
    /// Name a `.gopclntab` section (as Go's linker does).
    pub go: bool,
    /// Mark it FreeBSD's (`EI_OSABI` 9).
    pub freebsd: bool,
}

/// The bytes of a minimal 64-bit little-endian ELF file built from `spec`: a header, program
/// headers (`PT_LOAD` over the first 1024 bytes, `PT_INTERP`, `PT_DYNAMIC`), the interpreter,
/// `.dynstr`, `.dynamic`, filler, the sections and last the section header table (as linkers
/// lay them out).
pub fn elf(spec: &ElfSpec) -> Vec<u8> {
    fn put(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }
    let mut b = vec![0u8; 1024];
    put(&mut b, 0, b"\x7fELF\x02\x01\x01");
    if spec.freebsd {
        b[7] = 9;
    }
    put(
        &mut b,
        16,
        &(if spec.relocatable { 1u16 } else { 3u16 }).to_le_bytes(),
    );
    put(&mut b, 18, &62u16.to_le_bytes()); // x86-64
    put(&mut b, 20, &1u32.to_le_bytes());
    put(&mut b, 32, &64u64.to_le_bytes()); // phoff
    put(&mut b, 52, &64u16.to_le_bytes());
    put(&mut b, 54, &56u16.to_le_bytes());
    put(&mut b, 58, &64u16.to_le_bytes());
    let mut phdrs: Vec<(u32, u64, u64)> = vec![(1, 0, 1024)]; // (type, offset, filesz)
    if let Some(i) = spec.interp {
        put(&mut b, 256, i.as_bytes());
        phdrs.push((3, 256, i.len() as u64 + 1));
    }
    // .dynstr at 512, .dynamic at 768
    let mut dynstr = vec![0u8];
    let mut dynamic: Vec<(u64, u64)> = Vec::new();
    for n in &spec.needed {
        dynamic.push((1, dynstr.len() as u64));
        dynstr.extend_from_slice(n.as_bytes());
        dynstr.push(0);
    }
    put(&mut b, 512, &dynstr);
    dynamic.push((5, 512)); // DT_STRTAB: an address (PT_LOAD maps 0 → 0)
    dynamic.push((0, 0));
    for (i, (t, v)) in dynamic.iter().enumerate() {
        put(&mut b, 768 + i * 16, &t.to_le_bytes());
        put(&mut b, 768 + i * 16 + 8, &v.to_le_bytes());
    }
    phdrs.push((2, 768, dynamic.len() as u64 * 16));
    for (i, (t, off, sz)) in phdrs.iter().enumerate() {
        let at = 64 + i * 56;
        put(&mut b, at, &t.to_le_bytes());
        put(&mut b, at + 8, &off.to_le_bytes());
        put(&mut b, at + 16, &off.to_le_bytes()); // vaddr = offset
        put(&mut b, at + 32, &sz.to_le_bytes());
    }
    put(&mut b, 56, &(phdrs.len() as u16).to_le_bytes());
    b.extend((0..spec.pad).map(|i| (i % 7) as u8));
    // Sections: (name, type, offset, size, link)
    let mut shstrtab = vec![0u8];
    let mut secs: Vec<(u32, u32, u64, u64, u32)> = vec![(0, 0, 0, 0, 0)];
    let mut name = |n: &str| -> u32 {
        let at = shstrtab.len() as u32;
        shstrtab.extend_from_slice(n.as_bytes());
        shstrtab.push(0);
        at
    };
    let text = name(".text");
    secs.push((text, 1, 0, 1024, 0));
    if spec.go {
        let n = name(".gopclntab");
        let at = b.len() as u64;
        b.extend_from_slice(&[1u8; 64]);
        secs.push((n, 1, at, 64, 0));
    }
    if spec.debug > 0 {
        let n = name(".debug_info");
        let at = b.len() as u64;
        b.extend((0..spec.debug).map(|i| (i % 13) as u8));
        secs.push((n, 1, at, spec.debug as u64, 0));
    }
    if spec.symbols > 0 {
        let strtab_index = secs.len() as u32 + 1;
        let n = name(".symtab");
        let at = b.len() as u64;
        b.extend(std::iter::repeat_n(0u8, spec.symbols * 24));
        secs.push((n, 2, at, spec.symbols as u64 * 24, strtab_index));
        let n = name(".strtab");
        let at = b.len() as u64;
        b.extend(std::iter::repeat_n(b'a', spec.symbols * 8));
        secs.push((n, 3, at, spec.symbols as u64 * 8, 0));
    }
    let n = name(".shstrtab");
    let shstrndx = secs.len() as u16;
    let at = b.len() as u64;
    b.extend_from_slice(&shstrtab);
    secs.push((n, 3, at, shstrtab.len() as u64, 0));
    let shoff = b.len() as u64;
    for (n, t, off, sz, link) in &secs {
        let mut h = [0u8; 64];
        put(&mut h, 0, &n.to_le_bytes());
        put(&mut h, 4, &t.to_le_bytes());
        put(&mut h, 24, &off.to_le_bytes());
        put(&mut h, 32, &sz.to_le_bytes());
        put(&mut h, 40, &link.to_le_bytes());
        b.extend_from_slice(&h);
    }
    put(&mut b, 40, &shoff.to_le_bytes());
    put(&mut b, 60, &(secs.len() as u16).to_le_bytes());
    put(&mut b, 62, &shstrndx.to_le_bytes());
    b
}

/// Writes `bytes` at `rel` with `mode`.
pub fn bytes(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A symbolic link at `rel` to `target`.
pub fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// Sets a file's modification time (seconds since 1970; layers clamp later times to the epoch).
pub fn mtime(root: &Path, rel: &str, secs: u64) {
    let f = fs::File::options()
        .write(true)
        .open(root.join(rel))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

/// A PEP 552 `.pyc` header (Python 3.11's magic) and a body: timestamp-based with `mtime` and
/// `size`, or hash-based when `hash`.
pub fn pyc(mtime: u32, size: u32, hash: bool) -> Vec<u8> {
    let mut b = vec![0xa7, 0x0d, b'\r', b'\n'];
    b.extend_from_slice(&(if hash { 3u32 } else { 0 }).to_le_bytes());
    b.extend_from_slice(&mtime.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend(std::iter::repeat_n(0xe3u8, 2000));
    b
}
