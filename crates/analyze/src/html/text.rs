//! Text for the page: HTML escaping of everything that comes from the image (file names,
//! history lines, image names are untrusted: a file named `<script>` must stay text), sizes.

/// `s` escaped for HTML text and for attribute values in double or single quotes. Control
/// characters other than tab and newline are shown as `\u{..}` escapes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` characters (with an ellipsis), then escaped.
pub fn esc_short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return esc(s);
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    esc(&(cut + "…"))
}

/// Bytes for people: `512 B`, `1.5 kB`, `23 MB` (decimal units, as dive and docker print).
pub fn size(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[u])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// A ratio as a percentage, or `n/a` when it is not finite.
pub fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2} %", v * 100.0)
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_stays_text() {
        assert_eq!(
            esc("<img src=x onerror='alert(1)'>&\"\u{1b}"),
            "&lt;img src=x onerror=&#39;alert(1)&#39;&gt;&amp;&quot;\\u{1b}"
        );
        assert_eq!(esc_short("<abcdef>", 4), "&lt;ab…");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.50 kB");
        assert_eq!(size(23_400_000), "23.4 MB");
        assert_eq!(size(u64::MAX), "18447 PB");
        assert_eq!(percent(f64::NAN), "n/a");
    }
}
