//! Where copies and bind mounts read from: the build context's index (with its stat cache),
//! the indexes of local `--build-context` directories, and the content digests of files copied
//! from a stage or image.

use super::*;
use crate::record::TreeRecord;

/// The files of a context whose content changed since its last scan.
pub(super) type Changes = Option<Arc<Vec<String>>>;

impl Solver<'_> {
    /// The build context's index (scanned with its stat cache, which is rewritten only when
    /// something changed: new digests, or files gone).
    pub(super) fn context_index(&self) -> Result<(Arc<Index>, Changes)> {
        let cache_file = self.stat_cache_file();
        let mut cache = MemoryStatCache::load(&cache_file);
        let idx = Index::scan(
            &self.opts.context,
            &self.opts.ignore,
            &mut cache,
            self.opts.threads(),
        )
        .map_err(|e| BuildError::Context(e.to_string()))?;
        let changes = cache.changed_since_load(&idx).map(Arc::new);
        if idx.stats.files_hashed > 0 || cache.len() != idx.stats.files {
            let _ = cache.save(&cache_file, &idx);
        }
        Ok((Arc::new(idx), changes))
    }

    /// A local directory copies and bind mounts read (the build context, or a named one), its
    /// index, and for the build context the files changed since its last scan. The graph has
    /// one context vertex per directory, so each is scanned once.
    pub(super) fn local_dir(&self, name: Option<&str>) -> Result<(PathBuf, Arc<Index>, Changes)> {
        match name {
            Some(name) => {
                let (root, idx) = self.named_index(name)?;
                Ok((root, idx, None))
            }
            None => {
                let (idx, changes) = self.context_index()?;
                Ok((self.opts.context.clone(), idx, changes))
            }
        }
    }

    /// A local `--build-context` directory and its index (its own `.dockerignore` applied).
    pub(super) fn named_index(&self, name: &str) -> Result<(PathBuf, Arc<Index>)> {
        let root = self.opts.named_contexts.get(name).cloned().ok_or_else(|| {
            BuildError::Context(format!("no --build-context named {name:?} was given"))
        })?;
        let what = |e: String| BuildError::Context(format!("--build-context {name}: {e}"));
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Matcher::parse(&text, &format!("{}/.dockerignore", root.display()))
                .map_err(|e| what(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Matcher::default(),
            Err(e) => return Err(what(format!("cannot read its .dockerignore: {e}"))),
        };
        let mut cache = MemoryStatCache::default();
        let idx = Arc::new(
            Index::scan(&root, &ignore, &mut cache, self.opts.threads())
                .map_err(|e| what(e.to_string()))?,
        );
        Ok((root, idx))
    }

    pub(super) fn stat_cache_file(&self) -> PathBuf {
        let abs =
            std::fs::canonicalize(&self.opts.context).unwrap_or_else(|_| self.opts.context.clone());
        // One cache per context directory and set of ignore rules: builds of the same
        // directory with different .dockerignore files keep each other's digests.
        let mut h = Sha256::new();
        h.update(abs.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(self.opts.ignore.fingerprint().as_bytes());
        let h = hex::encode(h.finalize());
        let dir = self.store.root().join("contexts");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{}.stat", &h[..32]))
    }

    /// What a `COPY --from` reads, for its cache key: each source pattern with the paths the
    /// copy's own selector picks (wildcards, links followed: [`copy::Source::select`]) and the
    /// Merkle digest of each ([`Merged::tree_digest`], the context's scheme). A change elsewhere
    /// in that stage keeps the COPY cached, as in BuildKit. Digests are memoized per source
    /// snapshot and path.
    pub(super) fn copied_content(
        &self,
        st: &Output,
        merged: &Merged,
        sources: &[String],
        files: &mut serde_json::Map<String, Value>,
    ) -> std::result::Result<String, String> {
        let src = copy::Source::Merged(merged);
        let mut id = String::new();
        for pattern in sources {
            id.push_str(pattern);
            id.push('\n');
            // A source that is not there is keyed as missing; the copy then says what is wrong.
            let selected = src.select(pattern).unwrap_or_else(|_| {
                let p = crate::merged::components(pattern).join("/");
                vec![(p.clone(), p)]
            });
            for (shown, read) in selected {
                let digest = self.tree_record(st, merged, &read)?;
                id.push_str(&format!("{shown}={digest}\n"));
                files.insert(shown, json!(digest));
            }
        }
        Ok(id)
    }

    /// The digest of one path of a snapshot stack, remembered in the cache by the stack's
    /// chain id (a snapshot never changes).
    fn tree_record(
        &self,
        st: &Output,
        merged: &Merged,
        path: &str,
    ) -> std::result::Result<String, String> {
        // `tree2`: the context's Merkle scheme (`tree` records used another one).
        let memo = format!("tree2:{}:{path}", st.content_id());
        let known = self
            .store
            .get_cache(&memo)
            .map_err(|e| e.to_string())?
            .and_then(|rec| crate::record::decode::<TreeRecord>(&rec.result));
        let rec = match known {
            Some(rec) => rec,
            None => {
                let rec = TreeRecord {
                    digest: merged
                        .tree_digest(path)
                        .map_err(|e| format!("/{path}: {e}"))?
                        .map(hex::encode),
                };
                self.store
                    .put_cache(&memo, &crate::record::encode(&rec), None)
                    .map_err(|e| e.to_string())?;
                rec
            }
        };
        Ok(rec.digest.unwrap_or_else(|| "missing".to_string()))
    }
}
