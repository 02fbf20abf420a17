//! What attestations a build asked for: `--sbom`, `--provenance` and `--attest` as buildx
//! spells them.
//!
//! - `--sbom`, `--sbom=true|false|1|0`, `--sbom=KEY=VALUE,...` (`scan-stages=true|false`,
//!   `disabled=true|false`, `generator=IMAGE`, which whittle refuses: it catalogues images
//!   itself);
//! - `--provenance`, `--provenance=true|false|1|0|min|max`, `--provenance=KEY=VALUE,...`
//!   (`mode=min|max`, `version=v1`, `builder-id=URI`, `disabled=true|false`);
//! - `--attest type=sbom|provenance[,KEY=VALUE...]` (repeatable), the long form of both.
//!
//! A later flag for a type replaces an earlier one. Nothing is asked for by default: see
//! `docs/attestations.md` for why.

use crate::error::{AttestError, Result};

/// What to attach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub sbom: Option<SbomRequest>,
    pub provenance: Option<ProvenanceRequest>,
}

/// An SPDX SBOM of each image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SbomRequest {
    /// Also catalogue the other stages the target needs (BuildKit's
    /// `BUILDKIT_SBOM_SCAN_STAGE`).
    pub scan_stages: bool,
    /// Only the stages of these names (`BUILDKIT_SBOM_SCAN_STAGE=x,y`); `None`: all.
    pub stages: Option<Vec<String>>,
}

impl SbomRequest {
    /// Applies BuildKit's build argument `BUILDKIT_SBOM_SCAN_STAGE`: `true`/`1` every needed
    /// stage, `false`/`0` none, else a comma-separated list of stage names.
    pub fn scan_stage_arg(&mut self, value: &str) {
        match value.trim() {
            "true" | "1" => {
                self.scan_stages = true;
                self.stages = None;
            }
            "false" | "0" | "" => {
                self.scan_stages = false;
                self.stages = None;
            }
            list => {
                self.scan_stages = true;
                self.stages = Some(
                    list.split(',')
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty())
                        .collect(),
                );
            }
        }
    }

    /// Whether the stage `label` is catalogued.
    pub fn scans(&self, label: &str) -> bool {
        self.scan_stages
            && self
                .stages
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == label))
    }
}

/// How much provenance says (BuildKit's modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The build's definition without its arguments: the Dockerfile and context digests, the
    /// base images, the builder. What `--provenance` gives, as in buildx.
    #[default]
    Min,
    /// Also the build arguments (values of secret-looking names redacted), labels, target,
    /// secret and ssh ids (never values) and the Dockerfile's steps.
    Max,
}

/// SLSA provenance of each image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvenanceRequest {
    pub mode: Mode,
    /// `builder-id=`: `runDetails.builder.id`.
    pub builder_id: Option<String>,
}

impl Request {
    /// Whether anything is asked for.
    pub fn is_empty(&self) -> bool {
        self.sbom.is_none() && self.provenance.is_none()
    }

    /// The request the flags make, in the order buildx applies them: `--attest` values first,
    /// then `--sbom` and `--provenance`.
    pub fn parse(
        sbom: Option<&str>,
        provenance: Option<&str>,
        attest: &[String],
    ) -> Result<Request> {
        let mut r = Request::default();
        for a in attest {
            let (ty, rest) = split_type(a)?;
            match ty {
                "sbom" => r.sbom = parse_sbom("--attest", a, rest)?,
                "provenance" => r.provenance = parse_provenance("--attest", a, rest)?,
                other => {
                    return Err(flag_err(
                        "--attest",
                        a,
                        format!(
                        "unknown attestation type {other:?} (whittle makes sbom and provenance)"
                    ),
                    ))
                }
            }
        }
        if let Some(v) = sbom {
            r.sbom = parse_sbom("--sbom", v, v)?;
        }
        if let Some(v) = provenance {
            r.provenance = parse_provenance("--provenance", v, v)?;
        }
        Ok(r)
    }
}

