//! The client against a small in-process registry that does what docker-registry cannot be
//! made to do: Bearer tokens from a token server (fetched with the stored credentials, cached
//! per scope, refetched when revoked), 5xx and 429 replies, schema 1 and oversized manifests.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use whittle_layer::Digest;
use whittle_oci::Reference;
use whittle_registry::{ClientOptions, Platform, PullOptions, RegistryError};
use whittle_store::Store;

#[derive(Default)]
struct State {
    tokens_issued: AtomicUsize,
    /// Tokens the registry accepts.
    valid: Mutex<Vec<String>>,
    /// Replies still to fail with 503, per path.
    fail_503: Mutex<HashMap<String, usize>>,
    /// Paths served: (content type, body).
    content: Mutex<HashMap<String, (String, Vec<u8>)>>,
    requests: Mutex<Vec<String>>,
    /// Replies still to cut off halfway (the connection closes early), per path.
    truncate: Mutex<HashMap<String, usize>>,
    /// Upload sessions: bytes received so far.
    uploads: Mutex<HashMap<String, Vec<u8>>>,
    /// PATCHes still to be taken in and then answered by hanging up.
    drop_patch: AtomicUsize,
    /// Answer `Range` requests with the whole blob.
    ignore_range: std::sync::atomic::AtomicBool,
}

struct Fake {
    port: u16,
    state: Arc<State>,
}

fn reply(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut h = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        h += &format!("{k}: {v}\r\n");
    }
    h += "\r\n";
    let _ = s.write_all(h.as_bytes());
    let _ = s.write_all(body);
}

