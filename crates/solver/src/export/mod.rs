//! Exporters: where a build's result goes once the solver has made it.
//!
//! Every `-o` output (and `-t`, `--push`, `--load`) becomes one [`Exporter`]:
//! - [`StoreImage`]: the image in the store, under the `-t` names;
//! - [`Archive`]: an OCI or docker archive (`-o type=oci|docker,dest=...`);
//! - [`Local`]: the image's files in a directory (`-o DIR`), copied from the build's snapshots;
//! - [`Tar`]: the image's files as one tar (`-o type=tar`, `-o -`);
//!
//! (both with the [`ExtraFiles`] the caller gives, the attestations, next to the files);
//! - [`Daemon`]: the image loaded into a docker daemon (`--load`, `-o type=docker`);
//! - [`Registry`]: the image pushed (`--push`, `-o type=registry`).
//!
//! [`exporters`] turns the parsed outputs ([`OutputSpec`]) into exporters before the build, so
//! a bad name or a push with nowhere to go fails before any work. Each says whether it reads
//! the image ([`Exporter::needs_image`]): when none does, the solver writes no image, and a
//! build for `-o DIR` compresses nothing.

mod extra;
mod files;
mod spec;

pub use extra::{ExtraError, ExtraFiles};
pub use files::{copy_tree, copy_tree_with, FilesError, FilesSummary};
pub use spec::{Dest, OutputSpec, SpecError};

use crate::merged::Merged;
use std::io::Write;
use std::path::PathBuf;
use whittle_oci::Platform;
use whittle_oci::Reference;
use whittle_registry::{PushOptions, RegistryError};
use whittle_store::daemon::{DaemonError, DockerHost};
use whittle_store::{ArchiveFormat, ImageRecord, IndexRecord, OutputFile, Store, StoreError};

/// `index` with its images' uncompressed layers compressed (a new index over the new images
/// when any changed), for an OCI archive.
fn compressed_index(
    store: &Store,
    index: &IndexRecord,
    compression: whittle_layer::Compression,
    threads: usize,
) -> Result<IndexRecord, ExportError> {
    let mut images = Vec::new();
    let mut changed = false;
    for m in &index.manifests {
        let img = store.put_image(&m.manifest)?;
        let c = store.with_compressed_layers(&img, compression, threads)?;
        changed |= c.manifest != img.manifest;
        images.push(c);
    }
    if !changed {
        return Ok(index.clone());
    }
    if index.has_attestations() {
        // Its attestations name the images' old digests.
        return Err(ExportError::AttestedUncompressed);
    }
    let refs: Vec<&ImageRecord> = images.iter().collect();
    Ok(store.write_image_index(&refs, &Default::default())?)
}

/// What the exporters read: the store, the image (when one was written), and the image's
/// files as the stack of snapshot directories the build left (valid while the caller holds
/// a store lease, which keeps prune away from them).
pub struct Built<'a> {
    pub store: &'a Store,
    pub image: Option<&'a ImageRecord>,
    pub rootfs: &'a Merged,
    /// The build's epoch: file mtimes are clamped to it, as in the image's layers.
    pub epoch: u64,
    /// A build of several platforms: the index of their images (when images were written),
    /// and each platform's files. Empty for a build of one platform, which `image` and
    /// `rootfs` describe. A build with attestations has an index for one platform too (its
    /// image and its attestation manifest, as buildx writes it); outputs that hold no
    /// attestations (docker archive, daemon) then take `image` alone.
    pub index: Option<&'a IndexRecord>,
    pub platforms: &'a [(Platform, Merged)],
    /// Files the file outputs (`-o DIR`, `-o type=tar`) get next to each tree's: the
    /// attestations.
    pub extra: Option<&'a dyn ExtraFiles>,
}

