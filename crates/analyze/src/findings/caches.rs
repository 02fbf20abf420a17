//! Package managers' caches left in the final image: apt lists and archives, apk, pip, npm,
//! yarn, Go's build and module caches, cargo's registry and target directories, Maven, Gradle.
//! One finding per (cache, layer that added the files).

use super::{comps, find_seq, finding, Acc};
use crate::merge::Merged;
use crate::report::{Finding, FindingKind};
use crate::scan::Kind;
use std::collections::BTreeMap;

/// A package manager's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cache {
    /// `/var/lib/apt/lists`.
    AptLists,
    /// `/var/cache/apt` (downloaded .debs, package caches).
    AptArchives,
    /// `/var/cache/apk`.
    Apk,
    /// `~/.cache/pip`.
    Pip,
    /// `~/.npm`.
    Npm,
    /// `~/.cache/yarn` (`/usr/local/share/.cache/yarn` as root in node images).
    Yarn,
    /// `~/.cache/go-build`.
    GoBuild,
    /// `$GOPATH/pkg/mod`.
    GoModules,
    /// `$CARGO_HOME/registry` and `git`.
    CargoRegistry,
    /// Intermediate build output under `target/{debug,release}`.
    CargoTarget,
    /// `~/.m2/repository`.
    Maven,
    /// `~/.gradle/caches`.
    Gradle,
}

/// Which cache a file is in, if any.
pub fn classify(key: &[u8]) -> Option<Cache> {
    let c = comps(key);
    let starts = |p: &[&[u8]]| c.len() > p.len() && c.starts_with(p);
    // `seq` followed by at least one more component.
    let inside = |seq: &[&[u8]]| find_seq(&c, seq).filter(|&i| c.len() > i + seq.len());
    if starts(&[b"var", b"lib", b"apt", b"lists"]) && c[4] != b"lock" {
        return Some(Cache::AptLists);
    }
    if starts(&[b"var", b"cache", b"apt"]) {
        return Some(Cache::AptArchives);
    }
    if starts(&[b"var", b"cache", b"apk"]) {
        return Some(Cache::Apk);
    }
    if inside(&[b".cache", b"pip"]).is_some() {
        return Some(Cache::Pip);
    }
    if inside(&[b".npm"]).is_some() {
        return Some(Cache::Npm);
    }
    if inside(&[b".cache", b"yarn"]).is_some() {
        return Some(Cache::Yarn);
    }
    if inside(&[b".cache", b"go-build"]).is_some() {
        return Some(Cache::GoBuild);
    }
    if inside(&[b"go", b"pkg", b"mod"]).is_some() {
        return Some(Cache::GoModules);
    }
    if inside(&[b".cargo", b"registry"]).is_some()
        || inside(&[b".cargo", b"git"]).is_some()
        || starts(&[b"usr", b"local", b"cargo", b"registry"])
        || starts(&[b"usr", b"local", b"cargo", b"git"])
    {
        return Some(Cache::CargoRegistry);
    }
    if cargo_target(&c) {
        return Some(Cache::CargoTarget);
    }
    if inside(&[b".m2", b"repository"]).is_some() {
        return Some(Cache::Maven);
    }
    if inside(&[b".gradle", b"caches"]).is_some() {
        return Some(Cache::Gradle);
    }
    None
}

/// `.../target/[<triple>/]{debug,release}/{deps,build,.fingerprint,incremental}/...`: what
/// cargo keeps between builds (the binaries themselves, one level up, are not counted).
fn cargo_target(c: &[&[u8]]) -> bool {
    c.iter().enumerate().any(|(i, &t)| {
        if t != b"target" {
            return false;
        }
        [i + 1, i + 2].iter().any(|&j| {
            matches!(c.get(j), Some(&b"debug") | Some(&b"release"))
                && matches!(
                    c.get(j + 1),
                    Some(&b"deps")
                        | Some(&b"build")
                        | Some(&b".fingerprint")
                        | Some(&b"incremental")
                )
                && c.len() > j + 2
        })
    })
}

