//! `--ssh`: ssh agents for `RUN --mount=type=ssh`, forwarded into the step, never stored.
//!
//! - [`SshAgents`] holds the agents a build may use, by id: an existing agent's socket
//!   (`--ssh default` is `$SSH_AUTH_SOCK`), or a private `ssh-agent` started for the build and
//!   loaded with the given key files (`--ssh deploy=~/.ssh/id_ed25519`), stopped when dropped.
//! - [`AgentProxy`] is what a step sees: a new socket, with the mount's uid, gid and mode, that
//!   relays each connection to the agent. The agent's own socket is never bind-mounted, so a
//!   step cannot chmod, replace or remove it on the host.
//!
//! Nothing of an agent reaches a layer or a cache key: the socket lives outside the rootfs,
//! and the mount target is removed from the layer like every mount point.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many connections relayed at once per step; more are closed. An ssh client
/// opens one; the bound keeps a hostile step from making threads without end.
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("--ssh {0}: SSH_AUTH_SOCK is not set, so there is no agent to forward: start one (eval $(ssh-agent) && ssh-add) or name a socket or key, e.g. --ssh {0}=$HOME/.ssh/id_ed25519")]
    NoAgent(String),
    #[error("--ssh {spec}: {path} {why}")]
    BadPath {
        spec: String,
        path: PathBuf,
        why: String,
    },
    #[error("--ssh {0:?}: expected default, ID, or ID=SOCKET|KEY[,KEY...]")]
    Syntax(String),
    #[error("--ssh {0}: given twice")]
    Duplicate(String),
    #[error("--ssh {spec}: cannot start ssh-agent for the keys ({reason}); install openssh-client, or forward a running agent with --ssh {id}=$SSH_AUTH_SOCK")]
    AgentStart {
        spec: String,
        id: String,
        reason: String,
    },
    #[error("--ssh {spec}: ssh-add could not load the keys: {reason} (a key with a passphrase must be added to a running agent first, then forwarded with --ssh {id})")]
    AddKeys {
        spec: String,
        id: String,
        reason: String,
    },
    #[error("cannot make the ssh agent socket for the step: {0}")]
    Proxy(#[source] io::Error),
}

/// One `--ssh` value, parsed: `default`, `ID` (both: `$SSH_AUTH_SOCK`), or `ID=PATH[,PATH...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSpec {
    pub id: String,
    pub paths: Vec<PathBuf>,
    /// The value as given, for messages.
    pub text: String,
}

impl std::str::FromStr for SshSpec {
    type Err = SshError;
    fn from_str(s: &str) -> Result<Self, SshError> {
        let (id, paths) = match s.split_once('=') {
            Some((id, p)) => (id, p.split(',').map(PathBuf::from).collect::<Vec<_>>()),
            None => (s, Vec::new()),
        };
        let id_ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !id_ok || paths.iter().any(|p| p.as_os_str().is_empty()) {
            return Err(SshError::Syntax(s.to_string()));
        }
        Ok(SshSpec {
            id: id.to_string(),
            paths,
            text: s.to_string(),
        })
    }
}

/// The agents of one build, by id.
#[derive(Default)]
pub struct SshAgents {
    sockets: HashMap<String, PathBuf>,
    /// Private agents started for key files; killed when dropped.
    _started: Vec<KeyAgent>,
}

