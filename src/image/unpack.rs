//! Safe extraction of one tar stream into a fresh directory.
//!
//! The unpacker never hands a multi-component path to the kernel. Every entry
//! name is first cleaned lexically (`.` and empty components dropped, `..`
//! popped; absolute names and names whose `..` climbs above the root are
//! refused). Its parent is then reached one component at a time with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` starting from a descriptor of the layer
//! root, so a symlink anywhere on the way (`a -> /etc`, then `a/passwd`) fails
//! with `ELOOP` and the entry is refused, naming the symlink. The last
//! component is then created relative to that parent descriptor with calls that
//! do not follow a symlink in the final position either (`O_CREAT | O_EXCL |
//! O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`,
//! `mknodat`), after removing whatever an earlier entry left under that name.
//! Nothing is ever written through a symlink, while symlinks themselves may
//! point anywhere: they are resolved inside the container's root later.
//!
//! This is the approach of `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! done by hand so it works on kernels before 5.6. The `tar` crate's own
//! `unpack_in` checks names but then acts on whole paths, which is not enough
//! once earlier entries have planted symlinks.
//!
//! Hardlink targets are archive member names, cleaned the same way; absolute
//! or escaping targets are refused, and the target's parent is reached with the
//! same walk, so a hardlink can only join an inode that an earlier entry
//! created inside the layer.
//!
//! Whiteouts (`.wh.<name>`) become overlay whiteouts (a 0/0 character device
//! named `<name>`), and `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its
//! directory, so that a layer can later sit in an overlay lower stack. Both need
//! root; without it the import fails rather than silently dropping a deletion.
//! Other character and block devices are made with `mknodat` and skipped with a
//! warning when that is not permitted (unprivileged or in a user namespace).
//!
//! The stream is bounded and read to its end. A [`Bounded`] reader stops it
//! past the caller's limit whatever it is made of (file data, headers, a
//! decompression bomb's zeros after the end-of-archive block). After the
//! end-of-archive block the rest of the stream is read and discarded: the
//! `tar` crate stops at the first zero block, so without this a gzip's CRC32
//! and length trailer, which `flate2` checks only at the end of the stream,
//! would never be read. An archive with no entries is refused.
//!
//! Mode, owner (only when running as root, like GNU tar) and mtime are kept,
//! and on files and directories the extended attributes of `KEPT_XATTRS`
//! (PAX `SCHILY.xattr.*`); others, `trusted.overlay.*` above all, are dropped. Directories get their final mode and mtime at
//! the end, deepest first, because adding children changes a directory's mtime
//! and a read-only directory would refuse them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::error::{Escaped, ImageError, Result};

/// The prefix of AUFS/OCI whiteout files.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The OCI opaque-directory marker.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of AUFS metadata entries (`.wh..wh.plnk`, `.wh..wh.aufs`).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// What to do about ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// `lchown` every entry to the archive's uid/gid (needs root).
    Preserve,
    /// Leave everything owned by the unpacking user.
    Ignore,
}

/// Unpacks the tar stream `archive` into the empty directory `root`, reading
/// at most `limit` bytes of it, and all of it to its end.
///
/// `source` is only used in error messages (the archive the caller imported).
/// On error the directory is left half-filled; the caller removes it.
pub(crate) fn unpack(archive: impl Read, root: &Path, source: &Path, ownership: Ownership, limit: u64) -> Result<()> {
    let mut input = Bounded {
        inner: archive,
        remaining: limit,
        exceeded: false,
    };
    let result = unpack_bounded(&mut input, root, source, ownership);
    // Whatever error the limit surfaced as (a broken entry, a failed read of
    // the trailer), the limit is the cause.
    if input.exceeded {
        return Err(ImageError::UnpackedTooLarge {
            path: source.to_path_buf(),
            limit,
        });
    }
    result
}

