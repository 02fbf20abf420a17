//! Alpine packages: `/lib/apk/db/installed`, one paragraph a package of one-letter fields
//! (`P` name, `V` version, `A` arch, `L` license, `o` origin, `F` a directory, `R` a file in
//! the last `F`).

use crate::package::{purl, Package, PackageKind};

/// The packages of an apk database.
pub fn parse_installed(text: &str, location: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut license, mut origin) = ("", "", "", None, "");
        let mut dir = String::new();
        let mut files = Vec::new();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "P" => name = v,
                "V" => version = v,
                "A" => arch = v,
                "L" => license = Some(v.to_string()).filter(|l| !l.is_empty()),
                "o" => origin = v,
                "F" => dir = v.to_string(),
                "R" => files.push(if dir.is_empty() {
                    format!("/{v}")
                } else {
                    format!("/{dir}/{v}")
                }),
                _ => {}
            }
        }
        if name.is_empty() || version.is_empty() {
            continue;
        }
        let upstream = if origin != name { origin } else { "" };
        let p = purl(
            "apk",
            Some("alpine"),
            name,
            version,
            &[("arch", arch), ("upstream", upstream)],
        );
        let mut pkg = Package::new(PackageKind::Apk, name, version, p, location);
        pkg.license = license;
        pkg.files = files;
        out.push(pkg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packages_and_files() {
        let t = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\nF:bin\nR:busybox\n\nP:broken\n";
        let p = parse_installed(t, "/lib/apk/db/installed");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].purl, "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64");
        assert_eq!(p[0].files, ["/lib/ld-musl-x86_64.so.1"]);
        assert_eq!(p[1].license.as_deref(), Some("GPL-2.0-only"));
    }
}