fn describe(c: Cache) -> (&'static str, &'static str) {
    match c {
        Cache::AptLists => (
            "apt package lists (/var/lib/apt/lists)",
            "Remove them in the same RUN that runs `apt-get update`: `... && rm -rf \
             /var/lib/apt/lists/*`, or keep them out of the image with \
             `RUN --mount=type=cache,target=/var/lib/apt/lists,sharing=locked`.",
        ),
        Cache::AptArchives => (
            "apt's downloaded packages and caches (/var/cache/apt)",
            "Run `apt-get clean` in the same RUN as `apt-get install`, or use \
             `RUN --mount=type=cache,target=/var/cache/apt,sharing=locked`.",
        ),
        Cache::Apk => (
            "apk cache (/var/cache/apk)",
            "Use `apk add --no-cache`, or `rm -rf /var/cache/apk/*` in the same RUN.",
        ),
        Cache::Pip => (
            "pip cache (~/.cache/pip)",
            "Use `pip install --no-cache-dir` (or ENV PIP_NO_CACHE_DIR=1), or \
             `RUN --mount=type=cache,target=/root/.cache/pip`.",
        ),
        Cache::Npm => (
            "npm cache (~/.npm)",
            "Run `npm cache clean --force` in the same RUN as `npm ci`, or use \
             `RUN --mount=type=cache,target=/root/.npm`.",
        ),
        Cache::Yarn => (
            "yarn cache",
            "Run `yarn cache clean` in the same RUN as `yarn install`, or use \
             `RUN --mount=type=cache,target=/usr/local/share/.cache/yarn`.",
        ),
        Cache::GoBuild => (
            "Go build cache (~/.cache/go-build)",
            "Build in a builder stage and COPY --from only the binary, or use \
             `RUN --mount=type=cache,target=/root/.cache/go-build`.",
        ),
        Cache::GoModules => (
            "Go module cache (go/pkg/mod)",
            "Download modules in a builder stage (or `RUN --mount=type=cache,target=/go/pkg/mod`) \
             and COPY --from only the binary.",
        ),
        Cache::CargoRegistry => (
            "cargo registry and git checkouts",
            "Build in a builder stage and COPY --from only the binary, or use \
             `RUN --mount=type=cache,target=/usr/local/cargo/registry`.",
        ),
        Cache::CargoTarget => (
            "cargo build directory (target/*/deps, build, .fingerprint, incremental)",
            "Build in a builder stage and COPY --from only the binary from target/release, or \
             mount target as a cache (`RUN --mount=type=cache,target=/app/target`) and copy the \
             binary out in the same RUN.",
        ),
        Cache::Maven => (
            "Maven repository (~/.m2/repository)",
            "Build in a builder stage and COPY --from only the jar, or use \
             `RUN --mount=type=cache,target=/root/.m2`.",
        ),
        Cache::Gradle => (
            "Gradle caches (~/.gradle/caches)",
            "Build in a builder stage and COPY --from only the jar, or use \
             `RUN --mount=type=cache,target=/root/.gradle/caches`.",
        ),
    }
}

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(Cache, usize), Acc> = BTreeMap::new();
    for (k, n) in m.tree.visible() {
        if n.kind != Kind::File {
            continue;
        }
        if let Some(c) = classify(k) {
            groups.entry((c, n.layer)).or_default().add(k, n.size);
        }
    }
    for ((c, layer), acc) in groups {
        let (what, fix) = describe(c);
        out.push(finding(
            FindingKind::PackageCache,
            format!("{what} left by layer {layer}"),
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
    fn cache_paths() {
        let c = |p: &str| classify(&key(p));
        assert_eq!(
            c("var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease"),
            Some(Cache::AptLists)
        );
        assert_eq!(c("var/lib/apt/extended_states"), None);
        assert_eq!(c("var/lib/apt/lists/lock"), None);
        assert_eq!(
            c("var/cache/apt/archives/curl_8.deb"),
            Some(Cache::AptArchives)
        );
        assert_eq!(c("root/.cache/pip/http/a/b"), Some(Cache::Pip));
        assert_eq!(c("home/app/.npm/_cacache/index-v5/x"), Some(Cache::Npm));
        assert_eq!(c("usr/local/share/.cache/yarn/v6/x"), Some(Cache::Yarn));
        assert_eq!(c("root/.cache/go-build/ab/cd"), Some(Cache::GoBuild));
        assert_eq!(c("go/pkg/mod/github.com/x/y.go"), Some(Cache::GoModules));
        assert_eq!(
            c("usr/local/cargo/registry/cache/x.crate"),
            Some(Cache::CargoRegistry)
        );
        assert_eq!(
            c("app/target/release/deps/libx.rlib"),
            Some(Cache::CargoTarget)
        );
        assert_eq!(
            c("app/target/x86_64-unknown-linux-musl/release/build/x/out"),
            Some(Cache::CargoTarget)
        );
        assert_eq!(c("app/target/release/app"), None);
        assert_eq!(c("root/.m2/repository/org/x.jar"), Some(Cache::Maven));
        assert_eq!(c("var/cache/apk/APKINDEX.tar.gz"), Some(Cache::Apk));
        assert_eq!(c("usr/bin/pip"), None);
    }
}
