//! Real containers through the daemon: isolation, limits, replace, delete,
//! live restore, restart, bad input, the watched directory, security.
//! Run as root; each test has its own daemon and root.

mod common;

use std::time::{Duration, Instant};

use common::sync::wait_until;
use common::Env;

fn container(name: &str, command: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", {command:?}]\n  stopGracePeriod: 1s\n{extra}"
    )
}

fn running(v: &serde_json::Value) -> bool {
    v["status"] == "Running"
}

#[test]
fn apply_runs_an_isolated_container() {
    let env = Env::new("isolated");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "iso",
            "echo pid=$$; hostname; ps -o pid,comm | wc -l; ls /sys/class/net; sleep 1000",
            ""
        )
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let v = env.wait_for("container", "iso", 10, |v| running(v) && v["pid"].is_number());
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = env.log_text("iso");
        if log.lines().count() >= 4 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "pid=1", "the command is pid 1: {log}");
    assert_eq!(lines[1], "iso", "hostname is the container name: {log}");
    // Header + sh + ps (+ wc may show): the host's processes are invisible.
    let procs: usize = lines[2].trim().parse().unwrap();
    assert!(
        procs <= 5,
        "only the container's processes are visible, saw {procs}: {log}"
    );
    assert_eq!(lines[3], "lo", "only lo exists: {log}");
    // And on the host, the pid is real and in a different pid namespace.
    let pid = v["pid"].as_i64().unwrap();
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ctr_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(host_ns, ctr_ns);
    // Its own network namespace (the shim's, not one berth's network made)
    // has lo up, as Docker's.
    let lo = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip", "-o", "link", "show", "lo"])
        .output()
        .unwrap();
    let lo = String::from_utf8_lossy(&lo.stdout);
    assert!(lo.contains(",UP"), "lo is down in the container: {lo}");
}

#[test]
fn memory_limit_is_set_and_a_hog_is_oom_killed() {
    let env = Env::new("oom");
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        container("limited", "sleep 1000", "  resources: {memory: 24Mi, pids: 30, cpus: 0.5}\n"),
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {name: hog}\nspec:\n  image: busybox\n  command: [\"dd\", \"if=/dev/zero\", \"of=/dev/null\", \"bs=128M\", \"count=1\"]\n  resources: {memory: 16Mi}\n  restartPolicy: never\n"
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "limited", 10, running);
    let prefix = env.cgroup_prefix();
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").exists();
    let limit_file = if v1 {
        format!("/sys/fs/cgroup/memory/{prefix}/limited/memory.limit_in_bytes")
    } else {
        format!("/sys/fs/cgroup/{prefix}/limited/memory.max")
    };
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (24u64 << 20).to_string()
    );
    let hog = env.wait_for("container", "hog", 15, |v| v["exit"].is_object());
    assert_eq!(hog["exit"]["oomKilled"], true, "{hog}");
    assert_eq!(hog["exit"]["code"], 137, "{hog}");
    assert!(hog["status"].as_str().unwrap().contains("OOMKilled"), "{hog}");
    let described = env.ok(&["describe", "container/hog"]);
    assert!(described.contains("OOMKilled"), "{described}");
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let env = Env::new("pids");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "forky",
            "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; echo survived",
            "  resources: {pids: 10}\n  restartPolicy: never\n"
        )
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "forky", 15, |v| v["exit"].is_object());
    let log = env.berth(&["logs", "forky"]);
    let text = String::from_utf8_lossy(&log.stderr).into_owned() + &String::from_utf8_lossy(&log.stdout);
    assert!(text.contains("can't fork"), "fork loop was not stopped: {text}");
    assert!(!text.contains("survived"), "{text}");
}

