use clap::Parser;

/// whittle: a daemonless builder for small container images.
#[derive(Parser)]
#[command(name = "whittle", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
