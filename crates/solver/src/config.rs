//! The image config (`whittle_oci::ImageConfig`: OCI, with Docker's extensions `Healthcheck`,
//! `Shell`, `OnBuild`, and whatever else the base image's config holds) made by applying a
//! build graph's config changes, and its history, written the way BuildKit writes them.

use serde_json::json;
use whittle_graph::{ConfigChange, Platform};
use whittle_oci::{ContainerConfig, Field, Healthcheck, History, ImageConfig, RootFs};

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
pub fn scratch(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: Field::Set(platform.arch.clone()),
        os: Field::Set(platform.os.clone()),
        variant: platform.variant.clone().into(),
        // BuildKit's empty image: PATH, and "/" as the working directory.
        config: Field::Set(ContainerConfig {
            env: Field::Set(vec![format!("PATH={DEFAULT_PATH}")]),
            working_dir: Field::Set("/".into()),
            ..ContainerConfig::default()
        }),
        rootfs: Field::Set(RootFs {
            kind: Field::Set("layers".into()),
            diff_ids: Field::Set(Vec::new()),
            ..RootFs::default()
        }),
        history: Field::Set(Vec::new()),
        ..ImageConfig::default()
    }
}

/// A Docker duration (nanoseconds, an `int64` in Go) from the graph's.
fn nanos(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Applies one change of the build graph to the config. History entries are applied by the
/// caller, which knows whether their layer is empty (see [`push_history`]).
///
/// Every change but `Author` makes sure there is a `config` object (an absent or `null` one
/// becomes `{}`), as BuildKit's image config always has one.
pub fn apply(cfg: &mut ImageConfig, change: &ConfigChange) {
    if let ConfigChange::Author { name } = change {
        cfg.author = Field::Set(name.clone());
        return;
    }
    let c = cfg.config.get_or_default();
    match change {
        ConfigChange::ClearOnBuild => c.on_build = Field::Absent,
        ConfigChange::Env { vars } => {
            let mut env: Vec<(String, String)> = c
                .env
                .get()
                .map(|a| {
                    a.iter()
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
            c.env = Field::Set(env.iter().map(|(k, v)| format!("{k}={v}")).collect());
        }
        ConfigChange::Labels { labels } => {
            let l = c.labels.get_or_default();
            for (k, v) in labels {
                l.insert(k.clone(), v.clone());
            }
        }
        ConfigChange::WorkingDir { path } => c.working_dir = Field::Set(path.clone()),
        ConfigChange::User { user } => c.user = Field::Set(user.clone()),
        ConfigChange::ExposedPorts { ports } => {
            let e = c.exposed_ports.get_or_default();
            for p in ports {
                e.insert(p.clone(), json!({}));
            }
        }
        ConfigChange::Volumes { paths } => {
            let v = c.volumes.get_or_default();
            for p in paths {
                v.insert(p.clone(), json!({}));
            }
        }
        ConfigChange::Cmd { args } => c.cmd = Field::Set(args.clone()),
        ConfigChange::Entrypoint { args, reset_cmd } => {
            c.entrypoint = if args.is_empty() {
                Field::Null
            } else {
                Field::Set(args.clone())
            };
            if *reset_cmd {
                c.cmd = Field::Null;
            }
        }
        ConfigChange::Healthcheck { check } => {
            let positive = |v: u64| {
                if v > 0 {
                    Field::Set(nanos(v))
                } else {
                    Field::Absent
                }
            };
            c.healthcheck = Field::Set(Healthcheck {
                test: Field::Set(check.test.clone()),
                interval: positive(check.interval),
                timeout: positive(check.timeout),
                start_period: positive(check.start_period),
                start_interval: positive(check.start_interval),
                retries: positive(u64::from(check.retries)),
                ..Healthcheck::default()
            });
        }
        ConfigChange::StopSignal { signal } => c.stop_signal = Field::Set(signal.clone()),
        ConfigChange::Shell { shell } => c.shell = Field::Set(shell.clone()),
        ConfigChange::OnBuild { trigger } => c.on_build.get_or_default().push(trigger.clone()),
        ConfigChange::Author { .. } | ConfigChange::History { .. } => {}
    }
}

/// Appends a history entry.
pub fn push_history(cfg: &mut ImageConfig, created: &str, created_by: &str, empty_layer: bool) {
    cfg.history.get_or_default().push(History {
        created: Field::Set(created.to_string()),
        created_by: Field::Set(created_by.to_string()),
        comment: Field::Set("buildkit.dockerfile.v0".to_string()),
        empty_layer: if empty_layer {
            Field::Set(true)
        } else {
            Field::Absent
        },
        ..History::default()
    });
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
        let cmd = |d: &ImageConfig| d.container().map(|c| c.cmd.clone());
        let mut d: ImageConfig =
            serde_json::from_value(json!({"config": {"Cmd": ["bash"]}})).unwrap();
        apply(
            &mut d,
            &ConfigChange::Entrypoint {
                args: vec!["/app".into()],
                reset_cmd: true,
            },
        );
        assert_eq!(cmd(&d), Some(Field::Null));
        let c = |d: &ImageConfig| serde_json::to_value(d).unwrap()["config"].clone();
        assert_eq!(c(&d)["Cmd"], serde_json::Value::Null);
        assert_eq!(c(&d)["Entrypoint"], json!(["/app"]));
        let mut d = ImageConfig::default();
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
        assert_eq!(c(&d)["Env"], json!(["A=2", "B=x"]));
        apply(
            &mut d,
            &ConfigChange::ExposedPorts {
                ports: vec!["80/tcp".into(), "53/udp".into()],
            },
        );
        assert_eq!(c(&d)["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        apply(
            &mut d,
            &ConfigChange::OnBuild {
                trigger: "RUN x".into(),
            },
        );
        assert_eq!(c(&d)["OnBuild"], json!(["RUN x"]));
        apply(&mut d, &ConfigChange::ClearOnBuild);
        assert_eq!(c(&d).get("OnBuild"), None);
    }
}
