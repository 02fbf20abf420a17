//! The SBOM predicate: `whittle_sbom`'s SPDX 2.3 document of the built image, as BuildKit puts
//! an SPDX document (predicate type `https://spdx.dev/Document`) in its attestation.
//!
//! Each package's `comment` also says which Dockerfile step made the layer it was found in
//! (the manifest's `dev.whittle.layers` annotation) and, for a `COPY --from`, which stage it
//! was copied from: what a scanner cannot tell from a multi-stage image alone.
//!
//! The document depends only on the image (manifest digest), its name and those notes, so it
//! is cached under a key of them (`<store>/attest-cache/`, each file checked by its own
//! sha256): a no-change rebuild makes the same manifest and reuses the document instead of
//! reading every layer again.

use crate::error::{AttestError, Result};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use whittle_oci::{parse_layer_origins, LayerOrigin, LAYERS_ANNOTATION};
use whittle_store::{ImageRecord, Store};

/// Bump when the document whittle writes for an image changes.
const CACHE_VERSION: &str = "sbom-spdx-1";

/// What to catalogue.
pub struct SbomInput<'a> {
    /// The image (in the store).
    pub image: &'a ImageRecord,
    /// The name the document gives it (the first `-t`, else its manifest digest).
    pub name: String,
    /// `COPY --from` steps of the Dockerfile: line → the stage (or image) copied from.
    pub copies: &'a BTreeMap<usize, String>,
    /// Layers read at once.
    pub threads: usize,
}

/// A build stage's files (`scan-stages`): its snapshot directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageInput {
    /// The stage's name, or `stage-N`.
    pub label: String,
    /// Its layers, bottom first.
    pub layers: Vec<whittle_sbom::DirLayer>,
    /// The Dockerfile step that made each layer (none for a base image's), as the image's
    /// `dev.whittle.layers` annotation says it for an image's layers.
    pub origins: Vec<Option<LayerOrigin>>,
}

/// The SPDX JSON document (compact), from the cache when it has it.
pub fn predicate(store: &Store, input: &SbomInput<'_>) -> Result<Vec<u8>> {
    cached(store, &cache_key(input), || make(store, input))
}

/// The SPDX JSON document of a build stage the image's build needed, named `IMAGE (stage
/// LABEL)`, from the cache when it has it (keyed by the stage's layers' diff ids: the same
/// stage rebuilt from the cache is not read again).
pub fn stage_predicate(
    store: &Store,
    image_name: &str,
    stage: &StageInput,
    copies: &BTreeMap<usize, String>,
    threads: usize,
) -> Result<Vec<u8>> {
    let name = format!("{image_name} (stage {})", stage.label);
    let origins: Vec<String> = stage
        .origins
        .iter()
        .map(|o| {
            o.as_ref()
                .map(|o| format!("{}:{}:{}", o.file, o.line, o.stage))
                .unwrap_or_default()
        })
        .collect();
    let mut parts = vec!["stage", name.as_str()];
    parts.extend(origins.iter().map(String::as_str));
    for l in &stage.layers {
        // A layer without a diff id cannot be cached by content: no cache then.
        let Some(d) = l.diff_id.as_deref() else {
            return make_stage(&name, stage, copies, threads);
        };
        parts.push(d);
    }
    cached(store, &key_of(&parts, copies), || {
        make_stage(&name, stage, copies, threads)
    })
}

fn make_stage(
    name: &str,
    stage: &StageInput,
    copies: &BTreeMap<usize, String>,
    threads: usize,
) -> Result<Vec<u8>> {
    let opts = whittle_sbom::Options {
        threads: threads.max(1),
        ..whittle_sbom::Options::default()
    };
    let sbom =
        whittle_sbom::catalog_dirs(name, &stage.layers, &opts).map_err(|e| AttestError::Sbom {
            image: name.to_string(),
            source: Box::new(e),
        })?;
    spdx_with_origins(&sbom, &stage.origins, copies)
}

/// A stage label as part of a file name: letters, digits, `.`, `-` and `_` kept, anything else
/// (and a leading `.`) `_`.
pub fn file_safe(label: &str) -> String {
    label
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '.' if i == 0 => '_',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') => c,
            _ => '_',
        })
        .collect()
}

/// The document under `key` in `<store>/attest-cache/`, else `make`'s (then cached).
fn cached(store: &Store, key: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let dir = store.root().join("attest-cache");
    let path = dir.join(key);
    if let Some(doc) = read_cached(&path) {
        return Ok(doc);
    }
    let doc = make()?;
    // A cache that cannot be written costs the next build a scan, nothing else.
    let _ = write_cached(&dir, &path, &doc);
    Ok(doc)
}

