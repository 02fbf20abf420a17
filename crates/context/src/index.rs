//! The context index: every path of the build context that `.dockerignore` lets through, with a
//! digest of its content and the metadata a COPY preserves (type, permission bits, link target;
//! not owner, which COPY resets, and not times, so that touching a file changes nothing).
//! Directories get a Merkle digest over their children; the scheme is [`crate::merkle`]'s, the
//! same as for snapshots. File contents are only re-read when
//! the stat cache says the file changed (size, mtime, ctime, inode).

use crate::ignore::Matcher;
use crate::merkle::{self, Meta};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub type Digest = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read the build context at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the build context {0} is not a directory")]
    NotADirectory(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices: listed, never copied.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub size: u64,
    pub link: Option<String>,
    /// Digest of content and preserved metadata (Merkle for directories).
    pub digest: Digest,
}

/// What a file looked like when its content was last hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatKey {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
}

impl StatKey {
    fn of(md: &fs::Metadata) -> Self {
        StatKey {
            size: md.size(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            ctime_ns: i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
        }
    }
}

/// Remembers content digests of files by path, so unchanged files are not read again.
pub trait StatCache {
    fn get(&self, path: &str) -> Option<(StatKey, Digest)>;
    fn put(&mut self, path: &str, key: StatKey, content: Digest);
}

/// A stat cache in memory, saved to and loaded from a file ([`MemoryStatCache::save`]).
/// What was loaded stays a Vec sorted by path (looked up by binary search: no hash map to
/// build for 20,000 entries on every build); what this build adds goes to a map.
#[derive(Debug, Default, Clone)]
pub struct MemoryStatCache {
    loaded: Vec<(String, StatKey, Digest)>,
    added: HashMap<String, (StatKey, Digest)>,
}

impl MemoryStatCache {
    /// How many paths it knows (a path both loaded and added counts twice).
    pub fn len(&self) -> usize {
        self.loaded.len() + self.added.len()
    }
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty() && self.added.is_empty()
    }

    /// Reads a cache written by [`MemoryStatCache::save`]. A missing, foreign or damaged file
    /// gives an empty cache: the cache only saves work, and every entry it holds is checked
    /// against the file's current stat before use.
    pub fn load(path: &Path) -> MemoryStatCache {
        let Ok(bytes) = fs::read(path) else {
            return MemoryStatCache::default();
        };
        let Some(mut loaded) = bytes
            .strip_prefix(CACHE_MAGIC)
            .and_then(|b| postcard::from_bytes::<Vec<(String, StatKey, Digest)>>(b).ok())
        else {
            return MemoryStatCache::default();
        };
        // Saved sorted; a file from elsewhere is sorted here rather than trusted.
        if !loaded.windows(2).all(|w| w[0].0 < w[1].0) {
            loaded.sort_by(|a, b| a.0.cmp(&b.0));
            loaded.dedup_by(|a, b| a.0 == b.0);
        }
        MemoryStatCache {
            loaded,
            added: HashMap::new(),
        }
    }

    /// Writes the entries of the files in `index` (others are dropped, so the file does not
    /// grow with deleted files) to `path`, atomically (a temporary file renamed over it).
    /// A compact binary form: at 20,000 files JSON took 50-70 ms to read on every build.
    pub fn save(&self, path: &Path, index: &Index) -> io::Result<()> {
        let kept: Vec<(&String, StatKey, Digest)> = index
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .filter_map(|(p, _)| self.get(p).map(|(k, d)| (p, k, d)))
            .collect();
        let mut bytes = CACHE_MAGIC.to_vec();
        let body = postcard::to_stdvec(&kept).map_err(io::Error::other)?;
        bytes.extend_from_slice(&body);
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, bytes)?;
        fs::rename(&tmp, path)
    }
}

impl MemoryStatCache {
    /// The files whose content changed since the cache was loaded, as the scan of `index`
    /// found them (new files and edits; a `touch` is not a change), and the files it knew that
    /// are gone, sorted. `None` when nothing was loaded: without a previous scan, every file
    /// would look new. Names the files behind a miss of a large `COPY`.
    pub fn changed_since_load(&self, index: &Index) -> Option<Vec<String>> {
        if self.loaded.is_empty() {
            return None;
        }
        // Every build asks: when nothing was hashed and the file count is the same, no file
        // is new (it would have been hashed) and so none is gone, without a lookup per file.
        if self.added.is_empty() && index.stats.files == self.loaded.len() {
            return Some(Vec::new());
        }
        let before = |p: &str| {
            self.loaded
                .binary_search_by(|(q, _, _)| q.as_str().cmp(p))
                .ok()
                .map(|i| self.loaded[i].2)
        };
        let mut out: Vec<String> = self
            .added
            .iter()
            .filter(|(p, (_, d))| before(p) != Some(*d))
            .map(|(p, _)| p.clone())
            .collect();
        out.extend(
            self.loaded
                .iter()
                .filter(|(p, _, _)| index.get(p).is_none())
                .map(|(p, _, _)| p.clone()),
        );
        out.sort();
        Some(out)
    }
}