fn flag_err(flag: &'static str, value: &str, reason: impl Into<String>) -> AttestError {
    AttestError::Flag {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The `type=` of an `--attest` value, and the value (the other keys are read from it, `type`
/// skipped).
fn split_type(a: &str) -> Result<(&str, &str)> {
    let ty = a
        .split(',')
        .find_map(|part| part.strip_prefix("type="))
        .ok_or_else(|| flag_err("--attest", a, "expected type=sbom or type=provenance"))?;
    Ok((ty, a))
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Key=value pairs; `type=` is skipped (the caller took it).
fn pairs<'a>(flag: &'static str, whole: &str, rest: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    let mut out = Vec::new();
    for part in rest.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| flag_err(flag, whole, format!("expected KEY=VALUE, got {part:?}")))?;
        if k != "type" {
            out.push((k, v));
        }
    }
    Ok(out)
}

fn parse_sbom(flag: &'static str, whole: &str, rest: &str) -> Result<Option<SbomRequest>> {
    if let Some(b) = boolean(rest) {
        return Ok(b.then(SbomRequest::default));
    }
    let mut req = SbomRequest::default();
    for (k, v) in pairs(flag, whole, rest)? {
        match k {
            "disabled" => match boolean(v) {
                Some(true) => return Ok(None),
                Some(false) => {}
                None => return Err(flag_err(flag, whole, "disabled= takes true or false")),
            },
            "scan-stages" | "scan-stage" => {
                req.scan_stages = boolean(v)
                    .ok_or_else(|| flag_err(flag, whole, "scan-stages= takes true or false"))?;
            }
            "generator" => return Err(flag_err(
                flag,
                whole,
                "whittle catalogues the image itself (dpkg, apk, Python, Go, Rust, Java, npm); \
                     it runs no generator image: drop generator=",
            )),
            other => {
                return Err(flag_err(
                    flag,
                    whole,
                    format!("unknown key {other:?} (known: scan-stages, disabled)"),
                ))
            }
        }
    }
    Ok(Some(req))
}

fn parse_provenance(
    flag: &'static str,
    whole: &str,
    rest: &str,
) -> Result<Option<ProvenanceRequest>> {
    if let Some(b) = boolean(rest) {
        return Ok(b.then(ProvenanceRequest::default));
    }
    let mode = |v: &str| match v {
        "min" => Ok(Mode::Min),
        "max" | "full" => Ok(Mode::Max),
        _ => Err(flag_err(flag, whole, "mode= takes min or max")),
    };
    if rest == "min" || rest == "max" {
        return Ok(Some(ProvenanceRequest {
            mode: mode(rest)?,
            builder_id: None,
        }));
    }
    let mut req = ProvenanceRequest::default();
    for (k, v) in pairs(flag, whole, rest)? {
        match k {
            "mode" => req.mode = mode(v)?,
            "disabled" => match boolean(v) {
                Some(true) => return Ok(None),
                Some(false) => {}
                None => return Err(flag_err(flag, whole, "disabled= takes true or false")),
            },
            "version" if v == "v1" => {}
            "version" => {
                return Err(flag_err(
                    flag,
                    whole,
                    "whittle writes SLSA provenance v1 (version=v1), what the issue and current \
                     BuildKit write; v0.2 is not supported",
                ))
            }
            "builder-id" => req.builder_id = Some(v.to_string()),
            other => {
                return Err(flag_err(
                    flag,
                    whole,
                    format!("unknown key {other:?} (known: mode, version, builder-id, disabled)"),
                ))
            }
        }
    }
    Ok(Some(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_scan_stage_argument() {
        let mut r = SbomRequest::default();
        assert!(!r.scans("builder"));
        r.scan_stage_arg("true");
        assert!(r.scans("builder") && r.scans("other"));
        r.scan_stage_arg("builder, deps");
        assert!(r.scans("builder") && r.scans("deps") && !r.scans("other"));
        r.scan_stage_arg("false");
        assert!(!r.scans("builder"));
    }

    fn p(sbom: Option<&str>, prov: Option<&str>, attest: &[&str]) -> Result<Request> {
        let a: Vec<String> = attest.iter().map(|s| s.to_string()).collect();
        Request::parse(sbom, prov, &a)
    }

    #[test]
    fn nothing_by_default() {
        assert!(p(None, None, &[]).unwrap().is_empty());
        assert!(p(Some("false"), Some("0"), &[]).unwrap().is_empty());
        assert!(p(Some("disabled=true"), Some("disabled=true"), &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn shorthands() {
        let r = p(Some("true"), Some("true"), &[]).unwrap();
        assert_eq!(r.sbom, Some(SbomRequest::default()));
        assert_eq!(r.provenance.as_ref().unwrap().mode, Mode::Min);
        let r = p(Some("scan-stages=true"), Some("mode=max,version=v1"), &[]).unwrap();
        assert!(r.sbom.unwrap().scan_stages);
        assert_eq!(r.provenance.unwrap().mode, Mode::Max);
        assert_eq!(
            p(None, Some("max"), &[]).unwrap().provenance.unwrap().mode,
            Mode::Max
        );
    }

    #[test]
    fn attest_long_form_and_later_wins() {
        let r = p(
            None,
            None,
            &[
                "type=sbom",
                "type=provenance,mode=max,builder-id=https://ci/1",
            ],
        )
        .unwrap();
        assert!(r.sbom.is_some());
        let pr = r.provenance.unwrap();
        assert_eq!(pr.mode, Mode::Max);
        assert_eq!(pr.builder_id.as_deref(), Some("https://ci/1"));
        // --provenance after --attest replaces it.
        let r = p(None, Some("false"), &["type=provenance,mode=max"]).unwrap();
        assert!(r.provenance.is_none());
        let r = p(None, None, &["mode=max,type=provenance"]).unwrap();
        assert_eq!(r.provenance.unwrap().mode, Mode::Max);
    }

    #[test]
    fn refusals_say_why() {
        for (s, pr, a, want) in [
            (
                Some("generator=docker/buildkit-syft-scanner"),
                None,
                vec![],
                "generator",
            ),
            (None, Some("mode=huge"), vec![], "min or max"),
            (None, Some("version=v0.2"), vec![], "v0.2"),
            (None, None, vec!["type=vex"], "unknown attestation type"),
            (None, None, vec!["mode=max"], "type=sbom"),
            (Some("colour=red"), None, vec![], "unknown key"),
            (Some("scan-stages"), None, vec![], "KEY=VALUE"),
        ] {
            let e = p(s, pr, &a).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
