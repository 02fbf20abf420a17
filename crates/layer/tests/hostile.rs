//! Hostile layer tarballs: every one is refused with a typed error naming the entry, or
//! neutralised, and in every case nothing outside the extraction root changes.

#![allow(clippy::unwrap_used)]

mod common;

use common::snapshot;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use whittle_layer::*;

/// Raw tar building, bypassing the `tar` crate's own path checks.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(
        &mut self,
        name: &[u8],
        kind: u8,
        link: &[u8],
        size: usize,
        mode: u32,
    ) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size as u64);
        h.set_cksum();
        h
    }
    fn push(&mut self, h: &tar::Header, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = self.header(name.as_bytes(), b'0', b"", data.len(), 0o644);
        self.push(&h, data)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        let h = self.header(name.as_bytes(), b'5', b"", 0, 0o755);
        self.push(&h, b"")
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = self.header(name.as_bytes(), b'2', target.as_bytes(), 0, 0o777);
        self.push(&h, b"")
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = self.header(name.as_bytes(), b'1', target.as_bytes(), 0, 0o644);
        self.push(&h, b"")
    }
    fn device(&mut self, name: &str, kind: u8) -> &mut Self {
        let mut h = self.header(name.as_bytes(), kind, b"", 0, 0o666);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_cksum();
        self.push(&h, b"")
    }
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = 1 + k.len() + 1 + v.len() + 1;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let h = self.header(b"././@PaxHeader", b'x', b"", body.len(), 0o644);
        self.push(&h, &body)
    }
    fn gnu_longname(&mut self, name: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let mut data = name.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.push(&h, &data)
    }
    fn raw_data(&mut self, h: &tar::Header, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self
    }
    fn end(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

enum Expect {
    /// Refused; the error must name this entry.
    Refused(&'static str, fn(&ExtractError) -> bool),
    /// Accepted, made harmless; the check looks at the root.
    Neutralised(fn(&Path)),
    /// Either, as long as nothing outside changes.
    Contained,
}

struct Case {
    name: &'static str,
    tar: Vec<u8>,
    expect: Expect,
    opts: ExtractOptions,
    /// Objects planted in the root before extraction.
    pre: fn(&Path, &Path),
}

fn no_pre(_: &Path, _: &Path) {}

/// A base dir: base/outside (sentinels) and base/l1/l2/l3/root (the root): four `..` from the
/// root still land inside base, where the snapshot sees them.
struct Arena {
    _t: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

fn arena() -> Arena {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().to_path_buf();
    let outside = base.join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    fs::write(outside.join("dir/keep"), b"keep").unwrap();
    let root = base.join("l1/l2/l3/root");
    fs::create_dir_all(&root).unwrap();
    Arena {
        _t: t,
        base,
        root,
        outside,
    }
}

fn outside_abs() -> &'static str {
    // Filled per case: the literal is replaced with the arena's absolute outside path.
    "@OUT@"
}

fn subst(tar: &[u8], out: &Path) -> Vec<u8> {
    // Replace the @OUT@ marker in link-name fields (headers are fixed width, so pad with NUL
    // and fix the checksum).
    let mut v = tar.to_vec();
    let out = out.to_string_lossy().into_owned();
    let mut i = 0;
    while i + 512 <= v.len() {
        let block = &mut v[i..i + 512];
        let is_header = &block[257..262] == b"ustar";
        if is_header {
            let size = tar::Header::from_byte_slice(block)
                .entry_size()
                .unwrap_or(0) as usize;
            for range in [0..100usize, 157..257] {
                let field = &mut block[range.clone()];
                let s = String::from_utf8_lossy(field)
                    .trim_end_matches('\0')
                    .to_string();
                if s.contains("@OUT@") {
                    let r = s.replace("@OUT@", &out);
                    assert!(r.len() <= 100, "temp path too long for a ustar field");
                    field.fill(0);
                    field[..r.len()].copy_from_slice(r.as_bytes());
                }
            }
            let mut h = tar::Header::from_byte_slice(block).clone();
            h.set_cksum();
            block.copy_from_slice(h.as_bytes());
            i += 512 + size.div_ceil(512) * 512;
        } else {
            i += 512;
        }
    }
    v
}

fn cases() -> Vec<Case> {
    let o = outside_abs();
    let d = ExtractOptions::default;
    let c = |name, tar, expect| Case {
        name,
        tar,
        expect,
        opts: d(),
        pre: no_pre,
    };
    use Expect::*;
    vec![
        c(
            "dotdot file",
            Raw::default().file("../../../../evil", b"x").end(),
            Refused("../../../../evil", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "dotdot in the middle",
            Raw::default().file("a/../../evil", b"x").end(),
            Refused("a/../../evil", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "absolute path",
            Raw::default().file("/evil-abs", b"x").end(),
            Neutralised(|r| assert_eq!(fs::read(r.join("evil-abs")).unwrap(), b"x")),
        ),
        c(
            "absolute then dotdot",
            Raw::default().file("/../evil", b"x").end(),
            Refused("/../evil", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "dotdot directory",
            Raw::default().dir("../../escape/").end(),
            Refused("../../escape/", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "absolute symlink then write through it",
            Raw::default()
                .symlink("s", &format!("{o}/dir"))
                .file("s/pwned", b"x")
                .end(),
            Contained,
        ),
        c(
            "relative symlink out then write through it",
            Raw::default()
                .symlink("s", "../../../../outside/dir")
                .file("s/pwned", b"x")
                .end(),
            Contained,
        ),
        c(
            "symlink chain out",
            Raw::default()
                .symlink("a", "b")
                .symlink("b", "c")
                .symlink("c", "../../../../outside")
                .file("a/pwned", b"x")
                .end(),
            Contained,
        ),
        c(
            "nested symlink climbing from a subdir",
            Raw::default()
                .dir("d/")
                .symlink("d/up", "../../../../..")
                .file("d/up/outside/pwned", b"x")
                .end(),
            Contained,
        ),
        c(
            "symlink to outside file then regular file at its name",
            Raw::default()
                .symlink("f", &format!("{o}/secret"))
                .file("f", b"pwned")
                .end(),
            Neutralised(|r| assert_eq!(fs::read(r.join("f")).unwrap(), b"pwned")),
        ),
        c(
            "hard link to absolute outside path",
            Raw::default().hardlink("h", &format!("{o}/secret")).end(),
            Refused("h", |e| matches!(e, ExtractError::LinkTargetMissing { .. })),
        ),
        c(
            "hard link with dotdot target",
            Raw::default()
                .hardlink("h", "../../../../outside/secret")
                .end(),
            Refused("h", |e| matches!(e, ExtractError::LinkTraversal { .. })),
        ),
        c(
            "hard link through an outward symlink",
            Raw::default()
                .symlink("s", o)
                .hardlink("h", "s/secret")
                .end(),
            Refused("h", |e| matches!(e, ExtractError::LinkTargetMissing { .. })),
        ),
        c(
            "hard link to outward symlink then write",
            Raw::default()
                .symlink("s", &format!("{o}/secret"))
                .hardlink("h", "s")
                .file("h", b"pwned")
                .end(),
            Neutralised(|r| {
                assert_eq!(fs::read(r.join("h")).unwrap(), b"pwned");
                assert!(fs::symlink_metadata(r.join("s"))
                    .unwrap()
                    .file_type()
                    .is_symlink());
            }),
        ),
        c(
            "directory replaced by outward symlink",
            Raw::default()
                .dir("d/")
                .file("d/a", b"a")
                .symlink("d", o)
                .file("d/pwned", b"x")
                .end(),
            Contained,
        ),
        c(
            "whiteout with dotdot",
            Raw::default()
                .file("../../../../outside/.wh.secret", b"")
                .end(),
            Refused("../../../../outside/.wh.secret", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "whiteout through outward symlink",
            Raw::default()
                .symlink("s", o)
                .file("s/.wh.secret", b"")
                .end(),
            Contained,
        ),
        c(
            "opaque marker through outward symlink",
            Raw::default()
                .symlink("s", &format!("{o}/dir"))
                .file("s/.wh..wh..opq", b"")
                .end(),
            Contained,
        ),
        c(
            "whiteout of dot",
            Raw::default().file("a/.wh..", b"").end(),
            Refused("a/.wh..", |e| {
                matches!(e, ExtractError::InvalidWhiteout { .. })
            }),
        ),
        c(
            "whiteout of dotdot",
            Raw::default().file(".wh...", b"").end(),
            Refused(".wh...", |e| {
                matches!(e, ExtractError::InvalidWhiteout { .. })
            }),
        ),
        Case {
            name: "block device refused",
            tar: Raw::default().device("sda", b'4').end(),
            expect: Refused("sda", |e| {
                matches!(e, ExtractError::DeviceNotPermitted { .. })
            }),
            opts: ExtractOptions {
                devices: DevicePolicy::Reject,
                ..d()
            },
            pre: no_pre,
        },
        c(
            "char device skipped by default",
            Raw::default().device("mem", b'3').end(),
            Neutralised(|r| assert!(fs::symlink_metadata(r.join("mem")).is_err())),
        ),
        c(
            "PAX path with dotdot under an innocent name",
            Raw::default()
                .pax(&[("path", b"ok/../../../../../evil")])
                .file("innocent", b"x")
                .end(),
            Refused("ok/../../../../../evil", |e| {
                matches!(e, ExtractError::PathTraversal { .. })
            }),
        ),
        c(
            "PAX path with NUL",
            Raw::default()
                .pax(&[("path", b"a\0/../../evil")])
                .file("innocent", b"x")
                .end(),
            Contained,
        ),
        c(
            "PAX linkpath with dotdot",
            Raw::default()
                .pax(&[("linkpath", b"../../../../outside/secret")])
                .hardlink("h", "innocent")
                .end(),
            Refused("h", |e| matches!(e, ExtractError::LinkTraversal { .. })),
        ),
        c(
            "GNU long name with dotdot",
            Raw::default()
                .gnu_longname(format!("{}/../../../../../../evil", "a".repeat(120)).as_bytes())
                .file("short", b"x")
                .end(),
            Refused("", |e| matches!(e, ExtractError::PathTraversal { .. })),
        ),
        c(
            "symlink replacing the root",
            Raw::default().symlink("./", o).end(),
            Refused("./", |e| matches!(e, ExtractError::ReplacesRoot { .. })),
        ),
        c(
            "regular file replacing the root",
            Raw::default().file("/", b"x").end(),
            Refused("/", |e| matches!(e, ExtractError::ReplacesRoot { .. })),
        ),
        c(
            "regular file replacing a directory tree",
            Raw::default()
                .dir("d/")
                .dir("d/sub/")
                .file("d/sub/a", b"a")
                .file("d", b"file now")
                .end(),
            Neutralised(|r| assert_eq!(fs::read(r.join("d")).unwrap(), b"file now")),
        ),
        c(
            "hard link to a directory",
            Raw::default().dir("d/").hardlink("h", "d").end(),
            Refused("h", |e| matches!(e, ExtractError::LinkToDirectory { .. })),
        ),
        c(
            "file below a file",
            Raw::default().file("f", b"x").file("f/x", b"x").end(),
            Refused("f/x", |e| {
                matches!(e, ExtractError::ParentNotDirectory { .. })
            }),
        ),
        c(
            "magic link to /proc/self/root",
            Raw::default()
                .symlink("p", "/proc/self/root")
                .file(&format!("p{o}/pwned"), b"x")
                .end(),
            Contained,
        ),
        c(
            "symlink loop",
            Raw::default()
                .symlink("a", "b")
                .symlink("b", "a")
                .file("a/x", b"x")
                .end(),
            Refused("a/x", |_| true),
        ),
        c(
            "truncated file data",
            {
                let mut r = Raw::default();
                let h = r.header(b"big", b'0', b"", 100_000, 0o644);
                r.raw_data(&h, &[1u8; 1000]);
                r.0.clone()
            },
            Refused("", |e| {
                matches!(e, ExtractError::Read(_) | ExtractError::Io { .. })
            }),
        ),
        c(
            "overlay xattr smuggled in",
            Raw::default()
                .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
                .dir("d/")
                .end(),
            Neutralised(|r| {
                assert!(xattr::get(r.join("d"), "trusted.overlay.opaque")
                    .unwrap()
                    .is_none())
            }),
        ),
        Case {
            name: "pre-existing outward symlink in the root",
            tar: Raw::default()
                .file("pre/pwned", b"x")
                .file("pre2/.wh.secret", b"")
                .end(),
            expect: Contained,
            opts: d(),
            pre: |root, out| {
                symlink(out.join("dir"), root.join("pre")).unwrap();
                symlink(out, root.join("pre2")).unwrap();
            },
        },
        c(
            "setuid file kept as setuid inside the root",
            {
                let mut r = Raw::default();
                let h = r.header(b"suid", b'0', b"", 2, 0o4755);
                r.push(&h, b"#!").end()
            },
            Neutralised(|r| {
                use std::os::unix::fs::MetadataExt;
                assert_eq!(
                    fs::metadata(r.join("suid")).unwrap().mode() & 0o7777,
                    0o4755
                )
            }),
        ),
    ]
}

#[test]
fn hostile_layers_never_touch_anything_outside_the_root() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut report = Vec::new();
    for case in cases {
        let a = arena();
        (case.pre)(&a.root, &a.outside);
        let before = snapshot(&a.base, None);
        let before_outside: Vec<_> = before
            .iter()
            .filter(|(k, _)| !k.starts_with("l1/l2/l3/root"))
            .collect();
        let tar = subst(&case.tar, &a.outside);
        let res = extract_layer(&tar[..], &a.root, &case.opts);
        let after = snapshot(&a.base, None);
        let after_outside: Vec<_> = after
            .iter()
            .filter(|(k, _)| !k.starts_with("l1/l2/l3/root"))
            .collect();
        assert_eq!(
            before_outside, after_outside,
            "case {:?} changed something outside the root ({res:?})",
            case.name
        );
        match (&case.expect, &res) {
            (Expect::Refused(entry, check), Err(e)) => {
                assert!(check(e), "case {:?}: wrong error {e:?}", case.name);
                if !entry.is_empty() {
                    assert_eq!(
                        e.entry(),
                        Some(*entry),
                        "case {:?}: error must name the entry",
                        case.name
                    );
                    assert!(
                        e.to_string().contains(entry),
                        "case {:?}: message {e}",
                        case.name
                    );
                }
            }
            (Expect::Refused(..), Ok(_)) => panic!("case {:?} should have been refused", case.name),
            (Expect::Neutralised(check), Ok(_)) => check(&a.root),
            (Expect::Neutralised(_), Err(e)) => {
                panic!("case {:?} should have been neutralised, got {e}", case.name)
            }
            (Expect::Contained, _) => {}
        }
        report.push(format!(
            "{}: {}",
            case.name,
            match &res {
                Ok(_) => "neutralised".to_string(),
                Err(e) => format!("refused: {e}"),
            }
        ));
    }
    // Absolute escapes would land outside every arena: check the host's / and /tmp too.
    for p in [
        "/evil",
        "/evil-abs",
        "/escape",
        "/pwned",
        "/tmp/evil",
        "/tmp/pwned",
    ] {
        assert!(!Path::new(p).exists(), "{p} exists on the host");
    }
    eprintln!("{}", report.join("\n"));
}
