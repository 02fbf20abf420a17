//! Entering the rootless user namespace (see the module docs of `rootless`).

use super::subid;
use crate::doctor::{Host, RealHost};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Why the user namespace could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The kernel (a sysctl, AppArmor, a seccomp profile) refused a new user namespace.
    #[error("cannot create a user namespace: {0}")]
    Unshare(#[source] std::io::Error),
    /// Forking the id-mapping helper failed (or the process already has threads).
    #[error("cannot start the id mapper: {0}")]
    Fork(#[source] std::io::Error),
    /// Neither the subordinate ids nor the user's own id could be mapped.
    #[error("cannot map ids into the user namespace: {0}")]
    Map(String),
}

/// How ids are mapped in the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// 0 is the user; 1 and up are the subordinate ids: `uids`/`gids` ids in all.
    Subordinate { uids: u64, gids: u64 },
    /// Only 0, the user's own id (and group): `why` says why no subordinate ids are mapped.
    SingleId { why: String },
}

/// The namespace this process entered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entered {
    /// The user's id and group on the host.
    pub uid: u32,
    pub gid: u32,
    pub mapping: Mapping,
}

impl Entered {
    /// What a single-id mapping limits, for the CLI to say once; `None` with subordinate ids.
    pub fn note(&self) -> Option<String> {
        match &self.mapping {
            Mapping::Subordinate { .. } => None,
            Mapping::SingleId { why } => Some(format!(
                "rootless with your own id only ({why}): files of base images and RUN steps \
                 that belong to other users or groups cannot be created, so such images do not \
                 unpack and `apt-get install`, `chown` and `useradd` in RUN fail"
            )),
        }
    }
}

static ENTERED: std::sync::OnceLock<Entered> = std::sync::OnceLock::new();

/// The namespace [`enter`] entered, if it did.
pub fn current() -> Option<&'static Entered> {
    ENTERED.get()
}

/// What the mapper child reports: whether each of its two maps was written.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct MapReport {
    uid: Option<String>,
    gid: Option<String>,
}

/// Moves this (single-threaded, non-root) process into a new user namespace as its root, with
/// the user's subordinate ids mapped when `/etc/subuid`, `/etc/subgid` and the setuid
/// `newuidmap`/`newgidmap` allow, else the user's own id alone. Call it before any thread
/// starts: the kernel refuses `unshare(CLONE_NEWUSER)` to a multi-threaded process.
pub fn enter() -> Result<&'static Entered, RootlessError> {
    if let Some(e) = ENTERED.get() {
        return Ok(e);
    }
    let host = RealHost;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let (_, name) = host.user();
    let subuids = subid::ranges(
        &host.read("/etc/subuid").unwrap_or_default(),
        uid,
        name.as_deref(),
    );
    let subgids = subid::ranges(
        &host.read("/etc/subgid").unwrap_or_default(),
        uid,
        name.as_deref(),
    );
    let helpers = (host.which("newuidmap"), host.which("newgidmap"));
    let plan = match (&helpers, subuids.is_empty() || subgids.is_empty()) {
        (_, true) => Err(format!(
            "{} has no subordinate ids in /etc/subuid and /etc/subgid",
            name.as_deref()
                .map_or_else(|| uid.to_string(), str::to_string)
        )),
        ((Some(u), Some(g)), false) => Ok((u.clone(), g.clone())),
        _ => Err("newuidmap and newgidmap are not installed".to_string()),
    };
    let report = match plan {
        Ok((newuidmap, newgidmap)) => {
            let mapper = Mapper {
                newuidmap,
                newgidmap,
                uid_args: subid::map_args(uid, &subuids),
                gid_args: subid::map_args(gid, &subgids),
            };
            unshare_mapped_by(&mapper)?
        }
        Err(why) => {
            crate::sys::unshare_user_namespace().map_err(RootlessError::Unshare)?;
            MapReport {
                uid: Some(why.clone()),
                gid: Some(why),
            }
        }
    };
    let mapping = match (&report.uid, &report.gid) {
        (None, None) => Mapping::Subordinate {
            uids: 1 + subid::total(&subuids),
            gids: 1 + subid::total(&subgids),
        },
        (why_u, why_g) => {
            // Write what the mapper did not: an unprivileged process may map its own ids (the
            // group only once setgroups is denied, which a single-id map needs anyway).
            if why_u.is_some() {
                write_map("uid_map", &format!("0 {uid} 1\n"))?;
            }
            if why_g.is_some() {
                write_map("setgroups", "deny")?;
                write_map("gid_map", &format!("0 {gid} 1\n"))?;
            }
            Mapping::SingleId {
                why: why_u.clone().or_else(|| why_g.clone()).unwrap_or_default(),
            }
        }
    };
    Ok(ENTERED.get_or_init(|| Entered { uid, gid, mapping }))
}

