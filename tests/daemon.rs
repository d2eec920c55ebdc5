//! The daemon a CLI command starts on its own runs with its operator's
//! settings, and only when no daemon listens at all.

mod common;

use common::Env;

/// A pool no default and no other test uses.
const POOL: &str = "base=10.131.0.0/16,size=24";

/// The subnet a network was given, from `network inspect`'s events.
fn subnet_of(env: &Env, network: &str) -> String {
    let out = env.ok(&["network", "inspect", network]);
    let after = out.split("with subnet ").nth(1);
    let subnet = after.and_then(|a| a.split_whitespace().next());
    subnet.unwrap_or_else(|| panic!("no subnet in {out}")).to_string()
}

/// Whether a daemon answers on the env's socket.
fn answering(env: &Env) -> bool {
    std::os::unix::net::UnixStream::connect(&env.socket).is_ok()
}

#[test]
fn a_daemon_started_by_the_cli_after_a_crash_has_the_operators_settings() {
    let mut env = Env::new("autostart");
    env.kill_daemon();
    env.extra_env.push(("BERTH_DEFAULT_ADDRESS_POOL".into(), POOL.into()));
    env.start_daemon();
    env.ok(&["network", "create", "first"]);
    assert!(subnet_of(&env, "first").starts_with("10.131."));

    // The operator's daemon crashes; the next command comes from a shell
    // without the operator's flags (and with a pool of its own that must not win).
    env.kill_daemon();
    env.extra_env.clear();
    env.extra_env
        .push(("BERTH_DEFAULT_ADDRESS_POOL".into(), "base=10.132.0.0/16,size=24".into()));
    env.ok(&["network", "create", "second"]);
    let second = subnet_of(&env, "second");
    assert!(
        second.starts_with("10.131."),
        "the restarted daemon forgot its pool: {second}"
    );
    env.ok(&["network", "rm", "first", "second"]);
}

#[test]
fn the_cli_starts_no_daemon_when_the_socket_fails_otherwise_or_the_record_is_unreadable() {
    let mut env = Env::new("noautostart");
    env.kill_daemon();
    let record = env.root.join("daemon.json");
    assert!(record.exists(), "the daemon recorded no settings");

    // A socket path that cannot be connected for another reason than "no
    // daemon" (a file where a directory should be): an error, not a start.
    let blocker = env.dir.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let out = env
        .command()
        .env("BERTH_SOCKET", blocker.join("berth.sock"))
        .args(["ps"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the berth daemon"), "{err}");
    assert!(!answering(&env), "a daemon was started: {err}");

    // Another socket than the recorded one: refused with what to do.
    let other = env.dir.join("other.sock");
    let out = env.command().env("BERTH_SOCKET", &other).args(["ps"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--socket") && err.contains("daemon.json"), "{err}");
    assert!(!other.exists());

    // A record cut short: refused, naming the file, and left as it was.
    let text = std::fs::read(&record).unwrap();
    std::fs::write(&record, &text[..text.len() / 2]).unwrap();
    let out = env.berth(&["ps"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("daemon.json") && err.contains("unreadable"), "{err}");
    assert!(!answering(&env), "a daemon was started: {err}");
    assert_eq!(std::fs::read(&record).unwrap(), &text[..text.len() / 2]);

    // The operator's own start rewrites it.
    env.start_daemon();
    assert_eq!(std::fs::read(&record).unwrap(), text);
}

#[test]
fn a_socket_activated_daemon_serves_the_socket_it_was_given_and_leaves_it_in_place() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let mut env = Env::new("activated");
    env.kill_daemon();
    let _ = std::fs::remove_file(&env.socket);
    // What systemd does for berth.socket: make the socket, hand it over as
    // fd 3 with LISTEN_PID naming the daemon's own pid.
    let listener = std::os::unix::net::UnixListener::bind(&env.socket).unwrap();
    let fd = listener.as_raw_fd();
    let log = std::fs::File::create(env.dir.join("activated.log")).unwrap();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" daemon", common::BERTH])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .env("BERTH_SOCKET", &env.socket)
        .env("BERTH_WATCH", &env.watch)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: dup2 is async-signal-safe; fd is open in the parent until spawn returns.
    unsafe {
        sh.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut daemon = sh.spawn().unwrap();
    drop(listener);
    // Connections queue on the socket from the start: the first answers
    // once the daemon is ready, with no polling for the file.
    let out = env.berth(&["ps"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(env.dir.join("activated.log")).unwrap_or_default()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
    assert!(env.socket.exists(), "the daemon removed systemd's socket");
    env.start_daemon();
}
