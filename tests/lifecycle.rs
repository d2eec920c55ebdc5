//! Lifecycle verbs against real containers: pause/unpause with the cgroup
//! freezer, stop/kill/start/restart, and the holds reconcile must not undo.
//! Run as root; each test has its own daemon and root.

mod common;

use std::time::{Duration, Instant};

use common::sync::LineReader;
use common::Env;

fn container(name: &str, command: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", {command:?}]\n  stopGracePeriod: 1s\n  restartPolicy: always\n"
    )
}

fn apply(env: &Env, docs: &str) -> std::path::PathBuf {
    let file = env.manifest("stack.yaml", &format!("{}{docs}", env.image_doc()));
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    file
}

/// The counter the container writes, read through its init's root.
fn counter(pid: i64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/c"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

const COUNTING: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 0.02; done";

/// Waits out what a restart would take, anchored on `name` seen stopped:
/// a window longer than the first restart's backoff (100 ms) and the pass
/// its timer wakes, then a re-apply, which returns after a whole pass of its
/// own. A restart policy that overrode the hold would have acted by then.
fn stays_down(env: &Env, file: &std::path::Path, name: &str) {
    env.wait_for("container", name, 10, |v| {
        v["status"].as_str().unwrap_or("").starts_with("Stopped")
    });
    std::thread::sleep(Duration::from_millis(500));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
}

#[test]
fn pause_freezes_until_unpause_and_reconcile_keeps_it_paused() {
    let env = Env::new("pause");
    let file = apply(&env, &container("tick", COUNTING));
    let v = env.wait_for("container", "tick", 10, |v| v["status"] == "Running");
    let pid = v["pid"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(pid) < 3 {
        assert!(Instant::now() < deadline, "the counter never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["pause", "tick"]);
    let layout = berth::runtime::Layout::new(env.root.clone(), env.run.clone());
    assert!(berth::runtime::cgroup::is_frozen(&layout.cgroup_path("tick")));
    let frozen_at = counter(pid);
    // Proving a negative needs a window: anchored on the freezer saying
    // FROZEN (asserted above), it spans 15 of the counter's 20 ms ticks.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(pid), frozen_at, "a paused counter does not advance");
    assert_eq!(env.view("container", "tick")["status"], "Paused");
    assert!(env.ok(&["ps"]).contains("(Paused)"));
    // A pass (a re-apply) leaves it paused; exec is refused meanwhile. The
    // apply returns after its pass, so the freezer shows what it left.
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(berth::runtime::cgroup::is_frozen(&layout.cgroup_path("tick")));
    assert_eq!(counter(pid), frozen_at);
    let exec = env.berth(&["exec", "tick", "true"]);
    assert_eq!(exec.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&exec.stderr).contains("paused"), "{exec:?}");
    assert_eq!(env.berth(&["pause", "tick"]).status.code(), Some(1), "already paused");

    env.ok(&["unpause", "tick"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(pid) <= frozen_at {
        assert!(Instant::now() < deadline, "unpause did not resume the counter");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.view("container", "tick")["status"], "Running");
    assert_eq!(
        env.view("container", "tick")["pid"].as_i64(),
        Some(pid),
        "the same process"
    );
    // A paused container still stops (thawed first, so SIGTERM acts).
    env.ok(&["pause", "tick"]);
    let started = Instant::now();
    env.ok(&["stop", "tick"]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn stop_and_kill_are_kept_until_start_and_restart_makes_a_new_process() {
    let env = Env::new("holds");
    let file = apply(
        &env,
        &format!(
            "{}{}",
            container("svc", "trap 'exit 0' TERM; sleep 1000 & wait"),
            container("hup", "trap 'echo got-hup' HUP; while true; do sleep 0.05; done")
        ),
    );
    let first = env.wait_for("container", "svc", 10, |v| v["status"] == "Running")["pid"]
        .as_i64()
        .unwrap();
    env.ok(&["stop", "svc"]);
    // restartPolicy always, yet it stays stopped: through passes and a re-apply.
    stays_down(&env, &file, "svc");
    let v = env.view("container", "svc");
    assert!(v["status"].as_str().unwrap().starts_with("Stopped"), "{v}");
    assert!(v["pid"].is_null(), "{v}");
    assert_eq!(env.berth(&["exec", "svc", "true"]).status.code(), Some(1));

    env.ok(&["start", "svc"]);
    let second = env.wait_for("container", "svc", 10, |v| v["status"] == "Running")["pid"]
        .as_i64()
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(env.berth(&["start", "svc"]).status.code(), Some(1), "already running");

    env.ok(&["restart", "svc"]);
    let third = env.wait_for("container", "svc", 10, |v| v["status"] == "Running")["pid"]
        .as_i64()
        .unwrap();
    assert_ne!(second, third, "restart makes a new process");

    // kill (SIGKILL by default) stops it by hand too.
    env.ok(&["kill", "svc"]);
    let v = env.wait_for("container", "svc", 10, |v| {
        v["status"].as_str().unwrap().starts_with("Stopped")
    });
    assert_eq!(v["exit"]["code"], 137, "{v}");
    stays_down(&env, &file, "svc");
    assert!(env.view("container", "svc")["pid"].is_null());

    // Another signal is only delivered.
    env.wait_for("container", "hup", 10, |v| v["status"] == "Running");
    env.ok(&["kill", "-s", "HUP", "hup"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.log_text("hup").contains("got-hup") {
        assert!(Instant::now() < deadline, "HUP not delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.view("container", "hup")["status"], "Running");

    let bad = env.berth(&["kill", "-s", "NOPE", "hup"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown signal"));
    let missing = env.berth(&["pause", "nosuch"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("container/nosuch not found"));
    assert_eq!(env.berth(&["unpause", "hup"]).status.code(), Some(1), "not paused");

    // rm: a running container only with -f; a stopped one as is.
    let running = env.berth(&["rm", "hup"]);
    assert_eq!(running.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("is running"),
        "{running:?}"
    );
    assert_eq!(env.ok(&["rm", "svc"]), "svc\n");
    assert_eq!(env.ok(&["rm", "-f", "hup"]), "hup\n");
    let ps = env.ok(&["ps", "-a"]);
    assert!(!ps.contains("svc") && !ps.contains("hup"), "{ps}");
}

#[test]
fn stats_top_and_inspect_read_the_containers_cgroup_and_processes() {
    let env = Env::new("stats");
    apply(
        &env,
        &format!(
            "{}  resources: {{memory: 64Mi}}\n{}",
            container(
                "mem",
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; echo filled; sleep 1000 & wait"
            ),
            container("busy", "while :; do :; done")
        ),
    );
    let v = env.wait_for("container", "mem", 10, |v| v["status"] == "Running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.log_text("mem").contains("filled") {
        assert!(Instant::now() < deadline, "dd did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = env.ok(&["stats", "--no-stream", "mem", "busy"]);
    let row = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{out}"));
        line.split("   ")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let mem = row("mem");
    let (usage, limit) = mem[2].split_once(" / ").unwrap();
    assert_eq!(limit, "64.00MiB", "{out}");
    let shown_mib: f64 = usage
        .trim_end_matches("MiB")
        .parse()
        .unwrap_or_else(|_| panic!("{out}"));
    // The cgroup's own file, read now (the workload is idle, so it is stable).
    let layout = berth::runtime::Layout::new(env.root.clone(), env.run.clone());
    let rel = layout.cgroup_path("mem");
    let file = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .map(|root| {
            let v1 = format!("{root}{rel}/memory.usage_in_bytes");
            if std::path::Path::new(&v1).exists() {
                v1
            } else {
                format!("{root}{rel}/memory.current")
            }
        })
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    let kernel_mib = std::fs::read_to_string(&file).unwrap().trim().parse::<f64>().unwrap() / 1048576.0;
    assert!(
        (shown_mib - kernel_mib).abs() <= kernel_mib * 0.1 && shown_mib >= 24.0,
        "stats shows {shown_mib} MiB, {file} says {kernel_mib} MiB: {out}"
    );
    assert_eq!(mem[6], "2", "sh and sleep: {out}");
    let cpu = |name: &str| -> f64 { row(name)[1].trim_end_matches('%').parse().unwrap() };
    // A busy loop shows clearly more than a sleeping shell; not a fixed
    // share, which a loaded 2-core machine does not give it (18.9% once).
    assert!(
        cpu("busy") > 5.0 && cpu("busy") > 4.0 * cpu("mem"),
        "a busy loop uses CPU: {out}"
    );

    let top = env.ok(&["top", "mem"]);
    assert!(top.lines().any(|l| l.ends_with("sleep 1000")), "{top}");
    assert!(top.lines().next().unwrap().starts_with("PID"), "{top}");

    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--berth", "mem"])).unwrap();
    assert_eq!(inspect["pid"], v["pid"], "{inspect}");
    assert_eq!(inspect["running"], true);
    assert_eq!(inspect["paused"], false);
    assert_eq!(inspect["image"], "busybox");
    assert_eq!(inspect["runtime"]["hostname"], "mem");
    assert!(inspect["runtime"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/dev/shm"));
    assert!(inspect["logPath"].as_str().unwrap().ends_with("container.log"));
    let stopped = env.berth(&["stats", "--no-stream", "nosuch"]);
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("not found"));
}

#[test]
fn a_log_rotates_at_max_size_and_logs_follow_goes_on_across_rotations() {
    let env = Env::new("logrotate");
    apply(
        &env,
        &format!(
            "{}  logs: {{maxSize: 4Ki, maxFiles: 3}}\n",
            container(
                "chatty",
                "i=0; while [ $i -lt 400 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); sleep 0.005; done; echo done; sleep 1000"
            )
        ),
    );
    let mut follower = env
        .command()
        .args(["logs", "-f", "chatty"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = LineReader::new(follower.stdout.take().unwrap());
    let log = env.root.join("containers/chatty/container.log");
    // The follower is stopped once its output has reached the last line.
    lines.wait_for_line("done", 30);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    follower.wait().unwrap();
    let text = lines.finish().join("\n");
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.split('-').next()?.parse().ok())
        .collect();
    assert!(text.contains("done"), "{text}");
    assert_eq!(*numbers.last().unwrap(), 399);
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "logs -f lost or repeated lines across rotations: {numbers:?}"
    );
    // Far more than the three files hold: it followed through rotations.
    assert!(numbers.len() > 250, "{} lines", numbers.len());
    for n in 1..=2 {
        let rotated = std::fs::metadata(format!("{}.{n}", log.display())).unwrap();
        assert!(rotated.len() <= 4096);
    }
    assert!(!std::path::Path::new(&format!("{}.3", log.display())).exists());
    assert!(std::fs::metadata(&log).unwrap().len() <= 4096);
    // logs reads the rotated files first, then the current one, in order.
    let all = env.log_text("chatty");
    let kept: Vec<u32> = all
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.split('-').next()?.parse().ok())
        .collect();
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1) && kept.last() == Some(&399));

    assert_eq!(env.ok(&["logs", "--since", "1h", "chatty"]), all);
    assert_eq!(env.ok(&["logs", "--until", "2000-01-01T00:00:00Z", "chatty"]), "");
    let bad = env.berth(&["logs", "--since", "yesterday", "chatty"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"), "{bad:?}");
}

#[test]
fn cp_copies_both_ways_and_no_symlink_leads_out_of_the_container() {
    let env = Env::new("cp");
    // A host directory the container's symlinks point at, by host path.
    let host_dir = env.dir.join("hostdir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("secret"), "HOST-SECRET").unwrap();
    let hd = host_dir.display().to_string();
    apply(
        &env,
        &container(
            "box",
            &format!(
                "mkdir -p /data/sub; echo inside > /data/f; echo deep > /data/sub/g; ln -s {hd} /data/abs; ln -s ../../../../../../..{hd} /data/rel; echo ready; sleep 1000 & wait"
            ),
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.log_text("box").contains("ready") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = env.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display().to_string();
    env.ok(&["cp", "box:/data/f", &format!("{o}/f")]);
    assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "inside\n");
    env.ok(&["cp", "box:/data", &o]);
    assert_eq!(std::fs::read_to_string(out.join("data/sub/g")).unwrap(), "deep\n");
    // Symlinks come out as symlinks, not as what they point at.
    assert!(std::fs::symlink_metadata(out.join("data/abs"))
        .unwrap()
        .file_type()
        .is_symlink());

    for link in ["abs", "rel"] {
        // Reading through a symlink to a host path finds the container's own
        // (missing) path, never the host's file.
        let leak = env.berth(&["cp", &format!("box:/data/{link}/secret"), &format!("{o}/leak-{link}")]);
        assert!(!leak.status.success(), "cp followed /data/{link} out of the container");
        assert!(!out.join(format!("leak-{link}")).exists());
        // Writing through one cannot plant a file on the host either.
        let plant = env.berth(&["cp", &format!("{o}/f"), &format!("box:/data/{link}/planted")]);
        assert!(!plant.status.success(), "cp wrote through /data/{link}");
        assert!(!host_dir.join("planted").exists());
    }
    // Into the container: a file and a tree.
    std::fs::create_dir_all(out.join("tree/inner")).unwrap();
    std::fs::write(out.join("tree/inner/h"), "from-host").unwrap();
    env.ok(&["cp", &format!("{o}/tree"), "box:/data"]);
    assert_eq!(env.ok(&["exec", "box", "cat", "/data/tree/inner/h"]), "from-host");
    let missing = env.berth(&["cp", "nosuch:/x", &o]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn rename_moves_a_running_container_to_a_new_name_and_frees_the_old_one() {
    let mut env = Env::new("rename");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.ok(&["run", "-d", "--name", "peer", "busybox", "sleep", "1000"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "old",
        "busybox",
        "sh",
        "-c",
        "echo before-rename; trap 'exit 0' TERM; sleep 1000 & wait",
    ]);
    let pid = env.wait_for("container", "old", 10, |v| v["status"] == "Running")["pid"]
        .as_i64()
        .unwrap();
    env.wait_for("container", "peer", 10, |v| v["status"] == "Running");
    assert_eq!(env.ok(&["rename", "old", "new"]), "", "silent, as docker rename");

    // The same process, now under the new name; the old name names nothing.
    let v = env.view("container", "new");
    assert_eq!(v["pid"].as_i64(), Some(pid), "{v}");
    assert_eq!(
        env.ok(&["exec", "new", "cat", "/proc/1/cmdline"]).split('\0').next(),
        Some("sh")
    );
    assert!(env.ok(&["logs", "new"]).contains("before-rename"));
    let gone = env.berth(&["exec", "old", "true"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"), "{gone:?}");
    // Peers find it by its new name only: in /etc/hosts and in DNS.
    let hosts = env.ok(&["exec", "peer", "cat", "/etc/hosts"]);
    assert!(hosts.split_whitespace().any(|w| w == "new"), "{hosts}");
    assert!(!hosts.split_whitespace().any(|w| w == "old"), "{hosts}");
    let found = env.ok(&["exec", "peer", "nslookup", "new"]);
    assert!(found.contains("Address"), "{found}");
    assert!(env.berth(&["exec", "peer", "nslookup", "old"]).status.code() != Some(0));

    // The old name is free: a new container takes it, beside the renamed one.
    env.ok(&["run", "-d", "--name", "old", "busybox", "sleep", "999"]);
    let other = env.wait_for("container", "old", 10, |v| v["status"] == "Running")["pid"]
        .as_i64()
        .unwrap();
    assert_ne!(other, pid);
    assert!(env
        .ok(&["exec", "old", "cat", "/proc/1/cmdline"])
        .starts_with("sleep\0999"));
    // Taken names and manifest containers are refused, by name.
    let taken = env.berth(&["rename", "peer", "new"]);
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("already in use"),
        "{taken:?}"
    );
    let manifest = env.manifest(
        "svc.yaml",
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: svc}\nspec: {image: busybox, command: [sleep, '1000'], stopGracePeriod: 1s}\n",
    );
    env.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let refused = env.berth(&["rename", "svc", "other"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("manifest"),
        "{refused:?}"
    );

    // A client following a container (a foreground run) stays with it
    // through a rename: its output and exit code still come.
    let fg = env
        .command()
        .args([
            "run",
            "--name",
            "fg",
            "busybox",
            "sh",
            "-c",
            "sleep 2; echo after; exit 5",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    env.wait_for("container", "fg", 10, |v| v["status"] == "Running");
    env.ok(&["rename", "fg", "fg2"]);
    let out = fg.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after\n");

    // After a daemon crash it is still the renamed container, adopted.
    env.kill_daemon();
    env.start_daemon();
    let v = env.wait_for("container", "new", 10, |v| v["status"] == "Running");
    assert_eq!(v["pid"].as_i64(), Some(pid), "{v}");
    assert_eq!(env.view("container", "old")["pid"].as_i64(), Some(other));
    assert!(env.ok(&["exec", "new", "cat", "/proc/1/cmdline"]).starts_with("sh\0"));
    env.ok(&["stop", "new"]);
    env.wait_for("container", "new", 10, |v| {
        v["status"].as_str().unwrap().starts_with("Stopped")
    });
    assert_eq!(
        env.view("container", "old")["pid"].as_i64(),
        Some(other),
        "the other one runs on"
    );
    env.ok(&["rm", "-f", "new", "old", "peer", "fg2"]);
    env.ok(&["delete", "-f", manifest.to_str().unwrap()]);
}

#[test]
fn logs_follow_that_falls_many_rotations_behind_reads_every_file_between() {
    let env = Env::new("logburst");
    // A burst far faster than the follower polls: many rotations between
    // two of its reads; maxFiles keeps them all, so nothing may be missing.
    apply(
        &env,
        &format!(
            "{}  logs: {{maxSize: 4Ki, maxFiles: 60}}\n",
            container(
                "burst",
                "sleep 2; i=0; while [ $i -lt 2000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done; echo done; sleep 1000"
            )
        ),
    );
    let mut follower = env
        .command()
        .args(["logs", "-f", "burst"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: 2000 lines are more than a pipe holds.
    let mut lines = LineReader::new(follower.stdout.take().unwrap());
    let log = env.root.join("containers/burst/container.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains(" done") {
        assert!(Instant::now() < deadline, "the container did not finish writing");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::path::Path::new(&format!("{}.10", log.display())).exists(),
        "it rotated many times"
    );
    // The follower is stopped once its output has reached the last line.
    lines.wait_for_line("done", 30);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    follower.wait().unwrap();
    let text = lines.finish().join("\n");
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.split('-').next()?.parse().ok())
        .collect();
    let missing: Vec<u32> = (0..2000).filter(|n| !numbers.contains(n)).collect();
    assert_eq!(numbers.len(), 2000, "lines lost or repeated; missing {missing:?}");
    assert!(numbers.iter().enumerate().all(|(i, n)| *n == i as u32), "out of order");
    assert!(text.contains("done"));
}
