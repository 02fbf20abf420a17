//! `RUN --mount=...` specifications (BuildKit's `commands_runmount.go`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A fully parsed, expanded mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Where it appears in the container (defaults filled in for secret and ssh).
    pub target: String,
    /// Path inside `from` (bind, cache) or the secret file path default.
    pub source: Option<String>,
    /// A stage name/index or image the bind/cache content comes from.
    pub from: Option<String>,
    pub readonly: bool,
    /// Cache id (defaults to the target), secret id, ssh id.
    pub id: Option<String>,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    pub required: bool,
    /// secret: expose as this environment variable instead of (or as well as) a file.
    pub env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError {
    pub message: String,
    pub hint: String,
}

fn err(message: impl Into<String>, hint: impl Into<String>) -> MountError {
    MountError {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Splits a CSV record (`a=b,"c=d,e"`): double quotes group, `""` is a literal quote.
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_q = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if in_q {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_q = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            '"' if at_start => in_q = true,
            c => cur.push(c),
        }
        at_start = false;
    }
    if in_q {
        return Err(err(
            format!("unterminated quote in mount specification {s:?}"),
            "close the double quote",
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(err(
            format!("invalid value for {key}: {v}"),
            format!("write {key}=true or {key}=false"),
        )),
    }
}

/// Parses sizes like `64m`, `1g`, `512k`, `1024` (binary multiples, as docker's RAMInBytes).
pub fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..num_end].parse().ok()?;
    let mult: u64 = match t[num_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    let bytes = n * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The literal `from=` value of a mount specification, if it has one (no expansion).
pub fn literal_from(spec: &str) -> Option<String> {
    csv_fields(spec).ok()?.into_iter().find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.trim().eq_ignore_ascii_case("from").then(|| v.to_string())
    })
}

