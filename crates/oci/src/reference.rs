//! Image references, `[registry/]repository[:tag][@digest]`, normalised as docker normalises
//! them: `alpine` is `docker.io/library/alpine:latest`; `name:tag@sha256:…` pins by digest and
//! keeps the tag only as a name. One type serves the store (tags) and the registry (pulls and
//! pushes), so a name means the same thing on both sides.
//!
//! Shown ([`Display`](fmt::Display)) in docker's familiar form, `docker.io/library/x` as `x`:
//! that string is also how the store keys its tags ([`Reference::tag_key`]), so it must not
//! change. [`Reference::canonical`] is the fully qualified form the registry side speaks of.
//!
//! Hand-written: oci-spec has no reference type, and the parse must match docker's grammar
//! (path components, hosts with ports, digests) exactly.

use crate::Digest;
use std::fmt;

/// The registry docker uses when a name has none.
pub const DOCKER_HUB: &str = "docker.io";

/// Longest reference accepted, as written.
const MAX_REFERENCE: usize = 512;
/// Longest repository name (docker's `NameTotalLengthMax`).
const MAX_NAME: usize = 255;
/// Longest tag.
const MAX_TAG: usize = 128;

/// A parsed, normalised `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host[:port] (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path on the registry, e.g. `library/alpine`.
    pub repository: String,
    /// Tag (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Pinned digest.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {problem}")]
pub struct ReferenceError {
    /// What was given.
    pub reference: String,
    /// What is wrong with it.
    pub problem: ReferenceProblem,
}

/// What is wrong with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceProblem {
    /// Empty, or longer than 512 bytes.
    #[error("empty or too long")]
    Length,
    /// The part after `@` is not a digest whittle accepts.
    #[error("the digest must be sha256:<64 lowercase hex digits>")]
    Digest,
    /// A digest where a tag is needed.
    #[error("a digest reference cannot be a tag")]
    DigestNotTag,
    /// A tag outside docker's grammar.
    #[error("tags use letters, digits, '.', '_', '-' (at most 128, not first '.' or '-')")]
    Tag,
    /// A registry host outside docker's grammar.
    #[error("bad registry host (host[:port])")]
    Host,
    /// A repository name that is empty or longer than 255 characters.
    #[error("the repository name must have 1 to 255 characters")]
    NameLength,
    /// A path component outside docker's grammar.
    #[error(
        "repository path components are lowercase letters and digits, separated by one '.', \
         one or two '_', or '-'s ('..' and empty parts are not names)"
    )]
    PathComponent,
}

impl Reference {
    /// Parses and normalises a reference; a digest may pin it.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |problem| ReferenceError {
            reference: s.to_string(),
            problem,
        };
        if s.is_empty() || s.len() > MAX_REFERENCE {
            return Err(bad(ReferenceProblem::Length));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let d: Digest = d.parse().map_err(|_| bad(ReferenceProblem::Digest))?;
                (n, Some(d))
            }
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if tag.is_some_and(|t| !valid_tag(t)) {
            return Err(bad(ReferenceProblem::Tag));
        }
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(bad(ReferenceProblem::NameLength));
        }
        // docker's grammar: [domain/]path-component[/path-component]...
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            r => r,
        };
        if !valid_domain(registry) {
            return Err(bad(ReferenceProblem::Host));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad(ReferenceProblem::PathComponent));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.len() > MAX_NAME {
            return Err(bad(ReferenceProblem::NameLength));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// Parses a name that is to be a tag in the store: `name[:tag]`, tag defaulting to
    /// `latest`; a digest is refused.
    pub fn parse_tag(s: &str) -> Result<Reference, ReferenceError> {
        if s.contains('@') {
            return Err(ReferenceError {
                reference: s.to_string(),
                problem: ReferenceProblem::DigestNotTag,
            });
        }
        Reference::parse(s)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository as docker shows it: without `docker.io/`, and without `library/` for
    /// Docker Hub's official images (`alpine`, `user/app`, `localhost:5000/a/b`).
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// The fully qualified form, `docker.io/library/alpine:latest[@sha256:…]`.
    pub fn canonical(&self) -> String {
        let mut s = self.name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// The local tag this image gets in the store: the same name and tag without the digest,
    /// if it has a tag.
    pub fn local_tag(&self) -> Option<Reference> {
        self.tag.as_ref()?;
        Some(Reference {
            digest: None,
            ..self.clone()
        })
    }

    /// The key of this name in the store's tag table, `familiar-name:tag`; `None` for a
    /// reference that is not a tag (no tag, or pinned by digest).
    pub fn tag_key(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), None) => Some(format!("{}:{t}", self.familiar_name())),
            _ => None,
        }
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// The familiar form: `alpine:3`, `user/app:2`, `localhost:5000/a/b:1@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A tag as docker's grammar has it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TAG
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !t.starts_with(['.', '-'])
}

