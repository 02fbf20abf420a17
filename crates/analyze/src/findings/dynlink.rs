//! Dynamically linked ELF programs that cannot start: the interpreter their `PT_INTERP` names
//! (e.g. `/lib64/ld-linux-x86-64.so.2`) is not in the final filesystem, or a library of their
//! `DT_NEEDED` list is nowhere to be found. The kernel then fails `execve` with "no such file or
//! directory" (for the program that is plainly there), or the loader stops with "cannot open
//! shared object file". Typical cause: a binary built against glibc copied onto `scratch`,
//! distroless/static or Alpine.
//!
//! Paths are looked up in the final filesystem (after whiteouts and opaque directories),
//! following symbolic links inside the root, as the kernel would in the container. A needed
//! library counts as found when a file of that name is in the loader's default directories
//! (`/lib`, `/usr/lib`, their `64` and multiarch variants, `/usr/local/lib`), in a `DT_RUNPATH`
//! or `DT_RPATH` directory (`$ORIGIN` expanded), or anywhere else in the image: that last rule
//! keeps out libraries found through `/etc/ld.so.conf.d` or `LD_LIBRARY_PATH`, which this
//! analysis does not read, at the cost of missing a library present in the wrong place.
//! Programs for another system (`EI_OSABI` FreeBSD, ...) and test fixtures (below a `testdata`
//! directory) are not judged.

use super::{finding, is_fixture, Acc};
use crate::elf::ElfType;
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind};
use crate::scan::{Facts, Kind};
use std::collections::{BTreeMap, HashSet};

/// The loader's default directories (and the multiarch ones of common architectures).
const LIB_DIRS: &[&str] = &[
    "lib",
    "usr/lib",
    "lib64",
    "usr/lib64",
    "lib32",
    "usr/lib32",
    "usr/local/lib",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib/arm-linux-gnueabihf",
    "usr/lib/arm-linux-gnueabihf",
    "lib/i386-linux-gnu",
    "usr/lib/i386-linux-gnu",
    "lib/powerpc64le-linux-gnu",
    "usr/lib/powerpc64le-linux-gnu",
    "lib/s390x-linux-gnu",
    "usr/lib/s390x-linux-gnu",
    "lib/riscv64-linux-gnu",
    "usr/lib/riscv64-linux-gnu",
];

/// Whether `dir/name` exists as a file (through links) in the final filesystem.
fn exists_in(m: &Merged, dir: &[u8], name: &[u8]) -> bool {
    let mut k = dir.to_vec();
    if !k.is_empty() {
        k.push(path::SEP);
    }
    k.extend_from_slice(name);
    m.tree.resolve(&k).is_some_and(|(_, n)| n.kind != Kind::Dir)
}

/// A path from the binary as a key inside the root (`..` stops at the root).
fn key_of(raw: &[u8]) -> Vec<u8> {
    path::normalize(raw, 4096)
        .ok()
        .flatten()
        .map(Vec::from)
        .unwrap_or_default()
}

/// A run path as a key: `$ORIGIN` (or `${ORIGIN}`) is the program's directory.
fn runpath_key(rp: &[u8], origin: &[u8]) -> Vec<u8> {
    let o = path::display(origin);
    let mut out = Vec::with_capacity(rp.len());
    let mut rest = rp;
    while !rest.is_empty() {
        if let Some(r) = rest
            .strip_prefix(b"${ORIGIN}")
            .or_else(|| rest.strip_prefix(b"$ORIGIN"))
        {
            out.extend_from_slice(o.as_bytes());
            rest = r;
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    key_of(&out)
}

/// Adds the findings: one per (layer, what is missing).
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut names: Option<HashSet<&[u8]>> = None;
    // (layer, missing interpreter or library) → programs
    let mut groups: BTreeMap<(usize, bool, String), Acc> = BTreeMap::new();
    for (layer, key, facts) in &m.facts {
        let Facts::Elf(e) = &**facts else {
            continue;
        };
        if !matches!(e.elf_type, ElfType::Executable | ElfType::Shared)
            || e.foreign_os
            || is_fixture(key)
        {
            continue;
        }
        let Some(interp) = &e.interp else {
            continue; // static (or a library): nothing to load it
        };
        let Some(node) = m.tree.added_by(key, *layer) else {
            continue;
        };
        if m.tree.resolve(&key_of(interp)).is_none() {
            let what = String::from_utf8_lossy(interp).into_owned();
            groups
                .entry((*layer, true, what))
                .or_default()
                .add(key, node.size);
            continue;
        }
        let origin = path::parent(key).unwrap_or(&[]);
        for lib in &e.needed {
            if lib.contains(&b'/') {
                continue; // a path: rare, and relative to the working directory
            }
            let found = LIB_DIRS.iter().any(|d| exists_in(m, &path::key(d), lib))
                || e.runpath
                    .iter()
                    .any(|rp| exists_in(m, &runpath_key(rp, origin), lib))
                || names
                    .get_or_insert_with(|| {
                        m.tree
                            .visible()
                            .filter(|(_, n)| n.kind != Kind::Dir)
                            .map(|(k, _)| path::name(k))
                            .collect()
                    })
                    .contains(&**lib);
            if !found {
                let what = String::from_utf8_lossy(lib).into_owned();
                groups
                    .entry((*layer, false, what))
                    .or_default()
                    .add(key, node.size);
            }
        }
    }
    for ((layer, interp, what), acc) in groups {
        let n = acc.files;
        let (programs, need, fail) = if n == 1 {
            (
                "a dynamically linked program".to_string(),
                "needs",
                "it fails",
            )
        } else {
            (
                format!("{n} dynamically linked programs"),
                "need",
                "they fail",
            )
        };
        let title = if interp {
            format!(
                "{programs} added by layer {layer} {need} the loader {what}, which the image \
                 lacks: {fail} with \"no such file or directory\""
            )
        } else {
            format!(
                "{programs} added by layer {layer} {need} {what}, which the image lacks: \
                 {fail} with \"cannot open shared object file\""
            )
        };
        out.push(finding(
            FindingKind::MissingLibrary,
            title,
            layer,
            None,
            acc,
            "Build the program statically (Go: `CGO_ENABLED=0`; Rust: the musl target or \
             `RUSTFLAGS=\"-C target-feature=+crt-static\"`; C: `-static`, or musl-gcc), or run \
             it on a base that has its C library and loader (gcr.io/distroless/base or cc, \
             debian:*-slim; Alpine's musl does not run glibc programs)."
                .to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runpaths() {
        let o = path::key("opt/app/bin");
        assert_eq!(
            path::display(&runpath_key(b"$ORIGIN/../lib", &o)),
            "/opt/app/lib"
        );
        assert_eq!(
            path::display(&runpath_key(b"/usr/lib/app", &o)),
            "/usr/lib/app"
        );
    }
}
