//! npm packages: `package.json` of each directory right under a `node_modules` (scoped ones
//! under `node_modules/@scope/`); other `package.json` files inside a package are not packages.

use crate::package::{purl, Package, PackageKind};

/// Whether a key's components name a package's own `package.json`.
pub fn is_package_json(components: &[&[u8]]) -> bool {
    let direct = matches!(components, [.., nm, name, b"package.json"]
        if *nm == b"node_modules" && !name.starts_with(b"@"));
    let scoped = matches!(components, [.., nm, scope, _, b"package.json"]
        if *nm == b"node_modules" && scope.starts_with(b"@"));
    direct || scoped
}

/// The package a `package.json` describes.
pub fn parse_package_json(bytes: &[u8], location: &str) -> Result<Package, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let name = v.get("name").and_then(|n| n.as_str()).ok_or("no name")?;
    let version = v
        .get("version")
        .and_then(|n| n.as_str())
        .ok_or("no version")?;
    let (ns, short) = match name.split_once('/') {
        Some((scope, n)) if scope.starts_with('@') => (Some(scope), n),
        _ => (None, name),
    };
    let mut p = Package::new(
        PackageKind::Npm,
        name,
        version,
        purl("npm", ns, short, version, &[]),
        location,
    );
    p.license = match v.get("license") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(o) => o.get("type").and_then(|t| t.as_str()).map(str::to_string),
        None => None,
    };
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_under_node_modules() {
        let c = |s: &'static str| s.split('/').map(str::as_bytes).collect::<Vec<_>>();
        assert!(is_package_json(&c(
            "app/node_modules/left-pad/package.json"
        )));
        assert!(is_package_json(&c("node_modules/@types/node/package.json")));
        assert!(!is_package_json(&c(
            "node_modules/left-pad/lib/package.json"
        )));
        assert!(!is_package_json(&c("app/package.json")));
        let p = parse_package_json(
            br#"{"name":"@types/node","version":"20.1.0","license":"MIT"}"#,
            "/x",
        )
        .unwrap();
        assert_eq!(p.purl, "pkg:npm/%40types/node@20.1.0");
        assert!(parse_package_json(b"{\"name\":1}", "/x").is_err());
    }
}
