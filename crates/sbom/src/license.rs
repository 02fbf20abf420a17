//! Declared licenses, sorted into what SBOM formats can say: a valid SPDX expression (checked
//! with the `spdx` crate's license list), or free text.

/// A declared license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum License {
    /// A single SPDX license id.
    Id(String),
    /// A compound SPDX expression (`MIT OR Apache-2.0`).
    Expression(String),
    /// Anything else, verbatim.
    Text(String),
}

/// Sorts a declared license.
pub fn classify(s: &str) -> License {
    let s = s.trim();
    let plain = !s.contains("LicenseRef-") && !s.contains("DocumentRef-");
    match spdx::Expression::parse(s) {
        Ok(e) if plain => {
            let single = e.requirements().count() == 1
                && !s.contains(' ')
                && !s.contains('(')
                && !s.contains('+');
            if single {
                License::Id(s.to_string())
            } else {
                License::Expression(s.to_string())
            }
        }
        _ => License::Text(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_licenses() {
        assert_eq!(classify("MIT"), License::Id("MIT".into()));
        assert_eq!(
            classify("MIT OR Apache-2.0"),
            License::Expression("MIT OR Apache-2.0".into())
        );
        assert_eq!(classify("BSD License"), License::Text("BSD License".into()));
        assert_eq!(
            classify("LicenseRef-x"),
            License::Text("LicenseRef-x".into())
        );
    }
}
