//! Pulling: manifest (or index → the platform's manifest), config and layers, every blob
//! streamed into the store through a digest-checking writer, layers in parallel.

use crate::client::{header, scope, Client, ReqBody};
use crate::error::{RegistryError, Result};
use crate::manifest::{self, Descriptor, Document, MAX_MANIFEST};
use crate::{Event, PullOptions};
use std::io::{Read, Write};
use ureq::http::Method;
use whittle_oci::Digest;
use whittle_oci::Platform;
use whittle_oci::Reference;
use whittle_store::{ImageRecord, Store, StoreError};

/// Blob download attempts (after a broken connection the rest is asked for with `Range`).
const BLOB_ATTEMPTS: u32 = 3;

pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub content_type: Option<String>,
}

/// Where a repository's manifest `reference` (a tag or a digest) lives.
pub(crate) fn manifest_url(client: &Client, repository: &str, reference: &str) -> String {
    format!("{}/v2/{repository}/manifests/{reference}", client.base())
}

/// GETs a manifest by tag or digest and checks it: size cap, and its digest against the pinned
/// digest or the registry's `Docker-Content-Digest`.
pub(crate) fn fetch_manifest(client: &Client, r: &Reference, reference: &str) -> Result<Fetched> {
    let url = manifest_url(client, &r.repository, reference);
    let what = format!("manifest {reference}");
    let resp = client.send(
        Method::GET,
        &url,
        &[("accept", manifest::ACCEPT.to_string())],
        ReqBody::Empty,
        &scope(&r.repository, false),
        &r.repository,
        &what,
        true,
    )?;
    let mut resp = client.check(resp, &r.repository, &what)?;
    let content_type = header(&resp, "content-type").map(str::to_string);
    let announced = header(&resp, "docker-content-digest").map(str::to_string);
    let mut bytes = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::Transport {
            registry: client.registry().to_string(),
            what: format!("reading {what}"),
            source: Box::new(ureq::Error::Io(e)),
        })?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(RegistryError::TooLarge {
            what: format!("{}/{}: {what}", client.registry(), r.repository),
            limit: MAX_MANIFEST,
        });
    }
    let digest = Digest::of_bytes(&bytes);
    let expected = match reference.parse::<Digest>() {
        Ok(d) => Some(d),
        // By tag: trust the body, but a registry that names another digest is lying or broken.
        Err(_) => announced.and_then(|a| a.parse::<Digest>().ok()),
    };
    if let Some(exp) = expected {
        if exp != digest {
            return Err(RegistryError::DigestMismatch {
                registry: client.registry().to_string(),
                repository: r.repository.clone(),
                what: "manifest",
                expected: exp,
                actual: digest,
            });
        }
    }
    Ok(Fetched {
        bytes,
        digest,
        content_type,
    })
}

/// What a reference resolves to on the registry for one platform.
pub(crate) struct Resolved {
    /// The image manifest.
    pub manifest: Fetched,
    /// Its parsed content.
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The index it was chosen from, if any.
    pub index: Option<Fetched>,
}

pub(crate) fn resolve(client: &Client, r: &Reference, platform: &Platform) -> Result<Resolved> {
    let top = fetch_manifest(client, r, &r.reference())?;
    let name = r.canonical();
    match manifest::parse(&top.bytes, top.content_type.as_deref(), &name)? {
        Document::Image { config, layers, .. } => Ok(Resolved {
            manifest: top,
            config,
            layers,
            index: None,
        }),
        Document::Index { manifests, .. } => {
            let chosen = manifest::select_platform(&manifests, platform).ok_or_else(|| {
                RegistryError::NoPlatform {
                    reference: name.clone(),
                    platform: platform.to_string(),
                    available: manifest::platforms(&manifests),
                }
            })?;
            if chosen.size > MAX_MANIFEST {
                return Err(RegistryError::TooLarge {
                    what: format!("manifest {} of {name}", chosen.digest),
                    limit: MAX_MANIFEST,
                });
            }
            let m = fetch_manifest(client, r, chosen.digest.as_str())?;
            let what = format!("{name} ({platform})");
            match manifest::parse(&m.bytes, m.content_type.as_deref(), &what)? {
                Document::Image { config, layers, .. } => Ok(Resolved {
                    manifest: m,
                    config,
                    layers,
                    index: Some(top),
                }),
                Document::Index { .. } => Err(RegistryError::InvalidManifest {
                    what,
                    reason: "an index inside an index".into(),
                }),
            }
        }
    }
}

