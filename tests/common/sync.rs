//! Waiting on what the kernel shows instead of sleeping for "surely by
//! now": a thread blocked in a syscall, how much a thread has read, a
//! follower's output reaching a line; and host ports held for one test.

use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Polls `cond` until it holds; panics naming `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "waited {secs} s until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The threads of `pid` now in syscall `nr` with `fd` as first argument
/// (/proc/PID/task/TID/syscall: the number, then the arguments in hex).
pub fn threads_in_syscall(pid: u32, nr: libc::c_long, fd: i32) -> Vec<u32> {
    let prefix = format!("{nr} {fd:#x} ");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .filter(|tid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).is_ok_and(|s| s.starts_with(&prefix))
        })
        .collect()
}

/// Bytes thread `tid` of `pid` has read so far (its /proc io `rchar`).
pub fn rchar(pid: u32, tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/io"))
        .ok()
        .and_then(|io| io.lines().find_map(|l| l.strip_prefix("rchar: ")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// Bytes waiting to be read in the pipe `fd` (FIONREAD).
pub fn pipe_queued(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`, which we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    n.max(0) as usize
}

/// Whether the pipe `fd` is full: it holds all its capacity
/// (F_GETPIPE_SZ) but for less than a page.
pub fn pipe_full(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETPIPE_SZ only reads the pipe's size.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    size > 0 && pipe_queued(fd) + 4096 > size as usize
}

/// A process's output read line by line on a thread of its own, so the
/// test can wait for a line while the pipe keeps draining.
pub struct LineReader {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LineReader {
    pub fn new(output: impl std::io::Read + Send + 'static) -> LineReader {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        LineReader {
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line equal to `line` has been read; panics with what
    /// was read after `secs`.
    pub fn wait_for_line(&mut self, line: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.seen.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(e) => panic!(
                    "no line {line:?} within {secs} s ({e}); read {} lines, the last: {:?}",
                    self.seen.len(),
                    self.seen.last()
                ),
            }
        }
    }

    /// Every line read, up to the end of the output (the process must end
    /// or close it).
    pub fn finish(mut self) -> Vec<String> {
        self.seen.extend(self.lines.iter());
        self.seen
    }
}

/// A TCP port held for one test, to hand to berth before anything listens
/// on it. The socket is bound on every address with SO_REUSEADDR but never
/// listens: the kernel gives the port to no other bind (nor to another
/// test's bind to port 0) while it is held, yet berth's own check (a bind
/// with SO_REUSEADDR, then listen) and a server that binds the same way
/// still get it. Released when dropped.
pub struct PortHold {
    _socket: OwnedFd,
    pub port: u16,
}

impl PortHold {
    pub fn tcp() -> PortHold {
        use std::os::fd::FromRawFd;
        // SAFETY: socket(2) takes no pointers; the fd it returns is ours.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "a TCP socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh socket nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let on: libc::c_int = 1;
        // SAFETY: SO_REUSEADDR reads one int, `on`, which outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_REUSEADDR: {}", std::io::Error::last_os_error());
        // SAFETY: all zeroes is a valid sockaddr_in: 0.0.0.0, port 0.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: bind reads and getsockname writes at most `len` bytes of
        // `addr`, which we own.
        let rc = unsafe {
            let p = (&mut addr as *mut libc::sockaddr_in).cast();
            if libc::bind(fd, p, len) == 0 {
                libc::getsockname(fd, p, &mut len)
            } else {
                -1
            }
        };
        assert_eq!(rc, 0, "bind a TCP port: {}", std::io::Error::last_os_error());
        PortHold {
            _socket: socket,
            port: u16::from_be(addr.sin_port),
        }
    }
}
