//! Lifecycle verbs against real containers: pause/unpause with the cgroup
//! freezer, stop/kill/start/restart, and the holds reconcile must not undo.
//! Run as root; each test has its own daemon and root.

mod common;

use std::time::{Duration, Instant};

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
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(pid), frozen_at, "a paused counter does not advance");
    assert_eq!(env.view("container", "tick")["status"], "Paused");
    assert!(env.ok(&["ps"]).contains("(Paused)"));
    // A pass (a re-apply) leaves it paused; exec is refused meanwhile.
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
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
    std::thread::sleep(Duration::from_millis(500));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(500));
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
    std::thread::sleep(Duration::from_millis(500));
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
}