/// First bytes of a saved stat cache; a new layout gets a new magic.
const CACHE_MAGIC: &[u8] = b"whittle-statcache-1\n";

impl StatCache for MemoryStatCache {
    fn get(&self, path: &str) -> Option<(StatKey, Digest)> {
        if let Some(v) = self.added.get(path) {
            return Some(*v);
        }
        self.loaded
            .binary_search_by(|(p, _, _)| p.as_str().cmp(path))
            .ok()
            .map(|i| (self.loaded[i].1, self.loaded[i].2))
    }
    fn put(&mut self, path: &str, key: StatKey, content: Digest) {
        self.added.insert(path.to_string(), (key, content));
    }
}

/// Counters of one scan, for `--progress=plain` and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub files: usize,
    pub dirs: usize,
    pub bytes_hashed: u64,
    pub files_hashed: usize,
}

/// The indexed context. Paths are slash-separated and relative to the root; the root is "".
#[derive(Debug, Clone)]
pub struct Index {
    root: PathBuf,
    entries: BTreeMap<String, Entry>,
    pub stats: ScanStats,
}

struct Pending {
    path: String,
    md: fs::Metadata,
}

fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    merkle::content(fs::File::open(path)?)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Index {
    /// Walks `root`, skipping what `ignore` excludes, hashing what the cache does not know.
    /// `jobs` threads hash file contents.
    pub fn scan(
        root: &Path,
        ignore: &Matcher,
        cache: &mut dyn StatCache,
        jobs: usize,
    ) -> Result<Index, IndexError> {
        let md = fs::metadata(root).map_err(io_err(root))?;
        if !md.is_dir() {
            return Err(IndexError::NotADirectory(root.to_path_buf()));
        }
        let mut stats = ScanStats::default();
        let mut found = walk(root, ignore, jobs.max(1))?;
        found.push((
            Pending {
                path: String::new(),
                md,
            },
            true,
        ));
        // Entries; content digests from the cache where the stat key matches, else hashed in
        // parallel below. Directories get their digest after their children (deepest first).
        // Collected in a Vec and turned into the map at once (a bulk build, cheaper than
        // 20,000 inserts); files to hash are remembered by position.
        let mut list: Vec<(String, Entry)> = Vec::with_capacity(found.len());
        let mut dirs: Vec<(String, u32, bool)> = Vec::new();
        let mut to_hash: Vec<(usize, StatKey)> = Vec::new();
        for (p, included) in found {
            let mode = p.md.mode() & 0o7777;
            let (kind, link, digest) = if p.md.is_dir() {
                stats.dirs += 1;
                dirs.push((p.path.clone(), mode, included));
                (EntryKind::Dir, None, [0u8; 32])
            } else if p.md.file_type().is_symlink() {
                let abs = root.join(crate::names::path(&p.path));
                let target = fs::read_link(&abs).map_err(io_err(&abs))?;
                let target = crate::names::encode(target.as_os_str()).into_owned();
                let d = merkle::symlink(Meta::context(mode), &target);
                (EntryKind::Symlink, Some(target), d)
            } else if p.md.is_file() {
                stats.files += 1;
                let key = StatKey::of(&p.md);
                let d = match cache.get(&p.path) {
                    Some((k, d)) if k == key => merkle::file(Meta::context(mode), &d),
                    _ => {
                        to_hash.push((list.len(), key));
                        [0u8; 32]
                    }
                };
                (EntryKind::File, None, d)
            } else {
                // FIFOs, devices and sockets: their type and device number are their content.
                let d = merkle::special(Meta::context(mode), p.md.mode(), p.md.rdev());
                (EntryKind::Other, None, d)
            };
            list.push((
                p.path,
                Entry {
                    kind,
                    mode,
                    size: if kind == EntryKind::File {
                        p.md.size()
                    } else {
                        0
                    },
                    link,
                    digest,
                },
            ));
        }
        let work: Vec<(String, StatKey)> = to_hash
            .iter()
            .map(|&(i, key)| (list[i].0.clone(), key))
            .collect();
        let hashed = hash_parallel(root, &work, jobs.max(1))?;
        for (((i, _), (path, key)), (content, n)) in to_hash.iter().zip(&work).zip(hashed) {
            stats.files_hashed += 1;
            stats.bytes_hashed += n;
            cache.put(path, *key, content);
            let e = &mut list[*i].1;
            e.digest = merkle::file(Meta::context(e.mode), &content);
        }
        let mut entries: BTreeMap<String, Entry> = list.into_iter().collect();
        // Drop directories that were walked only for re-includes and hold nothing.
        dirs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| b.0.cmp(&a.0)));
        for (path, mode, included) in dirs {
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let mut dir = merkle::Dir::new();
            for (child, e) in entries.range(prefix.clone()..) {
                if !child.starts_with(&prefix) {
                    break;
                }
                if child.is_empty() || child[prefix.len()..].contains('/') {
                    continue;
                }
                dir.child(&child[prefix.len()..], &e.digest);
            }
            if !included && dir.is_empty() {
                entries.remove(&path);
                continue;
            }
            if let Some(e) = entries.get_mut(&path) {
                e.digest = dir.finish(Meta::context(mode));
            }
        }
        Ok(Index {
            root: root.to_path_buf(),
            entries,
            stats,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every indexed path (sorted; the root is "").
    pub fn paths(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The paths below `dir` (not including it), sorted.
    pub fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p.is_empty())
    }
}

