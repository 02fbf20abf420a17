//! The `whittle` command line. Each subcommand lives in its own module under `cmd/`.

mod cmd;

/// mimalloc, not glibc's malloc: a build's threads (the context scan's stat workers, the layer
/// writers) allocate small strings by the ten thousand, and glibc's arena locks and page faults
/// were a fifth of a no-change build's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// whittle: a daemonless builder for small container images.
#[derive(Parser)]
#[command(name = "whittle", version, propagate_version = true)]
struct Cli {
    /// Store root (default: $WHITTLE_ROOT, else /var/lib/whittle as root, else
    /// $XDG_DATA_HOME/whittle).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context directory.
    // Boxed: by far the largest command, and the enum is moved around only once.
    Build(Box<cmd::build::BuildArgs>),
    /// Check a Dockerfile against BuildKit's build checks, hadolint's rules and whittle's own;
    /// `--fix` repairs the mechanical ones.
    Check(cmd::check::CheckArgs),
    /// Show the build plan of a Dockerfile: stages, order, parallelism, expanded steps.
    Plan(cmd::plan::PlanArgs),
    /// List images in the store.
    Images(cmd::images::ImagesArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(cmd::tag::TagArgs),
    /// Remove images (tags, and images left without tags).
    Rmi(cmd::rmi::RmiArgs),
    /// Show the manifest and config of images as JSON.
    Inspect(cmd::inspect::InspectArgs),
    /// Show where an image's bytes go (dive's efficiency and wasted bytes) and findings that say
    /// how to cut them; `--ci` checks dive's CI rules.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// Say what this machine allows (user namespaces, subordinate ids, overlay in a user
    /// namespace, the RUN network, emulation) and the command that fixes each missing piece.
    Doctor(cmd::doctor::DoctorArgs),
    /// Show how this machine runs other platforms' programs (native, emulated by which
    /// binfmt_misc handler, missing); `--install` registers qemu's handlers with the F flag.
    Binfmt(cmd::binfmt::BinfmtArgs),
    /// Show what changed between two images: files added, removed and changed, and the size
    /// difference per directory.
    Diff(cmd::diff::DiffArgs),
    /// List the packages an image holds as an SBOM (SPDX 2.3 or CycloneDX 1.5 JSON, or a table).
    Sbom(cmd::sbom::SbomArgs),
    /// Show the steps that made an image and each layer's size.
    History(cmd::history::HistoryArgs),
    /// Load images from a docker-archive, oci-archive or OCI layout directory.
    Load(cmd::load::LoadArgs),
    /// Save images to a docker-archive or oci-archive.
    Save(cmd::save::SaveArgs),
    /// Remove untagged images, unreferenced blobs and build cache.
    Prune(cmd::prune::PruneArgs),
    /// Verify every blob in the store and drop leftovers of interrupted writes.
    Fsck(cmd::fsck::FsckArgs),
    /// Run a command in a container from a stored image (changes are discarded).
    Run(cmd::run::RunArgs),
    /// Pull an image from a registry.
    Pull(cmd::pull::PullArgs),
    /// Push an image to a registry.
    Push(cmd::push::PushArgs),
    /// Log in to a registry (credentials are checked, then saved in the docker config).
    Login(cmd::login::LoginArgs),
    /// Log out of a registry (remove its saved credentials).
    Logout(cmd::login::LogoutArgs),
}

impl Command {
    /// Whether the command enters the rootless user namespace when run by an ordinary user
    /// (it touches snapshots owned by subordinate ids, or runs containers), and if so whether
    /// it says what a single-id mapping limits. Commands that only read documents, the doctor
    /// and credentials stay as they are.
    fn rootless(&self) -> Option<bool> {
        match self {
            Command::Doctor(_)
            | Command::Binfmt(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Check(_)
            | Command::Plan(_) => None,
            Command::Build(_) | Command::Run(_) | Command::Load(_) | Command::Pull(_) => Some(true),
            _ => Some(false),
        }
    }
}

fn main() -> ExitCode {
    // The runtime starts containers by re-running this binary as their init: that process
    // becomes the container here and never returns.
    whittle_runtime::run_init_if_requested();
    quiet_broken_pipe();
    let cli = Cli::parse();
    let mut root = cli.root;
    // Before any thread starts: a non-root user's whittle becomes root of its own user
    // namespace (docs/rootless.md).
    if let Some(loud) = cli.command.rootless() {
        cmd::rootless::enter(&mut root, loud);
    }
    let cli = Cli {
        root,
        command: cli.command,
    };
    let result = match cli.command {
        Command::Build(args) => cmd::build::run(*args, cli.root.as_deref()),
        Command::Check(args) => cmd::check::run(args, cli.root.as_deref()),
        Command::Plan(args) => cmd::plan::run(args, cli.root.as_deref()),
        Command::Images(args) => cmd::images::run(args, cli.root.as_deref()),
        Command::Tag(args) => cmd::tag::run(args, cli.root.as_deref()),
        Command::Rmi(args) => cmd::rmi::run(args, cli.root.as_deref()),
        Command::Inspect(args) => cmd::inspect::run(args, cli.root.as_deref()),
        Command::History(args) => cmd::history::run(args, cli.root.as_deref()),
        Command::Analyze(args) => cmd::analyze::run(args, cli.root.as_deref()),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Binfmt(args) => cmd::binfmt::run(args),
        Command::Diff(args) => cmd::diff::run(args, cli.root.as_deref()),
        Command::Sbom(args) => cmd::sbom::run(args, cli.root.as_deref()),
        Command::Load(args) => cmd::load::run(args, cli.root.as_deref()),
        Command::Save(args) => cmd::save::run(args, cli.root.as_deref()),
        Command::Prune(args) => cmd::prune::run(args, cli.root.as_deref()),
        Command::Fsck(args) => cmd::fsck::run(args, cli.root.as_deref()),
        Command::Run(args) => cmd::run::run(args, cli.root.as_deref()),
        Command::Pull(args) => cmd::pull::run(args, cli.root.as_deref()),
        Command::Push(args) => cmd::push::run(args, cli.root.as_deref()),
        Command::Login(args) => cmd::login::run_login(args, cli.root.as_deref()),
        Command::Logout(args) => cmd::login::run_logout(args, cli.root.as_deref()),
    };
    // Overlay work dirs of finished containers are removed in the background; finish that.
    whittle_runtime::wait_for_cleanup();
    match result {
        Ok(code) => code,
        Err(err) => {
            cmd::report(&err);
            ExitCode::from(1)
        }
    }
}

/// `whittle plan --format json | head`: when the reader of standard output goes away, stop as a
/// command killed by SIGPIPE would (status 141), instead of the panic `println!` raises.
/// SIGPIPE itself stays ignored, as Rust sets it, so a closed registry or daemon socket is an
/// error the code handles, never a silent death.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && payload.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}
