//! COPY and ADD: put files from the build context or another stage into a fresh layer
//! directory, with Docker's rules for wildcards, directory contents, trailing slashes,
//! ownership (`--chown`, names looked up in the stage's own `/etc/passwd`), `--chmod`,
//! `--exclude`, `--parents`, heredoc files and ADD's archive extraction.

use crate::merged::{components, Merged};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use whittle_context::{names, Index, Matcher};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}: not found in the {1}")]
    NotFound(String, &'static str),
    #[error("{0}: leads outside the {1}; a source must be a path inside it")]
    Outside(String, &'static str),
    #[error("no source files were specified")]
    NoSources,
    #[error("when using {0} with more than one source file, the destination must be a directory and end with a /")]
    DestNotDir(&'static str),
    #[error("invalid --chown value {0:?}: {1}")]
    Chown(String, String),
    #[error("invalid --chmod value {0:?}")]
    Chmod(String),
    #[error("bad --exclude pattern: {0}")]
    Exclude(String),
    #[error(
        "the disk holding {} is full ({source}): free space there (whittle prune drops build \
         cache), or move the store with --root",
        dir.display()
    )]
    DiskFull {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: too many levels of symbolic links (a link loop)")]
    Loop(String),
    #[error("cannot copy {path}: {why}")]
    Special { path: String, why: &'static str },
    #[error("cannot extract the archive {path}: {reason}")]
    Archive { path: String, reason: String },
}

type Result<T> = std::result::Result<T, CopyError>;

/// A file's content digest, as the context index gives it.
pub type Digest = [u8; 32];

/// The previous snapshot of the same COPY, to take unchanged files from (incremental COPY):
/// its directory and, for each regular file it holds (path in the layer), the digest of the
/// source it was copied from.
pub struct Reuse<'a> {
    pub dir: &'a Path,
    /// Sorted by path.
    pub digests: &'a [(String, Digest)],
}

impl Reuse<'_> {
    fn digest(&self, rel: &str) -> Option<&Digest> {
        self.digests
            .binary_search_by(|(p, _)| p.as_str().cmp(rel))
            .ok()
            .map(|i| &self.digests[i].1)
    }
}

/// What a copy did.
#[derive(Debug, Default)]
pub struct CopyOutcome {
    /// Entries written (files, directories, links).
    pub written: u64,
    /// For each regular file copied from a local source: its path in the layer and the digest
    /// of what it was copied from, sorted by path (the next build's [`Reuse`]).
    pub digests: Vec<(String, Digest)>,
    /// Files taken from the previous snapshot as hard links instead of copied.
    pub reused: u64,
    /// Those files: path in the layer -> (device, inode) of the previous snapshot's file
    /// they are a link to (what an edited layer's writer checks before it takes a block of
    /// the previous layer: `whittle_layer::Previous::unchanged`).
    pub linked: std::collections::HashMap<String, (u64, u64)>,
}

/// Where COPY reads from.
pub enum Source<'a> {
    /// The build context: only what `.dockerignore` lets through (the index) is visible.
    Context { root: &'a Path, index: &'a Index },
    /// Another stage's (or image's) files.
    Merged(&'a Merged),
}

struct Item {
    /// The path as the source pattern selected it (relative to the source root): it names the
    /// destination, so `COPY libx.so /d/` gives `/d/libx.so` even when it is a symlink.
    rel: String,
    /// The same path with symlinks resolved inside the root: what is read.
    src: String,
    phys: PathBuf,
    md: fs::Metadata,
}

