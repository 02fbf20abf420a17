//! in-toto statements (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! as BuildKit writes them: `_type`, `predicateType`, `subject`, `predicate`, in that order
//! (in-toto-golang's field order), compact.

use serde_json::{json, Value};
use whittle_oci::attestation::STATEMENT_V1;
use whittle_oci::{Digest, Platform, Reference};

/// What a statement is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    /// Hex of its sha256.
    pub sha256: String,
}

/// The statement's bytes: `predicate` must be JSON (it is written as it is).
pub fn statement(predicate_type: &str, subjects: &[Subject], predicate: &[u8]) -> Vec<u8> {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|s| json!({"name": s.name, "digest": {"sha256": s.sha256}}))
        .collect();
    let mut out = Vec::with_capacity(predicate.len() + 256);
    out.extend_from_slice(b"{\"_type\":");
    out.extend_from_slice(Value::from(STATEMENT_V1).to_string().as_bytes());
    out.extend_from_slice(b",\"predicateType\":");
    out.extend_from_slice(Value::from(predicate_type).to_string().as_bytes());
    out.extend_from_slice(b",\"subject\":");
    out.extend_from_slice(Value::from(subjects).to_string().as_bytes());
    out.extend_from_slice(b",\"predicate\":");
    out.extend_from_slice(predicate);
    out.push(b'}');
    out
}

/// The subjects of an image's statements, as BuildKit names them: one per name the image is
/// given (`-t`), a package URL of that name and the platform, with the image manifest's
/// digest; `_` when it has no name.
pub fn image_subjects(names: &[Reference], platform: &Platform, manifest: &Digest) -> Vec<Subject> {
    let sha256 = manifest.hex().to_string();
    if names.is_empty() {
        return vec![Subject {
            name: "_".into(),
            sha256,
        }];
    }
    let mut out: Vec<Subject> = names
        .iter()
        .map(|r| Subject {
            name: purl(r, Some(platform)),
            sha256: sha256.clone(),
        })
        .collect();
    out.dedup();
    out
}

/// `pkg:docker/NAME@VERSION?platform=OS%2FARCH` (BuildKit's `RefToPURL`: the familiar name,
/// the tag or else the digest).
pub fn purl(r: &Reference, platform: Option<&Platform>) -> String {
    let version = match (&r.tag, &r.digest) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.to_string().replace(':', "%3A"),
        (None, None) => "latest".into(),
    };
    let mut s = format!("pkg:docker/{}@{version}", r.familiar_name());
    if let Some(p) = platform {
        s.push_str("?platform=");
        s.push_str(&p.to_string().replace('/', "%2F"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_subjects() {
        let d = Digest::of_bytes(b"m");
        let p = Platform::parse("linux/arm64").unwrap();
        let names = vec![
            Reference::parse_tag("app:1").unwrap(),
            Reference::parse_tag("localhost:5000/team/app:2").unwrap(),
        ];
        let s = statement(
            "https://spdx.dev/Document",
            &image_subjects(&names, &p, &d),
            b"{\"a\":1}",
        );
        let text = String::from_utf8(s).unwrap();
        assert!(text.starts_with(
            "{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicateType\":\"https://spdx.dev/Document\",\"subject\":["
        ));
        assert!(text.ends_with(",\"predicate\":{\"a\":1}}"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["subject"][0]["name"],
            "pkg:docker/app@1?platform=linux%2Farm64"
        );
        assert_eq!(
            v["subject"][1]["name"],
            "pkg:docker/localhost:5000/team/app@2?platform=linux%2Farm64"
        );
        assert_eq!(v["subject"][0]["digest"]["sha256"], d.hex());
        let unnamed = image_subjects(&[], &p, &d);
        assert_eq!(unnamed[0].name, "_");
    }
}
