//! Root-only tests of hostile input against a real daemon (issue 19): names
//! that cannot exist never reach a container that does, the CLI never
//! panics, and the API refuses bodies its routes do not take.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Output;

use common::Env;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A daemon with the busybox image, a running `web` made by `run` (so that
/// `rename` may act on it) and a network `pnet`; returns web's pid.
fn web_and_pnet(name: &str) -> (Env, i64) {
    let env = Env::new(name);
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);
    env.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    env.ok(&["network", "create", "pnet"]);
    let web = env.wait_for("container", "web", 30, |v| v["pid"].is_i64());
    (env, web["pid"].as_i64().unwrap())
}

/// `web` still runs under the same pid, and nothing was renamed.
fn web_untouched(env: &Env, pid: i64, after: &str) {
    let web = env.view("container", "web");
    assert_eq!(web["pid"].as_i64(), Some(pid), "after {after}: web changed: {web}");
    assert_eq!(web["status"], "Running", "after {after}: {web}");
    let web2 = env.berth(&["get", "container", "web2"]);
    assert!(!web2.status.success(), "after {after}: web was renamed");
    env.view("network", "pnet");
}

/// Fails as a refused command does: exit 1 (not a panic's 101), a message
/// on stderr with no raw control characters and no backtrace.
fn refused(env: &Env, args: &[&str]) -> String {
    refused_with(env, args, 1)
}

/// [`refused`] with Docker's exit code for the command (`run` and `create`
/// answer 125 for an error of the daemon's).
fn refused_with(env: &Env, args: &[&str], code: i32) -> String {
    let out = env.berth(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "berth {args:?}: {}\n{err}", out.status);
    assert!(!err.contains("panicked"), "berth {args:?} panicked:\n{err}");
    assert!(!err.trim().is_empty(), "berth {args:?}: no message");
    assert!(
        !err.bytes().any(|b| b.is_ascii_control() && b != b'\n'),
        "berth {args:?}: raw control characters in {err:?}"
    );
    err
}

const HOSTILE: [&str; 10] = [
    "web?x",
    "web#x",
    "web x",
    "web%00",
    "web%2F",
    "../web",
    "web/..",
    "./web",
    "Web",
    "web\u{1b}[31m",
];

#[test]
fn names_that_cannot_exist_never_reach_the_container_that_does() {
    let (env, pid) = web_and_pnet("hostile-names");
    for name in HOSTILE {
        let key = format!("container/{name}");
        let into = format!("{name}:/etc/hostname");
        let host = env.dir.join("copied");
        let host = host.to_str().unwrap();
        let commands: Vec<Vec<&str>> = vec![
            vec!["kill", name],
            vec!["stop", name],
            vec!["restart", name],
            vec!["pause", name],
            vec!["start", name],
            vec!["exec", name, "true"],
            vec!["exec", "-d", name, "true"],
            vec!["attach", name],
            vec!["cp", &into, host],
            vec!["inspect", name],
            vec!["logs", name],
            vec!["top", name],
            vec!["stats", "--no-stream", name],
            vec!["rename", name, "web2"],
            vec!["rename", "web", name],
            vec!["describe", &key],
            vec!["get", "container", name],
            vec!["rm", "-f", name],
            vec!["network", "inspect", name],
            vec!["network", "rm", name],
            vec!["network", "connect", name, "web"],
            vec!["volume", "rm", name],
            vec!["volume", "inspect", name],
        ];
        // `Web` may name a container now: renaming web to it would work.
        let commands = commands
            .into_iter()
            .filter(|args| !(name == "Web" && args[..2] == ["rename", "web"]));
        for args in &commands.collect::<Vec<_>>() {
            let err = refused(&env, args);
            // Names with a `/` are refused by the CLI's own KIND/NAME or
            // CONTAINER:PATH parsing; every other one by the daemon's check.
            // `Web` is a name a container, volume or network may have
            // (Docker's rule): it is not found, and still never reaches `web`.
            if !name.contains('/') {
                let valid_elsewhere = name == "Web" && err.contains("not found");
                assert!(err.contains("invalid") || valid_elsewhere, "berth {args:?}: {err}");
            }
        }
        let pnet = name.replace("web", "pnet").replace("Web", "Pnet");
        let err = refused(&env, &["network", "inspect", &pnet]);
        let valid_elsewhere = pnet == "Pnet" && err.contains("not found");
        assert!(
            err.contains("invalid") || pnet.contains('/') || valid_elsewhere,
            "{pnet}: {err}"
        );
        web_untouched(&env, pid, &format!("the commands on {name:?}"));
    }
    // The message quotes the name escaped: no raw NUL or escape sequence.
    let err = refused(&env, &["kill", "web\u{1b}[31m"]);
    assert!(err.contains(r#""web\u{1b}[31m""#), "{err}");
    // run and create refuse such a name before making anything (Docker's
    // `web_x` and `web.x` are names now, of containers and networks).
    for name in ["web?x", "web x", "_web", "web/x"] {
        let err = refused_with(&env, &["run", "-d", "--name", name, "busybox", "true"], 125);
        assert!(err.contains("invalid container name"), "{name}: {err}");
        refused_with(&env, &["create", "--name", name, "busybox", "true"], 125);
    }
    for name in ["web?x", "web x", "_web"] {
        refused(&env, &["network", "create", name]);
    }
    let containers = env.ok(&["ps", "-a"]);
    assert_eq!(containers.lines().count(), 2, "{containers}");
    web_untouched(&env, pid, "run and create");
}

#[test]
fn a_name_of_letters_digits_and_dashes_works_through_every_command() {
    let (env, _) = web_and_pnet("hostile-happy");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "my-app-2",
        "busybox",
        "sh",
        "-c",
        "echo hi; sleep 1000",
    ]);
    env.wait_for("container", "my-app-2", 30, |v| v["pid"].is_i64());
    env.ok(&["exec", "my-app-2", "true"]);
    env.ok(&["inspect", "my-app-2"]);
    env.ok(&["top", "my-app-2"]);
    env.ok(&["describe", "container/my-app-2"]);
    env.ok(&["network", "connect", "pnet", "my-app-2"]);
    env.ok(&["rename", "my-app-2", "my-app-3"]);
    assert!(env.log_text("my-app-3").contains("hi"));
    env.ok(&["stop", "my-app-3"]);
    env.ok(&["rm", "my-app-3"]);
}