impl Source<'_> {
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Source::Context { .. } => "build context",
            Source::Merged(_) => "source stage",
        }
    }

    /// The content digest a local source's index holds for a file (content and the metadata
    /// a COPY keeps); `None` for another stage's files, which are not indexed per file.
    fn digest(&self, rel: &str) -> Option<Digest> {
        match self {
            Source::Context { index, .. } => index
                .get(rel)
                .filter(|e| e.kind == whittle_context::EntryKind::File)
                .map(|e| e.digest),
            Source::Merged(_) => None,
        }
    }

    fn stat(&self, rel: &str) -> Option<(PathBuf, fs::Metadata)> {
        match self {
            Source::Context { root, index } => {
                index.get(rel)?;
                let p = if rel.is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(names::path(rel))
                };
                fs::symlink_metadata(&p).ok().map(|m| (p, m))
            }
            Source::Merged(m) => m.locate(rel),
        }
    }

    /// Direct children of a directory: (name, physical path, metadata), sorted by name.
    fn list(&self, rel: &str) -> io::Result<Vec<(String, PathBuf, fs::Metadata)>> {
        match self {
            Source::Context { root, index } => {
                let mut out = Vec::new();
                for (p, _) in index.below(rel) {
                    let name = if rel.is_empty() {
                        p.as_str()
                    } else {
                        &p[rel.len() + 1..]
                    };
                    if name.contains('/') {
                        continue;
                    }
                    let phys = root.join(names::path(p));
                    let md = fs::symlink_metadata(&phys)?;
                    out.push((name.to_string(), phys, md));
                }
                Ok(out)
            }
            // Names are bytes: one that is not UTF-8 is carried escaped (`names`), so it is
            // copied under exactly its own name.
            Source::Merged(m) => Ok(m
                .read_dir(rel)?
                .into_iter()
                .map(|(n, p, md)| (names::encode(&n).into_owned(), p, md))
                .collect()),
        }
    }

    /// Follows a symlink at the top of a source path (inside the source root). A loop is an
    /// error, as it is for `cp` and BuildKit, not a copy of the first link.
    fn resolve(&self, rel: &str) -> Result<String> {
        let looped = || CopyError::Loop(format!("/{rel}"));
        match self {
            Source::Merged(m) => m.resolve(rel, true).map_err(|e| {
                if e.kind() == io::ErrorKind::Other {
                    looped()
                } else {
                    CopyError::Read {
                        path: format!("/{rel}"),
                        source: e,
                    }
                }
            }),
            Source::Context { root, .. } => {
                // Resolve lexically inside the context; links leading out are not followed.
                let mut cur: Vec<String> = Vec::new();
                let mut todo: Vec<String> = components(rel)
                    .into_iter()
                    .rev()
                    .map(str::to_string)
                    .collect();
                let mut hops = 0;
                while let Some(c) = todo.pop() {
                    if c == ".." {
                        cur.pop();
                        continue;
                    }
                    cur.push(c);
                    let p = root.join(names::path(&cur.join("/")));
                    if let Ok(t) = fs::read_link(&p) {
                        hops += 1;
                        if hops > 40 {
                            return Err(looped());
                        }
                        cur.pop();
                        let t = names::encode(t.as_os_str()).into_owned();
                        if t.starts_with('/') {
                            cur.clear();
                        }
                        todo.extend(components(&t).into_iter().rev().map(str::to_string));
                    }
                }
                Ok(cur.join("/"))
            }
        }
    }

    /// Expands a source pattern (wildcards per path component, as Go's filepath.Match).
    fn matches(&self, pattern: &str) -> Result<Vec<Item>> {
        let comps = components(pattern);
        if comps.contains(&"..") {
            return Err(CopyError::Outside(pattern.to_string(), self.what()));
        }
        let mut found: Vec<String> = vec![String::new()];
        for c in &comps {
            let mut next = Vec::new();
            for base in &found {
                if has_wildcard(c) {
                    let Ok(children) = self.list(base) else {
                        continue;
                    };
                    for (name, _, _) in children {
                        if glob_match(c, &name) {
                            next.push(join(base, &name));
                        }
                    }
                } else {
                    next.push(join(base, c));
                }
            }
            found = next;
        }
        let wildcard = comps.iter().any(|c| has_wildcard(c));
        let mut items = Vec::new();
        for rel in found {
            // Symlinks in the path, the last one too, are followed to their content.
            let src = self.resolve(&rel)?;
            let found = match self.stat(&src) {
                Some((phys, md)) => Some((src, phys, md)),
                // A dangling link is copied as the link itself.
                None => self.stat(&rel).map(|(phys, md)| (rel.clone(), phys, md)),
            };
            match found {
                Some((src, phys, md)) => items.push(Item { rel, src, phys, md }),
                // A wildcard may match nothing (`COPY package.json yarn.lock* ./`), as in
                // BuildKit; only a plain path that does not exist is an error.
                None if wildcard => {}
                None => return Err(CopyError::NotFound(format!("/{rel}"), self.what())),
            }
        }
        Ok(items)
    }

    /// What a source pattern selects: for each entry, the path as selected and the path that
    /// is read (symlinks resolved). The cache key hashes exactly what the copy will copy.
    pub fn select(&self, pattern: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .matches(pattern)?
            .into_iter()
            .map(|i| (i.rel, i.src))
            .collect())
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One path component against a pattern: `*`, `?`, `[a-z]`, `[^a]`, `\x` (Go's filepath.Match).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    if let Some((hit, len)) = class(&p[pi..], s[si]) {
                        if hit {
                            pi += len;
                            si += 1;
                            continue;
                        }
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == s[si] {
                        pi += 2;
                        si += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[si] {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches a `[...]` class at the start of `p`; returns (matched, length of the class).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('^' | '!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|x| *x != ']') {
            hi = p[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            hit = true;
        }
        i += 1;
    }
    None
}

/// `--chmod`: octal, or symbolic clauses (`u+x,go-w,a=r`, `X` for directories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(String),
}

