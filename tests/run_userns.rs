//! User namespaces (`--userns=auto`, `userns: auto`): the container's root
//! is a subordinate range of the host's ids, and still owns the image.

mod common;

use common::Env;

/// The `uid_map` of a container's init, as the host sees it.
fn uid_map_of(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap()
}

fn first_host_id(map: &str) -> u32 {
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "one mapping: {map:?}");
    assert_eq!(fields[0], "0", "container root is mapped: {map:?}");
    fields[1].parse().unwrap()
}

#[test]
fn userns_auto_maps_root_to_a_range_of_its_own_and_keeps_the_image_owned_by_root() {
    let env = Env::new("userns");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    // Inside: the map shows the range; image files belong to root; root can
    // write to the image's directories (its own copy-up layer).
    let out = env.berth(&[
        "run",
        "--rm",
        "--userns=auto",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; stat -c '%u:%g' /bin/busybox /etc; echo made > /etc/new && stat -c '%u' /etc/new; id -u",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let start = first_host_id(lines[0]);
    assert!(
        start >= 2147483647,
        "from the containers user's subordinate ids: {stdout}"
    );
    assert_eq!(&lines[1..], ["0:0", "0:0", "0", "0"], "{stdout}");

    // Two running containers get distinct ranges, and the host sees their
    // processes as those ranges' first ids.
    for name in ["ua", "ub"] {
        env.ok(&[
            "run", "-d", "--name", name, "--userns", "auto", "busybox", "sleep", "1000",
        ]);
    }
    let pid = |name: &str| env.view("container", name)["pid"].as_i64().unwrap();
    let (a, b) = (
        first_host_id(&uid_map_of(pid("ua"))),
        first_host_id(&uid_map_of(pid("ub"))),
    );
    assert!(a.abs_diff(b) >= 65536, "distinct ranges: {a} {b}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid("ua"))).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&a.to_string()),
        "{uid_line} vs {a}"
    );
    // exec joins the same namespaces: the range, and the container's network.
    let exec = env.ok(&[
        "exec",
        "ua",
        "sh",
        "-c",
        "cat /proc/self/uid_map; ip -o -4 addr show eth0",
    ]);
    assert_eq!(first_host_id(exec.lines().next().unwrap()), a, "{exec}");
    assert!(
        exec.contains("eth0") && exec.contains("inet "),
        "exec sees eth0: {exec}"
    );
    // A restart keeps the range (the writable layer is owned by it).
    env.ok(&["restart", "ua"]);
    assert_eq!(first_host_id(&uid_map_of(pid("ua"))), a);
    // Without --userns the container stays in the host's namespace.
    let out = env.ok(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"]);
    env.ok(&["rm", "-f", "ua", "ub"]);
}

#[test]
fn a_bad_userns_mode_is_refused_by_name() {
    let env = Env::new("userns-bad");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = env.berth(&["run", "--rm", "--userns=keep-id", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--userns \"keep-id\""));
    let bad = env.manifest(
        "bad.yaml",
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: c}\nspec:\n  image: busybox\n  userns: private\n",
    );
    let out = env.berth(&["apply", "-f", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.yaml:6:11") && err.contains("userns"),
        "file:line:field: {err}"
    );
}

#[test]
fn a_volume_is_writable_by_userns_root_and_its_files_belong_to_the_range() {
    let env = Env::new("userns-vol");
    let stack = format!(
        "{}---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: data}}\nspec: {{}}\n---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: writer}}\nspec:\n  image: busybox\n  userns: auto\n  restartPolicy: never\n  command: [sh, -c, 'echo hi > /data/f && stat -c %u /data/f']\n  volumes:\n    - {{volume: data, path: /data}}\n",
        env.image_doc()
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let v = env.wait_for("container", "writer", 20, |v| v["exit"].is_object());
    assert_eq!(v["exit"]["code"], 0, "the write succeeded: {}", env.log_text("writer"));
    assert_eq!(env.log_text("writer").trim(), "0", "root's file inside");
    use std::os::unix::fs::MetadataExt;
    let on_host = std::fs::metadata(env.root.join("volumes/data/_data/f")).unwrap();
    assert!(
        on_host.uid() >= 2147483647,
        "owned by the range on the host: {}",
        on_host.uid()
    );
    assert_eq!(
        std::fs::read_to_string(env.root.join("volumes/data/_data/f")).unwrap(),
        "hi\n"
    );
}

#[test]
fn a_daemon_with_userns_remap_puts_every_container_in_its_range_but_userns_host_opts_out() {
    let mut env = Env::new("userns-remap");
    env.kill_daemon();
    env.extra_env.push(("BERTH_USERNS_REMAP".into(), "default".into()));
    env.start_daemon();
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let remapped = env.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; stat -c %u /bin/busybox",
    ]);
    let lines: Vec<&str> = remapped.lines().collect();
    assert_eq!(
        first_host_id(lines[0]),
        2147483647,
        "the first slice of containers: {remapped}"
    );
    assert_eq!(lines[1], "0", "the image is root's inside: {remapped}");
    let host = env.ok(&["run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map"]);
    assert_eq!(host.split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"]);
    // An auto container stays clear of the remap range.
    let auto = env.ok(&["run", "--rm", "--userns=auto", "busybox", "cat", "/proc/self/uid_map"]);
    assert!(first_host_id(&auto) >= 2147483647 + 65536, "{auto}");
    // A remap to a user without subordinate ids stops the daemon with the reason.
    env.kill_daemon();
    let out = env
        .command()
        .args(["daemon", "--userns-remap", "nosuchuser"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--userns-remap") && err.contains("nosuchuser") && err.contains("/etc/subuid"),
        "{err}"
    );
}
