//! Stacking the layers' finds: a file counts only if no layer above deletes it (a whiteout of
//! it or of a directory above it, an opaque directory above it), replaces it (an entry at its
//! key) or hides it (a non-directory where one of its directories was). Each package keeps the
//! layer its file came from; for package databases rewritten by every layer that installs
//! (dpkg status, apk installed), the layer where the database first listed the same package
//! and version, counting down without a gap.

use crate::catalog::dpkg;
use crate::package::{Package, PackageKind};
use crate::scan::{key_hash, Found, LayerFinds};
use std::collections::HashMap;

/// Whether the file at `key` found in layer `layer` is still there at the top.
fn survives(layers: &[LayerFinds], layer: usize, key: &[u8]) -> bool {
    let h = key_hash(key);
    // The hashes of each directory above the key (the root is the empty key).
    let mut dirs = vec![key_hash(&[])];
    dirs.extend(
        key.iter()
            .enumerate()
            .filter(|(_, &b)| b == 0)
            .map(|(i, _)| key_hash(&key[..i])),
    );
    layers.iter().skip(layer + 1).all(|l| {
        !l.present.contains(&h)
            && !l.removed.contains(&h)
            && !dirs
                .iter()
                .any(|d| l.removed.contains(d) || l.opaque.contains(d) || l.nondir.contains(d))
    })
}

/// Whether a database file (any version of it) in layer `j` lists the package.
fn lists(l: &LayerFinds, key: &[u8], p: &Package) -> Option<bool> {
    l.finds
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, f)| match f {
            Found::Database(ps) => ps
                .iter()
                .any(|q| q.name == p.name && q.version == p.version && q.purl == p.purl),
            _ => false,
        })
}

/// The packages at the top of the stack.
pub fn stack(layers: &[LayerFinds]) -> Vec<Package> {
    let mut out = Vec::new();
    let mut lists_by_pkg: HashMap<String, Vec<String>> = HashMap::new();
    let mut distro: Option<(String, String)> = None;
    for (i, l) in layers.iter().enumerate() {
        for (key, found) in &l.finds {
            if !survives(layers, i, key) {
                continue;
            }
            match found {
                Found::Packages(ps) => out.extend(ps.iter().cloned().map(|mut p| {
                    p.layer = i;
                    p
                })),
                Found::Database(ps) => {
                    for p in ps {
                        let mut p = p.clone();
                        p.layer = i;
                        for j in (0..i).rev() {
                            match lists(&layers[j], key, &p) {
                                Some(true) => p.layer = j,
                                Some(false) => break,
                                None => {} // this layer did not touch the database
                            }
                        }
                        out.push(p);
                    }
                }
                Found::DpkgList(name, files) => {
                    lists_by_pkg.insert(name.clone(), files.clone());
                }
                Found::OsRelease(id, v) => {
                    // /etc/os-release wins over /usr/lib/os-release (it is searched first).
                    if distro.is_none() || key.starts_with(b"etc") {
                        distro = Some((id.clone(), v.clone()));
                    }
                }
            }
        }
    }
    for p in out.iter_mut().filter(|p| p.kind == PackageKind::Deb) {
        if let Some(files) = lists_by_pkg.get(&p.name) {
            p.files = files.clone();
        }
        if let Some((id, v)) = &distro {
            if !id.is_empty() {
                let arch = qualifier(&p.purl, "arch");
                let upstream = qualifier(&p.purl, "upstream");
                let upstream = Some(upstream.as_str()).filter(|u| !u.is_empty());
                p.purl = dpkg::deb_purl(&p.name, &p.version, &arch, upstream, id, v);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.kind, &a.name, &a.version, &a.locations, &a.purl, a.layer).cmp(&(
            b.kind,
            &b.name,
            &b.version,
            &b.locations,
            &b.purl,
            b.layer,
        ))
    });
    out
}

/// A qualifier's value, percent-decoded.
fn qualifier(purl: &str, key: &str) -> String {
    let v = purl
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_bytes())
        .unwrap_or(b"");
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = v
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (v[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_decode() {
        assert_eq!(
            qualifier(
                "pkg:deb/debian/a@1?arch=amd64&upstream=libsigc%2B%2B",
                "upstream"
            ),
            "libsigc++"
        );
        assert_eq!(qualifier("pkg:deb/debian/a@1", "arch"), "");
    }
}
