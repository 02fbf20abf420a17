//! `whittle binfmt`: which platforms' programs this machine runs (natively, or emulated through
//! which binfmt_misc handler), and `--install`/`--uninstall` of whittle's qemu handlers. The
//! behaviour lives in `whittle_runtime::binfmt`.

use anyhow::Context;
use std::process::ExitCode;
use whittle_oci::Platform;
use whittle_runtime::binfmt::{self, elf, install, Emulation, BINFMT_MISC};
use whittle_runtime::doctor::RealHost;

/// Show how this machine runs each platform's programs; register or remove the qemu handlers
/// (with the F flag) that emulated RUN steps and `whittle run` of foreign images need.
#[derive(clap::Args)]
pub struct BinfmtArgs {
    /// Register qemu-user-static's interpreters for these platforms (default: every one the
    /// package provides) as `whittle-qemu-<arch>` handlers with the F flag, mounting
    /// binfmt_misc if needed; platforms that already work are left alone. Needs root.
    #[arg(long, num_args = 0.., value_name = "PLATFORM", conflicts_with = "uninstall")]
    install: Option<Vec<String>>,
    /// Remove every handler `--install` registered (others stay). Needs root.
    #[arg(long)]
    uninstall: bool,
}

pub fn run(args: BinfmtArgs) -> anyhow::Result<ExitCode> {
    let host = RealHost;
    if args.uninstall {
        let removed = install::uninstall(&host, BINFMT_MISC)?;
        if removed.is_empty() {
            println!("no whittle handler was registered");
        }
        for name in removed {
            println!("removed {name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(wanted) = args.install else {
        print_status(&host, &elf::known_platforms());
        return Ok(ExitCode::SUCCESS);
    };
    let platforms = wanted
        .iter()
        .map(|p| {
            Platform::parse(p).with_context(|| {
                format!("{p:?} is not a platform (os/arch[/variant], e.g. linux/arm64)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let steps = install::install(
        &host,
        BINFMT_MISC,
        (!platforms.is_empty()).then_some(platforms.as_slice()),
    )?;
    for s in &steps {
        match &s.outcome {
            install::Outcome::Native => println!("{}: native, nothing to register", s.platform),
            install::Outcome::AlreadyWorks { handler } => {
                println!("{}: already emulated by {handler} (F)", s.platform)
            }
            install::Outcome::Registered {
                handler,
                interpreter,
                flags,
            } => println!(
                "{}: registered {handler} -> {} (flags {})",
                s.platform,
                interpreter.display(),
                flags.letters()
            ),
        }
    }
    let done: Vec<Platform> = steps.into_iter().map(|s| s.platform).collect();
    println!();
    let ok = print_status(&host, &done);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per platform; true when every one runs here.
fn print_status(host: &RealHost, platforms: &[Platform]) -> bool {
    let mut all = true;
    for p in platforms {
        let text = match binfmt::status(host, BINFMT_MISC, p) {
            Ok(Emulation::Native) => "native".to_string(),
            Ok(Emulation::Emulated {
                handler,
                interpreter,
                fix_binary,
            }) => {
                all &= fix_binary;
                format!(
                    "emulated by {handler} ({}){}",
                    interpreter.display(),
                    if fix_binary {
                        ", F flag: works in containers"
                    } else {
                        ", WITHOUT the F flag: fails in containers; fix: sudo whittle binfmt --install"
                    }
                )
            }
            Err(e) => {
                all = false;
                let fix = e
                    .fix
                    .last()
                    .map(|f| format!("; fix: {f}"))
                    .unwrap_or_default();
                format!("missing{fix}")
            }
        };
        println!("{:<16} {text}", p.to_string());
    }
    all
}
