//! Image references as used for tags: `[registry/]repository[:tag]`, tag defaulting to `latest`.

use crate::error::{Result, StoreError};

/// A normalised `repository:tag`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// Repository, e.g. `registry.example/app` or `app`.
    pub repository: String,
    /// Tag, e.g. `latest`.
    pub tag: String,
}

impl Reference {
    /// Parses `name[:tag]`; digests (`@sha256:`) are not tags and are refused.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why| StoreError::InvalidReference(s.to_string(), why);
        if s.is_empty() || s.len() > 512 {
            return Err(bad("empty or too long"));
        }
        if s.contains('@') {
            return Err(bad("a digest reference cannot be a tag"));
        }
        let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if repo.is_empty() || repo.starts_with('/') || repo.ends_with('/') || repo.contains("//") {
            return Err(bad("bad repository name"));
        }
        let repo_ok = repo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
        if !repo_ok {
            return Err(bad(
                "repository names use lowercase letters, digits, '.', '_', '-', '/'",
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("tags use letters, digits, '.', '_', '-' (at most 128)"));
        }
        // Familiar names, as docker shows them: `docker.io/library/x` is `x`.
        let repo = [
            "docker.io/library/",
            "index.docker.io/library/",
            "docker.io/",
            "index.docker.io/",
        ]
        .iter()
        .find_map(|p| repo.strip_prefix(p))
        .unwrap_or(repo);
        Ok(Reference {
            repository: repo.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let r = |s| Reference::parse(s).map(|r| r.to_string());
        assert_eq!(r("app").unwrap(), "app:latest");
        assert_eq!(r("app:v1").unwrap(), "app:v1");
        assert_eq!(
            r("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            r("localhost:5000/a/b:1.0").unwrap(),
            "localhost:5000/a/b:1.0"
        );
        assert_eq!(r("docker.io/library/alpine:3").unwrap(), "alpine:3");
        assert_eq!(r("docker.io/made/x").unwrap(), "made/x:latest");
        assert!(r("App").is_err());
        assert!(r("app@sha256:00").is_err());
        assert!(r("app:").is_err());
        assert!(r("").is_err());
        assert!(r("app:-x").is_err());
    }
}
