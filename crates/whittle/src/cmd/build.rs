//! `whittle build`: a Dockerfile and a context into an image in the store.

use super::flags::{NetworkMode, OnFailure, ProgressMode};
use super::plan::{read_dockerfile, resolve_build_args, StoreImages};
use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use whittle_dockerfile::{PlanOptions, Platform};
use whittle_oci::Reference;
use whittle_solver::export::{Built, ExportEnv, OutputSpec, SpecError};
use whittle_solver::{BuildError, BuildOptions, Event, Progress};

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The build context directory, or `-` for a tar archive (plain or compressed) on standard
    /// input, or a Dockerfile on standard input with no context.
    pub context: PathBuf,
    /// Path to the Dockerfile (`-` reads it from standard input); default CONTEXT/Dockerfile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and tag for the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The stage to build; by default the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// A build-time variable, `KEY=VALUE`, or `KEY` to take its value from the environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = super::plan::parse_build_arg)]
    pub build_args: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages (repeatable).
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Network for RUN steps: `default` (an isolated network namespace with outbound access
    /// through slirp4netns or pasta, without the host's loopback; the host's network, with a
    /// warning, when neither is installed), `none` (loopback only) or `host` (the host's
    /// network, loopback services included; grants network.host, as buildx does).
    #[arg(long, value_enum, default_value = "default")]
    pub network: NetworkMode,
    /// Grant an entitlement (repeatable): `network.host` lets `RUN --network=host` use the
    /// host's network; `security.insecure` is accepted, but `RUN --security=insecure` is not
    /// supported yet.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = parse_entitlement)]
    pub allow: Vec<whittle_solver::Entitlement>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub secrets: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh` (repeatable): `default` or `ID` forward the
    /// agent of $SSH_AUTH_SOCK, `ID=SOCKET` another agent, `ID=KEY[,KEY...]` key files (held
    /// by a private ssh-agent for the build). Never stored in the image or the cache.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY...]]", value_parser = parse_ssh)]
    pub ssh: Vec<whittle_solver::ssh::SshSpec>,
    /// A named context (repeatable) that `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` read instead of the image or stage NAME: a directory,
    /// `docker-image://REF`, or `oci-layout://DIR[:TAG|@DIGEST]`.
    #[arg(
        long = "build-context",
        value_name = "NAME=DIR|docker-image://REF|oci-layout://DIR"
    )]
    pub build_contexts: Vec<String>,
    /// An annotation on the image manifest (repeatable): `KEY=VALUE`, or
    /// `manifest[PLATFORM]:KEY=VALUE` as buildx writes it.
    #[arg(long = "annotation", value_name = "[manifest[PLATFORM]:]KEY=VALUE")]
    pub annotations: Vec<String>,
    /// A resource limit for RUN steps (repeatable), as docker: `nofile=1024[:2048]`,
    /// `nproc=512`, `core=-1` (-1: unlimited).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = parse_ulimit)]
    pub ulimits: Vec<whittle_runtime::Rlimit>,
    /// Size of /dev/shm in RUN steps (default 64m): bytes, or with a unit b, k, m or g.
    #[arg(long = "shm-size", value_name = "SIZE", value_parser = parse_size)]
    pub shm_size: Option<u64>,
    /// An /etc/hosts entry for RUN steps (repeatable): `HOST:IP` (or `HOST=IP`).
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = parse_add_host)]
    pub add_hosts: Vec<(String, String)>,
    /// Security options for RUN steps, as `docker build` takes them: `seccomp=unconfined`
    /// (no seccomp filter), `apparmor=unconfined` and `no-new-privileges` (what whittle does
    /// anyway: it loads no AppArmor profile and always sets no_new_privs).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opts: Vec<String>,
    /// Metadata label for the image, `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The target platforms, comma-separated (`linux/amd64,linux/arm64`): one image each,
    /// under one image index when there are several. Default: the host's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT],...")]
    pub platform: Option<String>,
    /// Write the image id to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write the build result's metadata (image and config digests, names) as JSON here.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// After the build, print the image's analysis to standard error: its size, dive's
    /// efficiency figures and the findings with their fixes (`whittle analyze`'s text without
    /// the layer table and the inefficient files).
    #[arg(long)]
    pub analyze: bool,
    /// Progress output: auto, plain, tty, quiet or rawjson (one JSON event per line).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// At most this many RUN/COPY steps at once (default: no limit: every step whose inputs
    /// are ready runs, as in BuildKit).
    #[arg(long, value_parser = super::plan::parse_jobs)]
    pub jobs: Option<usize>,
    /// What to do when a RUN fails: `error` (report it), or `shell`: first open an
    /// interactive shell in the failed step's container (needs a terminal).
    #[arg(long, value_enum, default_value = "error")]
    pub on_failure: OnFailure,
    /// Where the result goes (repeatable): `type=image` (the store; the default),
    /// `type=oci|docker,dest=FILE` (an archive that skopeo, podman and `docker load` read),
    /// `type=tar,dest=FILE` or `type=local,dest=DIR` (the target stage's files). A bare path
    /// means `type=local,dest=PATH`, and `-` a tar of the files on standard output; `dest=-`
    /// writes an archive to standard output. Files are copied from the build's snapshots: a
    /// build with only file outputs compresses no layer.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH",
          value_parser = parse_output)]
    pub outputs: Vec<OutputSpec>,
    /// Base images: `missing` pulls what the store lacks (the default), `--pull` (`always`)
    /// checks the registry for each, `--pull=never` builds offline from the store.
    #[arg(long, value_name = "POLICY", num_args = 0..=1, require_equals = true,
          default_value = "missing", default_missing_value = "always")]
    pub pull: whittle_registry::PullPolicy,
    /// Push the image to its registry under every `-t` name (same as `-o type=registry`).
    #[arg(long)]
    pub push: bool,
    /// Also load the image into the docker daemon that DOCKER_HOST (or the default socket)
    /// names, as buildx does (same as `-o type=docker`).
    #[arg(long)]
    pub load: bool,
    /// Only run the checks (`whittle check`), print them and exit, as `docker build --check`:
    /// nothing is built.
    #[arg(long)]
    pub check: bool,
    /// Attach an SPDX SBOM of each image as an in-toto attestation, as buildx does:
    /// `--sbom`, `--sbom=false`, `--sbom=scan-stages=true`. The image then goes under an
    /// image index with its attestation manifest, even for one platform.
    #[arg(long, value_name = "true|false|KEY=VALUE,...", num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Attach SLSA provenance v1 of each image: `--provenance` (mode=min),
    /// `--provenance=mode=max` (also build arguments, secret-looking values redacted; secret
    /// values never), `--provenance=false`, `builder-id=URI`. Off unless asked for.
    #[arg(long, value_name = "true|false|mode=min|max,...", num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// An attestation, buildx's long form (repeatable): `type=sbom[,scan-stages=true]`,
    /// `type=provenance[,mode=min|max]`.
    #[arg(long, value_name = "type=sbom|provenance[,KEY=VALUE...]")]
    pub attest: Vec<String>,
    // Boxed: the flags are rarely given and `BuildArgs` is already the largest command.
    #[command(flatten)]
    pub transport: Box<super::regutil::TransportArgs>,
    #[command(flatten)]
    pub compression: Box<super::flags::CompressionArgs>,
    #[command(flatten)]
    pub cache: Box<super::cache_flags::CacheArgs>,
}