/// The directories still to read, shared by the walking threads.
struct WalkQueue {
    dirs: Vec<(PathBuf, String)>,
    /// Threads reading a directory now (which may add more).
    busy: usize,
    error: Option<IndexError>,
}

/// Walks the tree below `root` on `jobs` threads: every path `ignore` keeps, with its
/// metadata, and whether it is in the context itself (`false` for directories walked only
/// because a `!` pattern may re-include something below them). Entries are stat'ed relative to
/// their directory's descriptor (`DirEntry::metadata`), not by full path: at 20,000 files the
/// path walks were a third of a no-change rebuild.
fn walk(root: &Path, ignore: &Matcher, jobs: usize) -> Result<Vec<(Pending, bool)>, IndexError> {
    let queue = std::sync::Mutex::new(WalkQueue {
        dirs: vec![(root.to_path_buf(), String::new())],
        busy: 0,
        error: None,
    });
    let wake = std::sync::Condvar::new();
    let lock = || queue.lock().unwrap_or_else(|p| p.into_inner());
    let parts: Vec<Vec<(Pending, bool)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let (abs, rel) = {
                            let mut q = lock();
                            loop {
                                if q.error.is_some() {
                                    return found;
                                }
                                if let Some(d) = q.dirs.pop() {
                                    q.busy += 1;
                                    break d;
                                }
                                if q.busy == 0 {
                                    return found;
                                }
                                q = wake.wait(q).unwrap_or_else(|p| p.into_inner());
                            }
                        };
                        let mut subdirs = Vec::new();
                        let r = read_one_dir(&abs, &rel, ignore, &mut found, &mut subdirs);
                        let mut q = lock();
                        q.busy -= 1;
                        match r {
                            Ok(()) => q.dirs.extend(subdirs),
                            Err(e) => {
                                q.error.get_or_insert(e);
                            }
                        }
                        wake.notify_all();
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let q = queue.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = q.error {
        return Err(e);
    }
    if !q.dirs.is_empty() || q.busy != 0 {
        return Err(IndexError::Io {
            path: root.to_path_buf(),
            source: io::Error::other("a thread walking the build context stopped early"),
        });
    }
    Ok(parts.into_iter().flatten().collect())
}

