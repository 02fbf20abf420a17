//! Compiler toolchains in the final image: gcc, Go, Rust, a JDK (javac and what only a JDK
//! needs) and Python's C headers. A toolchain counts when its compiler is there; its bytes are
//! those of its own directories, attributed to the layer that added most of them.

use super::{comps, finding, Acc};
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind};
use crate::scan::Kind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Toolchain {
    /// gcc (`/usr/lib/gcc`, `/usr/libexec/gcc`, the drivers in `/usr/bin`).
    Gcc,
    /// Go (`/usr/local/go`, Debian's `/usr/lib/go-*` and `/usr/share/go-*`).
    Go,
    /// Rust (rustup toolchains, Debian's rustlib and librustc_driver).
    Rust,
    /// A JDK's compiler, modules, headers and tools (a JRE needs none).
    Jdk,
    /// Python's C headers and static library (python3-dev).
    PythonHeaders,
}

fn starts_with_bytes(c: Option<&&[u8]>, p: &[u8]) -> bool {
    c.is_some_and(|c| c.starts_with(p))
}

/// Which toolchain a file belongs to, and whether it is that toolchain's compiler (the marker
/// that must be present for the toolchain to be reported). The JDK is found separately.
fn classify(key: &[u8]) -> Option<(Toolchain, bool)> {
    let c = comps(key);
    let name = path::name(key);
    let at = |i: usize, s: &[u8]| c.get(i).is_some_and(|x| *x == s);
    if at(0, b"usr") && (at(1, b"lib") || at(1, b"libexec")) && at(2, b"gcc") && c.len() > 3 {
        return Some((Toolchain::Gcc, name == b"cc1" || name == b"cc1plus"));
    }
    if at(0, b"usr") && at(1, b"bin") && c.len() == 3 {
        let gcc = name.starts_with(b"gcc")
            || name.starts_with(b"g++")
            || name.starts_with(b"cpp-")
            || name.windows(4).any(|w| w == b"-gcc")
            || name.windows(4).any(|w| w == b"-g++");
        if gcc {
            return Some((Toolchain::Gcc, name.starts_with(b"gcc")));
        }
        if name == b"rustc" {
            return Some((Toolchain::Rust, true));
        }
    }
    let go_root = (at(0, b"usr") && at(1, b"local") && at(2, b"go") && c.len() > 3)
        || (at(0, b"usr")
            && (at(1, b"lib") || at(1, b"share"))
            && starts_with_bytes(c.get(2), b"go-")
            && c.len() > 3);
    if go_root {
        let marker = c.len() >= 2 && c[c.len() - 2] == b"bin" && name == b"go";
        return Some((Toolchain::Go, marker));
    }
    let rustup = (at(0, b"usr") && at(1, b"local") && at(2, b"rustup"))
        || c.iter().any(|x| *x == b".rustup")
        || (at(0, b"usr") && at(1, b"lib") && at(2, b"rustlib"));
    if rustup || name.starts_with(b"librustc_driver") {
        return Some((
            Toolchain::Rust,
            name == b"rustc" || name.starts_with(b"librustc_driver"),
        ));
    }
    let include = (at(0, b"usr") && at(1, b"include") && starts_with_bytes(c.get(2), b"python3"))
        || (at(0, b"usr")
            && at(1, b"local")
            && at(2, b"include")
            && starts_with_bytes(c.get(3), b"python3"));
    if include {
        return Some((Toolchain::PythonHeaders, name == b"Python.h"));
    }
    let static_lib = c.iter().any(|x| x.starts_with(b"python3"))
        && c.iter().any(|x| x.starts_with(b"config-3"))
        && name.ends_with(b".a");
    if static_lib {
        return Some((Toolchain::PythonHeaders, false));
    }
    None
}

/// Paths under a JDK root that a JRE does without.
fn jdk_only(rel: &[&[u8]]) -> bool {
    match rel {
        [b"jmods", ..] | [b"include", ..] | [b"lib", b"src.zip"] | [b"lib", b"ct.sym"] => true,
        [b"bin", tool] => !matches!(*tool, b"java" | b"keytool" | b"rmiregistry" | b"jfr"),
        _ => false,
    }
}

