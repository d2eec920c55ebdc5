//! Images: a content-addressed store of layer blobs and their unpacked trees.
//!
//! # Layout
//!
//! ```text
//! <root>/                       e.g. <berth root>/images
//!   blobs/sha256/<hex>          the archive exactly as imported (plain or gzip tar);
//!                               <hex> is its sha256, the layer's digest
//!   layers/<hex>/               the unpacked tree: the root filesystem itself
//!   layers/.remove-<hex>-…/     a layer being deleted (hidden, skipped by list)
//!   tmp/ingest-…                an archive being copied in and hashed
//!   tmp/unpack-<hex>-…/         a layer being unpacked
//! ```
//!
//! # Guarantees
//!
//! - The digest is computed over the store's own copy of the archive, and is
//!   checked against the expected one before a single entry is unpacked; the
//!   tree is then unpacked from that same copy, so the caller's file changing
//!   underneath cannot smuggle in unverified content.
//! - `layers/<hex>` appears only complete: the tree is unpacked under `tmp/`,
//!   synced, and renamed into place (`RENAME_NOREPLACE`), then `layers/` is
//!   synced. A failed import removes its temporary files and leaves no blob
//!   and no layer; if the removal fails too, both errors are returned.
//! - A digest is unpacked at most once: `import` of an existing layer returns
//!   it without unpacking. Two racing imports of one digest both unpack, one
//!   rename wins, the other discards its copy and returns the winner's.
//! - Nothing in an archive can create or change a file outside its layer
//!   directory: see [`unpack`] for how.
//! - `remove` renames the layer to a hidden name first, so a half-deleted
//!   tree is never seen as a layer.
//! - Only a regular file is imported. The path is opened without opening
//!   what it names (`O_PATH`) and checked with `fstat` on that descriptor, so
//!   a fifo cannot block the import and a device is never opened or read.
//! - A layer is Ready only if its whole stream checked out: after the tar's
//!   end-of-archive block the rest of the stream is read to its end, so a
//!   gzip's CRC32 and length trailer are verified (and bytes after the gzip
//!   that are not another gzip member are refused). An archive without a
//!   single entry is refused as an empty image.
//!
//! # Limits
//!
//! One import copies at most [`MAX_ARCHIVE_BYTES`] (8 GiB) into `blobs/` and
//! reads at most [`MAX_UNPACKED_BYTES`] (32 GiB) of decompressed tar stream
//! (headers, data and padding, so also the work of decompressing, and any
//! data after the end-of-archive block). Going over either is an error
//! naming the limit, with nothing left behind, and is caught as the bytes
//! arrive, before more than the limit is written: a small gzip that inflates
//! to terabytes (a decompression bomb) stops at the limit. The limits are
//! generous for a root filesystem (large images have layers of a few GiB,
//! and gzip shrinks them two to four times) and small enough that a mistake
//! stops well before most disks fill.

mod archive;
mod commit;
pub mod content;
mod error;
pub mod export;
mod images;
mod login;
pub mod merged;
pub mod pull;
mod push;
pub mod record;
pub mod snapshot;
mod unpack;

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{renameat2, OFlag, RenameFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use sha2::{Digest, Sha256};

pub use error::{ImageError, PathFailure, Result};
pub use images::ImageSummary;
pub use pull::{Progress, PullEvent};
pub use record::{ImageConfig, ImageHealthcheck, ImageRecord};
use unpack::Ownership;

/// The only digest algorithm the store knows.
const SHA256_PREFIX: &str = "sha256:";

/// The most one import copies into `blobs/`: the archive as given,
/// compressed or not. See the module's `# Limits`.
pub const MAX_ARCHIVE_BYTES: u64 = 8 << 30;

/// The most decompressed tar stream one import reads: headers, file data and
/// padding, up to the end of the stream. See the module's `# Limits`.
pub const MAX_UNPACKED_BYTES: u64 = 32 << 30;

/// The limits one store applies to each import (the constants, except in
/// tests, which lower them to stay small).
#[derive(Debug, Clone, Copy)]
struct Limits {
    archive: u64,
    unpacked: u64,
}

/// Makes temporary names unique within this process (the pid makes them
/// unique across processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A content-addressed store of unpacked layers under one root directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    ownership: Ownership,
    limits: Limits,
    /// Blobs of pulled images by digest.
    pub content: content::ContentStore,
    /// Pulled layers, unpacked, by chain ID.
    pub snapshots: snapshot::Snapshots,
    /// Pulled images and their references.
    pub records: record::Records,
    /// Registries besides loopback that may be reached over plain HTTP.
    insecure: Vec<String>,
    /// Blobs and snapshots pulls in progress use (see [`images::Pins`]).
    pins: images::Pins,
    /// How many archives this store has unpacked (tests check "imported once").
    #[cfg(test)]
    unpacks: AtomicU64,
}

/// One unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:<hex>` of the archive as imported (compressed, if it was).
    pub digest: String,
    /// `layers/<hex>`: the root filesystem directory itself.
    pub dir: PathBuf,
    /// Size in bytes of the archive the digest covers (as in an OCI
    /// descriptor), not of the unpacked tree; 0 if its blob is missing.
    pub size: u64,
}

/// Removes a directory tree. A layer may hold read-only directories (as
/// images do, e.g. `0555`); root removes them regardless, but an unprivileged
/// store cannot, so on a refusal the tree's directories are made writable
/// (never following symlinks) and the removal is tried once more.
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path);
            fs::remove_dir_all(path)
        }
        other => other,
    }
}

