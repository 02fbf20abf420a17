//! The image config: OCI's, with Docker's extensions (`Healthcheck`, `OnBuild`, `Shell`,
//! `ArgsEscaped`, ...), typed, and written back exactly as read.
//!
//! Hand-written rather than `oci_spec::image::ImageConfiguration`: that type drops Docker's
//! extensions and every field it does not know (`container_config`, `Hostname`, `Image`, ...),
//! and turns `null` into absent. whittle copies a base image's config into the image it builds
//! and is compared with BuildKit, which keeps all of them, so here:
//!
//! - every struct keeps the fields it does not know in `extra`, in key order;
//! - every known field is a [`Field`]: absent, `null`, or a value, so an `"Entrypoint": null`
//!   that Docker wrote stays `null` and an empty `"WorkingDir": ""` stays present;
//! - [`ImageConfig::to_json`] writes compact JSON with the keys of every object sorted, which
//!   is what whittle has always written (a `serde_json::Value` with sorted maps), so image ids do
//!   not change. Do not write a config with `serde_json::to_vec` directly: derived
//!   serialisation puts `extra` after the known fields.

use crate::Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// A field of a JSON document as read: absent, `null`, or a value. Every known field of the
/// config types is one, with `#[serde(default, skip_serializing_if = "Field::is_absent")]`,
/// so what was absent stays absent and what was `null` is written as `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the document.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value.
    Set(T),
}

impl<T> Field<T> {
    /// The value, if there is one.
    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The value, mutably, if there is one.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the field is missing from the document (what `skip_serializing_if` asks).
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, made `T::default()` first when absent or `null`.
    pub fn get_or_default(&mut self) -> &mut T
    where
        T: Default,
    {
        if !matches!(self, Field::Set(_)) {
            *self = Field::Set(T::default());
        }
        match self {
            Field::Set(v) => v,
            // Just made Set above.
            _ => unreachable!("a field was set just before"),
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Field::Absent, Field::Set)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            // Absent fields are skipped by `skip_serializing_if`; written anyway, null.
            Field::Null | Field::Absent => s.serialize_unit(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Field::Null, Field::Set))
    }
}

/// An image config (`application/vnd.oci.image.config.v1+json` or Docker's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub created: Field<String>,
    /// Who made it (`MAINTAINER`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub author: Field<String>,
    /// CPU architecture.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub architecture: Field<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub variant: Field<String>,
    /// Operating system.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub os: Field<String>,
    /// What a container of the image runs with.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub config: Field<ContainerConfig>,
    /// The layers' diff ids.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub rootfs: Field<RootFs>,
    /// How the image was made, one entry per step, bottom first.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub history: Field<Vec<History>>,
    /// Fields this type does not know (`container_config`, `docker_version`, `os.version`,
    /// ...), kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `config` object: what a container runs with. Docker's names (`PascalCase`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub user: Field<String>,
    /// `EXPOSE`: `port/proto` keys; the values are `{}` (kept as read).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub exposed_ports: Field<BTreeMap<String, Value>>,
    /// `ENV`, as `NAME=value`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub env: Field<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub entrypoint: Field<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cmd: Field<Vec<String>>,
    /// `VOLUME`: paths as keys; the values are `{}` (kept as read).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub volumes: Field<BTreeMap<String, Value>>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub working_dir: Field<String>,
    /// `LABEL`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub labels: Field<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stop_signal: Field<String>,
    /// Whether `Cmd`/`Entrypoint` are already escaped (Windows).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub args_escaped: Field<bool>,
    /// `HEALTHCHECK` (Docker).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub healthcheck: Field<Healthcheck>,
    /// `ONBUILD` triggers (Docker).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub on_build: Field<Vec<String>>,
    /// `SHELL` (Docker).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub shell: Field<Vec<String>>,
    /// Fields this type does not know (`Hostname`, `Image`, `StopTimeout`, ...), kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HEALTHCHECK`: durations in nanoseconds, as Docker writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub test: Field<Vec<String>>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub interval: Field<i64>,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub timeout: Field<i64>,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub start_period: Field<i64>,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub start_interval: Field<i64>,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub retries: Field<i64>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rootfs`: the layers' diff ids, bottom first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    /// Digests of the uncompressed layers.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub diff_ids: Field<Vec<Digest>>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One step of an image's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub created: Field<String>,
    /// The command that made it.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub created_by: Field<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub author: Field<String>,
    /// A comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub comment: Field<String>,
    /// Whether the step added no layer.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub empty_layer: Field<bool>,
    /// Fields this type does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// Parses a config document.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The config as whittle writes it: compact, the keys of every object sorted (so the bytes,
    /// and the image id, depend only on the content).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        v.sort_all_objects();
        serde_json::to_vec(&v)
    }

    /// `rootfs.diff_ids`, empty when there are none.
    pub fn diff_ids(&self) -> &[Digest] {
        self.rootfs
            .get()
            .and_then(|r| r.diff_ids.get())
            .map_or(&[], Vec::as_slice)
    }

    /// The history, empty when there is none.
    pub fn history(&self) -> &[History] {
        self.history.get().map_or(&[], Vec::as_slice)
    }

    /// The container config, if there is one.
    pub fn container(&self) -> Option<&ContainerConfig> {
        self.config.get()
    }
}

