//! Rust crates: `Cargo.lock` files (`[[package]]` tables) and cargo-auditable's dependency
//! list (the JSON of a binary's `.dep-v0` section: `packages` with `name`, `version`,
//! `source`).

use crate::package::{purl, Package, PackageKind};

fn crate_package(name: &str, version: &str, location: &str) -> Package {
    Package::new(
        PackageKind::RustCrate,
        name,
        version,
        purl("cargo", None, name, version, &[]),
        location,
    )
}

/// The packages a `Cargo.lock` pins.
pub fn parse_lock(text: &str, location: &str) -> Result<Vec<Package>, String> {
    let v: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let pkgs = v
        .get("package")
        .and_then(|p| p.as_array())
        .ok_or("no [[package]]")?;
    Ok(pkgs
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p.get("version")?.as_str()?;
            Some(crate_package(name, version, location))
        })
        .collect())
}

/// The packages of cargo-auditable's JSON (the build-only ones left out: they are not in the
/// binary).
pub fn from_auditable(v: &serde_json::Value, location: &str) -> Vec<Package> {
    v.get("packages")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter(|p| p.get("kind").and_then(|k| k.as_str()) != Some("build"))
                .filter_map(|p| {
                    let name = p.get("name")?.as_str()?;
                    let version = p.get("version")?.as_str()?;
                    Some(crate_package(name, version, location))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_auditable() {
        let lock = "version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.190\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n";
        let p = parse_lock(lock, "/Cargo.lock").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].purl, "pkg:cargo/serde@1.0.190");
        assert!(parse_lock("[[package]\n", "/x").is_err());
        let j = serde_json::json!({"packages":[{"name":"a","version":"1.0.0","source":"crates.io"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"}]});
        assert_eq!(from_auditable(&j, "/bin/a").len(), 1);
    }
}