fn make_dirs_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            make_dirs_writable(&e.path());
        }
    }
}

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (linux/fs.h: _IOR/_IOW('f', 1|2, long);
// the kernel reads and writes an int through the pointer).
nix::ioctl_read!(fs_get_flags, b'f', 1, libc::c_long);
nix::ioctl_write_ptr!(fs_set_flags, b'f', 2, libc::c_long);
/// FS_TOPDIR_FL: "top of directory hierarchy" (chattr +T).
const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;

/// Marks `dir` as the top of a directory hierarchy (chattr +T), so ext4
/// places each directory made in it (a snapshot being unpacked) in a block
/// group of its own choosing, spread as for directories under `/`, instead
/// of the parent's group. Why: ext4 without a journal will not reuse an
/// inode freed less than a minute ago, and each new inode's search starts
/// at the start of its group, so unpacking a layer into the group where
/// `image prune` (or a pull that failed) just freed thousands of inodes
/// scans all of them for every file created: measured 8.6-9.8 s against
/// 1.4-2.7 s for a cold pull of the 7-layer Debian bench image right after
/// a prune. Best effort: other filesystems lack the flag and lose nothing.
fn mark_top_dir(dir: &Path) {
    let Ok(file) = fs::File::open(dir) else { return };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut flags: libc::c_long = 0;
    // SAFETY: `fd` is an open directory for the duration of the call, and
    // `flags` is a valid, writable c_long (wider than the int the kernel writes).
    if unsafe { fs_get_flags(fd, &mut flags) }.is_err() || flags & FS_TOPDIR_FL != 0 {
        return;
    }
    flags &= 0xffff_ffff;
    flags |= FS_TOPDIR_FL;
    // SAFETY: as above; `flags` is only read by the kernel.
    let _ = unsafe { fs_set_flags(fd, &flags) };
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, e.g. `<berth root>/images`:
    /// creates `blobs/sha256/`, `layers/` and `tmp/` under it.
    ///
    /// Entries' owners are preserved when the process runs as root, and left
    /// as the current user otherwise (as GNU tar does).
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for dir in [
            root.join("blobs/sha256"),
            root.join("layers"),
            root.join("tmp"),
            root.join("snapshots"),
            root.join("l"),
            root.join("images"),
            root.join("sizes"),
        ] {
            fs::create_dir_all(&dir).map_err(|source| ImageError::CreateDir { path: dir, source })?;
        }
        mark_top_dir(&root.join("tmp"));
        let ownership = if nix::unistd::geteuid().is_root() {
            Ownership::Preserve
        } else {
            Ownership::Ignore
        };
        Ok(ImageStore {
            content: content::ContentStore::new(&root),
            snapshots: snapshot::Snapshots::new(&root, ownership, MAX_UNPACKED_BYTES),
            records: record::Records::new(&root),
            insecure: Vec::new(),
            pins: images::Pins::default(),
            root,
            ownership,
            limits: Limits {
                archive: MAX_ARCHIVE_BYTES,
                unpacked: MAX_UNPACKED_BYTES,
            },
            #[cfg(test)]
            unpacks: AtomicU64::new(0),
        })
    }

    /// Removes what a crash can leave: ingest copies and half-unpacked trees
    /// under `tmp/`, layers renamed for removal but not yet removed, and
    /// snapshots of a pull that never got its record (verified blobs stay,
    /// so the next pull of that image downloads only what is missing).
    /// Call only while holding the root's lock (the daemon does, at start):
    /// another process's import in flight would be swept too. Returns what
    /// could not be removed.
    pub fn sweep(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut leftovers: Vec<PathBuf> = fs::read_dir(self.root.join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Ok(layers) = fs::read_dir(self.root.join("layers")) {
            leftovers.extend(
                layers
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| e.path()),
            );
        }
        match self.records.try_all() {
            Ok(records) => {
                let used: std::collections::HashSet<String> = records.into_iter().flat_map(|r| r.chain_ids).collect();
                for chain in self.snapshots.list() {
                    if !used.contains(&chain) {
                        if let Err(e) = self.snapshots.remove(&chain) {
                            failures.push(format!("snapshot {chain}: {e}"));
                        }
                    }
                }
            }
            // A record that does not read may name any snapshot: keep them all.
            Err(e) => failures.push(format!("snapshots of unfinished pulls (all kept): {e}")),
        }
        for path in leftovers {
            let result = if path.is_dir() {
                remove_tree(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = result {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
        failures
    }

    /// Imports a tar of a root filesystem, plain or gzip-compressed (detected
    /// by its magic bytes), and returns its layer.
    ///
    /// The digest is the sha256 of the file as given. If `expected` is set it
    /// must match before anything is unpacked. If a layer with that digest
    /// exists already it is returned as is; otherwise the archive is unpacked
    /// safely under `tmp/`, synced and renamed into `layers/<hex>/`.
    ///
    /// # Errors
    ///
    /// [`ImageError::InvalidDigest`] for a malformed `expected`,
    /// [`ImageError::DigestMismatch`] when it does not match,
    /// [`ImageError::NotRegularFile`] for a fifo, device, directory or socket,
    /// [`ImageError::ArchiveTooLarge`] and [`ImageError::UnpackedTooLarge`]
    /// past the module's limits, [`ImageError::EmptyArchive`] for an archive
    /// with no entries, [`ImageError::MalformedArchive`] for a broken tar or
    /// gzip stream (a CRC mismatch included), the refusal
    /// variants (`AbsolutePath`, `PathEscapes`, `ThroughSymlink`,
    /// `HardlinkEscapes`, …) for hostile entries, and I/O errors naming the
    /// path and entry. On any error nothing is left in `tmp/`, `blobs/` or
    /// `layers/`, or [`ImageError::Rollback`] says what could not be removed.
    pub fn import(&self, tar_path: &Path, expected: Option<&str>) -> Result<Layer> {
        if let Some(expected) = expected {
            parse_digest(expected)?;
        }
        let ingest = self.tmp_path("ingest", "");
        let (hex, size) = match self.ingest(tar_path, &ingest) {
            Ok(ok) => ok,
            Err(e) => return Err(self.discard(e, &ingest, false)),
        };
        let digest = format!("{SHA256_PREFIX}{hex}");
        if let Some(expected) = expected {
            if expected != digest {
                let e = ImageError::DigestMismatch {
                    path: tar_path.to_path_buf(),
                    expected: expected.to_owned(),
                    actual: digest,
                };
                return Err(self.discard(e, &ingest, false));
            }
        }
        if let Some(layer) = self.layer(&digest) {
            // Imported before: the copy is not needed. Failing to delete it
            // leaves a stray file in tmp/, which is no reason to fail.
            if let Err(e) = fs::remove_file(&ingest) {
                tracing::warn!(path = %ingest.display(), error = %e, "removing ingest file failed");
            }
            return Ok(layer);
        }

        let tmp = self.tmp_path("unpack", &hex[..12]);
        match self.unpack_and_commit(tar_path, &ingest, &tmp, &hex) {
            Ok(()) => {}
            Err(e) => {
                let e = self.discard(e, &ingest, false);
                return Err(self.discard(e, &tmp, true));
            }
        }
        Ok(Layer {
            dir: self.layer_dir(&hex),
            digest,
            size,
        })
    }

    /// The layer with this digest (`sha256:<hex>`), if it has been imported.
    pub fn layer(&self, digest: &str) -> Option<Layer> {
        let hex = parse_digest(digest).ok()?;
        let dir = self.layer_dir(hex);
        // symlink_metadata: `layers/<hex>` is only ever a directory we renamed there.
        if !fs::symlink_metadata(&dir).ok()?.is_dir() {
            return None;
        }
        let size = fs::metadata(self.blob_path(hex)).map(|m| m.len()).unwrap_or(0);
        Some(Layer {
            digest: digest.to_owned(),
            dir,
            size,
        })
    }

    /// Removes a layer and its blob. A layer that does not exist is not an
    /// error. The layer is first renamed to a hidden name, so it disappears
    /// from [`list`](Self::list) at once, then deleted.
    ///
    /// # Errors
    ///
    /// [`ImageError::InvalidDigest`], or [`ImageError::Remove`] with every step
    /// that failed (all steps are tried).
    pub fn remove(&self, digest: &str) -> Result<()> {
        let hex = parse_digest(digest)?;
        let mut failures = Vec::new();
        let dir = self.layer_dir(hex);
        let hidden = self.root.join("layers").join(format!(
            ".remove-{hex}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::rename(&dir, &hidden) {
            Ok(()) => {
                sync_dir(&self.root.join("layers"));
                if let Err(source) = remove_tree(&hidden) {
                    failures.push(PathFailure { path: hidden, source });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => failures.push(PathFailure { path: dir, source }),
        }
        let blob = self.blob_path(hex);
        match fs::remove_file(&blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => failures.push(PathFailure { path: blob, source }),
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ImageError::Remove {
                digest: digest.to_owned(),
                failures,
            })
        }
    }

    /// Every imported layer, sorted by digest.
    pub fn list(&self) -> Result<Vec<Layer>> {
        let layers = self.root.join("layers");
        let list_error = |source| ImageError::List {
            path: layers.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(&layers).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            // Hidden names (layers being removed) and strays are not hex.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(layer) = self.layer(&format!("{SHA256_PREFIX}{name}")) {
                found.push(layer);
            }
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }

    /// Copies `tar_path` to `ingest` while hashing it; fsyncs the copy.
    /// Returns the hex digest and the size. Refuses anything but a regular
    /// file, and an archive over the limit before copying any of it (or, if
    /// it grows meanwhile, as soon as the copy reaches the limit).
    fn ingest(&self, tar_path: &Path, ingest: &Path) -> Result<(String, u64)> {
        let read_error = |source| ImageError::ReadArchive {
            path: tar_path.to_path_buf(),
            source,
        };
        let write_error = |source| ImageError::Ingest {
            path: ingest.to_path_buf(),
            source,
        };
        let too_large = || ImageError::ArchiveTooLarge {
            path: tar_path.to_path_buf(),
            limit: self.limits.archive,
        };
        let mut input = open_regular_file(tar_path)?;
        if input.metadata().map_err(read_error)?.len() > self.limits.archive {
            return Err(too_large());
        }
        let mut output = File::options()
            .write(true)
            .create_new(true)
            .open(ingest)
            .map_err(write_error)?;
        let (hex, size) = copy_hashed(&mut input, &mut output, self.limits.archive).map_err(|e| match e {
            CopyError::Read(e) => read_error(e),
            CopyError::Write(e) => write_error(e),
            CopyError::Limit => too_large(),
        })?;
        output.sync_all().map_err(write_error)?;
        Ok((hex, size))
    }

    /// Unpacks the verified copy into `tmp`, syncs, then moves the blob and
    /// the tree into place.
    fn unpack_and_commit(&self, tar_path: &Path, ingest: &Path, tmp: &Path, hex: &str) -> Result<()> {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(tmp)
            .map_err(|source| ImageError::Commit {
                path: tmp.to_path_buf(),
                source,
            })?;
        #[cfg(test)]
        self.unpacks.fetch_add(1, Ordering::Relaxed);
        let reader = open_decompressed(ingest, tar_path)?;
        unpack::unpack(reader, tmp, tar_path, self.ownership, self.limits.unpacked)?;

        let commit_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Commit { path, source }
        };
        // One syncfs instead of an fsync per file: the tree is made durable
        // (data, inodes and directory entries) before it becomes visible.
        let tmp_dir = File::open(tmp).map_err(commit_error(tmp))?;
        nix::unistd::syncfs(tmp_dir.as_raw_fd()).map_err(|e| commit_error(tmp)(e.into()))?;

        // Blob first: a layer whose blob is missing would report size 0.
        let blob = self.blob_path(hex);
        fs::rename(ingest, &blob).map_err(commit_error(&blob))?;
        sync_dir(&self.root.join("blobs/sha256"));

        let dir = self.layer_dir(hex);
        match renameat2(None, tmp, None, &dir, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => {}
            // A concurrent import of the same digest won: its layer is as
            // good as ours, and the blob we just renamed is the same bytes.
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                if let Err(e) = remove_tree(tmp) {
                    tracing::warn!(path = %tmp.display(), error = %e, "removing a duplicate unpack failed");
                }
            }
            Err(e) => {
                // No layer refers to the blob now; take it back out so a
                // failed import leaves nothing behind.
                let error = commit_error(&dir)(e.into());
                return Err(match fs::remove_file(&blob) {
                    Ok(()) => error,
                    Err(cleanup) => self.rollback(error, &blob, cleanup),
                });
            }
        }
        sync_dir(&self.root.join("layers"));
        Ok(())
    }

    /// Removes a temporary file or directory after `error`; reports both if
    /// the removal fails. A path that is already gone is fine.
    fn discard(&self, error: ImageError, path: &Path, is_dir: bool) -> ImageError {
        let removed = if is_dir {
            remove_tree(path)
        } else {
            fs::remove_file(path)
        };
        match removed {
            Err(e) if e.kind() != io::ErrorKind::NotFound => self.rollback(error, path, e),
            _ => error,
        }
    }

    fn rollback(&self, error: ImageError, path: &Path, cleanup: io::Error) -> ImageError {
        ImageError::Rollback {
            source: Box::new(error),
            path: path.to_path_buf(),
            cleanup,
        }
    }

    fn tmp_path(&self, kind: &str, tag: &str) -> PathBuf {
        tmp_name(&self.root.join("tmp"), kind, tag)
    }

    fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers").join(hex)
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }
}

/// A fresh name under `tmp`: `<kind>-<tag>-<pid>-<n>`.
pub(crate) fn tmp_name(tmp: &Path, kind: &str, tag: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!("{tag}-")
    };
    tmp.join(format!("{kind}-{tag}{}-{n}", std::process::id()))
}

/// Opens the file to import for reading, refusing anything that is not a
/// regular file.
///
/// The path is opened with `O_PATH` first, which opens nothing: no driver's
/// `open` runs (a tape that rewinds, a watchdog that arms, a tty that becomes
/// the controlling terminal) and a fifo with no writer cannot block, as plain
/// `open` does forever. `fstat` on that descriptor then says what the path
/// led to, and only a regular file is opened for reading, through
/// `/proc/self/fd/<n>`, which reopens that same inode: a rename between the
/// check and the open cannot swap in something else. See open(2) on
/// `O_PATH` and proc(5) on `/proc/pid/fd`.
///
/// Symlinks are followed: the check applies to what they lead to, so
/// `current.tar -> v3.tar` imports and a link to `/dev/zero` is refused as a
/// character device.
fn open_regular_file(path: &Path) -> Result<File> {
    let read_error = |source| ImageError::ReadArchive {
        path: path.to_path_buf(),
        source,
    };
    let fd =
        nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| read_error(e.into()))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let handle = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(handle.as_raw_fd()).map_err(|e| read_error(e.into()))?;
    let kind = match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => None,
        SFlag::S_IFIFO => Some("a fifo"),
        SFlag::S_IFCHR => Some("a character device"),
        SFlag::S_IFBLK => Some("a block device"),
        SFlag::S_IFDIR => Some("a directory"),
        SFlag::S_IFSOCK => Some("a socket"),
        _ => Some("a special file"),
    };
    if let Some(kind) = kind {
        return Err(ImageError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).map_err(|e| {
        read_error(io::Error::new(
            e.kind(),
            format!("reopening it through /proc/self/fd (is /proc mounted?): {e}"),
        ))
    })
}

/// Why [`copy_hashed`] stopped.
#[derive(Debug)]
enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// The input is longer than the limit; nothing past the limit was written.
    Limit,
}

