//! Platforms (`os/arch[/variant]`), as the OCI image index and `--platform` name them.

use serde::{Deserialize, Serialize};

/// A platform such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI terms.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]` (also `arch` alone, meaning linux), normalised as
    /// containerd does (`x86_64` is `amd64`, `aarch64` is `arm64`, `arm64/v8` drops the variant).
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !a.is_empty() => ("linux", *a, None),
            [o, a] if !o.is_empty() && !a.is_empty() => (*o, *a, None),
            [o, a, v] if !o.is_empty() && !a.is_empty() && !v.is_empty() => (*o, *a, Some(*v)),
            _ => return None,
        };
        let ok = |t: &str| {
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !ok(os) || !ok(arch) || !variant.is_none_or(ok) {
            return None;
        }
        let os = os.to_ascii_lowercase();
        let arch = arch.to_ascii_lowercase();
        let (arch, variant) = match (arch.as_str(), variant.map(str::to_ascii_lowercase)) {
            ("x86_64" | "x86-64", _) => ("amd64".to_string(), None),
            ("aarch64", v) | ("arm64", v) => {
                ("arm64".to_string(), v.filter(|v| v != "v8" && v != "8"))
            }
            ("armhf", _) => ("arm".into(), Some("v7".into())),
            ("armel", _) => ("arm".into(), Some("v6".into())),
            ("arm", None) => ("arm".into(), Some("v7".into())),
            ("i386" | "i686", _) => ("386".into(), None),
            (a, v) => (a.to_string(), v),
        };
        Some(Platform { os, arch, variant })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_as_containerd() {
        let p = |s| Platform::parse(s).map(|p| p.to_string());
        assert_eq!(p("linux/x86_64").as_deref(), Some("linux/amd64"));
        assert_eq!(p("aarch64").as_deref(), Some("linux/arm64"));
        assert_eq!(p("linux/arm64/v8").as_deref(), Some("linux/arm64"));
        assert_eq!(p("linux/arm").as_deref(), Some("linux/arm/v7"));
        assert_eq!(p("linux//"), None);
        assert_eq!(p("linux/a b"), None);
    }
}
