//! `run -ti` and `attach`: the container's init on a pty that its shim
//! holds, driven from a pty as a person at a terminal would. Run as root.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::Env;

/// A pty the test drives as a person at a terminal would.
struct Terminal {
    master: std::fs::File,
    seen: String,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> (Terminal, std::fs::File) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let term = Terminal {
            master: std::fs::File::from(pty.master),
            seen: String::new(),
        };
        term.resize(rows, cols);
        (term, std::fs::File::from(pty.slave))
    }

    fn resize(&self, rows: u16, cols: u16) {
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

    fn type_bytes(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    fn type_line(&mut self, line: &str) {
        self.type_bytes(format!("{line}\r").as_bytes());
    }

    /// Reads until `needle` shows up (after what was seen before).
    fn expect(&mut self, needle: &str) {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(Instant::now() < deadline, "waited for {needle:?}; saw {:?}", self.seen);
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
        let at = self.seen.find(needle).unwrap() + needle.len();
        self.seen.drain(..at);
    }
}

/// `berth ARGS` with `slave` as its controlling terminal.
fn spawn_on(env: &Env, slave: std::fs::File, args: &[&str]) -> Child {
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

fn exit_of(child: &mut Child, term: &Terminal) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "berth did not end: {:?}", term.seen);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_ti_gives_the_init_a_pty_that_detaches_and_reattaches() {
    let mut env = Env::new("attachtty");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);

    let (mut term, slave) = Terminal::new(30, 100);
    let mut run = spawn_on(&env, slave, &["run", "-ti", "--name", "box", "busybox", "sh"]);
    // The first prompt may come before the client is attached: ask for one.
    term.type_line("echo rea''dy");
    term.expect("ready");
    term.type_line("tty");
    term.expect("/dev/pts/");
    term.type_line("stty size");
    term.expect("30 100");
    term.resize(50, 120);
    std::thread::sleep(Duration::from_millis(300));
    term.type_line("stty size");
    term.expect("50 120");
    // ctrl-p ctrl-q: the client leaves, the container runs on.
    term.type_bytes(b"\x10\x11");
    assert_eq!(exit_of(&mut run, &term), Some(0));
    let v = env.wait_for("container", "box", 5, |v| v["status"] == "Running");
    assert_eq!(v["status"], "Running");
    // The pty is the shim's, not the daemon's: it survives a daemon restart.
    env.kill_daemon();
    env.start_daemon();
    env.wait_for("container", "box", 10, |v| v["status"] == "Running");
    // What the pty showed is in the container's log too.
    assert!(env.log_text("box").contains("/dev/pts/"), "{}", env.log_text("box"));

    let (mut term, slave) = Terminal::new(24, 80);
    let mut attach = spawn_on(&env, slave, &["attach", "box"]);
    term.type_line("echo back''again");
    term.expect("backagain");
    term.type_line("stty size");
    term.expect("24 80");
    term.type_line("exit 3");
    assert_eq!(exit_of(&mut attach, &term), Some(3));
    env.wait_for("container", "box", 10, |v| v["status"] != "Running");

    // A container without a tty cannot be attached to, and says why.
    env.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "100"]);
    env.wait_for("container", "plain", 10, |v| v["status"] == "Running");
    let out = env.command().args(["attach", "plain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no tty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn create_makes_a_container_that_only_start_starts() {
    let env = Env::new("create");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = env.ok(&[
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo made-then-started",
    ]);
    assert_eq!(out.trim(), "later");
    // Passes leave it alone: it is made, not started.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.view("container", "later")["status"], "Created");
    assert!(!env.log_text("later").contains("made-then-started"));
    let again = env.berth(&["create", "--name", "later", "busybox", "true"]);
    assert_eq!(again.status.code(), Some(125));

    env.ok(&["start", "later"]);
    env.wait_for("container", "later", 10, |v| {
        v["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Exited") || s.starts_with("Completed"))
    });
    assert!(env.log_text("later").contains("made-then-started"));

    // A created container that never ran is removed as any other.
    env.ok(&["create", "--name", "never", "busybox", "true"]);
    env.ok(&["rm", "never"]);
    assert!(!env.berth(&["get", "container", "never"]).status.success());
}