impl SshAgents {
    /// Resolves each spec to an agent socket, starting an agent for key files.
    pub fn start(specs: &[SshSpec]) -> Result<Self, SshError> {
        let mut out = SshAgents::default();
        for spec in specs {
            if out.sockets.contains_key(&spec.id) {
                return Err(SshError::Duplicate(spec.id.clone()));
            }
            let socket = match spec.paths.as_slice() {
                [] => match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                    Some(s) => checked_socket(spec, PathBuf::from(s))?,
                    None => return Err(SshError::NoAgent(spec.id.clone())),
                },
                [one] if is_socket(one) => one.clone(),
                keys => {
                    for k in keys {
                        let md = std::fs::metadata(k).map_err(|e| SshError::BadPath {
                            spec: spec.text.clone(),
                            path: k.clone(),
                            why: format!("cannot be read ({e})"),
                        })?;
                        if !md.is_file() {
                            return Err(SshError::BadPath {
                                spec: spec.text.clone(),
                                path: k.clone(),
                                why: "is neither an agent socket nor a key file".into(),
                            });
                        }
                    }
                    let agent = KeyAgent::start(spec, keys)?;
                    let s = agent.socket.clone();
                    out._started.push(agent);
                    s
                }
            };
            out.sockets.insert(spec.id.clone(), socket);
        }
        Ok(out)
    }

    /// The agent sockets by id, as [`crate::BuildOptions::ssh`] takes them.
    pub fn sockets(&self) -> HashMap<String, PathBuf> {
        self.sockets.clone()
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn checked_socket(spec: &SshSpec, p: PathBuf) -> Result<PathBuf, SshError> {
    if is_socket(&p) {
        Ok(p)
    } else {
        Err(SshError::BadPath {
            spec: spec.text.clone(),
            path: p,
            why: "(SSH_AUTH_SOCK) is not a socket: is the agent still running?".into(),
        })
    }
}

/// A private `ssh-agent` holding key files, for the length of a build.
struct KeyAgent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyAgent {
    fn start(spec: &SshSpec, keys: &[PathBuf]) -> Result<Self, SshError> {
        let start_err = |reason: String| SshError::AgentStart {
            spec: spec.text.clone(),
            id: spec.id.clone(),
            reason,
        };
        let dir = tempfile::Builder::new()
            .prefix("whittle-ssh-")
            .tempdir()
            .map_err(|e| start_err(e.to_string()))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| start_err(e.to_string()))?;
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| start_err(format!("ssh-agent: {e}")))?;
        let mut agent = KeyAgent {
            child,
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_socket(&agent.socket) {
            if let Ok(Some(status)) = agent.child.try_wait() {
                return Err(start_err(format!("ssh-agent exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(start_err("ssh-agent made no socket within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = Command::new("ssh-add")
            .args(["-q", "--"])
            .args(keys)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| start_err(format!("ssh-add: {e}")))?;
        if !out.status.success() {
            return Err(SshError::AddKeys {
                spec: spec.text.clone(),
                id: spec.id.clone(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(agent)
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socket for one step that relays every connection to an agent.
pub struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl AgentProxy {
    /// Listens on a new socket owned by `uid:gid` with `mode`, relaying to `agent`.
    pub fn start(agent: &Path, uid: u32, gid: u32, mode: u32) -> Result<Self, SshError> {
        let dir = tempfile::Builder::new()
            .prefix("whittle-ssh-")
            .tempdir()
            .map_err(SshError::Proxy)?;
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).map_err(SshError::Proxy)?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(SshError::Proxy)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(SshError::Proxy)?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ssh-agent-proxy".into())
            .spawn(move || serve(&listener, &agent, &stopping))
            .map_err(SshError::Proxy)?;
        Ok(AgentProxy {
            path,
            stop,
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// The socket to mount into the step.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &UnixListener, agent: &Path, stop: &AtomicBool) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: closed
        }
        let Ok(upstream) = UnixStream::connect(agent) else {
            continue;
        };
        open.fetch_add(1, Ordering::SeqCst);
        let open = open.clone();
        let spawned = std::thread::Builder::new()
            .name("ssh-agent-relay".into())
            .spawn(move || {
                relay(client, upstream);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The closure (and with it the counter decrement) was dropped unrun.
            continue;
        }
    }
}

/// Copies both ways until either side closes.
fn relay(client: UnixStream, upstream: UnixStream) {
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Both);
    });
    let (mut c, mut u) = (client, upstream);
    let _ = io::copy(&mut c, &mut u);
    let _ = u.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn specs() {
        let s: SshSpec = "default".parse().unwrap();
        assert_eq!((s.id.as_str(), s.paths.len()), ("default", 0));
        let s: SshSpec = "deploy=/k1,/k2".parse().unwrap();
        assert_eq!(s.paths, [PathBuf::from("/k1"), PathBuf::from("/k2")]);
        for bad in ["", "=x", "a b", "id=", "id=a,,b"] {
            assert!(bad.parse::<SshSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_relays_to_the_agent_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up.sock");
        let l = UnixListener::bind(&up).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        });
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let p = AgentProxy::start(&up, uid, gid, 0o600).unwrap();
        let md = std::fs::metadata(p.path()).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let mut c = UnixStream::connect(p.path()).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        echo.join().unwrap();
        let path = p.path().to_path_buf();
        drop(p);
        assert!(UnixStream::connect(&path).is_err());
    }

    #[test]
    fn a_missing_key_file_is_named() {
        let s: SshSpec = "k=/nonexistent/key".parse().unwrap();
        let e = SshAgents::start(&[s]).err().unwrap().to_string();
        assert!(e.contains("/nonexistent/key cannot be read"), "{e}");
    }
}
