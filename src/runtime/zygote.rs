//! The zygote: `berth exec-zygote`, one single-threaded process per
//! daemon, started from the sealed executable on the first start or exec.
//! It forks one exec shim ([`super::exec::main`]) per exec and health
//! check, and one container shim ([`super::shim::main`]) per start.
//!
//! Why: spawning the exec shim anew (exec of the 35 MB binary, dynamic
//! linking, ~49,000 relocations, ~500 page faults) was about 2 ms of an
//! exec's 10; a fork of the idle zygote is a tenth of that. The zygote is
//! started from the sealed memfd ([`super::sealed`]), so a forked shim's
//! `/proc/<pid>/exe` is that copy, as a spawned shim's was, and it stays
//! single-threaded, which libcontainer's build() needs (notes/libcontainer.md §2).
//!
//! The same holds for a container's shim: its spawn (exec of the binary,
//! linking, the cgroup mounts read anew) was ~2 ms of a `run --rm`, and a
//! shim forked from the zygote finds the cgroup mounts read.
//!
//! Protocol, over a `SOCK_SEQPACKET` socketpair (fd [`SOCKET_FD`] in the
//! zygote): each message is one exec shim's config (`exec::ExecConfig`,
//! JSON) with its fds attached (`SCM_RIGHTS`) in slot order: stdin, stdout,
//! stderr, the report pipe, and the pty socket when there is one; or one
//! container shim's [`StartRequest`] with its stdin, stdout (the report
//! pipe) and stderr (its log). There is no answer: the shim reports on its report pipe, and a request that cannot
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

/// A container shim to fork: it runs `berth shim <shim>`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The shim's config (shim.json in the container's run dir).
    pub shim: PathBuf,
}

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
        if truncated || fds.len() < 3 {
            continue; // dropping the fds tells the daemon
        }
        if let Ok(start) = serde_json::from_slice::<StartRequest>(&buf[..len]) {
            if fds.len() != 3 {
                continue;
            }
            // SAFETY: this process is single-threaded, so the child may do
            // anything the parent could.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    let code = container_shim(fds, &start.shim);
                    // SAFETY: as for an exec shim below.
                    unsafe { libc::_exit(code) }
                }
                Ok(nix::unistd::ForkResult::Parent { .. }) | Err(_) => drop(fds),
            }
            continue;
        }
        if fds.len() < 4 {
            continue;
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
    if place(fds).is_err() {
        return 1;
    }
    super::exec::main(cfg, ready)
}

/// The forked child of a [`StartRequest`]: the container's shim, under the
/// command line a spawned one has (`berth-shim shim <shim.json>`), which is
/// how `ps`, the tests and bench/run tell one container's shim.
fn container_shim(fds: Vec<OwnedFd>, shim_json: &Path) -> i32 {
    if place(fds).is_err() {
        return 1;
    }
    let mut args = b"berth-shim\0shim\0".to_vec();
    args.extend_from_slice(shim_json.as_os_str().as_encoded_bytes());
    args.push(0);
    set_cmdline(&args);
    super::shim::main(shim_json)
}

/// Points this process's command line (/proc/self/cmdline) at `args`
/// (nul-separated, nul-terminated), in a mapping of its own that is never
/// freed. `PR_SET_MM_MAP` replaces the whole map of the process's memory
/// layout at once and, unlike the single-field `PR_SET_MM` calls, needs no
/// CAP_SYS_RESOURCE (which this kind of host withholds from root). Best
/// effort: the process works the same under the zygote's command line.
fn set_cmdline(args: &[u8]) {
    /// The kernel's `struct prctl_mm_map` (include/uapi/linux/prctl.h).
    #[repr(C)]
    struct MmMap {
        start_code: u64,
        end_code: u64,
        start_data: u64,
        end_data: u64,
        start_brk: u64,
        brk: u64,
        start_stack: u64,
        arg_start: u64,
        arg_end: u64,
        env_start: u64,
        env_end: u64,
        auxv: *mut u64,
        auxv_size: u32,
        exe_fd: u32,
    }
    // The layout as it is, from /proc/self/stat (fields 26-28, 45-51).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return;
    };
    // `rest` starts at field 3.
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    // SAFETY: a new private anonymous mapping; checked for failure below.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            args.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return;
    }
    // SAFETY: the mapping is args.len() bytes long and ours alone.
    unsafe { std::ptr::copy_nonoverlapping(args.as_ptr(), at.cast::<u8>(), args.len()) };
    // SAFETY: brk(0) only reports the current break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    let map = MmMap {
        start_code: field(26),
        end_code: field(27),
        start_data: field(45),
        end_data: field(46),
        start_brk: field(47),
        brk,
        start_stack: field(28),
        arg_start: at as u64,
        arg_end: at as u64 + args.len() as u64,
        env_start: field(50),
        env_end: field(51),
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: u32::MAX, // -1: the executable stays
    };
    // SAFETY: PR_SET_MM_MAP reads a prctl_mm_map of the given size; the
    // kernel checks every address against the process's own mappings.
    unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>(),
            0,
        )
    };
}

/// Puts a forked child's fds in their slots (0, 1, 2, ...), without the
/// zygote's socket and with SIGCHLD back to its default.
fn place(fds: Vec<OwnedFd>) -> Result<(), ()> {
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
            Err(_) => return Err(()),
        }
    }
    drop(fds);
    for (slot, raw) in high.into_iter().enumerate() {
        // dup2 leaves the slot without FD_CLOEXEC; the shim sets what it must.
        // SAFETY: both fds are ours; `raw` is closed once placed.
        if unsafe { libc::dup2(raw, slot as RawFd) } < 0 {
            return Err(());
        }
        // SAFETY: as above.
        unsafe { libc::close(raw) };
    }
    Ok(())
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
