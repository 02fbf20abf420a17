//! Typed errors of layer writing and extraction.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of [`crate::write_layer`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading a source file or directory failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The source path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The layer source is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// A file changed size while it was archived.
    #[error("{0} changed while it was being archived")]
    FileChanged(PathBuf),
    /// An xattr name that is not UTF-8 cannot go into a PAX record.
    #[error("{0} has an extended attribute whose name is not UTF-8")]
    BadXattrName(PathBuf),
    /// overlayfs redirect/metacopy features cannot be expressed as a tar layer.
    #[error("{0} uses the overlayfs feature {1}, which a layer cannot express (mount without redirect_dir/metacopy)")]
    UnsupportedOverlay(PathBuf, String),
    /// Writing or compressing the output failed.
    #[error("writing the layer: {0}")]
    Output(io::Error),
}

impl WriteError {
    pub(crate) fn io(path: &Path, source: io::Error) -> WriteError {
        WriteError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Errors of [`crate::extract_layer`]. Every refusal names the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A `..` component: the entry would leave the root.
    #[error("layer entry {entry:?}: refused, its path climbs out of the root with \"..\"")]
    PathTraversal {
        /// Entry path as in the tar.
        entry: String,
    },
    /// A hard link whose target has a `..` component.
    #[error("layer entry {entry:?}: refused, hard link target {target:?} climbs out of the root")]
    LinkTraversal {
        /// Entry path.
        entry: String,
        /// Link target.
        target: String,
    },
    /// A hard link to something that is not in the root (yet).
    #[error("layer entry {entry:?}: hard link target {target:?} does not exist inside the root")]
    LinkTargetMissing {
        /// Entry path.
        entry: String,
        /// Link target.
        target: String,
    },
    /// A hard link to a directory (or to the root).
    #[error("layer entry {entry:?}: refused, hard link target {target:?} is a directory")]
    LinkToDirectory {
        /// Entry path.
        entry: String,
        /// Link target.
        target: String,
    },
    /// A NUL byte in a path or link target.
    #[error("layer entry {entry:?}: refused, NUL byte in its path or link target")]
    NulByte {
        /// Entry path.
        entry: String,
    },
    /// A non-directory entry naming the root itself.
    #[error("layer entry {entry:?}: refused, it would replace the root directory")]
    ReplacesRoot {
        /// Entry path.
        entry: String,
    },
    /// A parent path component exists and is not a directory (or is a dangling symlink).
    #[error("layer entry {entry:?}: refused, a parent path component is not a directory inside the root")]
    ParentNotDirectory {
        /// Entry path.
        entry: String,
    },
    /// A device node under [`crate::DevicePolicy::Reject`].
    #[error("layer entry {entry:?}: refused, device nodes are not permitted here")]
    DeviceNotPermitted {
        /// Entry path.
        entry: String,
    },
    /// `.wh.`, `.wh..` or `.wh...`.
    #[error("layer entry {entry:?}: refused, invalid whiteout name")]
    InvalidWhiteout {
        /// Entry path.
        entry: String,
    },
    /// An entry type a layer cannot contain.
    #[error("layer entry {entry:?}: unsupported entry type {kind}")]
    UnsupportedType {
        /// Entry path.
        entry: String,
        /// The tar type.
        kind: String,
    },
    /// A filesystem operation on an entry failed.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Io {
        /// Entry path.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The layer stream is unreadable (truncated, bad compression, bad tar header).
    #[error("reading the layer: {0}")]
    Read(io::Error),
    /// The extraction root cannot be opened.
    #[error("extraction root {0}: {1}")]
    Root(PathBuf, io::Error),
}

impl ExtractError {
    pub(crate) fn io(entry: &str, op: &'static str, source: io::Error) -> ExtractError {
        let op = if source.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) {
            "safe path resolution needs openat2 (Linux 5.6 or later)"
        } else {
            op
        };
        ExtractError::Io {
            entry: entry.to_string(),
            op,
            source,
        }
    }

    /// The entry this error is about, if any.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ExtractError::PathTraversal { entry }
            | ExtractError::LinkTraversal { entry, .. }
            | ExtractError::LinkTargetMissing { entry, .. }
            | ExtractError::LinkToDirectory { entry, .. }
            | ExtractError::NulByte { entry }
            | ExtractError::ReplacesRoot { entry }
            | ExtractError::ParentNotDirectory { entry }
            | ExtractError::DeviceNotPermitted { entry }
            | ExtractError::InvalidWhiteout { entry }
            | ExtractError::UnsupportedType { entry, .. }
            | ExtractError::Io { entry, .. } => Some(entry),
            ExtractError::Read(_) | ExtractError::Root(..) => None,
        }
    }
}
