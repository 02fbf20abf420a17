//! `--ci`: dive's three CI rules with dive's names, defaults, value syntax and messages.
//!
//! | rule | default | fails when |
//! |---|---|---|
//! | `lowestEfficiency` | `0.9` | efficiency < value |
//! | `highestWastedBytes` | `disabled` | wasted bytes > value (`20MB`, `1.5GiB`, `1000`: go-humanize's syntax) |
//! | `highestUserWastedPercent` | `0.1` | wasted bytes / user bytes > value (a ratio, 0..1) |
//!
//! Any rule can be `disabled`. Values come from the defaults, then a `.dive-ci` YAML file
//! (`rules:` mapping), then flags. A value that does not parse or is out of range makes the
//! configuration "misconfigured": no rule is evaluated and the check fails, as in dive.

use crate::error::{AnalyzeError, Result};
use crate::report::Analysis;
use serde::Serialize;

/// The rules' configured values, as strings (dive keeps them as strings too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiRules {
    /// `lowestEfficiency`.
    pub lowest_efficiency: String,
    /// `highestWastedBytes`.
    pub highest_wasted_bytes: String,
    /// `highestUserWastedPercent`.
    pub highest_user_wasted_percent: String,
}

impl Default for CiRules {
    fn default() -> Self {
        CiRules {
            lowest_efficiency: "0.9".into(),
            highest_wasted_bytes: "disabled".into(),
            highest_user_wasted_percent: "0.1".into(),
        }
    }
}

/// Outcome of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Within the threshold.
    Pass,
    /// Threshold broken.
    Fail,
    /// Disabled.
    Skip,
    /// The value does not parse or is out of range.
    Misconfigured,
}

/// One rule's result.
#[derive(Clone, Debug, Serialize)]
pub struct RuleResult {
    /// dive's rule name.
    pub rule: &'static str,
    /// Outcome.
    pub status: RuleStatus,
    /// Why (dive's message), empty on a pass.
    pub message: String,
}

/// All rules' results.
#[derive(Clone, Debug, Serialize)]
pub struct CiReport {
    /// In dive's order (rule names sorted).
    pub results: Vec<RuleResult>,
    /// True when no rule failed and the configuration is valid.
    pub pass: bool,
    /// Some value was invalid (nothing was evaluated).
    pub misconfigured: bool,
}

