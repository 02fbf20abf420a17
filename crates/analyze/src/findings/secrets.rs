//! Files that look like secrets: `.env` files, private keys, `.npmrc` with a token,
//! `.git-credentials`, docker `config.json` with auths, and `.git` directories. A secret that a
//! later layer deletes still ships in the layer that added it, and is reported as such.
//!
//! Names decide which files are looked into; contents (the first [`PREFIX`] bytes, read while
//! the layer streams) decide what is reported, so a `.pem` certificate or an `.npmrc` that only
//! names a registry is not.

use super::{comps, finding, Acc};
use crate::merge::Merged;
use crate::path;
use crate::report::{Finding, FindingKind};
use std::collections::BTreeMap;

/// Bytes of a candidate file kept for [`classify`].
pub const PREFIX: usize = 4096;
/// Largest file looked into.
const MAX_SIZE: u64 = 64 * 1024;

/// Why a file looks like a secret.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum SecretKind {
    /// A `.env` file (not `.env.example` and the like).
    DotEnv,
    /// A PEM private key (`-----BEGIN ... PRIVATE KEY-----`).
    PrivateKey,
    /// An `.npmrc` with an auth token or password.
    NpmToken,
    /// A `.git-credentials` file.
    GitCredentials,
    /// A docker `config.json` with registry auths.
    DockerAuth,
    /// A `.git` directory.
    GitDir,
}

fn is_dotenv(name: &[u8]) -> bool {
    if name == b".env" {
        return true;
    }
    match name.strip_prefix(b".env.") {
        Some(rest) => !matches!(
            rest,
            b"example" | b"sample" | b"template" | b"dist" | b"defaults" | b"tmpl" | b"schema"
        ),
        None => false,
    }
}

fn key_candidate(name: &[u8]) -> bool {
    (name.starts_with(b"id_") && !name.ends_with(b".pub"))
        || [&b".pem"[..], b".key", b".p8"]
            .iter()
            .any(|x| name.ends_with(x))
}

fn docker_config(key: &[u8]) -> bool {
    let c = comps(key);
    c.len() >= 2 && c[c.len() - 2] == b".docker" && c[c.len() - 1] == b"config.json"
}

/// Whether the first bytes of a regular file at `key` are needed to classify it.
pub fn wants_prefix(key: &[u8], size: u64) -> bool {
    let name = path::name(key);
    size > 0 && size <= MAX_SIZE && (name == b".npmrc" || key_candidate(name) || docker_config(key))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An `.npmrc` line that sets a credential to a literal (not `${VAR}`).
fn npm_token(prefix: &[u8]) -> bool {
    prefix.split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii();
        if line.starts_with(b"#") || line.starts_with(b";") {
            return false;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return false;
        };
        let (k, v) = (line[..eq].trim_ascii(), line[eq + 1..].trim_ascii());
        let quote = |b: &u8| *b == b'"' || *b == b'\'';
        let v = v
            .strip_prefix(b"\"")
            .or_else(|| v.strip_prefix(b"'"))
            .unwrap_or(v);
        let v = match v.last() {
            Some(b) if quote(b) => &v[..v.len() - 1],
            _ => v,
        };
        let secret_key = [&b"_authToken"[..], b"_auth", b"_password"]
            .iter()
            .any(|s| k.ends_with(s));
        secret_key && !v.is_empty() && !v.starts_with(b"${")
    })
}

/// A docker config with a non-empty `"auth"` value.
fn docker_auth(prefix: &[u8]) -> bool {
    let pat = b"\"auth\"";
    let mut rest = prefix;
    while let Some(i) = rest.windows(pat.len()).position(|w| w == pat) {
        let after = rest[i + pat.len()..].trim_ascii_start();
        if let Some(v) = after.strip_prefix(b":") {
            let v = v.trim_ascii_start();
            if v.starts_with(b"\"") && v.get(1).is_some_and(|&b| b != b'"') {
                return true;
            }
        }
        rest = &rest[i + pat.len()..];
    }
    false
}

/// Classifies a regular file by its key, size and first bytes (empty unless
/// [`wants_prefix`] asked for them).
pub fn classify(key: &[u8], size: u64, prefix: &[u8]) -> Option<SecretKind> {
    let name = path::name(key);
    if size == 0 {
        return None;
    }
    if is_dotenv(name) {
        return Some(SecretKind::DotEnv);
    }
    if name == b".git-credentials" {
        return Some(SecretKind::GitCredentials);
    }
    if name == b".npmrc" && npm_token(prefix) {
        return Some(SecretKind::NpmToken);
    }
    // Test fixtures (Go's testdata, tests/ of packages) hold published keys.
    let fixture = path::components(key).any(|c| matches!(c, b"testdata" | b"test" | b"tests"));
    if !fixture
        && key_candidate(name)
        && contains(prefix, b"-----BEGIN ")
        && contains(prefix, b"PRIVATE KEY-----")
    {
        return Some(SecretKind::PrivateKey);
    }
    if docker_config(key) && docker_auth(prefix) {
        return Some(SecretKind::DockerAuth);
    }
    None
}

/// The `.git` directory a key is in (or is), if any.
pub fn git_root(key: &[u8]) -> Option<&[u8]> {
    let mut end = 0;
    for c in path::components(key) {
        end += c.len();
        if c == b".git" {
            return Some(&key[..end]);
        }
        end += 1;
    }
    None
}

