//! Java archives (`.jar`, `.war`, `.ear`): each `META-INF/maven/GROUP/ARTIFACT/pom.properties`
//! is a package; a jar without one is named by its `META-INF/MANIFEST.MF`
//! (`Implementation-Title`/`Bundle-SymbolicName`, `Implementation-Version`/`Bundle-Version`).
//! Read with the `zip` crate from a seekable copy (the caller spools large jars to a temporary
//! file); every member is read through a bound, so a zip bomb costs at most that much.

use crate::package::{purl, Package, PackageKind};
use std::io::{Read, Seek};

/// Most members a jar may have.
const MAX_MEMBERS: usize = 200_000;
/// Most bytes read of one member.
const MAX_MEMBER: u64 = 1 << 20;

/// Whether a file name is a Java archive.
pub fn is_archive(name: &[u8]) -> bool {
    [&b".jar"[..], b".war", b".ear"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The packages a jar holds.
pub fn parse_jar<R: Read + Seek>(r: R, location: &str) -> Result<Vec<Package>, String> {
    let mut z = zip::ZipArchive::new(r).map_err(|e| format!("not a zip archive: {e}"))?;
    if z.len() > MAX_MEMBERS {
        return Err(format!("{} members, more than {MAX_MEMBERS}", z.len()));
    }
    let mut poms = Vec::new();
    let mut manifest = None;
    let names: Vec<String> = z.file_names().map(str::to_string).collect();
    let mut wanted: Vec<&String> = names
        .iter()
        .filter(|n| {
            (n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties"))
                || n.as_str() == "META-INF/MANIFEST.MF"
        })
        .collect();
    wanted.sort();
    for n in wanted {
        let f = z.by_name(n).map_err(|e| format!("{n}: {e}"))?;
        let mut bytes = Vec::new();
        f.take(MAX_MEMBER)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{n}: {e}"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if n == "META-INF/MANIFEST.MF" {
            manifest = Some(text);
        } else {
            poms.push(text);
        }
    }
    let mut out = Vec::new();
    for text in &poms {
        let get = |k: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(key, _)| key.trim() == k)
                .map(|(_, v)| v.trim().to_string())
        };
        if let (Some(g), Some(a), Some(v)) = (get("groupId"), get("artifactId"), get("version")) {
            let p = purl("maven", Some(&g), &a, &v, &[]);
            out.push(Package::new(PackageKind::JavaArchive, &a, &v, p, location));
        }
    }
    if out.is_empty() {
        if let Some(m) = manifest {
            let get = |k: &str| {
                m.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let name = get("Implementation-Title").or_else(|| {
                get("Bundle-SymbolicName").map(|s| s.split(';').next().unwrap_or("").to_string())
            });
            let version = get("Implementation-Version").or_else(|| get("Bundle-Version"));
            if let (Some(n), Some(v)) = (name, version) {
                let group = get("Implementation-Vendor-Id");
                let p = purl("maven", group.as_deref(), &n, &v, &[]);
                out.push(Package::new(PackageKind::JavaArchive, &n, &v, p, location));
            }
        }
    }
    Ok(out)
}