/// Parses one `--mount` value. `expand` expands each value (the planner passes the stage's
/// variables; the parser passes the identity). With `lenient`, values that still contain `$`
/// are not validated (they are checked again after expansion).
pub fn parse(
    spec: &str,
    mut expand: impl FnMut(&str) -> Result<String, String>,
    lenient: bool,
) -> Result<MountSpec, MountError> {
    let mut kind = MountType::Bind;
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut readonly: Option<bool> = None;
    let mut id = None;
    let mut sharing = None;
    let (mut mode, mut uid, mut gid, mut size) = (None, None, None, None);
    let mut required = false;
    let mut env = None;
    let fields = csv_fields(spec)?;
    for f in fields {
        let f = f.trim();
        if f.is_empty() {
            continue;
        }
        let Some((k, raw)) = f.split_once('=') else {
            match f.to_ascii_lowercase().as_str() {
                "readonly" | "ro" => readonly = Some(true),
                "readwrite" | "rw" => readonly = Some(false),
                "required" => required = true,
                _ => {
                    return Err(err(
                        format!("unexpected key '{f}' in '{spec}'"),
                        "mount options are key=value pairs separated by commas",
                    ))
                }
            }
            continue;
        };
        let key = k.trim().to_ascii_lowercase();
        let v = expand(raw).map_err(|e| err(e, "fix the variable reference"))?;
        let unexpanded = lenient && v.contains('$');
        let only = |types: &[MountType]| -> Result<(), MountError> {
            if types.contains(&kind) {
                Ok(())
            } else {
                Err(err(
                    format!("unexpected key '{key}' for mount type '{}'", kind.as_str()),
                    format!(
                        "{key} applies to {} mounts",
                        types
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        match key.as_str() {
            // Options are checked left to right against the type known so far, as BuildKit
            // does: `size=64m,type=tmpfs` is refused, `type=tmpfs,size=64m` is not.
            "type" => {
                kind = match v.as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ if unexpanded => MountType::Bind,
                    _ => {
                        return Err(err(
                            format!("unsupported mount type {v:?}"),
                            "use type=bind, cache, tmpfs, secret or ssh",
                        ))
                    }
                };
            }
            "id" => id = Some(v),
            "source" | "src" => source = Some(v),
            "target" | "dst" | "destination" => target = Some(v),
            "readonly" | "ro" => {
                if !unexpanded {
                    readonly = Some(parse_bool(&key, &v)?);
                }
            }
            "readwrite" | "rw" => {
                if !unexpanded {
                    readonly = Some(!parse_bool(&key, &v)?);
                }
            }
            "required" => {
                only(&[MountType::Secret, MountType::Ssh])?;
                if !unexpanded {
                    required = parse_bool(&key, &v)?;
                }
            }
            "sharing" => {
                only(&[MountType::Cache])?;
                sharing = match v.as_str() {
                    "shared" => Some(Sharing::Shared),
                    "private" => Some(Sharing::Private),
                    "locked" => Some(Sharing::Locked),
                    _ if unexpanded => None,
                    _ => {
                        return Err(err(
                            format!("unsupported sharing value {v:?}"),
                            "use sharing=shared, private or locked",
                        ))
                    }
                };
            }
            "from" => {
                only(&[MountType::Bind, MountType::Cache])?;
                from = Some(v);
            }
            "mode" => {
                only(&[MountType::Cache, MountType::Secret, MountType::Ssh])?;
                if !unexpanded {
                    mode = Some(
                        u32::from_str_radix(&v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| {
                                err(
                                    format!("invalid value {v} for mode"),
                                    "give an octal mode such as mode=0755",
                                )
                            })?,
                    );
                }
            }
            "uid" | "gid" => {
                only(&[MountType::Cache, MountType::Secret, MountType::Ssh])?;
                if !unexpanded {
                    let n = v.parse::<u32>().map_err(|_| {
                        err(
                            format!("invalid value {v} for {key}"),
                            format!("give a numeric {key} such as {key}=1000"),
                        )
                    })?;
                    if key == "uid" {
                        uid = Some(n);
                    } else {
                        gid = Some(n);
                    }
                }
            }
            "size" => {
                only(&[MountType::Tmpfs])?;
                if !unexpanded {
                    size = Some(parse_size(&v).ok_or_else(|| {
                        err(
                            format!("invalid value {v} for size"),
                            "give a size such as size=64m",
                        )
                    })?);
                }
            }
            "env" => {
                only(&[MountType::Secret])?;
                env = Some(v);
            }
            _ => {
                return Err(err(
                    format!("unexpected key '{key}' for mount type '{}'", kind.as_str()),
                    "see the RUN --mount reference for the keys of each mount type",
                ))
            }
        }
    }
    let target = match (kind, target) {
        (_, Some(t)) if !t.is_empty() => t,
        (MountType::Secret, _) => {
            let sid = id.clone().or_else(|| source.clone()).unwrap_or_default();
            if sid.is_empty() {
                return Err(err(
                    "secret mount requires an id, a source or a target",
                    "write --mount=type=secret,id=mysecret",
                ));
            }
            if env.is_some() {
                String::new()
            } else {
                format!("/run/secrets/{sid}")
            }
        }
        (MountType::Ssh, _) => "/run/buildkit/ssh_agent.0".to_string(),
        (k, _) => {
            return Err(err(
                format!("mount type '{}' requires a target", k.as_str()),
                "add target=/path/in/container",
            ))
        }
    };
    let id = match kind {
        MountType::Cache => Some(id.unwrap_or_else(|| target.clone())),
        MountType::Secret => id.or_else(|| {
            source
                .as_deref()
                .or(Some(target.as_str()))
                .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        }),
        MountType::Ssh => Some(id.unwrap_or_else(|| "default".into())),
        _ => id,
    };
    let readonly = readonly.unwrap_or(matches!(
        kind,
        MountType::Bind | MountType::Secret | MountType::Ssh
    ));
    Ok(MountSpec {
        kind,
        target,
        source,
        from,
        readonly,
        id,
        sharing: sharing.unwrap_or(Sharing::Shared),
        mode,
        uid,
        gid,
        size,
        required,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<MountSpec, MountError> {
        parse(s, |v| Ok(v.to_string()), false)
    }

    #[test]
    fn defaults() {
        let m = p("target=/src").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        let m = p("type=cache,target=/root/.cache").unwrap();
        assert_eq!(m.id.as_deref(), Some("/root/.cache"));
        assert!(!m.readonly);
        assert_eq!(m.sharing, Sharing::Shared);
        let m = p("type=secret,id=npmrc").unwrap();
        assert_eq!(m.target, "/run/secrets/npmrc");
        let m = p("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = p("type=ssh").unwrap();
        assert_eq!(m.id.as_deref(), Some("default"));
        let m = p("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = p("type=bind,from=builder,source=/out,target=/in,rw").unwrap();
        assert!(!m.readonly);
        let m = p("type=cache,target=/c,sharing=locked,mode=0700,uid=1000,gid=1000").unwrap();
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o700), Some(1000), Some(1000))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            p("type=nfs,target=/x").unwrap_err().message,
            "unsupported mount type \"nfs\""
        );
        assert!(p("type=cache").is_err());
        assert!(p("type=cache,target=/x,sharing=maybe").is_err());
        assert!(p("type=tmpfs,target=/x,from=a").is_err());
        assert!(p("type=bind,target=/x,size=1m").is_err());
        assert!(p("type=cache,target=/x,mode=999").is_err());
        assert!(p("target=/x,bogus").is_err());
        assert!(p("target=/x,ro=maybe").is_err());
        assert!(p("\"target=/x").is_err());
    }

    #[test]
    fn options_apply_to_the_type_known_so_far() {
        assert_eq!(
            p("size=64m,type=tmpfs,target=/t").unwrap_err().message,
            "unexpected key 'size' for mount type 'bind'"
        );
        assert!(p("type=tmpfs,size=64m,target=/t").is_ok());
        assert_eq!(
            literal_from("type=bind,from=$X,target=/x").as_deref(),
            Some("$X")
        );
    }

    #[test]
    fn quoted_fields() {
        let m = p("\"target=/a,b\",type=tmpfs").unwrap();
        assert_eq!(m.target, "/a,b");
    }
}
