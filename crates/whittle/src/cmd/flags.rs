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
    /// The compression level: gzip 0-9, zstd 1-22 (default 3). gzip's default is 4 for the
    /// layers a build makes (fast, while you wait) and 7 for layers stored uncompressed when
    /// they leave (once per layer, remembered; as small as docker's pushes, 2.5-4% smaller
    /// than 4).
    #[arg(long = "compression-level", value_name = "N", requires = "compression")]
    pub compression_level: Option<i32>,
}

/// gzip's level for layers stored uncompressed (a base loaded from a docker archive) when they
/// are pushed or written into an OCI archive: compressed once and remembered, so the bytes
/// matter more than the seconds. docker pushes at Go's default, 6, with lazy matching. Our
/// deflate is zlib-rs, which has zlib-ng's levels: 3 to 6 are its "medium" strategy and only 7
/// to 9 match lazily, so at 6 the distroless-like base (glibc, gconv modules, tzdata) went out
/// 1.8% larger than BuildKit's (5,690,594 vs 5,591,125 bytes; the gconv modules' blocks 3-7%
/// larger). At 7 it is 5,600,525 (+0.2%) and the Go toolchain layer 0.6% smaller than Go's
/// (127.0 vs 127.9 MB), at about two thirds of level 6's speed on compressible data (45 vs 70
/// MB/s a core on that layer; incompressible blocks are stored at either level). At 4 a Go
/// toolchain image went out 3.5% larger than BuildKit's (bench/push-bytes.sh).
const STORED_GZIP_LEVEL: u32 = 7;

impl CompressionArgs {
    /// The compression for layers stored uncompressed when they leave the machine: as
    /// [`CompressionArgs::compression`], but gzip without a level is
    /// [`STORED_GZIP_LEVEL`].
    pub fn stored(&self) -> anyhow::Result<whittle_layer::Compression> {
        use whittle_layer::Compression;
        let c = self.compression()?;
        let default_level = self.compression_level.is_none()
            && matches!(self.compression, None | Some(CompressionKind::Gzip));
        Ok(match c {
            Compression::Gzip { .. } if default_level => Compression::Gzip {
                level: STORED_GZIP_LEVEL,
            },
            other => other,
        })
    }

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

#[cfg(test)]
mod compression_tests {
    use super::*;
    use whittle_layer::Compression;

    #[test]
    fn stored_layers_leave_at_level_7_unless_a_level_is_given() {
        let args = |kind, level| CompressionArgs {
            compression: kind,
            compression_level: level,
        };
        let both = |a: CompressionArgs| (a.compression().unwrap(), a.stored().unwrap());
        let gz = |level| Compression::Gzip { level };
        assert_eq!(both(args(None, None)), (gz(4), gz(7)));
        assert_eq!(
            both(args(Some(CompressionKind::Gzip), None)),
            (gz(4), gz(7))
        );
        // A level given is used as it is, 6 included (zlib-rs's 6, not docker's).
        assert_eq!(
            both(args(Some(CompressionKind::Gzip), Some(6))),
            (gz(6), gz(6))
        );
        assert_eq!(
            both(args(Some(CompressionKind::Gzip), Some(9))),
            (gz(9), gz(9))
        );
        let z = Compression::Zstd { level: 3 };
        assert_eq!(both(args(Some(CompressionKind::Zstd), None)), (z, z));
        assert_eq!(
            both(args(Some(CompressionKind::Uncompressed), None)),
            (Compression::None, Compression::None)
        );
    }
}
