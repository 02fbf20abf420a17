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

/// The variant an architecture has when none is named (`arm64` is `v8`, `arm` is `v7`).
pub fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// Picks the item for `want` among items with platforms, as containerd's matcher does: the
/// same OS and architecture, the exact variant first, then the architecture's default variant
/// (an entry without a variant counts as it), then any variant when none was asked for. Items
/// without a platform (attestation manifests have `unknown/unknown`) never match.
pub fn select<'a, T>(
    items: &'a [T],
    want: &Platform,
    platform_of: impl Fn(&T) -> Option<Platform>,
) -> Option<&'a T> {
    let candidates: Vec<(&T, Option<String>)> = items
        .iter()
        .filter_map(|i| {
            let p = platform_of(i)?;
            (p.os == want.os && p.arch == want.arch)
                .then(|| (i, p.variant.filter(|v| !v.is_empty())))
        })
        .collect();
    let wanted = want.variant.as_deref().or(default_variant(&want.arch));
    if let Some(v) = wanted {
        if let Some((i, _)) = candidates.iter().find(|(_, var)| var.as_deref() == Some(v)) {
            return Some(i);
        }
        if default_variant(&want.arch) == Some(v) {
            if let Some((i, _)) = candidates.iter().find(|(_, var)| var.is_none()) {
                return Some(i);
            }
        }
        if want.variant.is_some() {
            return None;
        }
    }
    candidates
        .iter()
        .find(|(_, var)| var.is_none())
        .or(candidates.first())
        .map(|(i, _)| *i)
}

impl Platform {
    /// Whether an item of this platform is what [`select`] would pick for `want` among items of
    /// this platform alone.
    pub fn matches(&self, want: &Platform) -> bool {
        select(std::slice::from_ref(self), want, |p| Some(p.clone())).is_some()
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

    #[test]
    fn select_prefers_the_exact_then_the_default_variant() {
        let ps: Vec<Platform> = ["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64"]
            .iter()
            .filter_map(|s| Platform::parse(s))
            .collect();
        let pick = |w: &str| {
            let want = Platform::parse(w).unwrap();
            select(&ps, &want, |p| Some(p.clone())).map(ToString::to_string)
        };
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("linux/arm/v6"));
        assert_eq!(pick("linux/arm").as_deref(), Some("linux/arm/v7"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("linux/arm64"));
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("linux/arm/v5"), None);
        // Items without a platform never match.
        assert_eq!(
            select(&ps, &Platform::host(), |_| None::<Platform>).map(|_| ()),
            None
        );
    }
}