impl History {
    /// Whether the step added no layer (`empty_layer: true`).
    pub fn is_empty_layer(&self) -> bool {
        self.empty_layer.get().copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as a legacy docker build wrote it: nulls, empty strings, Docker's extra fields,
    /// `container_config`, an unknown top-level field, and a key order that is not sorted.
    const DOCKER: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"Env":["PATH=/usr/bin"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3},"ArgsEscaped":true,"Image":"sha256:abc","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"b":"2","a":"1"},"Shell":["/bin/bash","-c"],"StopSignal":"SIGTERM","StopTimeout":10},"container":"c0ffee","container_config":{"Cmd":["/bin/sh","-c","#(nop) CMD [\"sh\"]"]},"created":"2024-01-01T00:00:00.123456789Z","docker_version":"20.10.23","history":[{"created":"2024-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "},{"created":"2024-01-01T00:00:01Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true,"author":"me","comment":"c"},{"created_by":"x","empty_layer":false,"future":1}],"os":"linux","os.version":"","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},"variant":"v8","zzz":{"k":[1,2.5,null]}}"##;

    /// What whittle wrote before the config was typed: the document as a `serde_json::Value`
    /// (sorted maps), compact.
    fn as_value_wrote(s: &str) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(s).unwrap();
        v.sort_all_objects();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn round_trips_a_docker_config() {
        let cfg = ImageConfig::from_slice(DOCKER.as_bytes()).unwrap();
        let out = cfg.to_json().unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            String::from_utf8(as_value_wrote(DOCKER)).unwrap()
        );
        let again = ImageConfig::from_slice(&out).unwrap();
        assert_eq!(again, cfg);
        assert_eq!(again.to_json().unwrap(), out);
    }

    #[test]
    fn keeps_nulls_empties_and_unknown_fields() {
        let cfg = ImageConfig::from_slice(DOCKER.as_bytes()).unwrap();
        let c = cfg.container().unwrap();
        assert_eq!(c.entrypoint, Field::Null);
        assert_eq!(c.volumes, Field::Null);
        assert_eq!(c.working_dir, Field::Set(String::new()));
        assert_eq!(c.args_escaped, Field::Set(true));
        assert_eq!(c.extra["Hostname"], "");
        assert_eq!(c.extra["StopTimeout"], 10);
        let h = c.healthcheck.get().unwrap();
        assert_eq!(h.interval, Field::Set(30_000_000_000));
        assert_eq!(h.timeout, Field::Absent);
        assert!(cfg.extra.contains_key("container_config"));
        assert_eq!(cfg.extra["os.version"], "");
        assert_eq!(cfg.history().len(), 3);
        assert!(cfg.history()[1].is_empty_layer());
        assert_eq!(cfg.history()[2].empty_layer, Field::Set(false));
        assert_eq!(cfg.history()[2].extra["future"], 1);
        assert_eq!(cfg.diff_ids().len(), 1);
        // Absent stays absent.
        assert_eq!(c.on_build, Field::Null);
        assert_eq!(cfg.author, Field::Absent);
        let out = String::from_utf8(cfg.to_json().unwrap()).unwrap();
        assert!(!out.contains("\"author\":null"), "{out}");
        assert!(out.contains("\"Entrypoint\":null"), "{out}");
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut cfg = ImageConfig {
            os: Field::Set("linux".into()),
            architecture: Field::Set("amd64".into()),
            ..ImageConfig::default()
        };
        cfg.extra
            .insert("b-unknown".into(), serde_json::json!({"z": 1, "a": 2}));
        let c = cfg.config.get_or_default();
        c.working_dir = Field::Set("/".into());
        c.env = Field::Set(vec!["PATH=/bin".into()]);
        c.extra.insert("Abc".into(), Value::Bool(true));
        let out = String::from_utf8(cfg.to_json().unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","b-unknown":{"a":2,"z":1},"config":{"Abc":true,"Env":["PATH=/bin"],"WorkingDir":"/"},"os":"linux"}"#
        );
    }

    #[test]
    fn refuses_what_is_not_a_config() {
        assert!(ImageConfig::from_slice(br#"{"config":{"Env":"PATH=/bin"}}"#).is_err());
        assert!(ImageConfig::from_slice(br#"{"rootfs":{"diff_ids":["sha256:zz"]}}"#).is_err());
        assert!(ImageConfig::from_slice(b"[]").is_err());
        assert_eq!(
            ImageConfig::from_slice(b"{}").unwrap().to_json().unwrap(),
            b"{}"
        );
    }
}