/// Reads one directory of the walk: its kept entries into `found`, directories to descend
/// into into `subdirs`.
fn read_one_dir(
    abs: &Path,
    rel: &str,
    ignore: &Matcher,
    found: &mut Vec<(Pending, bool)>,
    subdirs: &mut Vec<(PathBuf, String)>,
) -> Result<(), IndexError> {
    let rd = fs::read_dir(abs).map_err(io_err(abs))?;
    for ent in rd {
        let ent = ent.map_err(io_err(abs))?;
        let name = ent.file_name();
        // Names are bytes: one that is not UTF-8 is carried escaped (see `names`).
        let name = crate::names::encode(&name);
        let child_rel = join(rel, &name);
        let ignored = ignore.is_ignored_in_walk(&child_rel);
        // d_type tells files that are ignored apart without a stat.
        if ignored && ent.file_type().is_ok_and(|t| !t.is_dir()) {
            continue;
        }
        // Does not follow symlinks, like symlink_metadata.
        let md = ent.metadata().map_err(|e| IndexError::Io {
            path: ent.path(),
            source: e,
        })?;
        if md.is_dir() {
            if ignored && !ignore.may_reinclude_below(&child_rel) {
                continue;
            }
            subdirs.push((ent.path(), child_rel.clone()));
            found.push((
                Pending {
                    path: child_rel,
                    md,
                },
                !ignored,
            ));
        } else if !ignored {
            found.push((
                Pending {
                    path: child_rel,
                    md,
                },
                true,
            ));
        }
    }
    Ok(())
}

fn hash_parallel(
    root: &Path,
    work: &[(String, StatKey)],
    jobs: usize,
) -> Result<Vec<(Digest, u64)>, IndexError> {
    if work.is_empty() {
        return Ok(Vec::new());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Slot = std::sync::Mutex<Option<Result<(Digest, u64), IndexError>>>;
    let results: Vec<Slot> = work.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(work.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, _)) = work.get(i) else { break };
                let abs = root.join(crate::names::path(path));
                let r = hash_file(&abs).map_err(|source| IndexError::Io { path: abs, source });
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(IndexError::Io {
                    path: root.to_path_buf(),
                    source: io::Error::other("a hashing thread stopped early"),
                })
            })
        })
        .collect()
}

