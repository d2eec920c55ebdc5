//! The image module's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result of the image module's operations.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the image store.
///
/// `path` is always the archive the caller handed in (for import errors) or the
/// store path that failed; `entry` is the member name exactly as the archive
/// spells it, so a refused entry can be found with `tar -tvf`.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A directory of the store itself could not be created.
    #[error("creating image store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A digest is not `sha256:` followed by 64 lower-case hex digits.
    #[error("invalid digest {digest:?}: expected sha256: followed by 64 lower-case hex digits")]
    InvalidDigest { digest: String },

    /// The archive handed to `import` could not be opened or read.
    #[error("reading archive {path}: {source}")]
    ReadArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The store's own copy of the archive (the blob) could not be written.
    #[error("writing blob {path}: {source}")]
    Ingest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The archive's sha256 is not the one the caller expected; nothing was unpacked.
    #[error("archive {path} has digest {actual}, expected {expected}: nothing was unpacked")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// The archive is compressed with something other than gzip.
    #[error("archive {path} is {format}-compressed: only plain and gzip-compressed tars can be imported")]
    UnsupportedCompression { path: PathBuf, format: &'static str },

    /// The tar stream itself is broken (bad checksum, truncated, bad gzip).
    #[error("archive {path} is not a valid tar: {source}")]
    MalformedArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An entry has an absolute path (`/etc/passwd`); refused, not stripped.
    #[error("entry {entry:?} in archive {path} has an absolute path: refusing to unpack it")]
    AbsolutePath { path: PathBuf, entry: String },

    /// An entry's `..` components climb out of the layer directory.
    #[error("entry {entry:?} in archive {path} leaves the layer directory through \"..\": refusing to unpack it")]
    PathEscapes { path: PathBuf, entry: String },

    /// An entry would be written through a symlink created by an earlier entry.
    #[error(
        "entry {entry:?} in archive {path} would be written through the symlink {component:?}: refusing to unpack it"
    )]
    ThroughSymlink {
        path: PathBuf,
        entry: String,
        component: String,
    },

    /// A parent of an entry exists in the layer but is not a directory.
    #[error("entry {entry:?} in archive {path} lies under {component:?}, which is not a directory")]
    ThroughNonDirectory {
        path: PathBuf,
        entry: String,
        component: String,
    },

    /// A hardlink's target is absolute or climbs out of the layer directory.
    #[error("hardlink {entry:?} in archive {path} points at {target:?}, outside the layer: refusing to unpack it")]
    HardlinkEscapes {
        path: PathBuf,
        entry: String,
        target: String,
    },

    /// A hardlink's target is not an earlier non-directory entry of the layer.
    #[error("hardlink {entry:?} in archive {path} points at {target:?}, which is not an earlier file of the archive")]
    HardlinkTarget {
        path: PathBuf,
        entry: String,
        target: String,
    },

    /// An entry has a type the unpacker does not handle (sparse-file
    /// continuation, AUFS hardlink dirs, a non-directory root, ...).
    #[error("entry {entry:?} in archive {path} has unsupported type {kind}")]
    UnsupportedEntry { path: PathBuf, entry: String, kind: String },

    /// A whiteout (`.wh.<name>`) names nothing that could be hidden, or the
    /// overlay whiteout it becomes could not be made (needs CAP_MKNOD, and
    /// CAP_SYS_ADMIN for opaque directories).
    #[error("whiteout {entry:?} in archive {path} cannot be converted to an overlay whiteout: {reason}")]
    Whiteout {
        path: PathBuf,
        entry: String,
        reason: String,
    },

    /// A file-system operation failed while unpacking one entry.
    #[error("unpacking entry {entry:?} of archive {path}: {source}")]
    Unpack {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },

    /// The unpacked layer could not be synced or moved into `layers/`.
    #[error("committing layer {path}: {source}")]
    Commit {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An import failed, and removing what it had left (a temporary file or
    /// directory, or a blob no layer uses) failed too.
    #[error("{source}; cleaning up {path} also failed: {cleanup}")]
    Rollback {
        #[source]
        source: Box<ImageError>,
        path: PathBuf,
        cleanup: io::Error,
    },

    /// The `layers/` directory could not be read.
    #[error("listing layers in {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Removing a layer failed. Every step was still tried; these are all the
    /// failures, in order.
    #[error("removing layer {digest}: {}", DisplayList(failures))]
    Remove { digest: String, failures: Vec<PathFailure> },
}

/// One failed file-system step, with the path it was applied to.
#[derive(Debug)]
pub struct PathFailure {
    pub path: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for PathFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

struct DisplayList<'a>(&'a [PathFailure]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}
