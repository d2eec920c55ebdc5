//! Images: a content-addressed store of blobs, their unpacked snapshots
//! and the records that make images of them. Every image is one of these,
//! however it came: pulled, loaded, committed or imported (`berth import`,
//! or an Image object's `import`, which makes an image with no reference,
//! found by its id).
//!
//! # Layout
//!
//! ```text
//! <root>/                       e.g. <berth root>/images
//!   blobs/sha256/<hex>          blobs (layers as given, configs, manifests) by sha256
//!   snapshots/<hex>/            a layer unpacked, by chain ID (see `snapshot`)
//!   l/<12 hex>                  short links to snapshots, for overlay options
//!   images/<hex>.json           image records, by id; refs.json names them
//!   tmp/                        ingests and unpacks in progress
//! ```
//!
//! A `layers/` directory is what an older berth kept imported root
//! filesystems in; [`ImageStore::sweep`] removes it.
//!
//! # Guarantees of an import
//!
//! - The digest is computed over the store's own copy of the archive, and is
//!   checked against the expected one before a single entry is unpacked; the
//!   tree is then unpacked from that same copy, so the caller's file changing
//!   underneath cannot smuggle in unverified content.
//! - A snapshot appears only complete: unpacked under `tmp/`, synced and
//!   renamed into place. A failed import removes the blobs it added.
//! - Nothing in an archive can create or change a file outside its snapshot
//!   directory: see [`unpack`] for how.
//! - Only a regular file is imported. The path is opened without opening
//!   what it names (`O_PATH`) and checked with `fstat` on that descriptor, so
//!   a fifo cannot block the import and a device is never opened or read.
//! - A gzip's CRC32 and length trailer are verified (and bytes after the gzip
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
pub mod buildcache;
mod commit;
pub mod content;
mod error;
pub mod export;
mod images;
pub mod login;
pub mod merged;
pub mod pull;
mod push;
pub mod record;
pub mod snapshot;
mod unpack;

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode, SFlag};

pub use buildcache::CacheUsage;
pub use commit::HistoryEntry;
pub use error::{ImageError, Result};
pub use images::ImageSummary;
pub use pull::{Credentials, Progress, PullEvent};
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

