//! `whittle sbom IMAGE`: what packages an image holds, as SPDX 2.3 JSON, CycloneDX 1.5 JSON or
//! a table. Thin: parses, calls `whittle_sbom::catalog`, renders.

use super::storeutil::open;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whittle_sbom::{Input, Options};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SPDX 2.3 JSON.
    SpdxJson,
    /// CycloneDX 1.5 JSON.
    CyclonedxJson,
    /// A table for a terminal: name, version, type, layer.
    Table,
}

/// List the packages an image holds (dpkg, apk, Python, Go, Rust, Java, npm) as an SBOM.
#[derive(clap::Args)]
pub struct SbomArgs {
    /// Image: name[:tag], id or digest in the store; docker-archive:FILE; oci-archive:FILE;
    /// oci:DIR[:NAME]. Archives and layouts are read in place, not added to the store.
    image: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Layers read at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Catalogue the image even when it carries an SBOM attestation (`build --sbom`), which
    /// `--format spdx-json` otherwise prints as it is.
    #[arg(long)]
    scan: bool,
}

/// Runs `whittle sbom`.
pub fn run(args: SbomArgs, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let input = Input::parse(&args.image)?;
    let mut opts = Options::default();
    if let Some(j) = args.jobs {
        opts.threads = j.max(1);
    }
    let store = match input {
        Input::Store(_) => Some(open(root)?),
        _ => None,
    };
    if let (Some(store), Input::Store(name), Format::SpdxJson, false) =
        (&store, &input, args.format, args.scan)
    {
        if let Some(doc) = attested_spdx(store, name)? {
            let mut text = serde_json::to_string_pretty(&doc)?;
            text.push('\n');
            match &args.output {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
            eprintln!("note: the SBOM attestation the image carries (--scan catalogues it again)");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let sbom = whittle_sbom::catalog(&input, store.as_ref(), &opts)
        .with_context(|| format!("cataloguing {}", args.image))?;
    let mut text = match args.format {
        Format::SpdxJson => serde_json::to_string_pretty(&whittle_sbom::spdx::to_json(&sbom))?,
        Format::CyclonedxJson => {
            serde_json::to_string_pretty(&whittle_sbom::cyclonedx::to_json(&sbom))?
        }
        Format::Table => table(&sbom),
    };
    text.push('\n');
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    for n in &sbom.notes {
        eprintln!("note: layer {}, {}: skipped: {}", n.layer, n.path, n.why);
    }
    Ok(ExitCode::SUCCESS)
}

/// The SPDX predicate of the image's SBOM attestation, when it carries one.
fn attested_spdx(
    store: &whittle_store::Store,
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let img = store.resolve(name)?;
    // The attestation in the index this name tags, when it tags one: the same image under
    // several tags has one in each index, their subjects naming each tag.
    let own = match name
        .parse::<whittle_oci::Reference>()
        .ok()
        .map(|r| store.tag_target(&r))
    {
        Some(Ok(Some(whittle_store::TagTarget::Index(ix)))) => ix
            .attestation_of(&img.image.manifest)
            .map(|m| store.put_image(&m.manifest))
            .transpose()?,
        _ => None,
    };
    let att = match own {
        Some(a) => a,
        None => match store.attestation_of(&img.image.manifest)? {
            Some(a) => a,
            None => return Ok(None),
        },
    };
    for st in store.attestation_statements(&att)? {
        if st.predicate_type != whittle_oci::attestation::PREDICATE_SPDX {
            continue;
        }
        let bytes = store.read_statement(&st.digest)?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the SBOM attestation {} is not JSON", st.digest))?;
        // Only a statement about this very image.
        let about = v["subject"].as_array().is_some_and(|subjects| {
            subjects
                .iter()
                .any(|s| s["digest"]["sha256"].as_str() == Some(img.image.manifest.hex()))
        });
        if about {
            return Ok(Some(v["predicate"].take()));
        }
    }
    Ok(None)
}

/// The human table: one package a line, columns padded to the widest value (control
/// characters from the image shown escaped).
fn table(sbom: &whittle_sbom::Sbom) -> String {
    let clean = |s: &str| s.chars().flat_map(char::escape_debug).collect::<String>();
    let mut rows = vec![[
        "NAME".to_string(),
        "VERSION".to_string(),
        "TYPE".to_string(),
        "LAYER".to_string(),
    ]];
    for p in &sbom.packages {
        let layer = match sbom.layer_digest(p.layer) {
            Some(d) => format!("{} {}", p.layer, d.get(..19).unwrap_or(d)),
            None => p.layer.to_string(),
        };
        rows.push([
            clean(&p.name),
            clean(&p.version),
            p.kind.as_str().to_string(),
            layer,
        ]);
    }
    let mut w = [0usize; 4];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} packages", sbom.packages.len()));
    out
}