fn cache_key(input: &SbomInput<'_>) -> String {
    key_of(
        &[input.image.manifest.as_str(), input.name.as_str()],
        input.copies,
    )
}

fn key_of(parts: &[&str], copies: &BTreeMap<usize, String>) -> String {
    let mut h = Sha256::new();
    for part in [CACHE_VERSION, env!("CARGO_PKG_VERSION")]
        .iter()
        .chain(parts)
    {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (line, from) in copies {
        h.update((*line as u64).to_le_bytes());
        h.update((from.len() as u64).to_le_bytes());
        h.update(from.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The cached document when the file is whole: its first line is the sha256 of the rest.
fn read_cached(path: &PathBuf) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let (sum, body) = (bytes.get(..nl)?, bytes.get(nl + 1..)?);
    (sum == hex::encode(Sha256::digest(body)).as_bytes()).then(|| body.to_vec())
}

fn write_cached(dir: &PathBuf, path: &PathBuf, doc: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = tempfile::NamedTempFile::new_in(dir)?;
    f.write_all(hex::encode(Sha256::digest(doc)).as_bytes())?;
    f.write_all(b"\n")?;
    f.write_all(doc)?;
    f.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn make(store: &Store, input: &SbomInput<'_>) -> Result<Vec<u8>> {
    let what = input.image.manifest.to_string();
    let opts = whittle_sbom::Options {
        threads: input.threads.max(1),
        ..whittle_sbom::Options::default()
    };
    let mut sbom = whittle_sbom::catalog(
        &whittle_sbom::Input::Store(what.clone()),
        Some(store),
        &opts,
    )
    .map_err(|e| AttestError::Sbom {
        image: what.clone(),
        source: Box::new(e),
    })?;
    sbom.name = input.name.clone();
    let manifest = store.manifest(input.image)?;
    let origins = manifest
        .annotations
        .get(LAYERS_ANNOTATION)
        .and_then(|v| parse_layer_origins(v, manifest.layers.len()))
        .unwrap_or_default();
    spdx_with_origins(&sbom, &origins, input.copies)
}

/// The SPDX document of `sbom`, each package's comment also naming the step that made its
/// layer (`origins`, by layer) and the stage a `COPY --from` took it from.
fn spdx_with_origins(
    sbom: &whittle_sbom::Sbom,
    origins: &[Option<LayerOrigin>],
    copies: &BTreeMap<usize, String>,
) -> Result<Vec<u8>> {
    let mut doc = whittle_sbom::spdx::to_json(sbom);
    if let Some(pkgs) = doc.get_mut("packages").and_then(|p| p.as_array_mut()) {
        // packages[0] is the image; packages[n + 1] is sbom.packages[n].
        for (p, json) in sbom.packages.iter().zip(pkgs.iter_mut().skip(1)) {
            let Some(note) = origins
                .get(p.layer)
                .and_then(Option::as_ref)
                .map(|o| origin_note(o, copies))
            else {
                continue;
            };
            if let Some(c) = json.get_mut("comment") {
                let text = format!("{}; {note}", c.as_str().unwrap_or_default());
                *c = text.into();
            }
        }
    }
    serde_json::to_vec(&doc).map_err(|source| AttestError::Json {
        what: "the SPDX document".into(),
        source,
    })
}

/// "made by Dockerfile:12 in stage app, copied from stage builder".
fn origin_note(o: &LayerOrigin, copies: &BTreeMap<usize, String>) -> String {
    let mut s = format!("made by {}:{} in stage {}", o.file, o.line, o.stage);
    if let Some(from) = copies.get(&o.line) {
        s.push_str(&format!(", copied from stage {from}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_labels_make_safe_file_names() {
        assert_eq!(file_safe("builder"), "builder");
        assert_eq!(file_safe("stage-2"), "stage-2");
        assert_eq!(file_safe("../x/y"), "_._x_y");
    }

    #[test]
    fn notes_name_the_step_and_the_stage_copied_from() {
        let o = LayerOrigin {
            file: "Dockerfile".into(),
            line: 12,
            stage: "app".into(),
        };
        let mut copies = BTreeMap::new();
        assert_eq!(
            origin_note(&o, &copies),
            "made by Dockerfile:12 in stage app"
        );
        copies.insert(12, "builder".into());
        assert_eq!(
            origin_note(&o, &copies),
            "made by Dockerfile:12 in stage app, copied from stage builder"
        );
    }

    #[test]
    fn a_damaged_cache_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_cached(&dir.path().to_path_buf(), &path, b"{\"x\":1}").unwrap();
        assert_eq!(read_cached(&path).unwrap(), b"{\"x\":1}");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] = b'2';
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_cached(&path), None);
        std::fs::write(&path, b"no newline").unwrap();
        assert_eq!(read_cached(&path), None);
    }
}