/// Hex form of a digest.
pub fn hex(d: &Digest) -> String {
    hex::encode(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("src/a")).unwrap();
        fs::create_dir_all(r.join("node_modules/x")).unwrap();
        fs::write(r.join("src/main.go"), "package main").unwrap();
        fs::write(r.join("src/a/b.txt"), "b").unwrap();
        fs::write(r.join("go.mod"), "module x").unwrap();
        fs::write(r.join("node_modules/x/i.js"), "x").unwrap();
        fs::write(r.join("README.md"), "hi").unwrap();
        symlink("main.go", r.join("src/link")).unwrap();
        t
    }

    fn scan(root: &Path, ignore: &str, cache: &mut MemoryStatCache) -> Index {
        let m = Matcher::parse(ignore, ".dockerignore").unwrap();
        Index::scan(root, &m, cache, 2).unwrap()
    }

    #[test]
    fn ignores_and_indexes() {
        let t = tree();
        let mut c = MemoryStatCache::default();
        let idx = scan(t.path(), "node_modules\n*.md\n", &mut c);
        let paths: Vec<&str> = idx.paths().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "",
                "go.mod",
                "src",
                "src/a",
                "src/a/b.txt",
                "src/link",
                "src/main.go"
            ]
        );
        assert_eq!(
            idx.get("src/link").unwrap().link.as_deref(),
            Some("main.go")
        );
        assert_eq!(idx.stats.files_hashed, 3);
    }

    #[test]
    fn digests_follow_content_and_mode_not_time() {
        let t = tree();
        let mut c = MemoryStatCache::default();
        let a = scan(t.path(), "", &mut c);
        // Rewrite with the same content: new mtime, same digests; the file is re-hashed once.
        fs::write(t.path().join("go.mod"), "module x").unwrap();
        let b = scan(t.path(), "", &mut c);
        assert_eq!(a.get("").unwrap().digest, b.get("").unwrap().digest);
        assert!(b.stats.files_hashed <= 1);
        // Nothing changed: nothing is read.
        let b2 = scan(t.path(), "", &mut c);
        assert_eq!(b2.stats.files_hashed, 0);
        // Content change: the file, its parents change; siblings do not.
        fs::write(t.path().join("src/a/b.txt"), "B").unwrap();
        let d = scan(t.path(), "", &mut c);
        assert_ne!(
            a.get("src/a/b.txt").unwrap().digest,
            d.get("src/a/b.txt").unwrap().digest
        );
        assert_ne!(a.get("src").unwrap().digest, d.get("src").unwrap().digest);
        assert_eq!(
            a.get("go.mod").unwrap().digest,
            d.get("go.mod").unwrap().digest
        );
        // Mode change counts.
        let p = t.path().join("go.mod");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let e = scan(t.path(), "", &mut c);
        assert_ne!(
            d.get("go.mod").unwrap().digest,
            e.get("go.mod").unwrap().digest
        );
    }

    #[test]
    fn saved_stat_cache_spares_rereading_and_forgets_deleted_files() {
        let t = tree();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ctx.stat");
        let mut c = MemoryStatCache::load(&file);
        assert!(c.is_empty(), "a missing file is an empty cache");
        let a = scan(t.path(), "", &mut c);
        assert_eq!(a.stats.files_hashed, 5);
        c.save(&file, &a).unwrap();
        let mut c = MemoryStatCache::load(&file);
        assert_eq!(c.len(), 5);
        let b = scan(t.path(), "", &mut c);
        assert_eq!(
            b.stats.files_hashed, 0,
            "every digest came from the saved cache"
        );
        assert_eq!(a.get("").unwrap().digest, b.get("").unwrap().digest);
        // A deleted file leaves the saved cache; an ignored one too.
        fs::remove_file(t.path().join("README.md")).unwrap();
        let d = scan(t.path(), "node_modules", &mut c);
        c.save(&file, &d).unwrap();
        assert_eq!(MemoryStatCache::load(&file).len(), 3);
        // Damaged or foreign files are an empty cache, never an error or a wrong digest.
        let saved = fs::read(&file).unwrap();
        for bad in [&saved[..saved.len() / 2], b"{\"map\":{}}", &[0xff; 64][..]] {
            fs::write(&file, bad).unwrap();
            assert!(MemoryStatCache::load(&file).is_empty());
        }
    }

    #[test]
    fn changes_since_the_last_scan_are_edits_new_and_gone_files_not_touches() {
        let t = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c"] {
            fs::write(t.path().join(n), n).unwrap();
        }
        let saved = tempfile::tempdir().unwrap();
        let file = saved.path().join("ctx.stat");
        let rescan = |c: &mut MemoryStatCache| -> Option<Vec<String>> {
            let idx = scan(t.path(), "", c);
            let changed = c.changed_since_load(&idx);
            c.save(&file, &idx).unwrap();
            *c = MemoryStatCache::load(&file);
            changed
        };
        let mut c = MemoryStatCache::default();
        assert_eq!(rescan(&mut c), None, "no previous scan: unknown");
        assert_eq!(rescan(&mut c), Some(vec![]), "nothing changed");
        // A touch changes the stat key but not the content.
        let f = fs::File::options()
            .append(true)
            .open(t.path().join("a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(9))
            .unwrap();
        assert_eq!(rescan(&mut c), Some(vec![]));
        fs::write(t.path().join("b"), "edited").unwrap();
        fs::write(t.path().join("d"), "new").unwrap();
        fs::remove_file(t.path().join("c")).unwrap();
        assert_eq!(
            rescan(&mut c),
            Some(vec!["b".to_string(), "c".to_string(), "d".to_string()])
        );
    }

    #[test]
    fn walk_uses_every_thread_count_alike() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..40 {
            let d = t.path().join(format!("d{}/e{}", i % 7, i % 3));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        let m = Matcher::parse("d1\n**/f3*\n!d1/e0\n", "x").unwrap();
        let digests: Vec<_> = [1, 2, 5]
            .iter()
            .map(|&jobs| {
                let mut c = MemoryStatCache::default();
                let idx = Index::scan(t.path(), &m, &mut c, jobs).unwrap();
                let paths: Vec<String> = idx.paths().map(|(p, _)| p.clone()).collect();
                (idx.get("").unwrap().digest, paths)
            })
            .collect();
        assert!(digests.windows(2).all(|w| w[0] == w[1]));
        assert!(digests[0].1.iter().any(|p| p == "d1/e0/f15"), "re-included");
        assert!(!digests[0].1.iter().any(|p| p == "d1/e1/f1"));
        assert!(!digests[0].1.iter().any(|p| p.ends_with("/f3")));
    }

    #[test]
    fn reinclude_inside_ignored_dir() {
        let t = tree();
        let mut c = MemoryStatCache::default();
        let idx = scan(t.path(), "node_modules\n!node_modules/x/i.js\n", &mut c);
        assert!(idx.get("node_modules/x/i.js").is_some());
        let idx = scan(t.path(), "src\n!src/nothing-here\n", &mut c);
        assert!(
            idx.get("src").is_none(),
            "an empty walked-through dir is dropped"
        );
    }

    #[test]
    fn not_a_directory() {
        let t = tree();
        let mut c = MemoryStatCache::default();
        let r = Index::scan(&t.path().join("go.mod"), &Matcher::default(), &mut c, 1);
        assert!(matches!(r, Err(IndexError::NotADirectory(_))));
    }
}