impl Chmod {
    pub fn parse(v: &str) -> Result<Chmod> {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
            return u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| CopyError::Chmod(v.into()));
        }
        if whittle_graph::valid_chmod(v) {
            Ok(Chmod::Symbolic(v.to_string()))
        } else {
            Err(CopyError::Chmod(v.into()))
        }
    }

    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(s) => {
                let mut mode = mode & 0o7777;
                for clause in s.split(',') {
                    let who_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
                    let who = &clause[..who_end];
                    let mut mask = 0u32;
                    for w in who.chars() {
                        mask |= match w {
                            'u' => 0o4700,
                            'g' => 0o2070,
                            'o' => 0o1007,
                            _ => 0o7777,
                        };
                    }
                    if who.is_empty() {
                        mask = 0o7777;
                    }
                    let mut rest = &clause[who_end..];
                    while let Some(op) = rest.chars().next() {
                        rest = &rest[1..];
                        let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
                        let perms = &rest[..end];
                        rest = &rest[end..];
                        let mut bits = 0u32;
                        for p in perms.chars() {
                            bits |= match p {
                                'r' => 0o444,
                                'w' => 0o222,
                                'x' => 0o111,
                                'X' if is_dir || mode & 0o111 != 0 => 0o111,
                                's' => 0o6000,
                                't' => 0o1000,
                                'u' => ((mode >> 6) & 7) * 0o111,
                                'g' => ((mode >> 3) & 7) * 0o111,
                                'o' => (mode & 7) * 0o111,
                                _ => 0,
                            };
                        }
                        let bits = bits & mask;
                        mode = match op {
                            '+' => mode | bits,
                            '-' => mode & !bits,
                            _ => (mode & !(mask & 0o7777)) | bits,
                        };
                    }
                }
                mode
            }
        }
    }
}

/// Resolves `--chown=user[:group]` against the destination stage's `/etc/passwd` and
/// `/etc/group` (numeric ids need no lookup). A user without a group gets the user's primary
/// group.
pub fn resolve_chown(spec: &str, dest: &Merged) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, field: usize| -> Option<(u32, Option<u32>)> {
        let data = dest.read_small(file, 4 << 20).ok()?;
        let text = String::from_utf8_lossy(&data);
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() == Some(&name) && f.len() > field {
                let id = f[field].parse().ok()?;
                let gid = f.get(3).and_then(|g| g.parse().ok());
                Some((id, gid))
            } else {
                None
            }
        })
    };
    let uid_and_group = if let Ok(n) = u.parse::<u32>() {
        (n, None)
    } else {
        let (uid, gid) = lookup("/etc/passwd", u, 2).ok_or_else(|| {
            CopyError::Chown(
                spec.into(),
                format!("no user {u:?} in the image's /etc/passwd"),
            )
        })?;
        (uid, gid)
    };
    let gid = match g {
        Some(g) if !g.is_empty() => {
            if let Ok(n) = g.parse::<u32>() {
                n
            } else {
                lookup("/etc/group", g, 2)
                    .map(|(id, _)| id)
                    .ok_or_else(|| {
                        CopyError::Chown(
                            spec.into(),
                            format!("no group {g:?} in the image's /etc/group"),
                        )
                    })?
            }
        }
        _ => uid_and_group.1.unwrap_or(uid_and_group.0),
    };
    Ok((uid_and_group.0, gid))
}

/// What one COPY/ADD asks for, after expansion.
pub struct CopyRequest<'a> {
    pub keyword: &'static str,
    pub sources: &'a [String],
    /// (name, content) of heredoc sources.
    pub inline: &'a [(String, String)],
    /// Absolute destination as written (trailing `/` kept).
    pub dest: String,
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    pub excludes: &'a [String],
    pub parents: bool,
    /// ADD: extract local tar archives.
    pub unpack_archives: bool,
    /// Context sources lose their owner (0:0); stage sources keep it.
    pub keep_owner: bool,
}

