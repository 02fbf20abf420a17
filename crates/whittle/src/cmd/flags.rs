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

/// `--compression` of `build` and `push`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionKind {
    Gzip,
    Zstd,
    Uncompressed,
}

/// How layers are compressed, as buildx's `compression=` and `compression-level=` options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CompressionArgs {
    /// Layer compression: gzip (the default), zstd or uncompressed. For the layers a build
    /// makes, and for layers stored uncompressed (a base loaded from a docker archive) when
    /// the image is pushed or written as an OCI archive; compressed layers go as they are.
    #[arg(long, value_enum, value_name = "gzip|zstd|uncompressed")]
    pub compression: Option<CompressionKind>,
    /// The compression level: gzip 0-9 (default 4), zstd 1-22 (default 3).
    #[arg(long = "compression-level", value_name = "N", requires = "compression")]
    pub compression_level: Option<i32>,
}

impl CompressionArgs {
    pub fn compression(&self) -> anyhow::Result<whittle_layer::Compression> {
        use whittle_layer::Compression;
        let level = self.compression_level;
        Ok(match self.compression {
            None => Compression::default(),
            Some(CompressionKind::Uncompressed) => {
                if level.is_some() {
                    anyhow::bail!("--compression-level: uncompressed layers have no level");
                }
                Compression::None
            }
            Some(CompressionKind::Gzip) => match level {
                None => Compression::default(),
                Some(l @ 0..=9) => Compression::Gzip { level: l as u32 },
                Some(l) => anyhow::bail!("--compression-level {l}: gzip levels are 0 to 9"),
            },
            Some(CompressionKind::Zstd) => match level {
                None => Compression::Zstd { level: 3 },
                Some(l @ 1..=22) => Compression::Zstd { level: l },
                Some(l) => anyhow::bail!("--compression-level {l}: zstd levels are 1 to 22"),
            },
        })
    }
}