fn parse_output(s: &str) -> Result<OutputSpec, SpecError> {
    s.parse()
}

/// The docker daemon `--load` sends to: `DOCKER_HOST`, else the default socket.
fn docker_host() -> anyhow::Result<whittle_store::daemon::DockerHost> {
    let host = std::env::var("DOCKER_HOST").ok();
    let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    Ok(whittle_store::daemon::DockerHost::from_env(
        host.as_deref(),
        tls,
    )?)
}

/// `--build-context` values: for the planner, what each name stands for; for the engine, the
/// directories of the local ones. An OCI layout is imported into the store and named by digest.
#[allow(clippy::type_complexity)]
fn named_contexts(
    values: &[String],
    store: &whittle_store::Store,
) -> anyhow::Result<(
    std::collections::BTreeMap<String, whittle_dockerfile::plan::NamedContext>,
    std::collections::HashMap<String, PathBuf>,
)> {
    use whittle_dockerfile::plan::NamedContext;
    let mut plan = std::collections::BTreeMap::new();
    let mut dirs = std::collections::HashMap::new();
    for v in values {
        let Some((name, value)) = v.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            anyhow::bail!("--build-context {v:?}: expected NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR");
        };
        if plan.contains_key(name) {
            anyhow::bail!("--build-context {name}: given twice");
        }
        let ctx = if let Some(r) = value.strip_prefix("docker-image://") {
            Reference::parse(r).with_context(|| {
                format!("--build-context {name}: {r:?} is not an image reference")
            })?;
            NamedContext::Image(r.to_string())
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            NamedContext::Image(import_oci_layout(name, layout, store)?)
        } else if value.contains("://") || value.starts_with("git@") || value.starts_with("target:")
        {
            anyhow::bail!(
                "--build-context {name}={value}: only a directory, docker-image:// and \
                 oci-layout:// contexts are supported (URLs and git contexts are not yet)"
            );
        } else {
            let dir = PathBuf::from(value);
            if !dir.is_dir() {
                anyhow::bail!("--build-context {name}={value}: not a directory");
            }
            dirs.insert(name.to_string(), dir);
            NamedContext::Local
        };
        plan.insert(name.to_string(), ctx);
    }
    Ok((plan, dirs))
}

/// Imports the image `DIR[:TAG|@DIGEST]` of an OCI layout into the store and returns a
/// reference that names exactly it (by manifest digest).
fn import_oci_layout(
    name: &str,
    layout: &str,
    store: &whittle_store::Store,
) -> anyhow::Result<String> {
    let (dir, pick) = match layout.rsplit_once('@') {
        Some((d, digest)) => (d, Some(digest.to_string())),
        None => match layout.rsplit_once(':') {
            Some((d, tag)) if !tag.contains('/') => (d, Some(format!(":{tag}"))),
            _ => (layout, None),
        },
    };
    if !Path::new(dir).join("index.json").is_file() {
        anyhow::bail!("--build-context {name}=oci-layout://{layout}: {dir} is not an OCI image layout (no index.json)");
    }
    let loaded = whittle_store::load(store, Path::new(dir))
        .with_context(|| format!("--build-context {name}: reading the OCI layout {dir}"))?;
    let chosen: Vec<&whittle_store::LoadedImage> = loaded
        .iter()
        .filter(|l| match &pick {
            None => true,
            Some(p) if p.starts_with(':') => l
                .tags
                .iter()
                .any(|t| t.ends_with(p.as_str()) || *t == p[1..]),
            Some(d) => l.manifest.to_string() == *d,
        })
        .collect();
    match chosen.as_slice() {
        [one] => Ok(format!(
            "whittle-build-context/{}@{}",
            name.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.' && c != '_', "-"),
            one.manifest
        )),
        [] => anyhow::bail!("--build-context {name}=oci-layout://{layout}: no such image in the layout"),
        _ => anyhow::bail!(
            "--build-context {name}=oci-layout://{layout}: the layout holds {} images; pick one with :TAG or @DIGEST",
            chosen.len()
        ),
    }
}

