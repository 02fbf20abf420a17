//! SLSA provenance v1 (<https://slsa.dev/spec/v1.1/provenance>) laid out as BuildKit lays it
//! out (`docs/attestations/slsa-definitions.md` of BuildKit: `buildType` its definitions page,
//! `externalParameters.configSource` and `.request`, `internalParameters.builderPlatform`,
//! base images as `pkg:docker/...` resolved dependencies, `buildkit_completeness` and
//! `buildkit_hermetic`), so readers of BuildKit's provenance read whittle's.
//!
//! What whittle adds, and where: the Dockerfile's sha256 in `configSource.digest`; the build
//! context's digest as a resolved dependency named `context` (its digest key is
//! `whittle-merkle-sha256`: whittle's Merkle digest of the files after `.dockerignore`, not a
//! sha256 of any file); `runDetails.builder.version.whittle`; in `mode=max`, the Dockerfile's
//! steps (`runDetails.metadata.whittle_metadata.steps`: stage, line and the instruction's
//! first line as written, never expanded) in place of BuildKit's LLB definition.
//!
//! Never written: `--secret` values (only ids, in `mode=max`), the values of build arguments
//! whose names look secret ([`crate::secrets`]), timestamps other than the build's epoch
//! (`startedOn`/`finishedOn` are `SOURCE_DATE_EPOCH` when one is set, else absent), an
//! invocation id. The same build gives the same bytes.

use crate::request::{Mode, ProvenanceRequest};
use crate::secrets::redact;
use serde_json::{json, Map, Value};
use whittle_oci::{Digest, Platform, Reference};

/// BuildKit's `buildType` for SLSA v1: the page that defines the fields below.
pub const BUILD_TYPE: &str =
    "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md";

/// A base image the build read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// As the Dockerfile names it.
    pub reference: String,
    pub platform: Platform,
    /// The manifest it was pinned to.
    pub manifest: Digest,
}

/// One Dockerfile step (for `mode=max`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub stage: String,
    pub line: usize,
    /// The instruction's first line as written in the Dockerfile.
    pub instruction: String,
}

/// What the build was.
#[derive(Clone, Debug, Default)]
pub struct BuildFacts {
    /// The Dockerfile's path in the context (or its name).
    pub dockerfile: String,
    pub dockerfile_digest: Option<Digest>,
    /// The context's Merkle digest, when a step read the context.
    pub context_digest: Option<Digest>,
    /// `--build-arg`s as given (name, value).
    pub build_args: Vec<(String, String)>,
    /// `--label`s.
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    /// `--secret` ids (values are never given to this module).
    pub secret_ids: Vec<String>,
    /// `--ssh` ids.
    pub ssh_ids: Vec<String>,
    /// The machine's platform.
    pub builder_platform: Option<Platform>,
    /// `SOURCE_DATE_EPOCH`, when set.
    pub epoch: Option<u64>,
    /// Whether a RUN step had a network.
    pub network: bool,
    /// The steps the build ran (mode=max).
    pub steps: Vec<Step>,
}

/// The predicate for one platform's image (compact JSON).
pub fn predicate(req: &ProvenanceRequest, facts: &BuildFacts, materials: &[Material]) -> Vec<u8> {
    let max = req.mode == Mode::Max;
    let mut args = Map::new();
    let mut dropped = false;
    for (k, v) in &facts.build_args {
        if max {
            args.insert(format!("build-arg:{k}"), redact(k, v).into());
        } else {
            dropped = true;
        }
    }
    for (k, v) in &facts.labels {
        if max {
            args.insert(format!("label:{k}"), v.clone().into());
        } else {
            dropped = true;
        }
    }
    if let Some(t) = &facts.target {
        args.insert("target".into(), t.clone().into());
    }
    let mut request = json!({
        "frontend": "dockerfile.v0",
        "locals": [{"name": "context"}, {"name": "dockerfile"}],
    });
    if !args.is_empty() {
        request["args"] = Value::Object(args);
    }
    if max {
        let ids = |v: &[String]| -> Value {
            v.iter()
                .map(|id| json!({"id": id, "optional": false}))
                .collect()
        };
        if !facts.secret_ids.is_empty() {
            request["secrets"] = ids(&facts.secret_ids);
        }
        if !facts.ssh_ids.is_empty() {
            request["ssh"] = ids(&facts.ssh_ids);
        }
    }
    let mut config_source = json!({"path": facts.dockerfile});
    if let Some(d) = &facts.dockerfile_digest {
        config_source["digest"] = json!({"sha256": d.hex()});
    }
    let mut deps: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in materials {
        let uri = match Reference::parse(&m.reference) {
            Ok(r) => crate::statement::purl(&r, Some(&m.platform)),
            Err(_) => m.reference.clone(),
        };
        if seen.insert((uri.clone(), m.manifest.clone())) {
            deps.push(json!({"uri": uri, "digest": {"sha256": m.manifest.hex()}}));
        }
    }
    if let Some(d) = &facts.context_digest {
        deps.push(json!({"name": "context", "digest": {"whittle-merkle-sha256": d.hex()}}));
    }
    let mut internal = json!({});
    if let Some(p) = &facts.builder_platform {
        internal["builderPlatform"] = p.to_string().into();
    }
    let mut metadata = json!({
        "buildkit_completeness": {
            "request": !dropped,
            // A local context cannot be fetched again by its digest, as in BuildKit.
            "resolvedDependencies": false,
        },
        "buildkit_hermetic": !facts.network,
    });
    if let Some(e) = facts.epoch {
        let t = rfc3339(e);
        metadata["startedOn"] = t.clone().into();
        metadata["finishedOn"] = t.into();
    }
    if max && !facts.steps.is_empty() {
        let steps: Vec<Value> = facts
            .steps
            .iter()
            .map(|s| json!({"stage": s.stage, "line": s.line, "instruction": s.instruction}))
            .collect();
        metadata["whittle_metadata"] = json!({"steps": steps});
    }
    let mut builder = json!({"version": {"whittle": env!("CARGO_PKG_VERSION")}});
    builder["id"] = req.builder_id.clone().unwrap_or_default().into();
    let doc = json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "configSource": config_source,
                "request": request,
            },
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": builder,
            "metadata": metadata,
        },
    });
    doc.to_string().into_bytes()
}

