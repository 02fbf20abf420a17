//! Go's embedded build info (what `go version -m` prints): the `\xff Go buildinf:` blob at the
//! start of a binary's data (the `.go.buildinfo` section), in both of its formats.
//!
//! Written by hand after Go's `debug/buildinfo` (no Rust crate reads it), independent of the
//! executable format: the caller finds the data start and reads virtual addresses.
//!
//! - The 32-byte header: the 14-byte magic, pointer size, flags (bit 0: big endian, bit 1:
//!   strings inline).
//! - Go 1.18+ (inline): the version and the module info follow the header, each a uvarint
//!   length and the bytes.
//! - Before 1.18 (pointers): the header holds two pointers, each to a Go string header
//!   (data pointer, length) elsewhere in memory.
//!
//! The module info is wrapped in 16-byte sentinels, removed here; [`parse_modinfo`] reads its
//! lines (`path`, `mod`, `dep`, `=>` for a replacement, `build`).

/// The magic that starts the blob.
pub const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const ALIGN: usize = 16;
/// How far past the data start the blob is looked for (Go's `searchSize`).
pub const SEARCH: usize = 64 * 1024;
/// Longest version or module-info string read.
pub const MAX_STRING: u64 = 4 << 20;

/// Why build info could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildInfoError {
    /// No aligned magic in the search window: not a Go binary (or built without modules info).
    #[error("no Go build info")]
    NotFound,
    /// The blob or a string it points to is cut short, or its pointers lead nowhere.
    #[error("Go build info is truncated or malformed: {0}")]
    Malformed(&'static str),
}

/// One module line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// Module path.
    pub path: String,
    /// Version (`(devel)` for a main module built from a checkout).
    pub version: String,
    /// `h1:` checksum, when recorded.
    pub sum: String,
    /// What a `replace` directive put in its place.
    pub replace: Option<Box<Module>>,
}

/// What a Go binary says about how it was built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// Go version (`go1.19.8`).
    pub go_version: String,
    /// Package path of the main package.
    pub path: String,
    /// The main module.
    pub main: Option<Module>,
    /// Dependencies, in the binary's order.
    pub deps: Vec<Module>,
    /// `build` settings (`-ldflags`, `GOOS`, `vcs.revision`, ...).
    pub settings: Vec<(String, String)>,
}

/// Finds the blob in the bytes at the data start: the first magic at a 16-byte aligned offset.
pub fn find(window: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + HEADER <= window.len() {
        let at = window[i..].windows(MAGIC.len()).position(|w| w == MAGIC)? + i;
        if at % ALIGN == 0 && window.len() - at >= HEADER {
            return Some(at);
        }
        i = (at + ALIGN) & !(ALIGN - 1);
    }
    None
}

/// Decodes the blob (`blob` starts at the magic and holds the rest of the window) into the Go
/// version and the module info. `read(addr, len)` reads memory for the pointer format; it
/// returns `None` for an address the binary does not map.
pub fn decode(
    blob: &[u8],
    read: &mut dyn FnMut(u64, u64) -> Option<Vec<u8>>,
) -> Result<(String, String), BuildInfoError> {
    if blob.len() < HEADER || !blob.starts_with(MAGIC) {
        return Err(BuildInfoError::NotFound);
    }
    let ptr_size = blob[14] as usize;
    let flags = blob[15];
    let (vers, modinfo) = if flags & 2 != 0 {
        let (v, rest) = uvarint_string(&blob[HEADER..])?;
        let (m, _) = uvarint_string(rest)?;
        (v, m)
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(BuildInfoError::Malformed("pointer size is neither 4 nor 8"));
        }
        let big = flags & 1 != 0;
        let ptr = |b: &[u8]| -> u64 {
            let mut v = 0u64;
            for i in 0..ptr_size {
                let byte = if big { b[i] } else { b[ptr_size - 1 - i] };
                v = (v << 8) | byte as u64;
            }
            v
        };
        let mut string_at = |addr: u64| -> Result<Vec<u8>, BuildInfoError> {
            let hdr = read(addr, 2 * ptr_size as u64)
                .filter(|h| h.len() == 2 * ptr_size)
                .ok_or(BuildInfoError::Malformed(
                    "a string header outside the binary",
                ))?;
            let (data, len) = (ptr(&hdr), ptr(&hdr[ptr_size..]));
            if len > MAX_STRING {
                return Err(BuildInfoError::Malformed("a string longer than 4 MiB"));
            }
            if len == 0 {
                return Ok(Vec::new());
            }
            read(data, len)
                .filter(|d| d.len() as u64 == len)
                .ok_or(BuildInfoError::Malformed("string bytes outside the binary"))
        };
        let v = string_at(ptr(&blob[16..]))?;
        let m = string_at(ptr(&blob[16 + ptr_size..]))?;
        (v, m)
    };
    let vers =
        String::from_utf8(vers).map_err(|_| BuildInfoError::Malformed("version is not UTF-8"))?;
    let mut modinfo = modinfo;
    // Go wraps the module info in 16-byte sentinels; the second ends in '\n' + 16 bytes.
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = modinfo[16..modinfo.len() - 16].to_vec();
    }
    let modinfo = String::from_utf8(modinfo)
        .map_err(|_| BuildInfoError::Malformed("module info is not UTF-8"))?;
    Ok((vers, modinfo))
}

