//! Health checks against real containers: status in get/ps/describe,
//! `dependsOn: {condition: healthy}`, onUnhealthy restart and stop, and a
//! check that hangs is killed at its timeout. Run as root.

mod common;

use std::time::{Duration, Instant};

use common::Env;

fn container(name: &str, command: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", {command:?}]\n  stopGracePeriod: 1s\n{extra}"
    )
}

#[test]
fn a_healthy_dependency_gates_its_dependant_and_status_shows_health() {
    let env = Env::new("healthdep");
    // db becomes healthy once /tmp/ready exists (after ~2 s); web waits for it.
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        container(
            "db",
            "sleep 2; touch /tmp/ready; echo ready; sleep 1000",
            "  healthcheck: {exec: [\"sh\", \"-c\", \"echo probing; test -e /tmp/ready\"], interval: 500ms, retries: 100}\n"
        ),
        container(
            "web",
            "echo web-started; sleep 1000",
            "  dependsOn: [{name: db, condition: healthy}]\n"
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    let started = Instant::now();
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    // While db is starting, web waits.
    let v = env.wait_for("container", "db", 10, |v| v["status"] == "Running (starting)");
    assert_eq!(v["health"]["status"], "starting", "{v}");
    let web = env.view("container", "web");
    assert!(web["status"].as_str().unwrap().contains("healthy"), "web waits: {web}");
    // Then db passes, and web starts.
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let db = env.view("container", "db");
    assert_eq!(db["status"], "Running (healthy)", "{db}");
    assert!(started.elapsed() >= Duration::from_secs(2), "web waited for the check");
    env.wait_for("container", "web", 10, |v| v["status"] == "Running");
    let log = db["health"]["log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["exitCode"], 0, "{db}");
    assert!(log.last().unwrap()["output"].as_str().unwrap().contains("probing"));
    assert!(env.ok(&["ps"]).contains("(healthy)"));
    let describe = env.ok(&["describe", "container/db"]);
    assert!(describe.contains("Health:     healthy"), "{describe}");
}

#[test]
fn an_unhealthy_container_is_restarted_or_stopped_and_a_hung_check_is_killed() {
    let env = Env::new("unhealthy");
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        // Healthy at first, then the file goes away: unhealthy, restarted.
        container(
            "flaky",
            "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 1000",
            "  healthcheck: {exec: [\"test\", \"-e\", \"/tmp/ok\"], interval: 300ms, retries: 2, onUnhealthy: restart}\n"
        ),
        // The check hangs: killed at its timeout, counted as failed; stopped.
        container(
            "hung",
            "sleep 1000",
            "  restartPolicy: always\n  healthcheck: {exec: [\"sleep\", \"1000\"], interval: 200ms, timeout: 300ms, retries: 2, onUnhealthy: stop}\n"
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let first = env.wait_for("container", "flaky", 10, |v| v["status"] == "Running (healthy)")["pid"].clone();
    let v = env.wait_for("container", "flaky", 20, |v| {
        v["restarts"].as_u64().unwrap_or(0) >= 1 && v["pid"].is_number() && v["pid"] != first
    });
    assert!(v["status"].as_str().unwrap().starts_with("Running"), "{v}");
    let events = env.ok(&["events"]);
    assert!(events.contains("unhealthy (onUnhealthy: restart)"), "{events}");

    let hung = env.wait_for("container", "hung", 20, |v| {
        v["status"].as_str().unwrap().starts_with("Stopped")
    });
    assert!(hung["pid"].is_null(), "{hung}");
    // Stopped by the check, it stays stopped despite restartPolicy always.
    // Proving a negative needs a window: anchored on the Stopped seen
    // above, longer than the first restart's backoff (100 ms), and closed
    // by an apply of an unrelated volume, which returns after a whole pass
    // that would have restarted it.
    std::thread::sleep(Duration::from_millis(800));
    let nudge = env.manifest(
        "nudge.yaml",
        "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: nudge}\n",
    );
    env.ok(&["apply", "-f", nudge.to_str().unwrap()]);
    assert!(env.view("container", "hung")["status"]
        .as_str()
        .unwrap()
        .starts_with("Stopped"));
    // Only timeouts can have failed it: the check itself never ends.
    let events = env.ok(&["events"]);
    assert!(events.contains("unhealthy (onUnhealthy: stop)"), "{events}");
}

#[test]
fn run_health_flags_make_a_healthcheck() {
    let env = Env::new("healthrun");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "probed",
        "--health-cmd",
        "test -e /tmp/up && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 1; touch /tmp/up; sleep 1000 & wait",
    ]);
    let v = env.wait_for("container", "probed", 10, |v| v["status"] == "Running (healthy)");
    let log = v["health"]["log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["output"], "fine\n", "{v}");
    // Failures before it passed counted (no start period): it went unhealthy first.
    let events = env.ok(&["events"]);
    assert!(events.contains("starting -> unhealthy"), "{events}");
    let bad = env.berth(&[
        "run",
        "--health-cmd",
        "true",
        "--health-interval",
        "soon",
        "busybox",
        "true",
    ]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--health-interval"));
}

#[test]
fn health_survives_a_daemon_restart_for_the_same_run() {
    let mut env = Env::new("healthkept");
    // Healthy at first, then failing (once /tmp/fail exists): a streak.
    let stack = format!(
        "{}{}",
        env.image_doc(),
        container(
            "db",
            "sleep 1000",
            "  healthcheck: {exec: [\"sh\", \"-c\", \"echo check-$$; test ! -e /tmp/fail\"], interval: 2s, retries: 100}\n"
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "db", 15, |v| v["status"] == "Running (healthy)");
    env.ok(&["exec", "db", "touch", "/tmp/fail"]);
    let before = env.wait_for("container", "db", 15, |v| v["health"]["failingStreak"] == 1);
    assert_eq!(before["health"]["status"], "healthy", "{before}");

    env.kill_daemon();
    env.start_daemon();
    // Before its next check (2 s on), the adopted run shows what it had.
    let after = env.view("container", "db");
    assert_eq!(after["pid"], before["pid"], "the same run, adopted");
    assert_eq!(after["health"]["status"], "healthy", "{after}");
    assert_eq!(after["health"]["failingStreak"], 1, "{after}");
    assert_eq!(
        after["health"]["log"], before["health"]["log"],
        "the last results are kept"
    );
    // And the checks go on from there.
    env.wait_for("container", "db", 15, |v| v["health"]["failingStreak"] == 2);

    // A new run starts over.
    env.ok(&["restart", "db"]);
    let fresh = env.wait_for("container", "db", 15, |v| {
        v["status"] == "Running (starting)" || v["status"] == "Running (healthy)"
    });
    assert_ne!(fresh["pid"], before["pid"]);
    assert_eq!(fresh["health"]["failingStreak"], 0, "{fresh}");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
}

/// A docker-archive of the busybox test image whose config has a
/// HEALTHCHECK (passing once /tmp/ok exists), named `reference`.
fn archive_with_healthcheck(env: &Env, reference: &str) -> std::path::PathBuf {
    use sha2::Digest;
    let layer = std::fs::read(common::busybox_tar()).unwrap();
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 300_000_000u64, "Retries": 100},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let config_name = format!("{:x}.json", sha2::Sha256::digest(config.as_bytes()));
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]).to_string();
    let path = env.dir.join("hc.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (name, bytes) in [
        (config_name.as_str(), config.as_bytes()),
        ("layer.tar", &layer[..]),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    }
    tar.finish().unwrap();
    path
}

#[test]
fn condition_healthy_takes_the_images_healthcheck_and_names_a_dependency_without_any() {
    let env = Env::new("imagehealth");
    let reference = "example.com/berth/hc:1";
    let archive = archive_with_healthcheck(&env, reference);
    env.ok(&["load", "-i", archive.to_str().unwrap()]);
    // db's only healthcheck is its image's; plain has none at all.
    let stack = format!(
        "{}{}{}{}{}",
        env.image_doc(),
        format_args!(
            "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: db}}\nspec: {{image: \"{reference}\", stopGracePeriod: 1s}}\n"
        ),
        container("web", "sleep 1000", "  dependsOn: [{name: db, condition: healthy}]\n"),
        container("plain", "sleep 1000", ""),
        container("waiter", "sleep 1000", "  dependsOn: [{name: plain, condition: healthy}]\n"),
    );
    let file = env.manifest("stack.yaml", &stack);
    // Accepted: validation cannot see the image's HEALTHCHECK.
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    // Anchored on db's check having failed twice (it runs every 300 ms):
    // web has had those results to wait on.
    env.wait_for("container", "db", 10, |v| {
        v["status"] == "Running (starting)"
            && v["health"]["log"]
                .as_array()
                .is_some_and(|log| log.len() >= 2 && log.iter().all(|r| r["exitCode"] != 0))
    });
    assert_ne!(
        env.view("container", "web")["status"],
        "Running",
        "web waits for db's check"
    );
    env.ok(&["exec", "db", "touch", "/tmp/ok"]);
    env.wait_for("container", "db", 10, |v| v["status"] == "Running (healthy)");
    env.wait_for("container", "web", 10, |v| v["status"] == "Running");

    // waiter says what it waits for, naming both, instead of waiting silently.
    let v = env.wait_for("container", "waiter", 10, |v| {
        v["status"].as_str().unwrap_or("").contains("no healthcheck")
    });
    let status = v["status"].as_str().unwrap();
    assert!(
        status.contains("container/waiter") && status.contains("container/plain"),
        "{status}"
    );
    assert!(env.ok(&["events"]).contains("NoHealthcheck"));
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
}
