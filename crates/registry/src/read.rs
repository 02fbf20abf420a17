//! Reading an image from a registry without storing it (`whittle analyze docker://REF`): the
//! manifest (an index resolved to one platform), the config, and each layer as a stream that
//! checks its size and digest as it ends. Nothing is written to disk.

use crate::client::{scope, Client, ReqBody};
use crate::error::{RegistryError, Result};
use crate::manifest::{Descriptor, MAX_CONFIG};
use crate::pull::{fetch_manifest, resolve, Fetched};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use ureq::http::Method;
use whittle_oci::{Digest, Platform, Reference};

/// An image's documents, read from a registry.
#[derive(Clone, Debug)]
pub struct RemoteImage {
    /// The reference, fully qualified.
    pub name: String,
    /// The image manifest's bytes (for one platform when the reference names an index).
    pub manifest: Vec<u8>,
    /// Its digest.
    pub manifest_digest: Digest,
    /// The config blob's bytes, digest checked.
    pub config: Vec<u8>,
    /// The config's descriptor.
    pub config_descriptor: Descriptor,
    /// The layers' descriptors, bottom first.
    pub layers: Vec<Descriptor>,
}

/// Reads `r`'s manifest for `platform` (from an index when it names one) and its config.
pub fn read_image(client: &Client, r: &Reference, platform: &Platform) -> Result<RemoteImage> {
    let res = resolve(client, r, platform)?;
    let Fetched { bytes, digest, .. } = res.manifest;
    if res.config.size > MAX_CONFIG {
        return Err(RegistryError::TooLarge {
            what: format!("config of {}", r.canonical()),
            limit: MAX_CONFIG,
        });
    }
    let mut config = Vec::new();
    open_blob(client, &r.repository, &res.config)?
        .read_to_end(&mut config)
        .map_err(|e| RegistryError::Transport {
            registry: client.registry().to_string(),
            what: format!("reading config {} of {}", res.config.digest, r.repository),
            source: Box::new(ureq::Error::Io(e)),
        })?;
    Ok(RemoteImage {
        name: r.canonical(),
        manifest: bytes,
        manifest_digest: digest,
        config,
        config_descriptor: res.config,
        layers: res.layers,
    })
}

/// A blob being downloaded: reads its bytes as they arrive, at most the descriptor's size, and
/// fails the read that ends it (`InvalidData`) when the size or the digest is not the
/// descriptor's.
pub struct BlobReader {
    body: Box<dyn Read + Send>,
    hasher: Sha256,
    want: Descriptor,
    got: u64,
    checked: bool,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("digest", &self.want.digest)
            .field("got", &self.got)
            .finish()
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.checked {
            return Ok(0);
        }
        let n = self.body.read(buf)?;
        self.got += n as u64;
        self.hasher.update(&buf[..n]);
        if self.got > self.want.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is larger than its {} bytes",
                    self.want.digest, self.want.size
                ),
            ));
        }
        if n == 0 {
            self.checked = true;
            let actual: Digest = format!("sha256:{}", hex_of(&self.hasher.clone().finalize()))
                .parse()
                .map_err(|_| io::Error::other("a SHA-256 that is no digest"))?;
            if self.got != self.want.size || actual != self.want.digest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {}: got {} bytes with digest {actual}, not {} bytes",
                        self.want.digest, self.got, self.want.size
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts downloading blob `d` of `repo`.
pub fn open_blob(client: &Client, repo: &str, d: &Descriptor) -> Result<BlobReader> {
    let url = format!("{}/v2/{repo}/blobs/{}", client.base(), d.digest);
    let what = format!("blob {}", d.digest);
    let resp = client.send(
        Method::GET,
        &url,
        &[],
        ReqBody::Empty,
        &scope(repo, false),
        repo,
        &what,
        true,
    )?;
    let resp = client.check(resp, repo, &what)?;
    let body = resp
        .into_body()
        .into_reader()
        .take(d.size.saturating_add(1));
    Ok(BlobReader {
        body: Box::new(body),
        hasher: Sha256::new(),
        want: d.clone(),
        got: 0,
        checked: false,
    })
}

/// A manifest or index as the registry serves it for `r` (its tag, or its digest when
/// pinned): at most `manifest::MAX_MANIFEST` bytes, the digest checked against the pinned one
/// or the registry's `Docker-Content-Digest`. Returns the bytes, their digest and the
/// `Content-Type`. Nothing is parsed: the caller knows what it expects.
pub fn read_manifest(client: &Client, r: &Reference) -> Result<(Vec<u8>, Digest, Option<String>)> {
    let f = fetch_manifest(client, r, &r.reference())?;
    Ok((f.bytes, f.digest, f.content_type))
}
