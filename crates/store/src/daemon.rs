//! `build --load`: an image streamed into a docker daemon, as `docker load` would send it.
//!
//! The daemon is the one `DOCKER_HOST` names (`unix://PATH` or `tcp://HOST:PORT`), else the
//! default socket `/var/run/docker.sock`. The image goes as a docker archive in the body of
//! `POST /images/load`, chunked, written while [`crate::save`] produces it: nothing is staged
//! on disk or held in memory.
//!
//! The HTTP exchange is one request on a fresh connection, so it is written here rather than
//! bringing a client with a connection pool and TLS for a local socket (TLS daemons, with
//! `DOCKER_TLS_VERIFY`, are refused with a sentence).

use crate::archive::{save, ArchiveFormat};
use crate::images::ImageRecord;
use crate::store::Store;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use whittle_oci::Reference;

/// The default daemon socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A daemon's reply is a few JSON lines; more than this is not a reply to a load.
const MAX_REPLY: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no docker daemon answers at {host}: start one, or set DOCKER_HOST to the daemon to load into")]
    Unreachable {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("DOCKER_HOST={0}: only unix:// and tcp:// daemons can be loaded into (a TLS or ssh daemon is not supported yet); save the image with `whittle save` and `docker load` it")]
    Unsupported(String),
    #[error("sending the image to the docker daemon at {host} failed")]
    Send {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("the docker daemon at {host} refused the image: {message}")]
    Refused { host: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerHost {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl DockerHost {
    /// From `DOCKER_HOST` (its value, if set), as the docker client reads it.
    pub fn from_env(value: Option<&str>, tls_verify: bool) -> Result<DockerHost, DaemonError> {
        let v = match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => return Ok(DockerHost::Unix(DEFAULT_DOCKER_SOCKET.into())),
            Some(v) => v,
        };
        if let Some(p) = v.strip_prefix("unix://") {
            return Ok(DockerHost::Unix(p.into()));
        }
        if let Some(addr) = v.strip_prefix("tcp://") {
            if tls_verify {
                return Err(DaemonError::Unsupported(v.to_string()));
            }
            return Ok(DockerHost::Tcp(addr.trim_end_matches('/').to_string()));
        }
        Err(DaemonError::Unsupported(v.to_string()))
    }

    pub fn describe(&self) -> String {
        match self {
            DockerHost::Unix(p) => format!("unix://{}", p.display()),
            DockerHost::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// Streams `image`, tagged `tags`, into the daemon at `host`. Returns what the daemon said
/// (e.g. `Loaded image: app:1`), one line each.
pub fn load_into_daemon(
    store: &Store,
    host: &DockerHost,
    image: &ImageRecord,
    tags: &[Reference],
) -> Result<Vec<String>, DaemonError> {
    let name = host.describe();
    let unreachable = |source| DaemonError::Unreachable {
        host: name.clone(),
        source,
    };
    let mut conn: Box<dyn Conn> = match host {
        DockerHost::Unix(p) => Box::new(UnixStream::connect(p).map_err(unreachable)?),
        DockerHost::Tcp(a) => {
            let s = TcpStream::connect(a).map_err(unreachable)?;
            s.set_read_timeout(Some(Duration::from_secs(600)))
                .map_err(unreachable)?;
            Box::new(s)
        }
    };
    let send = |source| DaemonError::Send {
        host: name.clone(),
        source,
    };
    let head = "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n\
                User-Agent: whittle\r\nContent-Type: application/x-tar\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    conn.write_all(head.as_bytes()).map_err(send)?;
    let images: Vec<(Option<Reference>, ImageRecord)> = if tags.is_empty() {
        vec![(None, image.clone())]
    } else {
        tags.iter()
            .map(|t| (Some(t.clone()), image.clone()))
            .collect()
    };
    let chunked = Chunked {
        inner: io::BufWriter::with_capacity(256 * 1024, conn),
    };
    let sent = save(store, &images, ArchiveFormat::Docker, chunked);
    let mut conn = sent?.finish().map_err(send)?;
    conn.flush().map_err(send)?;
    read_reply(conn, &name)
}

/// Writes HTTP/1.1 chunks.
struct Chunked<W: Write> {
    inner: io::BufWriter<W>,
}

impl<W: Write> Chunked<W> {
    fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(b"0\r\n\r\n")?;
        self.inner.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.inner, "{:x}\r\n", buf.len())?;
        self.inner.write_all(buf)?;
        self.inner.write_all(b"\r\n")?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the status and the JSON-lines body of the daemon's reply.
fn read_reply<R: Read>(conn: R, host: &str) -> Result<Vec<String>, DaemonError> {
    let send = |source| DaemonError::Send {
        host: host.to_string(),
        source,
    };
    let mut r = BufReader::new(conn.take(MAX_REPLY));
    let mut status = String::new();
    r.read_line(&mut status).map_err(send)?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| DaemonError::Refused {
            host: host.to_string(),
            message: format!("not an HTTP reply: {:?}", status.trim()),
        })?;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(send)? == 0 || line.trim().is_empty() {
            break;
        }
        let l = line.to_ascii_lowercase();
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).map_err(send)? == 0 {
                break;
            }
            let n =
                usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n.min(MAX_REPLY as usize)];
            r.read_exact(&mut chunk).map_err(send)?;
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            r.read_line(&mut crlf).map_err(send)?;
        }
    } else {
        r.read_to_end(&mut body).map_err(send)?;
    }
    let text = String::from_utf8_lossy(&body);
    let mut said = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(e) = v
            .get("error")
            .or_else(|| v.get("message"))
            .and_then(|e| e.as_str())
        {
            return Err(DaemonError::Refused {
                host: host.to_string(),
                message: e.to_string(),
            });
        }
        if let Some(s) = v.get("stream").and_then(|s| s.as_str()) {
            said.extend(s.lines().map(str::to_string).filter(|l| !l.is_empty()));
        }
    }
    if !(200..300).contains(&code) {
        return Err(DaemonError::Refused {
            host: host.to_string(),
            message: format!("HTTP {code}: {}", text.trim()),
        });
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            DockerHost::from_env(None, false).unwrap(),
            DockerHost::Unix(DEFAULT_DOCKER_SOCKET.into())
        );
        assert_eq!(
            DockerHost::from_env(Some("unix:///run/x.sock"), false).unwrap(),
            DockerHost::Unix("/run/x.sock".into())
        );
        assert_eq!(
            DockerHost::from_env(Some("tcp://127.0.0.1:2375"), false).unwrap(),
            DockerHost::Tcp("127.0.0.1:2375".into())
        );
        assert!(DockerHost::from_env(Some("tcp://h:2376"), true).is_err());
        assert!(DockerHost::from_env(Some("ssh://u@h"), false).is_err());
    }

    #[test]
    fn replies() {
        let ok = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  22\r\n{\"stream\":\"Loaded image: app:1\\n\"}\r\n0\r\n\r\n";
        assert_eq!(
            read_reply(ok.as_bytes(), "h").unwrap(),
            ["Loaded image: app:1"]
        );
        let bad = "HTTP/1.1 200 OK\r\n\r\n{\"errorDetail\":{},\"error\":\"no space\"}\n";
        let e = read_reply(bad.as_bytes(), "h").unwrap_err().to_string();
        assert!(e.contains("refused the image: no space"), "{e}");
        let e = read_reply(
            "HTTP/1.1 500 x\r\n\r\n{\"message\":\"boom\"}".as_bytes(),
            "h",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("boom"), "{e}");
    }

    #[test]
    fn chunks() {
        let mut c = Chunked {
            inner: io::BufWriter::new(Vec::new()),
        };
        c.write_all(b"hello").unwrap();
        let out = c.finish().unwrap();
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }
}
