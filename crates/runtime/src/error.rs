//! Typed errors of the runtime.

use std::path::PathBuf;

/// Everything that can go wrong running a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command's executable does not exist in the rootfs (or is not executable).
    #[error("{0}: not found in the image")]
    ExecutableNotFound(String),
    /// The spec is not usable as given.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// `USER` could not be resolved against the image's /etc/passwd and /etc/group.
    #[error("user {user:?}: {reason}")]
    User { user: String, reason: String },
    /// Setting up the container failed inside its namespaces (mounts, credentials, ...).
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The kernel refused to mount the overlay rootfs (in a user namespace, before Linux 5.11;
    /// [`crate::Runtime::run`] then falls back to the copying snapshotter by itself).
    #[error("container setup failed: cannot mount the overlay rootfs: {0}")]
    Overlay(String),
    /// A system call in the calling process failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The external OCI runtime failed before the container ran.
    #[error("OCI runtime {runtime}: {message}")]
    Oci { runtime: PathBuf, message: String },
    /// The spec asks for the isolated network and no user-mode network stack is installed.
    #[error("the isolated network needs slirp4netns or pasta, and neither is installed: apt-get install slirp4netns (or passt)")]
    NoNetworkHelper,
    /// The user-mode network stack (slirp4netns or pasta) failed to set up the network.
    #[error("network helper {helper}: {message}")]
    Network { helper: PathBuf, message: String },
    /// The spec's platform is foreign and this machine cannot emulate it (no binfmt_misc
    /// handler, or one without the F flag): the message names the commands that fix it.
    #[error(transparent)]
    Emulation(#[from] crate::binfmt::EmulationError),
    /// The command is a program of another architecture than the spec's platform (for
    /// example the host's own in an image that says it is arm64): never run in its place.
    #[error(
        "{program} is a linux/{arch} program, but the image is for {platform}: refusing to run \
         it (the image's platform does not match its contents)"
    )]
    ForeignProgram {
        program: String,
        arch: String,
        platform: String,
    },
    /// The run was cancelled; every process of the container was killed.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn sys(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
