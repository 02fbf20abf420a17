//! ELF facts gathered from a file's bytes as the layer streams past, never the whole file: the
//! program interpreter (`PT_INTERP`), the libraries it needs (`DT_NEEDED`, `DT_RUNPATH`/
//! `DT_RPATH`), and the bytes of its symbol table and debug sections.
//!
//! Why not `goblin` or `object`: both parse from a byte slice (or a reader they can seek) that
//! holds every offset they follow, and an ELF's section header table sits at the end of the
//! file. A layer is one forward-only (often compressed) stream, so the whole file would have to
//! be held. Instead, [`Probe`] keeps:
//!
//! - the first [`PREFIX`] bytes: the ELF header, the program headers, `PT_INTERP`, the notes,
//!   `.dynstr` (linkers put these in the first pages);
//! - once the header is known, the regions it points at further on, captured as they stream
//!   past: `PT_DYNAMIC` (at most [`MAX_DYNAMIC`] bytes) and the section header table (at most
//!   [`MAX_SHT`] bytes) with the [`TAIL`] bytes before it, where GNU ld usually puts
//!   `.shstrtab` (the section names);
//! - the section names are needed before their offset is known (it is in the section header
//!   table, at the end), and linkers differ on where they go (lld puts the large `.strtab`
//!   between `.shstrtab` and the table; Go puts `.shstrtab` early). Every section name table
//!   holds its own name, `.shstrtab`, so around each place where `.shstrtab\0` streams past
//!   [`AROUND`] bytes on each side are kept (the last [`MAX_AROUND`] places; the bytes before
//!   come from a ring of the last [`AROUND`] bytes).
//!
//! So at most about 1.3 MiB per file being read, whatever the file's size. When a string or
//! table falls outside what was kept, the fact is left unknown (never guessed): without the
//! section names only `SHT_SYMTAB` (and the string table it links) is counted; debug sections
//! are recognised by name only (`.debug_*`, `.zdebug_*`).

/// Bytes kept from the start of a file.
pub const PREFIX: usize = 64 * 1024;
/// Most bytes of section headers kept (16,384 64-bit headers).
pub const MAX_SHT: u64 = 1 << 20;
/// Bytes kept before the section header table (for `.shstrtab`).
pub const TAIL: u64 = 64 * 1024;
/// Bytes kept on each side of a `.shstrtab\0` seen in the stream.
pub const AROUND: usize = 4096;
/// Most places around `.shstrtab\0` kept (the latest win).
pub const MAX_AROUND: usize = 8;
const SHSTRTAB: &[u8] = b".shstrtab\0";
/// Most bytes of `PT_DYNAMIC` kept.
pub const MAX_DYNAMIC: u64 = 64 * 1024;
/// Most `DT_NEEDED` entries and run paths kept.
const MAX_NEEDED: usize = 256;
/// Longest string read (interpreter, library name, run path).
const MAX_STR: usize = 4096;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const SHT_SYMTAB: u32 = 2;
const SHT_NOBITS: u32 = 8;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// `e_type`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfType {
    /// `ET_REL`: an object file (needs its symbols).
    Relocatable,
    /// `ET_EXEC`.
    Executable,
    /// `ET_DYN`: a shared library or a position-independent executable.
    Shared,
    /// Core dumps and others.
    Other,
}

/// What was learnt about one ELF file.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// Its type.
    pub elf_type: ElfType,
    /// `PT_INTERP`: the dynamic loader it asks for.
    pub interp: Option<Box<[u8]>>,
    /// `DT_NEEDED` names (empty when unknown, see `dynamic_read`).
    pub needed: Vec<Box<[u8]>>,
    /// `DT_RUNPATH` and `DT_RPATH` directories.
    pub runpath: Vec<Box<[u8]>>,
    /// Whether the dynamic section and its strings were read (so `needed` is complete).
    pub dynamic_read: bool,
    /// Bytes of `SHT_SYMTAB` sections and the string tables they link.
    pub symtab_bytes: u64,
    /// Bytes of `.debug_*` and `.zdebug_*` sections.
    pub debug_bytes: u64,
    /// Whether the section names were read.
    pub named: bool,
    /// Built by Go (a `Go` note, or `.gopclntab`/`.go.buildinfo` sections).
    pub go: bool,
    /// Made for another system than Linux (`EI_OSABI` neither 0, System V, nor 3, Linux: a
    /// FreeBSD program, say), so Linux's loader rules do not apply.
    pub foreign_os: bool,
}

