//! The image config (OCI, with Docker's extensions `Healthcheck`, `Shell`, `OnBuild`) as a
//! stage builds it, and its history, written the way docker/BuildKit write them.

use serde_json::{json, Value};
use whittle_dockerfile::ast::{CmdLine, Healthcheck};
use whittle_dockerfile::plan::{Op, DEFAULT_PATH};
use whittle_dockerfile::Platform;

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

/// The image's environment as (key, value) pairs.
pub fn env(doc: &Value) -> Vec<(String, String)> {
    doc["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn workdir(doc: &Value) -> String {
    match doc["config"]["WorkingDir"].as_str() {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".into(),
    }
}

pub fn user(doc: &Value) -> Option<String> {
    doc["config"]["User"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

fn cmd_vec(c: &CmdLine, shell: &[String]) -> Vec<String> {
    match c {
        CmdLine::Exec(v) => v.clone(),
        CmdLine::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Applies a metadata instruction to the config. Returns false for ops that are not metadata.
/// `inherited_cmd` tells whether CMD still comes from the base image (ENTRYPOINT resets it).
pub fn apply(doc: &mut Value, op: &Op, inherited_cmd: &mut bool) -> bool {
    if let Op::Maintainer { name } = op {
        doc["author"] = json!(name);
        return true;
    }
    ensure_config(doc);
    let Some(c) = doc.get_mut("config").and_then(Value::as_object_mut) else {
        return true;
    };
    match op {
        Op::Env { vars } => {
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
        Op::Label { labels } => {
            let l = c.entry("Labels").or_insert_with(|| json!({}));
            if !l.is_object() {
                *l = json!({});
            }
            for (k, v) in labels {
                l[k] = json!(v);
            }
        }
        Op::Workdir { path } => {
            c.insert("WorkingDir".into(), json!(path));
        }
        Op::User { user } => {
            c.insert("User".into(), json!(user));
        }
        Op::Expose { ports } => {
            let e = c.entry("ExposedPorts").or_insert_with(|| json!({}));
            if !e.is_object() {
                *e = json!({});
            }
            for p in ports {
                let p = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                e[p] = json!({});
            }
        }
        Op::Volume { paths } => {
            let e = c.entry("Volumes").or_insert_with(|| json!({}));
            if !e.is_object() {
                *e = json!({});
            }
            for p in paths {
                e[p] = json!({});
            }
        }
        Op::Cmd { cmd, shell } => {
            c.insert("Cmd".into(), json!(cmd_vec(cmd, shell)));
            *inherited_cmd = false;
        }
        Op::Entrypoint { cmd, shell } => {
            let v = cmd_vec(cmd, shell);
            if v.is_empty() {
                c.insert("Entrypoint".into(), Value::Null);
            } else {
                c.insert("Entrypoint".into(), json!(v));
            }
            if *inherited_cmd {
                c.insert("Cmd".into(), Value::Null);
            }
        }
        Op::Healthcheck { check, shell: _ } => match check {
            Healthcheck::None => {
                c.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
            }
            Healthcheck::Cmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            } => {
                let t = match test {
                    CmdLine::Exec(v) => std::iter::once("CMD".to_string())
                        .chain(v.iter().cloned())
                        .collect::<Vec<_>>(),
                    CmdLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                };
                let mut h = json!({"Test": t});
                for (k, v) in [
                    ("Interval", interval),
                    ("Timeout", timeout),
                    ("StartPeriod", start_period),
                    ("StartInterval", start_interval),
                ] {
                    if *v > 0 {
                        h[k] = json!(v);
                    }
                }
                if *retries > 0 {
                    h["Retries"] = json!(retries);
                }
                c.insert("Healthcheck".into(), h);
            }
        },
        Op::Stopsignal { signal } => {
            c.insert("StopSignal".into(), json!(signal));
        }
        Op::Shell { shell } => {
            c.insert("Shell".into(), json!(shell));
        }
        Op::Onbuild { trigger } => {
            let e = c.entry("OnBuild").or_insert_with(|| json!([]));
            if !e.is_array() {
                *e = json!([]);
            }
            if let Some(a) = e.as_array_mut() {
                a.push(json!(trigger));
            }
        }
        Op::Maintainer { .. } | Op::Arg { .. } => {}
        Op::Run { .. } | Op::Copy(_) | Op::Add(_) => return false,
    }
    true
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
        let mut inherited = true;
        apply(
            &mut d,
            &Op::Entrypoint {
                cmd: CmdLine::Exec(vec!["/app".into()]),
                shell: vec![],
            },
            &mut inherited,
        );
        assert_eq!(d["config"]["Cmd"], Value::Null);
        assert_eq!(d["config"]["Entrypoint"], json!(["/app"]));
        let mut d = json!({});
        let mut inherited = true;
        apply(
            &mut d,
            &Op::Env {
                vars: vec![("A".into(), "1".into())],
            },
            &mut inherited,
        );
        apply(
            &mut d,
            &Op::Env {
                vars: vec![("A".into(), "2".into()), ("B".into(), "x".into())],
            },
            &mut inherited,
        );
        assert_eq!(d["config"]["Env"], json!(["A=2", "B=x"]));
        apply(
            &mut d,
            &Op::Expose {
                ports: vec!["80".into(), "53/UDP".into()],
            },
            &mut inherited,
        );
        assert_eq!(
            d["config"]["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}})
        );
    }
}
