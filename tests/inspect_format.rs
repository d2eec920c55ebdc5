//! `inspect`, `--format`, listings' filters and the small container
//! commands (`port`, `diff`, `wait`, `container prune`, `network prune`) as
//! scripts written for Docker use them, against real containers.

mod common;

use common::Env;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An env with the busybox image applied.
fn env_with_busybox(name: &str) -> Env {
    let env = Env::new(name);
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);
    env
}

fn running(env: &Env, name: &str) -> i64 {
    env.wait_for("container", name, 30, |v| v["pid"].is_i64())["pid"]
        .as_i64()
        .unwrap()
}

#[test]
fn inspect_format_prints_the_inits_host_pid_labels_and_addresses() {
    let env = env_with_busybox("insp-pid");
    env.ok(&["network", "create", "n1"]);
    env.ok(&["network", "create", "n2"]);
    let c = env.manifest(
        "web.yaml",
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web, labels: {tier: front, app: shop}}\n\
         spec: {image: busybox, command: [sleep, '1000'], networks: [n1, n2], env: {GREETING: hi}}\n",
    );
    env.ok(&["apply", "-f", c.to_str().unwrap()]);
    let pid = running(&env, "web");

    let out = env.ok(&["inspect", "--format", "{{.State.Pid}}", "web"]);
    assert_eq!(out.trim(), pid.to_string());
    // The same process the kernel knows: its cmdline is the container's.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(String::from_utf8_lossy(&cmdline), "sleep\u{0}1000\u{0}");

    let labels: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "-f", "{{json .Config.Labels}}", "web"])).unwrap();
    assert_eq!(labels["tier"], "front", "{labels}");
    assert_eq!(labels["app"], "shop", "{labels}");
    assert_eq!(
        env.ok(&["inspect", "-f", r#"{{index .Config.Labels "tier"}}"#, "web"])
            .trim(),
        "front"
    );
    let status = env.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "web"]);
    assert_eq!(status.trim(), "running true /web");
    assert!(env
        .ok(&["inspect", "-f", r#"{{join .Config.Env ","}}"#, "web"])
        .contains("GREETING=hi"));

    // Each network's address is the one `ip addr` shows inside.
    let ranged = env.ok(&[
        "inspect",
        "-f",
        "{{range $n, $s := .NetworkSettings.Networks}}{{$n}}={{$s.IPAddress}}/{{$s.IPPrefixLen}} {{end}}",
        "web",
    ]);
    let inside = env.ok(&["exec", "web", "ip", "-4", "-o", "addr"]);
    let pairs: Vec<&str> = ranged.split_whitespace().collect();
    assert_eq!(pairs.len(), 2, "{ranged}");
    for pair in pairs {
        let (_, cidr) = pair.split_once('=').unwrap();
        assert!(inside.contains(cidr), "{cidr} not in {inside}");
    }
    // Only on the default network is the top-level IPAddress set, as Docker's.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
            .trim(),
        ""
    );
    env.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]);
    running(&env, "plain");
    let top = env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "plain"]);
    let inside = env.ok(&["exec", "plain", "ip", "-4", "-o", "addr"]);
    assert!(
        !top.trim().is_empty() && inside.contains(&format!("{}/", top.trim())),
        "{top} {inside}"
    );

    // Without --format: a JSON array with Docker's field names.
    let docs: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "web"])).unwrap();
    assert_eq!(docs[0]["State"]["Pid"], pid, "{docs}");
    assert_eq!(docs[0]["Config"]["Image"], "busybox");
    assert_eq!(docs[0]["HostConfig"]["RestartPolicy"]["Name"], "always");
    assert_eq!(docs[0]["HostConfig"]["NetworkMode"], "n1");
}

