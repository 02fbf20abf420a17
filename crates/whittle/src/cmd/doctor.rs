//! `whittle doctor`: what this machine allows (rootless builds, the RUN network, emulation of
//! other platforms), with the command that fixes each missing piece.

use std::process::ExitCode;
use whittle_runtime::doctor::{diagnose, RealHost, Status};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Say what this machine lets whittle do, and how to fix what is missing.
#[derive(clap::Args)]
pub struct DoctorArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = diagnose(&RealHost);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
        Format::Text => {
            for c in &checks {
                let mark = match c.status {
                    Status::Ok => "ok",
                    Status::Missing => "MISSING",
                    Status::NotNeeded => "-",
                };
                println!("{mark:>7}  {:<30} {}", c.title, c.detail);
                if let Some(fix) = &c.fix {
                    for line in fix.lines() {
                        println!("{:>7}  {:<30} fix: {line}", "", "");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
