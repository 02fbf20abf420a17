//! Pushing: every blob the registry lacks (HEAD first; a cross-repository mount when another
//! repository of the same registry is known to have it, by the blob's remote record or the
//! store's tags; else a monolithic or chunked upload, of a remote blob once it is fetched),
//! then the manifest, once per tag, last.

use crate::client::{header, scope, urlencode, Client, ReqBody};
use crate::error::{RegistryError, Result};
use crate::manifest::{self, Descriptor, Document};
use crate::{Event, PushOptions};
use ureq::http::Method;
use whittle_oci::Digest;
use whittle_oci::Reference;
use whittle_store::{ImageRecord, IndexRecord, Store};

/// Upload attempts per blob (each starts a fresh upload session, or resumes a chunked one).
const UPLOAD_ATTEMPTS: u32 = 3;

fn blob_exists(client: &Client, repo: &str, d: &Digest, scope: &str) -> Result<bool> {
    let url = format!("{}/v2/{repo}/blobs/{d}", client.base());
    let what = format!("blob {d}");
    let resp = client.send(
        Method::HEAD,
        &url,
        &[],
        ReqBody::Empty,
        scope,
        repo,
        &what,
        true,
    )?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => client.check(resp, repo, &what).map(|_| false),
    }
}

/// Repositories on the same registry that hold `d`: the one its remote record names (a build
/// cache's layer the store never fetched), then those the store's tags say hold it.
fn mount_sources(store: &Store, target: &Reference, d: &Digest) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(rb) = store.remote_blob(d)? {
        if rb.registry == target.registry && rb.repository != target.repository {
            out.push(rb.repository);
        }
    }
    for img in store.images()? {
        if !img.image.blobs().any(|b| b == d) {
            continue;
        }
        for t in &img.tags {
            if let Ok(r) = Reference::parse(t) {
                if r.registry == target.registry
                    && r.repository != target.repository
                    && !out.contains(&r.repository)
                {
                    out.push(r.repository);
                }
            }
        }
    }
    Ok(out)
}

fn location(
    client: &Client,
    resp: &ureq::http::Response<ureq::Body>,
    what: &str,
    repo: &str,
) -> Result<String> {
    header(resp, "location")
        .map(|l| client.absolute(l))
        .ok_or_else(|| RegistryError::Status {
            registry: client.registry().to_string(),
            repository: repo.to_string(),
            what: what.to_string(),
            status: resp.status().as_u16(),
            detail: "no Location header in the reply".into(),
        })
}

fn with_query(url: &str, kv: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{kv}")
}

/// Starts an upload session, or mounts the blob from `from`. Returns the session URL, or None
/// when the mount succeeded.
fn start_upload(
    client: &Client,
    repo: &str,
    d: &Digest,
    from: Option<&str>,
) -> Result<Option<String>> {
    let mut url = format!("{}/v2/{repo}/blobs/uploads/", client.base());
    let mut sc = scope(repo, true);
    if let Some(f) = from {
        url = format!(
            "{url}?mount={}&from={}",
            urlencode(d.as_str()),
            urlencode(f)
        );
        sc = format!("{sc} {}", scope(f, false));
    }
    let what = format!("starting the upload of blob {d}");
    let resp = client.send(
        Method::POST,
        &url,
        &[("content-length", "0".into())],
        ReqBody::Empty,
        &sc,
        repo,
        &what,
        true,
    )?;
    match resp.status().as_u16() {
        201 if from.is_some() => Ok(None),
        202 => Ok(Some(location(client, &resp, &what, repo)?)),
        _ => {
            client.check(resp, repo, &what)?;
            Err(RegistryError::Status {
                registry: client.registry().to_string(),
                repository: repo.to_string(),
                what,
                status: 0,
                detail: "unexpected reply".into(),
            })
        }
    }
}

/// Uploads the blob at `path` in one PUT.
fn upload_monolithic(
    client: &Client,
    repo: &str,
    session: &str,
    d: &Digest,
    path: &std::path::Path,
    size: u64,
) -> Result<()> {
    let url = with_query(session, &format!("digest={}", urlencode(d.as_str())));
    let what = format!("uploading blob {d}");
    let resp = client.send(
        Method::PUT,
        &url,
        &[("content-type", "application/octet-stream".into())],
        ReqBody::File {
            path,
            offset: 0,
            len: size,
        },
        &scope(repo, true),
        repo,
        &what,
        false,
    )?;
    client.check(resp, repo, &what).map(|_| ())
}