fn scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl CiRules {
    /// Applies a `.dive-ci` file's `rules:` values over these.
    pub fn apply_dive_ci(&mut self, text: &str) -> Result<()> {
        let doc: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| AnalyzeError::CiConfig(e.to_string()))?;
        let Some(rules) = doc.get("rules") else {
            return Ok(());
        };
        let set = |field: &mut String, key: &str| -> Result<()> {
            if let Some(v) = rules.get(key) {
                *field = scalar(v).ok_or_else(|| {
                    AnalyzeError::CiConfig(format!("rules.{key} must be a number or a string"))
                })?;
            }
            Ok(())
        };
        set(&mut self.lowest_efficiency, "lowestEfficiency")?;
        set(&mut self.highest_wasted_bytes, "highestWastedBytes")?;
        set(
            &mut self.highest_user_wasted_percent,
            "highestUserWastedPercent",
        )?;
        Ok(())
    }

    /// Evaluates the rules against an analysis.
    pub fn evaluate(&self, a: &Analysis) -> CiReport {
        let ratio = |name: &str, v: &str| -> std::result::Result<f64, String> {
            let f: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid config value ('{v}')"))?;
            if !(0.0..=1.0).contains(&f) {
                return Err(format!(
                    "{name} config value is outside allowed range (0-1), given '{v}'"
                ));
            }
            Ok(f)
        };
        let checks: [(&'static str, &String); 3] = [
            (
                "highestUserWastedPercent",
                &self.highest_user_wasted_percent,
            ),
            ("highestWastedBytes", &self.highest_wasted_bytes),
            ("lowestEfficiency", &self.lowest_efficiency),
        ];
        // Validate every enabled rule first; any invalid value stops the evaluation.
        let mut results = Vec::new();
        let mut misconfigured = false;
        for (rule, value) in checks {
            if value.as_str() == "disabled" {
                continue;
            }
            let ok = match rule {
                "highestWastedBytes" => parse_bytes(value).map(|_| ()),
                _ => ratio(rule, value).map(|_| ()),
            };
            if let Err(message) = ok {
                misconfigured = true;
                results.push(RuleResult {
                    rule,
                    status: RuleStatus::Misconfigured,
                    message,
                });
            }
        }
        if misconfigured {
            return CiReport {
                results,
                pass: false,
                misconfigured,
            };
        }
        let img = &a.image;
        for (rule, value) in checks {
            let (status, message) = if value.as_str() == "disabled" {
                (RuleStatus::Skip, "rule disabled".to_string())
            } else {
                match rule {
                    "highestUserWastedPercent" => {
                        let t = ratio(rule, value).unwrap_or(0.0);
                        // NaN (no user bytes, nothing wasted) passes, as in dive.
                        if t < img.user_wasted_percent {
                            (
                                RuleStatus::Fail,
                                format!(
                                    "too many bytes wasted, relative to the user bytes added \
                                     (%-user-wasted-bytes={} > threshold={t})",
                                    img.user_wasted_percent
                                ),
                            )
                        } else {
                            (RuleStatus::Pass, String::new())
                        }
                    }
                    "highestWastedBytes" => {
                        let t = parse_bytes(value).unwrap_or(0);
                        if img.wasted_bytes > t {
                            (
                                RuleStatus::Fail,
                                format!(
                                    "too many bytes wasted (wasted-bytes={} > threshold={t})",
                                    img.wasted_bytes
                                ),
                            )
                        } else {
                            (RuleStatus::Pass, String::new())
                        }
                    }
                    _ => {
                        let t = ratio(rule, value).unwrap_or(0.0);
                        if t > img.efficiency_score {
                            (
                                RuleStatus::Fail,
                                format!(
                                    "image efficiency is too low (efficiency={} < threshold={t})",
                                    img.efficiency_score
                                ),
                            )
                        } else {
                            (RuleStatus::Pass, String::new())
                        }
                    }
                }
            };
            results.push(RuleResult {
                rule,
                status,
                message,
            });
        }
        let pass = !results.iter().any(|r| r.status == RuleStatus::Fail);
        CiReport {
            results,
            pass,
            misconfigured: false,
        }
    }
}

/// Parses a byte count the way go-humanize's `ParseBytes` does (dive's `highestWastedBytes`):
/// a number (`.` and `,` allowed) and an optional unit, case-insensitive: `B`, `kB`/`k` = 1000,
/// `KiB`/`Ki` = 1024, up to `EB`/`EiB`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let digits = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let num: String = s[..digits].chars().filter(|&c| c != ',').collect();
    let f: f64 = num
        .parse()
        .map_err(|_| format!("invalid config value ('{s}'): not a byte size"))?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let m: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        other => {
            return Err(format!(
                "invalid config value ('{s}'): unhandled size name: {other}"
            ))
        }
    };
    let v = f * m;
    if v >= u64::MAX as f64 {
        return Err(format!("invalid config value ('{s}'): too large"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_bytes() {
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("20 MiB"), Ok(20 * 1024 * 1024));
        assert_eq!(parse_bytes("1,000"), Ok(1000));
        assert_eq!(parse_bytes("1.5k"), Ok(1500));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("twenty").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn dive_ci_file() {
        let mut r = CiRules::default();
        r.apply_dive_ci(
            "rules:\n  # fail below 95%\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: disabled\n",
        )
        .unwrap();
        assert_eq!(r.lowest_efficiency, "0.95");
        assert_eq!(r.highest_wasted_bytes, "20MB");
        assert_eq!(r.highest_user_wasted_percent, "disabled");
        assert!(r.apply_dive_ci("rules: [1, 2").is_err());
        let mut d = CiRules::default();
        d.apply_dive_ci("other: 1\n").unwrap();
        assert_eq!(d, CiRules::default());
    }
}
