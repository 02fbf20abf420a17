//! `whittle rmi IMAGE...`: remove tags, and images left without tags.

use super::storeutil::open;
use std::path::Path;
use std::process::ExitCode;
use whittle_oci::Reference;
use whittle_store::StoreError;

/// Remove images. A name removes that tag (and the image once no tag is left); an id removes
/// the image and all its tags (with --force when it has several).
#[derive(clap::Args)]
pub struct RmiArgs {
    /// Images: name[:tag], image id or digest.
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image by id even if several tags refer to it.
    #[arg(short, long)]
    force: bool,
}

/// Runs `whittle rmi`.
pub fn run(args: RmiArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = open(root)?;
    let mut failed = false;
    for what in &args.images {
        let res: anyhow::Result<()> = (|| {
            let t = store.resolve(what)?;
            let by_tag = Reference::parse_tag(what)
                .ok()
                .filter(|r| r.tag_key().is_some_and(|k| t.tags.contains(&k)));
            if let Some(r) = by_tag {
                let target = store.tag_target(&r)?;
                store.untag(&r)?;
                let tag = r.to_string();
                println!("Untagged: {tag}");
                // A multi-platform image: every platform's image that no tag names any more.
                if let Some(whittle_store::TagTarget::Index(ix)) = target {
                    let left = store.images()?;
                    for m in &ix.manifests {
                        let untagged = left
                            .iter()
                            .any(|i| i.image.manifest == m.manifest && i.tags.is_empty());
                        if untagged {
                            store.remove_image(&m.manifest)?;
                            println!("Deleted: {}", m.manifest);
                        }
                    }
                    if !left.iter().any(|i| i.index.as_ref() == Some(&ix.digest)) {
                        store.remove_index(&ix.digest)?;
                        println!("Deleted: {}", ix.digest);
                    }
                    return Ok(());
                }
                if t.tags.len() > 1 {
                    return Ok(());
                }
            } else if t.tags.len() > 1 && !args.force {
                return Err(StoreError::Conflict(format!(
                    "image {} is referenced by {} tags ({}); remove them by name or use --force",
                    &t.image.config.hex()[..12],
                    t.tags.len(),
                    t.tags.join(", ")
                ))
                .into());
            }
            for tag in store.remove_image(&t.image.manifest)? {
                println!("Untagged: {tag}");
            }
            println!("Deleted: {}", t.image.manifest);
            Ok(())
        })();
        if let Err(e) = res {
            super::report(&e.context(format!("removing {what}")));
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
