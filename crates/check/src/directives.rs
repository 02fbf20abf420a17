//! What the Dockerfile and its neighbours say about which checks to run: BuildKit's
//! `# check=skip=A,B;error=true;experimental=C` parser directive, hadolint's
//! `# hadolint ignore=DL3008,DL3009` comments (before an instruction) and
//! `# hadolint global ignore=...`, and `.hadolint.yaml`'s `ignored:` list.

use crate::source::Source;
use whittle_dockerfile::Dockerfile;

/// The `# check=` directive, parsed as BuildKit's `ParseLintOptions` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    pub error: bool,
    pub experimental_all: bool,
    pub experimental: Vec<String>,
}

impl CheckConfig {
    /// Parses the directive's value (`skip=A,B;error=true`).
    pub fn parse_value(value: &str) -> Result<CheckConfig, String> {
        let mut c = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(c);
        }
        for part in value.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!(
                    "invalid check option {part:?}: write key=value (skip=..., error=..., experimental=...)"
                ));
            };
            let v = v.trim();
            let list =
                |v: &str| -> Vec<String> { v.split(',').map(|r| r.trim().to_string()).collect() };
            match k.trim() {
                "skip" if v == "all" => c.skip_all = true,
                "skip" => c.skip = list(v),
                "experimental" if v == "all" => c.experimental_all = true,
                "experimental" => c.experimental = list(v),
                "error" => {
                    c.error = parse_bool(v).ok_or_else(|| {
                        format!("failed to parse check option {part:?}: error= takes true or false")
                    })?
                }
                other => {
                    return Err(format!(
                    "invalid check option {other:?}: the options are skip, error and experimental"
                ))
                }
            }
        }
        Ok(c)
    }

    /// The directive of `df`, or the `BUILDKIT_DOCKERFILE_CHECK` build arg, which replaces it
    /// as in BuildKit; errors carry the directive's line (0 for the build arg).
    pub(crate) fn parse(
        df: &Dockerfile,
        src: &Source,
        build_args: &[(String, String)],
    ) -> Result<CheckConfig, (usize, String)> {
        if let Some((_, v)) = build_args
            .iter()
            .rev()
            .find(|(k, _)| k == "BUILDKIT_DOCKERFILE_CHECK")
        {
            return CheckConfig::parse_value(v)
                .map_err(|r| (0, format!("--build-arg BUILDKIT_DOCKERFILE_CHECK: {r}")));
        }
        let Some(value) = &df.check else {
            return Ok(CheckConfig::default());
        };
        // BuildKit ignores anything after a space in the value.
        let value = value.split(' ').next().unwrap_or("");
        CheckConfig::parse_value(value).map_err(|reason| {
            let line = (1..=src.line_count())
                .find(|&n| {
                    let l = src.line(n).trim_start();
                    l.starts_with('#') && l.contains("check")
                })
                .unwrap_or(0);
            (line, reason)
        })
    }

    /// Whether the directive skips the rule named `name`.
    pub fn skips(&self, name: &str) -> bool {
        self.skip_all || self.skip.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Whether the directive enables the experimental rule `name`.
    pub fn experimental(&self, name: &str) -> bool {
        self.experimental_all
            || self
                .experimental
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
    }
}

/// strconv.ParseBool's spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `# hadolint ignore=` comments: per instruction (its line range) and global.
#[derive(Debug, Default)]
pub(crate) struct InlineIgnores {
    /// (first line, last line, rule names)
    ranges: Vec<(usize, usize, Vec<String>)>,
    global: Vec<String>,
}

impl InlineIgnores {
    pub fn scan(df: &Dockerfile, src: &Source) -> InlineIgnores {
        let mut out = InlineIgnores::default();
        for n in 1..=src.line_count() {
            if let Some(rules) = hadolint_comment(src.line(n), true) {
                out.global.extend(rules);
            }
        }
        // The parser directives at the top are not comments of the first instruction.
        let directives_end = (1..=src.line_count())
            .take_while(|&n| {
                let l = src.line(n).trim_start();
                l.strip_prefix('#')
                    .and_then(|r| r.split_once('='))
                    .is_some_and(|(k, _)| {
                        matches!(
                            k.trim().to_ascii_lowercase().as_str(),
                            "syntax" | "escape" | "check"
                        )
                    })
            })
            .count();
        for inst in &df.instructions {
            let mut rules = Vec::new();
            let mut n = inst.pos.line;
            // The comment lines directly above the instruction.
            while n > 1 {
                n -= 1;
                let l = src.line(n).trim_start();
                if !l.starts_with('#') {
                    break;
                }
                if let Some(r) = hadolint_comment(l, false) {
                    rules.extend(r);
                }
                // BuildKit merges `# check=skip=...` comments above an instruction into the
                // checks of that instruction. (The parser directive at the top applies to the
                // whole file anyway.)
                if let Some(c) = check_comment(l).filter(|_| n > directives_end) {
                    if c.skip_all {
                        rules.push("all".into());
                    }
                    rules.extend(c.skip);
                }
            }
            if !rules.is_empty() {
                out.ranges
                    .push((inst.pos.line, inst.end_line.max(inst.pos.line), rules));
            }
        }
        out
    }

