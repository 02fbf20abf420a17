//! COPY and ADD steps: selecting and keying their sources, copying into a new snapshot, and
//! ADD's URL downloads.

use super::*;

impl Solver<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_step(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        kw: &'static str,
        c: &CopyOp,
        summary: &str,
        _op_json: &[u8],
        state: &mut StageState,
        inputs: &HashMap<usize, Arc<StageState>>,
    ) -> Result<()> {
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        if c.sources
            .iter()
            .any(|s| s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#"))
        {
            return Err(fail(
                "git repositories as ADD sources are not supported yet: clone in a RUN step or copy a checkout from the context".into(),
            ));
        }
        let urls = c.sources.iter().filter(|s| crate::fetch::is_url(s)).count();
        if urls > 0 {
            if kw == "COPY" {
                return Err(fail("COPY cannot download URLs: use ADD".into()));
            }
            if urls != c.sources.len() {
                return Err(fail(
                    "one ADD cannot mix URLs and local files: split it into two ADD instructions"
                        .into(),
                ));
            }
            return self.add_urls(stage, label, step, c, summary, state);
        }
        if c.checksum.is_some() {
            return Err(fail("--checksum applies to URL sources only".into()));
        }
        // Where the files come from, and what identifies them for the cache key.
        let index;
        let named;
        let merged_src;
        let mut files = serde_json::Map::new();
        let (src, src_id): (copy::Source, String) = match &c.from {
            Source::Named { name } => {
                named = self.named_index(name)?;
                let id = format!("context {name}\n")
                    + &local_source_id(&named.1, &named.0, &c.sources, &mut files);
                (
                    copy::Source::Context {
                        root: &named.0,
                        index: &named.1,
                    },
                    id,
                )
            }
            Source::Context => {
                index = self.context_index()?;
                let id = local_source_id(&index, &self.opts.context, &c.sources, &mut files);
                (
                    copy::Source::Context {
                        root: &self.opts.context,
                        index: &index,
                    },
                    id,
                )
            }
            Source::Stage { index: j } => {
                let st = inputs
                    .get(j)
                    .ok_or_else(|| fail(format!("stage {j} did not finish")))?;
                merged_src = st.merged();
                let id = self
                    .copied_content(st, &merged_src, &c.sources, &mut files)
                    .map_err(fail)?;
                (copy::Source::Merged(&merged_src), id)
            }
            Source::Image { reference } => {
                let st = self.base_image(reference, &self.platform(stage))?;
                merged_src = st.merged();
                (copy::Source::Merged(&merged_src), st.content_id())
            }
        };
        let (chown, chmod, dest) = copy_settings(c, &state.merged()).map_err(fail)?;
        let inline: Vec<(String, String)> = c
            .inline
            .iter()
            .map(|f| (f.name.clone(), f.content.clone()))
            .collect();
        let local = matches!(c.from, Source::Context | Source::Named { .. });
        let unpack = kw == "ADD" && c.unpack != Some(false) && local;
        let keep_owner = !local;
        let owner_key = format!("{chown:?}");
        self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "copy",
            &[src_id.as_bytes(), owner_key.as_bytes()],
            json!({"files": files, "owner": owner_key}),
            |dir, below, _| {
                let req = CopyRequest {
                    keyword: kw,
                    sources: &c.sources,
                    inline: &inline,
                    dest: dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &c.excludes,
                    parents: c.parents,
                    unpack_archives: unpack,
                    keep_owner,
                };
                // --link: the layer is made on its own, as if on an empty filesystem (BuildKit:
                // symlinks and directories of the stage below are not looked at).
                let nothing = Merged::new(Vec::new());
                let below = if c.link { &nothing } else { below };
                copy::copy_into(&req, &src, below, dir)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
    }

    /// `ADD <url>... <dest>`: downloads become files of mode 0600 (as Docker), owned by root
    /// unless `--chown`, never unpacked. With `--checksum` the cache key is the checksum, so a
    /// hit downloads nothing; without it the content is downloaded and its digest is the key.
    pub(super) fn add_urls(
        &self,
        stage: usize,
        label: &str,
        step: &Step,
        c: &CopyOp,
        summary: &str,
        state: &mut StageState,
    ) -> Result<()> {
        let fail = |message: String| BuildError::Step {
            stage: self.stage_label(stage),
            line: step.pos.line,
            summary: summary.to_string(),
            message,
        };
        let dl = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(self.store.root().join("snapshots"))
            .map_err(|e| fail(format!("cannot create a download dir: {e}")))?;
        let mut names: Vec<String> = Vec::new();
        let mut id = String::new();
        let mut files = serde_json::Map::new();
        if let (Some(sum), true) = (&c.checksum, c.sources.len() != 1) {
            return Err(fail(format!("--checksum={sum} needs exactly one URL")));
        }
        for url in &c.sources {
            let name = crate::fetch::file_name(url);
            if names.contains(&name) {
                return Err(fail(format!("two URLs download to the same name {name:?}")));
            }
            let digest = match &c.checksum {
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
        let (chown, chmod, dest) = copy_settings(c, &state.merged()).map_err(fail)?;
        let owner_key = format!("{chown:?}");
        self.layer_step(
            stage,
            label,
            step,
            summary,
            state,
            "add-url",
            &[id.as_bytes(), owner_key.as_bytes()],
            json!({"files": files, "owner": owner_key}),
            |dir, below, _| {
                use std::os::unix::fs::PermissionsExt;
                for (url, name) in c.sources.iter().zip(&names) {
                    let p = dl.path().join(name);
                    if !p.exists() {
                        crate::fetch::download(url, &p, c.checksum.as_deref())
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
                    dest: dest.clone(),
                    chown,
                    chmod: chmod.clone(),
                    excludes: &[],
                    parents: false,
                    unpack_archives: false,
                    keep_owner: false,
                };
                let nothing = Merged::new(Vec::new());
                let below = if c.link { &nothing } else { below };
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
    files: &mut serde_json::Map<String, Value>,
) -> String {
    let mut id = String::new();
    for s in sources {
        id.push_str(s);
        id.push('\n');
        for (p, d) in fingerprint(index, root, s) {
            id.push_str(&format!("{p}={d}\n"));
            explain_files(index, &p, &d, files);
        }
    }
    id
}
