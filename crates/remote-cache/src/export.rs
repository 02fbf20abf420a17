//! Writing a cache: to a registry (the blobs it lacks, then the manifest under the tag), or
//! into an OCI layout directory. Every layer a record names must be in the store, except, for a
//! registry, layers the repository already has (HEAD first, as a push does).

use crate::artifact;
use crate::error::CacheError;
use crate::format::{CacheConfig, ARTIFACT_TYPE};
use crate::layout;
use serde_json::Value;
use std::path::Path;
use whittle_oci::{media_type, Descriptor, Digest, Reference};
use whittle_registry::PushOptions;
use whittle_store::Store;

/// Pushes `cfg` as a cache artifact to `target`; returns the manifest's digest. A second
/// export to the same reference uploads only the blobs the registry lacks.
pub fn to_registry(
    store: &Store,
    cfg: &CacheConfig,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Digest, CacheError> {
    let name = target.to_string();
    let a = artifact::build(cfg);
    store
        .put_bytes(&a.config)
        .map_err(|source| CacheError::Store {
            source_name: name.clone(),
            source: Box::new(source),
        })?;
    whittle_registry::push_artifact(
        store,
        target,
        &a.blobs,
        media_type::OCI_MANIFEST,
        &a.manifest,
        opts,
    )
    .map_err(|source| CacheError::Registry {
        source_name: name,
        source: Box::new(source),
    })
}

/// Writes `cfg` as an OCI layout in `dir` (created if needed); returns the manifest's digest.
pub fn to_local(store: &Store, cfg: &CacheConfig, dir: &Path) -> Result<Digest, CacheError> {
    let name = dir.display().to_string();
    let a = artifact::build(cfg);
    let config = Digest::of_bytes(&a.config);
    let manifest = Digest::of_bytes(&a.manifest);
    let mut desc = Descriptor::new(
        media_type::OCI_MANIFEST,
        manifest.clone(),
        a.manifest.len() as u64,
    );
    desc.extra
        .insert("artifactType".into(), Value::from(ARTIFACT_TYPE));
    let mut blobs = a.blobs.clone();
    blobs.push(desc.clone());
    layout::write(
        &name,
        dir,
        store,
        &blobs,
        &[(&config, &a.config), (&manifest, &a.manifest)],
        &desc,
    )?;
    Ok(manifest)
}

/// The value of the inline-cache annotation ([`crate::format::INLINE_ANNOTATION`]) for `cfg`,
/// whose layers must be the image's own.
pub fn inline(cfg: &CacheConfig) -> String {
    String::from_utf8(cfg.to_vec()).unwrap_or_default()
}
