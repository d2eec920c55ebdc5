//! Isolation flags of `berth run` against the real kernel (issue 20):
//! privileged, capabilities, devices, shared namespaces, sysctls, ulimits,
//! the init and the stop signal. Each asserts the effect seen inside the
//! container or on the host, not only an exit code. Root only.

mod common;

use std::process::{Child, Command, Output};

use common::sync::wait_until;
use common::Env;

fn env_with_image(name: &str) -> Env {
    let env = Env::new(name);
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The hex value of a `/proc/PID/status` line (`CapEff`, `CapBnd`…).
fn status_hex(status: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// Deletes a host link when dropped, so a failing test leaves none.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

fn host_has_link(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn privileged_with_host_network_adds_and_removes_a_veth_in_the_hosts_namespace() {
    let env = env_with_image("iso-priv");
    let link = format!("biso{}", std::process::id() % 100_000);
    let _guard = LinkGuard(link.clone());
    let out = env.berth(&[
        "run",
        "--rm",
        "--privileged=true",
        "--network=host",
        "busybox",
        "ip",
        "link",
        "add",
        &link,
        "type",
        "veth",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        host_has_link(&link),
        "the container's veth is not in the host's namespace"
    );
    let out = env.berth(&[
        "run",
        "--rm",
        "--privileged",
        "--network",
        "host",
        "busybox",
        "ip",
        "link",
        "del",
        &link,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!host_has_link(&link));

    // Every capability of the host's bounding set, no seccomp, /proc/sys writable.
    let host_bounding = status_hex(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapBnd");
    let out = env.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/status; touch /proc/sys/kernel/ns_last_pid && echo proc-sys-writable; test -c /dev/kmsg && echo has-kmsg",
    ]);
    assert_eq!(status_hex(&out, "CapEff"), host_bounding);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(out.contains("proc-sys-writable"), "{out}");
    assert!(out.contains("has-kmsg"), "{out}");
}

#[test]
fn privileged_is_never_implied() {
    let env = env_with_image("iso-notpriv");
    let script = "cat /proc/self/status; touch /proc/sys/kernel/ns_last_pid 2>/dev/null && echo proc-sys-writable; test -e /dev/kmsg && echo has-kmsg; true";
    for extra in [&[][..], &["--cap-add", "ALL"][..], &["--privileged=false"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend(extra);
        args.extend(["busybox", "sh", "-c", script]);
        let out = env.ok(&args);
        assert!(out.contains("Seccomp:\t2"), "{extra:?}: {out}");
        assert!(!out.contains("proc-sys-writable"), "{extra:?}: {out}");
        assert!(!out.contains("has-kmsg"), "{extra:?}: {out}");
        if extra.is_empty() {
            // Docker's 14 default capabilities.
            assert_eq!(status_hex(&out, "CapEff"), 0xa80425fb, "{out}");
        }
    }
    // Without --privileged the host's links cannot be touched.
    let link = format!("bisn{}", std::process::id() % 100_000);
    let _guard = LinkGuard(link.clone());
    let out = env.berth(&[
        "run",
        "--rm",
        "--network=host",
        "busybox",
        "ip",
        "link",
        "add",
        &link,
        "type",
        "veth",
    ]);
    assert!(!out.status.success());
    assert!(!host_has_link(&link));
}

/// A host process killed when dropped (it is the test's, not the container's).
struct HostChild(Child);

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pid_host_sees_and_signals_a_host_process() {
    let env = env_with_image("iso-pidhost");
    // The host process says when it gets SIGUSR1 (a file, as the harness's
    // orphan reaper may reap it before the test could wait for it).
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("got-usr1");
    let program = format!(
        "import signal, time\nsignal.signal(signal.SIGUSR1, lambda *a: open({:?}, 'w').write('x'))\nwhile True: time.sleep(1)",
        mark.to_str().unwrap()
    );
    let sleeper = || Command::new("python3").args(["-c", &program]).spawn().unwrap();
    let child = HostChild(sleeper());
    let pid = child.0.id().to_string();
    // Until python has installed its handler, SIGUSR1 would kill it.
    wait_until(20, "python to catch SIGUSR1", || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| status_hex(&s, "SigCgt") & (1 << (libc::SIGUSR1 - 1)) != 0)
    });
    let script = format!("grep -q SIGUSR1 /proc/{pid}/cmdline && echo seen && kill -USR1 {pid}");
    let out = env.ok(&[
        "run",
        "--rm",
        "--privileged=true",
        "--pid=host",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.contains("seen"), "{out}");
    wait_until(20, "the host process to get SIGUSR1", || mark.exists());

    // Without --pid=host the host's process is not there.
    let other = HostChild(sleeper());
    let script = format!(
        "test -e /proc/{0}/cmdline && grep -q SIGUSR1 /proc/{0}/cmdline && echo seen; true",
        other.0.id()
    );
    let out = env.ok(&["run", "--rm", "busybox", "sh", "-c", &script]);
    assert!(!out.contains("seen"), "{out}");
}

#[test]
fn cap_drop_all_and_cap_add_one_leaves_exactly_that_one() {
    let env = env_with_image("iso-caps");
    let out = env.ok(&[
        "run",
        "--rm",
        "--cap-drop=ALL",
        "--cap-add",
        "net_bind_service",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_hex(&out, "CapEff"), 1 << 10, "{out}");
    assert_eq!(status_hex(&out, "CapBnd"), 1 << 10, "{out}");
    let out = env.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "CAP_CHOWN",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_hex(&out, "CapEff"), 0xa80425fb & !1, "{out}");

    // An added capability unlocks its syscalls, as Docker's profile does.
    let out = env.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "sh",
        "-c",
        "mkdir /m && mount -t tmpfs t /m && grep -c ' /m tmpfs' /proc/mounts",
    ]);
    assert_eq!(out.trim(), "1");
    let out = env.berth(&["run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/tmp"]);
    assert!(!out.status.success());

    // Hostile: an unknown capability is refused by name, and nothing runs.
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        "nope",
        "--cap-add",
        "NET_FLY",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("NET_FLY"), "{}", stderr(&out));
    assert!(!env.ok(&["ps", "-a"]).contains("nope"));
}

#[test]
fn a_device_appears_under_its_container_path() {
    let env = env_with_image("iso-dev");
    let out = env.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/mynull && stat -c '%F %t:%T' /dev/mynull",
    ]);
    assert_eq!(out.trim(), "character special file 1:3");

    // Hostile: a path outside /dev is refused by the CLI; a /dev path that
    // is no device by the daemon, naming it.
    let out = env.berth(&["run", "--rm", "--device", "/etc/passwd:/dev/pw", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("/etc/passwd"), "{}", stderr(&out));
    let out = env.berth(&["run", "--rm", "--device", "/dev/shm", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/dev/shm"), "{}", stderr(&out));
}

#[test]
fn a_namespaced_sysctl_is_set_inside_and_a_host_one_refused() {
    let env = env_with_image("iso-sysctl");
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/conf/lo/forwarding").unwrap();
    let out = env.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "net.ipv4.conf.lo.forwarding=1",
        "busybox",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/lo/forwarding",
    ]);
    assert_eq!(out, "1\n1\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/lo/forwarding").unwrap(),
        host_before,
        "the container's sysctl reached the host"
    );
    let out = env.berth(&["run", "--rm", "--sysctl", "kernel.hostname=evil", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("kernel.hostname") && stderr(&out).contains("not namespaced"),
        "{}",
        stderr(&out)
    );
    let out = env.berth(&[
        "run",
        "--rm",
        "--network=host",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn ulimits_and_oom_score_show_inside() {
    let env = env_with_image("iso-ulimit");
    let out = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--oom-score-adj",
        "321",
        "busybox",
        "sh",
        "-c",
        "grep 'Max open files' /proc/self/limits; cat /proc/self/oom_score_adj",
    ]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields, ["Max", "open", "files", "100", "200", "files", "321"], "{out}");
    // --group-add: a gid, and a name from the image's /etc/group.
    let out = env.ok(&[
        "run",
        "--rm",
        "--group-add",
        "10",
        "--group-add",
        "root",
        "busybox",
        "id",
        "-G",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "10"], "{out}");
    let out = env.berth(&["run", "--rm", "--group-add", "nosuchgroup", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nosuchgroup"), "{}", stderr(&out));
}

#[test]
fn init_reaps_an_orphaned_zombie_and_passes_the_exit_code() {
    let env = env_with_image("iso-init");
    // A subshell backgrounds a short sleep and exits at once: the sleep is
    // orphaned to PID 1. PID 1's child then becomes a long sleep that never
    // waits, so only an init reaps the orphan once it exits.
    let orphan_script = "(sleep 0.3 &); exec sleep 1000";
    let procs = |name: &str| env.ok(&["exec", name, "ps", "-o", "pid,stat,args"]);
    let states_of_short_sleep = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| {
                let args: Vec<&str> = l.split_whitespace().skip(2).collect();
                args == ["sleep", "0.3"] || args == ["[sleep]"]
            })
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect()
    };
    // Without --init the orphan stays a zombie: PID 1 (the long sleep) never waits.
    env.ok(&["run", "-d", "--name", "noinit", "busybox", "sh", "-c", orphan_script]);
    wait_until(20, "the orphan to be a zombie without --init", || {
        states_of_short_sleep(&procs("noinit"))
            .iter()
            .any(|s| s.starts_with('Z'))
    });
    env.ok(&["rm", "-f", "noinit"]);
    env.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "reaper",
        "busybox",
        "sh",
        "-c",
        orphan_script,
    ]);
    wait_until(20, "the orphaned sleep to be gone, reaped", || {
        states_of_short_sleep(&procs("reaper")).is_empty()
    });
    assert!(procs("reaper").contains("sleep 1000"));
    let pid1 = env.ok(&["exec", "reaper", "cat", "/proc/1/cmdline"]);
    assert!(pid1.starts_with("/sbin/docker-init\0--\0sh\0"), "{pid1:?}");
    // The init forwards the stop signal to its child: no wait for SIGKILL.
    let started = std::time::Instant::now();
    env.ok(&["stop", "reaper"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "stop waited for SIGKILL"
    );
    env.ok(&["rm", "-f", "reaper"]);

    let out = env.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    // The init cannot be written through from inside.
    let out = env.berth(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo x >> /sbin/docker-init",
    ]);
    assert!(!out.status.success());
}