fn serve(mut s: TcpStream, port: u16, st: Arc<State>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut hdrs = HashMap::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hdrs.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = hdrs
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").to_string(),
    );
    let range = hdrs.get("range").cloned();
    st.requests.lock().unwrap().push(match &range {
        Some(r) => format!("{method} {target} {r}"),
        None => format!("{method} {target}"),
    });
    let path = target.split('?').next().unwrap_or("").to_string();
    if path == "/token" && method == "POST" {
        // OAuth2 refresh-token grant (identity tokens).
        let form = String::from_utf8_lossy(&body).to_string();
        let ok = form.contains("grant_type=refresh_token")
            && form.contains("refresh_token=rt-123")
            && form.contains("service=fake")
            && form.contains("scope=repository%3Alib%2Fapp%3Apull");
        if !ok {
            return reply(
                &mut s,
                "401 Unauthorized",
                &[],
                br#"{"error":"invalid_grant"}"#,
            );
        }
        let n = st.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let tok = format!("oauth-{n}");
        st.valid.lock().unwrap().push(tok.clone());
        let b = format!(r#"{{"access_token":"{tok}","expires_in":300}}"#);
        return reply(
            &mut s,
            "200 OK",
            &[("content-type", "application/json".into())],
            b.as_bytes(),
        );
    }
    if path == "/token" {
        // alice:pw
        if hdrs.get("authorization").map(String::as_str) != Some("Basic YWxpY2U6cHc=") {
            return reply(
                &mut s,
                "401 Unauthorized",
                &[],
                br#"{"details":"bad credentials"}"#,
            );
        }
        assert!(target.contains("service=fake"), "{target}");
        assert!(
            target.contains("scope=repository%3Alib%2Fapp%3Apull"),
            "{target}"
        );
        let n = st.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let tok = format!("tok-{n}");
        st.valid.lock().unwrap().push(tok.clone());
        let b = format!(r#"{{"token":"{tok}","expires_in":300}}"#);
        return reply(
            &mut s,
            "200 OK",
            &[("content-type", "application/json".into())],
            b.as_bytes(),
        );
    }
    let authed = hdrs
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| st.valid.lock().unwrap().iter().any(|v| v == t));
    if !authed {
        let ch = format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="repository:lib/app:pull""#
        );
        return reply(
            &mut s,
            "401 Unauthorized",
            &[("www-authenticate", ch)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    if path == "/v2/" {
        return reply(&mut s, "200 OK", &[], b"{}");
    }
    if method == "POST" && path == "/v2/lib/app/blobs/uploads/" {
        let mut up = st.uploads.lock().unwrap();
        let id = format!("/upload/{}", up.len());
        up.insert(id.clone(), Vec::new());
        return reply(&mut s, "202 Accepted", &[("location", id)], b"");
    }
    if let Some(session) = path.strip_prefix("/upload/").map(|_| path.clone()) {
        let mut up = st.uploads.lock().unwrap();
        let Some(data) = up.get_mut(&session) else {
            return reply(&mut s, "404 Not Found", &[], b"");
        };
        let range = |d: &Vec<u8>| format!("0-{}", d.len().saturating_sub(1));
        match method {
            "PATCH" => {
                let start = hdrs
                    .get("content-range")
                    .and_then(|r| r.split('-').next()?.parse::<usize>().ok());
                if start != Some(data.len()) {
                    return reply(&mut s, "416 Range Not Satisfiable", &[], b"");
                }
                data.extend_from_slice(&body);
                if st.drop_patch.load(Ordering::SeqCst) > 0 {
                    // Taken in, but the reply is lost.
                    st.drop_patch.fetch_sub(1, Ordering::SeqCst);
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    return;
                }
                let r = range(data);
                return reply(
                    &mut s,
                    "202 Accepted",
                    &[("location", session), ("range", r)],
                    b"",
                );
            }
            "GET" => {
                let r = range(data);
                return reply(
                    &mut s,
                    "204 No Content",
                    &[("location", session), ("range", r)],
                    b"",
                );
            }
            "PUT" => {
                data.extend_from_slice(&body);
                let want = target
                    .split("digest=")
                    .nth(1)
                    .unwrap_or("")
                    .replace("%3A", ":");
                let got = Digest::of_bytes(data).to_string();
                if want != got {
                    return reply(
                        &mut s,
                        "400 Bad Request",
                        &[],
                        br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#,
                    );
                }
                let blob = std::mem::take(data);
                drop(up);
                st.content.lock().unwrap().insert(
                    format!("/v2/lib/app/blobs/{got}"),
                    ("application/octet-stream".into(), blob),
                );
                return reply(&mut s, "201 Created", &[], b"");
            }
            _ => return reply(&mut s, "405 Method Not Allowed", &[], b""),
        }
    }
    if method == "PUT" && path.starts_with("/v2/lib/app/manifests/") {
        let ct = hdrs.get("content-type").cloned().unwrap_or_default();
        let d = Digest::of_bytes(&body).to_string();
        st.content.lock().unwrap().insert(path, (ct, body));
        return reply(&mut s, "201 Created", &[("docker-content-digest", d)], b"");
    }
    if let Some(n) = st.fail_503.lock().unwrap().get_mut(&path) {
        if *n > 0 {
            *n -= 1;
            return reply(&mut s, "503 Service Unavailable", &[], b"busy");
        }
    }
    if path.ends_with("/manifests/limited") {
        return reply(
            &mut s,
            "429 Too Many Requests",
            &[("retry-after", "0".into())],
            b"",
        );
    }
    if path.ends_with("/manifests/forbidden") {
        return reply(
            &mut s,
            "403 Forbidden",
            &[],
            br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
        );
    }
    let found = st.content.lock().unwrap().get(&path).cloned();
    match found {
        Some((ct, b)) => {
            let b = if method == "HEAD" { Vec::new() } else { b };
            let from = range
                .and_then(|r| {
                    r.strip_prefix("bytes=")?
                        .strip_suffix('-')?
                        .parse::<usize>()
                        .ok()
                })
                .filter(|_| !st.ignore_range.load(Ordering::SeqCst));
            let (status, mut hdrs, body) = match from {
                Some(n) if n < b.len() => (
                    "206 Partial Content",
                    vec![(
                        "content-range",
                        format!("bytes {n}-{}/{}", b.len() - 1, b.len()),
                    )],
                    b[n..].to_vec(),
                ),
                _ => ("200 OK", vec![], b),
            };
            hdrs.push(("content-type", ct));
            let cut = st.truncate.lock().unwrap().get_mut(&path).is_some_and(|n| {
                let cut = *n > 0;
                *n = n.saturating_sub(1);
                cut
            });
            if cut {
                // Announce everything, send half, hang up.
                let mut h = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in &hdrs {
                    h += &format!("{k}: {v}\r\n");
                }
                h += "\r\n";
                let _ = s.write_all(h.as_bytes());
                let _ = s.write_all(&body[..body.len() / 2]);
                let _ = s.shutdown(std::net::Shutdown::Both);
                return;
            }
            let hdrs: Vec<(&str, String)> = hdrs.into_iter().collect();
            reply(&mut s, status, &hdrs, &body)
        }
        None => reply(
            &mut s,
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
    }
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(s, port, st));
            }
        });
        Fake { port, state }
    }

    fn put(&self, path: &str, ct: &str, body: Vec<u8>) {
        self.state
            .content
            .lock()
            .unwrap()
            .insert(path.into(), (ct.into(), body));
    }

    /// An image `lib/app:1` with one layer; returns the manifest digest and the layer digest.
    fn image(&self) -> (Digest, Digest) {
        // Not really a tar, but blobs are only hashed when pulled; big enough to be cut.
        let layer: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let cfg =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let (ld, cd) = (Digest::of_bytes(&layer), Digest::of_bytes(&cfg));
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}],
        }))
        .unwrap();
        let md = Digest::of_bytes(&m);
        self.put(
            "/v2/lib/app/manifests/1",
            "application/vnd.oci.image.manifest.v1+json",
            m,
        );
        self.put(
            &format!("/v2/lib/app/blobs/{ld}"),
            "application/octet-stream",
            layer,
        );
        self.put(
            &format!("/v2/lib/app/blobs/{cd}"),
            "application/octet-stream",
            cfg,
        );
        (md, ld)
    }

    fn reference(&self, tag: &str) -> Reference {
        Reference::parse(&format!("127.0.0.1:{}/lib/app:{tag}", self.port)).unwrap()
    }
}