/// Copies into `layer` (an empty directory that will become the new layer). `below` is the
/// destination stage's current filesystem, used to resolve the destination and to give
/// parent directories their existing owner and mode. Returns the number of entries written.
pub fn copy_into(req: &CopyRequest, src: &Source, below: &Merged, layer: &Path) -> Result<u64> {
    copy_into_reusing(req, src, below, layer, None).map(|o| o.written)
}

/// [`copy_into`], taking each file whose source is unchanged since `reuse`'s snapshot from
/// there as a hard link instead of copying it. A snapshot never changes once committed, so
/// the two snapshots can share the file. A file is taken only when the source's digest is the
/// one recorded for the same path and the old file has exactly the owner, mode, mtime and size
/// the copy would give it (a link cannot change them: the old snapshot holds the same inode).
pub fn copy_into_reusing(
    req: &CopyRequest,
    src: &Source,
    below: &Merged,
    layer: &Path,
    reuse: Option<&Reuse>,
) -> Result<CopyOutcome> {
    let excludes = if req.excludes.is_empty() {
        None
    } else {
        Some(
            Matcher::parse(&req.excludes.join("\n"), "--exclude")
                .map_err(|e| CopyError::Exclude(e.to_string()))?,
        )
    };
    // (item, how many leading components of its path --parents drops: those before a `/./`)
    let mut items = Vec::new();
    for s in req.sources {
        let skip = if req.parents { pivot_depth(s) } else { 0 };
        items.extend(src.matches(s)?.into_iter().map(|i| (i, skip)));
    }
    if items.is_empty() && req.inline.is_empty() {
        if !req.sources.is_empty() {
            // Every source was a wildcard that matched nothing: nothing to copy.
            return Ok(CopyOutcome::default());
        }
        return Err(CopyError::NoSources);
    }
    let count = items.len() + req.inline.len();
    let wildcard = req.sources.iter().any(|s| has_wildcard(s));
    let dest_is_dir = req.dest.ends_with('/')
        || count > 1
        || wildcard
        || below
            .resolve(&req.dest, true)
            .ok()
            .and_then(|r| below.locate(&r))
            .is_some_and(|(_, md)| md.is_dir());
    if count > 1 && !req.dest.ends_with('/') && !dest_is_dir_in(below, &req.dest) {
        return Err(CopyError::DestNotDir(req.keyword));
    }
    // The destination inside the layer, with symlinks of the stage below resolved.
    let dest_rel = below
        .resolve(&req.dest, dest_is_dir)
        .unwrap_or_else(|_| components(&req.dest).join("/"));
    let mut w = Writer {
        layer,
        below,
        req,
        written: 0,
        files: Vec::new(),
        linked: std::collections::HashMap::new(),
        links: Vec::new(),
        reuse,
        digests: Vec::new(),
        reused: Mutex::new(Vec::new()),
    };
    for (item, skip) in &items {
        let target = if req.parents {
            let kept = components(&item.rel);
            join(&dest_rel, &kept[(*skip).min(kept.len())..].join("/"))
        } else if item.md.is_dir() {
            dest_rel.clone()
        } else if dest_is_dir {
            join(&dest_rel, item.rel.rsplit('/').next().unwrap_or(&item.rel))
        } else {
            dest_rel.clone()
        };
        if item.md.is_dir() {
            // A directory source's contents go into the destination; a destination that does
            // not exist yet is made 0755 (owned by --chown, else root), never with the source
            // directory's own mode, as BuildKit does. Directories inside keep their modes.
            let like = (req.parents && target != dest_rel).then_some(&item.md);
            w.ensure_dir(&target, like)?;
            w.copy_tree(src, &item.src, &target, excludes.as_ref(), "")?;
            w.flush_files()?;
        } else if req.unpack_archives && item.md.is_file() && is_tar_archive(&item.phys) {
            w.ensure_dir(&dest_rel, None)?;
            w.extract(&item.phys, &dest_rel)?;
        } else {
            if let Some(x) = &excludes {
                let base = item.rel.rsplit('/').next().unwrap_or(&item.rel);
                if x.is_ignored(base) {
                    continue;
                }
            }
            if item.md.file_type().is_socket() {
                return Err(CopyError::Special {
                    path: format!("/{}", item.rel),
                    why: "a socket cannot be copied into an image",
                });
            }
            w.ensure_parent(&target)?;
            w.copy_one(&item.phys, &item.md, &target, src.digest(&item.src))?;
            w.flush_files()?;
        }
    }
    for (name, content) in req.inline {
        let target = if dest_is_dir {
            join(&dest_rel, name)
        } else {
            dest_rel.clone()
        };
        w.ensure_parent(&target)?;
        let p = layer.join(names::path(&target));
        fs::write(&p, content).map_err(wr(&target))?;
        let mode = req.chmod.as_ref().map_or(0o644, |c| c.apply(0o644, false));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(wr(&target))?;
        let (uid, gid) = req.chown.unwrap_or((0, 0));
        chown(&p, uid, gid).map_err(wr(&target))?;
        w.written += 1;
    }
    let mut digests = std::mem::take(&mut w.digests);
    // A later source may have replaced an earlier one's file: the last copy counts.
    digests.reverse();
    digests.sort_by(|a, b| a.0.cmp(&b.0));
    digests.dedup_by(|a, b| a.0 == b.0);
    let linked: std::collections::HashMap<String, (u64, u64)> = w
        .reused
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .collect();
    Ok(CopyOutcome {
        written: w.written,
        digests,
        reused: linked.len() as u64,
        linked,
    })
}

