//! `cp` between a running container's filesystem and the host. The
//! container's root is reached as `/proc/<init>/root` (its overlay is
//! mounted only in its shim's mount namespace), and every path inside it is
//! resolved with `openat2(RESOLVE_IN_ROOT)`: `..` and symlinks, absolute or
//! relative, are resolved as if that directory were `/`, so no path can
//! lead out of the container. Entries are created with `*at` calls on
//! directory fds, never by path; symlinks are copied as symlinks, never
//! followed. The host side is the caller's own (it has the daemon's socket).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Opens `path` inside the root `root` (a directory fd), never leaving it.
fn open_in_root(root: &OwnedFd, path: &Path, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a zeroed open_how is valid (no flags); the fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the path and the open_how we own and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The text of a regular file in a running container (`/etc/passwd`), read
/// as `cp` reads: resolved inside the container's root, so no symlink or
/// `..` leads out of it. At most `limit` bytes.
pub fn read_file(init_pid: i32, inside: &Path, limit: u64) -> io::Result<String> {
    use std::io::Read;
    let root = root_of(init_pid)?;
    let fd = open_in_root(&root, inside, libc::O_RDONLY | libc::O_NONBLOCK, libc::RESOLVE_IN_ROOT)
        .map_err(context("open", inside))?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", inside.display()),
        ));
    }
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text)?;
    Ok(text)
}

fn root_of(init_pid: i32) -> io::Result<OwnedFd> {
    let f = File::open(format!("/proc/{init_pid}/root"))?;
    Ok(OwnedFd::from(f))
}

fn context<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    let what = what.to_string();
    move |e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Copies `inside` (a file, directory or symlink in the container) to the
/// host path `to`. As `docker cp`: when `to` is an existing directory the
/// entry goes into it under its own name.
pub fn copy_out(init_pid: i32, inside: &Path, to: &Path) -> io::Result<u64> {
    let root = root_of(init_pid)?;
    // The last component is not followed: a symlink is copied as one.
    let (parent, name) = split(inside)?;
    let dir = open_in_root(&root, &parent, libc::O_PATH | libc::O_DIRECTORY, libc::RESOLVE_IN_ROOT)
        .map_err(context("in the container:", inside))?;
    let target = if to.is_dir() { to.join(&name) } else { to.to_path_buf() };
    copy_out_entry(&dir, &name, &target).map_err(context("in the container:", inside))
}

fn split(inside: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let mut parts: Vec<Component> = inside.components().collect();
    match parts.pop() {
        Some(Component::Normal(name)) => {
            let parent: PathBuf = parts.iter().collect();
            Ok((
                if parent.as_os_str().is_empty() {
                    PathBuf::from("/")
                } else {
                    parent
                },
                PathBuf::from(name),
            ))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: name a file or directory, not / or ..", inside.display()),
        )),
    }
}

fn stat_at(dir: &OwnedFd, name: &Path) -> io::Result<libc::stat> {
    let c = CString::new(name.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a zeroed stat is valid; fstatat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat reads the name and writes the stat we own.
    if unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Opens `name` right under `dir`: no symlink, no `..`.
fn open_beneath(dir: &OwnedFd, name: &Path, flags: i32) -> io::Result<OwnedFd> {
    open_in_root(dir, name, flags, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS)
}

fn copy_out_entry(dir: &OwnedFd, name: &Path, to: &Path) -> io::Result<u64> {
    let st = stat_at(dir, name)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let mut src = File::from(open_beneath(dir, name, libc::O_RDONLY)?);
            let mut dst = File::create(to).map_err(context("create", to))?;
            let n = io::copy(&mut src, &mut dst)?;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(st.st_mode & 0o7777))?;
            Ok(n)
        }
        libc::S_IFDIR => {
            let sub = open_beneath(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            std::fs::create_dir_all(to).map_err(context("create", to))?;
            let mut total = 0;
            let entries = std::fs::read_dir(format!("/proc/self/fd/{}", sub.as_raw_fd()))?;
            for e in entries {
                let e = e?;
                total += copy_out_entry(&sub, Path::new(&e.file_name()), &to.join(e.file_name()))?;
            }
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(st.st_mode & 0o7777))?;
            Ok(total)
        }
        libc::S_IFLNK => {
            let c =
                CString::new(name.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let mut buf = vec![0u8; 4096];
            // SAFETY: readlinkat writes at most buf.len() bytes into buf.
            let n = unsafe { libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            buf.truncate(n as usize);
            let _ = std::fs::remove_file(to);
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&buf), to).map_err(context("create", to))?;
            Ok(0)
        }
        // Devices, fifos and sockets are not copied, as Docker's tar skips them.
        _ => Ok(0),
    }
}

/// Copies the host path `from` into the container at `inside`. As `docker
/// cp`: when `inside` is an existing directory the entry goes into it under
/// its own name.
pub fn copy_in(init_pid: i32, from: &Path, inside: &Path) -> io::Result<u64> {
    let root = root_of(init_pid)?;
    let meta = std::fs::symlink_metadata(from).map_err(context("read", from))?;
    let into_dir = open_in_root(&root, inside, libc::O_PATH | libc::O_DIRECTORY, libc::RESOLVE_IN_ROOT);
    let (dir, name) = match into_dir {
        Ok(dir) => {
            let name = from
                .file_name()
                .map(PathBuf::from)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: no name", from.display())))?;
            (dir, name)
        }
        Err(_) => {
            let (parent, name) = split(inside)?;
            let dir = open_in_root(&root, &parent, libc::O_PATH | libc::O_DIRECTORY, libc::RESOLVE_IN_ROOT)
                .map_err(context("in the container:", &parent))?;
            (dir, name)
        }
    };
    copy_in_entry(from, &meta, &dir, &name).map_err(context("in the container:", inside))
}

fn cname(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn copy_in_entry(from: &Path, meta: &std::fs::Metadata, dir: &OwnedFd, name: &Path) -> io::Result<u64> {
    let c = cname(name)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(from)?;
        let t = cname(&target)?;
        // SAFETY: unlinkat/symlinkat read the names we pass.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
        // SAFETY: as above.
        if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(0);
    }
    if ft.is_dir() {
        // SAFETY: mkdirat reads the name we pass.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), meta.mode() & 0o7777) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        let sub = open_beneath(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let mut total = 0;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let m = std::fs::symlink_metadata(e.path())?;
            total += copy_in_entry(&e.path(), &m, &sub, Path::new(&e.file_name()))?;
        }
        return Ok(total);
    }
    if ft.is_file() {
        // SAFETY: openat reads the name; O_NOFOLLOW refuses a symlink planted at it.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                meta.mode() & 0o7777,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        let mut dst = unsafe { File::from_raw_fd(fd) };
        let mut src = File::open(from)?;
        return io::copy(&mut src, &mut dst);
    }
    Ok(0)
}
