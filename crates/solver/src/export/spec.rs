//! `-o` / `--output` values, as buildx reads them: `type=TYPE[,dest=PATH][,name=NAME]`, a bare
//! `DIR` (a local directory), or `-` (a tar of the files on standard output).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use whittle_store::ArchiveFormat;

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Standard output (`dest=-`).
    Stdout,
    /// A file or directory.
    Path(PathBuf),
}

impl Dest {
    fn parse(v: &str) -> Dest {
        if v == "-" {
            Dest::Stdout
        } else {
            Dest::Path(PathBuf::from(v))
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Stdout => f.write_str("standard output"),
            Dest::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One `-o` value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `type=image`: the image stays in the store (under the `-t` names).
    Image,
    /// `type=oci|docker,dest=...`: an image archive.
    Archive {
        format: ArchiveFormat,
        dest: Dest,
        /// The name inside the archive (else the first `-t` name).
        name: Option<String>,
    },
    /// `type=tar,dest=...` or `-o -`: the image's files as one tar.
    Tar(Dest),
    /// `type=local,dest=DIR` or `-o DIR`: the image's files in a directory.
    Local(PathBuf),
    /// `type=registry`: push, to `name=` or else to every `-t` name.
    Registry(Vec<String>),
    /// `type=docker` without `dest` (and `--load`): into a docker daemon, under `name=` or
    /// else every `-t` name.
    Daemon(Option<String>),
}

/// A `-o` value whittle cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("-o {spec:?}: unknown part {part:?} (expected type=..., dest=..., name=...)")]
    UnknownPart { spec: String, part: String },
    #[error("-o {spec:?}: type={kind} needs dest=PATH")]
    NeedsDest { spec: String, kind: &'static str },
    #[error("-o type={0}: use image, registry, oci, docker, tar or local")]
    UnknownType(String),
    #[error("-o {spec:?}: type={kind} writes a directory; dest=- (standard output) is for tar, oci and docker")]
    DirToStdout { spec: String, kind: &'static str },
}

impl OutputSpec {
    /// Whether this output reads the image (manifest, config, blobs) rather than only its
    /// files: a build whose outputs are all files need not compress any layer.
    pub fn needs_image(&self) -> bool {
        !matches!(self, OutputSpec::Local(_) | OutputSpec::Tar(_))
    }

    /// Whether it writes to standard output.
    pub fn to_stdout(&self) -> bool {
        matches!(
            self,
            OutputSpec::Tar(Dest::Stdout)
                | OutputSpec::Archive {
                    dest: Dest::Stdout,
                    ..
                }
        )
    }
}

impl FromStr for OutputSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        if s == "-" {
            return Ok(OutputSpec::Tar(Dest::Stdout));
        }
        if !s.contains('=') {
            return Ok(OutputSpec::Local(PathBuf::from(s)));
        }
        let mut kind = None;
        let mut dest = None;
        let mut name = None;
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v),
                Some(("dest", v)) => dest = Some(Dest::parse(v)),
                Some(("name", v)) => name = Some(v.to_string()),
                _ => {
                    return Err(SpecError::UnknownPart {
                        spec: s.into(),
                        part: part.into(),
                    })
                }
            }
        }
        let need_dest = |kind: &'static str| {
            dest.clone().ok_or_else(|| SpecError::NeedsDest {
                spec: s.into(),
                kind,
            })
        };
        Ok(match kind.unwrap_or("local") {
            "registry" => OutputSpec::Registry(name.into_iter().collect()),
            "image" => OutputSpec::Image,
            "oci" => OutputSpec::Archive {
                format: ArchiveFormat::Oci,
                dest: need_dest("oci")?,
                name,
            },
            // As in buildx: without a destination, the image goes into the docker daemon.
            "docker" if dest.is_none() => OutputSpec::Daemon(name),
            "docker" => OutputSpec::Archive {
                format: ArchiveFormat::Docker,
                dest: need_dest("docker")?,
                name,
            },
            "tar" => OutputSpec::Tar(need_dest("tar")?),
            "local" => match need_dest("local")? {
                Dest::Path(p) => OutputSpec::Local(p),
                Dest::Stdout => {
                    return Err(SpecError::DirToStdout {
                        spec: s.into(),
                        kind: "local",
                    })
                }
            },
            other => return Err(SpecError::UnknownType(other.into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<OutputSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn forms() {
        assert_eq!(p("out").unwrap(), OutputSpec::Local("out".into()));
        assert_eq!(p("-").unwrap(), OutputSpec::Tar(Dest::Stdout));
        assert_eq!(
            p("type=local,dest=d").unwrap(),
            OutputSpec::Local("d".into())
        );
        assert_eq!(p("dest=d").unwrap(), OutputSpec::Local("d".into()));
        assert_eq!(p("type=tar,dest=-").unwrap(), OutputSpec::Tar(Dest::Stdout));
        assert_eq!(
            p("type=oci,dest=a.tar,name=x:1").unwrap(),
            OutputSpec::Archive {
                format: ArchiveFormat::Oci,
                dest: Dest::Path("a.tar".into()),
                name: Some("x:1".into())
            }
        );
        assert_eq!(p("type=docker").unwrap(), OutputSpec::Daemon(None));
        assert_eq!(
            p("type=registry,name=r/x").unwrap(),
            OutputSpec::Registry(vec!["r/x".into()])
        );
        assert_eq!(p("type=image").unwrap(), OutputSpec::Image);
    }

    #[test]
    fn refusals_name_the_value() {
        let e = p("type=oci").unwrap_err().to_string();
        assert!(e.contains("type=oci needs dest=PATH"), "{e}");
        let e = p("type=zip,dest=x").unwrap_err().to_string();
        assert!(e.contains("type=zip"), "{e}");
        let e = p("type=tar,dest=x,compression=gzip")
            .unwrap_err()
            .to_string();
        assert!(e.contains("compression=gzip"), "{e}");
        assert!(matches!(
            p("type=local,dest=-"),
            Err(SpecError::DirToStdout { .. })
        ));
    }

    #[test]
    fn what_needs_an_image() {
        assert!(!p("out").unwrap().needs_image());
        assert!(!p("-").unwrap().needs_image());
        assert!(p("type=oci,dest=x").unwrap().needs_image());
        assert!(p("type=registry").unwrap().needs_image());
        assert!(p("-").unwrap().to_stdout());
        assert!(!p("out").unwrap().to_stdout());
    }
}
