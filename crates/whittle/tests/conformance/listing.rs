//! The normaliser of the recorded conformance suite: a docker archive (what `docker save` and
//! `whittle save` write) into the two texts a case records, `config.json` and `tree.txt`.
//! The same code lists BuildKit's image when `scripts/conformance-record.sh` records a case
//! and whittle's image when the test compares, so both sides are normalised identically.
//! What it leaves out is exactly what `docs/conformance.md` lists; nothing else.

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, Read};
use std::path::Path;

/// An image as the suite sees it.
pub struct Listing {
    /// The layer diff ids, bottom first.
    pub diff_ids: Vec<String>,
    /// `config.json`: the normalised config fields, layer count and history pattern.
    pub config: String,
    /// `tree.txt`: the merged file tree, less what is unchanged from the base image.
    pub tree: String,
}

/// One path of a merged tree. Modification times are not kept (docs/conformance.md).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Extended attributes, name to sha256 of the value.
    xattrs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File {
        size: u64,
        sha256: String,
    },
    Symlink(String),
    /// A hard link to an earlier path, with that path's content.
    Hardlink {
        target: String,
        size: u64,
        sha256: String,
    },
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

type Tree = BTreeMap<String, Node>;

/// The fields of an image config the suite compares (Docker's `config` object).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

/// Lists the single image of the docker archive at `archive`. Paths whose entry is the same
/// as in the image's bottom layers that equal `base_diff_ids` are left out; a path of those
/// layers that the image no longer has is listed as `deleted`. `times`: the build pinned its
/// timestamps with `SOURCE_DATE_EPOCH`, so they are compared too.
pub fn list_docker_archive(
    archive: &Path,
    base_diff_ids: &[String],
    times: bool,
) -> Result<Listing, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let f = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    tar::Archive::new(BufReader::new(f))
        .unpack(dir.path())
        .map_err(|e| format!("unpacking {}: {e}", archive.display()))?;
    let manifest: Value = read_json(&dir.path().join("manifest.json"))?;
    let entries = manifest
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or("manifest.json must name exactly one image")?;
    let m = &entries[0];
    let config_path = m["Config"].as_str().ok_or("manifest.json: no Config")?;
    let doc: Value = read_json(&dir.path().join(config_path))?;
    let layers: Vec<&str> = m["Layers"]
        .as_array()
        .ok_or("manifest.json: no Layers")?
        .iter()
        .map(|l| l.as_str().ok_or("manifest.json: a layer is not a string"))
        .collect::<Result<_, _>>()?;
    let diff_ids: Vec<String> = doc["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("config: no rootfs.diff_ids")?
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    if diff_ids.len() != layers.len() {
        return Err(format!(
            "{} layers but {} diff ids",
            layers.len(),
            diff_ids.len()
        ));
    }
    let base_len = if !base_diff_ids.is_empty() && diff_ids.starts_with(base_diff_ids) {
        base_diff_ids.len()
    } else {
        0
    };
    let mut tree = Tree::new();
    let mut base = Tree::new();
    // Whether each layer changes the merged tree at all (mtimes aside).
    let mut changes = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if i == base_len {
            base = tree.clone();
        }
        let before = tree.clone();
        apply_layer(&mut tree, &dir.path().join(l)).map_err(|e| format!("layer {l}: {e}"))?;
        changes.push(tree != before);
    }
    if base_len == layers.len() {
        base = tree.clone();
    }
    Ok(Listing {
        config: normalise_config(&doc, &changes, base_len, times),
        tree: render(&tree, &base),
        diff_ids,
    })
}

