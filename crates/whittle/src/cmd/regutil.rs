//! What the registry commands (pull, push, login, logout) share: transport flags and the
//! progress lines they print.

use super::storeutil::human_size;
use std::sync::Arc;
use std::time::Instant;
use whittle_registry::{ClientOptions, Event, ProgressFn};

/// Flags for reaching registries.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TransportArgs {
    /// Allow plain HTTP and unverified TLS for this registry (host[:port]); repeatable.
    /// Loopback registries (localhost, 127.0.0.1, ::1) may always use plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Directory with per-registry CA and client certificates, `<DIR>/<host[:port]>/*.crt`
    /// (default: $WHITTLE_CERTS_D, else /etc/docker/certs.d).
    #[arg(long = "certs-dir", value_name = "DIR")]
    pub certs_dir: Option<std::path::PathBuf>,
}

impl TransportArgs {
    /// Client options from the flags, the environment and the defaults.
    pub fn client_options(&self) -> ClientOptions {
        let mut o = ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            ..ClientOptions::default()
        };
        if let Some(d) = &self.certs_dir {
            o.certs_dir = d.clone();
        }
        o
    }
}

/// Progress lines on stderr (nothing when `quiet`): one per blob when it starts, is skipped
/// or finishes, with its size and rate.
pub fn progress(quiet: bool, verb: &'static str) -> Option<ProgressFn> {
    if quiet {
        return None;
    }
    let started = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    Some(Arc::new(move |e: &Event| {
        let id = |d: &whittle_layer::Digest| d.hex().chars().take(12).collect::<String>();
        match e {
            Event::Resolved { reference, digest } => eprintln!("{reference}: {digest}"),
            Event::BlobExists { digest, size } => {
                eprintln!("{}: already exists ({})", id(digest), human_size(*size))
            }
            Event::BlobStart { digest, size } => {
                if let Ok(mut s) = started.lock() {
                    s.insert(digest.clone(), Instant::now());
                }
                eprintln!("{}: {verb} {}", id(digest), human_size(*size));
            }
            Event::BlobDone { digest, size } => {
                let secs = started
                    .lock()
                    .ok()
                    .and_then(|s| s.get(digest).map(|t| t.elapsed().as_secs_f64()))
                    .unwrap_or(0.0);
                let rate = if secs > 0.0 {
                    format!(", {}/s", human_size((*size as f64 / secs) as u64))
                } else {
                    String::new()
                };
                eprintln!("{}: done ({:.1}s{rate})", id(digest), secs);
            }
            Event::BlobMounted { digest, from } => eprintln!("{}: mounted from {from}", id(digest)),
            Event::ManifestPushed { reference, digest } => {
                eprintln!("{reference}: pushed {digest}")
            }
        }
    }))
}
