//! Credentials and authentication: `~/.docker/config.json` (`auths`, `credsStore`,
//! `credHelpers` through `docker-credential-*` helpers), and the `WWW-Authenticate` challenges
//! of the distribution spec (Basic, and Bearer tokens from a token server).

use crate::error::{RegistryError, Result};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user name and password (or, with user `<token>`, an identity token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// The value of a `Basic` Authorization header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The key docker uses for a registry in its config file and with credential helpers.
pub fn config_key(registry: &str) -> String {
    if registry == crate::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces a config key (`https://host/v1/`, `host`) to its host.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let h = k.split('/').next().unwrap_or(k);
    if h == "index.docker.io" || h == "registry-1.docker.io" {
        crate::DOCKER_HUB
    } else {
        h
    }
}

/// The docker client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
#[derive(Clone, Debug)]
pub struct DockerConfig {
    path: PathBuf,
    json: serde_json::Value,
}

impl DockerConfig {
    /// Where the config lives for this process.
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            return PathBuf::from(d).join("config.json");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker/config.json")
    }

    /// Reads the config; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let json = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| RegistryError::Config {
                path: path.to_path_buf(),
                reason: format!("not valid JSON: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(RegistryError::io("read", path, e)),
        };
        if !json.is_object() {
            return Err(RegistryError::Config {
                path: path.to_path_buf(),
                reason: "not a JSON object".into(),
            });
        }
        Ok(DockerConfig {
            path: path.to_path_buf(),
            json,
        })
    }

    /// The helper that holds credentials for `registry`, if any (`credHelpers` first, then
    /// `credsStore`).
    fn helper(&self, registry: &str) -> Option<String> {
        if let Some(h) = self.json.get("credHelpers").and_then(|v| v.as_object()) {
            for (k, v) in h {
                if key_host(k) == registry {
                    if let Some(s) = v.as_str() {
                        return Some(s.to_string());
                    }
                }
            }
        }
        self.json
            .get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Credentials for `registry` (a host[:port] as in references), if the config has any.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper(registry) {
            if let Some(c) = helper_get(&helper, &config_key(registry))? {
                return Ok(Some(c));
            }
        }
        let Some(auths) = self.json.get("auths").and_then(|v| v.as_object()) else {
            return Ok(None);
        };
        for (k, v) in auths {
            if key_host(k) != registry {
                continue;
            }
            let bad = |reason: &str| RegistryError::Config {
                path: self.path.clone(),
                reason: format!("auths.{k}: {reason}"),
            };
            if let Some(tok) = v.get("identitytoken").and_then(|t| t.as_str()) {
                if !tok.is_empty() {
                    return Ok(Some(Credentials {
                        username: "<token>".into(),
                        password: tok.to_string(),
                    }));
                }
            }
            if let Some(a) = v.get("auth").and_then(|a| a.as_str()) {
                if a.is_empty() {
                    continue;
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .map_err(|_| bad("auth is not base64"))?;
                let raw = String::from_utf8(raw).map_err(|_| bad("auth is not UTF-8"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| bad("auth is not base64 of user:password"))?;
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
            if let (Some(u), Some(p)) = (
                v.get("username").and_then(|x| x.as_str()),
                v.get("password").and_then(|x| x.as_str()),
            ) {
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
        }
        Ok(None)
    }

    /// Saves credentials for `registry`: through its helper if the config names one, else
    /// base64 in `auths` (the file is written 0600 by temp file and rename).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        if let Some(helper) = self.helper(registry) {
            return helper_store(&helper, &config_key(registry), creds);
        }
        let obj = self.obj_mut()?;
        let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
        let Some(auths) = auths.as_object_mut() else {
            return Err(RegistryError::Config {
                path: self.path.clone(),
                reason: "auths is not an object".into(),
            });
        };
        auths.retain(|k, _| key_host(k) != registry);
        let raw = format!("{}:{}", creds.username, creds.password);
        auths.insert(
            config_key(registry),
            serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)}),
        );
        self.save()
    }

    /// Removes credentials for `registry`; returns whether there were any.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let mut found = false;
        if let Some(helper) = self.helper(registry) {
            found |= helper_erase(&helper, &config_key(registry))?;
        }
        let obj = self.obj_mut()?;
        if let Some(auths) = obj.get_mut("auths").and_then(|a| a.as_object_mut()) {
            let before = auths.len();
            auths.retain(|k, _| key_host(k) != registry);
            if auths.len() != before {
                found = true;
                self.save()?;
            }
        }
        Ok(found)
    }

    fn obj_mut(&mut self) -> Result<&mut serde_json::Map<String, serde_json::Value>> {
        let path = self.path.clone();
        self.json
            .as_object_mut()
            .ok_or_else(|| RegistryError::Config {
                path,
                reason: "not a JSON object".into(),
            })
    }

    fn save(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::io("create", dir, e))?;
        let bytes = serde_json::to_vec_pretty(&self.json).map_err(|e| RegistryError::Config {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1
            .write_all(&bytes)
            .and_then(|_| tmp.1.sync_all())
            .map_err(|e| RegistryError::io("write", &tmp.0, e))?;
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| RegistryError::io("chmod", &tmp.0, e))?;
        std::fs::rename(&tmp.0, &self.path).map_err(|e| RegistryError::io("rename", &tmp.0, e))
    }
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    let p = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let f = std::fs::File::create(&p).map_err(|e| RegistryError::io("create", &p, e))?;
    Ok((p, f))
}