#[test]
fn a_changed_spec_replaces_the_container_and_diff_names_the_field() {
    let env = Env::new("replace");
    // A limit alone is changed in place (tests/run_resources.rs); with the
    // environment it takes a new process.
    let doc = |mem: &str, mode: &str| {
        format!(
            "{}{}",
            env.image_doc(),
            container(
                "web",
                "sleep 1000",
                &format!("  env: {{MODE: {mode}}}\n  resources: {{memory: {mem}}}\n")
            )
        )
    };
    let file = env.manifest("stack.yaml", &doc("32Mi", "a"));
    let f = file.to_str().unwrap();
    env.ok(&["apply", "-f", f, "--wait", "--timeout", "30s"]);
    let before = env.view("container", "web")["pid"].as_i64().unwrap();

    // Unchanged: diff exits 0 and a re-apply does nothing.
    assert_eq!(env.berth(&["diff", "-f", f]).status.code(), Some(0));
    assert!(env.ok(&["apply", "-f", f]).contains("no changes"));
    assert_eq!(env.view("container", "web")["pid"].as_i64().unwrap(), before);

    std::fs::write(&file, doc("48Mi", "b")).unwrap();
    let diff = env.berth(&["diff", "-f", f]);
    assert_eq!(diff.status.code(), Some(1));
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("replace container/web") && text.contains("spec.resources.memory: 32Mi -> 48Mi"),
        "{text}"
    );
    env.ok(&["apply", "-f", f, "--wait", "--timeout", "30s"]);
    let after = env.view("container", "web");
    assert_ne!(after["pid"].as_i64().unwrap(), before, "the container was replaced");
    assert_eq!(after["spec"]["spec"]["resources"]["memory"], "48Mi");
}