/// Downloads one blob into the store, checking size and digest; nothing is stored on a
/// mismatch or an error (the temp file is dropped).
pub(crate) fn download_blob(
    client: &Client,
    store: &Store,
    repo: &str,
    d: &Descriptor,
    opts: &PullOptions,
) -> Result<()> {
    let url = format!("{}/v2/{repo}/blobs/{}", client.base(), d.digest);
    let what = format!("blob {}", d.digest);
    let mut w = store.blob_writer(Some(d.digest.clone()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut attempt = 0;
    loop {
        // After a broken connection, ask for the rest only: the writer's hash goes on where
        // the bytes stopped.
        let have = w.count();
        let range = [("range", format!("bytes={have}-"))];
        let headers: &[(&str, String)] = if have > 0 { &range } else { &[] };
        let resp = client.send(
            Method::GET,
            &url,
            headers,
            ReqBody::Empty,
            &scope(repo, false),
            repo,
            &what,
            true,
        )?;
        let resp = client.check(resp, repo, &what)?;
        if have > 0 {
            let resumed = resp.status().as_u16() == 206
                && header(&resp, "content-range")
                    .is_some_and(|c| c.starts_with(&format!("bytes {have}-")));
            if !resumed {
                // The registry sent the whole blob: start again from its first byte.
                w = store.blob_writer(Some(d.digest.clone()))?;
            }
        }
        let left = d.size.saturating_sub(w.count());
        let mut body = resp.into_body().into_reader().take(left + 1);
        let copied: std::io::Result<()> = (|| loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            w.write_all(&buf[..n])?;
        })();
        match copied {
            Ok(()) => break,
            Err(_) if attempt + 1 < BLOB_ATTEMPTS && w.count() < d.size => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
            }
            Err(e) => {
                // The temp file of the partial blob is deleted when `w` drops.
                return Err(RegistryError::Transport {
                    registry: client.registry().to_string(),
                    what: format!("downloading {what} of {repo}"),
                    source: Box::new(ureq::Error::Io(e)),
                });
            }
        }
    }
    if w.count() != d.size {
        return Err(RegistryError::SizeMismatch {
            registry: client.registry().to_string(),
            repository: repo.to_string(),
            digest: d.digest.clone(),
            expected: d.size,
            actual: w.count(),
        });
    }
    match w.commit() {
        Ok(_) => {
            opts.emit(Event::BlobDone {
                digest: d.digest.clone(),
                size: d.size,
            });
            Ok(())
        }
        Err(StoreError::DigestMismatch { expected, actual }) => {
            Err(RegistryError::DigestMismatch {
                registry: client.registry().to_string(),
                repository: repo.to_string(),
                what: "blob",
                expected,
                actual,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Pulls `r` for `platform` into the store and tags it (when the reference has a tag).
pub fn pull(
    store: &Store,
    r: &Reference,
    platform: &Platform,
    opts: &PullOptions,
) -> Result<ImageRecord> {
    let _lease = store.lease()?;
    let client = Client::connect(&r.registry, &opts.client)?;
    let res = resolve(&client, r, platform)?;
    opts.emit(Event::Resolved {
        reference: r.canonical(),
        digest: res.manifest.digest.clone(),
    });
    let mut todo: Vec<&Descriptor> = Vec::new();
    for d in std::iter::once(&res.config).chain(res.layers.iter()) {
        if store.has_blob(&d.digest) {
            opts.emit(Event::BlobExists {
                digest: d.digest.clone(),
                size: d.size,
            });
        } else if !todo.iter().any(|t| t.digest == d.digest) {
            todo.push(d);
        }
    }
    for d in &todo {
        opts.emit(Event::BlobStart {
            digest: d.digest.clone(),
            size: d.size,
        });
    }
    // Largest first, so the long downloads start early.
    todo.sort_by_key(|d| std::cmp::Reverse(d.size));
    whittle_par::try_for_each(&todo, opts.jobs.clamp(1, 8), |d| {
        download_blob(&client, store, &r.repository, d, opts)
    })?;
    let md = store.put_bytes(&res.manifest.bytes)?;
    let rec = store.put_image(&md)?;
    // From an index, the tag names the index (as the registry's tag does), so that pulling
    // another platform of it later keeps both under the one tag.
    let target = match &res.index {
        Some(idx) => {
            let d = store.put_bytes(&idx.bytes)?;
            match store.put_index(&d) {
                Ok(ix) => ix.digest,
                // A Docker manifest list with entries whittle cannot read as an index: keep the
                // image alone, as before.
                Err(StoreError::Json { .. } | StoreError::InvalidImage(_)) => rec.manifest.clone(),
                Err(e) => return Err(e.into()),
            }
        }
        None => rec.manifest.clone(),
    };
    if let Some(t) = r.local_tag() {
        store.tag(&t, &target)?;
    }
    Ok(rec)
}
