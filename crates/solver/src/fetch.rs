//! `ADD <url>`: downloads streamed to disk, hashed while they arrive, checked against
//! `--checksum`, named like BuildKit names them.

use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: checksum mismatch: --checksum says {expected}, the download is {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: cannot write the download: {source}")]
    Write {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The file name a URL downloads to: the last path segment, else `__unnamed__` (BuildKit).
pub fn file_name(url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let name = path.split_once('/').map_or("", |(_, p)| p);
    match name.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

/// Downloads `url` into `dest` (a new file), returning `sha256:<hex>` of its content. With
/// `checksum` (`sha256:<hex>`), a different content is an error and nothing is kept.
pub fn download(url: &str, dest: &Path, checksum: Option<&str>) -> Result<String, FetchError> {
    let http = |message: String| FetchError::Http {
        url: url.to_string(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| http(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(http(format!("the server answered {status}")));
    }
    let mut body = resp.body_mut().as_reader();
    let werr = |source| FetchError::Write {
        url: url.to_string(),
        source,
    };
    let mut f = std::fs::File::create(dest).map_err(werr)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buf).map_err(|e| http(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(werr)?;
    }
    let actual = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(expected) = checksum {
        if expected != actual {
            let _ = std::fs::remove_file(dest);
            return Err(FetchError::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            file_name("https://x.org/a/b/tool.tar.gz?x=1#f"),
            "tool.tar.gz"
        );
        assert_eq!(file_name("https://x.org/"), "__unnamed__");
        assert_eq!(file_name("https://x.org"), "__unnamed__");
        assert_eq!(file_name("http://h:8080/dir/"), "__unnamed__");
        assert!(is_url("https://a") && !is_url("ftp://a") && !is_url("a/http://"));
    }
}