fn what(kind: SecretKind) -> (&'static str, &'static str) {
    match kind {
        SecretKind::DotEnv => (
            ".env file",
            "Keep .env files out of the image: add `.env*` to .dockerignore and give settings at \
             run time (environment, mounted secrets); rotate any credential it held.",
        ),
        SecretKind::PrivateKey => (
            "private key",
            "Keep private keys out of the image: add them to .dockerignore, use \
             `RUN --mount=type=secret` (or `--mount=type=ssh`) where a build step needs one, and \
             rotate the key.",
        ),
        SecretKind::NpmToken => (
            ".npmrc with a registry token",
            "Mount it for the install only: `RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
             npm ci` (or write `_authToken=${NPM_TOKEN}`), and rotate the token.",
        ),
        SecretKind::GitCredentials => (
            ".git-credentials file",
            "Use `RUN --mount=type=secret` for git credentials instead of a file in the image, \
             and rotate them.",
        ),
        SecretKind::DockerAuth => (
            "docker config.json with registry credentials",
            "Use `RUN --mount=type=secret` for registry credentials instead of a config in the \
             image, and rotate them.",
        ),
        SecretKind::GitDir => (
            ".git directory",
            "Add `.git` to .dockerignore (or COPY only the files the image needs): the history can \
             hold deleted secrets and it costs bytes.",
        ),
    }
}

/// Adds the findings: one per (kind, layer, still present or not).
pub fn find(m: &Merged, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<(SecretKind, usize, bool), Acc> = BTreeMap::new();
    for h in &m.secrets {
        let present = m
            .tree
            .get(&h.key)
            .is_some_and(|n| !n.hidden && n.layer == h.layer);
        groups
            .entry((h.kind, h.layer, present))
            .or_default()
            .add(&h.key, h.size);
    }
    for ((layer, root), (files, bytes)) in &m.git {
        let present = m.tree.get(root).is_some_and(|n| !n.hidden);
        let acc = groups
            .entry((SecretKind::GitDir, *layer, present))
            .or_default();
        acc.bytes = acc.bytes.saturating_add(*bytes);
        acc.files += files;
        acc.add_path(root, *bytes);
    }
    for ((kind, layer, present), acc) in groups {
        let (name, fix) = what(kind);
        let (title, fix) = if present {
            (
                format!("{name} in the image (layer {layer})"),
                fix.to_string(),
            )
        } else {
            (
                format!("{name} added by layer {layer}: deleted later, but still shipped"),
                format!(
                    "Deleting it in a later layer does not help: it ships in layer {layer}, and \
                     anyone who pulls the image can extract it. {fix}"
                ),
            )
        };
        out.push(finding(FindingKind::Secret, title, layer, None, acc, fix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::key;

    #[test]
    fn classifies_by_name_and_content() {
        let pem = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n";
        assert_eq!(
            classify(&key("root/.ssh/id_ed25519"), 60, pem),
            Some(SecretKind::PrivateKey)
        );
        assert_eq!(classify(&key("root/.ssh/id_ed25519.pub"), 60, pem), None);
        assert_eq!(
            classify(
                &key("etc/ssl/certs/a.pem"),
                60,
                b"-----BEGIN CERTIFICATE-----"
            ),
            None
        );
        assert_eq!(
            classify(&key("app/.env"), 10, b""),
            Some(SecretKind::DotEnv)
        );
        assert_eq!(
            classify(&key("app/.env.production"), 10, b""),
            Some(SecretKind::DotEnv)
        );
        assert_eq!(classify(&key("app/.env.example"), 10, b""), None);
        assert_eq!(classify(&key("app/.env"), 0, b""), None);
        let tok = b"registry=https://r.example/\n//r.example/:_authToken=npm_abc123\n";
        assert_eq!(
            classify(&key("app/.npmrc"), 60, tok),
            Some(SecretKind::NpmToken)
        );
        let var = b"//r.example/:_authToken=${NPM_TOKEN}\n";
        assert_eq!(classify(&key("app/.npmrc"), 40, var), None);
        assert_eq!(
            classify(&key("app/.npmrc"), 20, b"registry=https://x/\n"),
            None
        );
        let cfg = br#"{"auths": {"r.example": {"auth": "dXNlcjpwYXNz"}}}"#;
        assert_eq!(
            classify(&key("root/.docker/config.json"), 50, cfg),
            Some(SecretKind::DockerAuth)
        );
        assert_eq!(
            classify(
                &key("root/.docker/config.json"),
                50,
                br#"{"auths": {"r": {"auth": ""}}}"#
            ),
            None
        );
        let fixture = key("usr/share/go-1.19/src/crypto/tls/testdata/example-key.pem");
        assert_eq!(classify(&fixture, 60, pem), None);
        assert!(wants_prefix(&key("root/.ssh/id_rsa"), 100));
        assert!(!wants_prefix(&key("usr/bin/ls"), 100));
        assert_eq!(
            git_root(&key("src/app/.git/objects/ab")),
            Some(&key("src/app/.git")[..])
        );
        assert_eq!(git_root(&key("src/app/.gitignore")), None);
    }
}
