//! The operations a vertex performs, generic over how an operation names its inputs: by
//! [`VertexId`](crate::VertexId) inside a graph, and by the inputs' definition digests when the
//! definition is hashed (so a digest never depends on how vertices are numbered).
//!
//! Everything an operation's result depends on is in its definition, resolved by the frontend:
//! the command line after heredoc rules, the environment, the working directory and user, the
//! mounts, the absolute destination of a copy. Nothing here refers to a Dockerfile.

use serde::{Deserialize, Serialize};
use whittle_oci::Platform;

/// One operation of the build graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op<I> {
    /// The empty filesystem.
    Scratch,
    /// An image's filesystem (and config), from the store.
    Image(ImageSource),
    /// A local directory: the build context (`name` absent) or a `--build-context NAME=DIR`.
    /// Its files are read by the copies and bind mounts that select from it; the content
    /// digests of what they select are part of *their* keys.
    Context(ContextSource),
    /// A command run in a container on `root`; its file changes are the new layer.
    Exec(Exec<I>),
    /// Files selected in `from` copied onto `onto` (COPY, ADD of local files and archives).
    Copy(Copy<I>),
    /// Files downloaded from URLs onto `onto` (ADD of URLs).
    Download(Download<I>),
    /// A directory created (with its missing parents) unless it exists (WORKDIR).
    Mkdir(Mkdir<I>),
    /// Filesystems stacked, later ones on top (`COPY --link`: a copy made on nothing, then put
    /// on the stage, so that it stays cached when what is below it changes).
    Merge(Merge<I>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSource {
    /// The reference as the Dockerfile names it.
    pub reference: String,
    pub platform: Platform,
    /// The manifest the reference was pinned to when the graph was made (`sha256:...`); the
    /// solver uses exactly this image. Absent when the frontend did not know the image.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSource {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

/// Which network a command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The build's default (`--network`; isolated unless the user chose otherwise).
    Default,
    /// Loopback only.
    None,
    /// The host's network namespace (needs the `network.host` entitlement).
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>"))]
pub struct Exec<I> {
    pub root: I,
    /// The program and its arguments, after the SHELL and heredoc rules.
    pub args: Vec<String>,
    /// `KEY=value`: the image's ENV, then the ARGs in scope that ENV does not shadow.
    pub env: Vec<String>,
    pub cwd: String,
    /// The USER in effect (name or id, `user[:group]`), resolved in the container.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    pub network: Network,
    /// `RUN --security=insecure`.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub insecure: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mounts: Vec<Mount<I>>,
    /// Files put into the container for the command only (a heredoc script with `#!`, run
    /// from `/dev/pipes/NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub files: Vec<File>,
    pub platform: Platform,
}

/// A file written by the frontend (a heredoc body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount<I> {
    pub target: String,
    #[serde(flatten)]
    pub kind: MountKind<I>,
}

/// How a cache mount is shared between steps that run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountKind<I> {
    /// `source` selected in `from` with COPY's rules, and a private copy of it mounted (never
    /// the host path).
    Bind { from: I, source: String, rw: bool },
    /// A persistent directory shared across builds, by id (an id made with another owner or
    /// mode is another cache).
    Cache {
        id: String,
        sharing: Sharing,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        uid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        gid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        mode: Option<u32>,
    },
    Tmpfs {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        size: Option<u64>,
    },
    /// A `--secret` by id; its value is never part of a definition or key.
    Secret {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// An `--ssh` agent by id.
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// A file given inline (COPY's heredoc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineFile {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>"))]
pub struct Copy<I> {
    /// What the files are added to (scratch for `--link`).
    pub onto: I,
    /// Where they are selected.
    pub from: I,
    /// ADD (local archives are unpacked when `unpack`).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub add: bool,
    /// Patterns, as COPY takes them (wildcards, directories meaning their contents).
    pub sources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub inline: Vec<InlineFile>,
    /// Absolute (the WORKDIR applied); a trailing `/` means a directory.
    pub dest: String,
    #[serde(flatten)]
    pub owner: Owner<I>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub excludes: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub parents: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub unpack: bool,
    /// Keep the files' owners (a copy from a stage or image); files from a local directory
    /// become root's.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub keep_owner: bool,
}

/// Who owns the files a copy or download adds, and their mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>"))]
pub struct Owner<I> {
    /// `--chown` as written (`user[:group]`), resolved against the `/etc/passwd` and
    /// `/etc/group` of `users` (or of the tree the files are added to).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chown: Option<String>,
    /// Where `--chown` names are looked up when that is not the tree the files are added to
    /// (`--link` copies onto nothing, yet names mean the stage's users). Only the ids they
    /// resolve to are part of the key, so a change elsewhere in that tree keeps a linked copy
    /// cached.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub users: Option<I>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chmod: Option<String>,
}

impl<I> Owner<I> {
    fn map<J>(&self, f: &mut impl FnMut(&I) -> J) -> Owner<J> {
        Owner {
            chown: self.chown.clone(),
            users: self.users.as_ref().map(f),
            chmod: self.chmod.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>"))]
pub struct Download<I> {
    pub onto: I,
    pub urls: Vec<String>,
    /// `--checksum`: the download must have this digest, and the key uses it (a hit downloads
    /// nothing).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<String>,
    pub dest: String,
    #[serde(flatten)]
    pub owner: Owner<I>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkdir<I> {
    pub root: I,
    /// Absolute and clean.
    pub path: String,
    /// New directories are owned by this user (the stage's USER).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge<I> {
    pub inputs: Vec<I>,
}

impl<I: Clone> Op<I> {
    /// The vertices this operation reads, in a fixed order.
    pub fn inputs(&self) -> Vec<I> {
        match self {
            Op::Scratch | Op::Image(_) | Op::Context(_) => Vec::new(),
            Op::Exec(e) => std::iter::once(e.root.clone())
                .chain(e.mounts.iter().filter_map(|m| match &m.kind {
                    MountKind::Bind { from, .. } => Some(from.clone()),
                    _ => None,
                }))
                .collect(),
            Op::Copy(c) => [c.onto.clone(), c.from.clone()]
                .into_iter()
                .chain(c.owner.users.clone())
                .collect(),
            Op::Download(d) => std::iter::once(d.onto.clone())
                .chain(d.owner.users.clone())
                .collect(),
            Op::Mkdir(m) => vec![m.root.clone()],
            Op::Merge(m) => m.inputs.clone(),
        }
    }

    /// The same operation with its inputs named another way.
    pub fn map_inputs<J>(&self, f: &mut impl FnMut(&I) -> J) -> Op<J> {
        match self {
            Op::Scratch => Op::Scratch,
            Op::Image(s) => Op::Image(s.clone()),
            Op::Context(s) => Op::Context(s.clone()),
            Op::Exec(e) => Op::Exec(Exec {
                root: f(&e.root),
                args: e.args.clone(),
                env: e.env.clone(),
                cwd: e.cwd.clone(),
                user: e.user.clone(),
                network: e.network,
                insecure: e.insecure,
                mounts: e
                    .mounts
                    .iter()
                    .map(|m| Mount {
                        target: m.target.clone(),
                        kind: match &m.kind {
                            MountKind::Bind { from, source, rw } => MountKind::Bind {
                                from: f(from),
                                source: source.clone(),
                                rw: *rw,
                            },
                            MountKind::Cache {
                                id,
                                sharing,
                                uid,
                                gid,
                                mode,
                            } => MountKind::Cache {
                                id: id.clone(),
                                sharing: *sharing,
                                uid: *uid,
                                gid: *gid,
                                mode: *mode,
                            },
                            MountKind::Tmpfs { size } => MountKind::Tmpfs { size: *size },
                            MountKind::Secret {
                                id,
                                env,
                                required,
                                mode,
                                uid,
                                gid,
                            } => MountKind::Secret {
                                id: id.clone(),
                                env: env.clone(),
                                required: *required,
                                mode: *mode,
                                uid: *uid,
                                gid: *gid,
                            },
                            MountKind::Ssh {
                                id,
                                required,
                                mode,
                                uid,
                                gid,
                            } => MountKind::Ssh {
                                id: id.clone(),
                                required: *required,
                                mode: *mode,
                                uid: *uid,
                                gid: *gid,
                            },
                        },
                    })
                    .collect(),
                files: e.files.clone(),
                platform: e.platform.clone(),
            }),
            Op::Copy(c) => Op::Copy(Copy {
                onto: f(&c.onto),
                from: f(&c.from),
                add: c.add,
                sources: c.sources.clone(),
                inline: c.inline.clone(),
                dest: c.dest.clone(),
                owner: c.owner.map(f),
                excludes: c.excludes.clone(),
                parents: c.parents,
                unpack: c.unpack,
                keep_owner: c.keep_owner,
            }),
            Op::Download(d) => Op::Download(Download {
                onto: f(&d.onto),
                urls: d.urls.clone(),
                checksum: d.checksum.clone(),
                dest: d.dest.clone(),
                owner: d.owner.map(f),
            }),
            Op::Mkdir(m) => Op::Mkdir(Mkdir {
                root: f(&m.root),
                path: m.path.clone(),
                owner: m.owner.clone(),
            }),
            Op::Merge(m) => Op::Merge(Merge {
                inputs: m.inputs.iter().map(&mut *f).collect(),
            }),
        }
    }

    /// A short name for the operation (`exec`, `copy`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Scratch => "scratch",
            Op::Image(_) => "image",
            Op::Context(_) => "context",
            Op::Exec(_) => "exec",
            Op::Copy(_) => "copy",
            Op::Download(_) => "download",
            Op::Mkdir(_) => "mkdir",
            Op::Merge(_) => "merge",
        }
    }
}
