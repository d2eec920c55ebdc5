//! The rest of Docker's container API (issue 22): top, stats, update,
//! export, archive (`docker cp`), events, stop/restart timeouts and signals,
//! system df, auth, volume and network prune, and the 501 of the families
//! berth does not serve. Each through the real docker CLI against a daemon
//! with its own root, and a hostile twin by raw HTTP that checks Docker's
//! status, its `{"message": …}` and that nothing was acted on.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use common::Env;

/// An Env with busybox imported as `busybox:latest`, as `docker run busybox` names it.
fn env_with_busybox(name: &str) -> Env {
    let env = Env::new(name);
    env.ok(&[
        "import",
        &common::busybox_tar().display().to_string(),
        "busybox:latest",
        "sh",
    ]);
    env
}

fn docker_socket(env: &Env) -> std::path::PathBuf {
    env.run.join("docker.sock")
}

/// The docker CLI against this Env's daemon, with a config dir of its own.
fn docker_cmd(env: &Env, args: &[&str]) -> Command {
    let config = env.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", docker_socket(env).display()))
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn docker(env: &Env, args: &[&str]) -> Output {
    docker_cmd(env, args).output().expect("the docker CLI is on the PATH")
}

/// stdout of a docker command that must succeed.
fn docker_ok(env: &Env, args: &[&str]) -> String {
    let out = docker(env, args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.daemon_log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One raw HTTP/1.1 exchange on the Docker socket.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)));
        v["message"].as_str().unwrap_or_default().to_string()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn raw_typed(env: &Env, method: &str, path: &str, content_type: &str, body: &[u8]) -> Answer {
    let mut s = std::os::unix::net::UnixStream::connect(docker_socket(env)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = all[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked") {
        body = unchunk(&body);
    }
    Answer { status, headers, body }
}

fn raw(env: &Env, method: &str, path: &str, body: &[u8]) -> Answer {
    raw_typed(env, method, path, "application/json", body)
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
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