fn unpack_bounded(archive: impl Read, root: &Path, source: &Path, ownership: Ownership) -> Result<()> {
    let root_fd = open_dir(None, root).map_err(|e| ImageError::Unpack {
        path: source.to_path_buf(),
        entry: ".".to_owned(),
        source: e.into(),
    })?;
    let mut unpacker = Unpacker {
        root: root_fd,
        open: Vec::new(),
        source,
        ownership,
        dirs: Vec::new(),
        root_seen: false,
    };
    let mut archive = tar::Archive::new(archive);
    let mut members = 0u64;
    let entries = archive.entries().map_err(|e| malformed(source, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| malformed(source, e))?;
        if entry.header().entry_type() != EntryType::XGlobalHeader {
            members += 1;
        }
        unpacker.entry(&mut entry)?;
    }
    // The rest of the stream: the second end-of-archive block, the padding to
    // the record size, and (compressed) the gzip trailer, which is checked
    // only once it is read.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| {
        malformed(
            source,
            io::Error::new(e.kind(), format!("reading the stream after the end of the tar: {e}")),
        )
    })?;
    if members == 0 {
        return Err(ImageError::EmptyArchive {
            path: source.to_path_buf(),
        });
    }
    unpacker.finish()
}

/// A reader that fails once more than `remaining` bytes have come through,
/// and remembers that it did (the caller tells the limit from other errors by
/// that flag, since the `tar` crate may wrap the error it returns).
struct Bounded<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("the unpack limit was reached"));
        }
        // Ask for one byte more than is left: a stream exactly at the limit
        // ends (reads 0) and passes; one that goes on gets caught here.
        let wanted = usize::try_from(self.remaining.saturating_add(1)).map_or(buf.len(), |w| w.min(buf.len()));
        let n = self.inner.read(&mut buf[..wanted])?;
        if n as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other("the unpack limit was reached"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn malformed(source: &Path, e: io::Error) -> ImageError {
    ImageError::MalformedArchive {
        path: source.to_path_buf(),
        source: e,
    }
}

/// A directory whose mode and mtime are applied at the end.
struct DirMeta {
    components: Vec<OsString>,
    mode: u32,
    mtime: TimeSpec,
}

struct Unpacker<'a> {
    root: OwnedFd,
    /// The directories of the last walk from the root, outermost first,
    /// each opened with `O_NOFOLLOW` from the one before: the next entry
    /// (tars list a directory's entries together) reuses the longest common
    /// prefix instead of opening every component from the root again.
    /// Always a chain from the root: after an entry's walk it is exactly the
    /// entry's parents (plus the entry itself once a directory entry made
    /// it), and an entry only ever unlinks its own last component, so no
    /// descriptor here can name a directory a later entry removed.
    open: Vec<(OsString, OwnedFd)>,
    source: &'a Path,
    ownership: Ownership,
    dirs: Vec<DirMeta>,
    root_seen: bool,
}

/// Why a walk from the root to a directory stopped.
enum WalkError {
    /// Component `.0` (index) is a symlink.
    Symlink(usize),
    /// Component `.0` exists but is not a directory.
    NotDir(usize),
    /// Component `.0` does not exist (and was not to be created).
    Missing(usize),
    /// Any other failure, at component `.0`.
    Io(usize, Errno),
}

/// Header fields the unpacker needs, read once per entry.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: TimeSpec,
    /// PAX `SCHILY.xattr.<name>` records that may be kept (see [`KEPT_XATTRS`]).
    xattrs: Vec<(std::ffi::CString, Vec<u8>)>,
}

