//! The registry client: pull and push images by the OCI distribution spec, with docker's
//! reference normalisation, credentials and TLS rules.
//!
//! - [`Reference`] (`whittle_oci::Reference`): `alpine` → `docker.io/library/alpine:latest`;
//!   `name:tag@sha256:…` pins.
//! - [`pull`] / [`ensure_image`]: manifest or index (→ the platform's manifest), config and
//!   layers streamed into the store through digest-checking writers, layers in parallel; blobs
//!   the store has are not fetched; a failed or interrupted pull leaves no blob behind that did
//!   not verify, so the next try simply starts again.
//! - [`push_image`]: HEAD skips blobs the registry has, cross-repository mounts, monolithic or
//!   chunked uploads, the manifest last under every tag; the pushed digest is the local one. A
//!   layer the store knows only as remote (a build cache's, `whittle_store::RemoteBlob`) is
//!   mounted from its repository, else fetched ([`RegistryFetcher`]) and uploaded.
//! - [`Client`]: TLS with the system roots plus `/etc/docker/certs.d/<host>/*.crt`, plain HTTP
//!   only for loopback hosts and `--insecure-registry` ones; Basic and Bearer-token auth from
//!   `WWW-Authenticate` challenges with tokens cached per scope; retries with backoff.
//! - [`auth`]: `~/.docker/config.json` credentials (`auths`, `credsStore`, `credHelpers`),
//!   [`login`] and [`logout`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
mod client;
mod error;
mod fetcher;
pub mod manifest;
mod pull;
mod push;
mod read;
mod reference;

pub use auth::{Credentials, DockerConfig};
pub use client::{Client, ClientOptions};
pub use error::{RegistryError, Result};
pub use fetcher::RegistryFetcher;
pub use pull::pull;
pub use push::{push_artifact, push_blobs_early, push_image, push_index};
pub use read::{open_blob, read_image, read_manifest, BlobReader, RemoteImage};
pub use reference::{api_host, is_loopback};
pub use whittle_oci::Platform;
/// The image reference type (`whittle_oci::Reference`) under the name this crate has always
/// used.
pub use whittle_oci::Reference;
pub use whittle_oci::DOCKER_HUB;

use std::sync::Arc;
use whittle_oci::Digest;
use whittle_store::{ImageRecord, Store};

/// Progress of a pull or push, for the CLI to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The reference resolved to this manifest.
    Resolved {
        /// The reference.
        reference: String,
        /// Manifest digest.
        digest: Digest,
    },
    /// Already present at the destination (store or registry).
    BlobExists {
        /// Blob.
        digest: Digest,
        /// Size.
        size: u64,
    },
    /// A transfer starts.
    BlobStart {
        /// Blob.
        digest: Digest,
        /// Size.
        size: u64,
    },
    /// A transfer finished and verified.
    BlobDone {
        /// Blob.
        digest: Digest,
        /// Size.
        size: u64,
    },
    /// Mounted from another repository of the same registry (nothing uploaded).
    BlobMounted {
        /// Blob.
        digest: Digest,
        /// Source repository.
        from: String,
    },
    /// A manifest was put under a tag.
    ManifestPushed {
        /// `registry/repository:tag` (or `@digest`).
        reference: String,
        /// Its digest.
        digest: Digest,
    },
}

/// Receives [`Event`]s (from several threads).
pub type ProgressFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// Options of [`pull`] and [`ensure_image`].
#[derive(Clone)]
pub struct PullOptions {
    /// How to reach registries.
    pub client: ClientOptions,
    /// Parallel blob downloads.
    pub jobs: usize,
    /// Progress sink.
    pub progress: Option<ProgressFn>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            client: ClientOptions::default(),
            jobs: 4,
            progress: None,
        }
    }
}

impl PullOptions {
    pub(crate) fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }
}

