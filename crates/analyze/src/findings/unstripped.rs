//! Unstripped binaries: ELF executables and shared libraries that ship a symbol table
//! (`SHT_SYMTAB` and its string table) or debug sections (`.debug_*`, `.zdebug_*`), which
//! nothing needs at run time. The bytes are those sections' sizes (what `strip` removes; a
//! debug section is counted only when the section names could be read, see `elf.rs`). Object
//! files (`ET_REL`) need their symbols and are left out, as are test fixtures (below a
//! `testdata` directory). One finding per layer.

use super::{finding, is_fixture, Acc};
use crate::elf::ElfType;
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind};
use crate::scan::Facts;
use std::collections::BTreeMap;

#[derive(Default)]
struct Group {
    acc: Acc,
    go: u64,
    debug_files: u64,
    dbg_package: bool,
}

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
    for (layer, key, facts) in &m.facts {
        let Facts::Elf(e) = &**facts else {
            continue;
        };
        if !matches!(e.elf_type, ElfType::Executable | ElfType::Shared) {
            continue;
        }
        let bytes = e.symtab_bytes.saturating_add(e.debug_bytes);
        if bytes == 0 || is_fixture(key) || m.tree.added_by(key, *layer).is_none() {
            continue;
        }
        let g = groups.entry(*layer).or_default();
        g.acc.add(key, bytes);
        g.go += u64::from(e.go);
        g.debug_files += u64::from(e.debug_bytes > 0);
        g.dbg_package |= path::components(key)
            .take(3)
            .eq([&b"usr"[..], b"lib", b"debug"]);
    }
    for (layer, g) in groups {
        let what = if g.debug_files > 0 {
            "symbols and debug info"
        } else {
            "symbol tables"
        };
        let mut fix = if g.go == g.acc.files {
            "Link Go binaries without the symbol table and DWARF: `go build -ldflags=\"-s -w\"`; \
             or `strip` them in the build stage before COPY --from."
                .to_string()
        } else {
            let mut f =
                "Strip in the build stage before COPY --from: `strip --strip-unneeded FILE` \
                 (or `--strip-debug` to keep the symbols for backtraces); for C/C++ link with \
                 `-s`; for Rust set `[profile.release] strip = true` or \
                 `RUSTFLAGS=\"-C strip=symbols\"`"
                    .to_string();
            if g.go > 0 {
                f.push_str("; for Go build with `-ldflags=\"-s -w\"`");
            }
            f.push('.');
            f
        };
        if g.dbg_package {
            fix.push_str(
                " Files under /usr/lib/debug come from debug-symbol packages (-dbg, -dbgsym, \
                 -debuginfo): do not install those in a runtime image.",
            );
        }
        let title = format!(
            "{} unstripped binar{} ({what}) added by layer {layer}",
            g.acc.files,
            if g.acc.files == 1 { "y" } else { "ies" }
        );
        out.push(finding(
            FindingKind::Unstripped,
            title,
            layer,
            None,
            g.acc,
            fix,
        ));
    }
}
