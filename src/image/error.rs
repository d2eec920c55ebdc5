//! The image module's error type, and the escaping every message built from
//! untrusted text goes through.

use std::fmt::{self, Write as _};
use std::io;
use std::path::PathBuf;

/// Result of the image module's operations.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the image store.
///
/// `path` is always the archive the caller handed in (for import errors) or the
/// store path that failed; `entry` is the member name exactly as the archive
/// spells it, so a refused entry can be found with `tar -tvf`.
///
/// Names, link targets and paths come from the archive or the manifest, and
/// the messages end up on a terminal (`berth get`, `describe`): every message
/// that shows them passes them through [`Escaped`], so that an entry named
/// `\x1b[2J` cannot clear the screen. The same goes for the I/O errors of
/// the unpack, whose text can quote the archive (the `tar` crate puts the
/// entry's name into its header errors).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A registry reference does not parse.
    #[error("invalid image reference \"{}\": {}", Escaped(.reference), Escaped(.reason))]
    BadReference { reference: String, reason: String },

    /// The registry refused or failed a request, or could not be reached;
    /// `message` says which in one line.
    #[error("pulling {}: {}", Escaped(.reference), Escaped(.message))]
    Registry { reference: String, message: String },

    /// A blob's bytes do not hash to the digest that names them; the blob
    /// was discarded and nothing was unpacked.
    #[error(
        "pulling {}: blob {} has digest {}: refusing it, nothing was unpacked",
        Escaped(.reference),
        Escaped(.expected),
        Escaped(.actual)
    )]
    BlobDigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    /// A stored blob no longer hashes to its name (changed on disk).
    #[error("blob {expected} in the image store now has digest {actual}: it changed on disk; remove the image and pull it again")]
    CorruptBlob { expected: String, actual: String },

    /// No image with this reference or id is in the store.
    #[error("image {} not found", Escaped(.reference))]
    NotFound { reference: String },

    /// The image's manifest, config or layers are not what they must be
    /// (an unknown media type, a diff id that does not match, no layer for
    /// the platform asked for).
    #[error("image {}: {}", Escaped(.reference), Escaped(.reason))]
    BadImage { reference: String, reason: String },

    /// A file of the store (a blob, a record, the references) could not be
    /// read or written.
    #[error("image store {}: {source}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The reference index (`refs.json`) cannot be read and neither can its
    /// backup: nothing that reads or writes references goes on, so that no
    /// image is taken for unnamed and pruned, and the file is kept as it is
    /// for the operator to restore.
    #[error(
        "the image index {} is unreadable ({}) and its backup {} {}: nothing was changed or deleted. \
         Restore refs.json from a copy of the store; or, to start an empty index, move both files aside: \
         the images stay, unnamed (`berth images` lists them by id; name them \
         again with `berth tag ID NAME` before any `berth image prune`, which would delete them)",
        Escaped(.path.display()),
        Escaped(.reason),
        Escaped(.backup.display()),
        Escaped(.backup_state)
    )]
    CorruptIndex {
        path: PathBuf,
        reason: String,
        backup: PathBuf,
        /// What is wrong with the backup ("is missing", "is unreadable (…)").
        backup_state: String,
    },

    /// An image record cannot be read: listing and collection stop rather
    /// than treat the image as gone and delete its layers.
    #[error(
        "image record {} is unreadable ({}): nothing was deleted. Move it aside (the image it describes \
         is then lost: pull or load it again) or restore it from a copy of the store",
        Escaped(.path.display()),
        Escaped(.reason)
    )]
    CorruptRecord { path: PathBuf, reason: String },

    /// A directory of the store itself could not be created.
    #[error("creating image store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A digest is not `sha256:` followed by 64 lower-case hex digits.
    #[error("invalid digest \"{}\": expected sha256: followed by 64 lower-case hex digits", Escaped(.digest))]
    InvalidDigest { digest: String },

    /// The archive handed to `import` could not be opened or read.
    #[error("reading archive {}: {}", Escaped(.path.display()), Escaped(.source))]
    ReadArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The path to import is not a regular file (a fifo, a device, a
    /// directory, a socket); refused before anything is read from it.
    #[error(
        "{} is {kind}, not a regular file: only a tar file can be imported",
        Escaped(.path.display())
    )]
    NotRegularFile { path: PathBuf, kind: &'static str },

    /// The archive is larger than [`MAX_ARCHIVE_BYTES`](super::MAX_ARCHIVE_BYTES)
    /// (the limit of one import's copy into `blobs/`); nothing was kept.
    #[error(
        "archive {} is larger than {}, the limit for one archive: nothing was imported",
        Escaped(.path.display()),
        Size(*.limit)
    )]
    ArchiveTooLarge { path: PathBuf, limit: u64 },

    /// The archive unpacks to more than
    /// [`MAX_UNPACKED_BYTES`](super::MAX_UNPACKED_BYTES) (a decompression
    /// bomb, or an image too big for this store); nothing was kept.
    #[error(
        "archive {} unpacks to more than {}, the limit for one unpacked archive: nothing was imported",
        Escaped(.path.display()),
        Size(*.limit)
    )]
    UnpackedTooLarge { path: PathBuf, limit: u64 },

    /// The archive has no entries (a 0-byte file, or only the end-of-archive
    /// blocks): an empty image is refused rather than made Ready.
    #[error("archive {} has no entries: refusing to import an empty image", Escaped(.path.display()))]
    EmptyArchive { path: PathBuf },

    /// The archive's sha256 is not the one the caller expected; nothing was unpacked.
    #[error(
        "archive {} has digest {actual}, expected {}: nothing was unpacked",
        Escaped(.path.display()),
        Escaped(.expected)
    )]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// The archive is compressed with something other than gzip.
    #[error(
        "archive {} is {format}-compressed: only plain and gzip-compressed tars can be imported",
        Escaped(.path.display())
    )]
    UnsupportedCompression { path: PathBuf, format: &'static str },

    /// The tar stream itself is broken (bad header checksum, truncated, bad
    /// gzip, a gzip CRC or length trailer that does not match, bytes after the
    /// gzip stream that are not another gzip member).
    #[error("archive {} is not a valid tar: {}", Escaped(.path.display()), Escaped(.source))]
    MalformedArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An entry has an absolute path (`/etc/passwd`); refused, not stripped.
    #[error(
        "entry \"{}\" in archive {} has an absolute path: refusing to unpack it",
        Escaped(.entry),
        Escaped(.path.display())
    )]
    AbsolutePath { path: PathBuf, entry: String },

    /// An entry's `..` components climb out of the layer directory.
    #[error(
        "entry \"{}\" in archive {} leaves the layer directory through \"..\": refusing to unpack it",
        Escaped(.entry),
        Escaped(.path.display())
    )]
    PathEscapes { path: PathBuf, entry: String },

    /// An entry would be written through a symlink created by an earlier entry.
    #[error(
        "entry \"{}\" in archive {} would be written through the symlink \"{}\": refusing to unpack it",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.component)
    )]
    ThroughSymlink {
        path: PathBuf,
        entry: String,
        component: String,
    },

    /// A parent of an entry exists in the layer but is not a directory.
    #[error(
        "entry \"{}\" in archive {} lies under \"{}\", which is not a directory",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.component)
    )]
    ThroughNonDirectory {
        path: PathBuf,
        entry: String,
        component: String,
    },

    /// A hardlink's target is absolute or climbs out of the layer directory.
    #[error(
        "hardlink \"{}\" in archive {} points at \"{}\", outside the layer: refusing to unpack it",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.target)
    )]
    HardlinkEscapes {
        path: PathBuf,
        entry: String,
        target: String,
    },

    /// A hardlink's target is not an earlier non-directory entry of the layer.
    #[error(
        "hardlink \"{}\" in archive {} points at \"{}\", which is not an earlier file of the archive",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.target)
    )]
    HardlinkTarget {
        path: PathBuf,
        entry: String,
        target: String,
    },

    /// An entry has a type the unpacker does not handle (sparse-file
    /// continuation, AUFS hardlink dirs, a non-directory root, ...).
    #[error(
        "entry \"{}\" in archive {} has unsupported type {kind}",
        Escaped(.entry),
        Escaped(.path.display())
    )]
    UnsupportedEntry { path: PathBuf, entry: String, kind: String },

    /// A whiteout (`.wh.<name>`) names nothing that could be hidden, or the
    /// overlay whiteout it becomes could not be made (needs CAP_MKNOD, and
    /// CAP_SYS_ADMIN for opaque directories).
    #[error(
        "whiteout \"{}\" in archive {} cannot be converted to an overlay whiteout: {}",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.reason)
    )]
    Whiteout {
        path: PathBuf,
        entry: String,
        reason: String,
    },

    /// A file-system operation failed while unpacking one entry.
    #[error(
        "unpacking entry \"{}\" of archive {}: {}",
        Escaped(.entry),
        Escaped(.path.display()),
        Escaped(.source)
    )]
    Unpack {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },

    /// The unpacked layer could not be synced or moved into `snapshots/`.
    #[error("committing layer {path}: {source}")]
    Commit {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Shows untrusted text (an entry name, a link target, a path, an error
/// message quoting the archive) so that it cannot drive a terminal: `T`'s
/// output goes through [`escape_into`].
pub(crate) struct Escaped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// Escapes everything written through it.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text)
    }
}

