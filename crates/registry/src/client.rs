//! One registry's HTTP API: TLS setup, scheme selection, authentication (Basic or Bearer tokens
//! from `WWW-Authenticate` challenges, cached per scope until they expire), retries with
//! backoff on 5xx, 429 and broken connections, and typed errors for 401/403/404/429.

use crate::auth::{parse_challenge, Challenge, Credentials, DockerConfig};
use crate::error::{RegistryError, Result};
use crate::reference::{api_host, is_loopback};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::http::{self, Method, Response};
use ureq::tls::{parse_pem, ClientCert, PemItem, RootCerts, TlsConfig};
use ureq::Body;

/// How many times a request is tried before its error is returned.
const ATTEMPTS: u32 = 5;
/// Longest wait for a 429's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// System CA bundle (Debian's ca-certificates).
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Registries (host[:port]) reached over plain HTTP or TLS without verification, like
    /// dockerd's `--insecure-registry`.
    pub insecure_registries: Vec<String>,
    /// Per-registry CA certificates and client certificates, `<dir>/<host[:port]>/*.crt`,
    /// `*.cert` + `*.key` (default `/etc/docker/certs.d`, or `$WHITTLE_CERTS_D`).
    pub certs_dir: PathBuf,
    /// The docker client config with credentials (default `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`).
    pub docker_config: PathBuf,
    /// Credentials to use instead of the config's (for `login`).
    pub credentials: Option<Credentials>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            certs_dir: std::env::var_os("WHITTLE_CERTS_D")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/docker/certs.d")),
            docker_config: DockerConfig::default_path(),
            credentials: None,
        }
    }
}

/// A request body that can be sent again on a retry.
#[derive(Clone, Copy)]
pub(crate) enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, (String, Instant)>,
}

/// A connection to one registry.
pub struct Client {
    registry: String,
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    /// The credentials are being tried by `login` (not read from the config).
    login: bool,
    auth: Mutex<AuthState>,
}

fn agent(tls: TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("whittle/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .max_idle_connections_per_host(8)
        .tls_config(tls)
        .build()
        .into()
}

fn read_certs(path: &Path, into: &mut Vec<ureq::tls::Certificate<'static>>) -> Result<()> {
    let pem = std::fs::read(path).map_err(|e| RegistryError::io("read", path, e))?;
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => into.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(RegistryError::Config {
                    path: path.to_path_buf(),
                    reason: format!("not a PEM certificate file: {e}"),
                })
            }
        }
    }
    Ok(())
}

/// TLS settings for `host`: the system roots plus `<certs_dir>/<host>/*.crt`, and a client
/// certificate from `*.cert` with its `*.key`, as docker reads them.
fn tls_config(host: &str, opts: &ClientOptions, verify: bool) -> Result<TlsConfig> {
    let mut roots = Vec::new();
    for p in SYSTEM_ROOTS {
        if Path::new(p).is_file() {
            read_certs(Path::new(p), &mut roots)?;
            break;
        }
    }
    let dir = opts.certs_dir.join(host);
    let mut client_cert = None;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in &names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => read_certs(p, &mut roots)?,
                Some("cert") => {
                    let key = p.with_extension("key");
                    let mut chain = Vec::new();
                    read_certs(p, &mut chain)?;
                    let kpem =
                        std::fs::read(&key).map_err(|e| RegistryError::io("read", &key, e))?;
                    let k = ureq::tls::PrivateKey::from_pem(&kpem).map_err(|e| {
                        RegistryError::Config {
                            path: key.clone(),
                            reason: format!("not a PEM private key: {e}"),
                        }
                    })?;
                    client_cert = Some(ClientCert::new_with_certs(&chain, k));
                }
                _ => {}
            }
        }
    }
    let root_certs = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    Ok(TlsConfig::builder()
        .root_certs(root_certs)
        .client_cert(client_cert)
        .disable_verification(!verify)
        .build())
}

fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(6))
}

/// The `errors[].message` of a registry's JSON error body, else its first bytes.
pub(crate) fn error_detail(resp: &mut Response<Body>) -> String {
    let mut v = Vec::new();
    let _ = resp.body_mut().as_reader().take(8192).read_to_end(&mut v);
    if let Ok(j) = serde_json::from_slice::<serde_json::Value>(&v) {
        if let Some(errs) = j.get("errors").and_then(|e| e.as_array()) {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                        .trim_matches([':', ' '])
                        .to_string()
                })
                .collect();
            if !msgs.is_empty() {
                return msgs.join("; ");
            }
        }
    }
    let s = String::from_utf8_lossy(&v).trim().to_string();
    if s.is_empty() {
        resp.status().canonical_reason().unwrap_or("").to_string()
    } else {
        s.chars().take(300).collect()
    }
}