/// Pull options whose docker config holds `auth` (base64 user:password) for the fake.
fn options(dir: &std::path::Path, port: u16, auth: &str) -> PullOptions {
    let cfg = dir.join(format!("config-{auth}.json"));
    let json = serde_json::json!({"auths": {format!("127.0.0.1:{port}"): {"auth": auth}}});
    std::fs::write(&cfg, json.to_string()).unwrap();
    PullOptions {
        client: ClientOptions {
            docker_config: cfg,
            certs_dir: dir.join("certs.d"),
            ..ClientOptions::default()
        },
        ..PullOptions::default()
    }
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn bearer_tokens_are_fetched_cached_and_refetched_when_revoked() {
    let f = Fake::start();
    let (md, ld) = f.image();
    let t = tempfile::tempdir().unwrap();
    let opts = options(t.path(), f.port, "YWxpY2U6cHc=");
    // The layer's first two GETs fail with 503: retried with backoff.
    f.state
        .fail_503
        .lock()
        .unwrap()
        .insert(format!("/v2/lib/app/blobs/{ld}"), 2);
    let store = Store::open(t.path().join("store")).unwrap();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
    assert!(store.has_blob(&ld));
    let layer_gets = f
        .state
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.ends_with(ld.as_str()))
        .count();
    assert_eq!(layer_gets, 3, "two 503s, then the blob");
    // One token served the manifest and both blobs.
    assert_eq!(f.state.tokens_issued.load(Ordering::SeqCst), 1);
    // Revoked: the next request gets a 401, a new token is fetched once, and the pull goes on.
    f.state.valid.lock().unwrap().clear();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
    assert_eq!(f.state.tokens_issued.load(Ordering::SeqCst), 2);
}

#[test]
fn registry_refusals_are_typed_and_name_the_repository() {
    let f = Fake::start();
    f.image();
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path().join("store")).unwrap();
    let good = options(t.path(), f.port, "YWxpY2U6cHc=");
    let pull = |tag: &str, o: &PullOptions| {
        whittle_registry::pull(&store, &f.reference(tag), &amd64(), o).unwrap_err()
    };

    // Wrong password: the token server refuses.
    let bad = options(t.path(), f.port, "YWxpY2U6bm8=");
    let e = pull("1", &bad);
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert!(
        e.to_string().contains("lib/app") && e.to_string().contains("rejected"),
        "{e}"
    );

    let e = pull("forbidden", &good);
    assert!(matches!(e, RegistryError::Denied { .. }), "{e}");
    assert!(e.to_string().contains("denied"), "{e}");
    let e = pull("nope", &good);
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    let e = pull("limited", &good);
    assert!(matches!(e, RegistryError::TooManyRequests { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{}", f.port)),
        "{e}"
    );

    f.put(
        "/v2/lib/app/manifests/old",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        br#"{"schemaVersion":1,"name":"lib/app","tag":"old","fsLayers":[]}"#.to_vec(),
    );
    let e = pull("old", &good);
    assert!(matches!(e, RegistryError::Schema1 { .. }), "{e}");
    assert!(e.to_string().contains("schema 1"), "{e}");

    let mut huge = br#"{"schemaVersion":2,"layers":[],"x":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5 << 20));
    huge.extend(b"\"}");
    f.put(
        "/v2/lib/app/manifests/huge",
        "application/vnd.oci.image.manifest.v1+json",
        huge,
    );
    let e = pull("huge", &good);
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    // Nothing of these reached the store.
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn a_broken_download_goes_on_with_a_range_request() {
    let f = Fake::start();
    let (md, ld) = f.image();
    let t = tempfile::tempdir().unwrap();
    let opts = options(t.path(), f.port, "YWxpY2U6cHc=");
    let path = format!("/v2/lib/app/blobs/{ld}");
    // The first reply and the first ranged reply both break off halfway.
    f.state.truncate.lock().unwrap().insert(path.clone(), 2);
    let store = Store::open(t.path().join("store")).unwrap();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
    let gets: Vec<String> = f
        .state
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&path))
        .cloned()
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(!gets[0].contains("bytes="), "{gets:?}");
    // 1.2 MB: half is 600000, then half of the rest.
    assert!(gets[1].ends_with("bytes=600000-"), "{gets:?}");
    assert!(gets[2].ends_with("bytes=900000-"), "{gets:?}");

    // A registry that ignores Range: the blob starts again and still verifies.
    let t2 = tempfile::tempdir().unwrap();
    f.state.ignore_range.store(true, Ordering::SeqCst);
    f.state.truncate.lock().unwrap().insert(path.clone(), 1);
    let store = Store::open(t2.path().join("store")).unwrap();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
}