/// Writes `text` with every character that a terminal would act on instead
/// of showing written as an escape: control characters (C0 such as ESC and
/// CR, DEL, and the C1 range, where U+009B is a one-character CSI) as
/// `\x1b`, and the characters that reorder or break the line (bidirectional
/// overrides and isolates, line and paragraph separators) as `\u{202e}`.
/// Printable text, including non-ASCII, is kept as is.
///
/// The output holds no such character, so escaping twice changes nothing: a
/// message may be escaped where it is built and again where it is quoted.
/// (A backslash is kept too, so `\x1b` typed into a name reads the same as
/// an escaped ESC; telling them apart is not worth unreadable paths.)
pub(crate) fn escape_into(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut clean_from = 0;
    for (i, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        out.write_str(&text[clean_from..i])?;
        let code = u32::from(c);
        if code <= 0xff {
            write!(out, "\\x{code:02x}")?;
        } else {
            write!(out, "\\u{{{code:04x}}}")?;
        }
        clean_from = i + c.len_utf8();
    }
    out.write_str(&text[clean_from..])
}

fn needs_escape(c: char) -> bool {
    // is_control: general category Cc, that is U+0000..=U+001F and U+007F..=U+009F.
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// A byte count for messages: `8 GiB` when it is a whole number of a binary
/// unit, else `1000 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        Escaped(text).to_string()
    }

    #[test]
    fn control_characters_are_escaped_and_printable_text_is_kept() {
        assert_eq!(escaped("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escaped("\u{9b}2J\u{85}\x7f\r\n\t\0"),
            "\\x9b2J\\x85\\x7f\\x0d\\x0a\\x09\\x00"
        );
        assert_eq!(escaped("evil\u{202e}txt.exe\u{2028}"), "evil\\u{202e}txt.exe\\u{2028}");
        assert_eq!(
            escaped("./usr/share/zoneinfo/Amérique/São_Paulo ✓ \\ \""),
            "./usr/share/zoneinfo/Amérique/São_Paulo ✓ \\ \""
        );
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = escaped("\x1b]0;title\x07\u{9b}\u{202e}");
        assert_eq!(escaped(&once), once);
    }

    #[test]
    fn escaped_wraps_any_display() {
        let error = io::Error::other("bad header for \x1b[31mred");
        assert_eq!(Escaped(&error).to_string(), "bad header for \\x1b[31mred");
        let path = std::path::Path::new("/tmp/\x1bc.tar");
        assert_eq!(Escaped(path.display()).to_string(), "/tmp/\\x1bc.tar");
    }

    #[test]
    fn sizes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(Size(8 << 30).to_string(), "8 GiB");
        assert_eq!(Size(64 << 10).to_string(), "64 KiB");
        assert_eq!(Size(1536 << 20).to_string(), "1536 MiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
        assert_eq!(Size(0).to_string(), "0 bytes");
    }
}