/// Options of [`push_image`].
#[derive(Clone)]
pub struct PushOptions {
    /// How to reach registries.
    pub client: ClientOptions,
    /// Parallel blob uploads.
    pub jobs: usize,
    /// Upload blobs larger than this in PATCH requests of this size (resumed after a failure);
    /// `None` uploads each blob in one PUT.
    pub chunk_size: Option<u64>,
    /// More tags of the same repository to put the manifest under.
    pub also_tags: Vec<String>,
    /// Progress sink.
    pub progress: Option<ProgressFn>,
    /// How layers stored uncompressed (a base loaded from a docker archive) are compressed
    /// before they leave (once, deterministically: `Store::with_compressed_layers`); layers
    /// already compressed go as they are. `Compression::None` pushes them as stored.
    pub compression: whittle_layer::Compression,
    /// Blobs this process knows a repository has (pushed, mounted, or answered a HEAD):
    /// not asked for again. Shared by clones, so a build's cache exports and pushes ask once.
    pub known: KnownBlobs,
}

/// Blobs known to be in a repository: (registry, repository, digest). See
/// [`PushOptions::known`].
#[derive(Clone, Default)]
pub struct KnownBlobs(Arc<std::sync::Mutex<std::collections::HashSet<(String, String, Digest)>>>);

impl KnownBlobs {
    pub(crate) fn contains(&self, target: &Reference, d: &Digest) -> bool {
        self.0.lock().is_ok_and(|s| {
            s.contains(&(
                target.registry.clone(),
                target.repository.clone(),
                d.clone(),
            ))
        })
    }

    pub(crate) fn insert(&self, target: &Reference, d: &Digest) {
        if let Ok(mut s) = self.0.lock() {
            s.insert((
                target.registry.clone(),
                target.repository.clone(),
                d.clone(),
            ));
        }
    }
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            client: ClientOptions::default(),
            jobs: 3,
            chunk_size: None,
            also_tags: Vec::new(),
            progress: None,
            compression: whittle_layer::Compression::default(),
            known: KnownBlobs::default(),
        }
    }
}

impl PushOptions {
    pub(crate) fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }
}

/// When [`ensure_image`] asks the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the store lacks the image (for this platform): FROM's default.
    Missing,
    /// Always resolve the reference on the registry (`--pull`); blobs the store has are still
    /// not downloaded.
    Always,
    /// Never: the store must have it (`--pull=never`, offline builds).
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" | "true" => Ok(PullPolicy::Always),
            "never" | "false" => Ok(PullPolicy::Never),
            _ => Err(format!("{s:?}: expected always, missing or never")),
        }
    }
}

