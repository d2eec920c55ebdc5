//! The exec zygote: `berth exec-zygote`, one single-threaded process per
//! daemon, started from the sealed executable on the first exec. It forks
//! one exec shim ([`super::exec::main`]) per exec and health check.
//!
//! Why: spawning the exec shim anew (exec of the 35 MB binary, dynamic
//! linking, ~49,000 relocations, ~500 page faults) was about 2 ms of an
//! exec's 10; a fork of the idle zygote is a tenth of that. The zygote is
//! started from the sealed memfd ([`super::sealed`]), so a forked shim's
//! `/proc/<pid>/exe` is that copy, as a spawned shim's was, and it stays
//! single-threaded, which libcontainer's build() needs (notes/libcontainer.md §2).
//!
//! Protocol, over a `SOCK_SEQPACKET` socketpair (fd [`SOCKET_FD`] in the
//! zygote): each message is one exec shim's config (`exec::ExecConfig`,
//! JSON) with its fds attached (`SCM_RIGHTS`) in slot order: stdin, stdout,
//! stderr, the report pipe, and the pty socket when there is one. There is
//! no answer: the shim reports on its report pipe, and a request that cannot
//! be served (a failed fork, a config that does not parse) closes its fds,
//! which the daemon reads as a shim that ended without a report. The zygote
//! exits when the daemon's end closes, so it never outlives the daemon; the
//! shims it forked do, as containers do.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The zygote's end of the socketpair.
pub const SOCKET_FD: RawFd = 3;

/// The largest request (an exec's command, environment and paths, as JSON).
pub const MAX_REQUEST: usize = 1 << 20;

/// stdin, stdout, stderr, report pipe, pty socket.
const MAX_FDS: usize = 5;

/// Entry point of `berth exec-zygote`. Returns when the daemon is gone.
pub fn main() -> i32 {
    // SAFETY: PR_SET_NAME reads a nul-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-zygote".as_ptr()) };
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] {
        std::env::remove_var(var);
    }
    // What every shim would read alike is read once, here.
    super::cgroup::warm();
    // The kernel reaps the shims: the zygote never waits for one.
    // SAFETY: setting a signal disposition in a single-threaded process.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let _ = nix::fcntl::fcntl(SOCKET_FD, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut prepared = Prepared::default();
    loop {
        let (len, fds, truncated) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
            let msg = match recvmsg::<()>(SOCKET_FD, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return 1,
            };
            let mut fds = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: the kernel just installed these fds for us.
                        fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
            }
            let truncated = msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
            (msg.bytes, fds, truncated)
        };
        if len == 0 && fds.is_empty() {
            return 0; // the daemon closed its end
        }
        if truncated || fds.len() < 4 {
            continue; // dropping the fds tells the daemon
        }
        let Ok(cfg) = serde_json::from_slice::<super::exec::ExecConfig>(&buf[..len]) else {
            continue;
        };
        let ready = prepared.get(&cfg.bundle);
        // SAFETY: this process is single-threaded, so the child may do
        // anything the parent could.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                let code = shim(fds, &cfg, ready);
                // SAFETY: ends the forked child without running the
                // zygote's exit handlers a second time.
                unsafe { libc::_exit(code) }
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) | Err(_) => drop(fds),
        }
    }
}

/// What the zygote has read of each container's bundle
/// ([`super::exec::prepare`]), kept while the bundle's config.json stays the
/// same file: parsing it cold took ~0.3 ms of every exec's shim.
#[derive(Default)]
struct Prepared {
    by_bundle: HashMap<PathBuf, (FileId, Result<Arc<super::exec::Prepared>, String>)>,
}

/// Which file a path is, and which version of it.
type FileId = (u64, u64, i64, i64, u64);

/// Bundles beyond this many are forgotten (those gone first).
const MAX_PREPARED: usize = 256;

impl Prepared {
    fn get(&mut self, bundle: &Path) -> Result<Arc<super::exec::Prepared>, String> {
        let id = match std::fs::metadata(bundle.join("config.json")) {
            Ok(m) => (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()),
            Err(e) => return Err(format!("cannot read the container's spec in {}: {e}", bundle.display())),
        };
        if let Some((known, ready)) = self.by_bundle.get(bundle) {
            if *known == id {
                return ready.clone();
            }
        }
        if self.by_bundle.len() >= MAX_PREPARED {
            self.by_bundle.retain(|path, _| path.exists());
            if self.by_bundle.len() >= MAX_PREPARED {
                self.by_bundle.clear();
            }
        }
        let ready = super::exec::prepare(bundle).map(Arc::new);
        // A failure is not kept: the next exec tries again.
        if ready.is_ok() {
            self.by_bundle.insert(bundle.to_path_buf(), (id, ready.clone()));
        }
        ready
    }
}

/// The forked child: puts its fds in their slots and runs the exec shim.
fn shim(fds: Vec<OwnedFd>, cfg: &super::exec::ExecConfig, ready: Result<Arc<super::exec::Prepared>, String>) -> i32 {
    // SAFETY: single-threaded; the shim waits for its own children, which
    // SIG_IGN would have the kernel reap first.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // SAFETY: the socket is the zygote's, and this child needs it no more.
    unsafe { libc::close(SOCKET_FD) };
    // Above the slots first, so that no dup2 onto a slot closes an fd that
    // is still to be placed.
    let mut high = Vec::with_capacity(fds.len());
    for fd in &fds {
        match nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)) {
            Ok(raw) => high.push(raw),
            Err(_) => return 1,
        }
    }
    drop(fds);
    for (slot, raw) in high.into_iter().enumerate() {
        // dup2 leaves the slot without FD_CLOEXEC; the shim sets what it must.
        // SAFETY: both fds are ours; `raw` is closed once placed.
        if unsafe { libc::dup2(raw, slot as RawFd) } < 0 {
            return 1;
        }
        // SAFETY: as above.
        unsafe { libc::close(raw) };
    }
    super::exec::main(cfg, ready)
}

/// The daemon's handle on its zygote.
#[derive(Debug)]
pub struct Zygote {
    socket: OwnedFd,
}

impl Zygote {
    /// Starts `exe exec-zygote`.
    pub fn spawn(exe: &std::path::Path) -> std::io::Result<Zygote> {
        use std::os::unix::process::CommandExt;
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        use nix::sys::socket::{setsockopt, sockopt};
        // A request is one message, so the buffer must hold the largest.
        // Best effort: without it, requests stay within the default size.
        let _ = setsockopt(&ours, sockopt::SndBufForce, &(2 * MAX_REQUEST));
        // A zygote that stopped reading must not stall the daemon's thread:
        // a send that waits this long fails, and another zygote is started.
        let _ = setsockopt(&ours, sockopt::SendTimeout, &nix::sys::time::TimeVal::new(2, 0));
        let raw = theirs.as_raw_fd();
        let mut cmd = std::process::Command::new(exe);
        cmd.arg0("berth-zygote")
            .arg("exec-zygote")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: the closure runs between fork and exec and only calls
        // dup2/fcntl, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if raw == SOCKET_FD {
                    let flags = libc::fcntl(raw, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, SOCKET_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Not waited for: the daemon's reaper takes its exit.
        cmd.spawn()?;
        Ok(Zygote { socket: ours })
    }

    /// Asks for one exec shim. An error means the zygote is gone.
    pub fn fork_shim(&self, request: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
        if request.len() > MAX_REQUEST {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the exec request is {} bytes, over the {MAX_REQUEST} allowed",
                    request.len()
                ),
            ));
        }
        let iov = [IoSlice::new(request)];
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }
}
