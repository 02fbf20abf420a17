//! whittle's container runtime: runs RUN steps and `whittle run` in isolated containers.
//!
//! - [`ContainerSpec`] describes one container (rootfs, command, env, cwd, user, hostname,
//!   network, `RUN --mount`s, tty, stdin, rlimits).
//! - [`Network::Isolated`] gives the container its own network namespace with outbound access
//!   through slirp4netns or pasta (the `net` module), without the host's loopback.
//! - [`Runtime::run`] runs it with the built-in runtime (new mount/pid/uts/ipc/net namespaces,
//!   overlay rootfs mounted inside the container's own mount namespace, Docker-like hardening)
//!   or hands it, as an OCI bundle, to `runc`/`crun` ([`Engine::Oci`]).
//! - A spec with a foreign [`ContainerSpec::platform`] runs only when a binfmt_misc handler
//!   with the F flag emulates it ([`binfmt`]); otherwise [`Runtime::run`] refuses with
//!   [`Error::Emulation`], naming the fix.
//! - Programs that use the runtime must call [`run_init_if_requested`] first thing in `main`:
//!   the container's first process is the program itself re-executed as the init helper (see
//!   the `init` module for why).
//!
//! Needs root, or an ordinary user's process moved into a user namespace of its own by
//! [`rootless::enter`] (`docs/rootless.md`), and Linux 5.12 or later (`openat2`,
//! `mount_setattr`, the new mount API); overlay layers are passed one by one with `lowerdir+`
//! where the kernel has it (6.8), else as one `lowerdir=` string of short links. The seccomp profile is x86_64-only for now: elsewhere
//! containers refuse to start rather than run unfiltered.
//!
//! All of whittle's `unsafe` code lives in this crate (mostly in `sys`), each block with a
//! `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod binfmt;
mod copyfs;
pub mod doctor;
mod error;
mod init;
mod mounts;
pub mod net;
pub mod oci;
pub mod rootless;
mod run;
pub mod seccomp;
mod spec;
mod sys;
mod tty;
pub mod user;

pub use error::{Error, Result};
pub use init::{default_capabilities, MASKED_PATHS, READONLY_PATHS};
pub use net::{NetHelper, NetTool};
pub use run::{wait_for_cleanup, CancelToken, Engine, OutputSink, Runtime, Stream};
pub use spec::{
    ContainerSpec, ExitStatus, Mount, MountKind, Network, Rlimit, RlimitResource, Rootfs, Stdin,
    DEFAULT_PATH_ENV,
};

/// If this process was started as a container's init helper, becomes that container and never
/// returns; otherwise returns at once. Call it first thing in `main` of any binary that uses
/// [`Runtime::new`].
pub fn run_init_if_requested() {
    init::run_if_requested()
}
