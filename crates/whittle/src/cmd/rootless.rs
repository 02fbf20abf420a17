//! Rootless mode for the commands that touch the store or run containers: an ordinary user's
//! whittle enters its own user namespace first (`whittle_runtime::rootless`), with the store
//! under `$XDG_DATA_HOME/whittle`. What cannot be done is said with `whittle doctor`'s own
//! sentences.

use std::path::PathBuf;
use whittle_runtime::doctor::{missing_piece, RealHost};
use whittle_runtime::{rootless, Runtime};

/// For a non-root user: fixes the store root (the default is the user's, decided before the
/// process becomes root in its namespace), then enters the namespace. `loud`: say what a
/// single-id mapping limits (commands that unpack images or run containers). Without user
/// namespaces the command goes on unprivileged, as before, after a warning saying why.
/// Must run while the process has one thread.
pub fn enter(root: &mut Option<PathBuf>, loud: bool) {
    if rootless::running_as_root() {
        return;
    }
    root.get_or_insert_with(whittle_store::default_root);
    match rootless::enter() {
        Ok(entered) => {
            if let (Some(note), true) = (entered.note(), loud) {
                eprintln!("note: {note}");
                if let Some(c) = missing_piece(&RealHost, "subids") {
                    eprintln!("note: {}", c.sentence());
                }
            }
        }
        Err(e) => {
            eprintln!("warning: {e}; going on without one (RUN steps and unpacking images fail)");
            if let Some(c) = missing_piece(&RealHost, "userns") {
                eprintln!("warning: {}", c.sentence());
            }
        }
    }
}

/// When a build or run failed with `message` in rootless mode: the doctor's sentence for the
/// missing piece that explains it, if one does.
pub fn explain(message: &str) -> Option<String> {
    let entered = rootless::current()?;
    let id = if message.contains("overlay") {
        "overlay-userns"
    } else if matches!(entered.mapping, rootless::Mapping::SingleId { .. })
        && (message.contains("chown") || message.contains("Invalid argument"))
    {
        "subids"
    } else {
        return None;
    };
    missing_piece(&RealHost, id).map(|c| c.sentence())
}

/// Why RUN steps cannot have the isolated network in rootless mode (the doctor's sentence), if
/// they cannot: the network helper needs `/dev/net/tun`, which root of a user namespace may
/// open only when it is world read-writable.
pub fn no_isolated_network() -> Option<String> {
    rootless::current()?;
    missing_piece(&RealHost, "tun").map(|c| c.sentence())
}

/// `WHITTLE_SNAPSHOTTER=copy` forces the copying snapshotter (to test it, or where overlay
/// misbehaves); otherwise the runtime switches to it by itself when the kernel refuses overlay
/// in the rootless namespace.
pub fn snapshotter(runtime: Runtime) -> Runtime {
    let forced = std::env::var("WHITTLE_SNAPSHOTTER").is_ok_and(|v| v == "copy");
    runtime.copy_rootfs(forced)
}

/// Says once, after the containers ran, that they ran on copies because the kernel refused
/// overlay in the user namespace (not when `WHITTLE_SNAPSHOTTER=copy` asked for it).
pub fn say_if_copied(runtime: &Runtime) {
    if !runtime.copies_rootfs() || std::env::var("WHITTLE_SNAPSHOTTER").is_ok_and(|v| v == "copy") {
        return;
    }
    let why = missing_piece(&RealHost, "overlay-userns").map_or_else(
        || {
            "overlay could not be mounted in the user namespace (the store is on a file system \
             overlay cannot write to, such as overlayfs itself)"
                .to_string()
        },
        |c| c.sentence(),
    );
    eprintln!(
        "note: {why}; containers ran on copies of their layers instead (slower, more disk; the \
         layers are the same)"
    );
}
