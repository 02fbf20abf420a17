//! Paths inside an image, as keys: the components of a normalised path joined by NUL bytes.
//!
//! NUL sorts below every other byte, so sorting keys bytewise visits a tree depth first with the
//! children of each directory in name order: the order dive walks its trees in (Go's
//! `sort.Strings` on the names of each directory's children), and a directory's descendants form
//! one contiguous range that starts right after it (see [`subtree_end`]). A tar name cannot hold
//! a NUL byte, and PAX names that do are refused, so the encoding is unambiguous.

/// The separator of key components.
pub const SEP: u8 = 0;

/// Why an entry's name cannot be turned into a key.
#[derive(Debug, PartialEq, Eq)]
pub enum PathProblem {
    /// Longer than the limit, in bytes.
    TooLong(usize),
    /// Holds a NUL byte (only possible through a PAX record).
    Nul,
}

/// Normalises a tar entry name the way dive does (`path.Clean`) but inside the root: leading
/// `/` and `./` go, `.` components go, `..` removes the previous component and stops at the
/// root (like a lookup with `RESOLVE_IN_ROOT`), so no key ever names a place outside the
/// image's filesystem. `Ok(None)` is the root itself.
pub fn normalize(raw: &[u8], max_len: usize) -> Result<Option<Box<[u8]>>, PathProblem> {
    if raw.len() > max_len {
        return Err(PathProblem::TooLong(raw.len()));
    }
    if raw.contains(&SEP) {
        return Err(PathProblem::Nul);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(parts.join(&SEP).into_boxed_slice()))
}

/// The path of a key as dive prints it: `/` and the components joined by `/` (bytes that are not
/// UTF-8 are shown as U+FFFD).
pub fn display(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len() + 1);
    s.push('/');
    for (i, c) in key.split(|&b| b == SEP).enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}

/// Turns a `/`-separated relative path (`usr/share/doc`) into a key, for lookups and tests.
pub fn key(path: &str) -> Vec<u8> {
    path.trim_matches('/')
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::as_bytes)
        .collect::<Vec<_>>()
        .join(&SEP)
}

/// The last component of a key.
pub fn name(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|&b| b == SEP) {
        Some(i) => &key[i + 1..],
        None => key,
    }
}

/// The key of the parent directory (`None` at the top level, whose parent is the root).
pub fn parent(key: &[u8]) -> Option<&[u8]> {
    key.iter().rposition(|&b| b == SEP).map(|i| &key[..i])
}

/// The components of a key.
pub fn components(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    key.split(|&b| b == SEP)
}

/// The keys of every ancestor directory of `key`, outermost first (the root excluded).
pub fn ancestors(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    key.iter()
        .enumerate()
        .filter(|(_, &b)| b == SEP)
        .map(move |(i, _)| &key[..i])
}

/// The exclusive end of the key range holding `dir` and everything below it: `dir` followed by
/// byte 1 (every descendant is `dir`, NUL, more, which sorts below it).
pub fn subtree_end(dir: &[u8]) -> Vec<u8> {
    let mut end = dir.to_vec();
    end.push(1);
    end
}

/// Whether `key` is `dir` or below it. The empty key is the root, above everything.
pub fn is_within(key: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (key.starts_with(dir) && (key.len() == dir.len() || key[dir.len()] == SEP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<String> {
        normalize(s.as_bytes(), 4096).unwrap().map(|k| display(&k))
    }

    #[test]
    fn normalizes_inside_the_root() {
        assert_eq!(n("./usr/bin/"), Some("/usr/bin".into()));
        assert_eq!(n("/etc//passwd"), Some("/etc/passwd".into()));
        assert_eq!(n("a/./b/../c"), Some("/a/c".into()));
        assert_eq!(n("../../etc/shadow"), Some("/etc/shadow".into()));
        assert_eq!(n("a/../../.."), None);
        assert_eq!(n("./"), None);
        assert_eq!(
            normalize(b"a\0b", 10),
            Err(PathProblem::Nul),
            "NUL from a PAX record"
        );
        assert_eq!(normalize(&[b'a'; 11], 10), Err(PathProblem::TooLong(11)));
    }

    #[test]
    fn keys_sort_like_dive_walks() {
        // dive visits the children of a directory in name order: `a` (and all below it)
        // before `a.txt`, although "a.txt" < "a/b" as plain strings.
        let mut keys = [key("a.txt"), key("a/b"), key("a"), key("a-b/c")];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(|k| display(k)).collect();
        assert_eq!(shown, ["/a", "/a/b", "/a-b/c", "/a.txt"]);
        assert!(is_within(&key("a/b"), &key("a")));
        assert!(!is_within(&key("ab"), &key("a")));
        assert!(key("a/b").as_slice() < subtree_end(&key("a")).as_slice());
        assert!(key("a-b").as_slice() > subtree_end(&key("a")).as_slice());
        assert_eq!(
            ancestors(&key("a/b/c")).map(display).collect::<Vec<_>>(),
            ["/a", "/a/b"]
        );
        assert_eq!(name(&key("a/b")), b"b");
        assert_eq!(parent(&key("a/b")), Some(&b"a"[..]));
    }
}
