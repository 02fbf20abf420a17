//! `--cache-to` and `--cache-from` values, in buildx's `key=value,...` form.

use std::path::PathBuf;
use whittle_layer::Compression;
use whittle_oci::Reference;

/// Which records an export carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The steps that made the final image's layers (and the steps that added nothing on
    /// the way to them): what a rebuild of the same image needs.
    #[default]
    Min,
    /// Every step of every stage the build ran, builder stages included.
    Max,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheToKind {
    /// `type=registry,ref=REF`: an artifact pushed under `REF`.
    Registry(Reference),
    /// `type=local,dest=DIR`: an OCI layout directory.
    Local(PathBuf),
    /// `type=inline`: the config as an annotation of the image's manifest, its layers the
    /// image's own (so `mode=min` only).
    Inline,
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheTo {
    pub kind: CacheToKind,
    pub mode: Mode,
    /// `compression=`: how layers that are not compressed yet are; `None`: as the image's.
    pub compression: Option<Compression>,
    /// `mounts=true`: the contents of the build's cache mounts travel too, each as a layer
    /// (`type=registry` and `type=local` only).
    pub mounts: bool,
}

/// One `--cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheFrom {
    /// `type=registry,ref=REF`, or a bare `REF`: a cache artifact, or an image built with
    /// inline cache.
    Registry(Reference),
    /// `type=local,src=DIR`: an OCI layout written by `type=local,dest=DIR`.
    Local(PathBuf),
}

impl CacheFrom {
    /// How warnings and progress name it: the reference or the directory as given.
    pub fn name(&self) -> String {
        match self {
            CacheFrom::Registry(r) => r.to_string(),
            CacheFrom::Local(d) => d.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {problem}")]
pub struct SpecError {
    pub flag: &'static str,
    pub value: String,
    pub problem: String,
}

fn parts(flag: &'static str, s: &str) -> Result<Vec<(String, String)>, SpecError> {
    s.split(',')
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .ok_or_else(|| SpecError {
                    flag,
                    value: s.into(),
                    problem: format!("{p:?} is not KEY=VALUE"),
                })
        })
        .collect()
}

impl std::str::FromStr for CacheTo {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<CacheTo, SpecError> {
        let err = |problem: String| SpecError {
            flag: "--cache-to",
            value: s.into(),
            problem,
        };
        let mut kind = None;
        let (mut reference, mut dest) = (None, None);
        let mut to = CacheTo {
            kind: CacheToKind::Inline,
            mode: Mode::Min,
            compression: None,
            mounts: false,
        };
        for (k, v) in parts("--cache-to", s)? {
            match k.as_str() {
                "type" => kind = Some(v),
                "ref" => reference = Some(v),
                "dest" => dest = Some(v),
                "mode" => {
                    to.mode = match v.as_str() {
                        "min" => Mode::Min,
                        "max" => Mode::Max,
                        _ => return Err(err(format!("mode={v}: expected min or max"))),
                    }
                }
                "compression" => {
                    to.compression = Some(match v.as_str() {
                        "gzip" => Compression::default(),
                        "zstd" => Compression::Zstd { level: 3 },
                        _ => return Err(err(format!("compression={v}: expected gzip or zstd"))),
                    })
                }
                "mounts" => {
                    to.mounts = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(err(format!("mounts={v}: expected true or false"))),
                    }
                }
                // buildx options that change nothing here.
                "oci-mediatypes" | "image-manifest" | "ignore-error" => {}
                _ => {
                    return Err(err(format!(
                        "unknown option {k:?} (expected type, ref, dest, mode, compression, \
                         mounts)"
                    )))
                }
            }
        }
        to.kind = match kind.as_deref() {
            Some("registry") => {
                let r = reference.ok_or_else(|| err("type=registry needs ref=REF".into()))?;
                CacheToKind::Registry(
                    Reference::parse(&r).map_err(|e| err(format!("ref={r}: {e}")))?,
                )
            }
            Some("local") => CacheToKind::Local(
                dest.ok_or_else(|| err("type=local needs dest=DIR".into()))?
                    .into(),
            ),
            Some("inline") => {
                if to.mode == Mode::Max {
                    return Err(err(
                        "type=inline carries the final image's layers only (mode=min); use \
                         type=registry or type=local for mode=max"
                            .into(),
                    ));
                }
                CacheToKind::Inline
            }
            Some(t) => return Err(err(format!("type={t}: expected registry, local or inline"))),
            None => return Err(err("type= is missing (registry, local or inline)".into())),
        };
        if to.mounts && to.kind == CacheToKind::Inline {
            return Err(err(
                "type=inline carries the image's own layers only; use type=registry or \
                 type=local for mounts=true"
                    .into(),
            ));
        }
        Ok(to)
    }
}