/// Copies `input` to `output` while hashing it, up to `limit` bytes: a
/// longer input stops the copy before the byte past the limit is written.
/// Returns the hex sha256 and the size.
fn copy_hashed(
    input: &mut impl Read,
    output: &mut impl Write,
    limit: u64,
) -> std::result::Result<(String, u64), CopyError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        if n as u64 > limit - size {
            return Err(CopyError::Limit);
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(CopyError::Write)?;
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Checks `sha256:<64 lower-case hex>` and returns the hex part.
fn parse_digest(digest: &str) -> Result<&str> {
    let invalid = || ImageError::InvalidDigest {
        digest: digest.to_owned(),
    };
    let hex = digest.strip_prefix(SHA256_PREFIX).ok_or_else(invalid)?;
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(hex)
    } else {
        Err(invalid())
    }
}

/// Opens the blob and wraps it in a gzip decoder if it starts with gzip's
/// magic bytes. Other compressions are recognised to give a clear error.
fn open_decompressed(blob: &Path, tar_path: &Path) -> Result<Box<dyn Read>> {
    let read_error = |source| ImageError::ReadArchive {
        path: tar_path.to_path_buf(),
        source,
    };
    let mut file = File::open(blob).map_err(read_error)?;
    let mut magic = [0u8; 6];
    let mut len = 0;
    while len < magic.len() {
        match file.read(&mut magic[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let magic = &magic[..len];
    let unsupported = |format| ImageError::UnsupportedCompression {
        path: tar_path.to_path_buf(),
        format,
    };
    let reader = BufReader::with_capacity(1 << 16, file);
    if magic.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: `pigz` and concatenated gzip files are valid too.
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(unsupported("zstd"))
    } else if magic.starts_with(b"BZh") {
        Err(unsupported("bzip2"))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(unsupported("xz"))
    } else {
        Ok(Box::new(reader))
    }
}

/// fsyncs a directory so a rename into it survives a crash. Best effort: the
/// rename itself has happened, and failing the operation now would report a
/// change that is visible as not made.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "fsync of directory failed");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    #[test]
    fn sweep_removes_crash_leftovers_and_keeps_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join("tmp/unpack-1/etc")).unwrap();
        fs::write(dir.path().join("tmp/ingest-2"), b"x").unwrap();
        fs::create_dir_all(dir.path().join("layers/.remove-3/bin")).unwrap();
        fs::create_dir_all(dir.path().join("layers/abc")).unwrap();
        assert!(store.sweep().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(!dir.path().join("layers/.remove-3").exists());
        assert!(dir.path().join("layers/abc").exists(), "real layers stay");
    }

    use tar::{EntryType, Header};
    use tempfile::TempDir;

    use super::*;

    const MTIME: u64 = 1_600_000_000;

    /// Builds tars from raw headers, so hostile names reach the archive
    /// unchanged (`Header::set_path` refuses `..` and strips nothing, but
    /// we want exactly the bytes we wrote).
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn raw(&mut self, name: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) {
            let mut header = Header::new_gnu();
            let old = header.as_old_mut();
            assert!(name.len() < old.name.len() && link.len() < old.linkname.len());
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            header.set_size(data.len() as u64);
            header.set_cksum();
            self.0.append(&header, data).expect("append to an in-memory tar");
        }

        fn dir(mut self, name: &str, mode: u32) -> Tar {
            self.raw(name, EntryType::Directory, mode, "", b"");
            self
        }

        fn file(mut self, name: &str, mode: u32, data: &[u8]) -> Tar {
            self.raw(name, EntryType::Regular, mode, "", data);
            self
        }

        fn owned_file(mut self, name: &str, uid: u64, gid: u64) -> Tar {
            let mut header = Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o640);
            header.set_uid(uid);
            header.set_gid(gid);
            header.set_mtime(MTIME);
            header.set_size(0);
            header.set_cksum();
            self.0.append(&header, &b""[..]).expect("append");
            self
        }

        fn symlink(mut self, name: &str, target: &str) -> Tar {
            self.raw(name, EntryType::Symlink, 0o777, target, b"");
            self
        }

        fn hardlink(mut self, name: &str, target: &str) -> Tar {
            self.raw(name, EntryType::Link, 0o644, target, b"");
            self
        }

        fn fifo(mut self, name: &str) -> Tar {
            self.raw(name, EntryType::Fifo, 0o620, "", b"");
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().expect("finish the tar")
        }
    }

    /// A store in a temp dir, plus a directory outside it that hostile
    /// archives aim at.
    struct Fixture {
        dir: TempDir,
        outside: TempDir,
        store: ImageStore,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let outside = tempfile::tempdir().expect("tempdir");
            let store = ImageStore::open(dir.path().join("images")).expect("open store");
            Fixture { dir, outside, store }
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.dir.path().join(name);
            fs::write(&path, bytes).expect("write archive");
            path
        }

        fn import(&self, bytes: &[u8]) -> Result<Layer> {
            let path = self.write("layer.tar", bytes);
            self.store.import(&path, None)
        }

        fn unpacks(&self) -> u64 {
            self.store.unpacks.load(Ordering::Relaxed)
        }

        fn entries(&self, sub: &str) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.store.root.join(sub))
                .expect("read store dir")
                .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }

        /// Imports a hostile archive and checks it left no trace anywhere.
        fn refuse(&self, bytes: &[u8]) -> ImageError {
            self.refuse_path(&self.write("layer.tar", bytes))
        }

        /// Imports `path`, which must be refused, and checks it left no trace.
        fn refuse_path(&self, path: &Path) -> ImageError {
            let err = self.store.import(path, None).expect_err("must be refused");
            assert!(self.entries("layers").is_empty(), "layers/ not empty after: {err}");
            assert!(self.entries("tmp").is_empty(), "tmp/ not empty after: {err}");
            assert!(self.entries("blobs/sha256").is_empty(), "blobs/ not empty after: {err}");
            assert!(
                fs::read_dir(self.outside.path())
                    .expect("read outside")
                    .next()
                    .is_none(),
                "something was written outside the store after: {err}"
            );
            assert!(self.store.list().expect("list").is_empty());
            err
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Checks that a message shows no character a terminal would act on.
    fn assert_shown_safely(message: &str) {
        assert!(
            !message.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "raw control characters in {message:?}"
        );
    }

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    fn rootfs() -> Vec<u8> {
        Tar::new()
            .dir("./", 0o755)
            .dir("./bin/", 0o755)
            .file("./bin/busybox", 0o4755, b"#!busybox")
            .symlink("./bin/sh", "busybox")
            .hardlink("./bin/ls", "./bin/busybox")
            .dir("./etc/", 0o755)
            .file("./etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
            .file("./etc/shadow", 0o600, b"root:*::::::\n")
            .symlink("./etc/mtab", "/proc/self/mounts")
            .file("./usr/lib/deep/file", 0o644, b"implicit parents")
            .dir("./ro/", 0o555)
            .file("./ro/inside", 0o444, b"added before the dir became read-only")
            .fifo("./run/initctl")
            .bytes()
    }

    #[test]
    fn a_normal_rootfs_imports_with_modes_symlinks_and_hardlinks() {
        let fx = Fixture::new();
        let bytes = rootfs();
        let layer = fx.import(&bytes).expect("import");

        assert_eq!(layer.digest, sha256(&bytes));
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(layer.dir, fx.store.root.join("layers").join(&layer.digest[7..]));
        let root = &layer.dir;
        assert_eq!(mode(root), 0o755);
        assert_eq!(
            fs::read(root.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        assert_eq!(mode(&root.join("etc/passwd")), 0o644);
        assert_eq!(mode(&root.join("etc/shadow")), 0o600);
        assert_eq!(mode(&root.join("bin/busybox")), 0o4755);
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
        assert_eq!(
            fs::read_link(root.join("etc/mtab")).unwrap(),
            Path::new("/proc/self/mounts")
        );
        let busybox = fs::metadata(root.join("bin/busybox")).unwrap();
        let ls = fs::metadata(root.join("bin/ls")).unwrap();
        assert_eq!((busybox.ino(), busybox.nlink()), (ls.ino(), 2));
        assert_eq!(fs::read(root.join("usr/lib/deep/file")).unwrap(), b"implicit parents");
        assert_eq!(mode(&root.join("usr/lib")), 0o755);
        assert_eq!(mode(&root.join("ro")), 0o555);
        assert_eq!(
            fs::read(root.join("ro/inside")).unwrap(),
            b"added before the dir became read-only"
        );
        assert!(fs::symlink_metadata(root.join("run/initctl"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(mode(&root.join("run/initctl")), 0o620);
        // mtimes, including directories that got children after their entry.
        for path in ["etc/passwd", "etc", "bin", "ro", "."] {
            assert_eq!(fs::metadata(root.join(path)).unwrap().mtime(), MTIME as i64, "{path}");
        }
        assert_eq!(fs::symlink_metadata(root.join("bin/sh")).unwrap().mtime(), MTIME as i64);

        assert_eq!(fx.store.layer(&layer.digest), Some(layer.clone()));
        assert_eq!(fx.store.list().unwrap(), vec![layer.clone()]);
        assert!(fx.store.root.join("blobs/sha256").join(&layer.digest[7..]).is_file());
        assert!(fx.entries("tmp").is_empty());
    }

    #[test]
    fn owners_are_preserved_when_running_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let fx = Fixture::new();
        let layer = fx
            .import(&Tar::new().owned_file("owned", 1234, 5678).bytes())
            .expect("import");
        let meta = fs::metadata(layer.dir.join("owned")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        assert_eq!(mode(&layer.dir.join("owned")), 0o640);
    }

    #[test]
    fn importing_the_same_tar_twice_unpacks_it_once() {
        let fx = Fixture::new();
        let bytes = rootfs();
        let first = fx.import(&bytes).expect("first import");
        fs::write(first.dir.join("marker"), b"still here").unwrap();

        let path = fx.write("again.tar", &bytes);
        let second = fx.store.import(&path, Some(&first.digest)).expect("second import");

        assert_eq!(second, first);
        assert_eq!(fs::read(second.dir.join("marker")).unwrap(), b"still here");
        assert_eq!(fx.unpacks(), 1);
        assert!(fx.entries("tmp").is_empty());
        assert_eq!(fx.store.list().unwrap().len(), 1);
    }

    #[test]
    fn a_digest_mismatch_is_refused_before_anything_is_unpacked() {
        let fx = Fixture::new();
        let bytes = rootfs();
        let path = fx.write("layer.tar", &bytes);
        let wrong = format!("sha256:{}", "0".repeat(64));

        let err = fx.store.import(&path, Some(&wrong)).expect_err("mismatch");

        match err {
            ImageError::DigestMismatch {
                path: p,
                expected,
                actual,
            } => {
                assert_eq!((p, expected, actual), (path, wrong, sha256(&bytes)));
            }
            other => panic!("expected DigestMismatch, got {other}"),
        }
        assert_eq!(fx.unpacks(), 0);
        assert!(fx.entries("layers").is_empty());
        assert!(fx.entries("tmp").is_empty());
        assert!(fx.entries("blobs/sha256").is_empty());
    }

    #[test]
    fn a_malformed_expected_digest_is_refused() {
        let fx = Fixture::new();
        let path = fx.write("layer.tar", &rootfs());
        for bad in ["sha256:abc", "md5:0123", &format!("sha256:{}", "A".repeat(64))] {
            let err = fx.store.import(&path, Some(bad)).expect_err("bad digest");
            assert!(matches!(err, ImageError::InvalidDigest { .. }), "{err}");
        }
        assert_eq!(fx.unpacks(), 0);
        assert!(fx.store.layer("sha256:abc").is_none());
        assert!(matches!(fx.store.remove("nope"), Err(ImageError::InvalidDigest { .. })));
    }

    #[test]
    fn a_gzip_compressed_tar_imports_and_is_digested_as_given() {
        let fx = Fixture::new();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&rootfs()).unwrap();
        let bytes = gz.finish().unwrap();

        let layer = fx.import(&bytes).expect("import gzip");

        assert_eq!(layer.digest, sha256(&bytes));
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(fs::read_link(layer.dir.join("bin/sh")).unwrap(), Path::new("busybox"));
        assert_eq!(fs::read(layer.dir.join("etc/shadow")).unwrap(), b"root:*::::::\n");
    }

    #[test]
    fn a_zstd_archive_is_refused_with_a_clear_error() {
        let fx = Fixture::new();
        let err = fx.refuse(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
        assert!(
            matches!(err, ImageError::UnsupportedCompression { format: "zstd", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_archive_is_refused_and_cleaned_up() {
        let fx = Fixture::new();
        let tar = rootfs();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        // In a header, in the middle of a file's data, in a gzip stream.
        for bytes in [&tar[..700], &tar[..512 * 3 + 3], &gz[..gz.len() / 2]] {
            let err = fx.refuse(bytes);
            assert!(matches!(err, ImageError::MalformedArchive { .. }), "{err}");
        }
    }

    #[test]
    fn an_entry_climbing_out_with_dot_dot_is_refused() {
        let fx = Fixture::new();
        for name in ["../evil", "./a/../../evil"] {
            let err = fx.refuse(&Tar::new().file("ok", 0o644, b"").file(name, 0o644, b"x").bytes());
            match err {
                ImageError::PathEscapes { entry, .. } => assert_eq!(entry, name),
                other => panic!("expected PathEscapes, got {other}"),
            }
            assert!(!fx.store.root.join("tmp/evil").exists());
            assert!(!fx.store.root.join("evil").exists());
        }
    }

    #[test]
    fn an_absolute_entry_is_refused() {
        let fx = Fixture::new();
        let name = format!("{}/abs", fx.outside.path().display());
        let err = fx.refuse(&Tar::new().file(&name, 0o644, b"x").bytes());
        match err {
            ImageError::AbsolutePath { entry, .. } => assert_eq!(entry, name),
            other => panic!("expected AbsolutePath, got {other}"),
        }
    }

    #[test]
    fn writing_through_an_absolute_symlink_is_refused() {
        let fx = Fixture::new();
        let target = fx.outside.path().to_str().unwrap().to_owned();
        let err = fx.refuse(&Tar::new().symlink("a", &target).file("a/evil", 0o644, b"x").bytes());
        match err {
            ImageError::ThroughSymlink { entry, component, .. } => {
                assert_eq!((entry.as_str(), component.as_str()), ("a/evil", "a"))
            }
            other => panic!("expected ThroughSymlink, got {other}"),
        }
    }

    #[test]
    fn a_directory_replaced_by_a_later_entry_is_not_written_through_its_old_descriptor() {
        // The unpacker keeps the last walk's directories open; an entry that
        // replaces one (a symlink over an empty dir) must drop it, or the
        // next entry would land in the unlinked directory unseen.
        let fx = Fixture::new();
        let target = fx.outside.path().to_str().unwrap().to_owned();
        let err = fx.refuse(
            &Tar::new()
                .dir("d/", 0o755)
                .symlink("d", &target)
                .file("d/evil", 0o644, b"x")
                .bytes(),
        );
        match err {
            ImageError::ThroughSymlink { entry, component, .. } => {
                assert_eq!((entry.as_str(), component.as_str()), ("d/evil", "d"))
            }
            other => panic!("expected ThroughSymlink, got {other}"),
        }
        assert!(fs::read_dir(fx.outside.path()).unwrap().next().is_none());
        // A file over an empty directory: the next entry below it is refused.
        let err = fx.refuse(
            &Tar::new()
                .dir("e/", 0o755)
                .file("e", 0o644, b"now a file")
                .file("e/x", 0o644, b"x")
                .bytes(),
        );
        match err {
            ImageError::ThroughNonDirectory { entry, component, .. } => {
                assert_eq!((entry.as_str(), component.as_str()), ("e/x", "e"))
            }
            other => panic!("expected ThroughNonDirectory, got {other}"),
        }
    }

    #[test]
    fn collection_keeps_what_a_pull_in_progress_pinned() {
        let fx = Fixture::new();
        let bytes = b"a blob a pull is using";
        let digest = content::sha256_digest(bytes);
        // A pull pins before it looks whether the blob is there.
        let pin = fx.store.pins.pin([digest.clone()]);
        fx.store.content.put(bytes, &digest, "x").unwrap();
        // An rmi or prune meanwhile: no record names it, yet it stays.
        fx.store.collect();
        assert!(fx.store.content.has(&digest), "a pinned blob is kept");
        drop(pin);
        fx.store.collect();
        assert!(!fx.store.content.has(&digest), "unpinned and unused: collected");
    }

    #[test]
    fn nothing_is_collected_or_pruned_while_a_record_or_the_index_does_not_read() {
        let fx = Fixture::new();
        let bytes = b"a config blob";
        let digest = content::sha256_digest(bytes);
        fx.store.content.put(bytes, &digest, "x").unwrap();
        let record = ImageRecord {
            id: digest.clone(),
            manifest_digest: digest.clone(),
            config: ImageConfig::default(),
            platform: "linux/amd64".into(),
            layers: vec![],
            chain_ids: vec![],
            created_at: 1,
        };
        fx.store.records.put(&record).unwrap();
        fx.store
            .records
            .update_refs(|r| r.insert("localhost/x:1".into(), digest.clone()))
            .unwrap();
        let record_file = fx.store.root.join("images").join(format!("{}.json", &digest[7..]));
        let good = fs::read(&record_file).unwrap();

        fs::write(&record_file, &good[..good.len() / 2]).unwrap();
        fx.store.collect();
        assert!(fx.store.content.has(&digest), "a damaged record's blob is kept");
        let err = fx.store.prune(&Default::default()).expect_err("prune refuses");
        assert!(matches!(err, ImageError::CorruptRecord { .. }), "{err}");
        assert!(fx.store.sweep().iter().any(|f| f.contains("all kept")));
        assert!(fx.store.images().is_err());

        fs::write(&record_file, &good).unwrap();
        for index in ["refs.json", "refs.json.bak"] {
            fs::write(fx.store.root.join(index), b"{").unwrap();
        }
        let err = fx.store.prune(&Default::default()).expect_err("prune refuses");
        assert!(matches!(err, ImageError::CorruptIndex { .. }), "{err}");
        assert!(fx.store.records.get(&digest).is_some() && fx.store.content.has(&digest));
        assert!(matches!(
            fx.store.remove_image("localhost/x:1"),
            Err(ImageError::CorruptIndex { .. })
        ));
        assert!(matches!(
            fx.store.tag("localhost/x:1", "localhost/x:2"),
            Err(ImageError::CorruptIndex { .. })
        ));
        assert!(fx.store.records.get(&digest).is_some() && fx.store.content.has(&digest));
    }

    #[test]
    fn blobs_a_failed_operation_added_go_unless_pinned_by_another_or_recorded() {
        let fx = Fixture::new();
        let blob = |text: &str| {
            let digest = content::sha256_digest(text.as_bytes());
            fx.store.content.put(text.as_bytes(), &digest, "x").unwrap();
            digest
        };
        let (alone, pinned, recorded) = (blob("alone"), blob("pinned"), blob("recorded"));
        let _other = fx.store.pins.pin([pinned.clone()]);
        fx.store
            .records
            .put(&ImageRecord {
                id: recorded.clone(),
                manifest_digest: recorded.clone(),
                config: ImageConfig::default(),
                platform: "linux/amd64".into(),
                layers: vec![],
                chain_ids: vec![],
                created_at: 1,
            })
            .unwrap();

        fx.store.discard_added(
            &[
                alone.clone(),
                pinned.clone(),
                recorded.clone(),
                sha256(b"never written"),
            ],
            &[],
        );

        assert!(!fx.store.content.has(&alone));
        assert!(fx.store.content.has(&pinned), "another operation uses it");
        assert!(fx.store.content.has(&recorded), "an image uses it");
    }

    #[test]
    fn writing_through_a_symlink_to_dot_dot_is_refused() {
        let fx = Fixture::new();
        let cases = [
            (
                Tar::new().symlink("up", "..").file("up/evil", 0o644, b"x"),
                "up/evil",
                "up",
            ),
            (
                Tar::new()
                    .dir("d/", 0o755)
                    .symlink("d/up", "../..")
                    .dir("d/up/evil/", 0o755),
                "d/up/evil/",
                "d/up",
            ),
        ];
        for (tar, name, symlink) in cases {
            match fx.refuse(&tar.bytes()) {
                ImageError::ThroughSymlink { entry, component, .. } => {
                    assert_eq!((entry.as_str(), component.as_str()), (name, symlink));
                }
                other => panic!("expected ThroughSymlink, got {other}"),
            }
            assert!(!fx.store.root.join("tmp/evil").exists());
            assert!(!fx.store.root.join("evil").exists());
        }
    }

    #[test]
    fn an_entry_under_a_regular_file_is_refused() {
        let fx = Fixture::new();
        let err = fx.refuse(&Tar::new().file("f", 0o644, b"").file("f/x", 0o644, b"").bytes());
        assert!(
            matches!(err, ImageError::ThroughNonDirectory { ref component, .. } if component == "f"),
            "{err}"
        );
    }

    #[test]
    fn device_nodes_are_made_when_permitted_and_skipped_otherwise() {
        let fx = Fixture::new();
        let mut tar = Tar::new();
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..8].copy_from_slice(b"dev/null");
        header.set_entry_type(EntryType::Char);
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(0);
        header.set_device_major(1).unwrap();
        header.set_device_minor(3).unwrap();
        header.set_cksum();
        tar.0.append(&header, &b""[..]).unwrap();

        let layer = fx.import(&tar.bytes()).expect("import");

        match fs::symlink_metadata(layer.dir.join("dev/null")) {
            Ok(meta) => {
                assert!(meta.file_type().is_char_device());
                assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
                assert_eq!(meta.permissions().mode() & 0o7777, 0o666);
            }
            // Not permitted here (no CAP_MKNOD): skipped with a warning.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn a_hardlink_to_an_absolute_path_is_refused() {
        let fx = Fixture::new();
        let err = fx.refuse(&Tar::new().hardlink("pw", "/etc/passwd").bytes());
        match err {
            ImageError::HardlinkEscapes { entry, target, .. } => {
                assert_eq!((entry.as_str(), target.as_str()), ("pw", "/etc/passwd"));
            }
            other => panic!("expected HardlinkEscapes, got {other}"),
        }
    }

    #[test]
    fn a_hardlink_climbing_out_is_refused() {
        let fx = Fixture::new();
        // Make the target really exist next to the unpack directory.
        fs::write(fx.store.root.join("outside"), b"secret").unwrap();
        let err = fx.import(&Tar::new().hardlink("x", "../outside").bytes());
        fs::remove_file(fx.store.root.join("outside")).unwrap();
        assert!(fx.entries("tmp").is_empty() && fx.entries("layers").is_empty());
        match err {
            Err(ImageError::HardlinkEscapes { target, .. }) => assert_eq!(target, "../outside"),
            other => panic!("expected HardlinkEscapes, got {other:?}"),
        }
    }

    #[test]
    fn a_hardlink_through_a_symlink_is_refused() {
        let fx = Fixture::new();
        fs::write(fx.outside.path().join("secret"), b"secret").unwrap();
        let target = fx.outside.path().to_str().unwrap().to_owned();
        let err = fx
            .import(&Tar::new().symlink("s", &target).hardlink("x", "s/secret").bytes())
            .expect_err("refused");
        assert!(
            matches!(err, ImageError::ThroughSymlink { ref component, .. } if component == "s"),
            "{err}"
        );
        assert_eq!(fs::metadata(fx.outside.path().join("secret")).unwrap().nlink(), 1);
        assert!(fx.entries("tmp").is_empty() && fx.entries("layers").is_empty());
    }

    #[test]
    fn a_hardlink_to_a_missing_file_is_refused() {
        let fx = Fixture::new();
        let err = fx.refuse(&Tar::new().dir("d/", 0o755).hardlink("x", "nothing").bytes());
        assert!(matches!(err, ImageError::HardlinkTarget { .. }), "{err}");
        let err = fx.refuse(&Tar::new().dir("d/", 0o755).hardlink("x", "d").bytes());
        assert!(matches!(err, ImageError::HardlinkTarget { .. }), "{err}");
    }

    #[test]
    fn a_file_replacing_a_symlink_replaces_it_instead_of_writing_through_it() {
        let fx = Fixture::new();
        let target = fx.outside.path().join("target");
        let layer = fx
            .import(
                &Tar::new()
                    .symlink("f", target.to_str().unwrap())
                    .file("f", 0o644, b"inside")
                    .symlink("d", fx.outside.path().to_str().unwrap())
                    .dir("d", 0o755)
                    .file("d/x", 0o644, b"inside too")
                    .bytes(),
            )
            .expect("import");
        assert!(!target.exists());
        assert!(fs::read_dir(fx.outside.path()).unwrap().next().is_none());
        assert_eq!(fs::read(layer.dir.join("f")).unwrap(), b"inside");
        assert!(fs::symlink_metadata(layer.dir.join("d")).unwrap().is_dir());
        assert_eq!(fs::read(layer.dir.join("d/x")).unwrap(), b"inside too");
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let fx = Fixture::new();
        let layer = fx
            .import(
                &Tar::new()
                    .file("x", 0o644, b"first")
                    .hardlink("y", "x")
                    .file("x", 0o600, b"second")
                    .bytes(),
            )
            .expect("import");
        assert_eq!(fs::read(layer.dir.join("x")).unwrap(), b"second");
        assert_eq!(mode(&layer.dir.join("x")), 0o600);
        // The hardlink kept the inode it was made from, as with GNU tar.
        assert_eq!(fs::read(layer.dir.join("y")).unwrap(), b"first");
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let fx = Fixture::new();
        let layer = fx
            .import(
                &Tar::new()
                    .file(".wh.gone", 0o644, b"")
                    .dir("d/", 0o755)
                    .file("d/.wh..wh..opq", 0o644, b"")
                    .bytes(),
            )
            .expect("import");
        let gone = fs::symlink_metadata(layer.dir.join("gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert_eq!(gone.rdev(), 0);
        assert!(!layer.dir.join(".wh.gone").exists());
        assert!(!layer.dir.join("d/.wh..wh..opq").exists());
        let mut value = [0u8; 8];
        let path = std::ffi::CString::new(layer.dir.join("d").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: both strings are NUL-terminated and `value` has value.len() writable bytes.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert_eq!(n, 1, "{}", io::Error::last_os_error());
        assert_eq!(value[0], b'y');
    }

    fn getxattr(path: &Path, name: &std::ffi::CStr) -> Option<Vec<u8>> {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut value = [0u8; 64];
        // SAFETY: both strings are NUL-terminated and `value` has value.len() writable bytes.
        let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        (n >= 0).then(|| value[..n as usize].to_vec())
    }

    #[test]
    fn user_xattrs_are_kept_and_overlay_ones_from_the_archive_are_dropped() {
        let pax = |records: &[(&str, &str)]| {
            let mut data = Vec::new();
            for (k, v) in records {
                let body = format!(" {k}={v}\n");
                // The length counts itself: find the fixed point.
                let mut len = body.len() + 1;
                while format!("{len}{body}").len() != len {
                    len += 1;
                }
                data.extend(format!("{len}{body}").into_bytes());
            }
            data
        };
        let mut tar = Tar::new();
        let records = pax(&[
            ("SCHILY.xattr.user.note", "kept"),
            ("SCHILY.xattr.trusted.overlay.opaque", "y"),
        ]);
        tar.raw("PaxHeaders/f", EntryType::XHeader, 0o644, "", &records);
        tar.raw("f", EntryType::Regular, 0o644, "", b"x");
        tar.raw("PaxHeaders/d", EntryType::XHeader, 0o644, "", &records);
        tar.raw("d/", EntryType::Directory, 0o755, "", b"");
        let fx = Fixture::new();
        let layer = fx.import(&tar.bytes()).expect("import");
        for entry in ["f", "d"] {
            let path = layer.dir.join(entry);
            assert_eq!(
                getxattr(&path, c"trusted.overlay.opaque"),
                None,
                "{entry}: never from an archive"
            );
            // tmpfs before 6.6 and some filesystems refuse user xattrs: then it is skipped.
            let probe = fx.dir.path().join("probe");
            fs::write(&probe, b"").unwrap();
            // SAFETY: NUL-terminated strings; the value is 1 readable byte.
            let supported = unsafe {
                let p = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()).unwrap();
                libc::lsetxattr(p.as_ptr(), c"user.t".as_ptr(), b"1".as_ptr().cast(), 1, 0) == 0
            };
            if supported {
                assert_eq!(getxattr(&path, c"user.note").as_deref(), Some(&b"kept"[..]), "{entry}");
            }
        }
    }

    #[test]
    fn a_whiteout_naming_dot_dot_is_refused() {
        let fx = Fixture::new();
        let err = fx.refuse(&Tar::new().file("d/.wh...", 0o644, b"").bytes());
        assert!(matches!(err, ImageError::Whiteout { .. }), "{err}");
    }

    #[test]
    fn remove_deletes_the_layer_and_its_blob_and_a_missing_layer_is_fine() {
        let fx = Fixture::new();
        let layer = fx.import(&rootfs()).expect("import");

        fx.store.remove(&layer.digest).expect("remove");

        assert!(fx.store.layer(&layer.digest).is_none());
        assert!(fx.store.list().unwrap().is_empty());
        assert!(fx.entries("layers").is_empty());
        assert!(fx.entries("blobs/sha256").is_empty());
        fx.store.remove(&layer.digest).expect("second remove is a no-op");
        // And it can be imported again.
        assert_eq!(fx.import(&rootfs()).expect("re-import").dir, layer.dir);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let fx = Fixture::new();
        let fifo = fx.dir.path().join("rootfs.tar");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();

        // In a thread of its own with a store of its own: if the import
        // blocked on the fifo (no writer ever comes), the test fails after
        // the timeout instead of hanging.
        let (done, result) = std::sync::mpsc::channel();
        let (root, path) = (fx.store.root.clone(), fifo.clone());
        std::thread::spawn(move || {
            let _ = done.send(ImageStore::open(root).and_then(|store| store.import(&path, None)));
        });
        let err = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("import of a fifo blocked")
            .expect_err("a fifo is refused");

        match &err {
            ImageError::NotRegularFile { path, kind } => assert_eq!((path, *kind), (&fifo, "a fifo")),
            other => panic!("expected NotRegularFile, got {other}"),
        }
        assert!(
            err.to_string().contains("rootfs.tar is a fifo, not a regular file"),
            "{err}"
        );
        assert!(fx.entries("tmp").is_empty() && fx.entries("blobs/sha256").is_empty());
    }

    #[test]
    fn devices_directories_and_sockets_are_refused_naming_what_they_are() {
        let fx = Fixture::new();
        let dir = fx.dir.path().join("a-dir");
        fs::create_dir(&dir).unwrap();
        let socket = fx.dir.path().join("a-socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let zero_link = fx.dir.path().join("zero.tar");
        std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();
        let cases = [
            (Path::new("/dev/zero"), "a character device"),
            (Path::new("/dev/null"), "a character device"),
            (zero_link.as_path(), "a character device"),
            (dir.as_path(), "a directory"),
            (socket.as_path(), "a socket"),
        ];
        for (path, expected) in cases {
            let err = fx.refuse_path(path);
            match &err {
                ImageError::NotRegularFile { path: p, kind } => assert_eq!((p.as_path(), *kind), (path, expected)),
                other => panic!("expected NotRegularFile for {}, got {other}", path.display()),
            }
            let shown = err.to_string();
            assert!(shown.contains(&format!("{} is {expected}", path.display())), "{shown}");
        }
    }

    #[test]
    fn a_symlink_to_a_regular_file_imports_what_it_points_at() {
        let fx = Fixture::new();
        let bytes = rootfs();
        fx.write("v3.tar", &bytes);
        let current = fx.dir.path().join("current.tar");
        std::os::unix::fs::symlink("v3.tar", &current).unwrap();

        let layer = fx.store.import(&current, None).expect("import through a symlink");

        assert_eq!(layer.digest, sha256(&bytes));
    }

    #[test]
    fn an_archive_over_the_size_limit_is_refused_before_it_is_copied() {
        let mut fx = Fixture::new();
        fx.store.limits.archive = 4 << 10;
        let bytes = rootfs();
        assert!(bytes.len() > 4 << 10);

        let err = fx.refuse(&bytes);

        assert!(matches!(err, ImageError::ArchiveTooLarge { limit: 4096, .. }), "{err}");
        assert!(
            err.to_string().contains("larger than 4 KiB, the limit for one archive"),
            "{err}"
        );
        assert_eq!(fx.unpacks(), 0);
    }

    #[test]
    fn an_endless_source_is_cut_off_at_the_archive_limit() {
        let mut copy = Vec::new();
        let result = copy_hashed(&mut io::repeat(0), &mut copy, 100_000);
        assert!(matches!(result, Err(CopyError::Limit)), "{result:?}");
        assert!(copy.len() <= 100_000, "wrote {} bytes", copy.len());
    }

    #[test]
    fn a_decompression_bomb_is_stopped_at_the_limit_with_nothing_left_in_tmp() {
        let mut fx = Fixture::new();
        fx.store.limits.unpacked = 1 << 20;
        let zeros = vec![0u8; 8 << 20];
        let in_a_file = gzip(&Tar::new().file("big", 0o644, &zeros).bytes());
        // Headers count too, not only file data: 4 MiB of them, no data.
        let mut headers = Tar::new();
        for _ in 0..8192 {
            headers = headers.dir("d/", 0o755);
        }
        let headers = gzip(&headers.bytes());
        // And zeros after the tar's end-of-archive block, read only to reach
        // the gzip trailer.
        let mut after_the_end = Tar::new().file("small", 0o644, b"x").bytes();
        after_the_end.extend_from_slice(&zeros);
        let after_the_end = gzip(&after_the_end);

        for bomb in [in_a_file, headers, after_the_end] {
            assert!(bomb.len() < 64 << 10, "a bomb is small: {}", bomb.len());
            let err = fx.refuse(&bomb);
            assert!(
                matches!(err, ImageError::UnpackedTooLarge { limit, .. } if limit == 1 << 20),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("unpacks to more than 1 MiB, the limit for one unpacked archive"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_archive_exactly_at_the_limits_imports_and_one_byte_less_does_not() {
        let mut fx = Fixture::new();
        let bytes = rootfs();
        let len = bytes.len() as u64;
        fx.store.limits = Limits {
            archive: len - 1,
            unpacked: len,
        };
        assert!(matches!(fx.refuse(&bytes), ImageError::ArchiveTooLarge { .. }));
        // A plain tar: the unpacked stream is the archive itself, read to its end.
        fx.store.limits = Limits {
            archive: len,
            unpacked: len - 1,
        };
        assert!(matches!(fx.refuse(&bytes), ImageError::UnpackedTooLarge { .. }));
        fx.store.limits.unpacked = len;
        fx.import(&bytes).expect("an archive at the limits imports");
    }

    #[test]
    fn a_gzip_with_a_corrupt_crc_is_refused() {
        let fx = Fixture::new();
        let good = gzip(&rootfs());
        let trailer = good.len() - 8;
        let mut bad_crc = good.clone();
        bad_crc[trailer] ^= 0x01;
        let mut bad_length = good.clone();
        bad_length[trailer + 4] ^= 0x01;

        for bytes in [bad_crc, bad_length] {
            let err = fx.refuse(&bytes);
            assert!(matches!(err, ImageError::MalformedArchive { .. }), "{err}");
            assert!(err.to_string().contains("checksum"), "{err}");
        }
    }

    #[test]
    fn garbage_after_a_gzip_stream_is_refused() {
        let fx = Fixture::new();
        let mut bytes = gzip(&rootfs());
        bytes.extend_from_slice(b"not another gzip member");
        let err = fx.refuse(&bytes);
        assert!(matches!(err, ImageError::MalformedArchive { .. }), "{err}");
    }

    #[test]
    fn an_empty_tar_is_refused() {
        let fx = Fixture::new();
        let end_of_archive_only = Tar::new().bytes();
        for bytes in [Vec::new(), end_of_archive_only.clone(), gzip(&end_of_archive_only)] {
            let err = fx.refuse(&bytes);
            assert!(matches!(err, ImageError::EmptyArchive { .. }), "{err}");
            assert!(err.to_string().contains("has no entries"), "{err}");
        }
    }

    #[test]
    fn an_entry_name_with_escape_codes_is_shown_escaped() {
        let fx = Fixture::new();
        // ESC sequences (clear screen, set title), a C1 CSI, a bidi override.
        let absolute = "/\x1b[2J\x1b[Hevil";
        let climbing = "../\u{9b}2Jcaf\u{e9}\u{202e}";
        let link_target = "/etc/\x1b]0;pwned\x07";

        let err = fx.refuse(&Tar::new().file(absolute, 0o644, b"x").bytes());
        assert!(
            matches!(&err, ImageError::AbsolutePath { entry, .. } if entry == absolute),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(r#"entry "/\x1b[2J\x1b[Hevil" in archive"#),
            "{err}"
        );

        let err = fx.refuse(&Tar::new().file(climbing, 0o644, b"x").bytes());
        // Printable UTF-8 (the é) is kept as is.
        assert!(err.to_string().contains(r#"entry "../\x9b2Jcafé\u{202e}" in"#), "{err}");

        let err = fx.refuse(&Tar::new().hardlink("pw", link_target).bytes());
        assert!(
            err.to_string().contains(r#"points at "/etc/\x1b]0;pwned\x07""#),
            "{err}"
        );

        for err in [
            fx.import(&Tar::new().file(absolute, 0o644, b"x").bytes()).unwrap_err(),
            fx.import(&Tar::new().file(climbing, 0o644, b"x").bytes()).unwrap_err(),
            fx.import(&Tar::new().hardlink("pw", link_target).bytes()).unwrap_err(),
        ] {
            assert_shown_safely(&err.to_string());
        }
    }

    #[test]
    fn escape_codes_in_a_broken_header_are_shown_escaped() {
        let fx = Fixture::new();
        // The tar crate quotes the entry's name and the bad field in its
        // error: the mode field (read by the unpacker) and the size field
        // (read by the tar crate while iterating).
        let name = b"\x1b[2Jinnocent";
        for field in ["mode", "size"] {
            let mut header = Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_mtime(MTIME);
            header.set_size(0);
            let old = header.as_old_mut();
            let bad = if field == "mode" {
                &mut old.mode[..]
            } else {
                &mut old.size[..]
            };
            bad.fill(0);
            bad[..5].copy_from_slice(b"\x1b[31m");
            header.set_cksum();
            let mut bytes = header.as_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 1024]);

            let err = fx.refuse(&bytes);

            let shown = err.to_string();
            assert_shown_safely(&shown);
            assert!(
                shown.contains(r"\x1b[2Jinnocent") && shown.contains(r"\x1b[31m"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_path_with_escape_codes_is_shown_escaped() {
        let fx = Fixture::new();
        let path = fx.dir.path().join("\x1b[2J.tar");
        let err = fx.store.import(&path, None).expect_err("missing");
        assert!(matches!(err, ImageError::ReadArchive { .. }), "{err}");
        assert_shown_safely(&err.to_string());
        assert!(err.to_string().contains(r"\x1b[2J.tar"), "{err}");
    }

    #[test]
    fn list_skips_hidden_and_stray_entries() {
        let fx = Fixture::new();
        let layer = fx.import(&rootfs()).expect("import");
        let layers = fx.store.root.join("layers");
        fs::create_dir(layers.join(format!(".remove-{}", &layer.digest[7..]))).unwrap();
        fs::create_dir(layers.join("not-a-digest")).unwrap();
        fs::write(layers.join("f".repeat(64)), b"a file, not a layer").unwrap();

        assert_eq!(fx.store.list().unwrap(), vec![layer]);
    }
}