/// For `COPY --parents`: the number of path components before the pivot `/./` of a source
/// (`./a/./b/c.txt` keeps `b/c.txt`, per the Dockerfile reference); 0 without a pivot, so the
/// whole path is kept.
fn pivot_depth(source: &str) -> usize {
    let s = source.trim_start_matches('/');
    let s = s.strip_prefix("./").unwrap_or(s);
    match s.find("/./") {
        Some(i) => components(&s[..i]).len(),
        None => s
            .strip_suffix("/.")
            .map_or(0, |head| components(head).len()),
    }
}

fn dest_is_dir_in(below: &Merged, dest: &str) -> bool {
    below
        .resolve(dest, true)
        .ok()
        .and_then(|r| below.locate(&r))
        .is_some_and(|(_, md)| md.is_dir())
}

fn wr(path: &str) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Write {
        path: format!("/{path}"),
        source,
    }
}

/// A full disk or quota is the destination's problem, whichever call reported it.
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn chown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

fn set_mtime(p: &Path, md: &fs::Metadata) {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
}

/// A gzip/zstd/plain file whose content is a ustar/GNU tar archive.
fn is_tar_archive(p: &Path) -> bool {
    let Ok(f) = fs::File::open(p) else {
        return false;
    };
    let Ok((_, mut r)) = whittle_layer::decompress(BufReader::new(f)) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return false,
        }
    }
    got == 512 && &head[257..262] == b"ustar"
}

struct Writer<'a> {
    layer: &'a Path,
    below: &'a Merged,
    req: &'a CopyRequest<'a>,
    written: u64,
    /// Regular files to copy, in parallel, once their directories exist.
    files: Vec<FileJob>,
    /// (dev, inode) of a source file with several links -> where its first copy went: the
    /// others become hard links to it, as in BuildKit.
    linked: std::collections::HashMap<(u64, u64), PathBuf>,
    /// (existing copy, new link) to make once the queued files are copied.
    links: Vec<(PathBuf, PathBuf)>,
    reuse: Option<&'a Reuse<'a>>,
    /// See [`CopyOutcome::digests`] (unsorted here).
    digests: Vec<(String, Digest)>,
    /// Files linked from the previous snapshot: (path in the layer, (device, inode)).
    reused: Mutex<Vec<(String, (u64, u64))>>,
}

/// One regular file of a COPY, with what the layer gets of its metadata.
struct FileJob {
    from: PathBuf,
    to: PathBuf,
    rel: String,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: std::time::SystemTime,
    size: u64,
    /// The previous snapshot's file of the same path, copied from the same content.
    previous: Option<PathBuf>,
}

impl FileJob {
    /// Links the previous snapshot's file when it is what the copy would make; else copies.
    fn run(&self, reused: &Mutex<Vec<(String, (u64, u64))>>) -> Result<()> {
        if let Some(old) = &self.previous {
            if let Some(inode) = self.same_as(old) {
                if fs::hard_link(old, &self.to).is_ok() {
                    if let Ok(mut r) = reused.lock() {
                        r.push((self.rel.clone(), inode));
                    }
                    return Ok(());
                }
            }
        }
        self.copy()
    }