    pub fn ignores(&self, line: usize, rule: &str, aliases: &[&str]) -> bool {
        let hit = |list: &[String]| {
            list.iter().any(|r| {
                r == "all"
                    || r.eq_ignore_ascii_case(rule)
                    || aliases.iter().any(|a| r.eq_ignore_ascii_case(a))
            })
        };
        // Ranges are in instruction order and do not overlap: the one that may hold `line` is
        // the last that starts at or before it.
        let i = self.ranges.partition_point(|(a, _, _)| *a <= line);
        hit(&self.global)
            || i.checked_sub(1)
                .and_then(|i| self.ranges.get(i))
                .is_some_and(|(a, b, rules)| (*a..=*b).contains(&line) && hit(rules))
    }
}

/// `# check=skip=A,B` as a comment (malformed ones are ignored, as BuildKit does).
fn check_comment(line: &str) -> Option<CheckConfig> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let value = rest.strip_prefix("check")?.trim_start().strip_prefix('=')?;
    CheckConfig::parse_value(value.split(' ').next().unwrap_or("")).ok()
}

/// `# hadolint ignore=DL3008,DL3009` (or `# hadolint global ignore=...` when `global`).
fn hadolint_comment(line: &str, global: bool) -> Option<Vec<String>> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("hadolint")?.trim_start();
    let rest = if global {
        rest.strip_prefix("global")?.trim_start()
    } else {
        rest
    };
    let list = rest
        .strip_prefix("ignore")?
        .trim_start()
        .strip_prefix('=')?;
    let list = list.split_whitespace().next().unwrap_or("");
    let rules: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    (!rules.is_empty()).then_some(rules)
}

/// A `.hadolint.yaml` that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason} (hadolint's config is YAML with an `ignored:` list of rule ids)")]
pub struct HadolintConfigError {
    pub file: String,
    pub reason: String,
}

#[derive(serde::Deserialize)]
struct HadolintYaml {
    #[serde(default)]
    ignored: Vec<String>,
}

/// The `ignored:` list of a `.hadolint.yaml` (other keys are not used).
pub fn hadolint_ignored(text: &str, file: &str) -> Result<Vec<String>, HadolintConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let y: HadolintYaml = serde_norway::from_str(text).map_err(|e| HadolintConfigError {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    Ok(y.ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directive() {
        let c = CheckConfig::parse_value("skip=JSONArgsRecommended, StageNameCasing;error=true")
            .unwrap();
        assert_eq!(c.skip, vec!["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error && !c.skip_all);
        assert!(c.skips("stagenamecasing"));
        assert!(CheckConfig::parse_value("skip=all")
            .unwrap()
            .skips("Anything"));
        assert!(CheckConfig::parse_value("error=maybe").is_err());
        assert!(CheckConfig::parse_value("bogus=1").is_err());
        assert!(CheckConfig::parse_value("skip").is_err());
        let e = CheckConfig::parse_value("experimental=all").unwrap();
        assert!(e.experimental("InvalidDefinitionDescription"));
    }

    #[test]
    fn hadolint_comments() {
        assert_eq!(
            hadolint_comment("# hadolint ignore=DL3008,DL3009", false),
            Some(vec!["DL3008".to_string(), "DL3009".to_string()])
        );
        assert_eq!(
            hadolint_comment("# hadolint global ignore=DL3059", true),
            Some(vec!["DL3059".to_string()])
        );
        assert_eq!(
            hadolint_comment("# hadolint global ignore=DL3059", false),
            None
        );
        assert_eq!(hadolint_comment("# just a comment", false), None);
    }

    #[test]
    fn hadolint_yaml() {
        let y = "failure-threshold: warning\nignored:\n  - DL3008\n  - DL3059\ntrustedRegistries: [docker.io]\n";
        assert_eq!(
            hadolint_ignored(y, ".hadolint.yaml").unwrap(),
            vec!["DL3008", "DL3059"]
        );
        assert!(hadolint_ignored("ignored: [unclosed", ".hadolint.yaml").is_err());
        assert!(hadolint_ignored("", ".hadolint.yaml").unwrap().is_empty());
    }
}
