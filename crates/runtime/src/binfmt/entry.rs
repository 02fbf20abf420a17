//! binfmt_misc's handlers as the kernel lists them: one file per handler under
//! `/proc/sys/fs/binfmt_misc`, next to `register` and `status`.
//!
//! ```text
//! enabled
//! interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
//! flags: POCF
//! offset 0
//! magic 7f454c460201010000000000000000000200b700
//! mask ffffffffffffff00fffffffffffffffffeffffff
//! ```
//!
//! (`extension .exe` instead of offset, magic and mask for handlers chosen by file name.)

use crate::doctor::Host;
use std::path::PathBuf;

/// Where binfmt_misc is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// binfmt_misc's flags (`flags:` line; `P`, `O`, `C`, `F` when registering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `P`: the interpreter gets the program's original `argv[0]` as an extra argument.
    pub preserve_argv0: bool,
    /// `O`: the interpreter gets an open file descriptor of the program instead of its path.
    pub open_binary: bool,
    /// `C`: credentials (setuid bits) are taken from the program, not the interpreter.
    pub credentials: bool,
    /// `F`: the interpreter was opened when the handler was registered, so it is found in
    /// every mount namespace: without it the kernel looks its path up in the root of the
    /// process that execs, which in a container is the image's, where qemu is not.
    pub fix_binary: bool,
}

impl Flags {
    /// The letters, in the order the kernel prints them.
    pub fn letters(&self) -> String {
        [
            (self.preserve_argv0, 'P'),
            (self.open_binary, 'O'),
            (self.credentials, 'C'),
            (self.fix_binary, 'F'),
        ]
        .iter()
        .filter_map(|(on, c)| on.then_some(*c))
        .collect()
    }

    fn parse(letters: &str) -> Flags {
        Flags {
            preserve_argv0: letters.contains('P'),
            open_binary: letters.contains('O'),
            credentials: letters.contains('C'),
            fix_binary: letters.contains('F'),
        }
    }
}

/// How a handler recognises its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `magic` at `offset`, compared under `mask` (every bit when the handler has none).
    Magic {
        offset: usize,
        magic: Vec<u8>,
        mask: Option<Vec<u8>>,
    },
    /// A file name extension (without the dot): never an ELF program's criterion.
    Extension(String),
}

/// One registered handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    /// Its name: the file's name under the binfmt_misc mount.
    pub name: String,
    /// Whether the kernel uses it (`enabled` / `disabled`).
    pub enabled: bool,
    /// The interpreter's path as registered.
    pub interpreter: PathBuf,
    pub flags: Flags,
    pub rule: Rule,
}

/// Why a file under the binfmt_misc mount is not a handler entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("first line is {0:?}, not enabled or disabled")]
    State(String),
    #[error("no interpreter line")]
    NoInterpreter,
    #[error("neither magic nor extension")]
    NoRule,
    #[error("{field}: {value:?} is not {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Handler {
    /// Parses the text the kernel shows for handler `name`.
    pub fn parse(name: &str, text: &str) -> Result<Handler, EntryError> {
        let mut lines = text.lines();
        let enabled = match lines.next().map(str::trim) {
            Some("enabled") => true,
            Some("disabled") => false,
            other => return Err(EntryError::State(other.unwrap_or_default().to_string())),
        };
        let (mut interpreter, mut flags, mut offset, mut magic, mut mask, mut ext) =
            (None, Flags::default(), 0usize, None, None, None);
        for line in lines {
            let (key, value) = line.split_once([' ', ':']).unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "flags" => flags = Flags::parse(value),
                "offset" => {
                    offset = value.parse().map_err(|_| EntryError::Field {
                        field: "offset",
                        value: value.into(),
                        expected: "a number",
                    })?
                }
                "magic" => magic = Some(hex("magic", value)?),
                "mask" => mask = Some(hex("mask", value)?),
                "extension" => ext = Some(value.trim_start_matches('.').to_string()),
                _ => {}
            }
        }
        let rule = match (magic, ext) {
            (Some(magic), _) => {
                if mask.as_ref().is_some_and(|m| m.len() != magic.len()) {
                    return Err(EntryError::Field {
                        field: "mask",
                        value: format!("{} bytes", mask.map_or(0, |m| m.len())),
                        expected: "as long as the magic",
                    });
                }
                Rule::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            (None, Some(e)) => Rule::Extension(e),
            (None, None) => return Err(EntryError::NoRule),
        };
        Ok(Handler {
            name: name.to_string(),
            enabled,
            interpreter: interpreter.ok_or(EntryError::NoInterpreter)?,
            flags,
            rule,
        })
    }

    /// Whether the kernel would pick this handler (if enabled) for a file starting with
    /// `header`: every magic byte equal to the file's under the mask, as binfmt_misc's
    /// `check_file` compares (`(file ^ magic) & mask == 0`). A magic reaching past `header`
    /// does not match.
    pub fn matches(&self, header: &[u8]) -> bool {
        let Rule::Magic {
            offset,
            magic,
            mask,
        } = &self.rule
        else {
            return false;
        };
        let Some(file) = header.get(*offset..offset.saturating_add(magic.len())) else {
            return false;
        };
        file.iter().zip(magic).enumerate().all(|(i, (f, m))| {
            let mask = mask
                .as_ref()
                .and_then(|k| k.get(i))
                .copied()
                .unwrap_or(0xff);
            (f ^ m) & mask == 0
        })
    }
}