fn run_helper(helper: &str, action: &'static str, input: &[u8]) -> Result<(bool, String)> {
    let err = |message: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        action,
        message,
    };
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(err("helper names use letters, digits, '-', '_', '.'".into()));
    }
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot run {prog}: {e} (is it installed and on PATH?)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("writing to {prog}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for {prog}: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        return Ok((true, text));
    }
    let msg = format!(
        "{}{}",
        text.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if msg.contains("credentials not found") {
        return Ok((false, msg));
    }
    Err(err(if msg.is_empty() {
        format!("exited with {}", out.status)
    } else {
        msg
    }))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (found, out) = run_helper(helper, "get", server.as_bytes())?;
    if !found {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        username: String,
        secret: String,
    }
    let r: Reply = serde_json::from_str(&out).map_err(|e| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        action: "get",
        message: format!("unexpected reply: {e}"),
    })?;
    Ok(Some(Credentials {
        username: r.username,
        password: r.secret,
    }))
}

fn helper_store(helper: &str, server: &str, c: &Credentials) -> Result<()> {
    let body =
        serde_json::json!({"ServerURL": server, "Username": c.username, "Secret": c.password});
    run_helper(helper, "store", body.to_string().as_bytes())?;
    Ok(())
}

fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    Ok(run_helper(helper, "erase", server.as_bytes())?.0)
}

/// One `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic auth.
    Basic,
    /// A bearer token from `realm` (with `service` and `scope` parameters).
    Bearer(BTreeMap<String, String>),
}

/// Parses a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"`. Unknown schemes give `None`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut params = BTreeMap::new();
            let mut s = rest.trim();
            while !s.is_empty() {
                let Some((k, after)) = s.split_once('=') else {
                    break;
                };
                let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
                let after = after.trim_start();
                let (v, next) = if let Some(q) = after.strip_prefix('"') {
                    // Quoted string; `\"` escapes.
                    let mut v = String::new();
                    let mut chars = q.char_indices();
                    let mut end = q.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    v.push(n);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => v.push(c),
                        }
                    }
                    (v, &q[end.min(q.len())..])
                } else {
                    let i = after.find(',').unwrap_or(after.len());
                    (after[..i].trim().to_string(), &after[i..])
                };
                params.insert(k, v);
                s = next.trim_start().trim_start_matches(',').trim_start();
            }
            params
                .contains_key("realm")
                .then_some(Challenge::Bearer(params))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        let Challenge::Bearer(p) = c else { panic!() };
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn config_auths_and_store() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"reg.example:5000":{"auth":"YWxpY2U6czNjcjN0"}},"other":1}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        assert_eq!(c.credentials("docker.io").unwrap().unwrap().username, "u");
        let a = c.credentials("reg.example:5000").unwrap().unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("alice", "s3cr3t")
        );
        assert!(c.credentials("elsewhere").unwrap().is_none());
        let creds = Credentials {
            username: "bob".into(),
            password: "pw:with:colons".into(),
        };
        c.store("127.0.0.1:5000", &creds).unwrap();
        let c2 = DockerConfig::load(&path).unwrap();
        assert_eq!(c2.credentials("127.0.0.1:5000").unwrap().unwrap(), creds);
        assert_eq!(c2.json["other"], 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut c3 = c2.clone();
        assert!(c3.erase("127.0.0.1:5000").unwrap());
        assert!(!c3.erase("127.0.0.1:5000").unwrap());
        assert!(DockerConfig::load(&path)
            .unwrap()
            .credentials("127.0.0.1:5000")
            .unwrap()
            .is_none());
    }

    #[test]
    fn credential_helpers() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("docker-credential-fake");
        std::fs::write(
            &bin,
            "#!/bin/sh\nread server\ncase \"$1 $server\" in\n  \"get reg.example\") echo '{\"ServerURL\":\"reg.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n  get*) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = d.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.example":"fake"}}"#).unwrap();
        // The helper is looked up on PATH.
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![d.path().to_path_buf()];
        paths.extend(std::env::split_paths(&old));
        let joined = std::env::join_paths(paths).unwrap();
        let c = DockerConfig::load(&path).unwrap();
        let got = with_path(&joined, || c.credentials("reg.example"));
        let got = got.unwrap().unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("hu", "hs"));
        std::fs::write(&path, r#"{"credsStore":"fake"}"#).unwrap();
        let c = DockerConfig::load(&path).unwrap();
        assert!(with_path(&joined, || c.credentials("other.example"))
            .unwrap()
            .is_none());
        std::fs::write(&path, r#"{"credsStore":"missing-helper"}"#).unwrap();
        let c = DockerConfig::load(&path).unwrap();
        let e = c.credentials("x.example").unwrap_err().to_string();
        assert!(e.contains("docker-credential-missing-helper"), "{e}");
    }

    fn with_path<T>(p: &std::ffi::OsStr, f: impl FnOnce() -> T) -> T {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap();
        let old = std::env::var_os("PATH");
        std::env::set_var("PATH", p);
        let r = f();
        if let Some(o) = old {
            std::env::set_var("PATH", o);
        }
        r
    }
}