/// Where an `--annotation` goes.
#[derive(Debug, PartialEq)]
enum AnnotationTarget {
    /// Every image's manifest, or only that platform's.
    Manifest(Option<Platform>),
    /// The image index (a build of several platforms).
    Index,
}

/// One `--annotation`: `KEY=VALUE` or `TYPES[PLATFORM]:KEY=VALUE` (types `manifest`, `index`),
/// as buildx takes it: one entry per type.
fn parse_annotation(a: &str) -> anyhow::Result<Vec<(AnnotationTarget, String, String)>> {
    let (kv_start, typed) = match a.find(':') {
        // A type prefix ends before the `=`; a `:` after it is part of the value.
        Some(i) if a[..i].find('=').is_none() => (i + 1, Some(&a[..i])),
        _ => (0, None),
    };
    let Some((k, v)) = a[kv_start..].split_once('=').filter(|(k, _)| !k.is_empty()) else {
        anyhow::bail!("--annotation {a:?}: expected KEY=VALUE or manifest:KEY=VALUE");
    };
    let Some(t) = typed else {
        return Ok(vec![(
            AnnotationTarget::Manifest(None),
            k.to_string(),
            v.to_string(),
        )]);
    };
    {
        let (types, platform) = match t.split_once('[') {
            Some((types, rest)) => {
                let p = rest.strip_suffix(']').with_context(|| {
                    format!("--annotation {a:?}: the platform is written [os/arch]")
                })?;
                let p = Platform::parse(p)
                    .with_context(|| format!("--annotation {a:?}: {p:?} is not a platform"))?;
                (types, Some(p))
            }
            None => (t, None),
        };
        let mut out = Vec::new();
        for ty in types.split(',') {
            let target = match ty {
                "manifest" => AnnotationTarget::Manifest(platform.clone()),
                "index" if platform.is_none() => AnnotationTarget::Index,
                "index" => anyhow::bail!(
                    "--annotation {a:?}: an index annotation is for the whole index, not one \
                     platform: write index:KEY=VALUE"
                ),
                _ => anyhow::bail!(
                    "--annotation {a:?}: the annotation types are manifest and index ({ty} \
                     annotations, on descriptors, are not supported)"
                ),
            };
            out.push((target, k.to_string(), v.to_string()));
        }
        Ok(out)
    }
}

/// A `--ulimit` value: `NAME=SOFT[:HARD]`, -1 for unlimited.
pub fn parse_ulimit(v: &str) -> Result<whittle_runtime::Rlimit, String> {
    let (name, limits) = v
        .split_once('=')
        .ok_or_else(|| format!("{v:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048"))?;
    let resource = whittle_runtime::RlimitResource::from_docker_name(name).ok_or_else(|| {
        format!(
            "{name:?} is not a limit: use core, cpu, data, fsize, locks, memlock, msgqueue, \
             nice, nofile, nproc, rss, rtprio, rttime, sigpending or stack"
        )
    })?;
    let num = |s: &str| -> Result<u64, String> {
        match s.trim() {
            "-1" | "unlimited" => Ok(u64::MAX),
            t => t
                .parse()
                .map_err(|_| format!("{v:?}: {t:?} is not a number (or -1 for unlimited)")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(limits)?, num(limits)?),
    };
    if soft > hard {
        return Err(format!("{v:?}: the soft limit is above the hard limit"));
    }
    Ok(whittle_runtime::Rlimit {
        resource,
        soft,
        hard,
    })
}

/// A size as docker writes it: `67108864`, `64m`, `1g`, `512k`, `100b`.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let t = v.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 'b')) => (&t[..i], 1),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?}: expected a size such as 64m, 1g or 67108864"))?;
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!(
            "{v:?}: the size must be above 0 and fit in 64 bits"
        )),
        Some(b) => Ok(b),
    }
}

