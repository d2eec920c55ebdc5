//! User namespaces: a container whose root is an unprivileged range of the
//! host's uids and gids.
//!
//! The image's files stay as they are on disk (owned by 0). The shim mounts
//! the image store through an idmapped mount (`mount_setattr` with
//! `MOUNT_ATTR_IDMAP`) that shows on-disk 0 as the range's first id, and
//! stacks the overlay on it, so inside the container the image's files
//! belong to its root. The overlay itself cannot be idmapped on this
//! kernel (EINVAL), and an idmapped upper dir fails the overlay's own
//! writes as the host's root (EOVERFLOW), so the upper dir is a plain
//! directory owned by the range: what the container writes is stored with
//! the range's ids, as Docker's userns-remap stores it.
//!
//! Ranges come from `/etc/subuid` and `/etc/subgid`. `auto` gives each
//! container a distinct slice of the `containers` user's entry (as podman's
//! `--userns=auto`); a daemon-wide remap gives every container the same
//! range (as Docker's `--userns-remap`). A container keeps its range for
//! its life (its upper dir is owned by it): the range is recorded in its data
//! dir and reused by every later start.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The user whose subordinate ids `auto` slices up (podman's choice).
pub const AUTO_USER: &str = "containers";
/// Ids per `auto` container: every 16-bit id (nobody, 65534, included).
pub const AUTO_SIZE: u32 = 65536;

/// Container ids `0..size` are host ids `uid..uid+size` and `gid..gid+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdRange {
    /// `uid_map`/`gid_map` lines.
    pub fn uid_map(&self) -> String {
        format!("0 {} {}\n", self.uid, self.size)
    }
    pub fn gid_map(&self) -> String {
        format!("0 {} {}\n", self.gid, self.size)
    }
    fn overlaps(&self, other: &IdRange) -> bool {
        let apart =
            |a: u32, b: u32| a as u64 + self.size as u64 <= b as u64 || b as u64 + other.size as u64 <= a as u64;
        !(apart(self.uid, other.uid) && apart(self.gid, other.gid))
    }
}

/// Which user namespace a container gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsernsMode {
    /// The daemon's choice: its remap range if it has one, else the host's.
    #[default]
    Daemon,
    /// The host's: container root is host root (Docker's default).
    Host,
    /// A slice of its own from [`AUTO_USER`]'s subordinate ids.
    Auto,
    /// This range (a daemon-wide remap).
    Range(IdRange),
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error(
        "user namespaces need a range of subordinate ids for user {user} in /etc/subuid and /etc/subgid \
         (e.g. the line `{user}:2147483647:2147483648` in both): {why}"
    )]
    NoSubordinateIds { user: String, why: String },
    #[error("every {size}-id slice of {user}'s subordinate ids is taken by another container")]
    Exhausted { user: String, size: u32 },
    #[error("{action}: {source}")]
    Io { action: String, source: std::io::Error },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> UsernsError {
    let action = action.into();
    move |source| UsernsError::Io { action, source }
}

/// A user's first subordinate entry in a `/etc/subuid`-style text: `(start,
/// count)`. Lines name the user or its uid.
pub fn parse_subordinate(text: &str, user: &str, uid: Option<u32>) -> Option<Subordinate> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (name, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        let named = name == user || uid.is_some_and(|u| name == u.to_string());
        if !named || parts.next().is_some() {
            return None;
        }
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        // The range must fit below u32::MAX (4294967295 is "no id").
        (count > 0 && start as u64 + count as u64 <= u32::MAX as u64).then_some((start, count))
    })
}

/// A subordinate range: first id and count.
pub type Subordinate = (u32, u32);

/// `user`'s subordinate uids and gids, as read from `/etc`.
pub fn subordinate_ids(user: &str) -> Result<(Subordinate, Subordinate), UsernsError> {
    let read = |path: &str| {
        fs::read_to_string(path).map_err(|e| UsernsError::NoSubordinateIds {
            user: user.to_string(),
            why: format!("{path}: {e}"),
        })
    };
    let uid = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    let find = |path: &str| -> Result<Subordinate, UsernsError> {
        parse_subordinate(&read(path)?, user, uid).ok_or_else(|| UsernsError::NoSubordinateIds {
            user: user.to_string(),
            why: format!("{path} has no entry for it"),
        })
    };
    Ok((find("/etc/subuid")?, find("/etc/subgid")?))
}

/// The range of a daemon-wide remap: `default` is the first [`AUTO_SIZE`]
/// ids of [`AUTO_USER`]'s entries, another name all of that user's first
/// entries (the smaller of the two counts).
pub fn remap_range(user: &str) -> Result<IdRange, UsernsError> {
    let (name, whole) = match user {
        "default" => (AUTO_USER, false),
        other => (other, true),
    };
    let (uids, gids) = subordinate_ids(name)?;
    let size = if whole {
        uids.1.min(gids.1)
    } else {
        AUTO_SIZE.min(uids.1).min(gids.1)
    };
    Ok(IdRange {
        uid: uids.0,
        gid: gids.0,
        size,
    })
}

