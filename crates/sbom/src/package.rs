//! A package found in an image, and its package URL
//! (<https://github.com/package-url/purl-spec>).

use serde::Serialize;

/// Which ecosystem a package belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageKind {
    /// A Debian package (dpkg status or distroless `status.d`).
    Deb,
    /// An Alpine package (`/lib/apk/db/installed`).
    Apk,
    /// A Python distribution (`*.dist-info/METADATA`, `*.egg-info/PKG-INFO`).
    Python,
    /// A Go module linked into a binary (its build info), or the Go standard library.
    GoModule,
    /// A Rust crate (cargo-auditable's `.dep-v0` section, or a `Cargo.lock`).
    RustCrate,
    /// A Java archive (`pom.properties` or `MANIFEST.MF` inside a jar).
    JavaArchive,
    /// An npm package (`node_modules/**/package.json`).
    Npm,
}

impl PackageKind {
    /// Short name, as shown in tables and recorded in SBOM properties.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Apk => "apk",
            PackageKind::Python => "python",
            PackageKind::GoModule => "go-module",
            PackageKind::RustCrate => "rust-crate",
            PackageKind::JavaArchive => "java-archive",
            PackageKind::Npm => "npm",
        }
    }
}

/// One package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Name as its ecosystem spells it.
    pub name: String,
    /// Version as its ecosystem spells it (may be empty when none is recorded).
    pub version: String,
    /// Ecosystem.
    pub kind: PackageKind,
    /// Package URL.
    pub purl: String,
    /// License as declared by the package's metadata, verbatim.
    pub license: Option<String>,
    /// The files the package was found from (metadata files, the binary, the jar), absolute.
    pub locations: Vec<String>,
    /// Files the package manager says the package installed (dpkg `.list`, apk `R:`).
    pub files: Vec<String>,
    /// Index of the layer the package came from (bottom is 0).
    pub layer: usize,
}

impl Package {
    /// A package with its purl, found at `location`; the layer is filled in when the layers
    /// are stacked.
    pub fn new(kind: PackageKind, name: &str, version: &str, purl: String, location: &str) -> Self {
        Package {
            name: name.to_string(),
            version: version.to_string(),
            kind,
            purl,
            license: None,
            locations: vec![location.to_string()],
            files: Vec::new(),
            layer: 0,
        }
    }
}

/// Builds a purl: `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`, each part percent-encoded as
/// the purl spec says (namespace segments one by one; qualifiers sorted by key, empty values
/// left out). Hand-written: it is a few lines, and the purl crates add more than they save.
pub fn purl(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut s = format!("pkg:{ty}/");
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        for seg in ns.split('/').filter(|s| !s.is_empty()) {
            s.push_str(&encode(seg));
            s.push('/');
        }
    }
    s.push_str(&encode(name));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&encode(version));
    }
    let mut q: Vec<&(&str, &str)> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

/// Percent-encodes everything but ASCII letters, digits and `.-_~` (so a Debian epoch's `:` and
/// a `+` are encoded, as packageurl-python encodes them).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_encoded() {
        assert_eq!(
            purl(
                "deb",
                Some("debian"),
                "libc6",
                "2.36-9+deb12u4",
                &[("arch", "amd64"), ("distro", "debian-12")]
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl("npm", Some("@types"), "node", "1.0.0", &[]),
            "pkg:npm/%40types/node@1.0.0"
        );
        assert_eq!(
            purl("golang", Some("github.com/pkg"), "errors", "v0.9.1", &[]),
            "pkg:golang/github.com/pkg/errors@v0.9.1"
        );
        assert_eq!(
            purl("pypi", None, "a b", "1:2", &[("x", "")]),
            "pkg:pypi/a%20b@1%3A2"
        );
    }
}
