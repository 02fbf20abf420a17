//! `whittle plan`: parse a Dockerfile and show what a build would do.

use anyhow::Context;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_dockerfile::plan::{Base, DepKind, Source};
use whittle_dockerfile::{ImageInfo, ImageResolver, Plan, PlanOptions, Platform};

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The build context directory (the Dockerfile is looked up in it by default).
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// Path to the Dockerfile (`-` reads it from standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The stage to build; by default the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// A build-time variable, `KEY=VALUE`, or `KEY` to take its value from the environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = super::plan::parse_build_arg)]
    pub build_args: Vec<String>,
    /// The target platform (os/arch[/variant]); the host's by default.
    #[arg(long)]
    pub platform: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The stages, their order and expanded steps, for people.
    Text,
    /// The build graph: vertices with their definition digests, and each stage as an image.
    Json,
    /// The build graph in Graphviz's DOT language (`| dot -Tsvg > graph.svg`).
    Dot,
    /// The frontend's plan (stages and expanded steps) before it is lowered to a graph.
    PlanJson,
}

/// The Dockerfile's display name and text.
pub struct DockerfileText {
    pub name: String,
    pub text: String,
}

/// Reads the Dockerfile named by `-f` (or `CONTEXT/Dockerfile`), or stdin for `-`.
pub fn read_dockerfile(context: &Path, file: Option<&Path>) -> anyhow::Result<DockerfileText> {
    match file {
        Some(p) if p == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from standard input")?;
            Ok(DockerfileText {
                name: "<stdin>".into(),
                text,
            })
        }
        _ => {
            let path = match file {
                Some(p) => p.to_path_buf(),
                None => context.join("Dockerfile"),
            };
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read the Dockerfile {} (name another one with -f)",
                    path.display()
                )
            })?;
            let text = String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })?;
            Ok(DockerfileText {
                name: path.display().to_string(),
                text,
            })
        }
    }
}

/// `--build-arg K=V` and `--build-arg K` (value from the environment; dropped when unset there).
/// Checks one `--build-arg` value: a name (no `=`, no blanks), optionally `=VALUE`.
pub fn parse_build_arg(v: &str) -> Result<String, String> {
    let name = v.split_once('=').map_or(v, |(k, _)| k);
    if name.is_empty() {
        return Err(
            "the name is empty: write --build-arg NAME=VALUE, or NAME alone to take \
                    its value from the environment"
                .into(),
        );
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{:?} is not a variable name: names have no blanks or control characters",
            name
        ));
    }
    Ok(v.to_string())
}

/// A `--jobs` value: at least 1.
pub fn parse_jobs(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{v:?} is not a whole number")),
    }
}

pub fn resolve_build_args(raw: &[String]) -> Vec<(String, String)> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// Base images known to the local store: their ENV, WORKDIR, SHELL and ONBUILD feed the plan.
/// `pinned` holds the manifests references were resolved to before the build (see
/// `frompull`); other references are looked up by tag.
pub struct StoreImages {
    pub store: whittle_store::Store,
    pub pinned: std::collections::HashMap<String, whittle_store::Digest>,
}

impl StoreImages {
    pub fn new(store: whittle_store::Store) -> Self {
        StoreImages {
            store,
            pinned: Default::default(),
        }
    }
}

impl StoreImages {
    /// The stored image `reference` names (the pinned one for `platform` if there is one) and
    /// its config.
    pub fn lookup(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Option<(whittle_store::ImageRecord, serde_json::Value)> {
        let image = match self
            .pinned
            .get(&super::frompull::image_key(reference, platform))
        {
            Some(d) => self.store.put_image(d).ok()?,
            None => match self.store.resolve(reference) {
                Ok(t) => t.image,
                // `name:tag@sha256:...`: the image with that manifest digest, if stored.
                Err(_) => {
                    let (_, digest) = reference.rsplit_once('@')?;
                    let t = self.store.resolve(digest).ok()?;
                    (t.image.manifest.to_string() == digest).then_some(t.image)?
                }
            },
        };
        let (_, config) = self.store.manifest_and_config(&image).ok()?;
        Some((image, config))
    }
}

impl ImageResolver for StoreImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<ImageInfo> {
        let (image, config) = self.lookup(reference, platform)?;
        let mut info = image_info(&config);
        info.manifest = Some(image.manifest.to_string());
        Some(info)
    }
}

