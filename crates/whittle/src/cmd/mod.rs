//! Subcommands. Each module exposes an `Args` struct (clap) and a `run` function returning
//! `anyhow::Result<ExitCode>`; errors are printed by [`report`].

pub mod analyze;
pub mod analyze_text;
pub mod attest;
pub mod binfmt;
pub mod build;
pub mod cache_flags;
pub mod check;
pub mod diff;
pub mod doctor;
pub mod flags;
pub mod frompull;
pub mod fsck;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod pull;
pub mod push;
pub mod regutil;
pub mod rmi;
pub mod rootless;
pub mod run;
pub mod save;
pub mod sbom;
pub mod storeutil;
pub mod tag;

/// Prints an error and its chain of causes to stderr.
pub fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
