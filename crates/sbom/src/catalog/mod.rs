//! The catalogers: which files each wants (by path) and how each turns a file's bytes into
//! packages. Pure functions over bounded inputs; the layer walk (`scan.rs`) reads the files.

pub mod apk;
pub mod cargo;
pub mod dpkg;
pub mod java;
pub mod npm;
pub mod python;

/// What a file is to the catalogers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// `/var/lib/dpkg/status`, or a file of `status.d` (distroless).
    DpkgStatus,
    /// `/var/lib/dpkg/info/NAME.list`: the files of package NAME.
    DpkgList(String),
    /// `/lib/apk/db/installed`.
    Apk,
    /// `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` or an `*.egg-info` file.
    Python,
    /// A package's own `package.json` under `node_modules`.
    Npm,
    /// A `.jar`, `.war` or `.ear`.
    Jar,
    /// `Cargo.lock`.
    CargoLock,
    /// `/etc/os-release` or `/usr/lib/os-release`: the distro of the Debian purls.
    OsRelease,
}

/// What the catalogers want of the file at `key` (components joined by NUL), by path alone.
pub fn wants(key: &[u8]) -> Option<Want> {
    let c: Vec<&[u8]> = key.split(|&b| b == 0).collect();
    let name = *c.last()?;
    match c.as_slice() {
        [b"var", b"lib", b"dpkg", b"status"] => return Some(Want::DpkgStatus),
        [b"var", b"lib", b"dpkg", b"status.d", f] if !f.ends_with(b".md5sums") => {
            return Some(Want::DpkgStatus)
        }
        [b"var", b"lib", b"dpkg", b"info", f] => {
            return std::str::from_utf8(f)
                .ok()
                .and_then(dpkg::list_package)
                .map(|p| Want::DpkgList(p.to_string()))
        }
        [b"lib", b"apk", b"db", b"installed"] => return Some(Want::Apk),
        [b"etc", b"os-release"] | [b"usr", b"lib", b"os-release"] => return Some(Want::OsRelease),
        _ => {}
    }
    let parent = if c.len() >= 2 {
        c[c.len() - 2]
    } else {
        &b""[..]
    };
    if (name == b"METADATA" && parent.ends_with(b".dist-info"))
        || (name == b"PKG-INFO" && parent.ends_with(b".egg-info"))
        || name.ends_with(b".egg-info")
    {
        return Some(Want::Python);
    }
    if name == b"package.json" && npm::is_package_json(&c) {
        return Some(Want::Npm);
    }
    if java::is_archive(name) {
        return Some(Want::Jar);
    }
    if name == b"Cargo.lock" {
        return Some(Want::CargoLock);
    }
    None
}

/// Debian-style paragraphs (`Field: value`, continuation lines starting with a space or tab,
/// paragraphs separated by blank lines): each a list of (field, value).
pub fn paragraphs(text: &str) -> Vec<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim(), v));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `ID` and `VERSION_ID` of an os-release file.
pub fn os_release(text: &str) -> (String, String) {
    let get = |k: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("ID"), get("VERSION_ID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.replace('/', "\0").into_bytes()
    }

    #[test]
    fn paths_wanted() {
        assert_eq!(wants(&k("var/lib/dpkg/status")), Some(Want::DpkgStatus));
        assert_eq!(
            wants(&k("var/lib/dpkg/status.d/libc6")),
            Some(Want::DpkgStatus)
        );
        assert_eq!(wants(&k("var/lib/dpkg/status.d/libc6.md5sums")), None);
        assert_eq!(
            wants(&k("var/lib/dpkg/info/libc6:amd64.list")),
            Some(Want::DpkgList("libc6".into()))
        );
        assert_eq!(wants(&k("var/lib/dpkg/info/libc6.md5sums")), None);
        assert_eq!(
            wants(&k(
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"
            )),
            Some(Want::Python)
        );
        assert_eq!(wants(&k("usr/share/java/a.jar")), Some(Want::Jar));
        assert_eq!(wants(&k("src/Cargo.lock")), Some(Want::CargoLock));
        assert_eq!(wants(&k("usr/bin/ls")), None);
        assert_eq!(
            os_release("ID=debian\nVERSION_ID=\"12\"\n"),
            ("debian".into(), "12".into())
        );
    }
}
