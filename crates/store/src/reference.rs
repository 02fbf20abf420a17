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
        if repo.is_empty() || repo.len() > 255 {
            return Err(bad("the repository name must have 1 to 255 characters"));
        }
        // docker's grammar: [domain/]path-component[/path-component]...
        let mut parts = repo.split('/').peekable();
        if let Some(first) = parts.peek() {
            let is_domain =
                repo.contains('/') && (first.contains(['.', ':']) || *first == "localhost");
            if is_domain {
                if !valid_domain(first) {
                    return Err(bad("bad registry host (host[:port])"));
                }
                parts.next();
            }
        }
        if !parts.all(valid_path_component) {
            return Err(bad(
                "repository path components are lowercase letters and digits, separated by \
                 one '.', one or two '_', or '-'s ('..' and empty parts are not names)",
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

    #[test]
    fn dot_dot_and_other_non_names_are_refused() {
        let bad = [
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
}