    /// Whether `old` is a regular file with exactly the owner, mode, mtime and size this copy
    /// gives (its content is known to be the same: it was copied from the same digest); if
    /// so, its (device, inode).
    fn same_as(&self, old: &Path) -> Option<(u64, u64)> {
        let m = fs::symlink_metadata(old).ok()?;
        (m.file_type().is_file()
            && m.uid() == self.uid
            && m.gid() == self.gid
            && m.mode() & 0o7777 == self.mode
            && m.len() == self.size
            && mtime_of(&m) == self.mtime)
            .then(|| (m.dev(), m.ino()))
    }

    /// Copies the content (copy_file_range where the kernel can), then sets owner, mode (after
    /// the owner: chown clears setuid bits) and mtime through the open file, not by path.
    fn copy(&self) -> Result<()> {
        let read = |source| CopyError::Read {
            path: self.from.display().to_string(),
            source,
        };
        let mut src = fs::File::open(&self.from).map_err(read)?;
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.to)
            .map_err(wr(&self.rel))?;
        io::copy(&mut src, &mut dst).map_err(|e| {
            if is_disk_full(&e) {
                CopyError::DiskFull {
                    dir: self.to.parent().unwrap_or(&self.to).to_path_buf(),
                    source: e,
                }
            } else {
                read(e)
            }
        })?;
        std::os::unix::fs::fchown(&dst, Some(self.uid), Some(self.gid)).map_err(wr(&self.rel))?;
        dst.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(wr(&self.rel))?;
        let t = fs::FileTimes::new()
            .set_accessed(self.mtime)
            .set_modified(self.mtime);
        let _ = dst.set_times(t);
        Ok(())
    }
}

/// The mtime of `md` as a time (before 1970 too).
fn mtime_of(md: &fs::Metadata) -> std::time::SystemTime {
    let secs = md.mtime();
    let nanos = std::time::Duration::from_nanos(md.mtime_nsec().clamp(0, 999_999_999) as u64);
    let base = if secs >= 0 {
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs as u64))
    } else {
        std::time::UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(secs.unsigned_abs()))
    };
    base.and_then(|b| b.checked_add(nanos))
        .unwrap_or(std::time::UNIX_EPOCH)
}

