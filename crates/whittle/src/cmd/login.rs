//! `whittle login` / `whittle logout`: credentials in the docker config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), or its credential helper.

use super::regutil::TransportArgs;
use anyhow::Context;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use whittle_registry::{registry_name, Credentials};

/// Log in to a registry: the credentials are checked against it, then saved.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default: docker.io).
    registry: Option<String>,
    /// User name (asked for on a terminal when missing).
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a command line is visible to other users).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Log out of a registry: remove its saved credentials.
#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host[:port] (default: docker.io).
    registry: Option<String>,
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{prompt} missing: give it on the command line (or --password-stdin)");
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush().ok();
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `whittle login`.
pub fn run_login(args: LoginArgs, _root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let registry = registry_name(args.registry.as_deref().unwrap_or("docker.io"));
    let username = match args.username {
        Some(u) => u,
        None => ask("Username")?,
    };
    let password = if args.password_stdin {
        if args.password.is_some() {
            anyhow::bail!("--password and --password-stdin are exclusive");
        }
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match args.password {
            Some(p) => p,
            None => ask("Password")?,
        }
    };
    if username.is_empty() || password.is_empty() {
        anyhow::bail!("user name and password must not be empty");
    }
    let creds = Credentials { username, password };
    whittle_registry::login(&registry, &creds, &args.transport.client_options())
        .with_context(|| format!("logging in to {registry}"))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Runs `whittle logout`.
pub fn run_logout(args: LogoutArgs, _root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let registry = registry_name(args.registry.as_deref().unwrap_or("docker.io"));
    let opts = whittle_registry::ClientOptions::default();
    if whittle_registry::logout(&registry, &opts)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
