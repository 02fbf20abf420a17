//! Handler definitions as packages ship them, and the line that registers one.
//!
//! Debian's qemu-user-static ships one binfmt-support format file per architecture,
//! `/usr/share/binfmts/qemu-<arch>`:
//!
//! ```text
//! package qemu-user-static
//! interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
//! magic \x7f\x45\x4c\x46\x02\x01\x01\x00...
//! offset 0
//! mask \xff\xff\xff\xff\xff\xff\xff\x00...
//! credentials no
//! fix_binary yes
//! preserve yes
//! ```
//!
//! (Its `-binfmt-P` interpreter names are links to `qemu-<arch>-static` that tell qemu the
//! kernel passes the program's `argv[0]`, i.e. that the handler has the P flag.)

use super::entry::Flags;
use std::path::PathBuf;

/// Where Debian's packages put their binfmt-support format files.
pub const BINFMTS_DIR: &str = "/usr/share/binfmts";

/// A handler to register: what `register` is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub interpreter: PathBuf,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub flags: Flags,
}

/// Why a format file or a handler cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("no {0} line")]
    Missing(&'static str),
    #[error("{field}: {value:?} is not {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{0}: a handler name or interpreter cannot contain ':', '/' (name) or newlines")]
    Unregistrable(String),
}

impl Format {
    /// Parses a binfmt-support format file (magic types only; an `extension` one is refused).
    pub fn parse_binfmts(text: &str) -> Result<Format, FormatError> {
        let (mut interpreter, mut offset, mut magic, mut mask) = (None, 0usize, None, None);
        let mut flags = Flags::default();
        for line in text.lines() {
            let (key, value) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let value = value.trim();
            let yes = value == "yes";
            match key {
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "offset" => {
                    offset = value.parse().map_err(|_| FormatError::Field {
                        field: "offset",
                        value: value.into(),
                        expected: "a number",
                    })?
                }
                "magic" => magic = Some(unescape("magic", value)?),
                "mask" => mask = Some(unescape("mask", value)?),
                "credentials" => flags.credentials = yes,
                "fix_binary" => flags.fix_binary = yes,
                "preserve" => flags.preserve_argv0 = yes,
                _ => {}
            }
        }
        let magic = magic.ok_or(FormatError::Missing("magic"))?;
        let mask = mask.unwrap_or_else(|| vec![0xff; magic.len()]);
        if mask.len() != magic.len() {
            return Err(FormatError::Field {
                field: "mask",
                value: format!("{} bytes", mask.len()),
                expected: "as long as the magic",
            });
        }
        Ok(Format {
            interpreter: interpreter.ok_or(FormatError::Missing("interpreter"))?,
            offset,
            magic,
            mask,
            flags,
        })
    }

    /// The line to write to binfmt_misc's `register` for handler `name`:
    /// `:name:M:offset:magic:mask:interpreter:flags`, every magic and mask byte escaped as
    /// `\xHH` (so a `:` byte cannot end a field).
    pub fn register_line(&self, name: &str) -> Result<String, FormatError> {
        let interp = self.interpreter.to_str().unwrap_or_default();
        if name.is_empty() || name.contains([':', '/', '\n']) || name == "." || name == ".." {
            return Err(FormatError::Unregistrable(name.into()));
        }
        if interp.is_empty() || interp.contains([':', '\n']) {
            return Err(FormatError::Unregistrable(
                self.interpreter.display().to_string(),
            ));
        }
        let esc = |b: &[u8]| b.iter().map(|b| format!("\\x{b:02x}")).collect::<String>();
        Ok(format!(
            ":{name}:M:{}:{}:{}:{interp}:{}",
            self.offset,
            esc(&self.magic),
            esc(&self.mask),
            self.flags.letters()
        ))
    }
}

/// `\x7f\x45LF` to bytes (binfmt-support's escapes: `\xHH` and `\\`).
fn unescape(field: &'static str, s: &str) -> Result<Vec<u8>, FormatError> {
    let bad = || FormatError::Field {
        field,
        value: s.to_string(),
        expected: "bytes written as \\xHH",
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                let hex = s.get(i + 2..i + 4).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 4;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', _) => return Err(bad()),
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's /usr/share/binfmts/qemu-aarch64 (qemu-user-static 1:7.2+dfsg-7+deb12u18).
    pub(crate) const DEBIAN_AARCH64: &str = r"package qemu-user-static
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
magic \x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00
offset 0
mask \xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff
credentials no
fix_binary yes
preserve yes
";

    #[test]
    fn parses_debians_format_file() {
        let f = Format::parse_binfmts(DEBIAN_AARCH64).unwrap();
        assert_eq!(
            f.interpreter,
            PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(f.magic.len(), 20);
        assert_eq!(&f.magic[..4], b"\x7fELF");
        assert_eq!(f.magic[18], 0xb7);
        assert_eq!(f.mask[7], 0);
        assert_eq!(f.flags.letters(), "PF");
    }

    #[test]
    fn writes_the_register_line_debian_would() {
        let mut f = Format::parse_binfmts(DEBIAN_AARCH64).unwrap();
        f.flags.open_binary = true;
        // /usr/lib/binfmt.d/qemu-aarch64.conf, under another name and with the flags in the
        // kernel's order.
        assert_eq!(
            f.register_line("whittle-qemu-aarch64").unwrap(),
            r":whittle-qemu-aarch64:M:0:\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POF"
        );
        assert!(f.register_line("a:b").is_err());
        assert!(f.register_line("a/b").is_err());
        f.interpreter = PathBuf::from("/odd:path");
        assert!(f.register_line("x").is_err());
    }

    #[test]
    fn refuses_broken_format_files() {
        assert_eq!(
            Format::parse_binfmts("interpreter /q\n"),
            Err(FormatError::Missing("magic"))
        );
        assert!(Format::parse_binfmts("interpreter /q\nmagic \\x7\n").is_err());
        assert!(Format::parse_binfmts("interpreter /q\nmagic \\x7f\\x45\nmask \\xff\n").is_err());
        assert_eq!(
            Format::parse_binfmts("magic \\x7fELF\n"),
            Err(FormatError::Missing("interpreter"))
        );
        let plain = Format::parse_binfmts("interpreter /q\nmagic \\x7fELF\\\\\n").unwrap();
        assert_eq!(plain.magic, b"\x7fELF\\");
        assert_eq!(plain.mask, vec![0xff; 5]);
    }
}