/// What the planner needs from an OCI/Docker image config.
pub fn image_info(config: &serde_json::Value) -> ImageInfo {
    let c = &config["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    ImageInfo {
        env: strings(&c["Env"])
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect(),
        workdir: c["WorkingDir"].as_str().map(str::to_string),
        shell: Some(strings(&c["Shell"])).filter(|s| !s.is_empty()),
        onbuild: strings(&c["OnBuild"]),
        user: c["User"].as_str().map(str::to_string),
        manifest: None,
    }
}

/// The `.dockerignore` that applies: `<Dockerfile>.dockerignore` next to the Dockerfile wins
/// over `CONTEXT/.dockerignore`. Returns its path and text.
pub fn find_ignore(context: &Path, dockerfile: Option<&Path>) -> Option<(PathBuf, String)> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile.filter(|p| *p != Path::new("-")) {
        let mut name = df.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(PathBuf::from(name));
    }
    candidates.push(context.join(".dockerignore"));
    candidates
        .into_iter()
        .find_map(|c| std::fs::read_to_string(&c).ok().map(|text| (c, text)))
}

/// The store at `--root` (or the default root) if one exists there; `plan` and `check` never
/// create one.
pub fn existing_store(root: Option<&Path>) -> Option<whittle_store::Store> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(whittle_store::default_root);
    if !root.join("oci-layout").is_file() {
        return None;
    }
    whittle_store::Store::open(&root).ok()
}

pub fn run(args: PlanArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let src = read_dockerfile(&args.context, args.file.as_deref())?;
    let mut opts = PlanOptions {
        target: args.target.clone(),
        build_args: resolve_build_args(&args.build_args),
        ..PlanOptions::default()
    };
    if let Some(p) = &args.platform {
        opts.target_platform = Platform::parse(p).with_context(|| {
            format!("--platform {p:?} is not a platform: write os/arch[/variant], e.g. linux/arm64")
        })?;
    }
    let df = match whittle_dockerfile::parse(&src.text) {
        Ok(df) => df,
        Err(e) => {
            eprint!("{}", e.render(&src.name, &src.text));
            return Ok(ExitCode::from(1));
        }
    };
    let images: Box<dyn ImageResolver> = match existing_store(root) {
        Some(store) => Box::new(StoreImages::new(store)),
        None => Box::new(whittle_dockerfile::plan::NoImages),
    };
    let resolved = whittle_dockerfile::plan_with(&df, &opts, images.as_ref());
    let plan = match resolved {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", e.render(&src.name, &src.text));
            return Ok(ExitCode::from(1));
        }
    };
    let graph = || match whittle_dockerfile::lower(&plan, images.as_ref()) {
        Ok(g) => Ok(g),
        Err(e) => Err(anyhow::anyhow!(
            "{}:{}: {}: {}",
            src.name,
            e.line,
            e.instruction,
            e.message
        )),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&graph()?)?),
        Format::Dot => print!("{}", whittle_graph::to_dot(&graph()?)),
        Format::PlanJson => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Text => print!("{}", render_text(&plan, &src.name)),
    }
    Ok(ExitCode::SUCCESS)
}

fn stage_title(plan: &Plan, i: usize) -> String {
    let s = &plan.stages[i];
    match &s.name {
        Some(n) => format!("stage {i} \"{n}\""),
        None => format!("stage {i}"),
    }
}

fn label(plan: &Plan, i: usize) -> String {
    plan.stages[i].label()
}