/// A region of the file kept after the prefix.
struct Region {
    start: u64,
    end: u64,
    buf: Vec<u8>,
}

/// Reads an ELF header's fields with the file's class and byte order.
#[derive(Clone, Copy)]
struct Fmt {
    wide: bool,
    le: bool,
}

impl Fmt {
    fn u16(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(u64::from(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }))
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        }))
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }
    /// An address-sized word.
    fn word(self, b: &[u8], at: usize) -> Option<u64> {
        if self.wide {
            self.u64(b, at)
        } else {
            self.u32(b, at)
        }
    }
}

/// The ELF header fields used here.
struct Header {
    fmt: Fmt,
    os_abi: u8,
    elf_type: ElfType,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

fn header(b: &[u8]) -> Option<Header> {
    if b.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match *b.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match *b.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let f = Fmt { wide, le };
    let elf_type = match f.u16(b, 16)? {
        1 => ElfType::Relocatable,
        2 => ElfType::Executable,
        3 => ElfType::Shared,
        _ => ElfType::Other,
    };
    let (phoff, shoff, rest) = if wide {
        (f.u64(b, 32)?, f.u64(b, 40)?, 54)
    } else {
        (f.u32(b, 28)?, f.u32(b, 32)?, 42)
    };
    Some(Header {
        fmt: f,
        os_abi: *b.get(7)?,
        elf_type,
        phoff,
        phentsize: f.u16(b, rest)?,
        phnum: f.u16(b, rest + 2)?,
        shentsize: f.u16(b, rest + 4)?,
        shnum: f.u16(b, rest + 6)?,
        shstrndx: f.u16(b, rest + 8)?,
        shoff,
    })
}

/// One program header.
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// One section header.
struct Shdr {
    name: u64,
    sh_type: u32,
    offset: u64,
    size: u64,
    link: u64,
}

/// Collects an ELF file's facts from its bytes, fed in order.
#[derive(Default)]
pub struct Probe {
    prefix: Vec<u8>,
    /// Regions the header points at.
    regions: Vec<Region>,
    /// Regions around `.shstrtab\0`.
    around: Vec<Region>,
    /// The last [`AROUND`] bytes before `pos`.
    ring: Vec<u8>,
    pos: u64,
    planned: bool,
    not_elf: bool,
}

impl Probe {
    /// A probe for a file of `size` bytes, or `None` when it is too small to be an ELF file.
    pub fn new(size: u64) -> Option<Probe> {
        // Nothing is allocated until bytes arrive: most files are not ELF and are dropped
        // after their first four bytes.
        (size >= 52).then(Probe::default)
    }

