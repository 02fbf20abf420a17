//! Why a platform's programs cannot run here, with the commands that fix it.

use whittle_oci::Platform;

/// What is missing for a platform's programs to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Not a Linux platform whittle knows the programs of.
    UnknownPlatform,
    /// binfmt_misc is not mounted.
    NotMounted,
    /// binfmt_misc is mounted but switched off (`status` says `disabled`).
    Disabled,
    /// No handler matches the platform's programs; `qemu_installed` tells whether
    /// qemu-user-static's interpreter for it is on this machine.
    NoHandler { qemu_installed: bool },
    /// The only handlers that match are disabled.
    HandlerDisabled { handler: String },
    /// The handler the kernel would use lacks the F flag: it would look the interpreter up
    /// inside the container, where it does not exist.
    NoFixBinary {
        handler: String,
        interpreter: String,
    },
}

/// A platform's programs cannot run on this machine: what is missing and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot run {platform} programs: {}\n{}", describe(.missing, .platform), fix_text(.fix))]
pub struct EmulationError {
    /// (Boxed: the error travels in `Result`s that should stay small.)
    pub platform: Box<Platform>,
    pub missing: Missing,
    /// The commands that fix it, in order (none for an unknown platform).
    pub fix: Vec<String>,
}

impl EmulationError {
    pub(crate) fn new(platform: &Platform, missing: Missing) -> Self {
        let install = format!("sudo whittle binfmt --install {platform}");
        let apt = "sudo apt-get install qemu-user-static".to_string();
        let fix = match &missing {
            Missing::UnknownPlatform => Vec::new(),
            Missing::NotMounted => vec![
                apt,
                "sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc".into(),
                install,
            ],
            Missing::Disabled => vec!["echo 1 | sudo tee /proc/sys/fs/binfmt_misc/status".into()],
            Missing::NoHandler {
                qemu_installed: false,
            } => vec![apt, install],
            Missing::NoHandler {
                qemu_installed: true,
            }
            | Missing::HandlerDisabled { .. }
            | Missing::NoFixBinary { .. } => vec![install],
        };
        EmulationError {
            platform: Box::new(platform.clone()),
            missing,
            fix,
        }
    }
}

fn describe(m: &Missing, p: &Platform) -> String {
    match m {
        Missing::UnknownPlatform => format!(
            "whittle does not know what {p} programs look like (known: {})",
            super::elf::ARCHES
                .iter()
                .map(|a| format!("linux/{}", a.oci))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Missing::NotMounted => {
            "they need emulation, and binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc".into()
        }
        Missing::Disabled => {
            "they need emulation, and binfmt_misc is disabled (its status file says so)".into()
        }
        Missing::NoHandler { qemu_installed } => format!(
            "they need emulation, and no binfmt_misc handler is registered for them{}",
            if *qemu_installed {
                ""
            } else {
                " (qemu-user-static is not installed either)"
            }
        ),
        Missing::HandlerDisabled { handler } => format!(
            "they need emulation, and the binfmt_misc handler for them ({handler}) is disabled"
        ),
        Missing::NoFixBinary {
            handler,
            interpreter,
        } => format!(
            "the binfmt_misc handler {handler} ({interpreter}) is registered without the F \
             (fix binary) flag, so the kernel looks {interpreter} up inside the container's \
             root filesystem, where it does not exist"
        ),
    }
}

fn fix_text(fix: &[String]) -> String {
    if fix.is_empty() {
        return String::new();
    }
    let mut s = String::from("to fix it, run:");
    for f in fix {
        s.push_str("\n  ");
        s.push_str(f);
    }
    s
}