/// The human-readable plan.
pub fn render_text(plan: &Plan, file: &str) -> String {
    let mut o = String::new();
    let built = plan.order.len();
    let total = plan.stages.len();
    let _ = writeln!(
        o,
        "{file}: target {} ({}), platform {}",
        label(plan, plan.target),
        if plan.target + 1 == total {
            "the last stage".to_string()
        } else {
            "--target".to_string()
        },
        plan.target_platform
    );
    let _ = writeln!(
        o,
        "builds {built} of {total} stage{}",
        if total == 1 { "" } else { "s" }
    );
    for (n, wave) in plan.waves.iter().enumerate() {
        let names: Vec<String> = wave.iter().map(|&i| label(plan, i)).collect();
        let par = if wave.len() > 1 {
            "  (in parallel)"
        } else {
            ""
        };
        let _ = writeln!(o, "  wave {}: {}{par}", n + 1, names.join(", "));
    }
    let labels = plan.labels();
    for &i in &plan.order {
        let s = &plan.stages[i];
        let _ = writeln!(o);
        let base = match &s.base {
            Base::Scratch => "scratch".to_string(),
            Base::Image { reference } => reference.clone(),
            Base::Stage { index } => format!("stage {}", label(plan, *index)),
        };
        let platform = s
            .platform
            .as_ref()
            .map(|p| format!(" --platform={p}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{} (line {}): FROM{platform} {base}",
            stage_title(plan, i),
            s.pos.line
        );
        // One entry per (stage, kind), listing the lines.
        let mut needs: Vec<(usize, DepKind, Vec<usize>)> = Vec::new();
        for d in s.deps.iter().filter(|d| d.kind != DepKind::From) {
            match needs
                .iter_mut()
                .find(|(st, k, _)| *st == d.stage && *k == d.kind)
            {
                Some(e) => e.2.push(d.line),
                None => needs.push((d.stage, d.kind, vec![d.line])),
            }
        }
        let needs: Vec<String> = needs
            .iter()
            .map(|(st, kind, lines)| {
                let how = match kind {
                    DepKind::From => "FROM",
                    DepKind::CopyFrom => "COPY --from",
                    DepKind::MountFrom => "RUN --mount from",
                };
                let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
                let word = if lines.len() == 1 { "line" } else { "lines" };
                format!("{} ({how}, {word} {})", label(plan, *st), lines.join(", "))
            })
            .collect();
        if !needs.is_empty() {
            let _ = writeln!(o, "  needs {}", needs.join(", "));
        }
        for step in &s.steps {
            let mut line = step.op.summary(&labels);
            if step.from_onbuild {
                line.push_str("   (ONBUILD trigger of the base)");
            }
            let _ = writeln!(o, "  {:>4}  {line}", step.pos.line);
            for img in step_images(&step.op) {
                let _ = writeln!(o, "        reads image {img}");
            }
        }
    }
    let skipped: Vec<usize> = (0..total).filter(|&i| !plan.stages[i].needed).collect();
    if !skipped.is_empty() {
        let _ = writeln!(o, "\nskipped:");
        for i in skipped {
            let s = &plan.stages[i];
            let _ = writeln!(
                o,
                "  {} (line {}): {}",
                stage_title(plan, i),
                s.pos.line,
                s.skip_reason.as_deref().unwrap_or("not needed")
            );
        }
    }
    if !plan.unused_build_args.is_empty() {
        let _ = writeln!(
            o,
            "\nwarning: build args not consumed by any ARG: {}",
            plan.unused_build_args.join(", ")
        );
    }
    if !plan.unresolved_images.is_empty() {
        let _ = writeln!(
            o,
            "\nnote: not in the local store, so the ENV they set is not applied above: {}",
            plan.unresolved_images.join(", ")
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(
            o,
            "warning: {file}:{}:{}: {}",
            w.pos.line,
            w.pos.col,
            whittle_dockerfile::printable(&w.message, 500)
        );
    }
    o
}

fn step_images(op: &whittle_dockerfile::plan::Op) -> Vec<String> {
    use whittle_dockerfile::plan::Op;
    let mut out = Vec::new();
    match op {
        Op::Copy(c) | Op::Add(c) => {
            if let Source::Image { reference } = &c.from {
                out.push(reference.clone());
            }
        }
        Op::Run { mounts, .. } => {
            for m in mounts {
                if let Some(Source::Image { reference }) = &m.source_ref {
                    out.push(reference.clone());
                }
            }
        }
        _ => {}
    }
    out
}