/// Extended attributes kept from an archive: `user.*` and file capabilities
/// (`security.capability`, as `ping` images carry). Everything else is
/// dropped: `trusted.overlay.*` would change what the overlay shows (an
/// image must not forge redirects or opaque dirs; those come only from
/// whiteouts), and other `trusted.*`/`security.*` names belong to the host.
const KEPT_XATTRS: &[&[u8]] = &[b"user.", b"security.capability"];

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            // Archive-level metadata, not a file.
            EntryType::XGlobalHeader => return Ok(()),
            EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader => {
                // The tar crate folds these into the next entry; seeing one
                // means two in a row, which no sane writer produces.
                return Err(self.unsupported(&name, kind));
            }
            _ => {}
        }
        let meta = self.meta(entry, &name)?;

        let components = clean_path(&raw_name).map_err(|problem| match problem {
            PathProblem::Absolute => ImageError::AbsolutePath {
                path: self.source.to_path_buf(),
                entry: name.clone(),
            },
            PathProblem::Escapes => ImageError::PathEscapes {
                path: self.source.to_path_buf(),
                entry: name.clone(),
            },
        })?;

        // V7 tars mark directories as regular files with a trailing slash.
        let is_dir = kind == EntryType::Directory
            || (matches!(kind, EntryType::Regular | EntryType::Continuous) && raw_name.ends_with(b"/"));

        let Some((last, parents)) = components.split_last() else {
            // `.` or `./`: the layer root itself.
            if !is_dir {
                return Err(self.unsupported(&name, kind));
            }
            self.root_seen = true;
            self.chown_fd(self.root.as_fd(), &meta, &name)?;
            self.dirs.push(DirMeta {
                components,
                mode: meta.mode,
                mtime: meta.mtime,
            });
            return Ok(());
        };

        let is_whiteout = last.as_bytes().starts_with(WHITEOUT_PREFIX);
        self.walk_open(parents, true, &name)?;
        let parent = self.open.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());

        if is_whiteout {
            return self.whiteout(parent, last, &name, &meta);
        }

        if is_dir {
            let (dir, fd) = self.directory(parent, last, &components, &name, &meta)?;
            self.dirs.push(dir);
            // Its entries most likely come next.
            self.open.push((last.clone(), fd));
            return Ok(());
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(entry, parent, last, &name, &meta)
            }
            EntryType::Symlink => self.symlink(entry, parent, last, &name, &meta),
            EntryType::Link => self.hardlink(entry, parent, last, &components, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.device(entry, parent, last, &name, &meta, kind)
            }
            _ => Err(self.unsupported(&name, kind)),
        }
    }

    /// Reads mode, owner and mtime, taking a PAX `mtime` over the header's.
    /// (The tar crate already applies PAX `uid`, `gid`, `path` and `linkpath`.)
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
        let header = entry.header();
        let bad = |e: io::Error| self.unpack_error(name, e);
        let mode = header.mode().map_err(bad)? & 0o7777;
        let uid = header.uid().map_err(bad)?;
        let gid = header.gid().map_err(bad)?;
        let secs = i64::try_from(header.mtime().map_err(bad)?).unwrap_or(i64::MAX);
        let mut mtime = TimeSpec::new(secs, 0);
        let mut xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions().map_err(bad)? {
            for extension in extensions {
                let extension = extension.map_err(bad)?;
                let key = extension.key_bytes();
                if key == b"mtime" {
                    if let Some(parsed) = parse_pax_time(extension.value_bytes()) {
                        mtime = parsed;
                    }
                } else if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                    if KEPT_XATTRS.iter().any(|kept| attr.starts_with(kept)) {
                        if let Ok(c) = std::ffi::CString::new(attr) {
                            xattrs.push((c, extension.value_bytes().to_vec()));
                        }
                    } else {
                        tracing::debug!(entry = %Escaped(name), attr = %Escaped(String::from_utf8_lossy(attr)), "extended attribute dropped");
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// Makes the open directories (`self.open`) the chain to `components`
    /// below the root: the longest prefix already open is kept, the rest is
    /// opened one component at a time, never following a symlink. Missing
    /// directories are created when `create` is set (archives often omit
    /// parent entries).
    fn walk_open(&mut self, components: &[OsString], create: bool, name: &str) -> Result<()> {
        self.descend(components, create)
            .map_err(|e| self.walk_error(e, components, name))
    }

    /// Keeps the longest open prefix of `components` and opens the rest one
    /// component at a time with `step` (never following a symlink).
    fn descend(&mut self, components: &[OsString], create: bool) -> std::result::Result<(), WalkError> {
        let common = self
            .open
            .iter()
            .zip(components)
            .take_while(|((open, _), wanted)| open == *wanted)
            .count();
        self.open.truncate(common);
        for (i, component) in components.iter().enumerate().skip(common) {
            let parent = self.open.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = step(parent, component, create, i)?;
            self.open.push((component.clone(), fd));
        }
        Ok(())
    }

    fn walk_error(&self, e: WalkError, components: &[OsString], name: &str) -> ImageError {
        let prefix = |i: usize| join(&components[..=i]);
        match e {
            WalkError::Symlink(i) => ImageError::ThroughSymlink {
                path: self.source.to_path_buf(),
                entry: name.to_owned(),
                component: prefix(i),
            },
            WalkError::NotDir(i) => ImageError::ThroughNonDirectory {
                path: self.source.to_path_buf(),
                entry: name.to_owned(),
                component: prefix(i),
            },
            WalkError::Missing(i) => self.unpack_error(
                name,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("\"{}\" does not exist", Escaped(prefix(i))),
                ),
            ),
            WalkError::Io(i, errno) => self.unpack_error(
                name,
                io::Error::new(
                    io::Error::from(errno).kind(),
                    format!("opening \"{}\": {errno}", Escaped(prefix(i))),
                ),
            ),
        }
    }

    /// Makes (or keeps) the directory; returns what `finish` applies to it
    /// and its descriptor.
    fn directory(
        &self,
        parent: BorrowedFd<'_>,
        last: &OsStr,
        components: &[OsString],
        name: &str,
        meta: &Meta,
    ) -> Result<(DirMeta, OwnedFd)> {
        let io = |e: Errno| self.unpack_error(name, e.into());
        if !clear_slot(parent, last, true).map_err(io)? {
            mkdirat(Some(parent.as_raw_fd()), last, Mode::from_bits_truncate(0o755)).map_err(io)?;
        }
        let dir = open_dir(Some(parent), last).map_err(io)?;
        self.chown_fd(dir.as_fd(), meta, name)?;
        self.set_xattrs(dir.as_fd(), meta, name)?;
        let applied = DirMeta {
            components: components.to_vec(),
            mode: meta.mode,
            mtime: meta.mtime,
        };
        Ok((applied, dir))
    }

    fn regular<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        last: &OsStr,
        name: &str,
        meta: &Meta,
    ) -> Result<()> {
        let io = |e: Errno| self.unpack_error(name, e.into());
        clear_slot(parent, last, false).map_err(io)?;
        let fd = openat(
            Some(parent.as_raw_fd()),
            last,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io)?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        self.copy(entry, &mut file, name)?;
        // chown before chmod: chown clears the set-user-ID and set-group-ID bits.
        self.chown_fd(file.as_fd(), meta, name)?;
        fchmod(file.as_raw_fd(), Mode::from_bits_truncate(meta.mode)).map_err(io)?;
        // After chown, which clears security.capability.
        self.set_xattrs(file.as_fd(), meta, name)?;
        futimens(file.as_raw_fd(), &meta.mtime, &meta.mtime).map_err(io)?;
        Ok(())
    }

    /// Copies an entry's data, telling a broken archive (read side) from a
    /// failing disk (write side), and checks that all of it was there.
    fn copy<R: Read>(&self, entry: &mut tar::Entry<'_, R>, to: &mut File, name: &str) -> Result<()> {
        let expected = entry.size();
        let mut copied = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(malformed(self.source, e)),
            };
            to.write_all(&buf[..n]).map_err(|e| self.unpack_error(name, e))?;
            copied += n as u64;
        }
        if copied != expected {
            let message = format!(
                "entry \"{}\" ends after {copied} of its {expected} bytes",
                Escaped(name)
            );
            return Err(malformed(
                self.source,
                io::Error::new(io::ErrorKind::UnexpectedEof, message),
            ));
        }
        Ok(())
    }

    fn symlink<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        last: &OsStr,
        name: &str,
        meta: &Meta,
    ) -> Result<()> {
        let io = |e: Errno| self.unpack_error(name, e.into());
        let target = entry.link_name_bytes().unwrap_or_default();
        if target.is_empty() {
            return Err(self.unpack_error(
                name,
                io::Error::new(io::ErrorKind::InvalidData, "symlink has an empty target"),
            ));
        }
        clear_slot(parent, last, false).map_err(io)?;
        symlinkat(OsStr::from_bytes(&target), Some(parent.as_raw_fd()), last).map_err(io)?;
        self.chown_at(parent, last, meta, name)?;
        utimensat(
            Some(parent.as_raw_fd()),
            last,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io)?;
        Ok(())
    }

    fn hardlink<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        last: &OsStr,
        components: &[OsString],
        name: &str,
    ) -> Result<()> {
        let raw_target = entry.link_name_bytes().unwrap_or_default().into_owned();
        let target = String::from_utf8_lossy(&raw_target).into_owned();
        // Absolute targets are refused rather than taken as relative to the
        // layer root: writers strip the leading `/`, so one left there is a
        // deliberate attempt at the host's files.
        let target_components = clean_path(&raw_target).map_err(|_| ImageError::HardlinkEscapes {
            path: self.source.to_path_buf(),
            entry: name.to_owned(),
            target: target.clone(),
        })?;
        let not_a_file = || ImageError::HardlinkTarget {
            path: self.source.to_path_buf(),
            entry: name.to_owned(),
            target: target.clone(),
        };
        let Some((target_last, target_parents)) = target_components.split_last() else {
            return Err(not_a_file());
        };
        let target_parent = walk(self.root.as_fd(), target_parents, false).map_err(|e| match e {
            WalkError::Missing(_) | WalkError::NotDir(_) => not_a_file(),
            other => self.walk_error(other, target_parents, name),
        })?;
        match fstatat(
            Some(target_parent.as_raw_fd()),
            target_last.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) if (stat.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR.bits() => {}
            Ok(_) | Err(Errno::ENOENT) => return Err(not_a_file()),
            Err(e) => return Err(self.unpack_error(name, e.into())),
        }
        if target_components == components {
            // A link to itself: the file is already there.
            return Ok(());
        }
        let io = |e: Errno| self.unpack_error(name, e.into());
        clear_slot(parent, last, false).map_err(io)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself,
        // which lives inside the layer, never what it points at.
        linkat(
            Some(target_parent.as_raw_fd()),
            target_last.as_os_str(),
            Some(parent.as_raw_fd()),
            last,
            AtFlags::empty(),
        )
        .map_err(io)?;
        Ok(())
    }

    fn device<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        last: &OsStr,
        name: &str,
        meta: &Meta,
        kind: EntryType,
    ) -> Result<()> {
        let io = |e: Errno| self.unpack_error(name, e.into());
        // Device numbers only mean something for devices; writers often
        // leave them blank for fifos.
        let (sflag, dev) = match kind {
            EntryType::Char | EntryType::Block => {
                let header = entry.header();
                let major = header.device_major().map_err(|e| self.unpack_error(name, e))?;
                let minor = header.device_minor().map_err(|e| self.unpack_error(name, e))?;
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (sflag, device(major, minor))
            }
            _ => (SFlag::S_IFIFO, 0),
        };
        clear_slot(parent, last, false).map_err(io)?;
        match mknodat(
            Some(parent.as_raw_fd()),
            last,
            sflag,
            Mode::from_bits_truncate(0o600),
            dev,
        ) {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                tracing::warn!(
                    archive = %self.source.display(),
                    entry = name,
                    "skipping device node: creating it is not permitted here"
                );
                return Ok(());
            }
            Err(e) => return Err(io(e)),
        }
        self.chown_at(parent, last, meta, name)?;
        // The node was just made in a directory only this process writes to,
        // so following a symlink here cannot happen (and fchmodat has no
        // working no-follow mode on Linux).
        fchmodat(
            Some(parent.as_raw_fd()),
            last,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(io)?;
        utimensat(
            Some(parent.as_raw_fd()),
            last,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io)?;
        Ok(())
    }

    /// Converts an OCI/AUFS whiteout to its overlayfs form.
    fn whiteout(&self, parent: BorrowedFd<'_>, last: &OsStr, name: &str, meta: &Meta) -> Result<()> {
        let bytes = last.as_bytes();
        let refuse = |reason: String| ImageError::Whiteout {
            path: self.source.to_path_buf(),
            entry: name.to_owned(),
            reason,
        };
        if bytes == WHITEOUT_OPAQUE {
            return set_opaque(parent)
                .map_err(|e| refuse(format!("setting trusted.overlay.opaque on its directory: {e}")));
        }
        if bytes.starts_with(WHITEOUT_META_PREFIX) {
            return Err(ImageError::UnsupportedEntry {
                path: self.source.to_path_buf(),
                entry: name.to_owned(),
                kind: "AUFS metadata".to_owned(),
            });
        }
        let hidden = &bytes[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(refuse("it names no file".to_owned()));
        }
        let hidden = OsStr::from_bytes(hidden);
        clear_slot(parent, hidden, false).map_err(|e| self.unpack_error(name, e.into()))?;
        mknodat(
            Some(parent.as_raw_fd()),
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|e| refuse(format!("creating the 0/0 character device: {e}")))?;
        self.chown_at(parent, hidden, meta, name)
    }

    /// Sets the kept extended attributes on an open file or directory. Where
    /// the filesystem or privileges do not allow one (`EPERM`, `ENOTSUP`), it
    /// is skipped with a warning, as device nodes are.
    fn set_xattrs(&self, fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<()> {
        for (attr, value) in &meta.xattrs {
            // SAFETY: `attr` is NUL-terminated; `value` points to value.len()
            // readable bytes; fsetxattr only reads both.
            let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), attr.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EPERM | libc::ENOTSUP | libc::EACCES) => tracing::warn!(
                        entry = %Escaped(name),
                        attr = %Escaped(attr.to_string_lossy()),
                        "cannot set extended attribute here ({e}); skipped"
                    ),
                    _ => return Err(self.unpack_error(name, e)),
                }
            }
        }
        Ok(())
    }

    fn chown_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<()> {
        if self.ownership == Ownership::Ignore {
            return Ok(());
        }
        let (uid, gid) = self.ids(meta, name)?;
        fchown(fd.as_raw_fd(), Some(uid), Some(gid)).map_err(|e| self.unpack_error(name, e.into()))
    }

    /// `lchown` relative to `parent`.
    fn chown_at(&self, parent: BorrowedFd<'_>, last: &OsStr, meta: &Meta, name: &str) -> Result<()> {
        if self.ownership == Ownership::Ignore {
            return Ok(());
        }
        let (uid, gid) = self.ids(meta, name)?;
        fchownat(
            Some(parent.as_raw_fd()),
            last,
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.unpack_error(name, e.into()))
    }

    fn ids(&self, meta: &Meta, name: &str) -> Result<(Uid, Gid)> {
        let out_of_range = || {
            self.unpack_error(
                name,
                io::Error::new(io::ErrorKind::InvalidData, "uid or gid out of range"),
            )
        };
        let uid = u32::try_from(meta.uid).map_err(|_| out_of_range())?;
        let gid = u32::try_from(meta.gid).map_err(|_| out_of_range())?;
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    }

    /// The directory `components` (not created), through the open ones; its
    /// raw descriptor stays owned by `self.open` (or is the root's).
    fn reopen(&mut self, components: &[OsString]) -> std::result::Result<i32, WalkError> {
        self.descend(components, false)?;
        Ok(self.open.last().map_or(self.root.as_raw_fd(), |(_, fd)| fd.as_raw_fd()))
    }

    /// Applies directory modes and mtimes, deepest first, then the root's.
    fn finish(mut self) -> Result<()> {
        // Reverse path order puts every directory before its parent (a
        // prefix sorts first) and keeps a subtree together, so the walks
        // reuse the open directories. Stable: for the same directory listed
        // twice, the later entry is applied last and wins, as with any other.
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.components.cmp(&a.components));
        for dir in &dirs {
            let name = if dir.components.is_empty() {
                ".".to_owned()
            } else {
                join(&dir.components)
            };
            let fd = match self.reopen(&dir.components) {
                Ok(fd) => fd,
                // A later entry replaced the directory; nothing to apply.
                Err(WalkError::Symlink(_) | WalkError::NotDir(_) | WalkError::Missing(_)) => continue,
                Err(e) => return Err(self.walk_error(e, &dir.components, &name)),
            };
            let io = |e: Errno| self.unpack_error(&name, e.into());
            fchmod(fd, Mode::from_bits_truncate(dir.mode)).map_err(io)?;
            futimens(fd, &dir.mtime, &dir.mtime).map_err(io)?;
        }
        if !self.root_seen {
            fchmod(self.root.as_raw_fd(), Mode::from_bits_truncate(0o755))
                .map_err(|e| self.unpack_error(".", e.into()))?;
        }
        Ok(())
    }

    fn unsupported(&self, name: &str, kind: EntryType) -> ImageError {
        ImageError::UnsupportedEntry {
            path: self.source.to_path_buf(),
            entry: name.to_owned(),
            kind: format!("{kind:?}"),
        }
    }

    fn unpack_error(&self, name: &str, source: io::Error) -> ImageError {
        ImageError::Unpack {
            path: self.source.to_path_buf(),
            entry: name.to_owned(),
            source,
        }
    }
}

