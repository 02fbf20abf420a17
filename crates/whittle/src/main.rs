//! The `whittle` command line. Each subcommand lives in its own module under `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// whittle: a daemonless builder for small container images.
#[derive(Parser)]
#[command(name = "whittle", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the build plan of a Dockerfile: stages, order, parallelism, expanded steps.
    Plan(cmd::plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            cmd::report(&err);
            ExitCode::from(1)
        }
    }
}