/// The first `size`-id slice of the subordinate ranges that overlaps none of
/// `taken`.
pub fn first_free(uids: Subordinate, gids: Subordinate, size: u32, taken: &[IdRange]) -> Option<IdRange> {
    let slots = (uids.1 / size).min(gids.1 / size);
    (0..slots)
        .map(|i| IdRange {
            uid: uids.0 + i * size,
            gid: gids.0 + i * size,
            size,
        })
        .find(|candidate| !taken.iter().any(|t| t.overlaps(candidate)))
}

/// A user namespace with `range`'s mapping, held by the returned fd: what
/// `mount_setattr` needs to idmap a mount. A child process unshares it and
/// waits while we write its maps and open it, then exits; the namespace
/// lives on through the fd.
pub fn namespace_fd(range: &IdRange) -> Result<OwnedFd, UsernsError> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| io("pipe")(e.into()))?;
    let (done_r, done_w) = nix::unistd::pipe().map_err(|e| io("pipe")(e.into()))?;
    // SAFETY: the child only calls async-signal-safe functions (unshare,
    // write, read, _exit) before it exits; the caller is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| io("fork")(e.into()))? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            // SAFETY: plain syscalls on fds this process owns; _exit never returns.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                libc::write(ready_w.as_raw_fd(), [ok as u8].as_ptr().cast(), 1);
                let mut b = [0u8; 1];
                libc::read(done_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let result = (|| {
                let mut b = [0u8; 1];
                let n = nix::unistd::read(ready_r.as_raw_fd(), &mut b).map_err(|e| io("read")(e.into()))?;
                if n != 1 || b[0] != 1 {
                    return Err(io("unshare(CLONE_NEWUSER)")(std::io::Error::other("refused")));
                }
                let proc = format!("/proc/{child}");
                fs::write(format!("{proc}/uid_map"), range.uid_map()).map_err(io(format!("write {proc}/uid_map")))?;
                fs::write(format!("{proc}/gid_map"), range.gid_map()).map_err(io(format!("write {proc}/gid_map")))?;
                let ns = fs::File::open(format!("{proc}/ns/user")).map_err(io(format!("open {proc}/ns/user")))?;
                Ok(OwnedFd::from(ns))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Mounts `source` again at `target`, read-only and with its ids shifted by
/// `userns`'s mapping (on-disk 0 shows as the range's first id).
pub fn mount_idmapped(source: &Path, target: &Path, userns: BorrowedFd) -> Result<(), UsernsError> {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| io("path")(e.into()));
    let (src, dst) = (c(source)?, c(target)?);
    // SAFETY: open_tree with a valid C string; the result is checked and owned.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if raw < 0 {
        return Err(io(format!("open_tree {}", source.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on the detached tree we own, with a struct of the
    // size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io(format!("idmap {}", source.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: move_mount of the tree we own onto a C-string path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io(format!("mount {} at {}", source.display(), target.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The range recorded for a container, if it has one.
pub fn recorded(file: &Path) -> Option<IdRange> {
    serde_json::from_slice(&fs::read(file).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_entries_are_found_by_name_or_uid_and_bounded() {
        let text =
            "root:100000:65536\ncontainers:2147483647:2147483648\n1000:300000:65536\nbad:1:2:3\nhuge:4294967000:1000\n";
        assert_eq!(
            parse_subordinate(text, "containers", None),
            Some((2147483647, 2147483648))
        );
        assert_eq!(parse_subordinate(text, "alice", Some(1000)), Some((300000, 65536)));
        assert_eq!(parse_subordinate(text, "nobody", None), None);
        assert_eq!(parse_subordinate(text, "bad", None), None);
        assert_eq!(parse_subordinate(text, "huge", None), None, "past the last id");
    }

    #[test]
    fn auto_slices_do_not_overlap_the_taken_ones() {
        let taken = [
            IdRange {
                uid: 100000,
                gid: 100000,
                size: 65536,
            },
            IdRange {
                uid: 100000 + 2 * 65536,
                gid: 100000 + 2 * 65536,
                size: 65536,
            },
        ];
        let got = first_free((100000, 4 * 65536), (100000, 4 * 65536), 65536, &taken).unwrap();
        assert_eq!(got.uid, 100000 + 65536);
        let all = [
            taken[0],
            got,
            taken[1],
            IdRange {
                uid: 100000 + 3 * 65536,
                gid: 100000 + 3 * 65536,
                size: 65536,
            },
        ];
        assert_eq!(first_free((100000, 4 * 65536), (100000, 4 * 65536), 65536, &all), None);
        // A remap range sitting across two slices takes both.
        let remap = [IdRange {
            uid: 100000 + 1000,
            gid: 100000 + 1000,
            size: 65536,
        }];
        assert_eq!(
            first_free((100000, 4 * 65536), (100000, 4 * 65536), 65536, &remap)
                .unwrap()
                .uid,
            100000 + 2 * 65536
        );
    }

    #[test]
    fn maps_put_container_root_at_the_start_of_the_range() {
        let r = IdRange {
            uid: 200000,
            gid: 300000,
            size: 65536,
        };
        assert_eq!(r.uid_map(), "0 200000 65536\n");
        assert_eq!(r.gid_map(), "0 300000 65536\n");
    }
}