impl Built<'_> {
    /// The trees to write as files: the one tree, or one per platform, each in a directory
    /// named as buildx names them (`linux_amd64`, `linux_arm_v7`).
    fn trees(&self) -> Vec<(Option<&Platform>, &Merged)> {
        if self.platforms.len() > 1 {
            self.platforms.iter().map(|(p, m)| (Some(p), m)).collect()
        } else {
            vec![(None, self.rootfs)]
        }
    }

    /// Copies the trees under `root` (each platform's in its directory), each with the extra
    /// files; with the image's owners if `owners` (and running as root).
    fn write_trees(&self, root: &std::path::Path, owners: bool) -> Result<(), ExportError> {
        for (platform, tree) in self.trees() {
            let dir = match platform {
                Some(p) => root.join(p.to_string().replace('/', "_")),
                None => root.to_path_buf(),
            };
            copy_tree_with(tree, &dir, self.epoch, owners)?;
            if let Some(extra) = self.extra {
                extra
                    .write(&dir, platform)
                    .map_err(|source| ExportError::Extra {
                        dest: dir.display().to_string(),
                        source,
                    })?;
            }
        }
        Ok(())
    }
}

/// Refuses, before the build, outputs that cannot hold several platforms: a docker archive
/// and a docker daemon hold one image per name.
pub fn check_platforms(outputs: &[OutputSpec], platforms: usize) -> Result<(), ExportError> {
    if platforms < 2 {
        return Ok(());
    }
    for o in outputs {
        let what = match o {
            OutputSpec::Daemon(_) => "loading into a docker daemon (--load, -o type=docker)",
            OutputSpec::Archive {
                format: ArchiveFormat::Docker,
                ..
            } => "a docker archive (-o type=docker,dest=...)",
            _ => continue,
        };
        return Err(ExportError::OnePlatform(what));
    }
    Ok(())
}

