//! Helpers shared by the store commands (images, tag, rmi, inspect, history, load, save, prune,
//! fsck): opening the store from `--root`, and human-readable sizes and times.

use anyhow::Context;
use std::path::Path;
use whittle_store::Store;

/// Opens the store at `--root`, else at the default root (`$WHITTLE_ROOT`, `/var/lib/whittle`
/// for root, `$XDG_DATA_HOME/whittle` otherwise). Blobs it knows only as remote (a build
/// cache's layers that a pushed image names) are fetched with the default registry options.
pub fn open(root: Option<&Path>) -> anyhow::Result<Store> {
    open_with(root, whittle_registry::ClientOptions::default())
}

/// [`open`], fetching remote blobs with `client` (a command's `--insecure-registry` and
/// `--certs-dir`).
pub fn open_with(
    root: Option<&Path>,
    client: whittle_registry::ClientOptions,
) -> anyhow::Result<Store> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(whittle_store::default_root);
    let store =
        Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))?;
    Ok(
        store.with_fetcher(std::sync::Arc::new(whittle_registry::RegistryFetcher::new(
            client,
        ))),
    )
}

/// Sizes the way docker prints them (SI units).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v < 10.0 {
        format!("{v:.2}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Parses `10GB`, `512MiB`, `1g`, `300` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => {
            return Err(format!(
                "invalid size unit in {s:?} (use B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    Ok((v * mult) as u64)
}

/// Seconds since 1970 of an RFC 3339 time (`2024-01-02T03:04:05Z`, fractions and offsets ok).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut secs = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = rest
        .strip_prefix('+')
        .map(|o| (1, o))
        .or(rest.strip_prefix('-').map(|o| (-1, o)))
    {
        let (sign, o) = off;
        let oh: i64 = o.get(0..2)?.parse().ok()?;
        let om: i64 = o.get(3..5)?.parse().ok()?;
        secs -= sign * (oh * 3600 + om * 60);
    }
    Some(secs)
}

/// "3 days ago" for an RFC 3339 time.
pub fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let d = now - t;
    let (n, unit) = match d {
        d if d < 60 => return "Less than a minute ago".into(),
        d if d < 3600 => (d / 60, "minute"),
        d if d < 86400 => (d / 3600, "hour"),
        d if d < 86400 * 14 => (d / 86400, "day"),
        d if d < 86400 * 60 => (d / (86400 * 7), "week"),
        d if d < 86400 * 365 * 2 => (d / (86400 * 30), "month"),
        d => (d / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Prints rows under a header in left-aligned columns three spaces apart, as docker does.
pub fn print_table<R: AsRef<[String]>>(header: &[&str], rows: &[R]) {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let all = || std::iter::once(header.as_slice()).chain(rows.iter().map(|r| r.as_ref()));
    let mut widths = vec![0usize; header.len()];
    for r in all() {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in all() {
        let line: Vec<String> = r
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}", w = w))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.50MB");
        assert_eq!(human_size(25_300_000), "25.3MB");
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1g"), Ok(1_000_000_000));
        assert!(parse_size("ten").is_err());
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(1_704_067_200));
        assert_eq!(
            parse_rfc3339("2024-01-01T02:00:00.5+02:00"),
            Some(1_704_067_200)
        );
        assert_eq!(ago(None), "N/A");
    }
}