#[test]
fn inspect_networks_images_and_volumes() {
    let env = env_with_busybox("insp-kinds");
    env.ok(&[
        "network",
        "create",
        "--subnet",
        "10.91.7.0/24",
        "--gateway",
        "10.91.7.1",
        "net7",
    ]);
    let ipam = env.ok(&[
        "inspect",
        "--type",
        "network",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Driver}} {{.Internal}}",
        "net7",
    ]);
    assert_eq!(ipam.trim(), "10.91.7.0/24 10.91.7.1 bridge false");
    // The network is found without --type too (no container or image has the name).
    assert_eq!(env.ok(&["inspect", "-f", "{{.Name}}", "net7"]).trim(), "net7");

    let id = env.ok(&["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"]);
    let detail: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", id.trim()])).unwrap();
    let layers = env.ok(&["inspect", "--type", "image", "-f", "{{len .RootFS.Layers}}", "busybox"]);
    assert_eq!(
        layers.trim(),
        detail["layers"].as_array().unwrap().len().to_string(),
        "{detail}"
    );
    assert_eq!(id.trim(), detail["id"].as_str().unwrap());

    let v = env.manifest(
        "vol.yaml",
        "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: data, labels: {keep: 'yes'}}\nspec: {}\n",
    );
    env.ok(&["apply", "-f", v.to_str().unwrap()]);
    env.wait_for("volume", "data", 30, |v| v["status"] == "Ready");
    let vol = env.ok(&[
        "inspect",
        "--type",
        "volume",
        "-f",
        "{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels.keep}}",
        "data",
    ]);
    let fields: Vec<&str> = vol.split_whitespace().collect();
    assert_eq!(fields[0..2], ["data", "local"], "{vol}");
    assert!(std::path::Path::new(fields[2]).is_dir(), "{vol}");
    assert_eq!(fields[3], "yes");

    // A network's members, with the address a container got there.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "member",
        "--network",
        "net7",
        "busybox",
        "sleep",
        "1000",
    ]);
    running(&env, "member");
    let members = env.ok(&[
        "inspect",
        "-f",
        "{{range $id, $c := .Containers}}{{$c.Name}} {{$c.IPv4Address}}{{end}}",
        "net7",
    ]);
    assert!(members.starts_with("member 10.91.7."), "{members}");
    assert!(members.trim().ends_with("/24"), "{members}");
}

#[test]
fn a_name_of_both_a_container_and_an_image_is_the_container_unless_typed() {
    let env = env_with_busybox("insp-both");
    env.ok(&["run", "-d", "--name", "busybox", "busybox", "sleep", "1000"]);
    running(&env, "busybox");
    assert_eq!(env.ok(&["inspect", "-f", "{{.Name}}", "busybox"]).trim(), "/busybox");
    let image = env.ok(&["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"]);
    assert!(image.trim().starts_with("sha256:"), "{image}");
    // Several names: all printed, in order.
    let two = env.ok(&["inspect", "-f", "{{.Name}}", "busybox", "busybox"]);
    assert_eq!(two, "/busybox\n/busybox\n");
}

#[test]
fn hostile_templates_and_names_fail_cleanly() {
    let env = env_with_busybox("insp-hostile");
    env.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    running(&env, "web");
    for (template, says) in [
        ("{{nosuch .Id}}", "nosuch"),
        (r#"{{index .State.Pid "x"}}"#, "index"),
        ("{{.State.Pid", "unclosed"),
        ("{{range 100000000000}}x{{end}}", "range"),
    ] {
        let out = env.berth(&["inspect", "-f", template, "web"]);
        assert_eq!(out.status.code(), Some(1), "{template}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{template}: {err}");
        assert!(!err.contains("panicked"), "{template}: {err}");
        assert!(stdout(&out).is_empty(), "{template}: {}", stdout(&out));
    }
    // A range is bounded by the data: a 1000-element label map prints 1000 lines.
    let labels: String = (0..1000).map(|i| format!("l{i}: v{i}, ")).collect();
    let c = env.manifest(
        "many.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: many, labels: {{{labels}}}}}\n\
             spec: {{image: busybox, command: [sleep, '1000']}}\n"
        ),
    );
    env.ok(&["apply", "-f", c.to_str().unwrap()]);
    running(&env, "many");
    let out = env.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .Config.Labels}}{{$k}}\n{{end}}",
        "many",
    ]);
    assert_eq!(out.lines().filter(|l| l.starts_with('l')).count(), 1000);

    // Unknown names: exit 1 and an error naming them, the found ones still print.
    let out = env.berth(&["inspect", "-f", "{{.Name}}", "web", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "/web\n");
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    let out = env.berth(&["inspect", "../web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid"), "{}", stderr(&out));
    let out = env.berth(&["inspect", "--type", "pod", "web"]);
    assert!(stderr(&out).contains("--type"), "{}", stderr(&out));
}