/// One destination of a build.
pub trait Exporter {
    /// What it writes, for messages ("the directory out/").
    fn describe(&self) -> String;
    /// Whether it reads the image (manifest, config, blobs) rather than only the files.
    fn needs_image(&self) -> bool;
    /// Whether it reads the bytes of the image's layers (a push need not: a layer the store
    /// knows only as remote is mounted from its repository).
    fn reads_layers(&self) -> bool {
        self.needs_image()
    }
    /// The name it pushes the image to, for a registry output.
    fn pushes_to(&self) -> Option<&Reference> {
        None
    }
    /// Writes the result; returns lines worth showing the user (a daemon's reply, what was
    /// pushed where).
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{what}: {name:?} is not an image name")]
    BadName {
        what: &'static str,
        name: String,
        #[source]
        source: whittle_oci::ReferenceError,
    },
    #[error("--push needs a name to push to: give -t NAME:TAG")]
    PushUnnamed,
    #[error("-o type=registry needs a name to push to: add name=NAME:TAG or give -t")]
    RegistryUnnamed,
    #[error("loading into a docker daemon needs to know which one: no DOCKER_HOST was resolved")]
    NoDaemon,
    #[error("the image's layers are stored uncompressed, and compressing them would change the digests its attestations name: build with compressed layers (the default) for an OCI archive with attestations")]
    AttestedUncompressed,
    #[error("{0} needs the image, and the build wrote none")]
    NoImage(String),
    #[error("{0} holds one platform, and this build makes several: build one --platform at a time for it, or write an OCI archive (-o type=oci,dest=FILE) or push (--push), which keep every platform")]
    OnePlatform(&'static str),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Daemon(Box<DaemonError>),
    #[error("pushing {name}")]
    Push {
        name: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("writing the image's files: {0}")]
    Files(#[from] FilesError),
    #[error("writing the tar {dest}")]
    Tar {
        dest: String,
        #[source]
        source: whittle_layer::WriteError,
    },
    #[error("writing the attestations into {dest}")]
    Extra {
        dest: String,
        #[source]
        source: ExtraError,
    },
    #[error("writing {dest}: {source}")]
    Write {
        dest: String,
        #[source]
        source: std::io::Error,
    },
}

// Boxed: registry and store errors are large, and every exporter returns this.
impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> Self {
        ExportError::Store(Box::new(e))
    }
}

impl From<DaemonError> for ExportError {
    fn from(e: DaemonError) -> Self {
        ExportError::Daemon(Box::new(e))
    }
}

/// What the exporters need from outside the build: how to push, and which daemon to load into.
#[derive(Clone, Default)]
pub struct ExportEnv {
    /// For registry outputs (`client` and `progress` matter; `also_tags` is ignored, and
    /// `compression` is replaced by the one below).
    pub push: PushOptions,
    /// How layers stored uncompressed are compressed when the image is pushed or written as an
    /// OCI archive (`Store::with_compressed_layers`).
    pub compression: whittle_layer::Compression,
    /// For daemon outputs: resolved by the caller from `DOCKER_HOST` before the build.
    pub docker: Option<DockerHost>,
}

/// The exporters for `outputs` with the `-t` names `tags`, `push` for `--push`: the store's
/// image first when something reads it (or there are names to tag), then the outputs in the
/// order given, pushes last (one exporter for every registry name, each pushed once).
pub fn exporters(
    outputs: &[OutputSpec],
    tags: &[Reference],
    push: bool,
    env: &ExportEnv,
) -> Result<Vec<Box<dyn Exporter>>, ExportError> {
    let mut out: Vec<Box<dyn Exporter>> = Vec::new();
    let store_name = |what: &'static str, n: &str| {
        Reference::parse_tag(n).map_err(|source| ExportError::BadName {
            what,
            name: n.to_string(),
            source,
        })
    };
    let mut remote: Vec<String> = Vec::new();
    let tag_names = || tags.iter().map(ToString::to_string);
    if push {
        if tags.is_empty() {
            return Err(ExportError::PushUnnamed);
        }
        remote.extend(tag_names());
    }
    for o in outputs {
        match o {
            OutputSpec::Image => {}
            OutputSpec::Archive { format, dest, name } => out.push(Box::new(Archive {
                compression: env.compression,
                format: *format,
                dest: dest.clone(),
                name: match name {
                    Some(n) => Some(store_name("-o name=", n)?),
                    None => tags.first().cloned(),
                },
            })),
            OutputSpec::Tar(dest) => out.push(Box::new(Tar { dest: dest.clone() })),
            OutputSpec::Local(dir) => out.push(Box::new(Local { dir: dir.clone() })),
            OutputSpec::Daemon(name) => out.push(Box::new(Daemon {
                host: env.docker.clone().ok_or(ExportError::NoDaemon)?,
                names: match name {
                    Some(n) => vec![store_name("-o name=", n)?],
                    None => tags.to_vec(),
                },
            })),
            OutputSpec::Registry(names) if names.is_empty() => {
                if tags.is_empty() {
                    return Err(ExportError::RegistryUnnamed);
                }
                remote.extend(tag_names());
            }
            OutputSpec::Registry(names) => remote.extend(names.iter().cloned()),
        }
    }
    remote.sort();
    remote.dedup();
    for name in remote {
        let target = Reference::parse(&name).map_err(|source| ExportError::BadName {
            what: "the name to push to",
            name: name.clone(),
            source,
        })?;
        out.push(Box::new(Registry {
            target,
            options: PushOptions {
                compression: env.compression,
                ..env.push.clone()
            },
        }));
    }
    let wanted = out.iter().any(|e| e.needs_image())
        || !tags.is_empty()
        || outputs.iter().any(|o| matches!(o, OutputSpec::Image))
        || outputs.is_empty();
    if wanted {
        out.insert(
            0,
            Box::new(StoreImage {
                names: tags.to_vec(),
            }),
        );
    }
    Ok(out)
}

/// The registry every push among `exporters` goes to, when there are pushes and they all go to
/// one registry.
pub fn one_push_registry(exporters: &[Box<dyn Exporter>]) -> Option<String> {
    let mut registries = exporters.iter().filter_map(|e| e.pushes_to());
    let first = registries.next()?.registry.clone();
    registries.all(|r| r.registry == first).then_some(first)
}