/// The image the store has for `r` and `platform`, if any: by pinned digest (an image manifest,
/// or a stored index's entry for the platform), else by tag when its config is for the platform.
pub fn local_image(
    store: &Store,
    r: &Reference,
    platform: &Platform,
) -> Result<Option<ImageRecord>> {
    if let Some(d) = &r.digest {
        if !store.has_blob(d) {
            return Ok(None);
        }
        let bytes = store.read_document(d)?;
        let m = match manifest::parse(&bytes, None, &r.canonical()) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        let target = match m {
            manifest::Document::Image { .. } => d.clone(),
            manifest::Document::Index { manifests, .. } => {
                match manifest::select_platform(&manifests, platform) {
                    Some(e) if store.has_blob(&e.digest) => e.digest.clone(),
                    _ => return Ok(None),
                }
            }
        };
        return match store.put_image(&target) {
            Ok(rec) => Ok(Some(rec)),
            Err(whittle_store::StoreError::BlobMissing(_)) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let Some(name) = r.local_tag().and_then(|t| t.tag_key()) else {
        return Ok(None);
    };
    if store.tag_target(&Reference::parse_tag(&name)?)?.is_none() {
        return Ok(None);
    }
    match store.resolve_platform(&name, platform) {
        Ok(t) => Ok(Some(t.image)),
        Err(whittle_store::StoreError::NoPlatform { .. })
        | Err(whittle_store::StoreError::ImageNotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure the store has `r` for `platform`, pulling as `policy` says, and returns it. This
/// is what `FROM` and `whittle pull` use.
pub fn ensure_image(
    store: &Store,
    r: &Reference,
    platform: &Platform,
    policy: PullPolicy,
    opts: &PullOptions,
) -> Result<ImageRecord> {
    // The store may have the image for another platform: say so, not just "not found".
    let wrong_platform = |pull_error: Option<RegistryError>| -> Result<RegistryError> {
        let have = stored_platforms(store, r)?;
        Ok(if have.is_empty() {
            pull_error.unwrap_or(RegistryError::NotInStore {
                reference: r.canonical(),
            })
        } else {
            RegistryError::WrongPlatform {
                reference: r.canonical(),
                wanted: platform.to_string(),
                have: have.join(", "),
                pull_error: pull_error.map(Box::new),
            }
        })
    };
    match policy {
        PullPolicy::Never => match local_image(store, r, platform)? {
            Some(rec) => Ok(rec),
            None => Err(wrong_platform(None)?),
        },
        PullPolicy::Missing => match local_image(store, r, platform)? {
            Some(rec) => Ok(rec),
            None => match pull(store, r, platform, opts) {
                Ok(rec) => Ok(rec),
                Err(e) => Err(wrong_platform(Some(e))?),
            },
        },
        PullPolicy::Always => pull(store, r, platform, opts),
    }
}

/// The platforms (`os/arch[/variant]`) the store holds `r` for, whatever platform was asked:
/// for a tag, the tagged image's; for a digest of an index, those of its stored entries.
pub fn stored_platforms(store: &Store, r: &Reference) -> Result<Vec<String>> {
    let platform_of = |image: &ImageRecord| -> Result<String> {
        let cfg = store.image_config(image)?;
        let field = |f: &whittle_oci::Field<String>| f.get().cloned().unwrap_or_default();
        let mut p = format!("{}/{}", field(&cfg.os), field(&cfg.architecture));
        if !field(&cfg.variant).is_empty() {
            p = format!("{p}/{}", field(&cfg.variant));
        }
        Ok(p)
    };
    if let Some(d) = &r.digest {
        if !store.has_blob(d) {
            return Ok(Vec::new());
        }
        let bytes = store.read_document(d)?;
        return Ok(match manifest::parse(&bytes, None, &r.canonical()) {
            Ok(manifest::Document::Index { manifests, .. }) => manifests
                .iter()
                .filter(|e| store.has_blob(&e.digest))
                .filter_map(|e| e.platform.as_ref().map(|p| p.platform().to_string()))
                .collect(),
            Ok(manifest::Document::Image { .. }) => match store.put_image(d) {
                Ok(rec) => vec![platform_of(&rec)?],
                Err(_) => Vec::new(),
            },
            Err(_) => Vec::new(),
        });
    }
    let Some(name) = r.local_tag().and_then(|t| t.tag_key()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for found in store
        .images()?
        .into_iter()
        .filter(|t| t.tags.contains(&name))
    {
        let p = platform_of(&found.image)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Checks credentials against a registry and saves them in the docker config.
pub fn login(registry: &str, creds: &Credentials, opts: &ClientOptions) -> Result<()> {
    let mut o = opts.clone();
    o.credentials = Some(creds.clone());
    let client = Client::connect(registry, &o)?;
    client.check_login()?;
    let mut cfg = DockerConfig::load(&opts.docker_config)?;
    cfg.store(registry, creds)
}

/// Removes saved credentials; returns whether there were any.
pub fn logout(registry: &str, opts: &ClientOptions) -> Result<bool> {
    DockerConfig::load(&opts.docker_config)?.erase(registry)
}

/// Normalises a registry name given to login/logout (`docker.io`, `https://host:5000/`).
pub fn registry_name(s: &str) -> String {
    let h = s
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let h = h.split('/').next().unwrap_or(h);
    match h {
        "" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}
