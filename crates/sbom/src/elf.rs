//! Executables: which ELF files are worth a look (decided from the first bytes of the stream),
//! and what they embed: Go build info and cargo-auditable's `.dep-v0` section.
//!
//! A layer is a stream, and the parts of an ELF that matter lie anywhere in it (the section
//! headers at the end, Go's pointers into read-only data before the blob), so an executable is
//! spooled to an anonymous temporary file (at most [`Limits::max_binary`](crate::Limits) bytes)
//! and read through `object`'s `ReadCache`, which reads only the headers and the ranges asked
//! for. Shared libraries are not spooled: neither Go nor cargo-auditable puts its data there.

use crate::gobuildinfo::{self, BuildInfo, BuildInfoError};
use object::read::ReadCache;
use object::{Object, ObjectSection, ObjectSegment, ReadRef, SegmentFlags};
use std::fs::File;
use std::io::Read;

/// Bytes of the stream looked at before deciding.
pub const PREFIX: usize = 4096;
/// Largest `.dep-v0` section (compressed) and its JSON (decompressed).
const MAX_DEP_SECTION: u64 = 8 << 20;
const MAX_DEP_JSON: u64 = 64 << 20;

const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Whether a file starting with `prefix` is an ELF executable: `ET_EXEC`, or a position
/// independent one (`ET_DYN` with an interpreter). Reads only the ELF and program headers
/// that lie in the prefix.
pub fn is_executable(prefix: &[u8]) -> bool {
    if prefix.len() < 64 || !prefix.starts_with(b"\x7fELF") {
        return false;
    }
    let is64 = prefix[4] == 2;
    let big = prefix[5] == 2;
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = prefix.get(o..o + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = prefix.get(o..o + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = prefix.get(o..o + 8)?.try_into().ok()?;
        Some(if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    };
    let Some(e_type) = u16_at(16) else {
        return false;
    };
    if e_type == ET_EXEC {
        return true;
    }
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(32), u16_at(54), u16_at(56))
    } else {
        (u32_at(28).map(u64::from), u16_at(42), u16_at(44))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..phnum as u64).any(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize as u64));
        usize::try_from(at).ok().and_then(u32_at) == Some(PT_INTERP)
    })
}

/// What an executable embeds.
#[derive(Debug, Default)]
pub struct Embedded {
    /// Go build info.
    pub go: Option<BuildInfo>,
    /// cargo-auditable's dependency list (the decompressed JSON).
    pub rust: Option<serde_json::Value>,
    /// Why something that looked present could not be read.
    pub problems: Vec<String>,
}

/// Reads what a spooled executable embeds. A file `object` cannot parse (truncated, not ELF
/// after all) gives a problem, not an error.
pub fn inspect(file: File) -> Embedded {
    let mut out = Embedded::default();
    let cache = ReadCache::new(file);
    let obj = match object::File::parse(&cache) {
        Ok(o) => o,
        Err(e) => {
            out.problems.push(format!("not a readable ELF file: {e}"));
            return out;
        }
    };
    match go_build_info(&obj, &cache) {
        Ok(bi) => out.go = Some(bi),
        Err(BuildInfoError::NotFound) => {}
        Err(e) => out.problems.push(e.to_string()),
    }
    match dep_v0(&obj) {
        Ok(v) => out.rust = v,
        Err(e) => out.problems.push(format!(".dep-v0 section: {e}")),
    }
    out
}

/// Reads `len` bytes at virtual address `addr`, from the file range of the segment that maps
/// it (less at the end of that range; `None` when no segment maps it).
fn read_vaddr<'a, R: ReadRef<'a>>(
    obj: &object::File<'a, R>,
    data: R,
    addr: u64,
    len: u64,
) -> Option<Vec<u8>> {
    for seg in obj.segments() {
        let start = seg.address();
        let (off, filesz) = seg.file_range();
        if addr >= start && addr - start < filesz {
            let delta = addr - start;
            let n = len.min(filesz - delta);
            return data.read_bytes_at(off + delta, n).ok().map(<[u8]>::to_vec);
        }
    }
    None
}

fn go_build_info<'a, R: ReadRef<'a>>(
    obj: &object::File<'a, R>,
    data: R,
) -> Result<BuildInfo, BuildInfoError> {
    // Go's debug/buildinfo: the section's address, else the first writable, not executable
    // loadable segment.
    let start = match obj.section_by_name(".go.buildinfo") {
        Some(s) => s.address(),
        None => obj
            .segments()
            .find(|s| match s.flags() {
                SegmentFlags::Elf { p_flags } => p_flags & (PF_X | PF_W) == PF_W,
                _ => false,
            })
            .map(|s| s.address())
            .ok_or(BuildInfoError::NotFound)?,
    };
    let window =
        read_vaddr(obj, data, start, gobuildinfo::SEARCH as u64).ok_or(BuildInfoError::NotFound)?;
    let at = gobuildinfo::find(&window).ok_or(BuildInfoError::NotFound)?;
    let (vers, modinfo) =
        gobuildinfo::decode(&window[at..], &mut |a, l| read_vaddr(obj, data, a, l))?;
    Ok(gobuildinfo::parse_modinfo(&vers, &modinfo))
}

fn dep_v0<'a, R: ReadRef<'a>>(
    obj: &object::File<'a, R>,
) -> Result<Option<serde_json::Value>, String> {
    let Some(sec) = obj.section_by_name(".dep-v0") else {
        return Ok(None);
    };
    if sec.size() > MAX_DEP_SECTION {
        return Err(format!(
            "{} bytes, more than the {MAX_DEP_SECTION} read",
            sec.size()
        ));
    }
    let raw = sec.data().map_err(|e| e.to_string())?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(raw)
        .take(MAX_DEP_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not zlib data: {e}"))?;
    if json.len() as u64 > MAX_DEP_JSON {
        return Err(format!("decompresses to more than {MAX_DEP_JSON} bytes"));
    }
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_executables_only() {
        assert!(!is_executable(b"\x7fELF"));
        assert!(!is_executable(&[0u8; 100]));
        let mut exec = vec![0u8; 64];
        exec[..4].copy_from_slice(b"\x7fELF");
        exec[4] = 2;
        exec[5] = 1;
        exec[16] = 2;
        assert!(is_executable(&exec));
        exec[16] = 3; // ET_DYN without program headers in the prefix: a library
        exec[32] = 0xff;
        exec[56] = 5;
        assert!(!is_executable(&exec));
    }
}
