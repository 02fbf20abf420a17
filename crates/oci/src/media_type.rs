//! Media types of the OCI image spec and of Docker's image formats, in one place, with the
//! questions every reader of a manifest asks of them (is this an index, an image manifest, a
//! config, a filesystem layer?).

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// gzip-compressed OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// zstd-compressed OCI layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// What every OCI layer media type starts with (also the non-distributable ones).
pub const OCI_LAYER_PREFIX: &str = "application/vnd.oci.image.layer.";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (Docker's index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Uncompressed Docker layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// gzip-compressed Docker layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// What every Docker layer media type starts with (also foreign layers).
pub const DOCKER_LAYER_PREFIX: &str = "application/vnd.docker.image.rootfs.";
/// Docker schema 1 manifest (refused: whittle does not read schema 1).
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 manifest (refused, as [`DOCKER_SCHEMA1_MANIFEST`]).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifests: OCI first, Docker's schema 2 formats a little less
/// preferred (schema 1 is never asked for).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json;q=0.9, application/vnd.docker.distribution.manifest.v2+json;q=0.9";

/// An index or a manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// An image manifest (OCI, or Docker schema 2).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// A Docker schema 1 manifest.
pub fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_SCHEMA1_MANIFEST || media_type == DOCKER_SCHEMA1_SIGNED
}

/// An image config (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// An uncompressed filesystem layer (OCI or Docker).
pub fn is_uncompressed_layer(media_type: &str) -> bool {
    media_type == OCI_LAYER_TAR || media_type == DOCKER_LAYER_TAR
}

/// A filesystem layer (any OCI or Docker layer type, compressed or not).
pub fn is_layer(media_type: &str) -> bool {
    media_type.starts_with(OCI_LAYER_PREFIX) || media_type.starts_with(DOCKER_LAYER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists_the_four_kinds() {
        for mt in [
            OCI_INDEX,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            DOCKER_MANIFEST,
        ] {
            assert!(MANIFEST_ACCEPT.contains(mt), "{mt}");
        }
        assert!(is_layer(OCI_LAYER_ZSTD) && is_layer(DOCKER_LAYER_GZIP) && !is_layer("text/html"));
        assert!(is_index(DOCKER_MANIFEST_LIST) && !is_index(OCI_MANIFEST));
        assert!(is_config(DOCKER_CONFIG) && is_schema1(DOCKER_SCHEMA1_SIGNED));
    }
}