/// One path component of a repository name, as docker's reference grammar has it:
/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
pub fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        match &b[sep..i] {
            b"." | b"_" | b"__" => {}
            s if s.iter().all(|&x| x == b'-') => {}
            _ => return false,
        }
    }
}

/// A registry host as docker's grammar has it: DNS labels (letters, digits, inner `-`) joined by
/// `.`, or a bracketed IPv6 address, then an optional `:port`.
pub fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(s: &str) -> String {
        Reference::parse(s).unwrap().canonical()
    }

    /// The store's keys: familiar names with a tag.
    fn key(s: &str) -> Result<String, ReferenceError> {
        Reference::parse_tag(s).map(|r| r.to_string())
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(canonical("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(canonical("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(canonical("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            canonical("index.docker.io/library/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(canonical("localhost/app"), "localhost/app:latest");
        assert_eq!(canonical("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(canonical("ghcr.io/o/r:1"), "ghcr.io/o/r:1");
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            canonical(&format!("alpine@{d}")),
            format!("docker.io/library/alpine@{d}")
        );
        let r = Reference::parse(&format!("127.0.0.1:5000/x:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.reference(), d);
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/x:1@{d}"));
    }

    #[test]
    fn store_keys_are_familiar() {
        assert_eq!(key("app").unwrap(), "app:latest");
        assert_eq!(key("app:v1").unwrap(), "app:v1");
        assert_eq!(
            key("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            key("localhost:5000/a/b:1.0").unwrap(),
            "localhost:5000/a/b:1.0"
        );
        assert_eq!(key("docker.io/library/alpine:3").unwrap(), "alpine:3");
        assert_eq!(key("docker.io/made/x").unwrap(), "made/x:latest");
        assert_eq!(key("index.docker.io/x:1").unwrap(), "x:1");
        assert!(key("App").is_err());
        assert!(key("app@sha256:00").is_err());
        let d = "sha256:".to_string() + &"a".repeat(64);
        let e = key(&format!("app@{d}")).unwrap_err();
        assert_eq!(e.problem, ReferenceProblem::DigestNotTag);
        assert!(key("app:").is_err());
        assert!(key("").is_err());
        assert!(key("app:-x").is_err());
        let r = Reference::parse_tag("user/app:2").unwrap();
        assert_eq!(r.tag_key().as_deref(), Some("user/app:2"));
        assert_eq!(
            Reference::parse(&format!("app@{d}")).unwrap().tag_key(),
            None
        );
    }

    #[test]
    fn local_tags_are_familiar() {
        let t = |s: &str| {
            Reference::parse(s)
                .unwrap()
                .local_tag()
                .unwrap()
                .to_string()
        };
        assert_eq!(t("alpine"), "alpine:latest");
        assert_eq!(t("user/app:2"), "user/app:2");
        assert_eq!(t("127.0.0.1:5000/app:2"), "127.0.0.1:5000/app:2");
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert!(Reference::parse(&format!("alpine@{d}"))
            .unwrap()
            .local_tag()
            .is_none());
        assert_eq!(t(&format!("alpine:3@{d}")), "alpine:3");
    }

    #[test]
    fn dot_dot_and_other_non_names_are_refused() {
        let bad = [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:00",
            "a b",
            "../../x:1",
            "a/../../b:1",
            "a/./b",
            "./a",
            "a//b",
            "/a",
            "a/",
            "a..b",
            "a._b",
            "a___b",
            "-a",
            "a-",
            "a.",
            "bad_host:5000x/a",
            "-host.io/a",
        ];
        for s in bad {
            assert!(Reference::parse(s).is_err(), "{s} accepted");
        }
        let good = [
            "a-b",
            "a--b",
            "a__b",
            "a_b",
            "a.b",
            "a/b/c",
            "my.registry:5000/team/app:v1.2",
            "localhost/a",
            "[::1]:5000/a",
            "127.0.0.1:5000/lab/busybox:1",
        ];
        for s in good {
            assert!(Reference::parse(s).is_ok(), "{s} refused");
        }
    }

    #[test]
    fn errors_are_typed() {
        let p = |s: &str| Reference::parse(s).unwrap_err().problem;
        assert_eq!(p(""), ReferenceProblem::Length);
        assert_eq!(p("a@sha256:00"), ReferenceProblem::Digest);
        assert_eq!(p("a:-x"), ReferenceProblem::Tag);
        assert_eq!(p("-host.io/a"), ReferenceProblem::Host);
        assert_eq!(p("a//b"), ReferenceProblem::PathComponent);
        assert_eq!(p(&"a".repeat(256)), ReferenceProblem::NameLength);
        let e = Reference::parse("App").unwrap_err().to_string();
        assert!(e.starts_with("invalid image reference \"App\": "), "{e}");
    }
}
