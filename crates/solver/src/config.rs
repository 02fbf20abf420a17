//! The image config (OCI, with Docker's extensions `Healthcheck`, `Shell`, `OnBuild`) made by
//! applying a build graph's config changes, and its history, written the way BuildKit writes
//! them.

use serde_json::{json, Value};
use whittle_graph::{ConfigChange, Platform};

/// The PATH BuildKit sets for Linux images that have none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// RFC 3339 for a Unix time (UTC), without pulling in a date crate.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// A fresh config for `FROM scratch`.
pub fn scratch(platform: &Platform) -> Value {
    let mut v = json!({
        "architecture": platform.arch,
        "os": platform.os,
        // BuildKit's empty image: PATH, and "/" as the working directory.
        "config": {"Env": [format!("PATH={DEFAULT_PATH}")], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if let Some(var) = &platform.variant {
        v["variant"] = json!(var);
    }
    v
}

/// Makes sure `doc` is an object with a `config` object.
fn ensure_config(doc: &mut Value) {
    if !doc.is_object() {
        *doc = json!({});
    }
    if !doc["config"].is_object() {
        doc["config"] = json!({});
    }
}

/// Applies one change of the build graph to the config. History entries are applied by the
/// caller, which knows whether their layer is empty (see [`push_history`]).
pub fn apply(doc: &mut Value, change: &ConfigChange) {
    if let ConfigChange::Author { name } = change {
        doc["author"] = json!(name);
        return;
    }
    ensure_config(doc);
    let Some(c) = doc.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    let object = |c: &mut serde_json::Map<String, Value>, k: &str| {
        let e = c.entry(k).or_insert_with(|| json!({}));
        if !e.is_object() {
            *e = json!({});
        }
    };
    match change {
        ConfigChange::ClearOnBuild => {
            c.remove("OnBuild");
        }
        ConfigChange::Env { vars } => {
            let mut env: Vec<(String, String)> = c
                .get("Env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|kv| match kv.split_once('=') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            None => (kv.to_string(), String::new()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in vars {
                match env.iter_mut().find(|(ek, _)| ek == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => env.push((k.clone(), v.clone())),
                }
            }
            c.insert(
                "Env".into(),
                json!(env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()),
            );
        }
        ConfigChange::Labels { labels } => {
            object(c, "Labels");
            for (k, v) in labels {
                c["Labels"][k] = json!(v);
            }
        }
        ConfigChange::WorkingDir { path } => {
            c.insert("WorkingDir".into(), json!(path));
        }
        ConfigChange::User { user } => {
            c.insert("User".into(), json!(user));
        }
        ConfigChange::ExposedPorts { ports } => {
            object(c, "ExposedPorts");
            for p in ports {
                c["ExposedPorts"][p] = json!({});
            }
        }
        ConfigChange::Volumes { paths } => {
            object(c, "Volumes");
            for p in paths {
                c["Volumes"][p] = json!({});
            }
        }
        ConfigChange::Cmd { args } => {
            c.insert("Cmd".into(), json!(args));
        }
        ConfigChange::Entrypoint { args, reset_cmd } => {
            if args.is_empty() {
                c.insert("Entrypoint".into(), Value::Null);
            } else {
                c.insert("Entrypoint".into(), json!(args));
            }
            if *reset_cmd {
                c.insert("Cmd".into(), Value::Null);
            }
        }
        ConfigChange::Healthcheck { check } => {
            let mut h = json!({"Test": check.test});
            for (k, v) in [
                ("Interval", check.interval),
                ("Timeout", check.timeout),
                ("StartPeriod", check.start_period),
                ("StartInterval", check.start_interval),
            ] {
                if v > 0 {
                    h[k] = json!(v);
                }
            }
            if check.retries > 0 {
                h["Retries"] = json!(check.retries);
            }
            c.insert("Healthcheck".into(), h);
        }
        ConfigChange::StopSignal { signal } => {
            c.insert("StopSignal".into(), json!(signal));
        }
        ConfigChange::Shell { shell } => {
            c.insert("Shell".into(), json!(shell));
        }
        ConfigChange::OnBuild { trigger } => {
            let e = c.entry("OnBuild").or_insert_with(|| json!([]));
            if !e.is_array() {
                *e = json!([]);
            }
            if let Some(a) = e.as_array_mut() {
                a.push(json!(trigger));
            }
        }
        ConfigChange::Author { .. } | ConfigChange::History { .. } => {}
    }
}

/// Appends a history entry.
pub fn push_history(doc: &mut Value, created: &str, created_by: &str, empty_layer: bool) {
    if !doc["history"].is_array() {
        doc["history"] = json!([]);
    }
    let mut h = json!({
        "created": created,
        "created_by": created_by,
        "comment": "buildkit.dockerfile.v0",
    });
    if empty_layer {
        h["empty_layer"] = json!(true);
    }
    if let Some(a) = doc["history"].as_array_mut() {
        a.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn entrypoint_resets_inherited_cmd() {
        let mut d = json!({"config": {"Cmd": ["bash"]}});
        apply(
            &mut d,
            &ConfigChange::Entrypoint {
                args: vec!["/app".into()],
                reset_cmd: true,
            },
        );
        assert_eq!(d["config"]["Cmd"], Value::Null);
        assert_eq!(d["config"]["Entrypoint"], json!(["/app"]));
        let mut d = json!({});
        apply(
            &mut d,
            &ConfigChange::Env {
                vars: vec![("A".into(), "1".into())],
            },
        );
        apply(
            &mut d,
            &ConfigChange::Env {
                vars: vec![("A".into(), "2".into()), ("B".into(), "x".into())],
            },
        );
        assert_eq!(d["config"]["Env"], json!(["A=2", "B=x"]));
        apply(
            &mut d,
            &ConfigChange::ExposedPorts {
                ports: vec!["80/tcp".into(), "53/udp".into()],
            },
        );
        assert_eq!(
            d["config"]["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}})
        );
        apply(
            &mut d,
            &ConfigChange::OnBuild {
                trigger: "RUN x".into(),
            },
        );
        assert_eq!(d["config"]["OnBuild"], json!(["RUN x"]));
        apply(&mut d, &ConfigChange::ClearOnBuild);
        assert_eq!(d["config"].get("OnBuild"), None);
    }
}
