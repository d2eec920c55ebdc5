//! The rest of Docker's container API (issue 22): top, stats, update,
//! export, archive (`docker cp`), events, stop/restart timeouts and signals,
//! system df, auth, volume and network prune, and the 501 of the families
//! berth does not serve. Each through the real docker CLI against a daemon
//! with its own root, and a hostile twin by raw HTTP that checks Docker's
//! status, its `{"message": …}` and that nothing was acted on.

mod common;
#[path = "common/docker.rs"]
mod docker_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::Env;
use docker_support::*;

/// The docker CLI against this Env's daemon, for a child that is read as it runs.
fn docker_cmd(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", docker_socket(env).display()))
        .env("DOCKER_CONFIG", docker_config(env))
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn raw_typed(env: &Env, method: &str, path: &str, content_type: &str, body: &[u8]) -> Answer {
    raw_with(env, method, path, &[&format!("Content-Type: {content_type}")], body)
}

/// A raw request with a JSON body.
fn raw(env: &Env, method: &str, path: &str, body: &[u8]) -> Answer {
    raw_typed(env, method, path, "application/json", body)
}

/// `.State.Status .State.ExitCode` of a container, as docker inspect says.
fn state_of(env: &Env, name: &str) -> String {
    docker_ok(env, &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name])
        .trim()
        .to_string()
}

