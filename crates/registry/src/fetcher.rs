//! [`RegistryFetcher`]: how the store fetches a blob it knows only as remote (a build cache's
//! layer an image names, `whittle_store::RemoteBlob`), with the credentials and TLS rules of
//! pulls. The store bounds the bytes and checks the digest; the reader checks them too.

use crate::client::{Client, ClientOptions};
use crate::read::open_blob;
use std::io::Write;
use whittle_oci::Descriptor;
use whittle_store::{BlobFetcher, RemoteBlob};

/// Fetches remote blobs from their registry repository.
pub struct RegistryFetcher {
    opts: ClientOptions,
}

impl RegistryFetcher {
    pub fn new(opts: ClientOptions) -> RegistryFetcher {
        RegistryFetcher { opts }
    }
}

impl BlobFetcher for RegistryFetcher {
    fn fetch(
        &self,
        blob: &RemoteBlob,
        into: &mut dyn Write,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let client = Client::connect(&blob.registry, &self.opts)?;
        let desc = Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size);
        let mut r = open_blob(&client, &blob.repository, &desc)?;
        std::io::copy(&mut r, into)?;
        Ok(())
    }
}