fn write_map(file: &str, text: &str) -> Result<(), RootlessError> {
    std::fs::write(format!("/proc/self/{file}"), text)
        .map_err(|e| RootlessError::Map(format!("write /proc/self/{file} ({text:?}): {e}")))
}

struct Mapper {
    newuidmap: PathBuf,
    newgidmap: PathBuf,
    uid_args: Vec<String>,
    gid_args: Vec<String>,
}

/// Forks a child that stays in the host's namespace, unshares, and has the child run the
/// setuid mappers on us (they refuse to act from inside the namespace they map).
fn unshare_mapped_by(m: &Mapper) -> Result<MapReport, RootlessError> {
    use rustix::pipe::{pipe_with, PipeFlags};
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let fork_err = |e: rustix::io::Errno| RootlessError::Fork(e.into());
    let (go_r, go_w) = pipe_with(PipeFlags::CLOEXEC).map_err(fork_err)?;
    let (res_r, res_w) = pipe_with(PipeFlags::CLOEXEC).map_err(fork_err)?;
    let child = crate::sys::fork_single_threaded().map_err(RootlessError::Fork)?;
    if child == 0 {
        drop(go_w);
        drop(res_r);
        let mut b = [0u8; 1];
        // EOF: the parent could not unshare (or died); nothing to map.
        let go = rustix::io::read(&go_r, &mut b).is_ok_and(|n| n == 1);
        let report = if go {
            MapReport {
                uid: run_mapper(&m.newuidmap, pid, &m.uid_args).err(),
                gid: run_mapper(&m.newgidmap, pid, &m.gid_args).err(),
            }
        } else {
            MapReport::default()
        };
        let mut out = std::fs::File::from(res_w);
        let _ = out.write_all(&serde_json::to_vec(&report).unwrap_or_default());
        drop(out);
        crate::sys::exit_now(0);
    }
    drop(go_r);
    drop(res_w);
    let unshared = crate::sys::unshare_user_namespace();
    if unshared.is_ok() {
        let _ = rustix::io::write(&go_w, b"g");
    }
    drop(go_w);
    let mut buf = Vec::new();
    let read = std::fs::File::from(res_r).read_to_end(&mut buf);
    let _ = crate::sys::wait_child(child);
    unshared.map_err(RootlessError::Unshare)?;
    read.map_err(|e| RootlessError::Map(format!("read the mapper's report: {e}")))?;
    serde_json::from_slice(&buf)
        .map_err(|e| RootlessError::Map(format!("the mapper's report: {e}")))
}

/// Runs `newuidmap PID ARGS...`; its own message when it fails.
fn run_mapper(tool: &std::path::Path, pid: i32, args: &[String]) -> Result<(), String> {
    let out = std::process::Command::new(tool)
        .arg(pid.to_string())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{} {} failed: {}",
        tool.display(),
        args.join(" "),
        said.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_id_map_says_what_it_limits() {
        let e = Entered {
            uid: 1000,
            gid: 1000,
            mapping: Mapping::SingleId {
                why: "alice has no subordinate ids in /etc/subuid and /etc/subgid".into(),
            },
        };
        let note = e.note().unwrap_or_default();
        assert!(note.contains("alice has no subordinate ids"), "{note}");
        assert!(note.contains("apt-get install"), "{note}");
        let sub = Entered {
            mapping: Mapping::Subordinate {
                uids: 65537,
                gids: 65537,
            },
            ..e
        };
        assert_eq!(sub.note(), None);
    }
}
