//! Running other platforms' programs: binfmt_misc and qemu-user-static.
//!
//! The kernel runs a program of another architecture when a binfmt_misc handler's magic
//! matches the program's first bytes: it then runs the handler's interpreter (qemu, built for
//! the host) with the program. [`status`] answers, for an OCI platform, what the kernel would
//! do with that platform's programs: run them itself ([`Emulation::Native`]), hand them to a
//! handler ([`Emulation::Emulated`]), or fail ([`EmulationError`], with the commands that fix
//! it). [`require`] also refuses a handler without the F flag: without it the kernel opens the
//! interpreter by path at each exec, inside the container's root, where qemu is not.
//!
//! Matching is the kernel's: the handlers are tried newest first (the order the mount lists
//! them), a disabled one is skipped, and a handler matches when every byte of its magic equals
//! the program's under its mask. A program's header is built from the platform
//! ([`elf::Arch::header`]); a handler has to accept both fixed-address executables and PIEs.
//!
//! - `entry`: the handler files under the mount ([`Registry`], [`Handler`]), the one parser
//!   of them (the doctor's probe uses it too).
//! - `elf`: platforms to ELF identification and qemu names.
//! - `format`: packaged handler definitions (`/usr/share/binfmts/qemu-*`) and the line written
//!   to `register`.
//! - `install`: `whittle binfmt --install/--uninstall` (mounts binfmt_misc, registers
//!   `whittle-qemu-<arch>` handlers with the F flag).
//!
//! Everything is read through [`crate::doctor::Host`], so it is tested with a fake machine.

pub mod elf;
mod entry;
mod error;
pub mod format;
pub mod install;

pub use entry::{EntryError, Flags, Handler, Registry, Rule, BINFMT_MISC};
pub use error::{EmulationError, Missing};

use crate::doctor::Host;
use std::path::PathBuf;
use whittle_oci::Platform;

/// How this machine runs a platform's programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// The kernel runs them itself: the host's architecture, or its 32-bit compat partner
    /// (386 on amd64, arm on arm64) when the kernel has compat support and no handler claims
    /// them first.
    Native,
    /// A binfmt_misc handler runs them through `interpreter`.
    Emulated {
        handler: String,
        interpreter: PathBuf,
        /// The handler has the F flag (it works inside containers).
        fix_binary: bool,
    },
}

/// What the kernel would do with `platform`'s programs, given the binfmt_misc mount at `dir`
/// (normally [`BINFMT_MISC`]). A handler without the F flag is reported as it is
/// (`fix_binary: false`); [`require`] refuses it.
pub fn status(
    host: &dyn Host,
    dir: &str,
    platform: &Platform,
) -> Result<Emulation, EmulationError> {
    let err = |m| EmulationError::new(platform, m);
    let Some(arch) = elf::arch_of(platform) else {
        return Err(err(Missing::UnknownPlatform));
    };
    let host_arch = elf::host_arch();
    // The host's own programs: never second-guessed (no sane setup routes them elsewhere).
    if host_arch == Some(arch) {
        return Ok(Emulation::Native);
    }
    let registry = Registry::read(host, dir);
    let exec = arch.header(elf::ET_EXEC);
    let dyn_ = arch.header(elf::ET_DYN);
    let matching: Vec<&Handler> = registry
        .handlers()
        .iter()
        .filter(|h| h.matches(&exec) && h.matches(&dyn_))
        .collect();
    if let Some(h) = matching.iter().find(|h| h.enabled) {
        return Ok(Emulation::Emulated {
            handler: h.name.clone(),
            interpreter: h.interpreter.clone(),
            fix_binary: h.flags.fix_binary,
        });
    }
    if host_arch.is_some_and(|h| h.runs_natively(arch)) && host.compat32() {
        return Ok(Emulation::Native);
    }
    Err(err(match (&registry, matching.first()) {
        (Registry::NotMounted, _) => Missing::NotMounted,
        (Registry::Disabled, _) => Missing::Disabled,
        (Registry::Enabled { .. }, Some(h)) => Missing::HandlerDisabled {
            handler: h.name.clone(),
        },
        (Registry::Enabled { .. }, None) => Missing::NoHandler {
            qemu_installed: qemu_installed(host, arch),
        },
    }))
}

/// Like [`status`], but a handler without the F flag is an error too: what the runtime
/// checks before it starts a container for a foreign platform.
pub fn require(
    host: &dyn Host,
    dir: &str,
    platform: &Platform,
) -> Result<Emulation, EmulationError> {
    match status(host, dir, platform)? {
        Emulation::Emulated {
            handler,
            interpreter,
            fix_binary: false,
        } => Err(EmulationError::new(
            platform,
            Missing::NoFixBinary {
                handler,
                interpreter: interpreter.display().to_string(),
            },
        )),
        ok => Ok(ok),
    }
}

/// Whether qemu-user-static's interpreter for `arch` is installed.
pub(crate) fn qemu_installed(host: &dyn Host, arch: &elf::Arch) -> bool {
    host.which(&format!("qemu-{}-static", arch.qemu)).is_some()
}

#[cfg(test)]
mod tests;
