//! `whittle binfmt --install` and `--uninstall`: registers qemu-user-static's interpreters as
//! binfmt_misc handlers that work inside containers, and removes them again.
//!
//! Each handler is named `whittle-qemu-<arch>` (never clashing with binfmt-support's or
//! systemd's `qemu-<arch>`) and registered with:
//! - **F** (fix binary): the kernel opens the interpreter now, so it is found from inside any
//!   container's mount namespace, as tonistiigi/binfmt (Docker's) registers them;
//! - **O** (open binary): qemu gets the program as an open file, so programs that are
//!   executable but not readable still run;
//! - **P** (preserve `argv[0]`) when the package's format says so (Debian's `-binfmt-P`
//!   interpreter names expect it), so `argv[0]` is what the caller gave.
//!
//! Not **C** (credentials from the program, which tonistiigi/binfmt sets): whittle runs every
//! container with `no_new_privs`, so setuid programs gain nothing in a container with it, and
//! on the host it would make every foreign setuid file a setuid program.
//!
//! The magic and mask come from the package's format file (`/usr/share/binfmts/qemu-<arch>`),
//! checked against the platform's ELF header; without one, qemu's own values for
//! `/usr/bin/qemu-<arch>-static`. A platform the kernel already runs (natively, or through a
//! handler with the F flag) is left alone; a new handler is tried before older ones, so it
//! also takes over from a registered one without F.

use super::elf::{self, Arch};
use super::entry::{Flags, Handler, Registry, Rule};
use super::format::{Format, FormatError, BINFMTS_DIR};
use super::{status, Emulation};
use crate::doctor::Host;
use std::path::PathBuf;
use whittle_oci::Platform;

/// Prefix of the handlers whittle registers (and the only ones `--uninstall` removes).
pub const HANDLER_PREFIX: &str = "whittle-qemu-";

/// Why `--install` or `--uninstall` failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("registering binfmt_misc handlers needs root: run `sudo whittle binfmt ...`")]
    NotRoot,
    #[error(
        "cannot mount binfmt_misc at {dir}: {source}\nthe kernel needs binfmt_misc \
         (CONFIG_BINFMT_MISC; `sudo modprobe binfmt_misc` loads the module); in a container, \
         run this on the host instead"
    )]
    Mount {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{platform}: whittle does not know what its programs look like")]
    UnknownPlatform { platform: Platform },
    #[error(
        "{platform}: qemu-user-static's interpreter (qemu-{qemu}-static) is not installed; \
         to fix it, run:\n  sudo apt-get install qemu-user-static"
    )]
    QemuMissing {
        platform: Platform,
        qemu: &'static str,
    },
    #[error(
        "qemu-user-static is not installed (no {binfmts_dir}/qemu-* files); to fix it, run:\n  \
         sudo apt-get install qemu-user-static"
    )]
    PackageMissing { binfmts_dir: String },
    #[error("{path}: {source}")]
    Format {
        path: String,
        #[source]
        source: FormatError,
    },
    #[error("{path}: its magic does not match {platform} programs")]
    WrongMagic { path: String, platform: Platform },
    #[error("cannot register {name} (writing {line:?} to {register}): {source}")]
    Register {
        name: String,
        line: String,
        register: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove handler {name}: {source}")]
    Remove {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// What `--install` did (or will do) for one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel runs its programs itself.
    Native,
    /// A handler with the F flag already runs them: left alone.
    AlreadyWorks { handler: String },
    /// Registered handler `handler` (replacing whittle's own of that name if there was one).
    Registered {
        handler: String,
        interpreter: PathBuf,
        flags: Flags,
    },
}

/// One planned registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub platform: Platform,
    pub outcome: Outcome,
    /// The line for `register`, when registering.
    pub line: Option<String>,
    /// whittle's existing handler of the same name, removed first.
    pub replaces: bool,
}

/// The platforms `--install` without arguments registers: each foreign architecture whittle
/// knows for which qemu-user-static ships a format file (Debian's package provides every
/// foreign one but the host's 32-bit compat partner).
pub fn default_platforms(host: &dyn Host, binfmts_dir: &str) -> Vec<Platform> {
    let mut seen: Vec<&'static Arch> = Vec::new();
    elf::known_platforms()
        .into_iter()
        .filter(|p| {
            let Some(a) = elf::arch_of(p) else {
                return false;
            };
            let keep = Some(a) != elf::host_arch()
                && !seen.contains(&a)
                && host
                    .read(&format!("{binfmts_dir}/qemu-{}", a.qemu))
                    .is_some();
            if keep {
                seen.push(a);
            }
            keep
        })
        .collect()
}

/// What to do for each of `platforms` (one step per architecture: `arm/v6` after `arm/v7`
/// adds nothing), reading the binfmt_misc mount at `dir` and format files under
/// `binfmts_dir`. Pure: [`apply`] does it.
pub fn plan(
    host: &dyn Host,
    dir: &str,
    binfmts_dir: &str,
    platforms: &[Platform],
) -> Result<Vec<Step>, InstallError> {
    let registry = Registry::read(host, dir);
    let mut done: Vec<&'static Arch> = Vec::new();
    let mut steps = Vec::new();
    for p in platforms {
        let arch = elf::arch_of(p).ok_or_else(|| InstallError::UnknownPlatform {
            platform: p.clone(),
        })?;
        if done.contains(&arch) {
            continue;
        }
        done.push(arch);
        let outcome = match status(host, dir, p) {
            Ok(Emulation::Native) => Some(Outcome::Native),
            Ok(Emulation::Emulated {
                handler,
                fix_binary: true,
                ..
            }) => Some(Outcome::AlreadyWorks { handler }),
            _ => None,
        };
        if let Some(outcome) = outcome {
            steps.push(Step {
                platform: p.clone(),
                outcome,
                line: None,
                replaces: false,
            });
            continue;
        }
        let mut format = format_for(host, binfmts_dir, p, arch)?;
        format.flags.fix_binary = true;
        format.flags.open_binary = true;
        format.flags.credentials = false;
        let name = format!("{HANDLER_PREFIX}{}", arch.qemu);
        let line = format
            .register_line(&name)
            .map_err(|source| InstallError::Format {
                path: name.clone(),
                source,
            })?;
        steps.push(Step {
            platform: p.clone(),
            replaces: registry.handlers().iter().any(|h| h.name == name),
            outcome: Outcome::Registered {
                handler: name,
                interpreter: format.interpreter,
                flags: format.flags,
            },
            line: Some(line),
        });
    }
    Ok(steps)
}

