//! Remote image references, normalised as docker normalises them: `alpine` is
//! `docker.io/library/alpine:latest`, `name:tag@sha256:...` pins by digest (the tag is kept only
//! as a name).

use crate::error::{RegistryError, Result};
use std::fmt;
use whittle_layer::Digest;

/// The registry docker uses when a name has none.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalised `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host[:port] (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path, e.g. `library/alpine`.
    pub repository: String,
    /// Tag (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Pinned digest.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("empty or too long"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let d: Digest = d
                    .parse()
                    .map_err(|_| bad("the digest must be sha256:<64 lowercase hex digits>"))?;
                (n, Some(d))
            }
            None => (s, None),
        };
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(
                    "tags use letters, digits, '.', '_', '-' (at most 128, not first '.' or '-')",
                ));
            }
        }
        let (registry, repo) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest.to_string())
            }
            _ => (DOCKER_HUB, name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let host_ok = whittle_store::valid_domain(registry);
        if !host_ok {
            return Err(bad("bad registry host"));
        }
        let repo = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if repo.len() > 255 {
            return Err(bad("repository name longer than 255 characters"));
        }
        for c in repo.split('/') {
            if !whittle_store::valid_path_component(c) {
                return Err(bad(
                    "repository path components use lowercase letters and digits, separated by '.', '_' or '-'",
                ));
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repo,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The local tag this image gets in the store (`registry/repository:tag`, which the store
    /// shortens for Docker Hub as docker does), if it has a tag.
    pub fn local_tag(&self) -> Option<whittle_store::Reference> {
        let tag = self.tag.as_ref()?;
        whittle_store::Reference::parse(&format!("{}/{}:{tag}", self.registry, self.repository))
            .ok()
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The host to connect to for a registry name (Docker Hub's API lives elsewhere).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Whether a registry is on this machine (`localhost`, `127.0.0.0/8`, `::1`, any port), where
/// plain HTTP is allowed as docker allows it.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(p("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(p("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(p("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            p("index.docker.io/library/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(p("localhost/app"), "localhost/app:latest");
        assert_eq!(p("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(p("ghcr.io/o/r:1"), "ghcr.io/o/r:1");
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            p(&format!("alpine@{d}")),
            format!("docker.io/library/alpine@{d}")
        );
        let r = ImageRef::parse(&format!("127.0.0.1:5000/x:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.reference(), d);
        assert_eq!(r.registry, "127.0.0.1:5000");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:00",
            "a//b",
            "/a",
            "a/",
            "-a",
            "a b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn local_tags_are_familiar() {
        let t = |s: &str| ImageRef::parse(s).unwrap().local_tag().unwrap().to_string();
        assert_eq!(t("alpine"), "alpine:latest");
        assert_eq!(t("user/app:2"), "user/app:2");
        assert_eq!(t("127.0.0.1:5000/app:2"), "127.0.0.1:5000/app:2");
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert!(ImageRef::parse(&format!("alpine@{d}"))
            .unwrap()
            .local_tag()
            .is_none());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1234",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }
}
