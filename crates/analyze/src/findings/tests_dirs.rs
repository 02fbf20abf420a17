//! Test suites in the final image: directories named `test`, `tests` or `__tests__` inside
//! Python's library trees (`lib/python*/`: the standard library's `test` package and each
//! package's tests in `site-packages`/`dist-packages`) and inside npm packages
//! (`node_modules/PKG/` or `node_modules/@scope/PKG/`, below the package's own directory, so a
//! package named `test` is not one). Nothing imports them at run time. One finding per layer.

use super::{comps, finding, Acc};
use crate::merge::Merged;
use crate::report::{Finding, FindingKind};
use crate::scan::Kind;
use std::collections::BTreeMap;

fn is_test_dir(c: &[u8]) -> bool {
    matches!(c, b"test" | b"tests" | b"__tests__")
}

/// Which ecosystem's test directory holds a file, if any.
pub fn test_suite(key: &[u8]) -> Option<Ecosystem> {
    let c = comps(key);
    let dirs = &c[..c.len().saturating_sub(1)];
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i];
        if d == b"node_modules" {
            // The package's own directory (two components for a scoped package).
            let mut pkg = i + 1;
            if dirs.get(pkg).is_some_and(|s| s.starts_with(b"@")) {
                pkg += 1;
            }
            if let Some(j) =
                (pkg + 1..dirs.len()).find(|&j| dirs[j] == b"node_modules" || is_test_dir(dirs[j]))
            {
                if is_test_dir(dirs[j]) {
                    return Some(Ecosystem::Node);
                }
                i = j;
                continue;
            }
            return None;
        }
        if d == b"lib" && dirs.get(i + 1).is_some_and(|p| p.starts_with(b"python")) {
            return dirs[i + 2..]
                .iter()
                .any(|x| is_test_dir(x))
                .then_some(Ecosystem::Python);
        }
        i += 1;
    }
    None
}

/// The ecosystem of a test directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    /// Python's `lib/python*/`.
    Python,
    /// npm's `node_modules`.
    Node,
}

/// Adds the findings.
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(usize, Ecosystem), Acc> = BTreeMap::new();
    for (k, n) in m.tree.visible() {
        if n.kind == Kind::Dir {
            continue;
        }
        if let Some(e) = test_suite(k) {
            groups.entry((n.layer, e)).or_default().add(k, n.size);
        }
    }
    for ((layer, eco), acc) in groups {
        let (what, fix) = match eco {
            Ecosystem::Python => (
                "Python test suites",
                "Delete them in the RUN that installs the packages (as the official python \
                 images do for the standard library's): `find /usr/local/lib/python3* -depth \
                 -type d \\( -name test -o -name tests \\) -exec rm -rf '{}' +`; or install into \
                 a venv in a builder stage, prune it there and COPY --from the venv.",
            ),
            Ecosystem::Node => (
                "test directories in node_modules",
                "Remove them in the RUN that runs `npm ci --omit=dev` (`find node_modules -type d \
                 \\( -name test -o -name tests -o -name __tests__ \\) -prune -exec rm -rf '{}' +`, \
                 or a tool such as node-prune), or bundle the application so that node_modules \
                 does not ship.",
            ),
        };
        out.push(finding(
            FindingKind::Tests,
            format!("{what} added by layer {layer}"),
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
    fn test_paths() {
        let t = |p: &str| test_suite(&key(p));
        assert_eq!(
            t("usr/lib/python3.11/test/test_os.py"),
            Some(Ecosystem::Python)
        );
        assert_eq!(
            t("usr/local/lib/python3.12/site-packages/numpy/core/tests/x.py"),
            Some(Ecosystem::Python)
        );
        assert_eq!(
            t("usr/lib/python3/dist-packages/yaml/tests/a.py"),
            Some(Ecosystem::Python)
        );
        assert_eq!(t("usr/lib/python3.11/os.py"), None);
        assert_eq!(t("usr/lib/python3.11/testing/x.py"), None);
        assert_eq!(
            t("usr/lib/python3.11/site-packages/pkg/test"),
            None,
            "a file named test"
        );
        assert_eq!(
            t("app/node_modules/lodash/test/a.js"),
            Some(Ecosystem::Node)
        );
        assert_eq!(
            t("app/node_modules/a/lib/__tests__/x.js"),
            Some(Ecosystem::Node)
        );
        assert_eq!(t("app/node_modules/@s/p/tests/x.js"), Some(Ecosystem::Node));
        assert_eq!(
            t("app/node_modules/test/index.js"),
            None,
            "a package named test"
        );
        assert_eq!(t("app/node_modules/@s/test/index.js"), None);
        assert_eq!(
            t("app/node_modules/a/node_modules/test/index.js"),
            None,
            "a nested package named test"
        );
        assert_eq!(t("app/tests/unit.py"), None, "the application's own tests");
    }
}