    /// Whether the file turned out not to be ELF (feeding it more is useless).
    pub fn done(&self) -> bool {
        self.not_elf
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.not_elf {
            return;
        }
        if self.prefix.len() < PREFIX {
            let take = chunk.len().min(PREFIX - self.prefix.len());
            self.prefix.extend_from_slice(&chunk[..take]);
            self.pos += take as u64;
            chunk = &chunk[take..];
            if self.prefix.len() >= 4 && &self.prefix[..4] != b"\x7fELF" {
                self.not_elf = true;
                self.prefix = Vec::new();
                return;
            }
            if self.prefix.len() < PREFIX {
                return;
            }
        }
        if !self.planned {
            self.plan();
        }
        if self.not_elf {
            return;
        }
        let (start, end) = (self.pos, self.pos + chunk.len() as u64);
        self.find_names(chunk);
        for r in self.regions.iter_mut().chain(self.around.iter_mut()) {
            let (s, e) = (r.start.max(start), r.end.min(end));
            if s < e {
                r.buf
                    .extend_from_slice(&chunk[(s - start) as usize..(e - start) as usize]);
            }
        }
        // The ring: the last AROUND bytes before the next chunk.
        if chunk.len() >= AROUND {
            self.ring.clear();
            self.ring.extend_from_slice(&chunk[chunk.len() - AROUND..]);
        } else {
            let drop = (self.ring.len() + chunk.len()).saturating_sub(AROUND);
            self.ring.drain(..drop);
            self.ring.extend_from_slice(chunk);
        }
        self.pos = end;
    }

    /// Starts a region around each `.shstrtab\0` in `chunk` (or straddling its start), filled
    /// from the ring up to `pos`; [`feed`](Self::feed) then fills it from the chunk.
    fn find_names(&mut self, chunk: &[u8]) {
        let start = self.pos;
        let ring_start = start - self.ring.len() as u64;
        let mut hits: Vec<u64> = Vec::new();
        // A name straddling the previous chunk and this one.
        let k = SHSTRTAB.len() - 1;
        let mut seam = self.ring[self.ring.len().saturating_sub(k)..].to_vec();
        let seam_start = start - seam.len() as u64;
        seam.extend_from_slice(&chunk[..chunk.len().min(k)]);
        hits.extend(
            memchr::memmem::find_iter(&seam, SHSTRTAB)
                .map(|i| seam_start + i as u64)
                .filter(|&p| p < start),
        );
        hits.extend(memchr::memmem::find_iter(chunk, SHSTRTAB).map(|i| start + i as u64));
        for p in hits {
            if self
                .around
                .last()
                .is_some_and(|r| p + (SHSTRTAB.len() as u64) <= r.end)
            {
                continue; // already inside the last region
            }
            let s = p.saturating_sub(AROUND as u64).max(ring_start);
            let buf = if s < start {
                self.ring[(s - ring_start) as usize..].to_vec()
            } else {
                Vec::new() // the chunk has every byte from `s` on
            };
            if self.around.len() >= MAX_AROUND {
                self.around.remove(0);
            }
            self.around.push(Region {
                start: s,
                end: p + (SHSTRTAB.len() + AROUND) as u64,
                buf,
            });
        }
    }

    /// Decides which regions after the prefix to keep (once the prefix is complete).
    fn plan(&mut self) {
        self.planned = true;
        let Some(h) = header(&self.prefix) else {
            self.not_elf = true;
            self.prefix = Vec::new();
            return;
        };
        self.ring = self.prefix[self.prefix.len().saturating_sub(AROUND)..].to_vec();
        let mut want: Vec<(u64, u64)> = Vec::new();
        for p in self.phdrs(&h) {
            if p.p_type == PT_DYNAMIC {
                let len = p.filesz.min(MAX_DYNAMIC);
                want.push((p.offset, p.offset.saturating_add(len)));
            }
        }
        if let Some(len) = sht_len(&h) {
            want.push((h.shoff.saturating_sub(TAIL), h.shoff.saturating_add(len)));
        }
        let after = PREFIX as u64;
        for (s, e) in want {
            let s = s.max(after);
            if s < e {
                self.regions.push(Region {
                    start: s,
                    end: e,
                    buf: Vec::new(),
                });
            }
        }
    }