fn read_json(p: &Path) -> Result<Value, String> {
    let b = fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

/// The compared config: the fields above (a null counts as absent), `os`, `architecture`,
/// and the layers and history as docs/conformance.md says: a layer that changes nothing in
/// the merged tree (`changes[i]` false) counts as no layer, its history entry as empty; the
/// history entries of ARG instructions are left out. `history` is then a pattern of `L` (a
/// layer) and `E` (empty_layer). With `times`, also the image's `created` and the `created`
/// of each history entry kept after the base image's (the first `base_layers` layers) that
/// has one (otherwise they are build times).
pub fn normalise_config(doc: &Value, changes: &[bool], base_layers: usize, times: bool) -> String {
    let mut out = Map::new();
    let cfg = &doc["config"];
    for f in CONFIG_FIELDS {
        match cfg.get(*f) {
            None | Some(Value::Null) => {}
            Some(v) => {
                out.insert((*f).to_string(), v.clone());
            }
        }
    }
    for f in ["os", "architecture", "author"] {
        if let Some(v) = doc.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    out.insert(
        "layers".into(),
        json!(changes.iter().filter(|c| **c).count()),
    );
    let mut pattern = String::new();
    let mut created = Vec::new();
    let mut layer = 0;
    for e in doc["history"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let empty = e["empty_layer"].as_bool() == Some(true);
        let changed = if empty {
            false
        } else {
            layer += 1;
            changes.get(layer - 1).copied().unwrap_or(true)
        };
        let by = e["created_by"].as_str().unwrap_or("");
        if empty && by.starts_with("ARG ") {
            continue;
        }
        pattern.push(if changed { 'L' } else { 'E' });
        let in_base = layer < base_layers || (layer == base_layers && !empty && layer > 0);
        if let Some(c) = e.get("created").filter(|_| !in_base) {
            created.push(c.clone());
        }
    }
    out.insert("history".into(), json!(pattern));
    if times {
        out.insert("created".into(), doc["created"].clone());
        out.insert("history_created".into(), json!(created));
    }
    let mut s = serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default();
    s.push('\n');
    s
}

/// `a/b/` and `./a/b` are `/a/b`; the root is `/`.
fn clean(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn parent_and_name(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(0) => ("/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("/", p),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Removes `p`'s descendants (and `p` itself when `inclusive`).
fn remove_under(tree: &mut Tree, p: &str, inclusive: bool) {
    let prefix = if p == "/" {
        "/".to_string()
    } else {
        format!("{p}/")
    };
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        tree.remove(&k);
    }
    if inclusive {
        tree.remove(p);
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Applies one layer (plain, gzip or zstd tar in the OCI whiteout format) to `tree`.
fn apply_layer(tree: &mut Tree, path: &Path) -> Result<(), String> {
    let f = fs::File::open(path).map_err(|e| e.to_string())?;
    let (_, r) = whittle_layer::decompress(BufReader::new(f)).map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(r);
    let mut opaque = Vec::new();
    let mut whiteouts = Vec::new();
    let mut added: Vec<(String, Node)> = Vec::new();
    let mut added_index: BTreeMap<String, usize> = BTreeMap::new();
    for e in ar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let p = clean(&String::from_utf8_lossy(&e.path_bytes()));
        let (dir, name) = parent_and_name(&p);
        if name == ".wh..wh..opq" {
            opaque.push(dir.to_string());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            whiteouts.push(join(dir, hidden));
            continue;
        }
        let h = e.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(k.to_string(), sha256_hex(ext.value_bytes()));
                }
            }
        }
        let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
        let uid = h.uid().map_err(|e| e.to_string())?;
        let gid = h.gid().map_err(|e| e.to_string())?;
        let dev = || -> Result<(u32, u32), String> {
            Ok((
                h.device_major()
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default(),
                h.device_minor()
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default(),
            ))
        };
        let link = || -> Result<String, String> {
            e_link(&h).ok_or_else(|| format!("{p}: link without a target"))
        };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut size = 0u64;
                loop {
                    let n = e.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                Kind::File {
                    size,
                    sha256: hex::encode(hasher.finalize()),
                }
            }
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => {
                let target = clean(&link()?);
                let t = added_index
                    .get(&target)
                    .map(|i| &added[*i].1)
                    .or_else(|| tree.get(&target))
                    .ok_or_else(|| format!("{p}: hard link to {target}, which is not there"))?;
                match &t.kind {
                    Kind::File { size, sha256 } | Kind::Hardlink { size, sha256, .. } => {
                        Kind::Hardlink {
                            target,
                            size: *size,
                            sha256: sha256.clone(),
                        }
                    }
                    other => return Err(format!("{p}: hard link to a {other:?}")),
                }
            }
            tar::EntryType::Char => {
                let (a, b) = dev()?;
                Kind::Char(a, b)
            }
            tar::EntryType::Block => {
                let (a, b) = dev()?;
                Kind::Block(a, b)
            }
            tar::EntryType::Fifo => Kind::Fifo,
            other => return Err(format!("{p}: unexpected tar entry type {other:?}")),
        };
        let node = Node {
            kind,
            mode,
            uid,
            gid,
            xattrs,
        };
        match added_index.get(&p) {
            Some(i) => added[*i].1 = node,
            None => {
                added_index.insert(p.clone(), added.len());
                added.push((p, node));
            }
        }
    }
    // Whiteouts and opaque directories hide what the lower layers have, not this layer's own
    // entries, so they apply before this layer's entries are added.
    for d in &opaque {
        remove_under(tree, d, false);
    }
    for w in &whiteouts {
        remove_under(tree, w, true);
    }
    for (p, node) in added {
        if node.kind != Kind::Dir {
            // A file over a lower directory hides that directory's contents.
            remove_under(tree, &p, false);
        }
        tree.insert(p, node);
    }
    Ok(())
}

fn e_link(h: &tar::Header) -> Option<String> {
    h.link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A path as a token: bare when it is plain printable ASCII without spaces, else quoted with
/// Rust's escapes.
fn token(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

fn line(p: &str, n: &Node) -> String {
    let ids = format!("{}:{}", n.uid, n.gid);
    let mode = format!("{:04o}", n.mode);
    let mut s = match &n.kind {
        Kind::Dir => format!("{} dir {mode} {ids}", token(p)),
        Kind::File { size, sha256 } => {
            format!("{} file {mode} {ids} {size} sha256:{sha256}", token(p))
        }
        // A symlink's own mode means nothing on Linux: not listed (docs/conformance.md).
        Kind::Symlink(t) => format!("{} symlink {ids} -> {}", token(p), token(t)),
        Kind::Hardlink {
            target,
            size,
            sha256,
        } => format!(
            "{} hardlink {mode} {ids} {size} sha256:{sha256} => {}",
            token(p),
            token(target)
        ),
        Kind::Char(a, b) => format!("{} char {mode} {ids} {a},{b}", token(p)),
        Kind::Block(a, b) => format!("{} block {mode} {ids} {a},{b}", token(p)),
        Kind::Fifo => format!("{} fifo {mode} {ids}", token(p)),
    };
    for (k, v) in &n.xattrs {
        s.push_str(&format!(" xattr:{}=sha256:{v}", token(k)));
    }
    s
}

/// The tree, one line a path in byte order, less the entries equal to `base`'s; `base`'s
/// paths that are gone are listed as `deleted`.
fn render(tree: &Tree, base: &Tree) -> String {
    let mut all: BTreeMap<&str, ()> = BTreeMap::new();
    for k in tree.keys().chain(base.keys()) {
        all.insert(k, ());
    }
    let mut out = String::new();
    for p in all.keys() {
        match (tree.get(*p), base.get(*p)) {
            (Some(n), Some(b)) if n == b => {}
            (Some(n), _) => {
                out.push_str(&line(p, n));
                out.push('\n');
            }
            (None, Some(_)) => {
                out.push_str(&format!("{} deleted\n", token(p)));
            }
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (p, t, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*t);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_mode(if *t == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(if *t == tar::EntryType::Regular {
                data.len() as u64
            } else {
                0
            });
            if *t == tar::EntryType::Symlink {
                h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            }
            b.append_data(
                &mut h,
                p,
                if *t == tar::EntryType::Regular {
                    *data
                } else {
                    &[][..]
                },
            )
            .unwrap();
        }
        b.finish().unwrap();
        f
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        use tar::EntryType::{Directory as D, Regular as F, Symlink as S};
        let l1 = layer(&[
            ("a/", D, b""),
            ("a/x", F, b"x"),
            ("a/y", F, b"y"),
            ("b/", D, b""),
            ("b/z", F, b"z"),
            ("c", F, b"c"),
        ]);
        let l2 = layer(&[
            ("a/", D, b""),
            ("a/.wh..wh..opq", F, b""),
            ("a/new", F, b"n"),
            (".wh.c", F, b""),
            ("b", S, b"a"),
        ]);
        let mut t = Tree::new();
        apply_layer(&mut t, l1.path()).unwrap();
        let base = t.clone();
        apply_layer(&mut t, l2.path()).unwrap();
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(keys, ["/a", "/a/new", "/b"]);
        let r = render(&t, &base);
        assert!(r.contains("/a/x deleted\n"), "{r}");
        assert!(r.contains("/b/z deleted\n"), "{r}");
        assert!(r.contains("/c deleted\n"), "{r}");
        assert!(r.contains("/b symlink 0:0 -> a\n"), "{r}");
        assert!(!r.contains("/a dir"), "unchanged dir listed: {r}");
    }

    #[test]
    fn no_op_layers_and_arg_entries_are_normalised_away() {
        let doc = json!({
            "os": "linux", "architecture": "amd64",
            "config": {"Env": ["A=1"], "Cmd": null, "User": "app"},
            "history": [
                {"created_by": "base"},
                {"created_by": "ARG X=1", "empty_layer": true},
                {"created_by": "RUN true"},
                {"created_by": "ENV A=1", "empty_layer": true},
                {"created_by": "RUN touch /x"},
            ]
        });
        let c: Value =
            serde_json::from_str(&normalise_config(&doc, &[true, false, true], 1, false)).unwrap();
        assert_eq!(c["history"], json!("LEEL"));
        assert_eq!(c["layers"], json!(2));
        assert_eq!(c["User"], json!("app"));
        assert!(c.get("Cmd").is_none(), "null is absent: {c}");
        assert!(c.get("created").is_none());
    }

    #[test]
    fn odd_names_are_quoted() {
        assert_eq!(token("/a b"), "\"/a b\"");
        assert_eq!(token("/ok"), "/ok");
        assert_eq!(token("/é"), "\"/é\"");
    }
}
