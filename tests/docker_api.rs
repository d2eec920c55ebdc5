//! Docker's Engine API on `<run-dir>/docker.sock` (issue 22), driven by the
//! real docker CLI (28.x on the PATH) against a daemon with its own root,
//! and by raw HTTP for what the CLI never sends. Assertions are on effects:
//! output bytes, exit codes, what `berth ps` sees, statuses and messages.

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

/// The docker CLI against this Env's daemon, with a config dir of its own
/// (no credentials or contexts of the host's), stdin from `input`.
fn docker_with(env: &Env, args: &[&str], input: Option<&[u8]>) -> Output {
    let config = env.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let mut child = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", docker_socket(env).display()))
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the docker CLI is on the PATH");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn docker(env: &Env, args: &[&str]) -> Output {
    docker_with(env, args, None)
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

/// One raw HTTP/1.1 exchange on the Docker socket: status, headers (lower-
/// case names) and body bytes, read until the server closes.
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
}

fn raw(env: &Env, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut s = std::os::unix::net::UnixStream::connect(docker_socket(env)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before it has read it all.
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

#[test]
fn the_docker_cli_negotiates_with_berths_version_and_ping_has_no_body() {
    let mut env = Env::new("dapi-version");
    let meta = std::fs::metadata(docker_socket(&env)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o660
    );
    let v = docker_ok(
        &env,
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}",
        ],
    );
    assert_eq!(v.trim(), "1.47 1.24 linux");
    let info = docker_ok(
        &env,
        &["info", "--format", "{{.Swarm.LocalNodeState}} {{.Driver}} {{.OSType}}"],
    );
    assert_eq!(info.trim(), "inactive overlay2 linux");

    let head = raw(&env, "HEAD", "/_ping", b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD /_ping sent a body: {:?}", head.body);
    assert_eq!(head.header("api-version"), Some("1.47"));
    assert_eq!(head.header("ostype"), Some("linux"));
    let get = raw(&env, "GET", "/v1.41/_ping", b"");
    assert_eq!((get.status, get.body.as_slice()), (200, b"OK".as_slice()));
    // Outside the versions it speaks: refused, saying which.
    let new = raw(&env, "GET", "/v1.99/version", b"");
    assert_eq!(new.status, 400);
    assert!(new.message().contains("1.99 is too new"), "{}", new.message());
    let old = raw(&env, "GET", "/v1.12/version", b"");
    assert_eq!(old.status, 400);
    // Docker's endpoints berth does not serve: 501 with a message, not 404.
    let swarm = raw(&env, "GET", "/v1.47/swarm", b"");
    assert_eq!(swarm.status, 501);
    assert!(swarm.message().contains("swarm"), "{}", swarm.message());
    assert_eq!(raw(&env, "GET", "/nothing/here", b"").status, 404);

    // `--docker-socket ''` (here its variable) turns it off; a path moves it.
    env.kill_daemon();
    env.extra_env.push(("BERTH_DOCKER_SOCKET".into(), String::new()));
    env.start_daemon();
    assert!(std::os::unix::net::UnixStream::connect(docker_socket(&env)).is_err());
    env.kill_daemon();
    let moved = env.dir.join("elsewhere/docker.sock");
    env.extra_env = vec![("BERTH_DOCKER_SOCKET".into(), moved.display().to_string())];
    env.start_daemon();
    let out = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", moved.display()))
        .env("DOCKER_CONFIG", env.dir.join("docker-config"))
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.47", "{}", stderr(&out));
}

#[test]
fn run_ps_logs_exec_stop_and_rm_through_the_docker_cli() {
    let env = env_with_busybox("dapi-run");
    // Foreground, attached before the start: every byte, and the exit code.
    let out = docker(&env, &["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), b"hi\n".as_slice()),
        "{}",
        stderr(&out)
    );
    let out = docker(&env, &["run", "--rm", "busybox", "sh", "-c", "echo to-err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out), "to-err\n");
    assert!(out.stdout.is_empty());
    // --rm left nothing behind.
    assert_eq!(docker_ok(&env, &["ps", "-aq"]).trim(), "");

    // Detached, under a name docker-compose would give it.
    let trap = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    assert_eq!(
        docker_ok(
            &env,
            &["run", "-d", "--name", "proj_web_1", "busybox", "sh", "-c", trap]
        )
        .trim(),
        "proj_web_1"
    );
    assert!(docker_ok(&env, &["ps", "--format", "{{.Names}} {{.State}}"]).contains("proj_web_1 running"));
    assert!(env.ok(&["ps"]).contains("proj_web_1"), "berth ps sees what docker made");
    assert_eq!(docker_ok(&env, &["exec", "proj_web_1", "echo", "in"]), "in\n");
    let out = docker(&env, &["exec", "proj_web_1", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    // The name is only a name; its hostname is the DNS label it answers to.
    assert_eq!(docker_ok(&env, &["exec", "proj_web_1", "hostname"]), "proj-web-1\n");
    assert_eq!(
        docker_ok(&env, &["inspect", "-f", "{{.State.Running}} {{.Name}}", "proj_web_1"]).trim(),
        "true /proj_web_1"
    );
    assert!(
        env.ok(&["inspect", "proj_web_1"]).contains("\"/proj_web_1\""),
        "berth inspect finds it"
    );
    assert_eq!(docker_ok(&env, &["logs", "proj_web_1"]), "ready\n");
    docker_ok(&env, &["stop", "proj_web_1"]);
    assert!(docker_ok(&env, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).contains("proj_web_1 Exited (0)"));
    // Stopping a stopped container changes nothing (304), which the CLI takes.
    docker_ok(&env, &["stop", "proj_web_1"]);
    docker_ok(&env, &["rm", "proj_web_1"]);
    assert!(!env.ok(&["ps", "-a"]).contains("proj_web_1"));

    // stdout and stderr stay apart in the log too.
    docker_ok(
        &env,
        &["run", "--name", "talk", "busybox", "sh", "-c", "echo out; echo err >&2"],
    );
    let out = docker(&env, &["logs", "talk"]);
    assert_eq!(
        (out.stdout.as_slice(), stderr(&out).as_str()),
        (b"out\n".as_slice(), "err\n")
    );
    let tail = docker_ok(&env, &["logs", "--tail", "1", "-t", "talk"]);
    assert!(tail.is_empty(), "the last line is stderr's: {tail:?}");

    // The reverse: what berth made, docker sees and removes.
    env.ok(&["run", "-d", "--name", "made-by-berth", "busybox", "sleep", "100"]);
    assert!(docker_ok(&env, &["ps", "--format", "{{.Names}}"]).contains("made-by-berth"));
    let running = docker(&env, &["rm", "made-by-berth"]);
    assert!(!running.status.success());
    assert!(stderr(&running).contains("running"), "{}", stderr(&running));
    docker_ok(&env, &["rm", "-f", "made-by-berth", "talk"]);
    assert!(!env.ok(&["ps", "-a"]).contains("made-by-berth"));

    // A name berth cannot take is refused, naming it, before anything is made.
    let bad = docker(&env, &["run", "--rm", "--name", "a/b", "busybox", "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("\"a/b\""), "{}", stderr(&bad));
}

#[test]
fn stdin_and_a_tty_reach_the_container() {
    let env = env_with_busybox("dapi-stdio");
    let out = docker_with(&env, &["run", "-i", "--rm", "busybox", "cat"], Some(b"hi\nthere\n"));
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), b"hi\nthere\n".as_slice()),
        "{}",
        stderr(&out)
    );
    let out = docker(&env, &["run", "-t", "--rm", "busybox", "tty"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Raw (no frame headers), through the pty's line discipline.
    assert_eq!(out.stdout, b"/dev/pts/0\r\n");
    docker_ok(&env, &["run", "-d", "--name", "box", "busybox", "sleep", "100"]);
    let out = docker(&env, &["exec", "-t", "box", "tty"]);
    assert_eq!(out.stdout, b"/dev/pts/0\r\n", "{}", stderr(&out));
    let out = docker_with(&env, &["exec", "-i", "box", "wc", "-c"], Some(b"12345"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    docker_ok(&env, &["pause", "box"]);
    assert!(docker_ok(&env, &["ps", "--format", "{{.Status}}"]).contains("(Paused)"));
    docker_ok(&env, &["unpause", "box"]);
    docker_ok(&env, &["exec", "box", "touch", "/new"]);
    assert!(docker_ok(&env, &["diff", "box"]).lines().any(|l| l == "A /new"));
    docker_ok(&env, &["rm", "-f", "box"]);
    docker_ok(&env, &["run", "--name", "done", "busybox", "true"]);
    assert!(docker_ok(&env, &["container", "prune", "-f"]).contains("done"));
    assert_eq!(docker_ok(&env, &["ps", "-aq"]).trim(), "");

    // HostConfig from the CLI's flags reaches the container.
    // -w: the container's own random name (hex) may hold `db` too.
    let script =
        "grep -w db /etc/hosts; ulimit -n; df /t | tail -1 | tr -s ' ' | cut -d' ' -f2; touch /x 2>&1 | head -1";
    let out = docker(
        &env,
        &[
            "run",
            "--rm",
            "--add-host",
            "db:10.1.2.3",
            "--ulimit",
            "nofile=100:200",
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=65536",
            "--read-only",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "10.1.2.3\tdb\n100\n64\ntouch: /x: Read-only file system\n",
        "exit {:?}, stderr {:?}",
        out.status.code(),
        stderr(&out)
    );
    // One it cannot honour is refused by its name, and nothing is made.
    let out = docker(
        &env,
        &["run", "--rm", "--device-read-bps", "/dev/null:1mb", "busybox", "true"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("HostConfig.BlkioDeviceReadBps"),
        "{}",
        stderr(&out)
    );
    assert_eq!(docker_ok(&env, &["ps", "-aq"]).trim(), "");
}

#[test]
fn a_docker_style_name_answers_dns_as_its_label_and_images_networks_volumes_work() {
    let env = env_with_busybox("dapi-objects");
    assert_eq!(
        docker_ok(&env, &["network", "create", "--label", "app=shop", "shop_back"]).trim(),
        "shop_back"
    );
    assert!(docker_ok(&env, &["network", "ls", "--format", "{{.Name}}"]).contains("shop_back"));
    assert_eq!(
        docker_ok(&env, &["network", "inspect", "-f", "{{.Labels.app}}", "shop_back"]).trim(),
        "shop"
    );
    assert!(env.ok(&["get", "network"]).contains("shop_back"));
    docker_ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "shop_db_1",
            "--network",
            "shop_back",
            "busybox",
            "sleep",
            "100",
        ],
    );
    // `_` is no DNS character: the record is the label, proj-db-1's.
    let out = docker(
        &env,
        &[
            "run",
            "--rm",
            "--network",
            "shop_back",
            "busybox",
            "nslookup",
            "shop-db-1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("Address") && text.matches("Address").count() >= 2,
        "{text}"
    );
    // A network in use is not deleted.
    let busy = docker(&env, &["network", "rm", "shop_back"]);
    assert!(!busy.status.success(), "{}", String::from_utf8_lossy(&busy.stdout));
    docker_ok(&env, &["rm", "-f", "shop_db_1"]);
    docker_ok(&env, &["network", "rm", "shop_back"]);
    assert!(!env.ok(&["get", "network"]).contains("shop_back"));

    // Volumes, with Docker's names.
    docker_ok(&env, &["volume", "create", "--label", "k=v", "shop_data"]);
    let mountpoint = docker_ok(&env, &["volume", "inspect", "-f", "{{.Mountpoint}}", "shop_data"]);
    docker_ok(
        &env,
        &[
            "run",
            "--rm",
            "-v",
            "shop_data:/d",
            "busybox",
            "sh",
            "-c",
            "echo kept > /d/f",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}/f", mountpoint.trim())).unwrap(),
        "kept\n"
    );
    assert!(docker_ok(&env, &["volume", "ls", "-f", "label=k=v", "--format", "{{.Name}}"]).contains("shop_data"));
    docker_ok(&env, &["volume", "rm", "shop_data"]);
    assert!(!docker_ok(&env, &["volume", "ls", "--format", "{{.Name}}"]).contains("shop_data"));

    // Images: Docker's names and shape, tag and delete, pull errors in-stream.
    assert!(docker_ok(&env, &["images", "--format", "{{.Repository}}:{{.Tag}}"]).contains("busybox:latest"));
    let config = docker_ok(
        &env,
        &["image", "inspect", "-f", "{{json .ContainerConfig.Cmd}}", "busybox"],
    );
    assert_eq!(config.trim(), "[\"sh\"]");
    docker_ok(&env, &["tag", "busybox", "localhost/shop:2"]);
    assert!(
        env.ok(&["images"]).contains("localhost/shop:2"),
        "berth sees docker's tag"
    );
    assert!(docker_ok(&env, &["rmi", "localhost/shop:2"]).contains("Untagged: localhost/shop:2"));
    let pull = docker(&env, &["pull", "127.0.0.1:1/nope:1"]);
    assert!(!pull.status.success());
    assert!(stderr(&pull).contains("127.0.0.1:1"), "{}", stderr(&pull));
}

#[test]
fn hostile_requests_get_dockers_statuses_and_say_what_was_wrong() {
    let env = env_with_busybox("dapi-hostile");
    // Over the body limit: 413 before the body is read.
    let big = vec![b' '; 5 << 20];
    let a = raw(&env, "POST", "/v1.47/containers/create", &big);
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.message().contains("limit"), "{}", a.message());
    // Bad JSON: 400, naming where.
    let a = raw(&env, "POST", "/containers/create", br#"{"Image": "busybox", "Cmd": [}"#);
    assert_eq!(a.status, 400);
    assert!(
        a.message().contains("invalid JSON") && a.message().contains("column"),
        "{}",
        a.message()
    );
    // A field berth cannot honour: refused by name, nothing made.
    let a = raw(
        &env,
        "POST",
        "/v1.47/containers/create?name=pinned",
        br#"{"Image": "busybox", "HostConfig": {"CgroupParent": "/elsewhere", "Memory": 0}}"#,
    );
    assert_eq!(a.status, 400);
    assert!(a.message().starts_with("HostConfig.CgroupParent"), "{}", a.message());
    assert_eq!(raw(&env, "GET", "/containers/pinned/json", b"").status, 404);
    // Names with a slash or `..`, and a path that tries to climb out.
    for name in ["a%2Fb", "..", "x%2F..%2F..%2Fetc"] {
        let a = raw(
            &env,
            "POST",
            &format!("/containers/create?name={name}"),
            br#"{"Image": "busybox"}"#,
        );
        assert_eq!(a.status, 400, "{name}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.message().contains("invalid container name"), "{}", a.message());
    }
    let a = raw(&env, "GET", "/containers/..%2f..%2fx/json", b"");
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.message().contains("invalid container name"), "{}", a.message());
    // Missing things: Docker's 404 messages the CLI shows.
    let a = raw(&env, "POST", "/containers/create", br#"{"Image": "nope:1"}"#);
    assert_eq!(a.status, 404);
    assert_eq!(a.message(), "No such image: nope:1");
    let a = raw(&env, "GET", "/containers/ghost/json", b"");
    assert_eq!((a.status, a.message().as_str()), (404, "No such container: ghost"));
    // Attach and exec start are hijacked: without an upgrade they are refused.
    let a = raw(&env, "POST", "/containers/ghost/attach?stream=1", b"");
    assert_eq!(a.status, 400);
    assert!(a.message().contains("Upgrade"), "{}", a.message());
    assert!(env.ok(&["ps", "-a"]).lines().count() <= 1, "nothing was made");
}

/// A `docker-registry` on a loopback port held for this test, serving from
/// the Env's dir; killed on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _held: common::sync::PortHold,
}

impl Registry {
    fn start(env: &Env) -> Registry {
        let dir = env.dir.join("registry");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let held = common::sync::PortHold::tcp();
        let port = held.port;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (scripts/install-deps.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "docker-registry did not come up");
            assert!(child.try_wait().unwrap().is_none(), "docker-registry exited");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Registry {
            child,
            port,
            _held: held,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_are_pulled_from_a_registry_with_dockers_progress_and_on_first_run() {
    let env = env_with_busybox("dapi-pull");
    let registry = Registry::start(&env);
    let one = format!("127.0.0.1:{}/shop/bb:1", registry.port);
    let two = format!("127.0.0.1:{}/shop/bb:2", registry.port);
    for r in [&one, &two] {
        env.ok(&["tag", "busybox:latest", r]);
        env.ok(&["push", r]);
        env.ok(&["rmi", r]);
    }
    let out = docker(&env, &["pull", &one]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("Digest: sha256:"), "{text}");
    assert!(env.ok(&["images"]).contains(&one), "berth has what docker pulled");
    assert_eq!(docker_ok(&env, &["run", "--rm", &one, "echo", "pulled"]), "pulled\n");
    // Not here: the CLI is told 404, pulls it, and runs it.
    let out = docker(&env, &["run", "--rm", &two, "echo", "auto"]);
    assert_eq!(out.stdout, b"auto\n", "{}", stderr(&out));
    assert!(stderr(&out).contains("Unable to find image"), "{}", stderr(&out));
    // A tag the registry does not have: the error comes in the stream.
    let missing = format!("127.0.0.1:{}/shop/bb:3", registry.port);
    let out = docker(&env, &["pull", &missing]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shop/bb"), "{}", stderr(&out));
}

/// The docker CLI with `slave` as its controlling terminal.
fn docker_on_pty(env: &Env, slave: std::fs::File, args: &[&str]) -> std::process::Child {
    let config = env.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", docker_socket(env).display()))
        .env("DOCKER_CONFIG", &config)
        .args(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: setsid and TIOCSCTTY between fork and exec touch no memory.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

#[test]
fn run_ti_and_exec_ti_work_through_a_terminal_with_its_size() {
    use common::pty::{exit_of, Terminal};
    let env = env_with_busybox("dapi-pty");
    let (mut term, slave) = Terminal::new(24, 80);
    let mut cli = docker_on_pty(&env, slave, &["run", "-ti", "--rm", "--name", "sh1", "busybox", "sh"]);
    term.type_line("echo typed-$((6*7))");
    term.expect("typed-42");
    // A resize goes through /containers/{id}/resize to the pty.
    term.resize_and_wait(30, 100);
    let (mut term2, slave2) = Terminal::new(20, 70);
    let mut exec = docker_on_pty(&env, slave2, &["exec", "-ti", "sh1", "sh"]);
    term2.type_line("echo in-exec-$((2+3))");
    term2.expect("in-exec-5");
    term2.resize_and_wait(40, 120);
    term2.type_line("exit 4");
    assert_eq!(exit_of(&mut exec, &term2), Some(4));
    term.type_line("exit 3");
    assert_eq!(exit_of(&mut cli, &term), Some(3));
    assert_eq!(docker_ok(&env, &["ps", "-aq"]).trim(), "", "--rm removed it");
}

#[test]
fn docker_build_sends_its_context_to_berths_builder() {
    let env = env_with_busybox("dapi-build");
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG X=1\nCOPY f /f\nRUN cat /f; echo X=$X\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "from the context\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "secret\n").unwrap();
    std::fs::write(ctx.join("secret"), "never sent\n").unwrap();
    let out = docker_ok(
        &env,
        &["build", "-t", "dbuilt:1", "--build-arg", "X=7", ctx.to_str().unwrap()],
    );
    assert!(out.contains("Step 4/4 : RUN cat /f; echo X=$X"), "{out}");
    assert!(out.contains("from the context\nX=7\n"), "RUN output streams: {out}");
    assert!(out.contains("Successfully tagged dbuilt:1"), "{out}");
    // What docker built, berth runs, and the reverse view agrees.
    assert_eq!(env.ok(&["run", "--rm", "dbuilt:1", "cat", "/f"]), "from the context\n");
    let quiet = docker_ok(&env, &["build", "-q", ctx.to_str().unwrap()]);
    assert!(quiet.trim().starts_with("sha256:"), "{quiet}");
    // A failing step fails the docker CLI with the step's error.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN exit 3\n").unwrap();
    let failed = docker(&env, &["build", ctx.to_str().unwrap()]);
    assert!(!failed.status.success());
    assert!(stderr(&failed).contains("non-zero code: 3"), "{}", stderr(&failed));
    // Hostile: a Dockerfile path out of the context, a body that is no tar.
    let a = raw(&env, "POST", "/build?dockerfile=../../etc/passwd", b"");
    assert_eq!(a.status, 400, "{}", a.message());
    assert!(a.message().contains("inside the context"), "{}", a.message());
    let a = raw(&env, "POST", "/build?t=x:1", &[b'x'; 2048]);
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.message().contains("not a tar"), "{}", a.message());
}

#[test]
fn docker_compose_brings_a_project_up_with_service_names_on_its_network_and_down_again() {
    let env = env_with_busybox("dapi-compose");
    let dir = env.dir.join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "version: \"3\"\nservices:\n  web:\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; mkdir -p /w && echo hi-from-web > /w/index.html && httpd -p 80 -h /w; while true; do sleep 0.2; done\"]\n  cli:\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"for i in $$(seq 50); do wget -q -O- http://web/ && break; sleep 0.2; done; trap 'exit 0' TERM; while true; do sleep 0.2; done\"]\n    depends_on: [web]\n",
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = Command::new("docker-compose")
            .current_dir(&dir)
            .env("DOCKER_HOST", format!("unix://{}", docker_socket(&env).display()))
            .env("DOCKER_CONFIG", env.dir.join("docker-config"))
            .args(args)
            .output()
            .expect("docker-compose (scripts/install-deps.sh installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out),
        )
    };
    let (ok, out) = compose(&["up", "-d"]);
    assert!(ok, "{out}");
    // The service answers by its name on the project's network.
    common::sync::wait_until(20, "cli reaching web by its service name", || {
        compose(&["logs", "cli"]).1.contains("hi-from-web")
    });
    // What compose made shows in berth, as imperative objects. (Both
    // services trap SIGTERM, so `down` need not wait out a grace period.)
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("proj_web_1") && ps.contains("proj_cli_"), "{ps}");
    let (ok, out) = compose(&["down"]);
    assert!(ok, "{out}");
    let left = env.ok(&["get", "-o", "json"]);
    assert!(!left.contains("proj_"), "compose down left: {left}");
}

#[test]
fn network_connect_refuses_bad_bodies_and_unknown_objects_and_reconnects_with_new_aliases() {
    let env = env_with_busybox("dapi-connect");
    docker_ok(&env, &["network", "create", "hnet"]);
    docker_ok(&env, &["create", "--name", "c1", "busybox", "sleep", "100"]);
    let post = |path: &str, body: &str| raw(&env, "POST", path, body.as_bytes());
    // Unknown network, unknown container, a name that is no name.
    assert_eq!(post("/networks/nope/connect", r#"{"Container": "c1"}"#).status, 404);
    assert_eq!(post("/networks/hnet/connect", r#"{"Container": "ghost"}"#).status, 404);
    let a = post("/networks/hnet/connect", r#"{"Container": "../c1"}"#);
    assert_eq!(a.status, 400, "{}", a.message());
    // A body without a container, aliases that are not a list of strings, no JSON.
    let a = post("/networks/hnet/connect", "{}");
    assert!(a.status == 400 && a.message().contains("Container"), "{}", a.message());
    let a = post(
        "/networks/hnet/connect",
        r#"{"Container": "c1", "EndpointConfig": {"Aliases": "www"}}"#,
    );
    assert!(a.status == 400 && a.message().contains("Aliases"), "{}", a.message());
    assert_eq!(post("/networks/hnet/connect", "{not json").status, 400);
    // The happy path: connected, and connected again with other aliases.
    let ok = |aliases: &str| {
        let a = post(
            "/networks/hnet/connect",
            &format!(r#"{{"Container": "c1", "EndpointConfig": {{"Aliases": {aliases}}}}}"#),
        );
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    };
    ok(r#"["first"]"#);
    ok(r#"["second_one"]"#);
    let spec = env.ok(&["get", "container", "c1", "-o", "json"]);
    assert!(spec.contains("second-one") && !spec.contains("\"first\""), "{spec}");
    assert_eq!(post("/networks/hnet/disconnect", r#"{"Container": "c1"}"#).status, 200);
    assert!(!env.ok(&["get", "container", "c1", "-o", "json"]).contains("hnet"));
    docker_ok(&env, &["rm", "c1"]);
    docker_ok(&env, &["network", "rm", "hnet"]);
}
