//! `whittle run`: start a container from a stored image with its config (Entrypoint, Cmd, Env,
//! WorkingDir, User). The root filesystem is an overlay of the image's snapshots with a
//! throw-away upper dir: every change is discarded when the container exits.

use super::flags::NetworkMode;
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_oci::{ContainerConfig, Field, ImageConfig};
use whittle_runtime::{
    CancelToken, ContainerSpec, Engine, Network, Rootfs, Runtime, Stdin, Stream,
};
use whittle_store::{Digest, Store};

#[derive(Args)]
pub struct RunArgs {
    /// Remove the container when it exits (always the case: accepted for docker compatibility).
    #[arg(long)]
    rm: bool,
    /// Keep standard input open (attach the caller's).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set an environment variable (`K=V`, or `K` to copy it from here).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// User (`name[:group]` or `uid[:gid]`, resolved in the image).
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Working directory inside the container (created if missing).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// Network: `default` (an isolated network namespace with outbound access through
    /// slirp4netns or pasta, without the host's loopback, like a build's RUN and docker's
    /// bridge; the host's network, with a warning, when neither is installed), `none`
    /// (loopback only) or `host`.
    #[arg(long, value_enum, default_value = "default")]
    network: super::flags::NetworkMode,
    /// Override the image's entrypoint.
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Container runtime: `builtin`, or an OCI runtime (`runc`, `crun`, a path).
    #[arg(long, default_value = "builtin", value_name = "RUNTIME")]
    runtime: String,
    /// The platform of a multi-platform image to run (default: the host's, else the first
    /// in the store). A foreign platform runs under emulation (`whittle binfmt`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Image (name[:tag], id or digest).
    image: String,
    /// Command and arguments (default: the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn strings(v: &Field<Vec<String>>) -> Vec<String> {
    v.get().cloned().unwrap_or_default()
}

/// A string field that is set and not empty.
fn non_empty(v: &Field<String>) -> Option<String> {
    v.get().filter(|s| !s.is_empty()).cloned()
}

/// The command line Docker would run: `--entrypoint` drops the image's Cmd; otherwise the
/// image's Entrypoint followed by the given command or, without one, the image's Cmd.
fn command_line(
    cfg: &ContainerConfig,
    entrypoint: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let (ep, default_cmd) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (strings(&cfg.entrypoint), strings(&cfg.cmd)),
    };
    let mut out = ep;
    out.extend(if command.is_empty() {
        default_cmd
    } else {
        command.to_vec()
    });
    out
}

/// The platform the image's config names (`os`, `architecture`, `variant`); none when it
/// names no architecture.
fn image_platform(cfg: &ImageConfig) -> Option<whittle_oci::Platform> {
    whittle_store::config_platform(cfg)
}

/// The image's snapshot dirs, top-most first, extracting the layers not yet extracted.
fn snapshots(
    store: &Store,
    reference: &str,
    platform: Option<&whittle_oci::Platform>,
) -> anyhow::Result<(ImageConfig, Vec<PathBuf>, Digest)> {
    let img = match platform {
        Some(p) => store.resolve_platform(reference, p),
        None => store.resolve(reference),
    }
    .with_context(|| format!("no image {reference:?} in the store"))?
    .image;
    let (cfg, layers) = store
        .unpack_image(&img, &|_, _, _| {})
        .with_context(|| format!("unpacking {reference}"))?;
    let dirs = layers.into_iter().rev().map(|l| l.dir).collect();
    Ok((cfg, dirs, img.config))
}