/// An `--add-host` value: `HOST:IP` or `HOST=IP` (an IPv6 address has colons of its own).
pub fn parse_add_host(v: &str) -> Result<(String, String), String> {
    let (host, ip) = v
        .split_once('=')
        .or_else(|| v.split_once(':'))
        .ok_or_else(|| format!("{v:?}: expected HOST:IP, e.g. db:10.0.0.5"))?;
    let plain = |h: &str| {
        !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !plain(host) {
        return Err(format!("{v:?}: {host:?} is not a host name"));
    }
    if ip == "host-gateway" {
        return Err(format!(
            "{v:?}: host-gateway is not supported: RUN steps do not reach the host's \
             loopback; give the host's address on another interface"
        ));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>()
        .map_err(|_| format!("{v:?}: {ip:?} is not an IP address"))?;
    Ok((host.to_string(), ip.to_string()))
}

fn parse_ssh(s: &str) -> Result<whittle_solver::ssh::SshSpec, String> {
    s.parse()
        .map_err(|e: whittle_solver::ssh::SshError| e.to_string())
}

fn parse_entitlement(s: &str) -> Result<whittle_solver::Entitlement, String> {
    s.parse()
}

/// The RUN steps of the needed stages that get the build's default network (no `--network`
/// flag, or `--network=default`).
fn default_network_runs(graph: &whittle_graph::Graph) -> usize {
    whittle_solver::needed(graph)
        .into_iter()
        .filter(|v| {
            matches!(
                &graph.vertex(*v).op,
                whittle_graph::Op::Exec(e) if e.network == whittle_graph::Network::Default
            )
        })
        .count()
}

/// Plans the Dockerfile with what `images` knows of its base images and lowers the plan to
/// the build graph. An error is printed with its Dockerfile line, and is the exit code.
fn plan_and_lower(
    df: &whittle_dockerfile::Dockerfile,
    opts: &PlanOptions,
    images: &StoreImages,
    src: &super::plan::DockerfileText,
) -> Result<(whittle_dockerfile::Plan, whittle_graph::Graph), ExitCode> {
    let plan = whittle_dockerfile::plan_with(df, opts, images).map_err(|e| {
        eprint!("{}", e.render(&src.name, &src.text));
        ExitCode::from(1)
    })?;
    let graph = lower(&plan, images).map_err(|e| {
        report_build_error(&e, &src.name, &src.text);
        ExitCode::from(1)
    })?;
    Ok((plan, graph))
}

/// Lowers the plan to the build graph; a step the graph cannot express is a build error at
/// its line.
fn lower(
    plan: &whittle_dockerfile::Plan,
    images: &dyn whittle_dockerfile::ImageResolver,
) -> Result<whittle_graph::Graph, BuildError> {
    whittle_dockerfile::lower(plan, images).map_err(|e| BuildError::Step {
        stage: e.stage,
        line: e.line,
        summary: e.instruction,
        message: e.message,
    })
}

fn parse_secret(s: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => anyhow::bail!("--secret {s:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
        }
    }
    let id = id
        .or_else(|| env.clone())
        .with_context(|| format!("--secret {s:?} has no id"))?;
    let data = match (src, env) {
        (Some(f), _) => std::fs::read(&f).with_context(|| format!("reading secret file {f}"))?,
        (None, Some(v)) => std::env::var(&v)
            .with_context(|| format!("--secret {id}: environment variable {v} is not set"))?
            .into_bytes(),
        (None, None) => std::env::var(&id)
            .with_context(|| format!("--secret {id}: give src=FILE or env=VAR"))?
            .into_bytes(),
    };
    Ok((id, data))
}

/// The `.dockerignore` rules that apply (see [`super::plan::find_ignore`]); none if there is
/// no such file.
fn load_ignore(
    context: &Path,
    dockerfile: Option<&Path>,
) -> anyhow::Result<whittle_context::Matcher> {
    match super::plan::find_ignore(context, dockerfile) {
        Some((path, text)) => whittle_context::Matcher::parse(&text, &path.display().to_string())
            .map_err(anyhow::Error::from),
        None => Ok(whittle_context::Matcher::default()),
    }
}

/// `whittle build -`: standard input is a context tar (any common compression), unpacked
/// safely into a temporary directory, or else a Dockerfile with an empty context.
fn context_from_stdin() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("whittle-context-")
        .tempdir()?;
    let spool = dir.path().join(".stdin");
    {
        let mut f = std::fs::File::create(&spool)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut f).context("reading standard input")?;
    }
    let ctx = dir.path().join("context");
    std::fs::create_dir(&ctx)?;
    let is_tar = {
        let f = std::fs::File::open(&spool)?;
        let (_, mut r) = whittle_layer::decompress(std::io::BufReader::new(f))?;
        let mut head = [0u8; 512];
        let mut got = 0;
        while got < head.len() {
            match std::io::Read::read(&mut r, &mut head[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got == 512 && &head[257..262] == b"ustar"
    };
    if is_tar {
        let f = std::fs::File::open(&spool)?;
        let opts = whittle_layer::ExtractOptions {
            preserve_ownership: false,
            ..whittle_layer::ExtractOptions::default()
        };
        whittle_layer::extract_layer(std::io::BufReader::new(f), &ctx, &opts)
            .context("unpacking the build context from standard input")?;
    } else {
        std::fs::rename(&spool, ctx.join("Dockerfile"))?;
    }
    let _ = std::fs::remove_file(&spool);
    Ok(dir)
}

pub fn run(mut args: BuildArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    // Names first: a bad one should not cost reading a context from stdin.
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse_tag(t).with_context(|| format!("-t {t:?} is not a valid name")))
        .collect::<anyhow::Result<_>>()?;
    let _stdin_context = if args.context == Path::new("-") {
        if args.file.as_deref() == Some(Path::new("-")) {
            anyhow::bail!("the context and the Dockerfile cannot both come from standard input");
        }
        let dir = context_from_stdin()?;
        args.context = dir.path().join("context");
        if let Some(f) = &args.file {
            if f.is_relative() {
                args.file = Some(args.context.join(f));
            }
        }
        Some(dir)
    } else {
        None
    };
    if args.check {
        let b = super::check::BuildCheck {
            context: &args.context,
            file: args.file.as_deref(),
            target: args.target.clone(),
            build_args: &args.build_args,
            platform: args.platform.as_deref(),
        };
        return super::check::run_for_build(&b, root);
    }
    let src = read_dockerfile(&args.context, args.file.as_deref())?;
    if !args.context.is_dir() {
        anyhow::bail!(
            "the build context {} is not a directory",
            args.context.display()
        );
    }
    let mut attest = whittle_attest::Request::parse(
        args.sbom.as_deref(),
        args.provenance.as_deref(),
        &args.attest,
    )?;
    let host = Platform::host();
    let platforms = parse_platforms(args.platform.as_deref())?;
    let mut outputs = args.outputs.clone();
    if args.load {
        outputs.push(OutputSpec::Daemon(None));
    }
    if outputs.iter().filter(|o| o.to_stdout()).count() > 1 {
        anyhow::bail!("only one output can go to standard output (dest=-)");
    }
    if outputs.iter().any(OutputSpec::to_stdout) && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "an archive on standard output would go to the terminal: redirect it \
             (`> image.tar`, `| tar -t`) or give dest=FILE"
        );
    }
    // Checked before building: a bad name, a push with nowhere to go or an unusable
    // DOCKER_HOST would waste the build.
    let compression = args.compression.compression()?;
    let env = ExportEnv {
        compression: args.compression.stored()?,
        push: whittle_registry::PushOptions {
            client: args.transport.client_options(),
            progress: super::regutil::progress(quiet_flag(&args), "uploading"),
            ..whittle_registry::PushOptions::default()
        },
        docker: if outputs.iter().any(|o| matches!(o, OutputSpec::Daemon(_))) {
            Some(docker_host()?)
        } else {
            None
        },
    };
    whittle_solver::export::check_platforms(&outputs, platforms.len())?;
    let exporters = whittle_solver::export::exporters(&outputs, &tags, args.push, &env)?;
    let store = super::storeutil::open_with(root, env.push.client.clone())?;
    let df = match whittle_dockerfile::parse(&src.text) {
        Ok(df) => df,
        Err(e) => {
            eprint!("{}", e.render(&src.name, &src.text));
            return Ok(ExitCode::from(1));
        }
    };
    let (named_contexts, named_dirs) = named_contexts(&args.build_contexts, &store)?;
    // `--network host` is the user's own choice of the host network for every RUN: as buildx
    // does, it grants network.host.
    let mut allow = args.allow.clone();
    if args.network == NetworkMode::Host
        && !allow.contains(&whittle_solver::Entitlement::NetworkHost)
    {
        allow.push(whittle_solver::Entitlement::NetworkHost);
    }
    // One plan and graph per platform, merged into one graph: what the platforms share (a
    // stage pinned to $BUILDPLATFORM, the context) is one vertex and runs once.
    let mut plans = Vec::new();
    let mut graphs = Vec::new();
    for platform in &platforms {
        let opts = PlanOptions {
            target: args.target.clone(),
            build_args: resolve_build_args(&args.build_args),
            named_contexts: named_contexts.clone(),
            target_platform: platform.clone(),
            build_platform: host.clone(),
        };
        let mut images = StoreImages::new(store.clone());
        let (mut plan, mut graph) = match plan_and_lower(&df, &opts, &images, &src) {
            Ok(pg) => pg,
            Err(code) => return Ok(code),
        };
        // Entitlements before pulling anything (the solver checks again, after ONBUILD
        // triggers of the pulled images are known).
        if let Err(e) = whittle_solver::entitlements::check(&graph, &allow) {
            report_build_error(&e, &src.name, &src.text);
            return Ok(ExitCode::from(1));
        }
        // Pull progress is plain lines: not in quiet mode, nor among rawjson events.
        let quiet_pull = quiet_flag(&args) || args.progress == ProgressMode::Rawjson;
        images.pinned =
            super::frompull::ensure_images(&plan, &store, args.pull, &args.transport, quiet_pull)?;
        if !images.pinned.is_empty() {
            // Again, with the configs (ENV, WORKDIR, USER, ONBUILD) of exactly these images.
            (plan, graph) = match plan_and_lower(&df, &opts, &images, &src) {
                Ok(pg) => pg,
                Err(code) => return Ok(code),
            };
        }
        plans.push(plan);
        graphs.push(graph);
    }
    let plan = &plans[0];
    let graph = whittle_graph::Graph::merge(graphs);
    let mut bo = BuildOptions::new(args.context.clone());
    bo.compression = compression;
    bo.dockerfile = src.name.clone();
    bo.ignore = load_ignore(&args.context, args.file.as_deref())?;
    bo.no_cache = args.no_cache;
    bo.named_contexts = named_dirs;
    bo.ulimits = args.ulimits.clone();
    bo.shm_size = args.shm_size;
    bo.extra_hosts = args.add_hosts.clone();
    for o in &args.security_opts {
        match o.replace(':', "=").as_str() {
            "seccomp=unconfined" => bo.seccomp_unconfined = true,
            "apparmor=unconfined" | "no-new-privileges" | "no-new-privileges=true" => {}
            _ => anyhow::bail!(
                "--security-opt {o}: whittle supports seccomp=unconfined, apparmor=unconfined \
                 and no-new-privileges (custom seccomp or AppArmor profiles and SELinux labels \
                 are not supported)"
            ),
        }
    }
    // `--build-arg SOURCE_DATE_EPOCH=N` sets the build's epoch, as in BuildKit (the variable in
    // whittle's own environment already did); empty means unset.
    let build_args = resolve_build_args(&args.build_args);
    if let Some((_, v)) = build_args
        .iter()
        .rev()
        .find(|(k, v)| k == "SOURCE_DATE_EPOCH" && !v.trim().is_empty())
    {
        bo.epoch = v.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "--build-arg SOURCE_DATE_EPOCH={v:?}: the build epoch is a number of seconds \
                 since 1970, e.g. $(git log -1 --format=%ct)"
            )
        })?;
    }
    bo.no_cache_filter = args.no_cache_filter.clone();
    // BuildKit ignores a name that matches no stage; a typo would then silently keep the
    // cache, so it is said (a warning: the build is still what was asked).
    for f in &args.no_cache_filter {
        let known = plan.stages.iter().any(|s| {
            s.name.as_deref() == Some(f.to_ascii_lowercase().as_str()) || *f == s.index.to_string()
        });
        if !known {
            let names: Vec<String> = plan
                .stages
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
                .collect();
            eprintln!(
                "warning: --no-cache-filter {}: no such stage (stages: {}); it has no effect",
                whittle_dockerfile::error::printable(f, 100),
                names.join(", ")
            );
        }
    }
    bo.allow = allow;
    // The per-container mount point lives under the store, as for `whittle run`: an ordinary
    // user (rootless) cannot create /run/whittle.
    let runtime = whittle_runtime::Runtime::new(whittle_runtime::Engine::BuiltIn)
        .context("starting the container runtime")?
        .state_dir(store.root().join("run"));
    let runtime = super::rootless::snapshotter(runtime);
    // RUN steps of a foreign platform need emulation: checked before anything runs, naming
    // the first such step and the commands that make it work.
    let mut checked: Vec<&Platform> = Vec::new();
    for v in whittle_solver::needed(&graph) {
        let vx = graph.vertex(v);
        let whittle_graph::Op::Exec(e) = &vx.op else {
            continue;
        };
        if e.platform == host || checked.contains(&&e.platform) {
            continue;
        }
        checked.push(&e.platform);
        if let Err(err) = runtime.emulation(&e.platform) {
            let o = vx.origins.first();
            let step = BuildError::Step {
                stage: o.map_or_else(String::new, |o| o.label.clone()),
                line: o.map_or(0, |o| o.line),
                summary: o.map_or_else(String::new, |o| o.instruction.clone()),
                message: err.to_string(),
            };
            report_build_error(&step, &src.name, &src.text);
            return Ok(ExitCode::from(1));
        }
    }
    let mut network_warning = None;
    bo.network = match args.network {
        NetworkMode::Default => match (
            runtime.network_helper(),
            super::rootless::no_isolated_network(),
        ) {
            (Some(_), None) => whittle_runtime::Network::Isolated,
            (helper, reason) => {
                if default_network_runs(&graph) > 0 {
                    network_warning = Some(match (helper, reason) {
                        (Some(_), Some(r)) => format!(
                            "warning: RUN steps use the host's network, loopback services \
                             included, because {r}"
                        ),
                        _ => NO_NETWORK_HELPER_WARNING.to_string(),
                    });
                }
                whittle_runtime::Network::Host
            }
        },
        NetworkMode::Host => whittle_runtime::Network::Host,
        NetworkMode::None => whittle_runtime::Network::None,
    };
    for s in &args.secrets {
        let (id, data) = parse_secret(s)?;
        bo.secrets.insert(id, data);
    }
    // Held until the build ends: a private agent for key files stops when dropped.
    let ssh_agents = whittle_solver::ssh::SshAgents::start(&args.ssh)?;
    bo.ssh = ssh_agents.sockets();
    for a in &args.annotations {
        for (target, k, v) in parse_annotation(a)? {
            match target {
                AnnotationTarget::Manifest(None) => {
                    bo.annotations.insert(k, v);
                }
                // One for a platform this build does not make goes nowhere, as in buildx.
                AnnotationTarget::Manifest(Some(p)) => bo.platform_annotations.push((p, k, v)),
                AnnotationTarget::Index if platforms.len() < 2 => anyhow::bail!(
                    "--annotation {a:?}: index annotations need an image index, which a build \
                     of one platform does not make (build with --platform A,B)"
                ),
                AnnotationTarget::Index => {
                    bo.index_annotations.insert(k, v);
                }
            }
        }
    }
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--label {l:?}: expected KEY=VALUE"))?;
        bo.labels.push((k.to_string(), v.to_string()));
    }
    if let Some(j) = args.jobs {
        bo.jobs = j.max(1);
    }
    bo.on_failure_shell = match args.on_failure {
        OnFailure::Error => false,
        OnFailure::Shell if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            true
        }
        OnFailure::Shell => anyhow::bail!(
            "--on-failure=shell opens an interactive shell, so standard input and error must \
             be a terminal (and the context cannot come from standard input)"
        ),
    };
    // The image is written (its layers compressed) only when an output, a name or the id
    // asked for reads it.
    bo.image = exporters.iter().any(|e| e.needs_image())
        || args.iidfile.is_some()
        || args.metadata_file.is_some()
        || !attest.is_empty();
    bo.files = exporters.iter().any(|e| !e.needs_image());
    // Layers from a cache on the registry the image is pushed to are mounted there, not
    // fetched, when nothing else reads their bytes (docs/cache.md).
    if attest.is_empty() && !exporters.iter().any(|e| e.reads_layers()) {
        bo.push_registry = whittle_solver::export::one_push_registry(&exporters);
    }
    // With attestations the index is the attestations' (images, then attestation manifests):
    // the solver's own would be a second, orphaned one.
    bo.index = attest.is_empty();
    (bo.cache_from, bo.cache_to) = args.cache.open(&env.push, quiet_flag(&args))?;
    // BuildKit's build argument for scan-stages.
    if let Some(s) = attest.sbom.as_mut() {
        if let Some((_, v)) = build_args
            .iter()
            .rev()
            .find(|(k, _)| k == "BUILDKIT_SBOM_SCAN_STAGE")
        {
            s.scan_stage_arg(v);
        }
        // Each other stage the target needs is catalogued from the files the build left.
        bo.stage_files = s.scan_stages;
    }
    if !attest.is_empty()
        && outputs.iter().any(|o| {
            matches!(
                o,
                OutputSpec::Daemon(_)
                    | OutputSpec::Archive {
                        format: whittle_store::ArchiveFormat::Docker,
                        ..
                    }
            )
        })
    {
        eprintln!(
            "note: a docker archive or daemon (--load) holds no attestations: it gets the image \
             alone, as buildx's docker exporter does without the containerd image store"
        );
    }
    let quiet = quiet_flag(&args);
    let tty_view = match args.progress {
        ProgressMode::Tty => true,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
        ProgressMode::Plain | ProgressMode::Quiet | ProgressMode::Rawjson => false,
    };
    let tty = std::sync::Arc::new(super::progress::Tty::new());
    let progress: Box<dyn Progress> = if quiet {
        Box::new(whittle_solver::Silent)
    } else if args.progress == ProgressMode::Rawjson {
        Box::new(super::progress::RawJson::new(Box::new(std::io::stderr())))
    } else if tty_view {
        Box::new(TtyRef(tty.clone()))
    } else {
        Box::new(super::progress::Plain::new(Box::new(std::io::stderr()), t0))
    };
    if let Some(w) = network_warning {
        if quiet {
            eprintln!("{w}");
        } else {
            progress.event(Event::Note { message: w });
        }
    }
    let cancel = whittle_runtime::CancelToken::new().context("creating a cancel token")?;
    // Held until the command ends: prune must not take the built image before it is tagged,
    // written out and pushed (an untagged image is prune's to remove).
    let _lease = store.lease()?;
    let result = whittle_solver::build(&graph, &bo, &store, &runtime, progress.as_ref(), &cancel);
    tty.clear();
    super::rootless::say_if_copied(&runtime);
    let res = match result {
        Ok(r) => r,
        Err(e) => {
            report_build_error(&e, &src.name, &src.text);
            return Ok(ExitCode::from(1));
        }
    };
    let attached = if attest.is_empty() {
        None
    } else {
        let inputs = super::attest::Inputs {
            request: &attest,
            names: &tags,
            facts: whittle_attest::BuildFacts {
                dockerfile: whittle_solver::solve::dockerfile_label(&bo),
                dockerfile_digest: Some(whittle_oci::Digest::of_bytes(src.text.as_bytes())),
                context_digest: res.context_digest.clone(),
                build_args: build_args.clone(),
                labels: bo.labels.clone(),
                target: args.target.clone(),
                secret_ids: {
                    let mut ids: Vec<String> = bo.secrets.keys().cloned().collect();
                    ids.sort();
                    ids
                },
                ssh_ids: args.ssh.iter().map(|s| s.id.clone()).collect(),
                builder_platform: Some(host.clone()),
                epoch: (bo.epoch > 0).then_some(bo.epoch),
                network: super::attest::network(&graph),
                steps: super::attest::steps(plan),
            },
            copies: super::attest::copies(plan),
            index_annotations: &bo.index_annotations,
            threads: bo.threads(),
        };
        Some(
            super::attest::attach(&store, &graph, &res, &inputs)
                .context("making the attestations")?,
        )
    };
    let index = attached
        .as_ref()
        .map(|a| a.index.clone())
        .or_else(|| res.index.clone());
    let trees: Vec<(Platform, whittle_solver::merged::Merged)> = if res.platforms.len() > 1 {
        res.platforms
            .iter()
            .map(|p| (p.platform.clone(), p.rootfs.clone()))
            .collect()
    } else {
        Vec::new()
    };
    // Outputs of files get the attestations as files next to the image's, as buildx writes
    // them (local and tar).
    let files = attached.as_ref().map(|a| super::attest::Files {
        attached: a,
        epoch: bo.epoch,
    });
    let built = Built {
        store: &store,
        image: res.image.as_ref(),
        rootfs: &res.rootfs,
        epoch: bo.epoch,
        index: index.as_ref(),
        platforms: &trees,
        extra: files
            .as_ref()
            .map(|f| f as &dyn whittle_solver::export::ExtraFiles),
    };
    for e in &exporters {
        let said = e
            .export(&built)
            .with_context(|| format!("exporting to {}", e.describe()))?;
        for line in said {
            if !quiet {
                eprintln!("{line}");
            }
        }
    }
    // A build of several platforms is known by its index's digest, as buildx reports it.
    let id = match &index {
        Some(ix) => Some(ix.digest.to_string()),
        None => res.image.as_ref().map(|i| i.config.to_string()),
    };
    if let (Some(f), Some(img)) = (&args.metadata_file, &res.image) {
        let mut meta = serde_json::json!({
            "containerimage.digest": img.manifest.to_string(),
            "containerimage.config.digest": img.config.to_string(),
            "image.name": tags.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "whittle.steps.run": res.steps_run,
            "whittle.steps.cached": res.steps_cached,
        });
        if let Some(ix) = &index {
            meta["containerimage.digest"] = ix.digest.to_string().into();
            meta.as_object_mut()
                .map(|m| m.remove("containerimage.config.digest"));
            meta["containerimage.descriptor"] = serde_json::json!({
                "mediaType": ix.media_type,
                "digest": ix.digest.to_string(),
                "size": ix.size,
            });
        }
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let (Some(f), Some(id)) = (&args.iidfile, &id) {
        std::fs::write(f, id).with_context(|| format!("writing {}", f.display()))?;
    }
    if quiet {
        // Not after an archive written to standard output, which it would corrupt.
        if let (Some(id), false) = (&id, outputs.iter().any(OutputSpec::to_stdout)) {
            println!("{id}");
        }
    } else {
        let mut err = std::io::stderr();
        let what = match (&index, &res.image) {
            (Some(ix), _) => format!(
                "{} for {}",
                ix.digest,
                res.platforms
                    .iter()
                    .map(|p| p.platform.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, Some(img)) => format!(
                "{} ({})",
                img.config,
                super::storeutil::human_size(img.size)
            ),
            (None, None) if res.platforms.len() > 1 => {
                format!("the files for {} platforms", res.platforms.len())
            }
            (None, None) => "the files".to_string(),
        };
        // Only when an edited layer took blocks of its previous version: it explains an edit
        // that costs much less than the layer's size.
        let reused = if res.layer_bytes_reused > 0 {
            format!(
                ", {} of layers reused",
                super::storeutil::human_size(res.layer_bytes_reused)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            err,
            "built {what} in {:.2}s: {} step{} run, {} cached{reused}",
            t0.elapsed().as_secs_f64(),
            res.steps_run,
            if res.steps_run == 1 { "" } else { "s" },
            res.steps_cached
        );
        for t in &tags {
            let _ = writeln!(err, "tagged {t}");
        }
    }
    if args.analyze {
        analyze_built(&store, res.image.as_ref())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--analyze`: the built image's summary and findings, on standard error (standard output may
/// carry an archive or the id).
fn analyze_built(
    store: &whittle_store::Store,
    image: Option<&whittle_store::ImageRecord>,
) -> anyhow::Result<()> {
    let Some(img) = image else {
        eprintln!("--analyze: the build wrote files only, no image to analyse");
        return Ok(());
    };
    let input = whittle_analyze::Input::Store(img.manifest.to_string());
    let a = whittle_analyze::analyze(&input, Some(store), &whittle_analyze::Options::default())
        .context("analysing the built image (--analyze)")?;
    let mut err = std::io::stderr().lock();
    writeln!(err)?;
    super::analyze_text::render_short(&mut err, &a)?;
    Ok(())
}

/// The platforms of `--platform` (a comma-separated list, duplicates dropped), the host's
/// without it.
fn parse_platforms(flag: Option<&str>) -> anyhow::Result<Vec<Platform>> {
    let Some(list) = flag else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let want = Platform::parse(p).with_context(|| {
            format!("--platform {p:?} is not a platform: write os/arch[/variant], e.g. linux/arm64")
        })?;
        if !out.contains(&want) {
            out.push(want);
        }
    }
    if out.is_empty() {
        anyhow::bail!("--platform is empty: give os/arch[/variant], e.g. linux/arm64");
    }
    Ok(out)
}

/// `-q`, or `--progress quiet`.
fn quiet_flag(args: &BuildArgs) -> bool {
    args.quiet || args.progress == ProgressMode::Quiet
}

/// Printed once per build when RUN steps fall back to the host's network.
pub const NO_NETWORK_HELPER_WARNING: &str = "warning: RUN steps use the host's network, \
    loopback services included, because neither slirp4netns nor pasta is installed: \
    apt-get install slirp4netns (or passt) to isolate them, or build with --network none";

/// Shares the terminal view with `run`, which clears it before printing the summary.
struct TtyRef(std::sync::Arc<super::progress::Tty>);
impl Progress for TtyRef {
    fn event(&self, e: Event) {
        self.0.event(e)
    }
    fn suspend(&self, f: &mut dyn FnMut()) {
        self.0.suspend(f)
    }
}

fn report_build_error(e: &BuildError, file: &str, text: &str) {
    // Dockerfile text, command lines and program output may hold control characters.
    let safe = |s: &str| whittle_dockerfile::printable(s, 500);
    let file = safe(file);
    let show_line = |line: usize| {
        if let Some(l) = text.lines().nth(line.saturating_sub(1)) {
            let n = line.to_string();
            let pad = " ".repeat(n.len());
            eprintln!(" --> {file}:{line}\n{pad} |\n{n} | {}\n{pad} |", safe(l));
        }
    };
    match e {
        BuildError::RunFailed {
            stage,
            line,
            command,
            code,
            tail,
        } => {
            eprintln!(
                "error: stage {}: process \"{}\" did not complete successfully: exit code: {code}",
                safe(stage),
                safe(command)
            );
            show_line(*line);
            if !tail.is_empty() {
                eprintln!(
                    "last {} line{} of its output:",
                    tail.len(),
                    if tail.len() == 1 { "" } else { "s" }
                );
                for l in tail {
                    eprintln!("  {}", safe(l));
                }
            }
            rootless_hint(&tail.join("\n"));
        }
        BuildError::Step {
            stage,
            line,
            summary,
            message,
        } => {
            eprintln!(
                "error: stage {}: {}: {}",
                safe(stage),
                safe(summary),
                safe(message)
            );
            show_line(*line);
            rootless_hint(message);
        }
        BuildError::NotAllowed {
            stage,
            line,
            summary,
            entitlement,
        } => {
            eprintln!(
                "error: {file}:{line}: {entitlement} is not allowed (stage {}: {})",
                safe(stage),
                safe(summary)
            );
            show_line(*line);
            match entitlement {
                whittle_solver::Entitlement::NetworkHost => eprintln!(
                    "hint: pass --allow network.host if you trust this Dockerfile with the \
                     host's network: its RUN --network=host steps can reach every service the \
                     host can, including those listening on the host's 127.0.0.1"
                ),
                whittle_solver::Entitlement::SecurityInsecure => eprintln!(
                    "hint: RUN --security=insecure needs --allow security.insecure, and whittle \
                     cannot run it yet even then: remove the flag, or build this Dockerfile with \
                     BuildKit"
                ),
            }
        }
        other => {
            let message = other.to_string();
            eprintln!("error: {}", safe(&message));
            rootless_hint(&message);
        }
    }
}

/// In rootless mode, the doctor's sentence for a missing piece that explains the failure.
fn rootless_hint(message: &str) {
    if let Some(h) = super::rootless::explain(message) {
        eprintln!("hint: {h}");
    }
}