fn image<'a>(built: &Built<'a>, who: &dyn Exporter) -> Result<&'a ImageRecord, ExportError> {
    built
        .image
        .ok_or_else(|| ExportError::NoImage(who.describe()))
}

/// The image in the store, tagged with the `-t` names.
pub struct StoreImage {
    pub names: Vec<Reference>,
}

impl Exporter for StoreImage {
    fn describe(&self) -> String {
        "the image store".into()
    }
    fn needs_image(&self) -> bool {
        true
    }
    fn reads_layers(&self) -> bool {
        false
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        let target = match built.index {
            Some(ix) => &ix.digest,
            None => &image(built, self)?.manifest,
        };
        for n in &self.names {
            built.store.tag(n, target)?;
        }
        Ok(Vec::new())
    }
}

/// An OCI or docker archive of the image, to a file (replaced only once complete) or stdout.
/// An OCI archive gets layers stored uncompressed compressed (`compression`); a docker
/// archive keeps them as they are, as `docker save` writes them.
pub struct Archive {
    pub compression: whittle_layer::Compression,
    pub format: ArchiveFormat,
    pub dest: Dest,
    pub name: Option<Reference>,
}

impl Exporter for Archive {
    fn describe(&self) -> String {
        let kind = match self.format {
            ArchiveFormat::Oci => "an OCI archive",
            ArchiveFormat::Docker => "a docker archive",
        };
        format!("{kind} to {}", self.dest)
    }
    fn needs_image(&self) -> bool {
        true
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (pair, indexes) = match (built.index, self.format) {
            (Some(ix), ArchiveFormat::Oci) => {
                let index = compressed_index(built.store, ix, self.compression, threads)?;
                (Vec::new(), vec![(self.name.clone(), index)])
            }
            // One platform under an index only for its attestations: a docker archive holds
            // no attestations (as buildx's docker exporter), so the image goes alone.
            (Some(_), ArchiveFormat::Docker) if built.platforms.len() < 2 => (
                vec![(self.name.clone(), image(built, self)?.clone())],
                Vec::new(),
            ),
            (Some(_), ArchiveFormat::Docker) => {
                return Err(ExportError::OnePlatform("a docker archive"))
            }
            (None, ArchiveFormat::Oci) => {
                let img = image(built, self)?;
                let img = built
                    .store
                    .with_compressed_layers(img, self.compression, threads)?;
                (vec![(self.name.clone(), img)], Vec::new())
            }
            (None, ArchiveFormat::Docker) => (
                vec![(self.name.clone(), image(built, self)?.clone())],
                Vec::new(),
            ),
        };
        let write_err = |source| ExportError::Write {
            dest: self.dest.to_string(),
            source,
        };
        match &self.dest {
            Dest::Stdout => {
                let out = std::io::stdout().lock();
                whittle_store::archive::save_with_indexes(
                    built.store,
                    &pair,
                    &indexes,
                    self.format,
                    out,
                )?
                .flush()
                .map_err(write_err)?;
            }
            Dest::Path(p) => {
                let f = OutputFile::create(p)?;
                let w = std::io::BufWriter::with_capacity(1 << 20, f);
                let w = whittle_store::archive::save_with_indexes(
                    built.store,
                    &pair,
                    &indexes,
                    self.format,
                    w,
                )?;
                w.into_inner()
                    .map_err(|e| write_err(e.into_error()))?
                    .commit()?;
            }
        }
        Ok(Vec::new())
    }
}

/// The image's files in a directory, copied from the snapshots (see [`files`]).
pub struct Local {
    pub dir: PathBuf,
}

impl Exporter for Local {
    fn describe(&self) -> String {
        format!("the directory {}", self.dir.display())
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        // In whittle's rootless namespace the directory is the user's: no other ids in it.
        built.write_trees(&self.dir, whittle_runtime::rootless::current().is_none())?;
        Ok(Vec::new())
    }
}

