//! Debian packages: `/var/lib/dpkg/status` (one paragraph a package, fields `Package`,
//! `Version`, `Architecture`, `Status`, `Source`) and distroless's `/var/lib/dpkg/status.d/*`
//! (the same paragraphs, a file a package, no status line); the files of each package from
//! `/var/lib/dpkg/info/NAME[:ARCH].list`.

use super::paragraphs;
use crate::package::{purl, Package, PackageKind};

/// The installed packages a status file lists. `distroless` files have no `Status` field and
/// list only installed packages. The purl's distro qualifier is filled in later (os-release).
pub fn parse_status(text: &str, location: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let get = |k: &str| {
            p.iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim())
        };
        let (Some(name), Some(version)) = (get("Package"), get("Version")) else {
            continue;
        };
        if let Some(status) = get("Status") {
            // "install ok installed": only the last word says what is on disk.
            if status.split_whitespace().nth(2) != Some("installed") {
                continue;
            }
        }
        let arch = get("Architecture").unwrap_or("");
        let mut pkg = Package::new(PackageKind::Deb, name, version, String::new(), location);
        pkg.purl = deb_purl(name, version, arch, get("Source"), "debian", "");
        out.push(pkg);
    }
    out
}

/// The purl of a Debian package; `source` is the `Source` field (`name (version)`).
pub fn deb_purl(
    name: &str,
    version: &str,
    arch: &str,
    source: Option<&str>,
    distro_id: &str,
    distro_version: &str,
) -> String {
    let upstream = source
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .filter(|s| *s != name)
        .unwrap_or("");
    let distro = if distro_version.is_empty() {
        String::new()
    } else {
        format!("{distro_id}-{distro_version}")
    };
    purl(
        "deb",
        Some(distro_id),
        name,
        version,
        &[("arch", arch), ("distro", &distro), ("upstream", upstream)],
    )
}

/// The package name of a `.list` file's name (`libc6:amd64.list` → `libc6`).
pub fn list_package(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".list")?;
    Some(stem.split(':').next().unwrap_or(stem))
}

/// The paths a `.list` file holds (the root `/.` left out).
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && *l != "/.")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_only() {
        let t = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: noversion\n";
        let p = parse_status(t, "/var/lib/dpkg/status");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(
            p[0].purl,
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc"
        );
        assert_eq!(list_package("libc6:amd64.list"), Some("libc6"));
        assert_eq!(
            parse_list("/.\n/usr\n/usr/bin/ls\n"),
            ["/usr", "/usr/bin/ls"]
        );
    }
}