    fn phdrs(&self, h: &Header) -> Vec<Phdr> {
        let f = h.fmt;
        let min = if f.wide { 56 } else { 32 };
        if h.phentsize < min {
            return Vec::new();
        }
        let mut out = Vec::new();
        for i in 0..h.phnum {
            let at = h.phoff.saturating_add(i * h.phentsize);
            let Some(b) = self.read_at(at, h.phentsize) else {
                break;
            };
            let p = if f.wide {
                (|| {
                    Some(Phdr {
                        p_type: f.u32(b, 0)? as u32,
                        offset: f.u64(b, 8)?,
                        vaddr: f.u64(b, 16)?,
                        filesz: f.u64(b, 32)?,
                    })
                })()
            } else {
                (|| {
                    Some(Phdr {
                        p_type: f.u32(b, 0)? as u32,
                        offset: f.u32(b, 4)?,
                        vaddr: f.u32(b, 8)?,
                        filesz: f.u32(b, 16)?,
                    })
                })()
            };
            out.extend(p);
        }
        out
    }

    /// `len` bytes at `at`, when they were kept.
    fn read_at(&self, at: u64, len: u64) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        if end <= self.prefix.len() as u64 {
            return self.prefix.get(at as usize..end as usize);
        }
        self.regions.iter().chain(&self.around).find_map(|r| {
            let have = r.start + r.buf.len() as u64;
            (at >= r.start && end <= have)
                .then(|| r.buf.get((at - r.start) as usize..(end - r.start) as usize))
                .flatten()
        })
    }

    /// The NUL-terminated string at `at` (at most [`MAX_STR`] bytes), when kept.
    fn cstr_at(&self, at: u64) -> Option<&[u8]> {
        let tail: &[u8] = if at < self.prefix.len() as u64 {
            &self.prefix[at as usize..]
        } else {
            self.regions.iter().chain(&self.around).find_map(|r| {
                let have = r.start + r.buf.len() as u64;
                (at >= r.start && at < have).then(|| &r.buf[(at - r.start) as usize..])
            })?
        };
        let tail = &tail[..tail.len().min(MAX_STR + 1)];
        let n = tail.iter().position(|&b| b == 0)?;
        Some(&tail[..n])
    }

    /// What was learnt, or `None` when the file is not ELF.
    pub fn finish(mut self) -> Option<ElfInfo> {
        if self.not_elf {
            return None;
        }
        if !self.planned {
            self.plan();
        }
        let h = header(&self.prefix)?;
        let f = h.fmt;
        let phdrs = self.phdrs(&h);
        let mut info = ElfInfo {
            elf_type: h.elf_type,
            interp: None,
            needed: Vec::new(),
            runpath: Vec::new(),
            dynamic_read: false,
            symtab_bytes: 0,
            debug_bytes: 0,
            named: false,
            go: false,
            foreign_os: !matches!(h.os_abi, 0 | 3),
        };
        let mut dynamic = None;
        for p in &phdrs {
            match p.p_type {
                PT_INTERP => {
                    if let Some(b) = self.read_at(p.offset, p.filesz.min(MAX_STR as u64)) {
                        let s = b.split(|&c| c == 0).next().unwrap_or(b);
                        if !s.is_empty() {
                            info.interp = Some(s.into());
                        }
                    }
                }
                PT_DYNAMIC => dynamic = Some((p.offset, p.filesz.min(MAX_DYNAMIC))),
                PT_NOTE => {
                    if let Some(b) = self.read_at(p.offset, p.filesz.min(PREFIX as u64)) {
                        info.go |= has_go_note(f, b);
                    }
                }
                _ => {}
            }
        }
        if let Some((off, len)) = dynamic {
            self.read_dynamic(f, &phdrs, off, len, &mut info);
        }
        self.read_sections(&h, &mut info);
        Some(info)
    }