pub fn run(args: RunArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let _ = args.rm;
    let store = super::storeutil::open(root)?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            whittle_oci::Platform::parse(p)
                .with_context(|| format!("--platform {p:?} is not a platform"))
        })
        .transpose()?;
    let (cfg, mut lower, id) = snapshots(&store, &args.image, platform.as_ref())?;
    let c = cfg.container().cloned().unwrap_or_default();
    let c = &c;
    let argv = command_line(c, args.entrypoint.as_deref(), &args.command);
    if argv.is_empty() {
        bail!("no command: the image has no Entrypoint or Cmd; give one after the image name");
    }
    // An image without layers (FROM scratch + metadata) still needs a lower dir.
    let empty = tempfile::tempdir_in(store.root()).context("creating an empty layer")?;
    if lower.is_empty() {
        lower.push(empty.path().to_path_buf());
    }
    // The upper dir: an uncommitted snapshot dir, removed (with every change) when dropped.
    let upper = store.prepare_snapshot()?;

    let mut env = strings(&c.env);
    for e in &args.env {
        let kv = if e.contains('=') {
            e.clone()
        } else {
            match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            }
        };
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    let mut spec = ContainerSpec::new(
        Rootfs::Overlay {
            lower,
            upper: upper.path().join("fs"),
        },
        argv,
    );
    spec.env = env;
    spec.cwd = args
        .workdir
        .clone()
        .or_else(|| non_empty(&c.working_dir))
        .unwrap_or_else(|| "/".into());
    spec.user = args.user.clone().or_else(|| non_empty(&c.user));
    spec.hostname = id.hex().chars().take(12).collect();
    // A foreign image runs under emulation, or not at all (the runtime checks).
    spec.platform = image_platform(&cfg);
    let engine = match args.runtime.as_str() {
        "builtin" => Engine::BuiltIn,
        other => Engine::Oci(PathBuf::from(other)),
    };
    let runtime =
        super::rootless::snapshotter(Runtime::new(engine)?.state_dir(store.root().join("run")));
    spec.network = match args.network {
        NetworkMode::None => Network::None,
        NetworkMode::Host => Network::Host,
        NetworkMode::Default if runtime.network_helper().is_none() => {
            eprintln!(
                "warning: the container uses the host's network, loopback services included, \
                 because neither slirp4netns nor pasta is installed: apt-get install \
                 slirp4netns (or passt) to isolate it, or pass --network none"
            );
            Network::Host
        }
        NetworkMode::Default => match super::rootless::no_isolated_network() {
            None => Network::Isolated,
            Some(reason) => {
                eprintln!(
                    "warning: the container uses the host's network, loopback services \
                     included, because {reason}"
                );
                Network::Host
            }
        },
    };
    spec.tty = args.tty;
    // `docker run` gives the primary gid as a supplementary group too.
    spec.primary_gid_in_groups = true;
    spec.stdin = if args.interactive {
        Stdin::Inherit
    } else {
        Stdin::Null
    };

    let cancel = CancelToken::new()?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut sink = |stream: Stream, line: &[u8]| {
        let _ = match stream {
            Stream::Stdout => {
                let mut o = stdout.lock();
                o.write_all(line)
                    .and_then(|_| o.write_all(b"\n"))
                    .and_then(|_| o.flush())
            }
            Stream::Stderr => {
                let mut o = stderr.lock();
                o.write_all(line).and_then(|_| o.write_all(b"\n"))
            }
        };
    };
    // Ctrl-C without a tty kills whittle, and the container dies with it (parent-death
    // signal); with a tty it reaches the container as a keystroke.
    let status = runtime.run(&spec, &mut sink, &cancel);
    super::rootless::say_if_copied(&runtime);
    whittle_runtime::wait_for_cleanup();
    drop(upper);
    let status = status?;
    Ok(ExitCode::from(status.code().clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_docker() {
        let config =
            |v: serde_json::Value| -> ContainerConfig { serde_json::from_value(v).unwrap() };
        let cfg = config(serde_json::json!({"Entrypoint": ["/entry"], "Cmd": ["default"]}));
        assert_eq!(command_line(&cfg, None, &[]), vec!["/entry", "default"]);
        assert_eq!(command_line(&cfg, None, &["x".into()]), vec!["/entry", "x"]);
        assert_eq!(command_line(&cfg, Some("sh"), &[]), vec!["sh"]);
        assert_eq!(
            command_line(&cfg, Some("sh"), &["-c".into(), "id".into()]),
            vec!["sh", "-c", "id"]
        );
        assert_eq!(
            command_line(&config(serde_json::json!({"Cmd": ["sh"]})), None, &[]),
            vec!["sh"]
        );
        assert!(command_line(&config(serde_json::json!({})), None, &[]).is_empty());
    }

    #[test]
    fn the_platform_comes_from_the_config() {
        let cfg = |v: serde_json::Value| ImageConfig::from_slice(v.to_string().as_bytes()).unwrap();
        let p = |v| image_platform(&cfg(v)).map(|p| p.to_string());
        assert_eq!(
            p(serde_json::json!({"architecture": "arm", "variant": "v7", "os": "linux"}))
                .as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(
            p(serde_json::json!({"architecture": "arm64"})).as_deref(),
            Some("linux/arm64")
        );
        assert_eq!(p(serde_json::json!({"os": "linux"})), None);
    }
}