/// A header as a string.
pub(crate) fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Client {
    /// Connects to a registry: picks https (or, for loopback and `--insecure-registry` hosts
    /// that do not speak TLS, http) and reads its auth challenge from `GET /v2/`.
    pub fn connect(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let host = api_host(registry).to_string();
        let insecure = opts
            .insecure_registries
            .iter()
            .any(|r| r == registry || *r == host);
        let credentials = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => DockerConfig::load(&opts.docker_config)?.credentials(registry)?,
        };
        let tls = tls_config(&host, opts, !insecure)?;
        let mut client = Client {
            registry: registry.to_string(),
            base: format!("https://{host}"),
            agent: agent(tls),
            login: opts.credentials.is_some(),
            credentials,
            auth: Mutex::new(AuthState::default()),
        };
        match client.ping() {
            Ok(_) => Ok(client),
            Err(https_err @ RegistryError::Transport { .. })
                if insecure || is_loopback(registry) =>
            {
                // Plain HTTP, but only for a server that does not speak TLS at all: a TLS
                // server answers plain requests with 400, and then its TLS error (an untrusted
                // certificate, say) is the one to report.
                client.base = format!("http://{host}");
                match client.ping() {
                    Ok(st) if st != 400 => Ok(client),
                    _ => Err(client.tls_hint(https_err, opts)),
                }
            }
            Err(e) => Err(client.tls_hint(e, opts)),
        }
    }

    /// Says what to do about a certificate that is not trusted.
    fn tls_hint(&self, e: RegistryError, opts: &ClientOptions) -> RegistryError {
        match e {
            RegistryError::Transport {
                registry,
                what,
                source,
            } if source.to_string().contains("certificate") => RegistryError::Transport {
                what: format!(
                    "{what} over TLS (to trust a private CA put it in {}/{}/ca.crt; --insecure-registry {registry} skips verification)",
                    opts.certs_dir.display(),
                    api_host(&registry),
                ),
                registry,
                source,
            },
            e => e,
        }
    }

    /// The registry's name as in references.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `https://host` or `http://host`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether we hold credentials for this registry.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `GET /v2/`: remembers the auth challenge, returns the status.
    fn ping(&self) -> Result<u16> {
        let url = format!("{}/v2/", self.base);
        let resp = self
            .agent
            .run(build(Method::GET, &url, &[], None, ureq::SendBody::none())?)
            .map_err(|e| self.transport("connecting", e))?;
        let mut st = self.lock();
        st.challenge = header(&resp, "www-authenticate").and_then(parse_challenge);
        Ok(resp.status().as_u16())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        match self.auth.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn transport(&self, what: &str, e: ureq::Error) -> RegistryError {
        RegistryError::Transport {
            registry: self.registry.clone(),
            what: what.to_string(),
            source: Box::new(e),
        }
    }

    /// Logs in: checks that the credentials are accepted (for a token server, that a token is
    /// issued; for Basic auth, that `/v2/` answers 200).
    pub fn check_login(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let refused = |detail: String| RegistryError::LoginRefused {
            registry: self.registry.clone(),
            detail,
        };
        let sent = self.send(
            Method::GET,
            &url,
            &[],
            ReqBody::Empty,
            "",
            "",
            "login",
            true,
        );
        let resp = match sent {
            Err(RegistryError::Unauthorized { detail, .. }) => return Err(refused(detail)),
            r => r?,
        };
        match self.check(resp, "", "login") {
            Err(RegistryError::Unauthorized { detail, .. }) => Err(refused(detail)),
            r => r.map(|_| ()),
        }
    }

    /// The Authorization header for `scope`, fetching a token if the registry wants one.
    fn authorization(&self, scope: &str, repo: &str) -> Result<Option<String>> {
        let challenge = self.lock().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer(params)) => {
                if let Some((tok, exp)) = self.lock().tokens.get(scope) {
                    if *exp > Instant::now() {
                        return Ok(Some(format!("Bearer {tok}")));
                    }
                }
                let (tok, ttl) = self.fetch_token(&params, scope, repo)?;
                self.lock()
                    .tokens
                    .insert(scope.to_string(), (tok.clone(), Instant::now() + ttl));
                Ok(Some(format!("Bearer {tok}")))
            }
        }
    }

    fn fetch_token(
        &self,
        params: &std::collections::BTreeMap<String, String>,
        scope: &str,
        repo: &str,
    ) -> Result<(String, Duration)> {
        let realm = params.get("realm").map(String::as_str).unwrap_or("");
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: repo.to_string(),
                detail: format!("the token realm {realm:?} is not an http(s) URL"),
            });
        }
        let mut q: Vec<(String, String)> = Vec::new();
        if let Some(s) = params.get("service") {
            q.push(("service".into(), s.clone()));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            q.push(("scope".into(), s.to_string()));
        }
        let query: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut hdrs: Vec<(&str, String)> = Vec::new();
        // An identity token (user `<token>`, as `docker login` stores for OAuth registries) is
        // an OAuth2 refresh token: POSTed as a form. Otherwise a GET, with Basic credentials if
        // we have any.
        let (method, url, form) = match &self.credentials {
            Some(c) if c.username == "<token>" => {
                let mut f = vec![
                    "grant_type=refresh_token".to_string(),
                    format!("client_id=whittle&refresh_token={}", urlencode(&c.password)),
                ];
                if let Some(s) = params.get("service") {
                    f.push(format!("service={}", urlencode(s)));
                }
                if !scope.is_empty() {
                    f.push(format!("scope={}", urlencode(scope)));
                }
                hdrs.push(("content-type", "application/x-www-form-urlencoded".into()));
                (Method::POST, realm.to_string(), Some(f.join("&")))
            }
            c => {
                if let Some(c) = c {
                    hdrs.push(("authorization", c.basic_header()));
                }
                (
                    Method::GET,
                    format!("{realm}{sep}{}", query.join("&")),
                    None,
                )
            }
        };
        if let Some(f) = &form {
            hdrs.push(("content-length", f.len().to_string()));
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            let body = match &form {
                Some(f) => {
                    ureq::SendBody::from_owned_reader(std::io::Cursor::new(f.clone().into_bytes()))
                }
                None => ureq::SendBody::none(),
            };
            let req = build(method.clone(), &url, &hdrs, None, body)?;
            match self.agent.run(req) {
                Ok(mut resp) => {
                    let st = resp.status().as_u16();
                    if st >= 500 && attempt + 1 < ATTEMPTS {
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    if st == 401 || st == 403 {
                        let d = error_detail(&mut resp);
                        return Err(RegistryError::Unauthorized {
                            registry: self.registry.clone(),
                            repository: repo.to_string(),
                            detail: self.no_creds_hint(&format!("the token server refused: {d}")),
                        });
                    }
                    if st != 200 {
                        let d = error_detail(&mut resp);
                        return Err(RegistryError::Status {
                            registry: self.registry.clone(),
                            repository: repo.to_string(),
                            what: format!("getting a token from {realm}"),
                            status: st,
                            detail: d,
                        });
                    }
                    let mut v = Vec::new();
                    resp.body_mut()
                        .as_reader()
                        .take(1 << 20)
                        .read_to_end(&mut v)
                        .map_err(|e| self.transport("reading a token", ureq::Error::Io(e)))?;
                    let j: serde_json::Value =
                        serde_json::from_slice(&v).map_err(|e| RegistryError::InvalidManifest {
                            what: format!("token from {realm}"),
                            reason: e.to_string(),
                        })?;
                    let tok = j
                        .get("token")
                        .or_else(|| j.get("access_token"))
                        .and_then(|t| t.as_str())
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| RegistryError::InvalidManifest {
                            what: format!("token from {realm}"),
                            reason: "no token in the reply".into(),
                        })?;
                    let secs = j
                        .get("expires_in")
                        .and_then(|e| e.as_u64())
                        .unwrap_or(60)
                        .clamp(10, 3600);
                    // Refresh a little before the server's expiry.
                    return Ok((tok.to_string(), Duration::from_secs(secs - 5)));
                }
                Err(e) if retryable(&e) && attempt + 1 < ATTEMPTS => {
                    last = Some(e);
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(self.transport("getting a token", e)),
            }
        }
        Err(self.transport(
            "getting a token",
            last.unwrap_or(ureq::Error::ConnectionFailed),
        ))
    }

    fn no_creds_hint(&self, detail: &str) -> String {
        if self.login {
            format!("{detail}; check the user name and password")
        } else if self.credentials.is_some() {
            format!("{detail}; the stored credentials were rejected: check them with `whittle login {}`", self.registry)
        } else {
            format!(
                "{detail}; no credentials are stored for it: run `whittle login {}`",
                self.registry
            )
        }
    }

    /// Sends a request with authentication and retries. `scope` is the token scope
    /// (`repository:<name>:pull[,push]`, space-separated for several); `retry` is false for
    /// requests that cannot be repeated (a PATCH of an upload session). The response may have any
    /// status except 401; see [`Client::check`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: ReqBody<'_>,
        scope: &str,
        repo: &str,
        what: &str,
        retry: bool,
    ) -> Result<Response<Body>> {
        let mut reauthed = false;
        let mut attempt = 0;
        loop {
            let auth = self.authorization(scope, repo)?;
            let req = match body {
                ReqBody::Empty => build(
                    method.clone(),
                    url,
                    headers,
                    auth.as_deref(),
                    ureq::SendBody::none(),
                )?,
                ReqBody::Bytes(b) => {
                    let mut h = headers.to_vec();
                    h.push(("content-length", b.len().to_string()));
                    build(
                        method.clone(),
                        url,
                        &h,
                        auth.as_deref(),
                        ureq::SendBody::from_owned_reader(std::io::Cursor::new(b.to_vec())),
                    )?
                }
                ReqBody::File { path, offset, len } => {
                    let mut f = std::fs::File::open(path)
                        .map_err(|e| RegistryError::io("open", path, e))?;
                    f.seek(SeekFrom::Start(offset))
                        .map_err(|e| RegistryError::io("seek", path, e))?;
                    let mut h = headers.to_vec();
                    h.push(("content-length", len.to_string()));
                    let r = std::io::BufReader::with_capacity(1 << 20, f).take(len);
                    build(
                        method.clone(),
                        url,
                        &h,
                        auth.as_deref(),
                        ureq::SendBody::from_owned_reader(r),
                    )?
                }
            };
            let can_retry = retry && attempt + 1 < ATTEMPTS;
            match self.agent.run(req) {
                Err(e) if can_retry && retryable(&e) => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(e) => return Err(self.transport(what, e)),
                Ok(mut resp) => {
                    let st = resp.status().as_u16();
                    if st == 401 {
                        let ch = header(&resp, "www-authenticate").and_then(parse_challenge);
                        if !reauthed && ch.is_some() {
                            let mut s = self.lock();
                            let had_token = s.tokens.remove(scope).is_some();
                            let changed = s.challenge != ch;
                            s.challenge = ch;
                            drop(s);
                            // A new challenge, or an expired/revoked token: try once more.
                            if changed || had_token {
                                reauthed = true;
                                continue;
                            }
                        }
                        let d = error_detail(&mut resp);
                        return Err(RegistryError::Unauthorized {
                            registry: self.registry.clone(),
                            repository: repo.to_string(),
                            detail: self.no_creds_hint(&d),
                        });
                    }
                    let transient = st >= 500 || st == 429;
                    if transient && can_retry {
                        let wait = match header(&resp, "retry-after")
                            .and_then(|v| v.parse::<u64>().ok())
                        {
                            Some(s) if st == 429 => Duration::from_secs(s).min(MAX_RETRY_AFTER),
                            _ => backoff(attempt),
                        };
                        std::thread::sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// Turns a non-success status into the matching error.
    pub(crate) fn check(
        &self,
        mut resp: Response<Body>,
        repo: &str,
        what: &str,
    ) -> Result<Response<Body>> {
        let st = resp.status().as_u16();
        if (200..300).contains(&st) {
            return Ok(resp);
        }
        let registry = self.registry.clone();
        let repository = repo.to_string();
        Err(match st {
            401 => RegistryError::Unauthorized {
                registry,
                repository,
                detail: self.no_creds_hint(&error_detail(&mut resp)),
            },
            403 => RegistryError::Denied {
                registry,
                repository,
                detail: error_detail(&mut resp),
            },
            404 => RegistryError::NotFound {
                registry,
                repository,
                what: what.to_string(),
            },
            429 => RegistryError::TooManyRequests {
                registry,
                repository,
            },
            _ => RegistryError::Status {
                registry,
                repository,
                what: what.to_string(),
                status: st,
                detail: error_detail(&mut resp),
            },
        })
    }

    /// Resolves an upload `Location` against the registry's base URL.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }
}

fn build(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    auth: Option<&str>,
    body: ureq::SendBody<'static>,
) -> Result<http::Request<ureq::SendBody<'static>>> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(body).map_err(|e| RegistryError::InvalidReference {
        reference: url.to_string(),
        reason: format!("cannot make a request for it: {e}"),
    })
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Token scope for a repository.
pub(crate) fn scope(repo: &str, push: bool) -> String {
    if push {
        format!("repository:{repo}:pull,push")
    } else {
        format!("repository:{repo}:pull")
    }
}