/// `YYYY-MM-DDThh:mm:ssZ` of seconds since 1970 (days to a civil date: Howard Hinnant's
/// algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> BuildFacts {
        BuildFacts {
            dockerfile: "Dockerfile".into(),
            dockerfile_digest: Some(Digest::of_bytes(b"FROM scratch\n")),
            context_digest: Some(Digest::of_bytes(b"ctx")),
            build_args: vec![
                ("VERSION".into(), "1.2".into()),
                ("NPM_TOKEN".into(), "hunter2-very-secret".into()),
            ],
            labels: vec![("team".into(), "a".into())],
            target: Some("app".into()),
            secret_ids: vec!["npmrc".into()],
            ssh_ids: vec!["default".into()],
            builder_platform: Platform::parse("linux/amd64"),
            epoch: Some(1_700_000_000),
            network: true,
            steps: vec![Step {
                stage: "app".into(),
                line: 3,
                instruction: "RUN make".into(),
            }],
        }
    }

    fn materials() -> Vec<Material> {
        vec![Material {
            reference: "golang:1.22".into(),
            platform: Platform::parse("linux/amd64").unwrap(),
            manifest: Digest::of_bytes(b"golang"),
        }]
    }

    #[test]
    fn min_leaves_out_arguments_and_ids() {
        let req = ProvenanceRequest::default();
        let v: Value = serde_json::from_slice(&predicate(&req, &facts(), &materials())).unwrap();
        let r = &v["buildDefinition"]["externalParameters"]["request"];
        assert_eq!(r["args"], json!({"target": "app"}));
        assert!(r.get("secrets").is_none() && r.get("ssh").is_none());
        assert_eq!(
            v["runDetails"]["metadata"]["buildkit_completeness"]["request"],
            false
        );
        assert_eq!(
            v["buildDefinition"]["resolvedDependencies"][0]["uri"],
            "pkg:docker/golang@1.22?platform=linux%2Famd64"
        );
        assert_eq!(
            v["buildDefinition"]["externalParameters"]["configSource"]["digest"]["sha256"],
            Digest::of_bytes(b"FROM scratch\n").hex()
        );
        assert_eq!(
            v["runDetails"]["metadata"]["startedOn"],
            "2023-11-14T22:13:20Z"
        );
        assert!(v["runDetails"]["metadata"]
            .get("whittle_metadata")
            .is_none());
    }

    #[test]
    fn max_has_arguments_with_secret_looking_values_redacted() {
        let req = ProvenanceRequest {
            mode: Mode::Max,
            builder_id: Some("https://ci.example/run/1".into()),
        };
        let bytes = predicate(&req, &facts(), &materials());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let r = &v["buildDefinition"]["externalParameters"]["request"];
        assert_eq!(r["args"]["build-arg:VERSION"], "1.2");
        assert_eq!(r["args"]["build-arg:NPM_TOKEN"], crate::secrets::REDACTED);
        assert_eq!(r["args"]["label:team"], "a");
        assert_eq!(r["secrets"], json!([{"id": "npmrc", "optional": false}]));
        assert_eq!(v["runDetails"]["builder"]["id"], "https://ci.example/run/1");
        assert_eq!(
            v["runDetails"]["metadata"]["whittle_metadata"]["steps"][0]["line"],
            3
        );
        // Deterministic.
        assert_eq!(bytes, predicate(&req, &facts(), &materials()));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
