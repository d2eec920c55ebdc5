//! Rollouts as root against real containers (`spec.update`): a client on
//! the host hammering a published port on 127.0.0.1 sees no failed request
//! while a start-first change rolls out, and sees the gap of a stop-first
//! one; a new version that never becomes healthy is removed and the old one
//! serves on; a name is in DNS only once its container is healthy. Traffic
//! stays on loopback and inside berth's own namespaces.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sync::{wait_until, PortHold};
use common::Env;

fn network_doc(name: &str, spec: &str) -> String {
    format!("---\napiVersion: berth/v1\nkind: Network\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// httpd serving `$V` on port 80; healthy once it answers, unless `$V` is `bad`.
const HTTPD: &str = "mkdir -p /www && echo version-$V > /www/index.html && exec httpd -f -p 80 -h /www";
const CHECK: &str = "[ \"$V\" != bad ] && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80 | grep -q 200";

/// Container `web` on network `pub` publishing `port`, version `v`, with
/// `update` as its `spec.update`.
fn web(port: u16, v: &str, update: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec:\n  image: busybox\n  \
         networks: [pub]\n  ports: [{{host: {port}, container: 80}}]\n  env: {{V: \"{v}\"}}\n  \
         stopGracePeriod: 1s\n  update: {update}\n  \
         healthcheck: {{exec: [\"sh\", \"-c\", {CHECK:?}], interval: 200ms, retries: 2}}\n  \
         command: [\"sh\", \"-c\", {HTTPD:?}]\n"
    )
}

/// One `GET /` on 127.0.0.1:`port`: the body's version, or why it failed.
fn get(port: u16) -> Result<String, String> {
    let attempt = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    match attempt() {
        Ok(text) if text.starts_with("HTTP/1.") && text.contains(" 200 ") => text
            .lines()
            .find_map(|l| l.strip_prefix("version-"))
            .map(str::to_string)
            .ok_or(text),
        Ok(text) => Err(format!("answer: {text:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A client sending requests one after another until stopped (or a bound
/// on their count), counting failures and the versions that answered.
struct Hammer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    versions: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hammer {
    const MAX_REQUESTS: u64 = 200_000;

    fn start(port: u16) -> Hammer {
        let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (failures, versions) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let thread = {
            let (stop, sent, failures, versions) = (stop.clone(), sent.clone(), failures.clone(), versions.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && sent.load(Ordering::SeqCst) < Self::MAX_REQUESTS {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match get(port) {
                        Ok(v) => {
                            let mut seen = versions.lock().unwrap();
                            if seen.last() != Some(&v) {
                                seen.push(v);
                            }
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Hammer {
            stop,
            sent,
            failures,
            versions,
            thread: Some(thread),
        }
    }

    fn last_version(&self) -> Option<String> {
        self.versions.lock().unwrap().last().cloned()
    }

    /// Stops it; (requests sent, failures, versions seen in order).
    fn finish(mut self) -> (u64, Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        let versions = std::mem::take(&mut *self.versions.lock().unwrap());
        (self.sent.load(Ordering::SeqCst), failures, versions)
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Applies `web` at version `v` and waits until the port serves it.
fn roll(env: &Env, port: u16, v: &str, update: &str, hammer: Option<&Hammer>) {
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("pub", "{}"),
        web(port, v, update)
    );
    let file = env.manifest("web.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let what = format!("version {v} serves on {port}");
    match hammer {
        Some(h) => wait_until(60, &what, || h.last_version().as_deref() == Some(v)),
        None => wait_until(60, &what, || get(port).as_deref() == Ok(v)),
    }
}

/// The old container of a rollout is gone once its events say it is done.
fn wait_rollout_done(env: &Env, count: usize) {
    wait_until(60, "the rollout is done", || {
        env.ok(&["events"]).matches("RolloutDone").count() >= count
    });
}

#[test]
fn start_first_serves_every_request_while_stop_first_shows_the_gap() {
    let env = Env::new("rollzero");
    let held = PortHold::tcp();
    let port = held.port;
    let start_first = "{order: start-first, healthTimeout: 30s}";
    roll(&env, port, "1", start_first, None);

    let hammer = Hammer::start(port);
    wait_until(20, "the client got answers", || hammer.last_version().is_some());
    roll(&env, port, "2", start_first, Some(&hammer));
    wait_rollout_done(&env, 1);
    let (sent, failures, versions) = hammer.finish();
    assert!(
        failures.is_empty(),
        "start-first: {} of {sent} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(versions, ["1", "2"], "{versions:?}");
    let described = env.ok(&["describe", "container/web"]);
    assert!(described.contains("RolloutSwitched"), "{described}");
    // Only the new container is left; its name is the old one's.
    assert!(!env.berth(&["get", "container", "web.next"]).status.success());
    assert!(!env.berth(&["get", "container", "web.old"]).status.success());

    // The same change stop-first: the port refuses while nothing serves.
    let hammer = Hammer::start(port);
    wait_until(20, "the client got answers", || hammer.last_version().is_some());
    roll(&env, port, "3", "{order: stop-first}", Some(&hammer));
    let (sent, failures, versions) = hammer.finish();
    assert!(!failures.is_empty(), "stop-first lost none of {sent} requests");
    assert_eq!(versions, ["2", "3"], "{versions:?}");
}

#[test]
fn a_new_version_that_never_becomes_healthy_is_removed_and_rolled_back() {
    let env = Env::new("rollback");
    let held = PortHold::tcp();
    let port = held.port;
    roll(&env, port, "1", "{order: start-first, healthTimeout: 3s}", None);

    let hammer = Hammer::start(port);
    wait_until(20, "the client got answers", || hammer.last_version().is_some());
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("pub", "{}"),
        web(
            port,
            "bad",
            "{order: start-first, healthTimeout: 3s, onFailure: rollback}"
        )
    );
    let file = env.manifest("web.yaml", &stack);
    // The pass reports the failed rollout.
    let _ = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    wait_until(60, "the rollout failed", || env.ok(&["events"]).contains("RolledBack"));
    let (sent, failures, versions) = hammer.finish();
    assert!(failures.is_empty(), "{} of {sent} failed: {failures:?}", failures.len());
    assert_eq!(versions, ["1"]);
    assert!(!env.berth(&["get", "container", "web.next"]).status.success());
    let events = env.ok(&["events"]);
    assert!(events.contains("RolloutFailed"), "{events}");
    // The previous spec is the desired one again: nothing is retried.
    let described = env.ok(&["describe", "container/web"]);
    assert!(
        described.contains("became unhealthy (its check exited 1"),
        "{described}"
    );
    assert!(described.contains("RolledBack"), "{described}");
    let nudge = env.manifest(
        "nudge.yaml",
        "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: nudge}\n",
    );
    env.ok(&["apply", "-f", nudge.to_str().unwrap()]);
    assert_eq!(get(port).as_deref(), Ok("1"));
    assert_eq!(env.ok(&["events"]).matches("RolloutStarted").count(), 1);
}

#[test]
fn a_paused_rollout_keeps_the_old_version_until_the_spec_changes() {
    let env = Env::new("rollpause");
    let held = PortHold::tcp();
    let port = held.port;
    let pause = "{order: start-first, healthTimeout: 3s, onFailure: pause}";
    roll(&env, port, "1", pause, None);
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("pub", "{}"),
        web(port, "bad", pause)
    );
    let file = env.manifest("web.yaml", &stack);
    let _ = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    wait_until(60, "the rollout failed", || {
        env.ok(&["events"]).contains("RolloutFailed")
    });
    assert_eq!(get(port).as_deref(), Ok("1"));
    let nudge = env.manifest(
        "nudge.yaml",
        "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: nudge}\n",
    );
    env.ok(&["apply", "-f", nudge.to_str().unwrap()]);
    assert_eq!(env.ok(&["events"]).matches("RolloutStarted").count(), 1);
    // A new spec is tried.
    roll(&env, port, "2", pause, None);
    wait_rollout_done(&env, 1);
}

#[test]
fn spec_update_with_a_bad_value_is_refused_naming_the_field() {
    let env = Env::new("rollbad");
    let stack = format!(
        "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec:\n  image: busybox\n  \
         network: host\n  update: {{order: start-first}}\n  command: [\"true\"]\n",
        env.image_doc()
    );
    let file = env.manifest("web.yaml", &stack);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("spec.update.order"), "{err}");
    let bad = stack.replace(
        "network: host\n  update: {order: start-first}",
        "update: {order: sideways}",
    );
    let file = env.manifest("web.yaml", &bad);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("order"), "{err}");
    assert!(!env.berth(&["get", "container", "web"]).status.success());
}

#[test]
#[ignore = "flaky since the coalesced hosts/DNS refresh (issue 23) met health-gated names (issue 24): \
            about 1 run in 4 a healthy container's name is answered once, then SERVFAIL for good; open bug"]
fn dns_and_hosts_name_a_container_only_once_it_is_healthy() {
    let env = Env::new("rolldns");
    let container = |name: &str, extra: &str, script: &str| {
        format!(
            "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  \
             restartPolicy: never\n{extra}  command: [\"sh\", \"-c\", {script:?}]\n"
        )
    };
    // An internal network: DNS forwards nothing beyond berth's own names.
    let stack = format!(
        "{}{}{}{}{}",
        env.image_doc(),
        network_doc("dn", "{subnet: 10.89.246.0/24, internal: true}"),
        container(
            "well",
            "  networks: [{name: dn, ipv4Address: 10.89.246.8}]\n  healthcheck: {exec: [\"true\"], interval: 200ms}\n",
            "sleep 1000"
        ),
        container(
            "sick",
            "  networks: [{name: dn, ipv4Address: 10.89.246.9, aliases: [ill]}]\n  \
             healthcheck: {exec: [\"false\"], interval: 200ms, retries: 1}\n",
            "sleep 1000"
        ),
        container(
            "cli",
            "  networks: [dn]\n",
            "for i in $(seq 100); do nslookup well | grep -q 10.89.246.8 && break; sleep 0.2; done; \
             nslookup well | grep -q 10.89.246.8 || exit 3; grep -q 10.89.246.8 /etc/hosts || exit 4; \
             nslookup sick | grep -q 10.89.246.9 && exit 5; nslookup ill | grep -q 10.89.246.9 && exit 6; \
             grep 10.89.246.9 /etc/hosts && exit 7; exit 0"
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "sick", 20, |v| v["status"] == "Running (unhealthy)");
    let v = env.wait_for("container", "cli", 60, |v| v["exit"].is_object());
    assert_eq!(v["exit"]["code"].as_i64(), Some(0), "{}", env.log_text("cli"));
}

#[test]
fn a_rollout_cut_short_by_a_daemon_crash_leaves_no_container_behind() {
    let mut env = Env::new("rollcrash");
    let held = PortHold::tcp();
    let port = held.port;
    roll(&env, port, "1", "{order: start-first}", None);
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("pub", "{}"),
        // Failures in its start period do not count: it stays `starting`.
        web(
            port,
            "bad",
            "{order: start-first, healthTimeout: 15s, onFailure: pause}"
        )
        .replace("retries: 2}", "retries: 2, startPeriod: 600s}")
    );
    let file = env.manifest("web.yaml", &stack);
    // The pass waits on the new version, which is never healthy.
    let mut apply = env
        .command()
        .args(["apply", "-f", file.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_until(60, "the new version runs beside the old one", || {
        env.berth(&["get", "container", "web.next"]).status.success() && env.shim_pids().len() == 2
    });
    env.kill_daemon();
    let _ = apply.wait();
    assert_eq!(
        get(port).as_deref(),
        Ok("1"),
        "the old version stopped serving with the daemon"
    );
    env.start_daemon();
    // The next pass removes what the rollout left and starts it again.
    wait_until(60, "the leftover is removed", || {
        env.ok(&["events"]).matches("RolloutStarted").count() >= 2
    });
    assert_eq!(get(port).as_deref(), Ok("1"));
    // It fails again (paused): the old one serves, nothing else is left.
    wait_until(60, "the second rollout failed", || {
        env.ok(&["events"]).contains("RolloutFailed")
    });
    assert!(!env.berth(&["get", "container", "web.next"]).status.success());
    assert_eq!(env.shim_pids().len(), 1, "{:?}", env.shim_pids());
    assert_eq!(get(port).as_deref(), Ok("1"));
}
