//! File names as bytes, carried in `String` paths.
//!
//! Linux names are bytes; whittle's paths (context index, COPY selection, cache keys) are
//! `/`-separated `String`s. A name that is not UTF-8 is carried losslessly: each byte of an
//! invalid sequence becomes a NUL followed by two hex digits. NUL never occurs in a Linux name,
//! so the encoding is unambiguous, and a valid UTF-8 name is unchanged (no cost, and the same
//! cache keys as before). [`decode`] gives the bytes back wherever a path meets the filesystem.
//!
//! `.dockerignore` patterns are text: a wildcard matches the escaped bytes like any character.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

const ESCAPE: char = '\0';

/// `name` as a `String`, invalid bytes escaped.
pub fn encode(name: &OsStr) -> Cow<'_, str> {
    if let Some(s) = name.to_str() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push(ESCAPE);
            out.push_str(&format!("{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// The bytes an [`encode`]d string stands for.
pub fn decode(s: &str) -> Cow<'_, OsStr> {
    if !s.contains(ESCAPE) {
        return Cow::Borrowed(OsStr::new(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(OsString::from_vec(out))
}

/// A `/`-separated path of encoded names as a filesystem path.
pub fn path(s: &str) -> Cow<'_, Path> {
    match decode(s) {
        Cow::Borrowed(o) => Cow::Borrowed(Path::new(o)),
        Cow::Owned(o) => Cow::Owned(o.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_name() {
        let names: [&[u8]; 5] = [
            b"plain.txt",
            b"caf\xc3\xa9",
            b"bad\xffname",
            b"\xfe\xff",
            b"half\xe2\x82",
        ];
        for n in names {
            let os = OsStr::from_bytes(n);
            let e = encode(os);
            assert_eq!(decode(&e).as_bytes(), n, "{e:?}");
        }
        assert_eq!(encode(OsStr::new("café")), "café");
        assert_eq!(encode(OsStr::from_bytes(b"bad\xffname")), "bad\u{0}ffname");
        assert_eq!(
            path("d/bad\u{0}ffname").as_os_str().as_bytes(),
            b"d/bad\xffname"
        );
    }
}