/// One request over the daemon's socket, raw; returns the status and body.
fn raw(env: &Env, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(&env.socket).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: berth\r\nconnection: close\r\n");
    if let Some(t) = content_type {
        head.push_str(&format!("content-type: {t}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // HTTP lets a server answer a request it refuses before reading its body
    // and close: the write then fails with EPIPE while the answer still waits
    // to be read, so only the answer is judged.
    if let Err(e) = s.write_all(&request) {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{method} {path}: {e}"
        );
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Longest a raw request may wait for its answer: a hang fails the test.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

const JSON: Option<&str> = Some("application/json");

#[test]
fn routes_refuse_bodies_they_do_not_take_and_act_on_nothing() {
    let (env, pid) = web_and_pnet("hostile-bodies");
    // Routes documented without a body refuse any, even `{}`, naming the route.
    for (method, path) in [
        ("POST", "/v1/stop/web"),
        ("POST", "/v1/restart/web"),
        ("POST", "/v1/pause/web"),
        ("POST", "/v1/start/web"),
        ("GET", "/v1/inspect/web"),
        ("POST", "/v1/images/prune"),
    ] {
        for body in [&b"{}"[..], b"[]", b"x"] {
            let (status, answer) = raw(&env, method, path, JSON, body);
            assert_eq!(status, 400, "{method} {path} {body:?}: {answer}");
            assert!(answer.contains("takes no request body"), "{answer}");
            web_untouched(&env, pid, &format!("{method} {path}"));
        }
    }
    // Routes that take a body refuse one of the wrong shape.
    for body in [
        &b"[]"[..],
        b"\"KILL\"",
        b"null",
        br#"{"bogus": 1}"#,
        br#"{"signal": 9}"#,
        b"{",
    ] {
        let (status, answer) = raw(&env, "POST", "/v1/kill/web", JSON, body);
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer.contains("POST /v1/kill/{name}"), "{answer}");
        web_untouched(&env, pid, &format!("kill with {:?}", String::from_utf8_lossy(body)));
    }
    let (status, answer) = raw(&env, "POST", "/v1/kill/web", None, b"{}");
    assert_eq!(status, 400, "{answer}");
    web_untouched(&env, pid, "kill without a content type");
    // A name encoded in the path is decoded once, and checked.
    let (status, answer) = raw(&env, "POST", "/v1/stop/web%3Fx", None, b"");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains(r#"invalid container name \"web?x\""#), "{answer}");
    web_untouched(&env, pid, "stop web%3Fx");
    // The happy path still works: no body where none is taken.
    let (status, answer) = raw(&env, "POST", "/v1/pause/web", None, b"");
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = raw(&env, "POST", "/v1/unpause/web", None, b"");
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_body_over_the_limit_is_413_and_applies_nothing() {
    let env = Env::new("hostile-large");
    let mut s = UnixStream::connect(&env.socket).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let length = berth::api::MAX_REQUEST_BYTES + 1;
    let head = format!(
        "POST /v1/apply HTTP/1.1\r\nhost: berth\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    // The body is written beside the read: the daemon answers once it has
    // read past the limit, and may close before the rest is written.
    let mut writer = s.try_clone().unwrap();
    let fill = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        let mut left = length;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Both);
    fill.join().unwrap();
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("64 MiB limit"), "{body}");
    let objects = env.ok(&["get"]);
    assert!(objects.contains("No objects found"), "{objects}");
}

#[test]
fn an_empty_command_is_refused_at_apply_and_at_run_and_changes_nothing() {
    let env = Env::new("hostile-command");
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);
    let before = env.ok(&["get"]);
    let web = env.manifest(
        "web.yaml",
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: busybox\n  command: []\n",
    );
    let out = env.berth(&["apply", "-f", web.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("web.yaml:6") && err.contains("spec.command"), "{err}");
    assert_eq!(env.ok(&["get"]), before);
    // The test image has neither entrypoint nor cmd: `run` with no command
    // is refused when the container is made, not left Failed.
    let out = env.berth(&["run", "-d", "--name", "bare", "busybox"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!env.berth(&["get", "container", "bare"]).status.success());
}