/// Uploads in PATCHes of `chunk` bytes, then a PUT with the digest. After a failed PATCH the
/// session's offset is asked for (`GET` on the session, `Range: 0-N`) and the upload resumes
/// from there.
fn upload_chunked(
    client: &Client,
    repo: &str,
    mut session: String,
    d: &Digest,
    path: &std::path::Path,
    size: u64,
    chunk: u64,
) -> Result<()> {
    let sc = scope(repo, true);
    let mut offset = 0u64;
    let mut failures = 0;
    while offset < size {
        let len = chunk.min(size - offset);
        let what = format!("uploading bytes {offset}-{} of blob {d}", offset + len - 1);
        let sent = client.send(
            Method::PATCH,
            &session,
            &[
                ("content-type", "application/octet-stream".into()),
                ("content-range", format!("{offset}-{}", offset + len - 1)),
            ],
            ReqBody::File { path, offset, len },
            &sc,
            repo,
            &what,
            false,
        );
        let failed = match sent {
            Ok(resp) if resp.status().as_u16() == 202 => {
                session = location(client, &resp, &what, repo)?;
                offset += len;
                continue;
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                match client.check(resp, repo, &what) {
                    Err(e) => e,
                    Ok(_) => RegistryError::Status {
                        registry: client.registry().to_string(),
                        repository: repo.to_string(),
                        what: what.clone(),
                        status,
                        detail: "expected 202 Accepted".into(),
                    },
                }
            }
            Err(e @ RegistryError::Transport { .. }) => e,
            Err(e) => return Err(e),
        };
        failures += 1;
        if failures >= UPLOAD_ATTEMPTS {
            return Err(failed);
        }
        // Ask where the session stands and go on from there.
        let resp = client.send(
            Method::GET,
            &session,
            &[],
            ReqBody::Empty,
            &sc,
            repo,
            "upload status",
            true,
        )?;
        let resp = client.check(resp, repo, "upload status")?;
        // `Range: 0-<last byte received>`; distribution says `0-0` for an empty session too, so
        // that one means "start again" (a byte sent twice would be refused, not stored).
        let got = header(&resp, "range")
            .and_then(|r| r.split('-').nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(0, |n| if n == 0 { 0 } else { n + 1 });
        if let Some(l) = header(&resp, "location") {
            session = client.absolute(l);
        }
        offset = got.min(size);
    }
    let url = with_query(&session, &format!("digest={}", urlencode(d.as_str())));
    let what = format!("finishing the upload of blob {d}");
    let resp = client.send(
        Method::PUT,
        &url,
        &[],
        ReqBody::Bytes(&[]),
        &sc,
        repo,
        &what,
        true,
    )?;
    client.check(resp, repo, &what).map(|_| ())
}

fn push_blob(
    client: &Client,
    store: &Store,
    target: &Reference,
    d: &Descriptor,
    opts: &PushOptions,
) -> Result<()> {
    let repo = &target.repository;
    // Mounts first: a blob known only as remote is not read (nor fetched) when one works.
    for from in mount_sources(store, target, &d.digest)? {
        // Otherwise the registry opened an upload session (the source lacks it after all).
        if let Ok(None) = start_upload(client, repo, &d.digest, Some(&from)) {
            opts.emit(Event::BlobMounted {
                digest: d.digest.clone(),
                from,
            });
            return Ok(());
        }
    }
    // Another registry, or a blob deleted there since: fetched (digest checked), then uploaded.
    store.ensure_blob(&d.digest)?;
    let path = store.blob_path(&d.digest);
    let size = store.blob_size(&d.digest)?;
    if size != d.size {
        return Err(RegistryError::InvalidManifest {
            what: format!("local blob {}", d.digest),
            reason: format!("is {size} bytes, the manifest says {}", d.size),
        });
    }
    opts.emit(Event::BlobStart {
        digest: d.digest.clone(),
        size,
    });
    let mut attempt = 0;
    loop {
        let session = start_upload(client, repo, &d.digest, None)?.ok_or_else(|| {
            RegistryError::InvalidManifest {
                what: "upload".into(),
                reason: "no session".into(),
            }
        })?;
        let r = match opts.chunk_size {
            Some(c) if c > 0 && size > c => {
                upload_chunked(client, repo, session, &d.digest, &path, size, c)
            }
            _ => upload_monolithic(client, repo, &session, &d.digest, &path, size),
        };
        match r {
            Ok(()) => break,
            Err(RegistryError::Transport { .. }) if attempt + 1 < UPLOAD_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
            }
            Err(e) => return Err(e),
        }
    }
    opts.emit(Event::BlobDone {
        digest: d.digest.clone(),
        size,
    });
    Ok(())
}

