//! `run -ti` and `attach`: the container's init on a pty that its shim
//! holds, driven from a pty as a person at a terminal would. Run as root.

mod common;

use std::time::{Duration, Instant};

use common::pty::{exit_of, spawn_on, Terminal};
use common::sync::wait_until;
use common::Env;

#[test]
fn run_ti_gives_the_init_a_pty_that_detaches_and_reattaches() {
    let mut env = Env::new("attachtty");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);

    let (mut term, slave) = Terminal::new(30, 100);
    let mut run = spawn_on(&env, slave, &["run", "-ti", "--name", "box", "busybox", "sh"]);
    // Create, attach, start: the shell's first prompt reaches the terminal
    // without anything typed.
    term.expect("/ # ");
    // A ctrl-p not followed by ctrl-q reaches the container, with the key
    // after it (the pty echoes it raw; cat -v shows it as ^P).
    term.type_line("cat -v");
    term.type_bytes(b"\x10a\r");
    term.expect("^Pa");
    term.type_bytes(b"\x04");
    term.expect("/ # ");
    term.type_line("tty");
    term.expect("/dev/pts/");
    term.type_line("stty size");
    term.expect("30 100");
    term.resize_and_wait(50, 120);
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

    // Other detach keys, as Docker's --detach-keys.
    let (mut term, slave) = Terminal::new(24, 80);
    let mut attach = spawn_on(&env, slave, &["attach", "--detach-keys", "ctrl-x", "box"]);
    term.type_line("echo other''keys");
    term.expect("otherkeys");
    term.type_bytes(b"\x18");
    assert_eq!(exit_of(&mut attach, &term), Some(0));
    assert_eq!(env.view("container", "box")["status"], "Running");

    let (mut term, slave) = Terminal::new(24, 80);
    let mut attach = spawn_on(&env, slave, &["attach", "box"]);
    term.type_line("echo back''again");
    term.expect("backagain");
    term.type_line("stty size");
    term.expect("24 80");
    // The ctrl-p of ctrl-p ctrl-q is held back, not sent: with the pty in
    // raw mode, dd gets each key as typed.
    term.type_line("stty raw -echo; dd bs=1 of=/tmp/typed 2>/dev/null; exit 3");
    // dd runs only once stty has made the pty raw.
    wait_until(10, "dd runs in box", || {
        env.berth(&["exec", "box", "pidof", "dd"]).status.success()
    });
    term.type_bytes(b"x");
    wait_until(10, "dd wrote the x", || {
        env.ok(&["exec", "box", "cat", "/tmp/typed"]) == "x"
    });
    // Typed apart, as a person does: two input frames, as the CLI has
    // read the ctrl-p before the ctrl-q is typed.
    let cli = attach.id();
    term.type_bytes_read_by(cli, b"\x10");
    term.type_bytes(b"\x11");
    assert_eq!(exit_of(&mut attach, &term), Some(0));
    assert_eq!(env.ok(&["exec", "box", "cat", "/tmp/typed"]), "x");
    env.ok(&["exec", "box", "killall", "dd"]);
    let v = env.wait_for("container", "box", 10, |v| v["status"] != "Running");
    assert_eq!(v["exit"]["code"], 3, "{v}");

    // A command that is done at once still shows its output, exit code
    // and --rm.
    let (mut term, slave) = Terminal::new(24, 80);
    let mut quick = spawn_on(
        &env,
        slave,
        &[
            "run",
            "-t",
            "--rm",
            "--name",
            "quick",
            "busybox",
            "sh",
            "-c",
            "echo said-it; exit 4",
        ],
    );
    term.expect("said-it");
    assert_eq!(exit_of(&mut quick, &term), Some(4));
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.ok(&["ps", "-a"]).contains("quick") {
        assert!(Instant::now() < deadline, "run -t --rm left its container");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A container without a tty cannot be attached to, and says why.
    env.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "100"]);
    env.wait_for("container", "plain", 10, |v| v["status"] == "Running");
    let out = env.command().args(["attach", "plain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither a tty nor an open stdin"),
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
    // Passes leave it alone: it is made, not started. An apply returns
    // after a whole pass of its own, so two of them are two passes that
    // saw the created container (and would have started it).
    for _ in 0..2 {
        env.ok(&["apply", "-f", file.to_str().unwrap()]);
    }
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

/// `berth ARGS` with `input` on its stdin (a pipe, closed after it).
fn with_input(env: &Env, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = env
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn i_without_t_streams_stdin_in_and_keeps_stdout_and_stderr_apart() {
    let env = Env::new("stdin");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);

    // run -i: stdin in, the output out, EOF ends `cat`.
    let out = with_input(&env, &["run", "-i", "--rm", "busybox", "cat"], "hi\n");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let script = "while read l; do echo out:$l; echo err:$l >&2; done; echo eof; exit 3";
    let out = with_input(&env, &["run", "-i", "--rm", "busybox", "sh", "-c", script], "a\nb\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out:a\nout:b\neof\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err:a\nerr:b\n");
    // More than the pipes hold, while the container writes as much back.
    let big: String = (0..20000).map(|i| format!("line {i}\n")).collect();
    let out = with_input(&env, &["run", "-i", "--rm", "busybox", "cat"], &big);
    assert_eq!(out.stdout.len(), big.len(), "{:?}", out.status);

    // attach to a container started with -i: the same, and what it wrote
    // before anyone attached comes first.
    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "busybox",
        "sh",
        "-c",
        &format!("echo first; {script}"),
    ]);
    env.wait_for("container", "reader", 10, |v| v["status"] == "Running");
    let out = with_input(&env, &["attach", "reader"], "x\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\nout:x\neof\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err:x\n");
    assert!(env.log_text("reader").contains("out:x"));

    // exec -i without -t behaves the same.
    env.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    env.wait_for("container", "box", 10, |v| v["status"] == "Running");
    let out = with_input(&env, &["exec", "-i", "box", "sh", "-c", script], "y\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out:y\neof\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err:y\n");
    env.ok(&["rm", "-f", "box", "reader"]);
}

#[test]
fn an_attached_run_without_a_tty_passes_signals_on_to_the_container() {
    use std::io::BufRead;
    let env = Env::new("sigproxy");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let script = "trap 'echo got INT; exit 3' INT; echo ready; while true; do sleep 0.1; done";
    // Attached as `run` is by default, and with `-i` (attach with stdin).
    for (name, extra) in [("plain", None), ("interactive", Some("-i"))] {
        let mut args = vec!["run", "--rm", "--name", name];
        args.extend(extra);
        args.extend(["busybox", "sh", "-c", script]);
        let mut cli = env
            .command()
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(cli.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "{name}");
        // Ctrl-C at the CLI: the container's trap answers, and its exit
        // code is the CLI's.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(cli.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "got INT\n", "{name}");
        let status = cli.wait().unwrap();
        assert_eq!(status.code(), Some(3), "{name}");
    }
    assert!(!env.ok(&["ps", "-a"]).contains("plain"), "--rm removed it");
}
