//! Working with running containers, against real containers: the runtime's
//! Docker defaults (exit codes, seccomp, no-new-privileges) and `exec`.
//! Run as root; each test has its own daemon and root.

mod common;

use std::time::{Duration, Instant};

use common::pty::{exit_of, spawn_on, Terminal};
use common::sync::{pipe_full, threads_in_syscall, wait_until};
use common::Env;

fn with_image(env: &Env) {
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// The value of `key:` in a container's /proc/self/status, as printed by `run`.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_as_in_docker() {
    let env = Env::new("exitcodes");
    with_image(&env);
    let missing = env.berth(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/binary"));
    let in_path = env.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(in_path.status.code(), Some(127), "{in_path:?}");
    let not_executable = env.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(not_executable.status.code(), Some(126), "{not_executable:?}");
    // A failed run leaves no container behind.
    assert!(!env.ok(&["ps", "-a"]).contains("run-"));
}

#[test]
fn no_new_privileges_is_off_by_default_and_works_with_seccomp_either_way() {
    let env = Env::new("nnp");
    with_image(&env);
    let default = env.ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&default, "NoNewPrivs"), "0", "Docker's default");
    assert_eq!(status_field(&default, "Seccomp"), "2", "filtered all the same");
    let on = env.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_field(&on, "NoNewPrivs"), "1");
    assert_eq!(status_field(&on, "Seccomp"), "2");
    // The capability set is the same either way (the filter was loaded
    // before the capabilities were dropped, not instead of dropping them).
    assert_eq!(status_field(&on, "CapEff"), status_field(&default, "CapEff"));
    // Docker's ping_group_range: ping works without setuid.
    let range = env.ok(&["run", "--rm", "busybox", "cat", "/proc/sys/net/ipv4/ping_group_range"]);
    assert_eq!(range.split_whitespace().collect::<Vec<_>>(), ["0", "2147483647"]);

    // The manifest field, explicitly false, with seccomp: libcontainer alone
    // fails this combination.
    let doc = format!(
        "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: nnp}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", \"grep -E 'NoNewPrivs|Seccomp:' /proc/self/status; sleep 1000\"]\n  stopGracePeriod: 1s\n  securityContext: {{noNewPrivileges: false}}\n",
        env.image_doc()
    );
    let file = env.manifest("nnp.yaml", &doc);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = env.log_text("nnp");
        if log.lines().count() >= 2 {
            assert_eq!(status_field(&log, "NoNewPrivs"), "0", "{log}");
            assert_eq!(status_field(&log, "Seccomp"), "2", "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no output: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn seccomp_allows_what_docker_allows_and_refuses_the_rest() {
    let env = Env::new("seccomp");
    with_image(&env);
    // Docker refuses sethostname without CAP_SYS_ADMIN; berth did not.
    let out = env.berth(&["run", "--rm", "busybox", "hostname", "other"]);
    assert_ne!(out.status.code(), Some(0), "sethostname must be refused");
    // unshare is refused (EPERM), mkdir is allowed.
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", "mkdir /tmp/d && unshare -n true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
}

#[test]
fn commands_start_with_every_signal_at_its_default_as_in_docker() {
    let env = Env::new("signals");
    with_image(&env);
    // The test harness, the daemon and the shims all ignore SIGPIPE (Rust's
    // runtime does); none of it may reach the container's command.
    let probe = "grep -E '^Sig(Ign|Blk):' /proc/self/status; yes | head -1";
    let run = env.berth(&["run", "--rm", "busybox", "sh", "-c", probe]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(status_field(&out, "SigIgn"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "SigBlk"), "0000000000000000", "{out}");
    // `yes` ends on SIGPIPE, quietly, instead of failing with EPIPE.
    assert!(out.ends_with("\ny\n"), "{out}");
    assert_eq!(String::from_utf8_lossy(&run.stderr), "", "{run:?}");

    run_detached(&env, "box", STOPS_ON_TERM);
    let exec = env.berth(&["exec", "box", "sh", "-c", probe]);
    assert_eq!(exec.status.code(), Some(0), "{exec:?}");
    let out = String::from_utf8_lossy(&exec.stdout);
    assert_eq!(status_field(&out, "SigIgn"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "SigBlk"), "0000000000000000", "{out}");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "", "{exec:?}");
}

/// A container command that ends at once on `stop`.
const STOPS_ON_TERM: &str = "trap 'exit 0' TERM; sleep 1000 & wait";

fn run_detached(env: &Env, name: &str, cmd: &str) {
    env.ok(&["run", "-d", "--name", name, "busybox", "sh", "-c", cmd]);
    env.wait_for("container", name, 10, |v| v["status"] == "Running");
}

#[test]
fn exec_runs_inside_the_container_as_its_init_does() {
    let env = Env::new("exec");
    with_image(&env);
    run_detached(&env, "box", STOPS_ON_TERM);
    let out = env.berth(&[
        "exec",
        "-e",
        "EXTRA=1",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; pwd; echo extra=$EXTRA host=$HOSTNAME; \
         for f in CapEff CapBnd NoNewPrivs Seccomp; do grep \"^$f:\" /proc/1/status; grep \"^$f:\" /proc/self/status; done; \
         cat /proc/1/cgroup; echo --; cat /proc/self/cgroup; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "the exit code passes through: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("sh -c trap"),
        "pid 1 is the container's init: {text}"
    );
    assert_eq!(lines[1], "box", "same hostname: {text}");
    assert_eq!(lines[2], "/tmp", "-w: {text}");
    assert_eq!(lines[3], "extra=1 host=box", "-e over the container's env: {text}");
    for pair in lines[4..12].chunks(2) {
        assert_eq!(pair[0], pair[1], "same as the init: {text}");
    }
    assert!(text.contains("Seccomp:\t2"), "{text}");
    let (init_cg, own_cg) = text.split_once("--\n").unwrap();
    let init_cg: Vec<&str> = init_cg.lines().skip(12).collect();
    // Its own cgroup in every hierarchy, the named systemd and the unified
    // ones of a hybrid host included (as runc does), not the host's root.
    assert!(init_cg.iter().all(|l| l.ends_with("/box")), "{text}");
    assert_eq!(init_cg, own_cg.lines().collect::<Vec<_>>(), "same cgroups: {text}");

    // -u: another user, the same capabilities bound.
    let id = env.ok(&["exec", "-u", "1000:1000", "box", "id"]);
    assert!(id.starts_with("uid=1000 gid=1000"), "{id}");
}

#[test]
fn exec_forwards_stdin_and_streams_output_without_loss() {
    let env = Env::new("execio");
    with_image(&env);
    run_detached(&env, "io", "sleep 1000");
    let mut child = env
        .command()
        .args(["exec", "-i", "io", "sh", "-c", "wc -c; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            stdin.write_all(&chunk).unwrap();
        }
        // Dropping stdin is EOF for the process.
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "8388608\ndone\n");

    // 32 MiB out through a pipe that reads slowly at first: all of it arrives.
    let child = env
        .command()
        .args(["exec", "io", "sh", "-c", "head -c 33554432 /dev/zero"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Not read until the pipe is full and the CLI waits in write(1): from
    // there on the exec's output backs up behind it.
    let cli = child.id();
    wait_until(20, "the CLI's stdout pipe is full and it waits on it", || {
        pipe_full(child.stdout.as_ref().unwrap()) && !threads_in_syscall(cli, libc::SYS_write, 1).is_empty()
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32 << 20);
}

#[test]
fn exec_errors_are_clear_and_exec_dies_with_its_container() {
    let env = Env::new("execerr");
    with_image(&env);
    let missing = env.berth(&["exec", "nosuch", "true"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("container/nosuch not found"));

    run_detached(&env, "life", STOPS_ON_TERM);
    let no_binary = env.berth(&["exec", "life", "/no/such"]);
    assert_eq!(no_binary.status.code(), Some(127), "{no_binary:?}");
    assert!(String::from_utf8_lossy(&no_binary.stderr).contains("executable file not found"));
    let not_exec = env.berth(&["exec", "life", "/etc/passwd"]);
    assert_eq!(not_exec.status.code(), Some(126), "{not_exec:?}");

    // A detached exec stays in the container's cgroup and dies with it.
    env.ok(&["exec", "-d", "life", "sleep", "999"]);
    let layout = berth::runtime::Layout::new(env.root.clone(), env.run.clone());
    let procs_file = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| format!("{root}{}/cgroup.procs", layout.cgroup_path("life")))
        .find(|p| std::path::Path::new(p).exists())
        .expect("the container's cgroup");
    let exec_pid = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let procs = std::fs::read_to_string(&procs_file).unwrap();
            let found = procs
                .lines()
                .find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == "sleep\0999\0"));
            if let Some(pid) = found {
                break pid.to_string();
            }
            assert!(Instant::now() < deadline, "exec'd sleep not in {procs_file}: {procs}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    env.ok(&["stop", "life"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{exec_pid}/cmdline")).is_ok_and(|c| c == "sleep\0999\0") {
        assert!(Instant::now() < deadline, "the exec'd process outlived its container");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = env.berth(&["exec", "life", "true"]);
    assert_eq!(stopped.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("not running"),
        "{stopped:?}"
    );
}

/// The exec zygote of the daemon `daemon` (its child named berth-zygote).
fn zygote_of(daemon: u32) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
        (name == "berth-zygote" && ppid == daemon && !rest.starts_with('Z')).then_some(pid)
    })
}