/// A container that runs until told: `trap` says what a signal does.
fn run_looping(env: &Env, name: &str, traps: &str) {
    let script = format!("{traps}; echo ready; while true; do sleep 0.1; done");
    docker_ok(env, &["run", "-d", "--name", name, "busybox", "sh", "-c", &script]);
    // Its traps are set once it has said so.
    for _ in 0..300 {
        if docker_ok(env, &["logs", name]).contains("ready") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{name} never said ready: {}", env.daemon_log());
}

#[test]
fn stop_and_restart_take_dockers_timeout_and_signal() {
    let env = env_with_busybox("dcli-stop");
    // --signal: the first signal is the caller's, and the container acts on it.
    run_looping(&env, "usr", "trap 'echo got-usr1; exit 7' USR1");
    docker_ok(&env, &["stop", "--signal", "USR1", "usr"]);
    assert_eq!(state_of(&env, "usr"), "exited 7");
    assert!(docker_ok(&env, &["logs", "usr"]).contains("got-usr1"));

    // -t: a container that ignores SIGTERM is killed once it is over.
    run_looping(&env, "deaf", "trap '' TERM");
    docker_ok(&env, &["stop", "-t", "1", "deaf"]);
    assert_eq!(state_of(&env, "deaf"), "exited 137");

    // -t -1 waits for ever: one that exits on TERM stops with its own code.
    run_looping(&env, "polite", "trap 'exit 3' TERM");
    docker_ok(&env, &["stop", "-t", "-1", "polite"]);
    assert_eq!(state_of(&env, "polite"), "exited 3");

    // restart with both: stopped by the signal, then running again.
    docker_ok(&env, &["start", "usr"]);
    docker_ok(&env, &["restart", "-t", "5", "--signal", "KILL", "usr"]);
    assert_eq!(state_of(&env, "usr"), "running 0");
    docker_ok(&env, &["rm", "-f", "usr", "deaf", "polite"]);
}

#[test]
fn hostile_stop_parameters_are_refused_by_name_and_nothing_stops() {
    let env = env_with_busybox("dcli-stop-bad");
    run_looping(&env, "web", "true");
    for (query, field) in [
        ("t=soon", "parameter t"),
        ("t=-2", "parameter t"),
        ("t=1e3", "parameter t"),
        ("signal=SIGNOPE", "parameter signal"),
        ("signal=99999", "parameter signal"),
    ] {
        for verb in ["stop", "restart"] {
            let a = raw(&env, "POST", &format!("/v1.47/containers/web/{verb}?{query}"), b"");
            assert_eq!(a.status, 400, "{verb}?{query}: {}", String::from_utf8_lossy(&a.body));
            assert!(a.message().contains(field), "{verb}?{query}: {}", a.message());
        }
    }
    assert_eq!(state_of(&env, "web"), "running 0", "nothing stopped it");
    let a = raw(&env, "POST", "/containers/ghost/stop?t=1", b"");
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    let a = raw(&env, "POST", "/containers/..%2fx/stop", b"");
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    docker_ok(&env, &["rm", "-f", "web"]);
}

#[test]
fn unsupported_families_answer_501_saying_so() {
    let env = Env::new("dcli-501");
    for family in [
        "swarm",
        "services",
        "nodes",
        "tasks",
        "secrets",
        "configs",
        "plugins",
        "distribution/busybox/json",
        "session",
    ] {
        for path in [format!("/{family}"), format!("/v1.47/{family}")] {
            let a = raw(&env, "GET", &path, b"");
            assert_eq!(a.status, 501, "{path}: {}", String::from_utf8_lossy(&a.body));
            assert!(a.message().contains("berth does not serve"), "{path}: {}", a.message());
        }
    }
    let out = docker(&env, &["plugin", "ls"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("berth does not serve"), "{}", stderr(&out));
    // Anything else is still a 404.
    assert_eq!(raw(&env, "GET", "/nonsense", b"").status, 404);
}

#[test]
fn network_prune_keeps_the_predefined_networks_and_volume_prune_takes_filters() {
    let env = env_with_busybox("dcli-prune");
    // `run` makes the default bridge; once nothing uses it, prune keeps it.
    docker_ok(&env, &["run", "--rm", "busybox", "true"]);
    docker_ok(&env, &["network", "create", "unused"]);
    let out = docker_ok(&env, &["network", "prune", "-f"]);
    assert!(out.contains("unused"), "{out}");
    let left = docker_ok(&env, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(left.lines().any(|l| l == "bridge"), "{left}");
    assert!(!left.lines().any(|l| l == "unused"), "{left}");

    docker_ok(&env, &["volume", "create", "used"]);
    docker_ok(&env, &["volume", "create", "plain"]);
    docker_ok(&env, &["volume", "create", "--label", "tier=scratch", "marked"]);
    docker_ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "user",
            "-v",
            "used:/data",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    // Without --all only anonymous volumes go: these are named.
    docker_ok(&env, &["volume", "prune", "-f"]);
    let vols = || docker_ok(&env, &["volume", "ls", "--format", "{{.Name}}"]);
    assert_eq!(vols().lines().count(), 3, "{}", vols());
    // A label narrows --all to it.
    let out = docker_ok(&env, &["volume", "prune", "-af", "--filter", "label=tier=scratch"]);
    assert!(out.contains("marked"), "{out}");
    assert!(!vols().contains("marked"));
    assert!(vols().contains("plain"));
    // --all takes every unused one, never one in use.
    let out = docker_ok(&env, &["volume", "prune", "-af"]);
    assert!(out.contains("plain") && !out.contains("used"), "{out}");
    assert_eq!(vols().trim(), "used");
    docker_ok(&env, &["rm", "-f", "user"]);
    docker_ok(&env, &["volume", "rm", "used"]);
}

#[test]
fn hostile_prune_filters_are_refused_and_nothing_is_pruned() {
    let env = env_with_busybox("dcli-prune-bad");
    docker_ok(&env, &["volume", "create", "keep"]);
    for (filters, what) in [
        (r#"{"dangling":{"true":true}}"#, "filters.dangling"),
        (r#"{"all":{"maybe":true}}"#, "all=maybe"),
        (r#"[1]"#, "filters"),
    ] {
        let path = format!("/volumes/prune?filters={}", urlencode(filters));
        let a = raw(&env, "POST", &path, b"");
        assert_eq!(a.status, 400, "{filters}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains(what), "{filters}: {}", a.message());
    }
    assert!(docker_ok(&env, &["volume", "ls", "-q"]).contains("keep"));
    // Deleting a predefined network by prune never happens; by name it is
    // the user's call, as in Docker, so only prune is checked here.
    docker_ok(&env, &["run", "--rm", "busybox", "true"]);
    let a = raw(&env, "POST", "/networks/prune", b"");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(!String::from_utf8_lossy(&a.body).contains("bridge"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn top_lists_a_containers_processes_as_ps_ef() {
    let env = env_with_busybox("dcli-top");
    run_looping(&env, "web", "true");
    let out = docker_ok(&env, &["top", "web"]);
    let header = out.lines().next().unwrap_or_default();
    for col in ["UID", "PID", "PPID", "TIME", "CMD"] {
        assert!(header.contains(col), "{out}");
    }
    assert!(out.lines().skip(1).any(|l| l.contains("sh -c")), "{out}");
    assert!(out.lines().skip(1).all(|l| l.starts_with("root")), "{out}");
    assert_eq!(docker_ok(&env, &["top", "web", "-ef"]).lines().next(), Some(header));
    docker_ok(&env, &["rm", "-f", "web"]);
}

#[test]
fn hostile_top_requests_are_refused_by_name() {
    let env = env_with_busybox("dcli-top-bad");
    run_looping(&env, "web", "true");
    let a = raw(&env, "GET", "/containers/web/top?ps_args=aux", b"");
    assert_eq!(a.status, 400);
    assert!(a.message().starts_with("ps_args"), "{}", a.message());
    let a = raw(
        &env,
        "GET",
        "/containers/web/top?ps_args=-o%20pid%3B%20rm%20-rf%20%2F",
        b"",
    );
    assert_eq!(a.status, 400);
    let a = raw(&env, "GET", "/containers/ghost/top", b"");
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    docker_ok(&env, &["create", "--name", "idle", "busybox", "true"]);
    let a = raw(&env, "GET", "/containers/idle/top", b"");
    assert_eq!(a.status, 409, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(state_of(&env, "web"), "running 0");
    docker_ok(&env, &["rm", "-f", "web", "idle"]);
}

#[test]
fn update_changes_limits_in_place_and_refuses_what_it_cannot() {
    let env = env_with_busybox("dcli-update");
    run_looping(&env, "web", "true");
    docker_ok(&env, &["update", "--memory", "64m", "--pids-limit", "50", "web"]);
    let limits = || {
        docker_ok(
            &env,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
                "web",
            ],
        )
    };
    assert_eq!(limits().trim(), "67108864 50");
    // The kernel has the memory limit: stats reads it from the cgroup.
    let mem = docker_ok(&env, &["stats", "--no-stream", "--format", "{{.MemUsage}}", "web"]);
    assert!(mem.trim().ends_with("/ 64MiB"), "{mem}");
    docker_ok(&env, &["update", "--restart", "unless-stopped", "web"]);
    assert_eq!(
        docker_ok(&env, &["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "web"]).trim(),
        "unless-stopped"
    );
    assert_eq!(state_of(&env, "web"), "running 0", "its processes ran on");

    // Hostile: refused by field name, nothing changed.
    for (body, what) in [
        (r#"{"KernelMemory": 1048576}"#, "KernelMemory"),
        (
            r#"{"Memory": 1048576, "Devices": [{"PathOnHost": "/dev/mem"}]}"#,
            "Devices",
        ),
        (r#"{"Memory": -5}"#, "Memory"),
        (
            r#"{"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}"#,
            "MaximumRetryCount",
        ),
        (r#"{"Memory": "lots"}"#, "invalid update body"),
        (r#"[]"#, "JSON object"),
        (r#"{"Memory": "#, "invalid JSON"),
    ] {
        let a = raw(&env, "POST", "/v1.47/containers/web/update", body.as_bytes());
        assert_eq!(a.status, 400, "{body}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains(what), "{body}: {}", a.message());
    }
    assert_eq!(limits().trim(), "67108864 50", "nothing was half-applied");
    let a = raw(&env, "POST", "/containers/ghost/update", br#"{"Memory": 1048576}"#);
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    docker_ok(&env, &["rm", "-f", "web"]);
}

#[test]
fn export_streams_the_root_filesystem_as_a_tar() {
    let env = env_with_busybox("dcli-export");
    run_looping(&env, "web", "echo made > /made-here");
    let tar = env.dir.join("web.tar");
    docker_ok(&env, &["export", "-o", tar.to_str().unwrap(), "web"]);
    let listed = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let names = String::from_utf8_lossy(&listed.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "bin/busybox"),
        "{names}"
    );
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "made-here"),
        "{names}"
    );
    // Through a pipe, as `docker export c | tar t`.
    let out = docker(&env, &["export", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut tar_t = Command::new("tar")
        .arg("t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tar_t.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let piped = tar_t.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&piped.stdout), names);
    // No scratch file is left behind.
    let scratch = env.root.join("images").join("tmp");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().starts_with("export-")),
        "{left:?}"
    );
    // Hostile: unknown and bad names.
    let a = raw(&env, "GET", "/containers/ghost/export", b"");
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    let a = raw(&env, "GET", "/containers/..%2f..%2fetc/export", b"");
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    docker_ok(&env, &["rm", "-f", "web"]);
}

#[test]
fn stats_show_real_numbers_once_and_stream_until_the_client_goes() {
    let env = env_with_busybox("dcli-stats");
    docker_ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "busy",
            "--memory",
            "64m",
            "busybox",
            "sh",
            "-c",
            "while true; do :; done",
        ],
    );
    let out = docker_ok(
        &env,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
            "busy",
        ],
    );
    let cols: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(cols.len(), 6, "{out}");
    assert_eq!(cols[0], "busy");
    let cpu: f64 = cols[1].trim_end_matches('%').parse().unwrap_or(-1.0);
    assert!(cpu > 0.0, "a spinning shell uses CPU: {out}");
    assert!(cols[2].ends_with("/ 64MiB") && !cols[2].starts_with("0B"), "{out}");
    assert!(cols[3].contains(" / "), "{out}");
    assert!(cols[4].contains(" / "), "{out}");
    assert!(cols[5].parse::<u32>().unwrap_or(0) >= 1, "{out}");
    // The default table has Docker's columns.
    let table = docker_ok(&env, &["stats", "--no-stream", "busy"]);
    for col in ["CPU %", "MEM USAGE / LIMIT", "NET I/O", "BLOCK I/O", "PIDS"] {
        assert!(table.contains(col), "{table}");
    }
    // one-shot: a single document without a previous reading.
    let a = raw(&env, "GET", "/containers/busy/stats?stream=false&one-shot=true", b"");
    assert_eq!(a.status, 200);
    let doc = a.json();
    assert_eq!(doc["name"], "/busy");
    assert!(doc["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert!(doc["precpu_stats"]["system_cpu_usage"].is_null());

    // Streaming: documents keep coming until the client hangs up.
    let mut s = std::os::unix::net::UnixStream::connect(docker_socket(&env)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /v1.47/containers/busy/stats HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while seen.windows(6).filter(|w| w == b"\"read\"").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);
    // The daemon serves on after the client went.
    assert_eq!(state_of(&env, "busy"), "running 0");

    // Hostile: bad parameters and unknown names.
    for (query, what) in [
        ("stream=perhaps", "stream"),
        ("stream=true&one-shot=true", "one-shot"),
        ("one-shot=2", "one-shot"),
    ] {
        let a = raw(&env, "GET", &format!("/containers/busy/stats?{query}"), b"");
        assert_eq!(a.status, 400, "{query}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains(what), "{query}: {}", a.message());
    }
    let a = raw(&env, "GET", "/containers/ghost/stats?stream=false", b"");
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    docker_ok(&env, &["rm", "-f", "busy"]);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn events_show_a_containers_life_in_order_and_a_live_stream_sees_a_start() {
    let env = env_with_busybox("dcli-events");
    let since = (unix_now() - 1).to_string();
    let out = docker(&env, &["run", "--name", "c", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    docker_ok(&env, &["run", "--name", "other", "busybox", "true"]);
    // `until` a second ahead: the stream ends by itself once it passes.
    let until = (unix_now() + 1).to_string();
    let out = docker_ok(
        &env,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=c",
            "--format",
            "{{json .}}",
        ],
    );
    let msgs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = msgs.iter().map(|m| m["Action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "start", "die"], "{out}");
    let die = &msgs[2];
    assert_eq!(die["Type"], "container");
    assert_eq!(die["Actor"]["ID"], "c");
    assert_eq!(die["Actor"]["Attributes"]["name"], "c");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(die["Actor"]["Attributes"]["image"], "busybox:latest");
    assert_eq!(
        (die["status"].as_str(), die["id"].as_str(), die["scope"].as_str()),
        (Some("die"), Some("c"), Some("local"))
    );
    assert!(die["timeNano"].as_i64().unwrap() / 1_000_000_000 == die["time"].as_i64().unwrap());
    // Filters by type and event narrow it; other's events are there too.
    let out = docker_ok(
        &env,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=container",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.ID}}",
        ],
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["c", "other"], "{out}");
    let out = docker_ok(
        &env,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=network",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    assert!(out.lines().any(|l| l == "create bridge"), "{out}");

    // Live: a follower started before the container sees its start.
    let now = unix_now().to_string();
    let mut follower = docker_cmd(
        &env,
        &[
            "events",
            "--since",
            &now,
            "--filter",
            "container=live",
            "--filter",
            "event=start",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ],
    )
    .spawn()
    .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    docker_ok(&env, &["run", "-d", "--name", "live", "busybox", "sleep", "1000"]);
    let line = rx.recv_timeout(std::time::Duration::from_secs(60));
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(line.as_deref(), Ok("start live"));
    docker_ok(&env, &["rm", "-f", "c", "other", "live"]);
}

#[test]
fn hostile_event_queries_are_refused_by_name() {
    let env = Env::new("dcli-events-bad");
    for (query, what) in [
        ("since=soon", "parameter since"),
        ("until=1.2.3", "parameter until"),
        ("filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", "filters.bogus"),
        ("filters=%7B%22type%22%3A%5B%22weird%22%5D%7D", "type=weird"),
        ("filters=nope", "filters"),
    ] {
        let a = raw(&env, "GET", &format!("/v1.47/events?{query}"), b"");
        assert_eq!(a.status, 400, "{query}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains(what), "{query}: {}", a.message());
    }
}

#[test]
fn system_df_has_dockers_lists_and_auth_refuses_what_it_cannot_check() {
    let env = env_with_busybox("dcli-df");
    docker_ok(&env, &["volume", "create", "data"]);
    docker_ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-v",
            "data:/data",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let out = docker_ok(
        &env,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}",
        ],
    );
    let row = |t: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(&format!("{t}|")))
            .unwrap_or_else(|| panic!("no {t} row: {out}"))
            .split('|')
            .map(str::to_string)
            .collect()
    };
    let images = row("Images");
    assert_eq!(images[1], "1", "{out}");
    assert_ne!(images[3], "0B", "the image's layers have a size: {out}");
    assert_eq!(&row("Containers")[1..3], ["1", "1"], "{out}");
    assert_eq!(&row("Local Volumes")[1..3], ["1", "1"], "{out}");
    assert_eq!(row("Build Cache")[1], "0", "{out}");
    // The default table too.
    assert!(docker_ok(&env, &["system", "df"]).contains("RECLAIMABLE"));
    let a = raw(&env, "GET", "/system/df?type=bogus", b"");
    assert_eq!(a.status, 400);
    assert!(a.message().contains("parameter type"), "{}", a.message());

    // /auth: what is missing or malformed is named; an unreachable
    // registry is an error, never "Login Succeeded".
    for (body, what) in [
        (r#"{}"#, "username is required"),
        (
            r#"{"username": "u", "serveraddress": "127.0.0.1:9"}"#,
            "password is required",
        ),
        (
            r#"{"username": 5, "password": "p", "serveraddress": "x"}"#,
            "username must be a string",
        ),
        (r#"{"username": "#, "invalid JSON"),
    ] {
        let a = raw(&env, "POST", "/v1.47/auth", body.as_bytes());
        assert_eq!(a.status, 400, "{body}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains(what), "{body}: {}", a.message());
    }
    let a = raw(
        &env,
        "POST",
        "/auth",
        br#"{"username": "u", "password": "p", "serveraddress": "127.0.0.1:9"}"#,
    );
    assert_ne!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(!a.message().is_empty());
    docker_ok(&env, &["rm", "-f", "web"]);
    docker_ok(&env, &["volume", "rm", "data"]);
}
