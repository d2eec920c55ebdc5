//! A pty a test drives as a person at a terminal would (run -ti, attach,
//! exec -ti), and `berth` started on its other side.

use std::process::Child;
use std::time::{Duration, Instant};

/// A pty the test drives as a person at a terminal would.
pub struct Terminal {
    pub master: std::fs::File,
    pub seen: String,
}

impl Terminal {
    pub fn new(rows: u16, cols: u16) -> (Terminal, std::fs::File) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let term = Terminal {
            master: std::fs::File::from(pty.master),
            seen: String::new(),
        };
        term.resize(rows, cols);
        (term, std::fs::File::from(pty.slave))
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we own.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    pub fn type_bytes(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    pub fn type_line(&mut self, line: &str) {
        self.type_bytes(format!("{line}\r").as_bytes());
    }

    /// Reads until `needle` shows up (after what was seen before).
    pub fn expect(&mut self, needle: &str) {
        assert!(
            self.try_expect(needle, Duration::from_secs(10)),
            "waited for {needle:?}; saw {:?}",
            self.seen
        );
    }

    /// Reads until `needle` shows up or `wait` passes; whether it did. What
    /// came before it is dropped; on a timeout, what was read is kept.
    pub fn try_expect(&mut self, needle: &str, wait: Duration) -> bool {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            let mut fds = [libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: poll on one fd we own.
            if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } <= 0 {
                continue;
            }
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
        let Some(at) = self.seen.find(needle) else {
            return false;
        };
        self.seen.drain(..at + needle.len());
        true
    }

    /// Resizes the terminal, then waits until the shell on its other side
    /// sees the new size: the resize travels as a frame through the CLI,
    /// the daemon and the shim, so it lands a while after the ioctl. Asks
    /// again every half second; the echo of the question (`$(stty size)`)
    /// cannot match the answer.
    pub fn resize_and_wait(&mut self, rows: u16, cols: u16) {
        self.resize(rows, cols);
        let answer = format!("size:{rows} {cols}:");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.type_line("echo size:$(stty size):");
            if self.try_expect(&answer, Duration::from_millis(500)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the shell never saw {rows}x{cols}; saw {:?}",
                self.seen
            );
        }
    }

    /// Types `bytes` and waits until `reader` (a process with this pty as
    /// its stdin, reading it on a thread of its own) has read them: what is
    /// typed after this comes in another read, as keys a person types
    /// apart do. Finds the thread blocked in read(0), then watches its
    /// rchar.
    pub fn type_bytes_read_by(&mut self, reader: u32, bytes: &[u8]) {
        use super::sync::{rchar, threads_in_syscall, wait_until};
        let mut tid = 0;
        wait_until(10, "the CLI reads its terminal", || {
            match threads_in_syscall(reader, libc::SYS_read, 0).first() {
                Some(t) => {
                    tid = *t;
                    true
                }
                None => false,
            }
        });
        let before = rchar(reader, tid);
        self.type_bytes(bytes);
        wait_until(10, "the CLI read what was typed", || {
            rchar(reader, tid) >= before + bytes.len() as u64
        });
    }
}

/// `berth ARGS` with `slave` as its controlling terminal.
pub fn spawn_on(env: &super::Env, slave: std::fs::File, args: &[&str]) -> Child {
    let mut cmd = env.command();
    cmd.args(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: setsid and TIOCSCTTY between fork and exec touch no memory.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

pub fn exit_of(child: &mut Child, term: &Terminal) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "berth did not end: {:?}", term.seen);
        std::thread::sleep(Duration::from_millis(20));
    }
}
