//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>): a document describing the image
//! as a package that CONTAINS every package found. Each package carries its purl (an external
//! reference), its declared license (an SPDX expression, else a `LicenseRef-` with the text in
//! `hasExtractedLicensingInfos`), where it was found (`sourceInfo`) and its layer (`comment`:
//! index and diff id). Deterministic: `created` is the image's creation time, the namespace
//! derives from the image id, and the order is the [`Sbom`]'s.

use crate::license::{classify, License};
use crate::Sbom;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The creation time as SPDX and CycloneDX want it (`YYYY-MM-DDThh:mm:ssZ`): the image's
/// `created` to the second when it is in UTC, else the Unix epoch (so output stays
/// reproducible).
pub fn timestamp(created: Option<&str>) -> String {
    let epoch = "1970-01-01T00:00:00Z".to_string();
    let Some(c) = created else { return epoch };
    let b = c.as_bytes();
    let shape = b.len() >= 20
        && b[..19].iter().enumerate().all(|(i, ch)| match i {
            4 | 7 => *ch == b'-',
            10 => *ch == b'T',
            13 | 16 => *ch == b':',
            _ => ch.is_ascii_digit(),
        });
    let utc = c.ends_with('Z') && (b[19] == b'Z' || b[19] == b'.');
    if shape && utc {
        format!("{}Z", &c[..19])
    } else {
        epoch
    }
}

/// Hex of the image id, or of the name when there is none.
pub fn image_key(sbom: &Sbom) -> String {
    match &sbom.image_id {
        Some(id) => id.strip_prefix("sha256:").unwrap_or(id).to_string(),
        None => hex::encode(Sha256::digest(sbom.name.as_bytes())),
    }
}

/// Keeps the characters an SPDX id may hold.
fn id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Writes the SPDX 2.3 JSON document.
pub fn to_json(sbom: &Sbom) -> Value {
    let key = image_key(sbom);
    let mut extracted: BTreeMap<String, String> = BTreeMap::new(); // id -> text
    let mut by_text: BTreeMap<String, String> = BTreeMap::new(); // text -> id
    let mut packages = vec![json!({
        "name": sbom.name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": sbom.image_id.clone().unwrap_or_default(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (n, p) in sbom.packages.iter().enumerate() {
        let id = format!(
            "SPDXRef-Package-{}-{}-{n}",
            p.kind.as_str(),
            id_safe(&p.name)
        );
        let declared = match p.license.as_deref().map(classify) {
            None => "NOASSERTION".to_string(),
            Some(License::Id(s)) | Some(License::Expression(s)) => s,
            Some(License::Text(t)) => {
                if let Some(id) = by_text.get(&t) {
                    id.clone()
                } else {
                    let mut lid = format!("LicenseRef-{}", id_safe(&t));
                    if extracted.contains_key(&lid) {
                        lid = format!("{lid}-{}", &hex::encode(Sha256::digest(t.as_bytes()))[..8]);
                    }
                    extracted.insert(lid.clone(), t.clone());
                    by_text.insert(t, lid.clone());
                    lid
                }
            }
        };
        let layer = sbom.layer_digest(p.layer).unwrap_or("unknown");
        let mut comment = format!("layer {}: {layer}", p.layer);
        if !p.files.is_empty() {
            comment.push_str(&format!("; {} files", p.files.len()));
        }
        packages.push(json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("{} package found in layer {} ({layer}) at: {}", p.kind.as_str(), p.layer, p.locations.join(", ")),
            "comment": comment,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl,
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": sbom.name,
        "documentNamespace": format!("https://whittle.invalid/sbom/spdx/{}-{key}", id_safe(&sbom.name)),
        "creationInfo": {
            "created": timestamp(sbom.created.as_deref()),
            "creators": [format!("Tool: whittle-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, text)| json!({"licenseId": id, "extractedText": text}))
            .collect();
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp(Some("2024-05-01T10:11:12.123456789Z")),
            "2024-05-01T10:11:12Z"
        );
        assert_eq!(
            timestamp(Some("2024-05-01T10:11:12Z")),
            "2024-05-01T10:11:12Z"
        );
        assert_eq!(
            timestamp(Some("2024-05-01T10:11:12+02:00")),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(timestamp(Some("junk")), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(None), "1970-01-01T00:00:00Z");
    }
}
