//! Driving berth's Docker socket from tests: the docker CLI with a config
//! dir of its own, raw HTTP with chosen headers, and a loopback
//! `docker-registry` (with htpasswd auth if asked). Included by path
//! (`#[path = "common/docker.rs"] mod docker_support;`) by the test files
//! that use it, beside `mod common;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::common::Env;

/// An Env with busybox imported as `busybox:latest`, as `docker run busybox` names it.
pub fn env_with_busybox(name: &str) -> Env {
    let env = Env::new(name);
    env.ok(&[
        "import",
        &super::common::busybox_tar().display().to_string(),
        "busybox:latest",
        "sh",
    ]);
    env
}

pub fn docker_socket(env: &Env) -> PathBuf {
    env.run.join("docker.sock")
}

/// The docker CLI's config dir for this Env (no credentials of the host's).
pub fn docker_config(env: &Env) -> PathBuf {
    let config = env.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    config
}

/// The docker CLI against this Env's daemon, stdin from `input`.
pub fn docker_with(env: &Env, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", docker_socket(env).display()))
        .env("DOCKER_CONFIG", docker_config(env))
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the docker CLI is on the PATH");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        // The CLI may refuse before reading it all.
        let _ = stdin.write_all(bytes);
    }
    child.wait_with_output().unwrap()
}

pub fn docker(env: &Env, args: &[&str]) -> Output {
    docker_with(env, args, None)
}

/// stdout of a docker command that must succeed.
pub fn docker_ok(env: &Env, args: &[&str]) -> String {
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

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One raw HTTP/1.1 exchange on the Docker socket.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn message(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()));
        v["message"].as_str().unwrap_or_default().to_string()
    }
}

/// A request with extra `headers` (`Name: value` lines) and a body.
pub fn raw_with(env: &Env, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut s = std::os::unix::net::UnixStream::connect(docker_socket(env)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
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

pub fn raw(env: &Env, method: &str, path: &str, body: &[u8]) -> Answer {
    raw_with(env, method, path, &[], body)
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

/// bcrypt (cost 4) of `s3cret` for user `shop`, as docker-registry's htpasswd wants it.
pub const HTPASSWD: &str = "shop:$2b$04$YAz0AZP4T3896EsLJW8KYOMLnPMpl1VwHD/.xNZl5F2SFrdL4EnNq\n";

/// A `docker-registry` on a loopback port held for this test, serving from
/// the Env's dir; killed on drop.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    pub dir: PathBuf,
    _held: super::common::sync::PortHold,
}

impl Registry {
    pub fn start(env: &Env) -> Registry {
        Registry::start_with(env, false)
    }

    /// With `htpasswd` auth (user `shop`, password `s3cret`) when `auth`.
    pub fn start_with(env: &Env, auth: bool) -> Registry {
        let dir = env.dir.join("registry");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let held = super::common::sync::PortHold::tcp();
        let port = held.port;
        let auth = match auth {
            false => String::new(),
            true => {
                let file = dir.join("htpasswd");
                std::fs::write(&file, HTPASSWD).unwrap();
                format!("auth: {{htpasswd: {{realm: berth-test, path: {}}}}}\n", file.display())
            }
        };
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n{auth}",
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
            dir,
            _held: held,
        }
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Whether the registry has `repo:tag` (its manifest link on disk).
    pub fn has(&self, repo: &str, tag: &str) -> bool {
        self.dir
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link")
            .exists()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
