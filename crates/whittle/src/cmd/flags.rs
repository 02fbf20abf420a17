//! Flag values shared by several commands, typed so that clap refuses what is not one of them
//! (with the list of what is) instead of a command matching strings by hand.

/// `--network` of `build` (for RUN steps) and `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// An isolated network namespace with outbound access through slirp4netns or pasta (the
    /// host's network, with a warning, when neither is installed).
    Default,
    /// Loopback only.
    None,
    /// The host's network, loopback services included.
    Host,
}

/// `build --progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, else `plain`.
    Auto,
    /// One line per event.
    Plain,
    /// A live view of the running steps.
    Tty,
    /// Nothing but the image id.
    Quiet,
    /// One JSON event per line.
    Rawjson,
}

/// `build --on-failure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFailure {
    /// Report the failure.
    Error,
    /// First open an interactive shell in the failed step's container.
    Shell,
}