#[test]
fn delete_leaves_nothing_behind() {
    let env = Env::new("delete");
    let stack = format!(
        "{}---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: vol}}\nspec: {{}}\n{}{}",
        env.image_doc(),
        container(
            "a",
            "sleep 1000",
            "  volumes: [{volume: vol, path: /data}]\n  resources: {memory: 32Mi}\n"
        ),
        container("b", "sleep 1000", "  dependsOn: [{name: a}]\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    let f = file.to_str().unwrap();
    env.ok(&["apply", "-f", f, "--wait", "--timeout", "30s"]);
    let pid = env.view("container", "a")["pid"].as_i64().unwrap();
    // An image or volume in use is not deleted from under its containers.
    let refused = env.berth(&["delete", "image/busybox", "volume/vol"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("image/busybox is used by container/a") && err.contains("volume/vol is used by container/a"),
        "{err}"
    );
    assert_eq!(
        env.view("container", "a")["pid"].as_i64().unwrap(),
        pid,
        "nothing changed"
    );
    env.ok(&["delete", "-f", f]);
    assert!(env.ok(&["get"]).contains("No objects found"));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container process is gone"
    );
    let prefix = env.cgroup_prefix();
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter(|h| h.path().join(&prefix).exists())
        .map(|h| h.path())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.dir.to_str().unwrap()), "mounts left");
    let left: Vec<_> = std::fs::read_dir(env.run.join("containers"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run dirs left: {left:?}");
    let data: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(data.is_empty(), "container data left");
    // The imported image outlives its object, unnamed, until a prune.
    env.ok(&["image", "prune"]);
    let snapshots: Vec<_> = std::fs::read_dir(env.root.join("images/snapshots"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        snapshots.is_empty(),
        "image snapshots left after a prune: {snapshots:?}"
    );
    assert!(!env.root.join("volumes/vol").exists(), "volume left");
}

#[test]
fn a_killed_daemon_is_restarted_and_adopts_running_containers() {
    let mut env = Env::new("restore");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container("keep", "sleep 1000", "  restartPolicy: always\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let pid = env.view("container", "keep")["pid"].as_i64().unwrap();
    env.kill_daemon();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives the daemon"
    );
    env.start_daemon();
    let v = env.wait_for("container", "keep", 10, running);
    assert_eq!(v["pid"].as_i64().unwrap(), pid, "adopted, not restarted");
    assert_eq!(v["restarts"], 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&env.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "the API socket is rw for root and its group only");
    // A second daemon on the same root refuses to start.
    let second = env.berth(&["daemon"]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{second:?}"
    );
}

#[test]
fn a_container_killed_by_hand_is_restarted_under_always() {
    let env = Env::new("restart");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container("phoenix", "sleep 1000", "  restartPolicy: always\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let pid = env.view("container", "phoenix")["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let v = env.wait_for("container", "phoenix", 15, |v| running(v) && v["restarts"] == 1);
    assert_ne!(v["pid"].as_i64().unwrap(), pid);
    let events = env.ok(&["describe", "container/phoenix"]);
    assert!(events.contains("exited with code 137"), "{events}");
}

#[test]
fn a_missing_command_is_reported_at_once() {
    let env = Env::new("setupfail");
    let stack = format!(
        "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: broken}}\nspec:\n  image: busybox\n  command: [\"/no/such/binary\"]\n  restartPolicy: never\n",
        env.image_doc()
    );
    let file = env.manifest("stack.yaml", &stack);
    let started = Instant::now();
    let out = env.berth(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a setup failure must not hang"
    );
    let v = env.view("container", "broken");
    let status = v["status"].as_str().unwrap();
    assert!(
        status.starts_with("Failed") && status.contains("/no/such/binary"),
        "{status}"
    );
}

#[test]
fn bad_manifests_are_rejected_whole_with_positions() {
    let env = Env::new("badinput");
    let stack = format!(
        "{}{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: bad}}\nspec:\n  image: nosuchimage\n  imagee: x\n  resources: {{memory: 100MB}}\n",
        env.image_doc(),
        container("fine", "sleep 1000", "")
    );
    let file = env.manifest("stack.yaml", &stack);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stack.yaml:"), "errors name the file: {err}");
    assert!(err.contains("imagee"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(env.ok(&["get"]).contains("No objects found"), "nothing was applied");
    // diff reports errors with exit code 2
    assert_eq!(
        env.berth(&["diff", "-f", file.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn a_watched_file_that_turns_invalid_keeps_its_containers() {
    let env = Env::new("watch");
    let good = format!("{}{}", env.image_doc(), container("watched", "sleep 1000", ""));
    // Editor swap and backup files are not manifests.
    std::fs::write(env.watch.join(".app.yaml.swp"), "not: [yaml").unwrap();
    std::fs::write(env.watch.join("app.yaml~"), "not: [yaml").unwrap();
    let file = env.watch.join("app.yaml");
    std::fs::write(&file, &good).unwrap();
    let v = env.wait_for("container", "watched", 20, running);
    assert!(
        !env.ok(&["describe", "container/watched"]).contains("Source error"),
        "temp files were ignored"
    );
    let pid = v["pid"].as_i64().unwrap();
    std::fs::write(
        &file,
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: watched}\nspec: {image: [oops\n",
    )
    .unwrap();
    // The error is recorded and the container is untouched.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = env.ok(&["describe", "container/watched"]);
        if d.contains("Source error") {
            break;
        }
        assert!(Instant::now() < deadline, "source error not reported: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = env.view("container", "watched");
    assert_eq!(v["pid"].as_i64().unwrap(), pid);
    assert_eq!(v["status"], "Running (manifest invalid)");
    // Removing the file deletes what it defined.
    std::fs::remove_file(&file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !env.ok(&["get"]).contains("No objects found") {
        assert!(Instant::now() < deadline, "objects of a removed file were not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_container_cannot_raise_its_limits_or_reach_the_shim_binary() {
    let env = Env::new("security");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "jail",
            "echo 1000 > /sys/fs/cgroup/pids/pids.max 2>/dev/null && echo cgroup-writable || echo cgroup-readonly; grep -E 'NoNewPrivs|CapEff|Seccomp:' /proc/self/status; cat /proc/keys | wc -c; unshare -n true 2>/dev/null && echo unshare-allowed || echo unshare-denied; sleep 1000",
            "  resources: {pids: 20}\n"
        )
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = env.log_text("jail");
        if log.lines().count() >= 6 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("unshare-denied"), "seccomp refuses new namespaces: {log}");
    if std::path::Path::new("/sys/fs/cgroup/pids").exists() {
        assert!(log.contains("cgroup-readonly"), "{log}");
    }
    // Off by default, as in Docker (tests/exec.rs turns it on).
    assert!(log.contains("NoNewPrivs:\t0"), "{log}");
    assert!(log.contains("Seccomp:\t2"), "{log}");
    assert!(
        log.contains("CapEff:\t00000000a80425fb"),
        "Docker's default capabilities: {log}"
    );
    assert!(log.lines().any(|l| l.trim() == "0"), "/proc/keys is masked: {log}");

    // The shim runs from a sealed memfd, so nothing can write its executable.
    let shims = env.shim_pids();
    assert!(!shims.is_empty(), "found the shim");
    for pid in &shims {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.to_string_lossy().contains("memfd:berth-shim"), "{exe:?}");
        assert!(berth::runtime::sealed::exe_is_sealed(*pid));
        let w = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/exe"));
        assert!(w.is_err(), "the shim's executable must not be writable");
    }
    // A container whose entrypoint is /proc/self/exe cannot touch berth's binary.
    let before = std::fs::read(common::BERTH).unwrap();
    let evil = format!(
        "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: evil}}\nspec:\n  image: busybox\n  command: [\"/proc/self/exe\"]\n  restartPolicy: never\n",
        env.image_doc()
    );
    let file = env.manifest("evil.yaml", &evil);
    let _ = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "evil", 15, |v| {
        v["exit"].is_object() || v["status"].as_str().unwrap_or("").starts_with("Failed")
    });
    assert_eq!(
        std::fs::read(common::BERTH).unwrap(),
        before,
        "berth's binary is unchanged"
    );
}

#[test]
fn run_streams_output_and_returns_the_exit_code() {
    let env = Env::new("run");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", "echo hello-run; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-run\n");
    // --rm removed it
    assert!(!env.ok(&["ps", "-a"]).contains("run-"));

    let name = env.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "-e",
        "X=42",
        "--memory",
        "32Mi",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo x=$X; sleep 1000 & wait",
    ]);
    assert_eq!(name.trim(), "bg");
    let ps = env.ok(&["ps"]);
    assert!(ps.lines().any(|l| l.starts_with("bg ")), "{ps}");
    env.wait_for("container", "bg", 10, running);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.log_text("bg").contains("x=42") {
        assert!(Instant::now() < deadline, "env var not seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&["stop", "bg"]);
    let ps_all = env.ok(&["ps", "-a"]);
    assert!(ps_all.contains("Exited (0)"), "stopped by SIGTERM: {ps_all}");
    // A name that exists is refused.
    let again = env.berth(&["run", "-d", "--name", "bg", "busybox", "true"]);
    assert_eq!(again.status.code(), Some(125));
    // An image that does not exist is a clear error.
    let missing = env.berth(&["run", "--rm", "nosuch", "true"]);
    assert_eq!(missing.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nosuch"));
}

#[test]
fn logs_follow_tail_and_timestamps() {
    let env = Env::new("logs");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "talker",
            "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo oops >&2",
            "  restartPolicy: never\n"
        )
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    // -f returns once the container has exited, with every line.
    let started = Instant::now();
    let out = env.berth(&["logs", "-f", "talker"]);
    assert!(out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line1\nline2\nline3\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let tail = env.ok(&["logs", "--tail", "1", "talker"]);
    assert!(tail.is_empty(), "the last line went to stderr: {tail:?}");
    let tail2 = env.berth(&["logs", "--tail", "2", "-t", "talker"]);
    let text = String::from_utf8_lossy(&tail2.stdout);
    assert!(text.starts_with("20") && text.trim_end().ends_with("line3"), "{text}");
}

#[test]
fn a_crashing_container_backs_off_and_shows_restarting() {
    let env = Env::new("backoff");
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container("crashy", "echo boom; exit 1", "  restartPolicy: on-failure\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let v = env.wait_for("container", "crashy", 20, |v| v["restarts"].as_u64().unwrap_or(0) >= 3);
    let status = v["status"].as_str().unwrap();
    // Between runs it shows Restarting; a sample can also catch a run in flight.
    assert!(
        status.starts_with("Restarting") || status == "Running" || status == "Starting",
        "{status}"
    );
    let events = env.ok(&["describe", "container/crashy"]);
    // Each restart waits longer than the one before.
    let delays: Vec<u64> = events
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        delays.len() >= 2 && delays.windows(2).all(|w| w[1] > w[0]),
        "backoff grows: {delays:?}\n{events}"
    );
}

#[test]
fn prune_removes_what_a_set_no_longer_defines() {
    let env = Env::new("prune");
    let two = format!(
        "{}{}{}",
        env.image_doc(),
        container("keep", "sleep 1000", ""),
        container("drop", "sleep 1000", "")
    );
    let file = env.manifest("stack.yaml", &two);
    let f = file.to_str().unwrap();
    env.ok(&["apply", "-f", f, "--wait", "--timeout", "30s"]);
    std::fs::write(
        &file,
        format!("{}{}", env.image_doc(), container("keep", "sleep 1000", "")),
    )
    .unwrap();
    let diff = env.berth(&["diff", "--prune", "-f", f]);
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("delete container/drop"),
        "{diff:?}"
    );
    env.ok(&["apply", "--prune", "-f", f]);
    let get = env.ok(&["get", "containers"]);
    assert!(get.contains("keep") && !get.contains("drop"), "{get}");
    // Another set's container uses the image: pruning it away is refused.
    let other = env.manifest("other.yaml", &container("other", "sleep 1000", ""));
    env.ok(&["apply", "-f", other.to_str().unwrap()]);
    std::fs::write(&file, "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: only}\n").unwrap();
    let refused = env.berth(&["apply", "--prune", "-f", f]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("image/busybox is used by container/other"), "{err}");
    assert!(env.ok(&["get", "images"]).contains("busybox"), "nothing was pruned");
}

#[test]
fn user_working_dir_env_and_volumes_reach_the_process() {
    let env = Env::new("process");
    let host_dir = env.dir.join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("greeting"), "from-host").unwrap();
    let extra = format!(
        "  user: \"1000:1001\"\n  workingDir: /tmp\n  env: {{GREETING: hi}}\n  restartPolicy: never\n  volumes:\n    - {{hostPath: {}, path: /shared, readOnly: true}}\n    - {{tmpfs: /scratch, size: 1Mi}}\n",
        host_dir.display()
    );
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container("proc", "echo $(id -u):$(id -g) $(pwd) $GREETING $(cat /shared/greeting); touch /shared/x 2>/dev/null || echo ro; df /scratch | tail -1", &extra)
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "proc", 15, |v| v["exit"].is_object());
    let log = env.log_text("proc");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "1000:1001 /tmp hi from-host", "{log}");
    assert_eq!(lines[1], "ro", "{log}");
    assert!(
        lines[2].contains("tmpfs") && lines[2].contains("1024"),
        "a 1 MiB tmpfs: {log}"
    );
}

#[test]
fn a_dead_shim_or_a_death_while_the_daemon_is_down_is_handled_by_the_restart_policy() {
    let mut env = Env::new("lost");
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        container("orphaned", "sleep 1000", "  restartPolicy: always\n"),
        container("died", "sleep 1000", "  restartPolicy: always\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let orphan_pid = env.view("container", "orphaned")["pid"].as_i64().unwrap() as i32;
    let died_pid = env.view("container", "died")["pid"].as_i64().unwrap() as i32;

    // Kill the daemon, then the shim of one container and the process of the other.
    env.kill_daemon();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.run.join("containers/orphaned/state.json")).unwrap()).unwrap();
    let shim = state["shim_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::Signal::SIGKILL).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(died_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    // Both deaths happen while no daemon runs: the shim is gone, and the
    // other shim has recorded its init's exit.
    let died_exit = env.run.join("containers/died/exit.json");
    wait_until(10, "the orphan's shim died and died's shim recorded the exit", || {
        berth::runtime::proc::start_time(shim).is_none() && died_exit.exists()
    });
    env.start_daemon();

    // The orphan (alive without its shim) is killed and restarted under a new shim.
    let v = env.wait_for("container", "orphaned", 15, |v| running(v) && v["restarts"] == 1);
    assert_ne!(v["pid"].as_i64().unwrap() as i32, orphan_pid);
    // Dead (at most a zombie until whoever inherited it reaps it).
    assert_eq!(
        berth::runtime::proc::start_time(orphan_pid),
        None,
        "the unsupervised process was killed"
    );
    // The one that died while the daemon was down is restarted per its policy.
    let v = env.wait_for("container", "died", 15, |v| running(v) && v["restarts"] == 1);
    assert_ne!(v["pid"].as_i64().unwrap() as i32, died_pid);
}

#[test]
fn a_daemon_killed_in_the_middle_of_an_apply_converges_after_restart() {
    let mut env = Env::new("crash");
    let mut stack = env.image_doc();
    for i in 0..6 {
        stack.push_str(&container(
            &format!("c{i}"),
            "sleep 1000",
            "  resources: {memory: 32Mi}\n",
        ));
    }
    let file = env.manifest("stack.yaml", &stack);
    // Start the apply, then SIGKILL the daemon while it is creating containers.
    let mut apply = env
        .command()
        .args(["apply", "-f", file.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.run.join("containers").exists() {
        assert!(Instant::now() < deadline, "the apply never started a container");
        std::thread::sleep(Duration::from_millis(2));
    }
    env.kill_daemon();
    let _ = apply.wait();
    env.start_daemon();
    // The stored apply landed whole (one transaction); the restarted daemon finishes it.
    for i in 0..6 {
        env.wait_for("container", &format!("c{i}"), 20, running);
    }
    // Exactly one process per container: nothing was started twice.
    let prefix = env.cgroup_prefix();
    for i in 0..6 {
        let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/{prefix}/c{i}/cgroup.procs"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{prefix}/c{i}/cgroup.procs")))
            .unwrap();
        assert_eq!(procs.lines().count(), 1, "c{i}: {procs}");
    }
    let shims = env.shim_pids().len();
    assert_eq!(shims, 6, "one shim per container");
}

#[test]
fn run_rm_removes_detached_containers_and_survives_a_daemon_restart() {
    let mut env = Env::new("autorm");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let gone = |env: &Env, name: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while env
            .ok(&["ps", "-a"])
            .lines()
            .any(|l| l.starts_with(&format!("{name} ")))
        {
            assert!(Instant::now() < deadline, "{name} was not removed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Detached: nobody waits for the exit, the daemon removes it.
    assert_eq!(
        env.ok(&["run", "-d", "--rm", "--name", "detached", "busybox", "sleep", "0.2"])
            .trim(),
        "detached"
    );
    gone(&env, "detached");
    // Foreground, but the daemon dies before the exit: the next daemon removes it.
    let mut client = env
        .command()
        .args(["run", "--rm", "--name", "orphan", "busybox", "sleep", "0.5"])
        .spawn()
        .unwrap();
    let orphan = env.wait_for("container", "orphan", 10, |v| v["pid"].is_number())["pid"]
        .as_i64()
        .unwrap() as i32;
    // The pid is there from the create; the shim starts the init only once
    // the client attached (or after its attach wait): kill the daemon once
    // the init runs the command, so the exit comes while no daemon runs.
    wait_until(20, "orphan's init runs sleep", || {
        // (Gone already: it ran and exited.)
        std::fs::read(format!("/proc/{orphan}/cmdline")).map_or(true, |c| c.starts_with(b"sleep\0"))
    });
    env.kill_daemon();
    let _ = client.wait();
    // The exit happens while no daemon runs: its shim records it.
    let exit = env.run.join("containers/orphan/exit.json");
    wait_until(10, "orphan exited and its shim recorded it", || {
        berth::runtime::proc::start_time(orphan).is_none() && exit.exists()
    });
    env.start_daemon();
    gone(&env, "orphan");
    assert!(!env.run.join("containers/orphan").exists());
}

#[test]
fn a_failed_import_fails_wait_at_once_and_its_dependants_wait() {
    let env = Env::new("badimport");
    let stack =
        "apiVersion: berth/v1\nkind: Image\nmetadata: {name: busybox}\nspec: {import: /nonexistent/rootfs.tar}\n"
            .to_string()
            + &container("dependant", "sleep 1000", "");
    let file = env.manifest("stack.yaml", &stack);
    let started = Instant::now();
    let out = env.berth(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "60s"]);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a failure ends --wait, not the timeout"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed"), "{out:?}");
    let image = env.view("image", "busybox");
    assert!(
        image["status"].as_str().unwrap().starts_with("Failed: ")
            && image["status"].as_str().unwrap().contains("/nonexistent/rootfs.tar"),
        "{image}"
    );
    let dependant = env.view("container", "dependant");
    assert_eq!(dependant["status"], "Pending: waiting for image/busybox");
}

#[test]
fn volume_ls_rm_and_prune_spare_what_containers_use() {
    let env = Env::new("volcmds");
    let stack = format!(
        "{}---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: data}}\nspec: {{}}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: spare}}\nspec: {{}}\n{}",
        env.image_doc(),
        container("user", "sleep 1000", "  volumes: [{volume: data, path: /data}]\n")
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let ls = env.ok(&["volume", "ls"]);
    assert!(ls.contains("data") && ls.contains("spare"), "{ls}");
    let refused = env.berth(&["volume", "rm", "data"]);
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("user"), "names the container: {msg}");
    let out = env.ok(&["volume", "prune"]);
    assert!(out.contains("1 volume(s) removed"), "{out}");
    let ls = env.ok(&["volume", "ls"]);
    assert!(ls.contains("data") && !ls.contains("spare"), "{ls}");
    env.ok(&["delete", "container/user"]);
    env.ok(&["volume", "rm", "data"]);
    assert!(!env.ok(&["volume", "ls"]).contains("data"));
}

/// mount(2), in-process (the harness reaps children, so a `mount` child's
/// status could be lost).
fn host_mount(
    source: Option<&str>,
    target: &std::path::Path,
    fstype: Option<&str>,
    flags: nix::mount::MsFlags,
    data: Option<&str>,
) {
    nix::mount::mount(source, target, fstype, flags, data).unwrap_or_else(|e| panic!("mount {target:?}: {e}"));
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Unmount(Vec<std::path::PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn tmpfs_mode_and_bind_propagation_take_effect() {
    let env = Env::new("mntopts");
    // A shared host mount: what is mounted under it later reaches its
    // `rslave` bind, and not its `rprivate` (the default) one.
    let host_dir = env.dir.join("prop");
    std::fs::create_dir_all(&host_dir).unwrap();
    let dir = host_dir.to_str().unwrap();
    let mut mounted = Unmount(vec![host_dir.clone()]);
    use nix::mount::MsFlags;
    host_mount(Some(dir), &host_dir, None, MsFlags::MS_BIND, None);
    host_mount(None, &host_dir, None, MsFlags::MS_SHARED, None);
    std::fs::create_dir_all(host_dir.join("sub")).unwrap();
    let extra = format!(
        "  restartPolicy: never\n  network: none\n  volumes:\n    - {{tmpfs: /secret, mode: \"0700\", size: 1Mi}}\n    - {{tmpfs: /scratch}}\n    - {{hostPath: {dir}, path: /slave, propagation: rslave}}\n    - {{hostPath: {dir}, path: /private}}\n"
    );
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "opts",
            "stat -c '%n %a' /secret /scratch; while [ ! -e /slave/sub/marker ]; do sleep 0.1; done; echo slave sees it; ls /private/sub; echo private listed; sleep 1000",
            &extra
        )
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "opts", 15, running);
    // Mounted on the host once the container runs.
    let sub = host_dir.join("sub");
    host_mount(Some("tmpfs"), &sub, Some("tmpfs"), MsFlags::empty(), Some("size=1m"));
    mounted.0.push(sub.clone());
    std::fs::write(sub.join("marker"), "x").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = env.log_text("opts");
        if log.contains("private listed") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(log.contains("/secret 700"), "{log}");
    assert!(log.contains("/scratch 1777"), "{log}");
    assert!(
        log.contains("slave sees it"),
        "an rslave bind gets the host's new mount: {log}"
    );
    assert!(!log.contains("marker"), "an rprivate bind does not: {log}");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    drop(mounted);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `run` in the foreground (no -i, no -t) passes the container's stdout and
/// stderr through byte for byte, apart, and exits with its code.
#[test]
fn foreground_run_output_is_byte_exact_on_both_streams() {
    let env = Env::new("runbytes");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    // The image's /bin/busybox is the host's (scripts/busybox-rootfs.sh).
    let binary = std::fs::read("/bin/busybox").unwrap();
    let out = env.berth(&["run", "--rm", "busybox", "cat", "/bin/busybox"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), binary.len(), "size of the binary through stdout");
    assert_eq!(sha256_hex(&out.stdout), sha256_hex(&binary));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", "cat /bin/busybox >&2"]);
    assert!(out.status.success());
    assert_eq!(out.stderr.len(), binary.len(), "size of the binary through stderr");
    assert_eq!(sha256_hex(&out.stderr), sha256_hex(&binary));
    assert!(out.stdout.is_empty());

    // No newline added at the end.
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", "printf abc; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, b"abc");

    // A tar stream made inside is readable outside.
    let out = env.berth(&["run", "--rm", "busybox", "tar", "c", "-C", "/etc", "."]);
    assert!(out.status.success());
    let tar = env.dir.join("etc.tar");
    std::fs::write(&tar, &out.stdout).unwrap();
    let listed = std::process::Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let names = String::from_utf8_lossy(&listed.stdout);
    assert!(names.lines().any(|l| l == "./passwd"), "{names}");
    assert!(names.lines().any(|l| l == "./group"), "{names}");

    // Both streams at once, 50 MiB of random bytes on stdout: complete,
    // and its digest (computed inside) on stderr.
    let script = "dd if=/dev/urandom of=/tmp/big bs=1M count=50 2>/dev/null && sha256sum /tmp/big >&2 && cat /tmp/big";
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 50 << 20);
    let inside = String::from_utf8_lossy(&out.stderr);
    assert_eq!(inside.split_whitespace().next(), Some(sha256_hex(&out.stdout).as_str()));

    // The log still has the output of a foreground run (as Docker's does).
    let out = env.berth(&[
        "run",
        "--name",
        "kept",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"to-out\n");
    assert_eq!(out.stderr, b"to-err\n");
    let logs = env.berth(&["logs", "kept"]);
    assert_eq!(logs.stdout, b"to-out\n");
    assert_eq!(logs.stderr, b"to-err\n");
    env.ok(&["rm", "kept"]);
}

/// A client that reads slowly gets everything (the container waits for it);
/// one that goes away leaves the container to run to its end, logged.
#[test]
fn foreground_run_waits_for_a_slow_reader_and_survives_a_lost_one() {
    use std::io::Read;
    let env = Env::new("runslow");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let mut slow = env
        .command()
        .args(["run", "--rm", "busybox", "seq", "1", "300000"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = slow.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        // Slower than the container writes: the pipes fill up behind us.
        std::thread::sleep(Duration::from_micros(200));
        match stdout.read(&mut buf).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(slow.wait().unwrap().success());
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected.as_bytes(), "a slow reader lost or changed output");

    // The client goes away mid-stream: the container still finishes.
    let mut lost = env
        .command()
        .args([
            "run",
            "--name",
            "lost",
            "busybox",
            "sh",
            "-c",
            "seq 1 100000; echo finished-anyway",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 2];
    lost.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"1\n");
    lost.kill().unwrap();
    lost.wait().unwrap();
    env.wait_for("container", "lost", 20, |v| v["status"] != "Running");
    let log = env.log_text("lost");
    assert!(
        log.ends_with("100000\nfinished-anyway\n"),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    env.ok(&["rm", "lost"]);
}

/// On a host with a v1 `name=systemd` hierarchy, a container sees its own
/// cgroup there, as in the others, not the host's tree with every other
/// container's; and nothing of it is left in that hierarchy afterwards.
#[test]
fn name_systemd_shows_a_container_only_its_own_cgroup() {
    let systemd = std::path::Path::new("/sys/fs/cgroup/systemd");
    if !systemd.join("cgroup.procs").exists() {
        eprintln!("no v1 name=systemd hierarchy here; nothing to check");
        return;
    }
    let env = Env::new("systemdcg");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.ok(&["run", "-d", "--name", "neighbour", "busybox", "sleep", "1000"]);
    env.wait_for("container", "neighbour", 10, running);
    let out = env.ok(&[
        "run",
        "--rm",
        "--name",
        "looker",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/cgroup; echo ---; ls /sys/fs/cgroup/systemd; echo ---; mkdir /sys/fs/cgroup/systemd/x 2>/dev/null && echo made; true",
    ]);
    let mut parts = out.split("---\n");
    let (cgroups, listing, tail) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let path_of = |key: &str| {
        cgroups
            .lines()
            .find_map(|l| l.splitn(3, ':').nth(2).filter(|_| l.split(':').nth(1) == Some(key)))
            .unwrap_or_else(|| panic!("no {key} in {cgroups}"))
            .to_string()
    };
    let own = format!("/{}/looker", env.cgroup_prefix());
    assert_eq!(path_of("name=systemd"), own, "{cgroups}");
    assert_eq!(path_of("memory"), own, "{cgroups}");
    let names: Vec<&str> = listing.lines().collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("cgroup.") || ["tasks", "notify_on_release"].contains(n)),
        "only its own cgroup's files: {names:?}"
    );
    assert!(!tail.contains("made"), "the hierarchy is read-only inside: {tail}");
    // Gone with the container, and a failed start leaves none either.
    assert!(!systemd.join(&own[1..]).exists());
    let failed = env.berth(&["run", "--rm", "--name", "broken", "busybox", "/no/such/binary"]);
    assert_eq!(failed.status.code(), Some(127));
    assert!(!systemd.join(env.cgroup_prefix()).join("broken").exists());
    env.ok(&["rm", "-f", "neighbour"]);
    assert!(!systemd.join(env.cgroup_prefix()).join("neighbour").exists());
}

/// `ps` CREATED is when the container was made: a restart keeps it (the
/// "Up" time is the start's); a new spec makes a new container.
#[test]
fn a_restart_keeps_the_creation_time_and_a_new_spec_gets_a_new_one() {
    let env = Env::new("created");
    let stack = |cmd: &str| format!("{}{}", env.image_doc(), container("kept", cmd, ""));
    let file = env.manifest("stack.yaml", &stack("sleep 1000"));
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let first = env.wait_for("container", "kept", 10, running);
    let created = first["createdAt"].as_i64().unwrap();
    env.ok(&["restart", "kept"]);
    let pid = first["pid"].clone();
    let again = env.wait_for("container", "kept", 20, |v| running(v) && v["pid"] != pid);
    assert_eq!(again["createdAt"].as_i64(), Some(created), "{again}");
    let started = first["startedAt"].as_i64().unwrap();
    assert!(started >= created, "{first}");
    assert!(again["startedAt"].as_i64().unwrap() > started, "{again}");
    // Stopped and started again: the same.
    env.ok(&["stop", "kept"]);
    env.ok(&["start", "kept"]);
    let third = env.wait_for("container", "kept", 20, |v| running(v) && v["pid"] != again["pid"]);
    assert_eq!(third["createdAt"].as_i64(), Some(created), "{third}");
    // A changed spec replaces the container: a new creation time.
    std::fs::write(&file, stack("sleep 999")).unwrap();
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let replaced = env.wait_for("container", "kept", 20, |v| running(v) && v["upToDate"] == true);
    assert!(replaced["createdAt"].as_i64().unwrap() > created, "{replaced}");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
}