fn hex(field: &'static str, s: &str) -> Result<Vec<u8>, EntryError> {
    let bad = || EntryError::Field {
        field,
        value: s.to_string(),
        expected: "hex bytes",
    };
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// What the binfmt_misc mount at `dir` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registry {
    /// Nothing mounted there (no `status` file).
    NotMounted,
    /// Mounted, with `status` saying `disabled`: no handler is used.
    Disabled,
    /// Mounted and enabled: the handlers in the order the kernel tries them (the newest
    /// first, which is the order the mount lists them in), and the files that were not
    /// handler entries.
    Enabled {
        handlers: Vec<Handler>,
        unreadable: Vec<(String, EntryError)>,
    },
}

impl Registry {
    /// Reads the binfmt_misc mount at `dir` (normally [`BINFMT_MISC`]) through `host`.
    pub fn read(host: &dyn Host, dir: &str) -> Registry {
        let Some(status) = host.read(&format!("{dir}/status")) else {
            return Registry::NotMounted;
        };
        if status.trim() != "enabled" {
            return Registry::Disabled;
        }
        let mut handlers = Vec::new();
        let mut unreadable = Vec::new();
        for name in host.list(dir).unwrap_or_default() {
            if name == "status" || name == "register" {
                continue;
            }
            // A handler removed between the listing and the read is simply gone.
            let Some(text) = host.read(&format!("{dir}/{name}")) else {
                continue;
            };
            match Handler::parse(&name, &text) {
                Ok(h) => handlers.push(h),
                Err(e) => unreadable.push((name, e)),
            }
        }
        Registry::Enabled {
            handlers,
            unreadable,
        }
    }

    /// The handlers (none unless mounted and enabled).
    pub fn handlers(&self) -> &[Handler] {
        match self {
            Registry::Enabled { handlers, .. } => handlers,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian 12's qemu-user-static registers (binfmt.d/qemu-aarch64.conf, flags OPF).
    pub(crate) const DEBIAN_AARCH64: &str = "enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
";

    /// What tonistiigi/binfmt registers (`qemu-aarch64`, flags CF: C implies O).
    pub(crate) const TONISTIIGI_AARCH64: &str = "enabled
interpreter /usr/bin/qemu-aarch64
flags: OCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
";

    #[test]
    fn parses_debians_and_tonistiigis_entries() {
        let d = Handler::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert!(d.enabled);
        assert_eq!(
            d.interpreter,
            PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(d.flags.letters(), "POF");
        let Rule::Magic {
            offset,
            magic,
            mask,
        } = &d.rule
        else {
            panic!("{d:?}")
        };
        assert_eq!(*offset, 0);
        assert_eq!(&magic[..4], b"\x7fELF");
        assert_eq!(mask.as_ref().unwrap()[16], 0xfe);
        let t = Handler::parse("qemu-aarch64", TONISTIIGI_AARCH64).unwrap();
        assert!(t.flags.credentials && t.flags.open_binary && t.flags.fix_binary);
        assert!(!t.flags.preserve_argv0);
    }

    #[test]
    fn parses_disabled_extension_and_flagless_entries() {
        let w = Handler::parse(
            "wine",
            "disabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n",
        )
        .unwrap();
        assert!(!w.enabled);
        assert_eq!(w.rule, Rule::Extension("exe".into()));
        assert_eq!(w.flags, Flags::default());
        assert!(!w.matches(b"MZ\x90\0"));
    }

    #[test]
    fn rejects_what_is_not_an_entry() {
        assert_eq!(
            Handler::parse("x", "maybe\n"),
            Err(EntryError::State("maybe".into()))
        );
        assert_eq!(
            Handler::parse("x", "enabled\nflags: F\noffset 0\nmagic 7f\n"),
            Err(EntryError::NoInterpreter)
        );
        assert!(matches!(
            Handler::parse("x", "enabled\ninterpreter /q\nmagic 7g\n"),
            Err(EntryError::Field { field: "magic", .. })
        ));
        assert!(matches!(
            Handler::parse("x", "enabled\ninterpreter /q\nmagic 7f45\nmask ff\n"),
            Err(EntryError::Field { field: "mask", .. })
        ));
        assert_eq!(
            Handler::parse("x", "enabled\ninterpreter /q\n"),
            Err(EntryError::NoRule)
        );
    }

    #[test]
    fn matches_as_the_kernel_compares() {
        let h = Handler::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        let mut exec = [0u8; 64];
        exec[..20].copy_from_slice(
            b"\x7fELF\x02\x01\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        );
        assert!(h.matches(&exec), "OS ABI (GNU) is masked out");
        exec[16] = 3; // ET_DYN: masked by 0xfe
        assert!(h.matches(&exec));
        exec[18] = 0x3e; // x86-64
        assert!(!h.matches(&exec));
        assert!(!h.matches(&exec[..10]), "a short file does not match");
        // Without a mask every bit counts.
        let strict = Handler::parse(
            "s",
            "enabled\ninterpreter /q\nflags: F\noffset 2\nmagic 4c46\n",
        )
        .unwrap();
        assert!(strict.matches(b"\x7fELF"));
        assert!(!strict.matches(b"\x7fELG"));
    }
}