fn describe(t: Toolchain) -> (&'static str, &'static str) {
    match t {
        Toolchain::Gcc => (
            "gcc compiler toolchain",
            "Compile in a builder stage (`FROM ... AS build`) and COPY --from=build only the built \
             files into a runtime image without gcc; or install gcc, build and \
             `apt-get purge --auto-remove` it in one RUN.",
        ),
        Toolchain::Go => (
            "Go toolchain",
            "Build in a builder stage and COPY --from only the binary (with CGO_ENABLED=0 it runs \
             on scratch or distroless).",
        ),
        Toolchain::Rust => (
            "Rust toolchain",
            "Build in a builder stage and COPY --from only the binary into a slim runtime image.",
        ),
        Toolchain::Jdk => (
            "JDK (javac, jmods, headers and tools a JRE does not need)",
            "Run on a JRE: compile in a JDK builder stage and COPY the jar into a JRE image \
             (e.g. eclipse-temurin:21-jre), or build a minimal runtime with `jlink`.",
        ),
        Toolchain::PythonHeaders => (
            "Python C headers and static library (python3-dev)",
            "Build wheels in a builder stage that has python3-dev (`pip wheel`, or a venv) and \
             COPY --from the wheels or the venv into a runtime image without headers.",
        ),
    }
}

/// Adds the findings: one per toolchain, at the layer that added most of its bytes.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    // toolchain → (marker seen, layer → bytes, acc)
    let mut found: BTreeMap<Toolchain, (bool, BTreeMap<usize, u64>, Acc)> = BTreeMap::new();
    let mut jdk_roots: Vec<Arc<[u8]>> = Vec::new();
    for (k, n) in m.tree.visible() {
        if n.kind != Kind::File {
            continue;
        }
        let c = comps(k);
        if c.len() >= 2 && c[c.len() - 1] == b"javac" && c[c.len() - 2] == b"bin" {
            if let Some(bin) = path::parent(k) {
                if let Some(root) = path::parent(bin) {
                    jdk_roots.push(Arc::from(root));
                }
            }
        }
        if let Some((t, marker)) = classify(k) {
            let e = found.entry(t).or_default();
            e.0 |= marker;
            *e.1.entry(n.layer).or_default() += n.size;
            e.2.add(k, n.size);
        }
    }
    for root in &jdk_roots {
        let e = found.entry(Toolchain::Jdk).or_default();
        e.0 = true;
        for (k, n) in m.tree.subtree(root) {
            if n.hidden || n.kind != Kind::File {
                continue;
            }
            let rel: Vec<&[u8]> = comps(&k[root.len()..])
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect();
            if jdk_only(&rel) {
                *e.1.entry(n.layer).or_default() += n.size;
                e.2.add(k, n.size);
            }
        }
    }
    for (t, (marker, layers, acc)) in found {
        if !marker || acc.bytes == 0 {
            continue;
        }
        let layer = layers
            .iter()
            .max_by_key(|(l, b)| (**b, std::cmp::Reverse(**l)))
            .map(|(l, _)| *l)
            .unwrap_or(0);
        let (what, fix) = describe(t);
        out.push(finding(
            FindingKind::Toolchain,
            format!("{what} in the final image"),
            layer,
            None,
            acc,
            fix.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::key;

    #[test]
    fn toolchain_paths() {
        let c = |p: &str| classify(&key(p));
        assert_eq!(
            c("usr/libexec/gcc/x86_64-linux-gnu/12/cc1"),
            Some((Toolchain::Gcc, true))
        );
        assert_eq!(
            c("usr/lib/gcc/x86_64-linux-gnu/12/libgcc.a"),
            Some((Toolchain::Gcc, false))
        );
        assert_eq!(
            c("usr/bin/x86_64-linux-gnu-gcc-12"),
            Some((Toolchain::Gcc, false))
        );
        assert_eq!(c("usr/lib/x86_64-linux-gnu/libgcc_s.so.1"), None);
        assert_eq!(c("usr/local/go/bin/go"), Some((Toolchain::Go, true)));
        assert_eq!(c("usr/lib/go-1.19/bin/go"), Some((Toolchain::Go, true)));
        assert_eq!(
            c("usr/share/go-1.19/src/fmt/print.go"),
            Some((Toolchain::Go, false))
        );
        assert_eq!(c("usr/bin/rustc"), Some((Toolchain::Rust, true)));
        assert_eq!(
            c("usr/include/python3.11/Python.h"),
            Some((Toolchain::PythonHeaders, true))
        );
        assert_eq!(c("usr/lib/python3.11/os.py"), None);
        let rel = |p: &str| -> bool {
            let k = key(p);
            let v: Vec<&[u8]> = comps(&k);
            jdk_only(&v)
        };
        assert!(rel("jmods/java.base.jmod"));
        assert!(rel("bin/javac"));
        assert!(!rel("bin/java"));
        assert!(!rel("lib/modules"));
    }
}
