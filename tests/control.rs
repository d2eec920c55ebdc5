//! Root-only tests of the control plane against the real kernel: what each
//! command reports and refuses, streams that never drop a line, 404 on every
//! route that takes a name, and watched files whose objects others still use.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth::client::{Client, ClientError};
use common::sync::{pipe_full, threads_in_syscall, wait_until};
use common::Env;
use hyper::{Method, StatusCode};

fn container(name: &str, command: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", \"{command}\"]\n{extra}"
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_route_that_takes_a_name_answers_404_for_a_missing_object() {
    let env = Env::new("notfound");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(env.socket.clone(), None);
    let routes: [(Method, &str, Option<&str>); 6] = [
        (Method::GET, "/v1/objects/container/ghost", None),
        (Method::GET, "/v1/objects/image/ghost", None),
        (Method::GET, "/v1/objects?kind=container&name=ghost", None),
        (Method::GET, "/v1/logs/ghost", None),
        (Method::POST, "/v1/stop/ghost", None),
        (Method::POST, "/v1/delete", Some(r#"{"keys": ["container/ghost"]}"#)),
    ];
    for (method, path, body) in routes {
        let result = rt.block_on(client.send(method.clone(), path, body.map(|b| b.as_bytes().to_vec())));
        match result {
            Err(ClientError::Api { status, message, .. }) => {
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {message}");
                assert!(message.contains("ghost"), "{method} {path}: {message}");
            }
            other => panic!("{method} {path}: expected 404, got {other:?}"),
        }
    }
    // An unknown kind is the caller's mistake, not a missing object.
    let bad = rt.block_on(client.send(Method::GET, "/v1/objects/pod/ghost", None));
    assert!(
        matches!(
            bad,
            Err(ClientError::Api {
                status: StatusCode::BAD_REQUEST,
                ..
            })
        ),
        "{bad:?}"
    );
}

#[test]
fn a_million_lines_reach_run_logs_and_a_slow_follower_without_loss() {
    let env = Env::new("stream");
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);

    let out = env.berth(&["run", "--rm", "busybox", "seq", "1", "1000000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1_000_000);
    assert_eq!(text.lines().last(), Some("1000000"));

    let out = env.berth(&["run", "--name", "counted", "busybox", "seq", "1", "1000000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = env.berth(&["logs", "counted"]);
    assert_eq!(stdout(&logs).lines().count(), 1_000_000);
    let tail = env.ok(&["logs", "--tail", "3", "counted"]);
    assert_eq!(tail, "999998\n999999\n1000000\n");

    // A follower that does not read for a while: the daemon must wait for
    // it (backpressure), not drop what did not fit.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "busybox",
        "sh",
        "-c",
        "seq 1 300000; sleep 2",
    ]);
    let mut follower = env
        .command()
        .args(["logs", "-f", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not read until the follower is stuck on its full pipe and the
    // container has written all of it: 300000 lines (2 MB) wait behind a
    // reader that took 64 KiB.
    let pipe = follower.stdout.take().unwrap();
    let cli = follower.id();
    wait_until(
        30,
        "the follower blocks on its full pipe and seq has written all",
        || {
            pipe_full(&pipe)
                && !threads_in_syscall(cli, libc::SYS_write, 1).is_empty()
                && env.ok(&["logs", "--tail", "1", "slow"]) == "300000\n"
        },
    );
    let mut reader = BufReader::new(pipe);
    let mut count = 0usize;
    let mut line = String::new();
    let started = Instant::now();
    while reader.read_line(&mut line).unwrap() > 0 {
        count += 1;
        if count.is_multiple_of(50_000) {
            // Slow down now and then, too.
            std::thread::sleep(Duration::from_millis(100));
        }
        line.clear();
    }
    let status = follower.wait().unwrap();
    let mut err = String::new();
    follower.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(count, 300_000, "after {:?}", started.elapsed());
    env.ok(&["delete", "container/counted", "container/slow"]);
}

#[test]
fn apply_reports_its_own_objects_and_exits_non_zero_when_they_fail() {
    let env = Env::new("ownreport");
    let broken = env.manifest(
        "broken.yaml",
        "apiVersion: berth/v1\nkind: Image\nmetadata: {name: broken}\nspec: {import: /nonexistent/broken.tar}\n",
    );
    let out = env.berth(&["apply", "-f", broken.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed import fails the apply: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("failed: create image/broken"), "{}", stderr(&out));

    let good = env.manifest(
        "good.yaml",
        &format!(
            "{}{}",
            env.image_doc(),
            container("fine", "trap 'exit 0' TERM; sleep 1000 & wait", "")
        ),
    );
    let out = env.berth(&["apply", "-f", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains("broken"),
        "another set's failure leaked into this apply: {all}"
    );
    assert!(stdout(&out).contains("start container/fine"), "{all}");

    // A container that cannot start fails its apply, as `docker compose up -d` does.
    let bad = env.manifest(
        "bad.yaml",
        &container("nocmd", "exit 0", "").replace("[\"sh\", \"-c\", \"exit 0\"]", "[\"/no/such/binary\"]"),
    );
    let out = env.berth(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed: start container/nocmd"),
        "{}",
        stderr(&out)
    );

    let out = env.berth(&["delete", "container/fine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("broken"),
        "delete reported another object: {}",
        stderr(&out)
    );
    env.ok(&["delete", "-f", bad.to_str().unwrap()]);
}

#[test]
fn a_three_mib_manifest_is_applied_and_an_oversized_one_is_refused_by_name() {
    let env = Env::new("bigbody");
    let padding: String = (0..80_000)
        .map(|i| format!("# padding line {i:08} of a big manifest\n"))
        .collect();
    assert!(padding.len() > 3 << 20);
    let big = env.manifest(
        "big.yaml",
        &format!(
            "{padding}{}",
            "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: big}\n"
        ),
    );
    let out = env.berth(&["apply", "-f", big.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("create volume/big"), "{}", stdout(&out));

    let huge = env.dir.join("huge.yaml");
    std::fs::write(&huge, "#".repeat(17 << 20)).unwrap();
    let out = env.berth(&["validate", "-f", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("huge.yaml:1:1"), "{err}");
    assert!(err.contains("16 MiB"), "{err}");
    env.ok(&["delete", "volume/big"]);
}

#[test]
fn empty_and_binary_manifests_are_reported_with_positions() {
    let env = Env::new("badinput");
    let empty = env.manifest("empty.yaml", "---\n# nothing\n");
    let out = env.berth(&["validate", "-f", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty.yaml:1:1"), "{}", stderr(&out));
    assert!(stderr(&out).contains("no documents"), "{}", stderr(&out));

    let binary = env.dir.join("binary.yaml");
    std::fs::write(&binary, b"apiVersion: berth/v1\nkind: \xff\xfeVolume\n").unwrap();
    let out = env.berth(&["apply", "-f", binary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("binary.yaml:2:7"), "{}", stderr(&out));
}

#[test]
fn a_removed_watched_file_keeps_an_image_another_sources_container_uses() {
    let env = Env::new("held");
    std::fs::create_dir_all(&env.watch).unwrap();
    let images = env.watch.join("images.yaml");
    std::fs::write(&images, env.image_doc()).unwrap();
    env.wait_for("image", "busybox", 15, |v| v["status"] == "Ready");
    let app = env.manifest(
        "app.yaml",
        &container("user", "trap 'exit 0' TERM; sleep 1000 & wait", ""),
    );
    env.ok(&["apply", "-f", app.to_str().unwrap()]);
    env.wait_for("container", "user", 10, |v| v["status"] == "Running");

    std::fs::remove_file(&images).unwrap();
    let kept = env.wait_for("image", "busybox", 10, |v| {
        v["status"].as_str().unwrap_or("").contains("kept")
    });
    assert!(
        kept["detail"].as_str().unwrap().contains("used by container/user"),
        "{kept}"
    );
    let described = env.ok(&["describe", "image/busybox"]);
    assert!(described.contains("Kept"), "{described}");
    assert_eq!(env.view("container", "user")["status"], "Running");

    env.ok(&["delete", "container/user"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.berth(&["get", "image", "busybox"]).status.success() {
        assert!(Instant::now() < deadline, "the held image was never released");
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = env.ok(&["events"]);
    assert!(events.contains("Released"), "{events}");
}

#[test]
fn a_containers_rootfs_is_mounted_outside_the_hosts_mount_table() {
    // Each shim mounts its overlay in a mount namespace of its own, so the
    // host's mountinfo (parsed on every container start) does not grow. The
    // one host mount a container has is its network namespace's bind mount
    // (nsfs), which must outlive the shim's process by design.
    let env = Env::new("mountns");
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 1000 & wait",
    ]);
    env.wait_for("container", "quiet", 10, |v| v["status"] == "Running");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // Network namespaces are the exception by design: berth bind-mounts
    // each under the run dir on the host, as CNI and netavark do.
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(env.dir.to_str().unwrap()) && !l.contains(" - nsfs "))
        .collect();
    assert!(ours.is_empty(), "container mounts on the host: {ours:?}");
    let out = env.berth(&["run", "--rm", "busybox", "cat", "/www/index.html"]);
    assert_eq!(stdout(&out), "<h1>hello from berth</h1>\n", "{}", stderr(&out));
    env.ok(&["delete", "container/quiet"]);
}

#[test]
fn a_volume_is_populated_from_the_image_on_first_use_and_outlives_its_container() {
    let env = Env::new("volumes");
    let volume = "---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: site}\n";
    let web = |marker: &str| {
        container(
            "web",
            "echo extra > /www/extra.txt; trap 'exit 0' TERM; sleep 1000 & wait",
            &format!("  env: {{REV: '{marker}'}}\n  volumes: [{{volume: site, path: /www}}]\n"),
        )
    };
    let file = env.manifest("stack.yaml", &format!("{}{volume}{}", env.image_doc(), web("1")));
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "20s"]);
    // The image's /www/index.html was copied into the empty volume.
    let data = env.root.join("volumes/site/_data");
    assert_eq!(
        std::fs::read_to_string(data.join("index.html")).unwrap(),
        "<h1>hello from berth</h1>\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !data.join("extra.txt").exists() {
        assert!(Instant::now() < deadline, "the container never wrote into its volume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(env.ok(&["describe", "volume/site"]).contains("Populated"));

    // Replacing the container keeps the volume's data, and does not copy again.
    std::fs::remove_file(data.join("index.html")).unwrap();
    std::fs::write(&file, format!("{}{volume}{}", env.image_doc(), web("2"))).unwrap();
    let out = env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "20s"]);
    assert!(out.contains("replace container/web"), "{out}");
    assert!(data.join("extra.txt").exists());
    assert!(!data.join("index.html").exists(), "an emptied-out file came back");

    // A volume in use cannot be deleted; without its container it can.
    let refused = env.berth(&["delete", "volume/site"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("volume/site is used by container/web"),
        "{}",
        stderr(&refused)
    );
    env.ok(&["delete", "container/web"]);
    assert!(data.join("extra.txt").exists(), "the volume outlives its container");
    env.ok(&["delete", "volume/site"]);
    assert!(!env.root.join("volumes/site").exists());
}
