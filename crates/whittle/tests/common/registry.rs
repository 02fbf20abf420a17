//! Debian's `docker-registry` (the reference distribution server) on 127.0.0.1 for the tests:
//! its storage in a temp dir, its access log in a file (to count the blobs a command
//! downloads), deletes enabled; plain HTTP, or TLS with a CA made for the test plus htpasswd
//! auth. Killed on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `docker-registry` is installed. As root or in CI a missing one is a failure (run
/// scripts/deps.sh); otherwise the caller skips, after a message.
pub fn available() -> bool {
    if Path::new("/usr/bin/docker-registry").is_file() {
        return true;
    }
    let must = rustix::process::geteuid().is_root() || std::env::var_os("CI").is_some();
    assert!(!must, "docker-registry is missing: run scripts/deps.sh");
    eprintln!("skipped: docker-registry not installed (run scripts/deps.sh as root)");
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// A TLS registry's CA, for `--certs-dir`.
pub struct Tls {
    /// `certs.d`-style dir with `127.0.0.1:<port>/ca.crt`.
    pub certs_dir: PathBuf,
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Registry {
    /// A plain-HTTP registry.
    pub fn start() -> Registry {
        Registry::start_with(None).0
    }

    /// Starts a registry; with `tls`, serving a certificate signed by a fresh CA (written to
    /// `<certs_dir>/127.0.0.1:<port>/ca.crt`) and requiring `user:pass` by htpasswd.
    pub fn start_with(tls: Option<(&str, &str)>) -> (Registry, Option<Tls>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            d.join("data").display()
        );
        let mut t = None;
        if let Some((user, pass)) = tls {
            sh(
                d,
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=whittle-test-ca \
                -keyout ca.key -out ca.crt 2>/dev/null
                openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
                -keyout server.key -out server.csr 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf
                openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                -days 2 -extfile ext.cnf -out server.crt 2>/dev/null",
            );
            let htp = sh(d, &format!("htpasswd -Bbn '{user}' '{pass}'"));
            fs::write(d.join("htpasswd"), htp).unwrap();
            cfg += &format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\nauth:\n  htpasswd:\n    realm: whittle-test\n    path: {0}/htpasswd\n",
                d.display()
            );
            let certs = d.join("certs.d");
            fs::create_dir_all(certs.join(format!("127.0.0.1:{port}"))).unwrap();
            fs::copy(
                d.join("ca.crt"),
                certs.join(format!("127.0.0.1:{port}/ca.crt")),
            )
            .unwrap();
            t = Some(Tls { certs_dir: certs });
        }
        fs::write(d.join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(fs::File::create(d.join("access.log")).unwrap())
            .stderr(fs::File::create(d.join("registry.log")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let r = Registry { child, port, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not start: {}",
                fs::read_to_string(r.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (r, t)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Access-log lines so far (to take a mark before a command).
    pub fn log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The blobs downloaded (GET answered 200) after `mark` lines of the log: digest, bytes.
    pub fn blob_gets(&self, mark: usize) -> Vec<(String, u64)> {
        self.log()
            .iter()
            .skip(mark)
            .filter_map(|l| {
                let req = l.split('"').nth(1)?;
                let rest = l.split('"').nth(2)?;
                let path = req.strip_prefix("GET ")?;
                let digest = path.split("/blobs/").nth(1)?.split(' ').next()?;
                let mut it = rest.split_whitespace();
                (it.next()? == "200").then_some(())?;
                Some((digest.to_string(), it.next()?.parse().ok()?))
            })
            .collect()
    }

    /// The requests after `mark` lines of the log: method and path.
    pub fn requests(&self, mark: usize) -> Vec<(String, String)> {
        self.log()
            .iter()
            .skip(mark)
            .filter_map(|l| {
                let req = l.split('"').nth(1)?;
                let mut it = req.split(' ');
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