#[test]
fn the_stop_signal_is_what_the_process_receives() {
    let env = env_with_image("iso-stopsig");
    env.ok(&[
        "run",
        "-d",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "30",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 0' USR1; trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    wait_until(20, "the container to say ready", || {
        env.log_text("sig").contains("ready")
    });
    let started = std::time::Instant::now();
    env.ok(&["stop", "sig"]);
    let log = env.log_text("sig");
    assert!(log.contains("got-usr1") && !log.contains("got-term"), "{log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stop waited for SIGKILL"
    );
    env.ok(&["rm", "-f", "sig"]);
    let out = env.berth(&["run", "--rm", "--stop-signal", "SIGFLY", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("SIGFLY"), "{}", stderr(&out));
    let _ = stdout(&out);
}

#[test]
fn pid_and_ipc_join_another_containers_namespaces() {
    let env = env_with_image("iso-join");
    env.ok(&["run", "-d", "--name", "owner", "busybox", "sh", "-c", "exec sleep 1000"]);
    env.wait_for("container", "owner", 20, |v| v["status"] == "Running");
    let out = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:owner",
        "--ipc",
        "container:owner",
        "busybox",
        "sh",
        "-c",
        "ps -o args; readlink /proc/self/ns/ipc",
    ]);
    assert!(out.contains("sleep 1000"), "the owner's process is not seen: {out}");
    let owner_ipc = env.ok(&["exec", "owner", "readlink", "/proc/self/ns/ipc"]);
    assert!(out.contains(owner_ipc.trim()), "{out} vs {owner_ipc}");
    let own_ipc = env.ok(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/ipc"]);
    assert_ne!(own_ipc, owner_ipc);
    // --ipc host: the host's IPC namespace and /dev/shm.
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let mark = tempfile::Builder::new()
        .prefix("berth-iso-")
        .tempfile_in("/dev/shm")
        .unwrap();
    let name = mark.path().file_name().unwrap().to_str().unwrap().to_string();
    let script = format!("readlink /proc/self/ns/ipc; ls /dev/shm/{name}");
    let out = env.ok(&["run", "--rm", "--ipc", "host", "busybox", "sh", "-c", &script]);
    assert!(out.contains(host_ipc.to_str().unwrap()), "{out}");
    assert!(out.contains(&name), "{out}");
    // Hostile: a peer that does not exist is refused, naming it.
    let out = env.berth(&["run", "--rm", "--pid", "container:ghost", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ghost"), "{}", stderr(&out));
    env.ok(&["rm", "-f", "owner"]);
}

#[test]
fn seccomp_unconfined_and_a_docker_format_profile() {
    let env = env_with_image("iso-seccomp");
    let out = env.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["Seccomp:", "0"]);
    // A profile in Docker's format that allows everything but mkdir.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                          "comment": "", "includes": {}, "excludes": {}}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = env.berth(&["run", "--rm", "--security-opt", &opt, "busybox", "mkdir", "/x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Permission denied"), "{}", stderr(&out));
    let out = env.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "touch /y && echo touched",
    ]);
    assert_eq!(out, "touched\n");
    // Hostile: a file that is no profile is refused, naming it.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"syscalls\": []}").unwrap();
    let out = env.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.json") && stderr(&out).contains("defaultAction"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn uts_host_shows_the_hosts_name() {
    let env = env_with_image("iso-uts");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let out = env.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    assert_eq!(out.trim(), host);
    let out = env.ok(&["run", "--rm", "--name", "own-name", "busybox", "hostname"]);
    assert_eq!(out.trim(), "own-name");
}