impl Writer<'_> {
    fn owner(&self, md: &fs::Metadata) -> (u32, u32) {
        match self.req.chown {
            Some(o) => o,
            None if self.req.keep_owner => (md.uid(), md.gid()),
            None => (0, 0),
        }
    }

    fn mode(&self, md: &fs::Metadata) -> u32 {
        let m = md.mode() & 0o7777;
        match &self.req.chmod {
            Some(c) => c.apply(m, md.is_dir()),
            None => m,
        }
    }

    /// Creates the parents of `rel` in the layer, copying owner and mode from the stage below
    /// where they exist there (so the layer does not change them), else root 0755.
    fn ensure_parent(&mut self, rel: &str) -> Result<()> {
        let comps = components(rel);
        if comps.len() <= 1 {
            return Ok(());
        }
        let parent = comps[..comps.len() - 1].join("/");
        self.ensure_dir(&parent, None)
    }

    fn ensure_dir(&mut self, rel: &str, like: Option<&fs::Metadata>) -> Result<()> {
        let comps = components(rel);
        let mut cur = String::new();
        for (i, c) in comps.iter().enumerate() {
            cur = join(&cur, c);
            let p = self.layer.join(names::path(&cur));
            if p.is_dir() {
                continue;
            }
            fs::create_dir(&p).map_err(wr(&cur))?;
            let last = i + 1 == comps.len();
            let (mode, uid, gid) = match self.below.locate(&cur) {
                Some((_, md)) if md.is_dir() => (md.mode() & 0o7777, md.uid(), md.gid()),
                // A file is never replaced by a directory to copy into: BuildKit's mkdir
                // fails the same way.
                Some(_) => {
                    return Err(CopyError::Write {
                        path: format!("/{cur}"),
                        source: io::Error::from_raw_os_error(
                            rustix::io::Errno::NOTDIR.raw_os_error(),
                        ),
                    })
                }
                None => match (last, like) {
                    (true, Some(md)) => {
                        let (u, g) = self.owner(md);
                        (self.mode(md), u, g)
                    }
                    _ => {
                        let (u, g) = self.req.chown.unwrap_or((0, 0));
                        (0o755, u, g)
                    }
                },
            };
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(wr(&cur))?;
            chown(&p, uid, gid).map_err(wr(&cur))?;
            self.written += 1;
        }
        Ok(())
    }

    fn copy_tree(
        &mut self,
        src: &Source,
        src_rel: &str,
        dst_rel: &str,
        excludes: Option<&Matcher>,
        rel_in_copy: &str,
    ) -> Result<()> {
        let children = src.list(src_rel).map_err(|source| CopyError::Read {
            path: format!("/{src_rel}"),
            source,
        })?;
        for (name, phys, md) in children {
            let inner = join(rel_in_copy, &name);
            if excludes.is_some_and(|x| x.is_ignored(&inner)) {
                continue;
            }
            let s = join(src_rel, &name);
            let d = join(dst_rel, &name);
            if md.is_dir() {
                self.ensure_dir(&d, Some(&md))?;
                // An existing dir (from an earlier source) keeps what it had; a new one gets
                // the source's owner and mode.
                self.copy_tree(src, &s, &d, excludes, &inner)?;
            } else {
                self.copy_one(&phys, &md, &d, src.digest(&s))?;
            }
        }
        Ok(())
    }

    fn copy_one(
        &mut self,
        phys: &Path,
        md: &fs::Metadata,
        rel: &str,
        digest: Option<Digest>,
    ) -> Result<()> {
        let dst = self.layer.join(names::path(rel));
        if let Ok(old) = fs::symlink_metadata(&dst) {
            if old.is_dir() && !md.is_dir() {
                fs::remove_dir_all(&dst).map_err(wr(rel))?;
            } else if !old.is_dir() {
                fs::remove_file(&dst).map_err(wr(rel))?;
            }
        }
        let ft = md.file_type();
        let (uid, gid) = self.owner(md);
        if ft.is_symlink() {
            let target = fs::read_link(phys).map_err(|source| CopyError::Read {
                path: phys.display().to_string(),
                source,
            })?;
            std::os::unix::fs::symlink(&target, &dst).map_err(wr(rel))?;
            chown(&dst, uid, gid).map_err(wr(rel))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                match self.linked.entry((md.dev(), md.ino())) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        self.links.push((first.get().clone(), dst));
                        self.written += 1;
                        return Ok(());
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(dst.clone());
                    }
                }
            }
            let previous = match (digest, self.reuse) {
                (Some(d), Some(r)) if r.digest(rel) == Some(&d) => {
                    Some(r.dir.join(names::path(rel)))
                }
                _ => None,
            };
            if let Some(d) = digest {
                self.digests.push((rel.to_string(), d));
            }
            // Copied by `flush_files`, with the other files of this source, on all cores.
            self.files.push(FileJob {
                from: phys.to_path_buf(),
                to: dst,
                rel: rel.to_string(),
                uid,
                gid,
                mode: self.mode(md),
                mtime: mtime_of(md),
                size: md.len(),
                previous,
            });
            self.written += 1;
            return Ok(());
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            // Copied as BuildKit does: a new node of the same type and device number.
            use rustix::fs::FileType;
            if ft.is_char_device() && md.rdev() == 0 {
                return Err(CopyError::Special {
                    path: format!("/{rel}"),
                    why: "a 0:0 character device is how a layer marks a deleted file",
                });
            }
            let kind = if ft.is_fifo() {
                FileType::Fifo
            } else if ft.is_char_device() {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let mode = rustix::fs::Mode::from_raw_mode(self.mode(md));
            rustix::fs::mknodat(rustix::fs::CWD, &dst, kind, mode, md.rdev())
                .map_err(|e| wr(rel)(e.into()))?;
            chown(&dst, uid, gid).map_err(wr(rel))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(self.mode(md)))
                .map_err(wr(rel))?;
        } else {
            // A socket inside a copied directory: it means nothing without its server, and a
            // stray one (an editor's or git's) must not fail `COPY . .`. Named as a source, it
            // is an error (see copy_into).
            return Ok(());
        }
        set_mtime(&dst, md);
        self.written += 1;
        Ok(())
    }

    /// Copies the queued files, on one thread per core: a `COPY . .` of 20,000 small files
    /// is bound by system calls, not by the disk. Each source's walk lists a path once and
    /// creates directories before their files, so the queued copies never collide.
    fn flush_files(&mut self) -> Result<()> {
        let jobs = std::mem::take(&mut self.files);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Small copies are not worth a thread each.
        let reused = &self.reused;
        whittle_par::try_for_each(&jobs, threads.min(jobs.len() / 16 + 1), |j| j.run(reused))?;
        for (first, link) in std::mem::take(&mut self.links) {
            let rel = link
                .strip_prefix(self.layer)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            fs::hard_link(&first, &link).map_err(wr(&rel))?;
        }
        Ok(())
    }

    fn extract(&mut self, archive: &Path, dest_rel: &str) -> Result<()> {
        let err = |reason: String| CopyError::Archive {
            path: archive.display().to_string(),
            reason,
        };
        let f = fs::File::open(archive).map_err(|e| err(e.to_string()))?;
        let root = self.layer.join(names::path(dest_rel));
        let opts = whittle_layer::ExtractOptions::default();
        let mut r = BufReader::new(f);
        // extract_layer detects compression itself; make sure the buffer is primed.
        let _ = r.fill_buf();
        let sum = whittle_layer::extract_layer(r, &root, &opts).map_err(|e| err(e.to_string()))?;
        self.written += sum.entries;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob_match("*.go", "main.go"));
        assert!(!glob_match("*.go", "main.rs"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn chmod() {
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("u+x").unwrap().apply(0o644, false), 0o744);
        assert_eq!(Chmod::parse("go-w").unwrap().apply(0o666, false), 0o644);
        assert_eq!(Chmod::parse("a+X").unwrap().apply(0o644, true), 0o755);
        assert_eq!(Chmod::parse("a+X").unwrap().apply(0o644, false), 0o644);
        assert_eq!(
            Chmod::parse("u=rw,go=r").unwrap().apply(0o777, false),
            0o644
        );
        assert!(Chmod::parse("999").is_err());
        assert!(Chmod::parse("q+z").is_err());
    }

    #[test]
    fn context_copy_rules() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir_all(ctx.join("src/sub")).unwrap();
        fs::write(ctx.join("src/a.go"), "a").unwrap();
        fs::write(ctx.join("src/b.go"), "b").unwrap();
        fs::write(ctx.join("src/sub/c.txt"), "c").unwrap();
        fs::write(ctx.join("go.mod"), "m").unwrap();
        fs::write(ctx.join("secret.key"), "k").unwrap();
        let ignore = Matcher::parse("*.key\n", ".dockerignore").unwrap();
        let mut cache = whittle_context::MemoryStatCache::default();
        let index = Index::scan(&ctx, &ignore, &mut cache, 1).unwrap();
        let src = Source::Context {
            root: &ctx,
            index: &index,
        };
        let below = Merged::new(vec![]);
        let run = |sources: &[&str], dest: &str| -> Result<tempfile::TempDir> {
            let layer = tempfile::tempdir().unwrap();
            let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
            copy_into(
                &CopyRequest {
                    keyword: "COPY",
                    sources: &sources,
                    inline: &[],
                    dest: dest.into(),
                    chown: None,
                    chmod: None,
                    excludes: &[],
                    parents: false,
                    unpack_archives: false,
                    keep_owner: false,
                },
                &src,
                &below,
                layer.path(),
            )?;
            Ok(layer)
        };
        // A directory source copies its contents.
        let l = run(&["src"], "/app").unwrap();
        assert!(l.path().join("app/a.go").is_file());
        assert!(l.path().join("app/sub/c.txt").is_file());
        // A file to a path without slash is renamed; with slash goes inside.
        let l = run(&["go.mod"], "/x/renamed").unwrap();
        assert_eq!(fs::read_to_string(l.path().join("x/renamed")).unwrap(), "m");
        let l = run(&["go.mod"], "/x/").unwrap();
        assert!(l.path().join("x/go.mod").is_file());
        // Wildcards.
        let l = run(&["src/*.go"], "/w/").unwrap();
        assert!(l.path().join("w/a.go").is_file() && l.path().join("w/b.go").is_file());
        // Several sources need a directory destination.
        assert!(matches!(
            run(&["go.mod", "src/a.go"], "/one"),
            Err(CopyError::DestNotDir("COPY"))
        ));
        // Ignored files are not there.
        assert!(matches!(
            run(&["secret.key"], "/k"),
            Err(CopyError::NotFound(..))
        ));
        assert!(matches!(
            run(&["nope.txt"], "/k"),
            Err(CopyError::NotFound(..))
        ));
        // A wildcard may match nothing, as in BuildKit: nothing is copied, not even the
        // destination directory.
        let l = run(&["*.nothing"], "/k/").unwrap();
        assert!(!l.path().join("k").exists());
    }
}