#[test]
fn an_interrupted_pull_leaves_nothing_and_the_next_try_succeeds() {
    let f = Fake::start();
    let (md, ld) = f.image();
    let t = tempfile::tempdir().unwrap();
    let opts = options(t.path(), f.port, "YWxpY2U6cHc=");
    let path = format!("/v2/lib/app/blobs/{ld}");
    f.state.truncate.lock().unwrap().insert(path, 100);
    let root = t.path().join("store");
    let store = Store::open(&root).unwrap();
    let e = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap_err();
    assert!(matches!(e, RegistryError::Transport { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("downloading blob {ld} of lib/app")),
        "{e}"
    );
    assert!(!store.has_blob(&ld));
    assert!(store.images().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "no partial blob left"
    );
    // The registry recovers: the next pull completes.
    f.state.truncate.lock().unwrap().clear();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
}

#[test]
fn identity_tokens_are_exchanged_by_the_oauth2_refresh_grant() {
    let f = Fake::start();
    let (md, _) = f.image();
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("config.json");
    let json = serde_json::json!({"auths": {format!("127.0.0.1:{}", f.port): {"identitytoken": "rt-123"}}});
    std::fs::write(&cfg, json.to_string()).unwrap();
    let mut opts = options(t.path(), f.port, "");
    opts.client.docker_config = cfg;
    let store = Store::open(t.path().join("store")).unwrap();
    let rec = whittle_registry::pull(&store, &f.reference("1"), &amd64(), &opts).unwrap();
    assert_eq!(rec.manifest, md);
    let posts = f
        .state
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("POST /token"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn a_chunked_push_goes_on_from_where_the_registry_says_it_stands() {
    let f = Fake::start();
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path().join("store")).unwrap();
    let layer: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i * 7).to_le_bytes())
        .collect();
    let mut w = store.blob_writer(None).unwrap();
    w.write_all(&layer).unwrap();
    let (ld, size) = w.commit().unwrap();
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let img = store
        .write_image(
            cfg,
            &[(
                ld.clone(),
                "application/vnd.oci.image.layer.v1.tar".into(),
                size,
            )],
        )
        .unwrap();
    // The first PATCH is stored by the registry but its reply never arrives.
    f.state.drop_patch.store(1, Ordering::SeqCst);
    let opts = whittle_registry::PushOptions {
        client: options(t.path(), f.port, "YWxpY2U6cHc=").client,
        chunk_size: Some(64 * 1024),
        jobs: 1,
        // The layer goes as stored (it is not a tar; this test is about chunks).
        compression: whittle_layer::Compression::None,
        ..whittle_registry::PushOptions::default()
    };
    let d = whittle_registry::push_image(&store, &img, &f.reference("pushed"), &opts).unwrap();
    assert_eq!(d, img.manifest);
    let content = f.state.content.lock().unwrap();
    assert_eq!(content[&format!("/v2/lib/app/blobs/{ld}")].1, layer);
    assert!(content.contains_key("/v2/lib/app/manifests/pushed"));
    let reqs = f.state.requests.lock().unwrap();
    let patches = reqs.iter().filter(|r| r.starts_with("PATCH")).count();
    // 400 kB in 64 KiB chunks is 7 PATCHes; the lost reply costs a status GET, not a resend.
    assert_eq!(patches, 7, "{reqs:#?}");
    assert_eq!(
        reqs.iter()
            .filter(|r| r.starts_with("GET /upload/"))
            .count(),
        1,
        "{reqs:#?}"
    );
}
