//! CVE-2019-5736 protection. Until the container's command is exec'd, the
//! init's /proc/<pid>/exe is the shim binary; an image whose entrypoint is
//! /proc/self/exe could open it for writing and replace berth on the host.
//! libcontainer does not guard against this (notes/libcontainer.md §6), so the
//! daemon copies its own binary once into a sealed memfd and starts every shim
//! from that copy: nothing can write to it, and the file on disk is never the
//! shim's executable.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// A sealed, read-only in-memory copy of the running executable.
#[derive(Debug)]
pub struct SealedExe {
    fd: OwnedFd,
}

impl SealedExe {
    pub fn new() -> io::Result<SealedExe> {
        let name = CString::new("berth-shim").expect("no interior nul");
        // SAFETY: a valid nul-terminated name and flags; returns a new fd or -1.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut src = File::open("/proc/self/exe")?;
        let mut dst = File::from(fd.try_clone()?);
        io::copy(&mut src, &mut dst)?;
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on an fd we own with an integer argument.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SealedExe { fd })
    }

    /// A path that execs the sealed copy. It goes through this process's fd
    /// table, so it stays valid while `self` lives; a shim that has exec'd it
    /// keeps its own reference.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd()))
    }
}

/// Whether the executable of `pid` is a sealed memfd that refuses writes.
pub fn exe_is_sealed(pid: i32) -> bool {
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/exe")) else {
        return false;
    };
    // SAFETY: fcntl F_GET_SEALS on an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}
