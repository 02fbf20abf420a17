//! Python distributions: the email-style headers of `*.dist-info/METADATA` and
//! `*.egg-info/PKG-INFO` (`Name`, `Version`, `License-Expression` or `License`). Only the
//! headers are read; the body (the long description) is not needed.

use crate::package::{purl, Package, PackageKind};

/// The distribution a METADATA file describes, or why not.
pub fn parse_metadata(text: &str, location: &str) -> Result<Package, String> {
    let mut name = None;
    let mut version = None;
    let mut license = None;
    let mut expression = None;
    let mut ended = false;
    for line in text.lines() {
        if line.is_empty() {
            ended = true;
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a folded continuation (of a long License, say): the first line is enough
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "name" => name = Some(v),
            "version" => version = Some(v),
            "license" if !v.is_empty() && v != "UNKNOWN" => license = Some(v),
            "license-expression" => expression = Some(v),
            _ => {}
        }
    }
    if !ended && name.is_none() {
        return Err("no headers".into());
    }
    let (Some(name), Some(version)) = (name, version) else {
        return Err("no Name or Version header".into());
    };
    // PEP 503 normalisation, as the purl spec asks for pypi names.
    let normalized: String = name
        .to_ascii_lowercase()
        .split(['-', '_', '.'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let mut p = Package::new(
        PackageKind::Python,
        name,
        version,
        purl("pypi", None, &normalized, version, &[]),
        location,
    );
    p.license = expression.or(license).map(str::to_string);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_only() {
        let p = parse_metadata(
            "Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.8.0\nLicense: PSF\n\nLicense: not a header\n",
            "/m",
        )
        .unwrap();
        assert_eq!(p.purl, "pkg:pypi/typing-extensions@4.8.0");
        assert_eq!(p.license.as_deref(), Some("PSF"));
        assert!(parse_metadata("Name: x\n\n", "/m").is_err());
    }
}