    fn read_dynamic(&self, f: Fmt, phdrs: &[Phdr], off: u64, len: u64, info: &mut ElfInfo) {
        let Some(d) = self.read_at(off, len) else {
            return;
        };
        let ent = if f.wide { 16 } else { 8 };
        let half = ent / 2;
        let mut strtab = None;
        let mut names: Vec<(u64, u64)> = Vec::new(); // (tag, string offset)
        for e in d.chunks_exact(ent) {
            let (Some(tag), Some(val)) = (f.word(e, 0), f.word(e, half)) else {
                break;
            };
            match tag {
                0 => break,
                DT_STRTAB => strtab = Some(val),
                DT_NEEDED | DT_RPATH | DT_RUNPATH if names.len() < MAX_NEEDED => {
                    names.push((tag, val))
                }
                _ => {}
            }
        }
        // DT_STRTAB is an address: the PT_LOAD segment holding it gives its file offset.
        let Some(strtab) = strtab.and_then(|a| {
            phdrs.iter().find_map(|p| {
                (p.p_type == PT_LOAD && a >= p.vaddr && a - p.vaddr < p.filesz)
                    .then(|| p.offset.checked_add(a - p.vaddr))
                    .flatten()
            })
        }) else {
            return;
        };
        for (tag, at) in names {
            let Some(s) = strtab.checked_add(at).and_then(|a| self.cstr_at(a)) else {
                return; // a string out of reach: the list would be incomplete
            };
            if tag == DT_NEEDED {
                info.needed.push(s.into());
            } else {
                info.runpath.extend(
                    s.split(|&c| c == b':')
                        .filter(|p| !p.is_empty())
                        .map(Into::into),
                );
            }
        }
        info.dynamic_read = true;
    }

    fn read_sections(&self, h: &Header, info: &mut ElfInfo) {
        let Some(len) = sht_len(h) else {
            return;
        };
        let Some(table) = self.read_at(h.shoff, len) else {
            return;
        };
        let f = h.fmt;
        let shdrs: Vec<Shdr> = table
            .chunks_exact(h.shentsize as usize)
            .filter_map(|b| {
                if f.wide {
                    Some(Shdr {
                        name: f.u32(b, 0)?,
                        sh_type: f.u32(b, 4)? as u32,
                        offset: f.u64(b, 24)?,
                        size: f.u64(b, 32)?,
                        link: f.u32(b, 40)?,
                    })
                } else {
                    Some(Shdr {
                        name: f.u32(b, 0)?,
                        sh_type: f.u32(b, 4)? as u32,
                        offset: f.u32(b, 16)?,
                        size: f.u32(b, 20)?,
                        link: f.u32(b, 24)?,
                    })
                }
            })
            .collect();
        let names = shdrs
            .get(h.shstrndx as usize)
            .filter(|s| s.sh_type != SHT_NOBITS)
            .and_then(|s| self.read_at(s.offset, s.size));
        info.named = names.is_some();
        let name_of = |s: &Shdr| -> Option<&[u8]> {
            let t = names?.get(s.name as usize..)?;
            Some(&t[..t.iter().position(|&c| c == 0)?])
        };
        let mut linked: Vec<u64> = Vec::new();
        for s in &shdrs {
            if s.sh_type == SHT_SYMTAB {
                info.symtab_bytes = info.symtab_bytes.saturating_add(s.size);
                if s.link != h.shstrndx && !linked.contains(&s.link) {
                    linked.push(s.link);
                }
            }
            if s.sh_type == SHT_NOBITS {
                continue;
            }
            match name_of(s) {
                Some(n) if n.starts_with(b".debug_") || n.starts_with(b".zdebug_") => {
                    info.debug_bytes = info.debug_bytes.saturating_add(s.size);
                }
                Some(b".gopclntab" | b".go.buildinfo") => info.go = true,
                _ => {}
            }
        }
        for l in linked {
            if let Some(s) = shdrs.get(l as usize).filter(|s| s.sh_type != SHT_NOBITS) {
                info.symtab_bytes = info.symtab_bytes.saturating_add(s.size);
            }
        }
    }
}

/// Bytes of the section header table, when it is plausible and within [`MAX_SHT`].
fn sht_len(h: &Header) -> Option<u64> {
    let min = if h.fmt.wide { 64 } else { 40 };
    if h.shoff == 0 || h.shnum == 0 || h.shentsize < min {
        return None;
    }
    let len = h.shnum * h.shentsize;
    (len <= MAX_SHT).then_some(len)
}

