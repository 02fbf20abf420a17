//! Rootless mode: an ordinary user's whittle runs in a user namespace of its own, where it is
//! root over the user's own id and subordinate ids, so every other part of whittle (the store's
//! snapshots, extraction with owners, the runtime's namespaces and overlay mounts) works as it
//! does for root.
//!
//! ```text
//! whittle (uid 1000, one thread, first thing in main)
//!   ├─ fork ──► child (still in the host's user namespace): waits for "unshared"
//!   ├─ unshare(CLONE_NEWUSER); tell the child
//!   │            child: newuidmap PID 0 1000 1 1 100000 65536; newgidmap ... (setuid helpers
//!   │                   check /etc/subuid and /etc/subgid); reports; exits
//!   ├─ without subordinate ids or the helpers: writes its own single-id map (0 → 1000)
//!   └─ goes on as uid 0 in the namespace: same pid, terminal, signals and exit status
//! ```
//!
//! The process enters itself rather than re-executing a child in the namespace: nothing sits
//! between the user's shell and whittle (Ctrl-C, exit codes and the terminal are untouched), and
//! the containers the runtime makes later are simply created inside this namespace.
//!
//! What changes inside the namespace is small and local: overlay is mounted with `userxattr`
//! (trusted xattrs belong to the host's root), so opaque directories are `user.overlay.opaque`
//! ([`in_user_namespace`] tells); the minimal `/dev` binds the host's device nodes instead of
//! creating them; a single-id map cannot set supplementary groups. `docs/rootless.md` has the
//! whole picture.

mod enter;
pub mod subid;

pub use enter::{current, enter, Entered, Mapping, RootlessError};

/// Whether the effective user is root (of the namespace the process is in): then there is no
/// namespace to enter.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether this process runs in a user namespace other than the host's (whittle's own rootless
/// namespace, or a container's): then only `user.*` xattrs can carry overlay's metadata, and
/// overlay must be mounted with `userxattr`. Read once from `/proc/self/uid_map`.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_map(&m))
    })
}

/// The host's own user namespace maps every id to itself: `0 0 4294967295`.
fn is_initial_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_identity_of_every_id_is_the_host() {
        assert!(super::is_initial_map("         0          0 4294967295\n"));
        assert!(!super::is_initial_map("0 1000 1\n1 100000 65536\n"));
        assert!(!super::is_initial_map("0 0 65536\n"));
        assert!(!super::is_initial_map(""));
    }
}
