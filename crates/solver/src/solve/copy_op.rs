//! Copy and download vertices (COPY, ADD): selecting and keying their sources, copying into a
//! new snapshot, and ADD's URL downloads.

use super::*;
use whittle_graph::{Copy, Download};

impl Solver<'_> {
    pub(super) fn copy(
        &self,
        v: VertexId,
        vx: &Vertex,
        c: &Copy<VertexId>,
        onto: &Output,
        from: &Output,
        users: Option<&Output>,
    ) -> Result<Output> {
        let fail = |message: String| self.step_error(vx, message);
        let kw = if c.add { "ADD" } else { "COPY" };
        // Where the files come from, and what identifies them for the cache key: the digests
        // of exactly what the copy selects.
        let merged_src;
        let mut files = serde_json::Map::new();
        let mut notes = serde_json::Map::new();
        let changes = from.changes.as_deref().map(Vec::as_slice);
        let (src, src_id): (copy::Source, String) = match &from.local {
            Some((root, index)) => (
                copy::Source::Context { root, index },
                local_source_id(index, root, &c.sources, changes, &mut files, &mut notes),
            ),
            None => {
                merged_src = from.merged();
                // From an imported stage, the selection recorded with the cache keys the copy
                // without its files.
                let id = match self.imported_selection(from, &c.sources, &mut files) {
                    Some(id) => id,
                    None => {
                        self.ensure_files(from)?;
                        self.copied_content(from, &merged_src, &c.sources, &mut files)
                            .map_err(fail)?
                    }
                };
                self.note_selection(from, &c.sources, &id, &files);
                (copy::Source::Merged(&merged_src), id)
            }
        };
        if c.owner.chown.is_some() {
            // --chown names are looked up in the stage's files.
            self.ensure_files(users.unwrap_or(onto))?;
        }
        let (chown, chmod) = copy_settings(&c.owner, users, onto).map_err(fail)?;
        let inline: Vec<(String, String)> = c
            .inline
            .iter()
            .map(|f| (f.name.clone(), f.content.clone()))
            .collect();
        let owner_key = format!("{chown:?}");
        // The source is in the key by the content of what is selected, not by its key or its
        // definition (`key_definition`): a builder stage that ran again but made the same
        // files keeps the copy cached.
        let key = cache_key(
            &self.graph.key_definition(v),
            &[&onto.key],
            &[src_id.as_bytes(), owner_key.as_bytes()],
        );
        // Incremental COPY: the files of this step's last snapshot whose sources are unchanged
        // are linked, not copied (local sources only: their index has each file's digest).
        let step = self.step_name(&self.origin(vx));
        let copied = Mutex::new(Vec::new());
        let out = self.layer_step_hinted(
            vx,
            onto,
            key,
            json!({"files": files, "owner": owner_key, "changed": notes}),
            &[from],
            |dir, below, _| {
                // Read on a miss only: a no-change build does not load the manifest.
                let previous = match &src {
                    copy::Source::Context { .. } => self.store.copy_manifest(&step),
                    copy::Source::Merged(_) => None,
                };
                let previous_dir = previous
                    .as_ref()
                    .map(|m| self.store.snapshot_path(&m.chain));
                let reuse = previous
                    .as_ref()
                    .zip(previous_dir.as_deref())
                    .map(|(m, d)| copy::Reuse {
                        dir: d,
                        digests: &m.files,
                    });
                let req = CopyRequest {
                    keyword: kw,
                    sources: &c.sources,
                    inline: &inline,
                    dest: c.dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &c.excludes,
                    parents: c.parents,
                    unpack_archives: c.unpack,
                    keep_owner: c.keep_owner,
                };
                let o = copy::copy_into_reusing(&req, &src, below, dir, reuse.as_ref())
                    .map_err(|e| e.to_string())?;
                if let Ok(mut c) = copied.lock() {
                    *c = o.digests;
                }
                // The files linked from the last snapshot: its layer's blocks holding only
                // those are taken as they are.
                Ok(previous
                    .filter(|_| !o.linked.is_empty())
                    .map(|m| super::LayerHint {
                        previous: m.chain,
                        linked: o.linked,
                    }))
            },
        )?;
        // A new snapshot: the next build of this step takes its files from it.
        let files = copied.into_inner().unwrap_or_default();
        if let (true, Some(l), false) = (out.added, out.layers.last(), files.is_empty()) {
            let m = whittle_store::CopyManifest {
                chain: l.chain_id.clone(),
                files,
            };
            // Only a hint for the next build: failing to write it fails nothing.
            let _ = self.store.put_copy_manifest(&step, &m);
        }
        Ok(out)
    }

    /// `ADD <url>... <dest>`: downloads become files of mode 0600 (as Docker), owned by root
    /// unless `--chown`, never unpacked. With `--checksum` the cache key is the checksum, so a
    /// hit downloads nothing; without it the content is downloaded and its digest is the key.
    pub(super) fn download(
        &self,
        v: VertexId,
        vx: &Vertex,
        d: &Download<VertexId>,
        onto: &Output,
        users: Option<&Output>,
    ) -> Result<Output> {
        let fail = |message: String| self.step_error(vx, message);
        let dir = self.store.root().join("snapshots");
        let dl = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(&dir)
            .map_err(|source| BuildError::Io {
                what: "create a download dir in",
                path: dir.clone(),
                source,
            })?;
        let mut names: Vec<String> = Vec::new();
        let mut id = String::new();
        let mut files = serde_json::Map::new();
        for url in &d.urls {
            let name = crate::fetch::file_name(url);
            if names.contains(&name) {
                return Err(fail(format!("two URLs download to the same name {name:?}")));
            }
            let digest = match &d.checksum {
                Some(sum) => sum.clone(),
                None => {
                    self.progress.event(Event::Note {
                        message: format!("downloading {url}"),
                    });
                    crate::fetch::download(url, &dl.path().join(&name), None)
                        .map_err(|e| fail(e.to_string()))?
                }
            };
            id.push_str(&format!("{url}={digest}\n"));
            files.insert(url.clone(), json!(digest));
            names.push(name);
        }
        if d.owner.chown.is_some() {
            self.ensure_files(users.unwrap_or(onto))?;
        }
        let (chown, chmod) = copy_settings(&d.owner, users, onto).map_err(fail)?;
        let owner_key = format!("{chown:?}");
        let key = cache_key(
            &self.graph.key_definition(v),
            &[&onto.key],
            &[id.as_bytes(), owner_key.as_bytes()],
        );
        self.layer_step(
            vx,
            onto,
            key,
            json!({"files": files, "owner": owner_key}),
            &[],
            |dir, below, _| {
                use std::os::unix::fs::PermissionsExt;
                for (url, name) in d.urls.iter().zip(&names) {
                    let p = dl.path().join(name);
                    if !p.exists() {
                        crate::fetch::download(url, &p, d.checksum.as_deref())
                            .map_err(|e| e.to_string())?;
                    }
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| e.to_string())?;
                }
                let mut cache = MemoryStatCache::default();
                let index = Index::scan(dl.path(), &Matcher::default(), &mut cache, 1)
                    .map_err(|e| e.to_string())?;
                let src = copy::Source::Context {
                    root: dl.path(),
                    index: &index,
                };
                let req = CopyRequest {
                    keyword: "ADD",
                    sources: &names,
                    inline: &[],
                    dest: d.dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &[],
                    parents: false,
                    unpack_archives: false,
                    keep_owner: false,
                };
                copy::copy_into(&req, &src, below, dir)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
    }
}

/// What identifies COPY sources read from a local directory (the context or a named one) for
/// the cache key: each pattern with the paths it selects and their digests (also noted in
/// `files`, to explain the next miss).
fn local_source_id(
    index: &Index,
    root: &Path,
    sources: &[String],
    changes: Option<&[String]>,
    files: &mut serde_json::Map<String, Value>,
    notes: &mut serde_json::Map<String, Value>,
) -> String {
    let mut id = String::new();
    for s in sources {
        id.push_str(s);
        id.push('\n');
        for (p, d) in fingerprint(index, root, s) {
            id.push_str(&format!("{p}={d}\n"));
            explain_files(index, &p, &d, changes, files, notes);
        }
    }
    id
}