/// Pushes a stored image to `target` (and to the extra tags of `opts`); returns the manifest
/// digest: the local one, unless layers stored uncompressed were compressed for the push
/// (`opts.compression`), which gives the image another manifest.
pub fn push_image(
    store: &Store,
    image: &ImageRecord,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Digest> {
    let _lease = store.lease()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let image = &store.with_compressed_layers(image, opts.compression, threads)?;
    let bytes = store.read_document(&image.manifest)?;
    let name = target.canonical();
    let (media_type, config, layers) =
        match manifest::parse(&bytes, None, &format!("local image {}", image.manifest))? {
            Document::Image {
                media_type,
                config,
                layers,
            } => (media_type, config, layers),
            Document::Index { .. } => {
                return Err(RegistryError::InvalidManifest {
                    what: name,
                    reason: "pushing an index is not supported; push its images".into(),
                })
            }
        };
    let client = Client::connect(&target.registry, &opts.client)?;
    let blobs: Vec<Descriptor> = std::iter::once(config).chain(layers).collect();
    push_blobs(&client, store, target, &blobs, opts)?;
    put_manifest(&client, target, &media_type, &bytes, &image.manifest, opts)?;
    Ok(image.manifest.clone())
}

/// HEADs every blob of `blobs` at `target`'s repository and uploads (or mounts) the ones it
/// lacks from the store, several at once (each worker HEADs a blob, then pushes it if
/// missing: a round trip per blob is most of the time a cache export of small layers takes,
/// so HEADs are not done one by one first). Only the blobs the registry lacks must be in the
/// store.
fn push_blobs(
    client: &Client,
    store: &Store,
    target: &Reference,
    blobs: &[Descriptor],
    opts: &PushOptions,
) -> Result<()> {
    let sc = scope(&target.repository, true);
    let mut todo: Vec<Descriptor> = Vec::new();
    for d in blobs {
        if !todo.iter().any(|t| t.digest == d.digest) {
            todo.push(d.clone());
        }
    }
    // Largest first: the longest uploads start first.
    todo.sort_by_key(|d| std::cmp::Reverse(d.size));
    whittle_par::try_for_each(&todo, opts.jobs.clamp(1, 8), |d| {
        if opts.known.contains(target, &d.digest)
            || blob_exists(client, &target.repository, &d.digest, &sc)?
        {
            opts.known.insert(target, &d.digest);
            opts.emit(Event::BlobExists {
                digest: d.digest.clone(),
                size: d.size,
            });
            return Ok(());
        }
        push_blob(client, store, target, d, opts)?;
        opts.known.insert(target, &d.digest);
        Ok(())
    })
}

/// Pushes blobs to `target`'s repository ahead of the document that will name them (a
/// `mode=max` cache export's layers, uploaded while the build runs), as [`push_artifact`]
/// pushes them; with the same `opts.known`, that push then does not ask about them again.
pub fn push_blobs_early(
    store: &Store,
    target: &Reference,
    blobs: &[Descriptor],
    opts: &PushOptions,
) -> Result<()> {
    let _lease = store.lease()?;
    let client = Client::connect(&target.registry, &opts.client)?;
    push_blobs(&client, store, target, blobs, opts)
}

/// Pushes a document that is not an image built here (an artifact such as whittle's build
/// cache, `whittle-remote-cache`): the blobs it names as [`push_image`] pushes an image's
/// (HEAD first; only those the registry lacks are uploaded, and those must be in the store),
/// then `manifest` (of `media_type`) under the target's tag, or its digest without one.
/// Returns the manifest's digest.
pub fn push_artifact(
    store: &Store,
    target: &Reference,
    blobs: &[Descriptor],
    media_type: &str,
    manifest: &[u8],
    opts: &PushOptions,
) -> Result<Digest> {
    let _lease = store.lease()?;
    let client = Client::connect(&target.registry, &opts.client)?;
    push_blobs(&client, store, target, blobs, opts)?;
    let digest = Digest::of_bytes(manifest);
    put_manifest(&client, target, media_type, manifest, &digest, opts)?;
    Ok(digest)
}

/// PUTs a manifest or index under the target's tag (its digest without one) and
/// `opts.also_tags`, checking the digest the registry says it stored.
fn put_manifest(
    client: &Client,
    target: &Reference,
    media_type: &str,
    bytes: &[u8],
    digest: &Digest,
    opts: &PushOptions,
) -> Result<()> {
    let sc = scope(&target.repository, true);
    let mut refs: Vec<String> = Vec::new();
    match &target.tag {
        Some(t) => refs.push(t.clone()),
        None => refs.push(digest.to_string()),
    }
    for t in &opts.also_tags {
        if !refs.contains(t) {
            refs.push(t.clone());
        }
    }
    for reference in refs {
        let url = crate::pull::manifest_url(client, &target.repository, &reference);
        let what = format!("manifest {reference}");
        let resp = client.send(
            Method::PUT,
            &url,
            &[("content-type", media_type.to_string())],
            ReqBody::Bytes(bytes),
            &sc,
            &target.repository,
            &what,
            true,
        )?;
        let resp = client.check(resp, &target.repository, &what)?;
        if let Some(got) = header(&resp, "docker-content-digest") {
            if got != digest.as_str() {
                return Err(RegistryError::DigestMismatch {
                    registry: client.registry().to_string(),
                    repository: target.repository.clone(),
                    what: "manifest",
                    expected: digest.clone(),
                    actual: got
                        .parse()
                        .unwrap_or_else(|_| Digest::of_bytes(got.as_bytes())),
                });
            }
        }
        let shown = if reference.starts_with("sha256:") {
            format!("{}@{reference}", target.name())
        } else {
            format!("{}:{reference}", target.name())
        };
        opts.emit(Event::ManifestPushed {
            reference: shown,
            digest: digest.clone(),
        });
    }
    Ok(())
}

/// Pushes a multi-platform image: each platform's image by digest (its layers compressed as
/// for [`push_image`], which gives those images new digests, so the index is written again
/// over them when any changed), then the index under the target's tags. Every platform must
/// be in the store.
pub fn push_index(
    store: &Store,
    index: &IndexRecord,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Digest> {
    let _lease = store.lease()?;
    let name = target.canonical();
    let mut images = Vec::new();
    for m in &index.manifests {
        let img = store
            .put_image(&m.manifest)
            .map_err(|_| RegistryError::InvalidManifest {
                what: name.clone(),
                reason: format!(
                    "its {} image {} is not in the store: pull or build that platform first, or \
                 push one platform",
                    m.platform
                        .as_ref()
                        .map_or_else(|| "unnamed".to_string(), ToString::to_string),
                    m.manifest
                ),
            })?;
        images.push(img);
    }
    let by_digest = Reference {
        tag: None,
        digest: None,
        ..target.clone()
    };
    let member_opts = PushOptions {
        also_tags: Vec::new(),
        ..opts.clone()
    };
    let mut pushed = Vec::new();
    for img in &images {
        let d = push_image(store, img, &by_digest, &member_opts)?;
        pushed.push(store.put_image(&d)?);
    }
    let index = if pushed
        .iter()
        .zip(&images)
        .all(|(a, b)| a.manifest == b.manifest)
    {
        index.clone()
    } else if index.has_attestations() {
        // The attestations' statements name the images' digests, which compressing changed:
        // they would describe images that are not pushed.
        return Err(RegistryError::InvalidManifest {
            what: name,
            reason: "compressing its images' uncompressed layers changed their digests, which its attestations name: build it again with compressed layers (the default), then push"
                .into(),
        });
    } else {
        let refs: Vec<&ImageRecord> = pushed.iter().collect();
        store.write_image_index(&refs, &Default::default())?
    };
    let bytes = store.read_document(&index.digest)?;
    let client = Client::connect(&target.registry, &opts.client)?;
    put_manifest(
        &client,
        target,
        &index.media_type,
        &bytes,
        &index.digest,
        opts,
    )?;
    Ok(index.digest)
}