fn device(major: Option<u32>, minor: Option<u32>) -> u64 {
    makedev(u64::from(major.unwrap_or(0)), u64::from(minor.unwrap_or(0)))
}

/// Why a member name cannot be placed below the root.
#[derive(Debug, PartialEq, Eq)]
enum PathProblem {
    Absolute,
    Escapes,
}

/// Lexically cleans a member name: drops empty and `.` components, resolves
/// `..` against the components before it. Refuses absolute names and names
/// whose `..` climbs above the root. No file system access: symlinks are the
/// walk's business.
fn clean_path(raw: &[u8]) -> std::result::Result<Vec<OsString>, PathProblem> {
    if raw.first() == Some(&b'/') {
        return Err(PathProblem::Absolute);
    }
    let mut components: Vec<OsString> = Vec::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    return Err(PathProblem::Escapes);
                }
            }
            _ => components.push(OsStr::from_bytes(component).to_owned()),
        }
    }
    Ok(components)
}

fn join(components: &[OsString]) -> String {
    let bytes: Vec<u8> = components.iter().map(|c| c.as_bytes()).collect::<Vec<_>>().join(&b'/');
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens a directory without following a symlink in the last component.
fn open_dir<P: ?Sized + nix::NixPath>(dir: Option<BorrowedFd<'_>>, path: &P) -> nix::Result<OwnedFd> {
    let fd = openat(
        dir.map(|d| d.as_raw_fd()),
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn walk(root: BorrowedFd<'_>, components: &[OsString], create: bool) -> std::result::Result<OwnedFd, WalkError> {
    let mut current = root
        .try_clone_to_owned()
        .map_err(|e| WalkError::Io(0, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    for (i, component) in components.iter().enumerate() {
        current = step(current.as_fd(), component, create, i)?;
    }
    Ok(current)
}

/// Opens directory `component` (component `i` of a walk) in `current`,
/// never following a symlink; made first when missing and `create` is set.
fn step(current: BorrowedFd<'_>, component: &OsStr, create: bool, i: usize) -> std::result::Result<OwnedFd, WalkError> {
    let next = match open_dir(Some(current), component) {
        Err(Errno::ENOENT) if create => {
            match mkdirat(Some(current.as_raw_fd()), component, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(WalkError::Io(i, e)),
            }
            let fd = open_dir(Some(current), component);
            if let Ok(fd) = &fd {
                // mkdirat's mode is filtered by the umask.
                fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755)).map_err(|e| WalkError::Io(i, e))?;
            }
            fd
        }
        other => other,
    };
    match next {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => Err(WalkError::Missing(i)),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Err(
            match fstatat(Some(current.as_raw_fd()), component, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) if (stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK.bits() => WalkError::Symlink(i),
                Ok(_) => WalkError::NotDir(i),
                Err(e) => WalkError::Io(i, e),
            },
        ),
        Err(e) => Err(WalkError::Io(i, e)),
    }
}

/// Makes room for a new entry named `name` in `parent`: a non-directory there
/// is unlinked (a later archive member replaces an earlier one, as GNU tar
/// does), an empty directory is removed unless a directory is wanted.
/// Returns whether a directory was kept.
fn clear_slot(parent: BorrowedFd<'_>, name: &OsStr, want_dir: bool) -> nix::Result<bool> {
    let stat = match fstatat(Some(parent.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    let is_dir = (stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR.bits();
    if is_dir && want_dir {
        return Ok(true);
    }
    let flag = if is_dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    unlinkat(Some(parent.as_raw_fd()), name, flag)?;
    Ok(false)
}

/// Marks a directory opaque for overlayfs (it hides the lower layers' content).
fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    const NAME: &std::ffi::CStr = c"trusted.overlay.opaque";
    const VALUE: &[u8] = b"y";
    // SAFETY: `dir` is a valid open descriptor, NAME is NUL-terminated, and
    // VALUE points to VALUE.len() readable bytes; fsetxattr only reads them.
    let rc = unsafe { libc::fsetxattr(dir.as_raw_fd(), NAME.as_ptr(), VALUE.as_ptr().cast(), VALUE.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative).
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Sub-second precision only for times after the epoch; before it the
    // sign handling is not worth the code.
    let nanos = if secs >= 0 && !fraction.is_empty() {
        let digits: String = fraction.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse().ok()?
    } else {
        0
    };
    Some(TimeSpec::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> std::result::Result<Vec<String>, PathProblem> {
        clean_path(s.as_bytes()).map(|c| c.into_iter().map(|c| c.into_string().expect("utf-8")).collect())
    }

    #[test]
    fn clean_path_drops_dots_and_empty_components() {
        assert_eq!(clean("./etc//passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(clean("./").unwrap(), Vec::<String>::new());
        assert_eq!(clean("usr/lib/").unwrap(), ["usr", "lib"]);
    }

    #[test]
    fn clean_path_resolves_dot_dot_that_stays_inside() {
        assert_eq!(clean("a/b/../c").unwrap(), ["a", "c"]);
        assert_eq!(clean("a/..").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn clean_path_refuses_dot_dot_that_leaves_the_root() {
        assert_eq!(clean("../evil"), Err(PathProblem::Escapes));
        assert_eq!(clean("a/../../evil"), Err(PathProblem::Escapes));
        assert_eq!(clean("./.."), Err(PathProblem::Escapes));
    }

    #[test]
    fn clean_path_refuses_absolute_names() {
        assert_eq!(clean("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(clean("//x"), Err(PathProblem::Absolute));
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (42, 0));
        assert!(parse_pax_time(b"x").is_none());
    }
}
