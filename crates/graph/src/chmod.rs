//! `--chmod` values: octal, or symbolic as chmod(1) writes them (`u+x,go-w`).

/// `--chmod`: octal (up to 4 digits) or symbolic (`u+x,g-w,o=r`, `a+X`).
pub fn valid_chmod(v: &str) -> bool {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return v.len() <= 4 && u32::from_str_radix(v, 8).is_ok();
    }
    !v.is_empty()
        && v.split(',').all(|clause| {
            let who_len = clause.len() - clause.trim_start_matches(['u', 'g', 'o', 'a']).len();
            let rest = &clause[who_len..];
            let mut chars = rest.chars();
            let mut any_op = false;
            let mut cur = chars.clone();
            while let Some(op) = cur.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return false;
                }
                any_op = true;
                let perms: String = cur
                    .clone()
                    .take_while(|c| !matches!(c, '+' | '-' | '='))
                    .collect();
                let ok = perms.chars().all(|c| "rwxXst".contains(c))
                    || (perms.len() == 1 && "ugo".contains(perms.as_str()));
                if !ok {
                    return false;
                }
                for _ in 0..perms.chars().count() {
                    cur.next();
                }
            }
            let _ = chars.next();
            any_op
        })
}
