//! `whittle images`: list stored images like `docker images`.

use super::storeutil::{ago, human_size, open};
use std::path::Path;
use std::process::ExitCode;

/// List images in the store.
#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Runs `whittle images`.
pub fn run(args: ImagesArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let images = store.images()?;
    let id = |d: &whittle_store::Digest| {
        if args.no_trunc {
            d.to_string()
        } else {
            d.hex()[..12].to_string()
        }
    };
    // Attestation manifests are not images: they are shown as a mark on the image they
    // describe (`Attestations` in JSON), not as rows.
    let attestations: std::collections::HashMap<
        &whittle_store::Digest,
        &whittle_store::ImageRecord,
    > = images
        .iter()
        .filter_map(|t| t.attests.as_ref().map(|of| (of, &t.image)))
        .collect();
    let images: Vec<&whittle_store::TaggedImage> =
        images.iter().filter(|t| t.attests.is_none()).collect();
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut json = Vec::new();
    for t in &images {
        let img = &t.image;
        let attested = attestations.get(&img.manifest).map(|a| {
            let types: Vec<String> = store
                .attestation_statements(a)
                .map(|v| v.into_iter().map(|s| s.predicate_type).collect())
                .unwrap_or_default();
            serde_json::json!({"Manifest": a.manifest.to_string(), "PredicateTypes": types})
        });
        json.push(serde_json::json!({
            "Attestations": attested,
            "Id": img.config.to_string(),
            "Digest": img.manifest.to_string(),
            "RepoTags": t.tags,
            "Created": img.created,
            "Size": img.size,
            "Platform": img.platform.as_ref().map(ToString::to_string),
            "Index": t.index.as_ref().map(ToString::to_string),
        }));
        let mut tags: Vec<(String, String)> = t
            .tags
            .iter()
            .map(|r| match r.rsplit_once(':') {
                Some((repo, tag)) => (repo.to_string(), tag.to_string()),
                None => (r.clone(), String::new()),
            })
            .collect();
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in tags {
            rows.push([
                repo,
                tag,
                id(&img.config),
                img.platform
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
                ago(img.created.as_deref()),
                human_size(img.size),
            ]);
        }
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json)?),
        Format::Table if args.quiet => {
            let mut seen = Vec::new();
            for t in &images {
                let i = id(&t.image.config);
                if !seen.contains(&i) {
                    println!("{i}");
                    seen.push(i);
                }
            }
        }
        Format::Table => {
            super::storeutil::print_table(
                &[
                    "REPOSITORY",
                    "TAG",
                    "IMAGE ID",
                    "PLATFORM",
                    "CREATED",
                    "SIZE",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