/// The handler definition for `arch`: the package's format file when there is one (its magic
/// checked against the platform's programs), else qemu's values for `qemu-<arch>-static`.
fn format_for(
    host: &dyn Host,
    binfmts_dir: &str,
    platform: &Platform,
    arch: &Arch,
) -> Result<Format, InstallError> {
    let path = format!("{binfmts_dir}/qemu-{}", arch.qemu);
    if let Some(text) = host.read(&path) {
        let f = Format::parse_binfmts(&text).map_err(|source| InstallError::Format {
            path: path.clone(),
            source,
        })?;
        let probe = Handler {
            name: String::new(),
            enabled: true,
            interpreter: f.interpreter.clone(),
            flags: f.flags,
            rule: Rule::Magic {
                offset: f.offset,
                magic: f.magic.clone(),
                mask: Some(f.mask.clone()),
            },
        };
        if !probe.matches(&arch.header(elf::ET_EXEC)) || !probe.matches(&arch.header(elf::ET_DYN)) {
            return Err(InstallError::WrongMagic {
                path,
                platform: platform.clone(),
            });
        }
        if host.exists(&f.interpreter) {
            return Ok(f);
        }
    }
    let interpreter = host
        .which(&format!("qemu-{}-static", arch.qemu))
        .ok_or_else(|| InstallError::QemuMissing {
            platform: platform.clone(),
            qemu: arch.qemu,
        })?;
    let (magic, mask) = arch.default_magic();
    Ok(Format {
        interpreter,
        offset: 0,
        magic,
        mask,
        flags: Flags::default(),
    })
}

/// Mounts binfmt_misc at `dir` unless it is mounted (as systemd does: nosuid, nodev, noexec).
pub fn ensure_mounted(host: &dyn Host, dir: &str) -> Result<(), InstallError> {
    if host.read(&format!("{dir}/status")).is_some() {
        return Ok(());
    }
    use rustix::mount::MountFlags;
    rustix::mount::mount(
        "binfmt_misc",
        dir,
        "binfmt_misc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| InstallError::Mount {
        dir: dir.into(),
        source: e.into(),
    })
}

/// Fails unless this process may register handlers.
pub fn check_root() -> Result<(), InstallError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(InstallError::NotRoot)
    }
}

/// Registers what [`plan`] decided, in order, under the binfmt_misc mount at `dir`.
pub fn apply(dir: &str, steps: &[Step]) -> Result<(), InstallError> {
    for s in steps {
        let (Some(line), Outcome::Registered { handler, .. }) = (&s.line, &s.outcome) else {
            continue;
        };
        if s.replaces {
            remove(dir, handler)?;
        }
        let register = format!("{dir}/register");
        write(&register, line.as_bytes()).map_err(|source| InstallError::Register {
            name: handler.clone(),
            line: line.clone(),
            register: register.clone(),
            source,
        })?;
    }
    Ok(())
}

/// `--install`: root check, mount, plan, apply. Returns the steps taken.
pub fn install(
    host: &dyn Host,
    dir: &str,
    platforms: Option<&[Platform]>,
) -> Result<Vec<Step>, InstallError> {
    check_root()?;
    ensure_mounted(host, dir)?;
    let defaults;
    let platforms = match platforms {
        Some(p) if !p.is_empty() => p,
        _ => {
            defaults = default_platforms(host, BINFMTS_DIR);
            if defaults.is_empty() {
                return Err(InstallError::PackageMissing {
                    binfmts_dir: BINFMTS_DIR.into(),
                });
            }
            &defaults
        }
    };
    let steps = plan(host, dir, BINFMTS_DIR, platforms)?;
    apply(dir, &steps)?;
    Ok(steps)
}

/// `--uninstall`: removes every `whittle-qemu-*` handler (others stay). Returns their names.
pub fn uninstall(host: &dyn Host, dir: &str) -> Result<Vec<String>, InstallError> {
    check_root()?;
    let mut removed = Vec::new();
    for h in Registry::read(host, dir).handlers() {
        if h.name.starts_with(HANDLER_PREFIX) {
            remove(dir, &h.name)?;
            removed.push(h.name.clone());
        }
    }
    Ok(removed)
}

fn remove(dir: &str, name: &str) -> Result<(), InstallError> {
    match write(&format!("{dir}/{name}"), b"-1") {
        Ok(()) => Ok(()),
        // Removed meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(InstallError::Remove {
            name: name.into(),
            source,
        }),
    }
}

/// One `write(2)` of `data` to an existing file: binfmt_misc takes each write as one command.
fn write(path: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(data)?;
    if n != data.len() {
        return Err(std::io::Error::other(format!(
            "short write ({n} of {} bytes)",
            data.len()
        )));
    }
    Ok(())
}