impl std::str::FromStr for CacheFrom {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<CacheFrom, SpecError> {
        let err = |problem: String| SpecError {
            flag: "--cache-from",
            value: s.into(),
            problem,
        };
        if !s.contains('=') {
            // buildx: a bare reference is a registry cache.
            return Reference::parse(s)
                .map(CacheFrom::Registry)
                .map_err(|e| err(e.to_string()));
        }
        let (mut kind, mut reference, mut src) = (None, None, None);
        for (k, v) in parts("--cache-from", s)? {
            match k.as_str() {
                "type" => kind = Some(v),
                "ref" => reference = Some(v),
                "src" => src = Some(v),
                _ => {
                    return Err(err(format!(
                        "unknown option {k:?} (expected type, ref, src)"
                    )))
                }
            }
        }
        match kind.as_deref() {
            Some("registry") => {
                let r = reference.ok_or_else(|| err("type=registry needs ref=REF".into()))?;
                Reference::parse(&r)
                    .map(CacheFrom::Registry)
                    .map_err(|e| err(format!("ref={r}: {e}")))
            }
            Some("local") => Ok(CacheFrom::Local(
                src.ok_or_else(|| err("type=local needs src=DIR".into()))?
                    .into(),
            )),
            Some(t) => Err(err(format!("type={t}: expected registry or local"))),
            None => Err(err("type= is missing (registry or local)".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        let t: CacheTo = "type=registry,ref=127.0.0.1:5000/app:cache,mode=max,compression=zstd"
            .parse()
            .unwrap();
        assert_eq!(t.mode, Mode::Max);
        assert_eq!(t.compression, Some(Compression::Zstd { level: 3 }));
        assert!(matches!(t.kind, CacheToKind::Registry(ref r) if r.repository == "app"));
        let t: CacheTo = "type=local,dest=/tmp/c".parse().unwrap();
        assert_eq!(t.kind, CacheToKind::Local("/tmp/c".into()));
        assert_eq!(t.mode, Mode::Min);
        assert!("type=inline".parse::<CacheTo>().is_ok());
        let t: CacheTo = "type=registry,ref=x,mounts=true".parse().unwrap();
        assert!(t.mounts);
        for bad in [
            "type=inline,mode=max",
            "type=registry",
            "type=local",
            "type=s3,ref=x",
            "type=registry,ref=x,mode=all",
            "ref=x",
            "type=registry,ref=x,colour=red",
            "type=inline,mounts=true",
            "type=registry,ref=x,mounts=yes",
            "nonsense",
        ] {
            assert!(bad.parse::<CacheTo>().is_err(), "{bad}");
        }
        let f: CacheFrom = "127.0.0.1:5000/app:cache".parse().unwrap();
        assert!(matches!(f, CacheFrom::Registry(_)));
        let f: CacheFrom = "type=local,src=/tmp/c".parse().unwrap();
        assert_eq!(f, CacheFrom::Local("/tmp/c".into()));
        assert!("type=local".parse::<CacheFrom>().is_err());
        assert!("type=gha".parse::<CacheFrom>().is_err());
    }
}