/// Whether a `PT_NOTE` segment holds Go's build id note (name `Go`, type 4).
fn has_go_note(f: Fmt, mut b: &[u8]) -> bool {
    let pad = |n: u64| (n + 3) & !3;
    while b.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(ty)) = (f.u32(b, 0), f.u32(b, 4), f.u32(b, 8)) else {
            return false;
        };
        let name = b.get(12..12 + namesz as usize);
        if ty == 4 && name.is_some_and(|n| n.split(|&c| c == 0).next() == Some(b"Go")) {
            return true;
        }
        let next = 12 + pad(namesz) + pad(descsz);
        match b.get(next as usize..) {
            Some(rest) => b = rest,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn probe_file(path: &str, chunk: usize) -> Option<ElfInfo> {
        let mut f = std::fs::File::open(path).ok()?;
        let size = f.metadata().ok()?.len();
        let mut p = Probe::new(size)?;
        let mut buf = vec![0u8; chunk];
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            p.feed(&buf[..n]);
        }
        p.finish()
    }

    /// This test binary: built with debug info and symbols, dynamically linked on Linux.
    #[test]
    fn reads_this_test_binary_in_any_chunking() {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        let a = probe_file(exe, 256 * 1024).unwrap();
        let b = probe_file(exe, 4093).unwrap();
        assert_eq!(a, b, "chunk boundaries must not matter");
        assert!(a.named, "{a:?}");
        assert!(a.symtab_bytes > 0, "{a:?}");
        assert!(a.debug_bytes > 0, "{a:?}");
        assert!(!a.go);
        // binutils' view of the same file, when installed.
        if let Ok(o) = std::process::Command::new("readelf")
            .args(["-SW", exe])
            .output()
        {
            let text = String::from_utf8_lossy(&o.stdout);
            let (mut debug, mut symtab, mut strtab) = (0u64, 0u64, 0u64);
            for l in text.lines() {
                let Some(rest) = l.split_once(']').map(|(_, r)| r) else {
                    continue;
                };
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() < 6 {
                    continue;
                }
                let size = u64::from_str_radix(f[4], 16).unwrap_or(0);
                match f[0] {
                    n if n.starts_with(".debug_") => debug += size,
                    ".symtab" => symtab += size,
                    ".strtab" => strtab += size,
                    _ => {}
                }
            }
            assert_eq!(a.debug_bytes, debug);
            assert_eq!(a.symtab_bytes, symtab + strtab);
        }
        if let Some(i) = &a.interp {
            assert!(i.starts_with(b"/lib"), "{:?}", String::from_utf8_lossy(i));
            assert!(a.dynamic_read);
            assert!(a.needed.iter().any(|n| n.starts_with(b"libc.so")), "{a:?}");
        }
    }

    #[test]
    fn not_elf() {
        let mut p = Probe::new(100).unwrap();
        p.feed(b"#!/bin/sh\n");
        assert!(p.done());
        assert!(p.finish().is_none());
        assert!(Probe::new(10).is_none());
        // Truncated after the magic: no header, no facts, no panic.
        let mut p = Probe::new(100).unwrap();
        p.feed(b"\x7fELF\x02\x01\x01");
        assert!(p.finish().is_none());
    }

    #[test]
    fn hostile_offsets_do_not_panic() {
        // A 64-bit header whose tables point past the end and whose sizes overflow.
        let mut h = vec![0u8; 64];
        h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        h[16] = 2;
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff
        h[40..48].copy_from_slice(&(u64::MAX - 10).to_le_bytes()); // shoff
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&3u16.to_le_bytes());
        let mut p = Probe::new(64).unwrap();
        p.feed(&h);
        let i = p.finish().unwrap();
        assert_eq!(i.interp, None);
        assert_eq!(i.symtab_bytes, 0);
    }
}