/// The image's files as one uncompressed tar (to a file, or stdout). They are copied from the
/// snapshots into a scratch directory of the store first, and tarred by the layer writer,
/// which already makes tars the way whittle's layers are made (sorted, hard links, PAX for
/// long names and xattrs, clamped mtimes): a second tar writer for a merged view would repeat
/// all of it.
pub struct Tar {
    pub dest: Dest,
}

impl Exporter for Tar {
    fn describe(&self) -> String {
        format!("a tar to {}", self.dest)
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        let tmp_root = built.store.root().join("tmp");
        let tmp = tempfile::tempdir_in(&tmp_root).map_err(|source| ExportError::Write {
            dest: tmp_root.display().to_string(),
            source,
        })?;
        built.write_trees(tmp.path(), true)?;
        let opts = whittle_layer::WriteOptions {
            compression: whittle_layer::Compression::None,
            epoch: built.epoch,
            ..whittle_layer::WriteOptions::default()
        };
        let tar_err = |source| ExportError::Tar {
            dest: self.dest.to_string(),
            source,
        };
        match &self.dest {
            Dest::Stdout => {
                let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                let (_, mut out) =
                    whittle_layer::write_layer(tmp.path(), &opts, out).map_err(tar_err)?;
                out.flush().map_err(|source| ExportError::Write {
                    dest: self.dest.to_string(),
                    source,
                })?;
            }
            Dest::Path(p) => {
                let f = OutputFile::create(p)?;
                let w = std::io::BufWriter::with_capacity(1 << 20, f);
                let (_, w) = whittle_layer::write_layer(tmp.path(), &opts, w).map_err(tar_err)?;
                w.into_inner()
                    .map_err(|e| ExportError::Write {
                        dest: self.dest.to_string(),
                        source: e.into_error(),
                    })?
                    .commit()?;
            }
        }
        Ok(Vec::new())
    }
}

/// The image loaded into a docker daemon, under the given names.
pub struct Daemon {
    pub host: DockerHost,
    pub names: Vec<Reference>,
}

impl Exporter for Daemon {
    fn describe(&self) -> String {
        format!("the docker daemon at {}", self.host.describe())
    }
    fn needs_image(&self) -> bool {
        true
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        // An index of one platform has it for its attestations, which a docker daemon (without
        // the containerd store) does not keep: the image is loaded alone, as buildx does.
        if built.platforms.len() > 1 {
            return Err(ExportError::OnePlatform("a docker daemon"));
        }
        let img = image(built, self)?;
        let said =
            whittle_store::daemon::load_into_daemon(built.store, &self.host, img, &self.names)?;
        Ok(said.into_iter().map(|l| format!("docker: {l}")).collect())
    }
}

/// The image pushed to one name (blobs the registry already has are skipped, so a second name
/// costs a manifest).
pub struct Registry {
    pub target: Reference,
    pub options: PushOptions,
}

impl Exporter for Registry {
    fn describe(&self) -> String {
        format!("the registry name {}", self.target)
    }
    fn needs_image(&self) -> bool {
        true
    }
    fn reads_layers(&self) -> bool {
        false
    }
    fn pushes_to(&self) -> Option<&Reference> {
        Some(&self.target)
    }
    fn export(&self, built: &Built<'_>) -> Result<Vec<String>, ExportError> {
        let pushed = match built.index {
            Some(ix) => whittle_registry::push_index(built.store, ix, &self.target, &self.options),
            None => whittle_registry::push_image(
                built.store,
                image(built, self)?,
                &self.target,
                &self.options,
            ),
        };
        let digest = pushed.map_err(|source| ExportError::Push {
            name: self.target.to_string(),
            source: Box::new(source),
        })?;
        Ok(vec![format!("pushed {}@{digest}", self.target.canonical())])
    }
}