/// Makes temporary names unique within this process (the pid makes them
/// unique across processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A content-addressed store of images under one root directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// The most one import copies into `blobs/` ([`MAX_ARCHIVE_BYTES`],
    /// lowered by tests; the unpacked limit is the snapshots').
    archive_limit: u64,
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
    /// creates `blobs/sha256/`, `snapshots/`, `tmp/` and the rest under it.
    ///
    /// Entries' owners are preserved when the process runs as root, and left
    /// as the current user otherwise (as GNU tar does).
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for dir in [
            root.join("blobs/sha256"),
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
            archive_limit: MAX_ARCHIVE_BYTES,
        })
    }

    /// Removes what a crash can leave: ingest copies and half-unpacked trees
    /// under `tmp/`, and snapshots of a pull that never got its record (verified blobs stay,
    /// so the next pull of that image downloads only what is missing).
    /// Call only while holding the root's lock (the daemon does, at start):
    /// another process's import in flight would be swept too. Returns what
    /// could not be removed.
    pub fn sweep(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut leftovers: Vec<PathBuf> = fs::read_dir(self.root.join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        // The store of imported trees an older berth kept: Image objects
        // that used it are imported again as images on their next pass. A
        // container an older berth started may still run on one of its
        // trees (containers outlive the daemon): then it is kept until a
        // start finds no mount using it, since deleting a mounted overlay's
        // lower dir changes what the container sees.
        let old_layers = self.root.join("layers");
        if fs::symlink_metadata(&old_layers).is_ok_and(|m| m.is_dir()) {
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            if mounts_use(&mountinfo, &old_layers) {
                failures.push(format!(
                    "{} (an older berth's imported images) kept: a running container still uses it; \
                     restart such containers and it goes at the next daemon start",
                    old_layers.display()
                ));
            } else {
                leftovers.push(old_layers);
            }
        }
        match self.records.try_all().and_then(|mut r| {
            r.extend(self.cache_records()?);
            Ok(r)
        }) {
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
}

/// Whether a mount in `mountinfo` (proc(5)'s format) names a path under
/// `dir` (an overlay's `lowerdir=` among its options, or its mount point).
/// Paths there escape space, tab, newline and backslash as octal; a store
/// root with those in it is not matched, and is swept as if unused.
fn mounts_use(mountinfo: &str, dir: &Path) -> bool {
    let prefix = format!("{}/", dir.display());
    mountinfo
        .lines()
        .any(|line| line.split([' ', ',', ':', '=']).any(|field| field.starts_with(&prefix)))
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
    fn the_old_layer_store_counts_as_used_while_an_overlay_mounts_a_tree_of_it() {
        let root = Path::new("/var/lib/berth/images/layers");
        let overlay = "812 30 0:61 / /run/berth/containers/a/rootfs rw,relatime - overlay overlay \
                       rw,lowerdir=/var/lib/berth/images/layers/abc,upperdir=/var/lib/berth/containers/a/upper,workdir=/w";
        assert!(mounts_use(overlay, root));
        let stacked =
            "812 30 0:61 / /r rw - overlay overlay rw,lowerdir=/x/l/1:/var/lib/berth/images/layers/abc,upperdir=/u";
        assert!(mounts_use(stacked, root));
        let other = "812 30 0:61 / /r rw - overlay overlay rw,lowerdir=/var/lib/berth/images/l/abc,upperdir=/u";
        assert!(!mounts_use(other, root), "snapshots are not the old store");
        assert!(!mounts_use("", root));
        assert!(!mounts_use(
            "1 0 8:1 / /var/lib/berth/images/layers-x rw - ext4 /dev/sda1 rw",
            root
        ));
    }

    #[test]
    fn sweep_removes_crash_leftovers_and_the_old_layer_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join("tmp/unpack-1/etc")).unwrap();
        fs::write(dir.path().join("tmp/ingest-2"), b"x").unwrap();
        // What an older berth kept imported trees in, read-only dirs and all.
        fs::create_dir_all(dir.path().join("layers/.remove-3/bin")).unwrap();
        fs::create_dir_all(dir.path().join("layers/abc/ro")).unwrap();
        fs::set_permissions(dir.path().join("layers/abc/ro"), fs::Permissions::from_mode(0o555)).unwrap();
        assert!(store.sweep().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(!dir.path().join("layers").exists(), "the old layer store is swept");
        assert!(
            !ImageStore::open(dir.path()).unwrap().root.join("layers").exists(),
            "and not made again"
        );
    }

    use std::io::Write;

    use sha2::{Digest, Sha256};
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

    /// An import as the tests look at it: the tar's digest and size, the
    /// snapshot it unpacked to, and the image's id.
    #[derive(Debug, Clone, PartialEq)]
    struct Imported {
        digest: String,
        size: u64,
        dir: PathBuf,
        id: String,
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

        fn import(&self, bytes: &[u8]) -> Result<Imported> {
            let path = self.write("layer.tar", bytes);
            self.import_path(&path, None)
        }

        /// Imports as an Image object does: no reference, maybe a digest.
        fn import_path(&self, path: &Path, expected: Option<&str>) -> Result<Imported> {
            let record = self.store.import_image(path, None, expected, Vec::new())?;
            let layer = &record.layers[0];
            Ok(Imported {
                digest: layer.digest.clone(),
                size: layer.size,
                dir: self.store.snapshots.dir(&record.chain_ids[0])?,
                id: record.id.clone(),
            })
        }

        fn unpacks(&self) -> u64 {
            self.store.snapshots.unpacks.load(Ordering::Relaxed)
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
            let err = self.import_path(path, None).expect_err("must be refused");
            for sub in ["snapshots", "l", "images", "tmp", "blobs/sha256"] {
                assert!(self.entries(sub).is_empty(), "{sub}/ not empty after: {err}");
            }
            assert!(
                fs::read_dir(self.outside.path())
                    .expect("read outside")
                    .next()
                    .is_none(),
                "something was written outside the store after: {err}"
            );
            assert!(self.store.images().expect("images").is_empty());
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
        assert_eq!(
            layer.dir,
            fx.store.root.join("snapshots").join(&layer.digest[7..]),
            "one plain layer: chain id = diff id = digest"
        );
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

        // An image with no reference: `berth images` shows `<none>`.
        let images = fx.store.images().unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(
            (images[0].record.id.as_str(), images[0].references.len()),
            (layer.id.as_str(), 0)
        );
        assert_eq!(fx.store.lower_dirs(&images[0].record).unwrap().len(), 1);
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
        let second = fx.import_path(&path, Some(&first.digest)).expect("second import");

        assert_eq!(second, first);
        assert_eq!(fs::read(second.dir.join("marker")).unwrap(), b"still here");
        assert_eq!(fx.unpacks(), 1);
        assert!(fx.entries("tmp").is_empty());
        assert_eq!(fx.store.images().unwrap().len(), 1, "one tar, one image");
    }

    #[test]
    fn a_digest_mismatch_is_refused_before_anything_is_unpacked() {
        let fx = Fixture::new();
        let bytes = rootfs();
        let path = fx.write("layer.tar", &bytes);
        let wrong = format!("sha256:{}", "0".repeat(64));

        let err = fx.import_path(&path, Some(&wrong)).expect_err("mismatch");

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
        for sub in ["snapshots", "images", "tmp", "blobs/sha256"] {
            assert!(fx.entries(sub).is_empty(), "{sub}");
        }
    }

    #[test]
    fn a_malformed_expected_digest_is_refused() {
        let fx = Fixture::new();
        let path = fx.write("layer.tar", &rootfs());
        for bad in ["sha256:abc", "md5:0123", &format!("sha256:{}", "A".repeat(64))] {
            let err = fx.import_path(&path, Some(bad)).expect_err("bad digest");
            assert!(matches!(err, ImageError::InvalidDigest { .. }), "{err}");
        }
        assert_eq!(fx.unpacks(), 0);
        assert!(fx.entries("blobs/sha256").is_empty());
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
    fn bzip2_and_xz_archives_are_refused_with_a_clear_error() {
        let fx = Fixture::new();
        let err = fx.refuse(b"BZh91AY&SY");
        assert!(
            matches!(err, ImageError::UnsupportedCompression { format: "bzip2", .. }),
            "{err}"
        );
        let err = fx.refuse(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 0]);
        assert!(
            matches!(err, ImageError::UnsupportedCompression { format: "xz", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_zstd_rootfs_imports() {
        let fx = Fixture::new();
        let bytes = zstd::encode_all(&rootfs()[..], 3).unwrap();
        let layer = fx.import(&bytes).expect("import zstd");
        assert_eq!(layer.digest, sha256(&bytes));
        assert_eq!(fs::read(layer.dir.join("etc/shadow")).unwrap(), b"root:*::::::\n");
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
        assert!(fx.entries("tmp").is_empty() && fx.entries("snapshots").is_empty());
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
        assert!(fx.entries("tmp").is_empty() && fx.entries("snapshots").is_empty());
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
    fn prune_removes_an_unused_import_and_keeps_one_in_use() {
        let fx = Fixture::new();
        let layer = fx.import(&rootfs()).expect("import");

        let in_use = std::collections::HashSet::from([layer.id.clone()]);
        assert!(fx.store.prune(&in_use).unwrap().is_empty(), "an Image object uses it");
        assert!(layer.dir.is_dir());

        let removed = fx.store.prune(&Default::default()).unwrap();
        let removed: Vec<&str> = removed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(removed, [layer.id.as_str()]);
        assert!(!layer.dir.exists());
        for sub in ["snapshots", "images", "blobs/sha256"] {
            assert!(fx.entries(sub).is_empty(), "{sub}");
        }
        // And it can be imported again.
        assert_eq!(fx.import(&rootfs()).expect("re-import"), layer);
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
            let _ =
                done.send(ImageStore::open(root).and_then(|store| store.import_image(&path, None, None, Vec::new())));
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

        let layer = fx.import_path(&current, None).expect("import through a symlink");

        assert_eq!(layer.digest, sha256(&bytes));
    }

    #[test]
    fn an_archive_over_the_size_limit_is_refused_before_it_is_copied() {
        let mut fx = Fixture::new();
        fx.store.archive_limit = 4 << 10;
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
    fn a_decompression_bomb_is_stopped_at_the_limit_with_nothing_left_in_tmp() {
        let mut fx = Fixture::new();
        fx.store.snapshots.limit = 1 << 20;
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
        (fx.store.archive_limit, fx.store.snapshots.limit) = (len - 1, len);
        assert!(matches!(fx.refuse(&bytes), ImageError::ArchiveTooLarge { .. }));
        // A plain tar: the unpacked stream is the archive itself, read to its end.
        (fx.store.archive_limit, fx.store.snapshots.limit) = (len, len - 1);
        assert!(matches!(fx.refuse(&bytes), ImageError::UnpackedTooLarge { .. }));
        fx.store.snapshots.limit = len;
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
        let err = fx.import_path(&path, None).expect_err("missing");
        assert!(matches!(err, ImageError::ReadArchive { .. }), "{err}");
        assert_shown_safely(&err.to_string());
        assert!(err.to_string().contains(r"\x1b[2J.tar"), "{err}");
    }
}
