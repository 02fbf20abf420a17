//! `whittle history IMAGE`: the steps that made an image and the size of each layer.

use super::storeutil::{ago, human_size, open};
use std::path::Path;
use std::process::ExitCode;

/// Show the history of an image: created, created_by and layer size per step, newest first.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Image: name[:tag], image id or digest.
    image: String,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
}

/// Runs `whittle history`.
pub fn run(args: HistoryArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let t = store.resolve(&args.image)?;
    let rows: Vec<[String; 4]> = store
        .history(&t.image)?
        .into_iter()
        .map(|h| {
            let layer = match &h.layer {
                Some(d) if args.no_trunc => d.to_string(),
                Some(d) => d.hex()[..12].to_string(),
                None => "<none>".into(),
            };
            let mut by = h.created_by.unwrap_or_default().replace('\n', " ");
            if !args.no_trunc && by.chars().count() > 60 {
                by = by.chars().take(59).collect::<String>() + "…";
            }
            [layer, ago(h.created.as_deref()), by, human_size(h.size)]
        })
        .collect();
    super::storeutil::print_table(&["LAYER", "CREATED", "CREATED BY", "SIZE"], &rows);
    Ok(ExitCode::SUCCESS)
}