/// A uvarint length and that many bytes.
fn uvarint_string(b: &[u8]) -> Result<(Vec<u8>, &[u8]), BuildInfoError> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let byte = *b
            .get(i)
            .ok_or(BuildInfoError::Malformed("a length cut short"))?;
        i += 1;
        if shift > 63 {
            return Err(BuildInfoError::Malformed("a length overflows"));
        }
        len |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let rest = &b[i..];
    if len > rest.len() as u64 {
        return Err(BuildInfoError::Malformed("a string runs past the blob"));
    }
    let len = len as usize;
    Ok((rest[..len].to_vec(), &rest[len..]))
}

/// Parses the module info text (Go's `debug.ParseBuildInfo` lines); unknown lines are ignored.
pub fn parse_modinfo(go_version: &str, text: &str) -> BuildInfo {
    let mut bi = BuildInfo {
        go_version: go_version.to_string(),
        ..BuildInfo::default()
    };
    let module = |f: &[&str]| Module {
        path: f.first().unwrap_or(&"").to_string(),
        version: f.get(1).unwrap_or(&"").to_string(),
        sum: f.get(2).unwrap_or(&"").to_string(),
        replace: None,
    };
    let mut last_dep = false;
    for line in text.lines() {
        let mut parts = line.splitn(2, '\t');
        let (key, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let f: Vec<&str> = rest.split('\t').collect();
        match key {
            "go" => bi.go_version = rest.to_string(),
            "path" => bi.path = rest.to_string(),
            "mod" => {
                bi.main = Some(module(&f));
                last_dep = false;
            }
            "dep" => {
                bi.deps.push(module(&f));
                last_dep = true;
            }
            "=>" => {
                let r = Some(Box::new(module(&f)));
                if last_dep {
                    if let Some(d) = bi.deps.last_mut() {
                        d.replace = r;
                    }
                } else if let Some(m) = bi.main.as_mut() {
                    m.replace = r;
                }
            }
            "build" => {
                if let Some((k, v)) = rest.split_once('=') {
                    bi.settings.push((k.to_string(), v.to_string()));
                }
            }
            _ => {}
        }
    }
    bi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline_blob(vers: &str, modinfo: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(2);
        b.resize(HEADER, 0);
        for s in [vers, modinfo] {
            let mut n = s.len();
            while n >= 0x80 {
                b.push((n as u8) | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    fn wrapped(m: &str) -> String {
        format!("{}{m}\n{}", "0".repeat(16), "1".repeat(16))
    }

    #[test]
    fn inline_format() {
        let m = wrapped("path\tex/a\nmod\tex/a\t(devel)\t\ndep\tgithub.com/x/y\tv1.2.3\th1:abc=\n=>\t../y\t\t\nbuild\tGOOS=linux");
        let mut window = vec![0u8; 48];
        window.extend(inline_blob("go1.21.0", &m));
        let at = find(&window).unwrap();
        assert_eq!(at, 48);
        let (v, text) = decode(&window[at..], &mut |_, _| None).unwrap();
        assert_eq!(v, "go1.21.0");
        let bi = parse_modinfo(&v, &text);
        assert_eq!(bi.path, "ex/a");
        assert_eq!(bi.main.as_ref().unwrap().version, "(devel)");
        assert_eq!(bi.deps.len(), 1);
        assert_eq!(bi.deps[0].sum, "h1:abc=");
        assert_eq!(bi.deps[0].replace.as_ref().unwrap().path, "../y");
        assert_eq!(bi.settings, [("GOOS".to_string(), "linux".to_string())]);
    }

    #[test]
    fn pointer_format() {
        // Little-endian, 8-byte pointers: header -> string headers at 0x1000/0x1010 -> bytes.
        let mut blob = MAGIC.to_vec();
        blob.extend([8, 0]);
        blob.extend(0x1000u64.to_le_bytes());
        blob.extend(0x1010u64.to_le_bytes());
        let m = wrapped("path\tcmd\nmod\tcmd\t(devel)\t");
        let mut mem = std::collections::BTreeMap::new();
        let mut hdr = |at: u64, data: u64, len: usize| {
            let mut h = data.to_le_bytes().to_vec();
            h.extend((len as u64).to_le_bytes());
            mem.insert(at, h);
        };
        hdr(0x1000, 0x2000, 8);
        hdr(0x1010, 0x3000, m.len());
        mem.insert(0x2000, b"go1.16.3".to_vec());
        mem.insert(0x3000, m.as_bytes().to_vec());
        let (v, text) = decode(&blob, &mut |a, l| {
            mem.get(&a).map(|d| d[..(l as usize).min(d.len())].to_vec())
        })
        .unwrap();
        assert_eq!(v, "go1.16.3");
        assert_eq!(parse_modinfo(&v, &text).path, "cmd");
        // A pointer to nowhere is an error, not a panic.
        assert!(decode(&blob, &mut |_, _| None).is_err());
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let good = inline_blob("go1.21.0", "x");
        for cut in 0..good.len() {
            let _ = decode(&good[..cut], &mut |_, _| None);
        }
        let mut huge = MAGIC.to_vec();
        huge.extend([8, 2]);
        huge.resize(HEADER, 0);
        huge.extend([0xff; 12]);
        assert!(decode(&huge, &mut |_, _| None).is_err());
        assert_eq!(find(&[0u8; 100]), None);
        // Unaligned magic is skipped.
        let mut w = vec![0u8; 3];
        w.extend(&good);
        assert_eq!(find(&w), None);
    }
}
