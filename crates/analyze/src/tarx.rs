//! Tar entries with their PAX and GNU long-name records applied, read with the `tar` crate in
//! raw mode so that no record is read whole beyond a bound: the crate itself reads those records
//! into memory whatever size their header claims (a gzip bomb of a PAX header would take all
//! memory). Used for layer tars and for the image archives around them.

use crate::error::{AnalyzeError, Result};
use std::io::{self, Read};

/// What PAX and GNU records said about the entry that follows them.
#[derive(Default, Debug)]
pub struct Ext {
    /// `path` or GNU long name.
    pub path: Option<Vec<u8>>,
    /// `linkpath` or GNU long link.
    pub link: Option<Vec<u8>>,
    /// `uid`.
    pub uid: Option<u64>,
    /// `gid`.
    pub gid: Option<u64>,
    /// `size`.
    pub size: Option<u64>,
}

/// The next file entry of `it` and its extension values; `Ok(None)` at the end. `what` names the
/// stream in errors; records over `max_ext` bytes are refused.
pub fn next_entry<'a, R: Read>(
    it: &mut tar::Entries<'a, R>,
    max_ext: u64,
    what: &str,
) -> Result<Option<(tar::Entry<'a, R>, Ext)>> {
    let err = |e: io::Error| AnalyzeError::Layer {
        layer: what.to_string(),
        source: e,
    };
    let mut ext = Ext::default();
    loop {
        let Some(entry) = it.next() else {
            return Ok(None);
        };
        let mut entry = entry.map_err(err)?;
        match entry.header().entry_type() {
            tar::EntryType::XHeader => {
                let data = read_bounded(&mut entry, max_ext, what)?;
                parse_pax(&data, &mut ext);
            }
            tar::EntryType::XGlobalHeader => {
                // Global records (e.g. `comment`) say nothing used here.
                read_bounded(&mut entry, max_ext, what)?;
            }
            tar::EntryType::GNULongName => {
                ext.path = Some(trim_nul(read_bounded(&mut entry, max_ext, what)?));
            }
            tar::EntryType::GNULongLink => {
                ext.link = Some(trim_nul(read_bounded(&mut entry, max_ext, what)?));
            }
            _ => {
                let header_size = entry.header().entry_size().map_err(err)?;
                if let Some(s) = ext.size {
                    if s != header_size {
                        // In raw mode the crate moves on by the header's size; an entry whose
                        // real size is only in a PAX record (over 8 GiB) cannot be followed.
                        return Err(AnalyzeError::Unsupported {
                            layer: what.to_string(),
                            what: format!(
                                "an entry whose PAX size ({s}) differs from its header's ({header_size})"
                            ),
                        });
                    }
                }
                return Ok(Some((entry, ext)));
            }
        }
    }
}

/// The entry's path: the extension's, else the header's (with the ustar prefix).
pub fn path_of<R: Read>(entry: &tar::Entry<'_, R>, ext: &mut Ext) -> Vec<u8> {
    match ext.path.take() {
        Some(p) => p,
        None => entry.path_bytes().into_owned(),
    }
}

/// The entry's link target: the extension's, else the header's.
pub fn link_of<R: Read>(entry: &tar::Entry<'_, R>, ext: &mut Ext) -> Option<Vec<u8>> {
    match ext.link.take() {
        Some(l) => Some(l),
        None => entry.link_name_bytes().map(|c| c.into_owned()),
    }
}

/// Reads a record's body, refusing one over `max` bytes.
fn read_bounded<R: Read>(r: R, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut v)
        .map_err(|e| AnalyzeError::Layer {
            layer: what.to_string(),
            source: e,
        })?;
    if v.len() as u64 > max {
        return Err(AnalyzeError::Limit {
            what: format!("{what}: bytes in a PAX or GNU long-name record"),
            limit: max,
        });
    }
    Ok(v)
}

/// Parses PAX records (`"<len> <key>=<value>\n"`) into `ext`; parsing stops at a malformed one.
fn parse_pax(data: &[u8], ext: &mut Ext) {
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            return;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return;
        };
        if len <= sp + 1 || len > rest.len() {
            return;
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(eq) = rec.iter().position(|&b| b == b'=') {
            let (k, v) = (&rec[..eq], &rec[eq + 1..]);
            let num = || {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            };
            match k {
                b"path" => ext.path = Some(v.to_vec()),
                b"linkpath" => ext.link = Some(v.to_vec()),
                b"uid" => ext.uid = num(),
                b"gid" => ext.gid = num(),
                b"size" => ext.size = num(),
                _ => {}
            }
        }
        rest = &rest[len..];
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records() {
        let mut e = Ext::default();
        parse_pax(b"20 path=a/very/long\n12 uid=1234\n", &mut e);
        assert_eq!(e.path.as_deref(), Some(&b"a/very/long"[..]));
        assert_eq!(e.uid, Some(1234));
        let mut bad = Ext::default();
        parse_pax(b"999 path=x\n", &mut bad);
        assert!(bad.path.is_none());
    }
}