#[test]
fn ps_filters_formats_and_quiet_ids() {
    let env = env_with_busybox("insp-ps");
    for (name, tier) in [("front1", "front"), ("front2", "front"), ("back", "back")] {
        let c = env.manifest(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}, labels: {{tier: {tier}}}}}\n\
                 spec: {{image: busybox, command: [sleep, '1000']}}\n"
            ),
        );
        env.ok(&["apply", "-f", c.to_str().unwrap()]);
        running(&env, name);
    }
    let out = env.berth(&["run", "--name", "done", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    env.wait_for("container", "done", 30, |v| v["exit"]["code"] == 3);

    let mut fronts: Vec<String> = env
        .ok(&["ps", "--filter", "label=tier=front", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    fronts.sort();
    assert_eq!(fronts, ["front1", "front2"]);
    // Two values of one key are alternatives; two keys must both hold.
    let both = env.ok(&["ps", "-f", "name=front1", "-f", "name=back", "--format", "{{.Names}}"]);
    assert_eq!(both.lines().count(), 2, "{both}");
    let none = env.ok(&[
        "ps",
        "-f",
        "name=front1",
        "-f",
        "label=tier=back",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(none, "");

    // -q: ids (the names) of the running ones; -a adds the exited one.
    let mut q: Vec<String> = env.ok(&["ps", "-q"]).lines().map(str::to_owned).collect();
    q.sort();
    assert_eq!(q, ["back", "front1", "front2"]);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 4);
    // status and exited filters consider stopped containers without -a.
    assert_eq!(env.ok(&["ps", "-q", "-f", "status=exited"]).trim(), "done");
    assert_eq!(env.ok(&["ps", "-q", "-f", "exited=3"]).trim(), "done");
    assert_eq!(env.ok(&["ps", "-q", "-f", "exited=0"]), "");
    assert_eq!(env.ok(&["ps", "-q", "-f", "ancestor=busybox"]).lines().count(), 3);
    // -n 1: the newest, stopped or not.
    assert_eq!(
        env.ok(&["ps", "-n", "1", "--format", "{{.Names}} {{.State}}"]).trim(),
        "done exited"
    );

    // table: Docker's header, the columns aligned.
    let table = env.ok(&["ps", "--format", r"table {{.Names}}\t{{.Status}}", "-f", "name=back"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMES") && lines[0].contains("STATUS"), "{table}");
    assert!(lines[1].starts_with("back ") && lines[1].contains("Up "), "{table}");
    // -s: the writable layer's size.
    env.ok(&["exec", "back", "sh", "-c", "head -c 5000 /dev/zero > /big"]);
    let size = env.ok(&["ps", "-s", "-f", "name=back", "--format", "{{.Size}}"]);
    assert!(size.starts_with("5kB") || size.starts_with("5."), "{size}");

    // Hostile: an unknown filter or status is refused by name.
    let out = env.berth(&["ps", "-f", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));
    let out = env.berth(&["ps", "-f", "status=sleeping"]);
    assert!(stderr(&out).contains("sleeping"), "{}", stderr(&out));
    let out = env.berth(&["ps", "--format", "{{.Names"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn diff_shows_what_a_container_added_changed_and_deleted() {
    let env = env_with_busybox("insp-diff");
    let v = env.manifest(
        "vol.yaml",
        "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\nspec: {}\n",
    );
    env.ok(&["apply", "-f", v.to_str().unwrap()]);
    env.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    running(&env, "box");
    // Nothing changed yet: berth's own mounts (/etc/hosts, /proc…) are not changes.
    assert_eq!(env.ok(&["diff", "box"]), "", "a fresh container has no changes");
    env.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo new > /added && echo more >> /etc/passwd && rm /bin/ls && mkdir -p /tmp/d/e && touch /tmp/d/e/f \
         && echo x > /etc/hosts",
    ]);
    let diff = env.ok(&["diff", "box"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /added",
        "C /bin",
        "D /bin/ls",
        "C /etc",
        "C /etc/passwd",
        "C /tmp",
        "A /tmp/d",
        "A /tmp/d/e",
        "A /tmp/d/e/f",
    ] {
        assert!(lines.contains(&want), "{want} missing from:\n{diff}");
    }
    // /etc/hosts is berth's bind mount: written through, not a change of the container's.
    assert!(!diff.contains("/etc/hosts"), "{diff}");
    assert_eq!(lines.len(), 9, "{diff}");
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| &l[2..]);
    assert_eq!(lines, sorted, "sorted by path");
    // Also as `container diff`; an unknown container is an error.
    assert_eq!(env.ok(&["container", "diff", "box"]), diff);
    let out = env.berth(&["diff", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
}

#[test]
fn wait_prints_exit_codes_and_port_the_bindings() {
    let env = env_with_busybox("insp-wait");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 42",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18931:80",
        "-p",
        "18932:53/udp",
        "busybox",
        "sleep",
        "1000",
    ]);
    running(&env, "web");
    // Blocks until it exits, then prints the code; a stopped one answers at once.
    assert_eq!(env.ok(&["wait", "sleeper"]), "42\n");
    assert_eq!(env.ok(&["container", "wait", "sleeper", "sleeper"]), "42\n42\n");
    let out = env.berth(&["wait", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));

    let mut ports: Vec<String> = env.ok(&["port", "web"]).lines().map(str::to_owned).collect();
    ports.sort();
    assert_eq!(ports, ["53/udp -> 0.0.0.0:18932", "80/tcp -> 127.0.0.1:18931"]);
    assert_eq!(env.ok(&["port", "web", "80"]), "127.0.0.1:18931\n");
    assert_eq!(env.ok(&["port", "web", "53/udp"]), "0.0.0.0:18932\n");
    let out = env.berth(&["port", "web", "81"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("81/tcp"), "{}", stderr(&out));
}

#[test]
fn prune_removes_only_stopped_run_containers_and_unused_created_networks() {
    let env = env_with_busybox("insp-prune");
    // A manifest's container that exited, a running one, and a stopped one of `run`.
    let c = env.manifest(
        "job.yaml",
        "apiVersion: berth/v1\nkind: Container\nmetadata: {name: job}\n\
         spec: {image: busybox, command: ['true'], restartPolicy: never}\n",
    );
    env.ok(&["apply", "-f", c.to_str().unwrap()]);
    env.wait_for("container", "job", 30, |v| v["status"] == "Completed");
    env.ok(&["network", "create", "used"]);
    env.ok(&["network", "create", "unused"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "alive",
        "--network",
        "used",
        "busybox",
        "sleep",
        "1000",
    ]);
    running(&env, "alive");
    let out = env.berth(&["run", "--name", "stopped", "busybox", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["create", "--name", "made", "busybox", "true"]);

    // Without -f and without a yes, nothing happens.
    env.ok(&["container", "prune"]);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 4);

    let out = env.ok(&["container", "prune", "-f"]);
    let mut deleted: Vec<&str> = out.lines().skip(1).collect();
    deleted.sort();
    assert_eq!(deleted, ["made", "stopped"], "{out}");
    let mut left: Vec<String> = env.ok(&["ps", "-aq"]).lines().map(str::to_owned).collect();
    left.sort();
    assert_eq!(left, ["alive", "job"]);

    let out = env.ok(&["network", "prune", "-f"]);
    assert!(out.lines().any(|l| l == "unused"), "{out}");
    assert!(!out.lines().any(|l| l == "used"), "{out}");
    assert!(!env.berth(&["get", "network", "unused"]).status.success());
    env.view("network", "used");
}

#[test]
fn images_networks_and_stats_take_format_and_filters() {
    let env = env_with_busybox("insp-lists");
    // images: the imported image is named by no reference (dangling to Docker).
    let dangling = env.ok(&["images", "-f", "dangling=true", "--format", "{{.ID}} {{.Repository}}"]);
    assert_eq!(dangling.lines().count(), 1, "{dangling}");
    assert!(dangling.trim().ends_with("<none>"), "{dangling}");
    assert_eq!(env.ok(&["images", "-f", "dangling=false", "--format", "{{.ID}}"]), "");
    let id = env.ok(&["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"]);
    env.ok(&["tag", id.trim(), "localhost/tools:1"]);
    assert_eq!(
        env.ok(&[
            "images",
            "-f",
            "reference=localhost/*",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]),
        "localhost/tools:1\n"
    );
    assert_eq!(
        env.ok(&["images", "-f", "reference=nomatch*", "--format", "{{.ID}}"]),
        ""
    );
    let table = env.ok(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    let out = env.berth(&["images", "-f", "dangling=maybe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("dangling"), "{}", stderr(&out));

    // network ls
    env.ok(&["network", "create", "--internal", "inner"]);
    env.ok(&["network", "create", "outer"]);
    let mut names: Vec<String> = env
        .ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Internal}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["inner bridge true", "outer bridge false"]);
    assert_eq!(env.ok(&["network", "ls", "-f", "name=inn", "-q"]), "inner\n");
    let out = env.berth(&["network", "ls", "-f", "colour=red"]);
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));

    // stats
    env.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    running(&env, "busy");
    let stats = env.ok(&["stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", "busy"]);
    assert_eq!(stats, "busy:1\n");
}
