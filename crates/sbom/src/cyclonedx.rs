//! CycloneDX 1.5 JSON (<https://cyclonedx.org/docs/1.5/json/>): the image as the metadata's
//! `container` component, every package a `library` component with its purl, licenses, where
//! it was found and what it installed (`evidence.occurrences`), and its layer (properties
//! `whittle:layer:index`, `whittle:layer:diff-id`, `whittle:layer:digest`). Deterministic: the
//! timestamp is the image's creation time and the serial number derives from the image id.

use crate::license::{classify, License};
use crate::spdx::{image_key, timestamp};
use crate::Sbom;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A UUID for the image: the first 16 bytes of SHA-256 over a fixed prefix and the image id,
/// with the version and variant bits of a name-based UUID (the schema wants versions 1 to 5).
pub fn serial_number(sbom: &Sbom) -> String {
    let mut b = Sha256::digest(format!("whittle-sbom/cyclonedx\0{}", image_key(sbom)).as_bytes())
        [..16]
        .to_vec();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Writes the CycloneDX 1.5 JSON document.
pub fn to_json(sbom: &Sbom) -> Value {
    let components: Vec<Value> = sbom
        .packages
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut c = json!({
                "bom-ref": format!("{}-{n}", p.purl),
                "type": "library",
                "name": p.name,
                "version": p.version,
                "purl": p.purl,
            });
            if let Some(l) = p.license.as_deref() {
                c["licenses"] = json!([match classify(l) {
                    License::Id(id) => json!({"license": {"id": id}}),
                    License::Expression(e) => json!({"expression": e}),
                    License::Text(t) => json!({"license": {"name": t}}),
                }]);
            }
            let mut props = vec![
                json!({"name": "whittle:package:kind", "value": p.kind.as_str()}),
                json!({"name": "whittle:layer:index", "value": p.layer.to_string()}),
            ];
            if let Some(l) = sbom.layers.get(p.layer) {
                if let Some(d) = &l.diff_id {
                    props.push(json!({"name": "whittle:layer:diff-id", "value": d}));
                }
                if let Some(d) = &l.digest {
                    props.push(json!({"name": "whittle:layer:digest", "value": d}));
                }
            }
            c["properties"] = Value::Array(props);
            let occurrences: Vec<Value> = p
                .locations
                .iter()
                .chain(&p.files)
                .map(|f| json!({"location": f}))
                .collect();
            c["evidence"] = json!({"occurrences": occurrences});
            c
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(sbom),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(sbom.created.as_deref()),
            "tools": {"components": [{
                "type": "application",
                "name": "whittle",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "bom-ref": "image",
                "type": "container",
                "name": sbom.name,
                "version": sbom.image_id.clone().unwrap_or_default(),
            },
        },
        "components": components,
    })
}