#[test]
fn exec_sees_a_replaced_container_and_outlives_its_zygote() {
    let env = Env::new("execzygote");
    with_image(&env);
    let daemon = env.daemon.as_ref().unwrap().id();
    let run_box = |x: &str| {
        let env_var = format!("X={x}");
        env.ok(&[
            "run",
            "-d",
            "--name",
            "box",
            "-e",
            &env_var,
            "busybox",
            "sh",
            "-c",
            STOPS_ON_TERM,
        ]);
    };
    run_box("1");
    assert_eq!(env.ok(&["exec", "box", "sh", "-c", "echo $X"]), "1\n");
    // The zygote keeps what it read of the container's spec; a new
    // container of the same name is a new spec.
    env.ok(&["rm", "-f", "box"]);
    run_box("2");
    assert_eq!(env.ok(&["exec", "box", "sh", "-c", "echo $X"]), "2\n");

    // A lost zygote is replaced on the next exec.
    let zygote = zygote_of(daemon).expect("the daemon's exec zygote");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(zygote), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while zygote_of(daemon) == Some(zygote) {
        assert!(Instant::now() < deadline, "the zygote did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = env.berth(&["exec", "box", "sh", "-c", "echo again; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "again\n");
    let next = zygote_of(daemon).expect("a new exec zygote");
    assert_ne!(next, zygote);
}

#[test]
fn exec_ti_gives_a_real_pty_that_follows_resizes() {
    let env = Env::new("exectty");
    with_image(&env);
    run_detached(&env, "term", STOPS_ON_TERM);
    let (mut term, slave) = Terminal::new(30, 100);
    let mut child = spawn_on(&env, slave, &["exec", "-ti", "term", "sh"]);
    term.expect("# ");
    term.type_line("tty");
    term.expect("/dev/pts/");
    term.type_line("stty size");
    term.expect("30 100");
    term.resize_and_wait(50, 120);
    term.type_line("exit 3");
    assert_eq!(exit_of(&mut child, &term), Some(3));
}

#[test]
fn user_names_resolve_in_the_containers_passwd_and_group_and_never_outside_it() {
    let env = Env::new("users");
    with_image(&env);
    // Users made at run time: the container's files, not the image's.
    run_detached(
        &env,
        "box",
        "echo 'app:x:1234:2345::/:/bin/sh' >> /etc/passwd; echo 'grp:x:3456:' >> /etc/group; \
         trap 'exit 0' TERM; sleep 1000 & wait",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.ok(&["exec", "box", "cat", "/etc/group"]).contains("grp") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = |user: &str| env.ok(&["exec", "-u", user, "box", "sh", "-c", "echo $(id -u):$(id -g)"]);
    assert_eq!(id("app"), "1234:2345\n", "the primary group from passwd");
    assert_eq!(id("app:grp"), "1234:3456\n");
    assert_eq!(id("1234"), "1234:2345\n", "a listed uid gets its primary group");
    assert_eq!(id("4321:99"), "4321:99\n", "numbers are taken as they are");
    assert_eq!(id("root"), "0:0\n");
    let unknown = env.berth(&["exec", "-u", "nosuch", "box", "true"]);
    assert_eq!(unknown.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        msg.contains("user `nosuch` is not in the container's /etc/passwd"),
        "{msg}"
    );
    let bad_group = env.berth(&["exec", "-u", "app:nogroup", "box", "true"]);
    assert!(
        String::from_utf8_lossy(&bad_group.stderr).contains("group `nogroup`"),
        "{bad_group:?}"
    );

    // A passwd that is a symlink out of the container resolves inside it:
    // the host file it names is never read.
    let host_file = env.dir.join("host-passwd");
    std::fs::write(&host_file, "escapee:x:4242:4242::/:/bin/sh\n").unwrap();
    let link = format!("ln -sf /../../../../..{} /etc/passwd", host_file.display());
    env.ok(&["exec", "box", "sh", "-c", &link]);
    let escaped = env.berth(&["exec", "-u", "escapee", "box", "id", "-u"]);
    assert_eq!(escaped.status.code(), Some(1), "{escaped:?}");
    assert!(String::from_utf8_lossy(&escaped.stderr).contains("not in the container's /etc/passwd"));

    // run -u: names from the image's files; unknown ones are refused at once.
    assert_eq!(env.ok(&["run", "--rm", "-u", "root", "busybox", "id", "-u"]), "0\n");
    assert_eq!(
        env.ok(&["run", "--rm", "-u", "1000:1000", "busybox", "id", "-g"]),
        "1000\n"
    );
    let out = env.berth(&["run", "--rm", "-u", "nosuch", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"), "{out:?}");
    env.ok(&["rm", "-f", "box"]);
}

/// As Docker and podman: a pty (run -t, exec -t, `tty: true`) comes with
/// TERM=xterm, unless the user set TERM; without one there is none.
#[test]
fn a_tty_gets_term_xterm_unless_the_user_sets_one() {
    let env = Env::new("term");
    with_image(&env);
    let term_of = |args: &[&str]| {
        let out = env.ok(args);
        out.lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix("term=").map(str::to_string))
            .unwrap_or_else(|| panic!("no term= in {out:?}"))
    };
    let probe = "echo term=$TERM";
    assert_eq!(term_of(&["run", "-t", "--rm", "busybox", "sh", "-c", probe]), "xterm");
    assert_eq!(
        term_of(&["run", "-t", "--rm", "-e", "TERM=vt100", "busybox", "sh", "-c", probe]),
        "vt100"
    );
    assert_eq!(term_of(&["run", "--rm", "busybox", "sh", "-c", probe]), "");

    run_detached(&env, "plain", "sleep 1000");
    assert_eq!(term_of(&["exec", "-t", "plain", "sh", "-c", probe]), "xterm");
    assert_eq!(term_of(&["exec", "plain", "sh", "-c", probe]), "");
    assert_eq!(
        term_of(&["exec", "-t", "-e", "TERM=dumb", "plain", "sh", "-c", probe]),
        "dumb"
    );

    // A manifest container with a tty has it in its environment, so its
    // execs see it too; the user's TERM in the manifest wins.
    let doc = |name: &str, extra: &str| {
        format!(
            "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [sleep, \"1000\"]\n  tty: true\n  stopGracePeriod: 1s\n{extra}"
        )
    };
    let file = env.manifest(
        "tty.yaml",
        &format!("{}{}", doc("withtty", ""), doc("own", "  env: {TERM: screen}\n")),
    );
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    assert_eq!(term_of(&["exec", "withtty", "sh", "-c", probe]), "xterm");
    assert_eq!(term_of(&["exec", "-t", "own", "sh", "-c", probe]), "screen");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    env.ok(&["rm", "-f", "plain"]);
}

/// With `--network host` the container is named as the host is (as in
/// Docker), in a UTS namespace of its own: it cannot rename the host.
#[test]
fn host_network_containers_have_the_hosts_hostname() {
    let env = Env::new("hostuts");
    with_image(&env);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hostname; echo $HOSTNAME",
    ]);
    assert_eq!(out, format!("{host}\n{host}\n{host}\n"));
    // The default network keeps the container's name.
    let out = env.ok(&["run", "--rm", "--name", "named", "busybox", "hostname"]);
    assert_eq!(out, "named\n");
    // Renaming from inside is refused (no CAP_SYS_ADMIN) and the host keeps its name.
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "hostname",
        "renamed-host",
    ]);
    assert!(!out.status.success());
    assert_eq!(nix::unistd::gethostname().unwrap().into_string().unwrap(), host);
}
