//! Networking as root against the real kernel: berth's own namespaces,
//! bridges, veths and nftables table; traffic only on loopback and inside
//! berth's namespaces.

mod common;

use std::path::Path;

use berth::network::{link, BridgeConfig, Networks, VethConfig};

#[test]
fn a_netns_on_a_bridge_gets_its_address_and_route_and_goes_without_a_trace() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let nets = Networks::new(dir.path(), &format!("berth-nettest{}", std::process::id()));
    let bridge = BridgeConfig {
        name: nets.bridge_name("unit"),
        alias: nets.alias("network/unit"),
        subnet: "10.89.250.0/24".parse().unwrap(),
        gateway: "10.89.250.1".parse().unwrap(),
        mtu: None,
    };
    link::ensure_bridge(&bridge).unwrap();
    assert!(link::bridge_ok(&bridge.name, bridge.gateway, 24).unwrap());
    let ns = nets.netns_path("c1");
    link::create_netns(&ns).unwrap();
    assert!(link::is_netns(&ns));
    assert_eq!(link::netns_links(&ns).unwrap(), ["lo"]);
    let lo = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-o", "link", "show", "lo"])
        .output()
        .unwrap();
    let lo = String::from_utf8_lossy(&lo.stdout);
    assert!(lo.contains(",UP"), "lo is down in a namespace berth made: {lo}");
    let veth = VethConfig {
        host_name: nets.veth_name("c1", 0),
        alias: nets.alias("container/c1"),
        bridge: bridge.name.clone(),
        ifname: "eth0".into(),
        address: "10.89.250.2".parse().unwrap(),
        prefix: 24,
        default_gateway: Some(bridge.gateway),
        mtu: Some(1400),
        mac: None,
    };
    link::attach_veth(&ns, &veth).unwrap();
    let mut names = link::netns_links(&ns).unwrap();
    names.sort();
    assert_eq!(names, ["eth0", "lo"]);
    assert!(link::link_exists(&veth.host_name).unwrap());

    nets.remove_container("c1", 1).unwrap();
    // The kernel destroys the released namespace, and the veth with it, on
    // a work queue: gone within ms, not at once.
    let veth_left = links_left(|n| n == veth.host_name);
    assert!(veth_left.is_empty(), "{veth_left:?}");
    assert!(!Path::new(&ns).exists());
    link::delete_link(&bridge.name).unwrap();
    assert!(!link::link_exists(&bridge.name).unwrap());
}

use common::sync::PortHold;
use common::Env;

fn network_doc(name: &str, spec: &str) -> String {
    format!("---\napiVersion: berth/v1\nkind: Network\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// A container running `script` under sh, with extra spec lines.
fn sh(name: &str, extra: &str, script: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  restartPolicy: never\n{extra}  command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn exit_code(env: &Env, name: &str, secs: u64) -> (i64, String) {
    let v = env.wait_for("container", name, secs, |v| v["exit"].is_object());
    (v["exit"]["code"].as_i64().unwrap(), env.log_text(name))
}

#[test]
fn containers_on_one_network_talk_by_name_dns_and_ip_and_other_networks_cannot_reach_them() {
    let env = Env::new("netpeers");
    let stack = format!(
        "{}{}{}{}{}",
        env.image_doc(),
        network_doc("front", "{subnet: 10.89.253.0/24}"),
        network_doc("other", "{}"),
        sh(
            "srv",
            "  networks: [{name: front, aliases: [www], ipv4Address: 10.89.253.9}]\n",
            HTTPD
        ),
        sh(
            "cli",
            "  networks: [front]\n",
            "for i in $(seq 50); do wget -q -O- http://srv/ && break; sleep 0.2; done; \
             ip=$(grep -w srv /etc/hosts | cut -f1); wget -q -O- http://$ip/ || exit 8; \
             nslookup srv | grep -q \"Address.*$ip\" || exit 9; \
             wget -q -O- http://www/ || exit 10; nslookup www | grep -q 10.89.253.9 || exit 11; \
             cat /etc/resolv.conf /etc/hostname",
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (code, logs) = exit_code(&env, "cli", 30);
    assert_eq!(code, 0, "{logs}");
    assert_eq!(logs.matches("hello-from-srv").count(), 3, "{logs}");
    assert!(logs.contains("nameserver 10.89.253.1"), "{logs}");
    assert!(logs.trim_end().ends_with("cli"), "{logs}");

    // srv's address, as cli's /etc/hosts gives it.
    let hosts = std::fs::read_to_string(env.run.join("net/cli/hosts")).unwrap();
    let srv_ip = hosts
        .lines()
        .find(|l| l.ends_with("\tsrv www"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no srv in {hosts}"))
        .to_string();
    let stranger = format!(
        "{}{}",
        env.image_doc(),
        sh(
            "stranger",
            "  networks: [other]\n",
            &format!(
                "grep -w srv /etc/hosts && exit 3; wget -T 2 -q -O- http://{srv_ip}/ && exit 4; \
                 nslookup srv | grep -q {srv_ip} && exit 5; exit 7"
            )
        ),
    );
    let file = env.manifest("stranger.yaml", &stranger);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (code, logs) = exit_code(&env, "stranger", 30);
    assert_eq!(code, 7, "the other network reached srv: {logs}");
}

/// A TCP port held for this test (see PortHold): a port only bound and
/// released could be taken by another test before berth publishes it.
fn free_port() -> PortHold {
    PortHold::tcp()
}

/// The hold the port tests rely on: berth's own check (a bind with
/// SO_REUSEADDR, then listen) passes on a held port, while a plain bind, a
/// listener of another test and the kernel's choice for port 0 never get it.
#[test]
fn a_held_port_is_refused_to_other_binds_and_given_to_berths_check() {
    let held = free_port();
    let port = held.port;
    for ip in ["127.0.0.1", "127.0.0.2", "0.0.0.0"] {
        let check = std::net::TcpListener::bind((ip, port));
        assert!(check.is_ok(), "berth's check on {ip}:{port}: {check:?}");
    }
    assert_eq!(
        bind_without_reuse(port).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EADDRINUSE)),
        "a bind without SO_REUSEADDR took the held port"
    );
    // While something listens there, nothing else can.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    drop(listener);
    for _ in 0..2000 {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_ne!(other.local_addr().unwrap().port(), port, "port 0 gave the held port");
    }
}

/// A TCP bind of 127.0.0.1:`port` without SO_REUSEADDR (std always sets it).
fn bind_without_reuse(port: u16) -> std::io::Result<()> {
    // SAFETY: socket(2) takes no pointers; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: bind reads `addr`, which we own, for its size; close takes our fd.
    let (rc, err) = unsafe {
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&addr) as libc::socklen_t,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        (rc, err)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err)
    }
}

/// `GET /` on 127.0.0.1:`port`, retried until it answers or `secs` pass.
fn http_get(port: u16, secs: u64) -> String {
    http_get_at([127, 0, 0, 1], port, secs)
}

/// `GET /` on `ip`:`port`, retried until it answers or `secs` pass.
fn http_get_at(ip: [u8; 4], port: u16, secs: u64) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(&(ip, port).into(), std::time::Duration::from_secs(2))?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(text) if !text.is_empty() => return text,
            other => assert!(
                std::time::Instant::now() < deadline,
                "{}:{port}: {other:?}",
                std::net::Ipv4Addr::from(ip)
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_published_port_on_127_0_0_1_reaches_httpd_and_a_second_stack_cannot_take_it() {
    let env = Env::new("netports");
    let held = free_port();
    let port = held.port;
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("pub", "{}"),
        sh(
            "web",
            &format!("  networks: [pub]\n  ports: [{{host: {port}, container: 80}}]\n"),
            HTTPD
        ),
    );
    let file = env.manifest("web.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "web", 20, |v| v["status"] == "Running");
    let answer = http_get(port, 20);
    assert!(answer.contains("hello-from-web"), "{answer}");

    let second = format!(
        "{}{}",
        env.image_doc(),
        sh(
            "thief",
            &format!("  networks: [pub]\n  ports: [{{host: {port}, container: 8080}}]\n"),
            HTTPD
        ),
    );
    refused_whole(
        &env,
        &second,
        &format!("container/thief: host port {port}/tcp is already published by container/web"),
    );
    assert!(http_get(port, 5).contains("hello-from-web"));
}

/// Applies `stack` (with a container `thief`) and expects it refused with
/// `error`, and nothing of it applied.
fn refused_whole(env: &Env, stack: &str, error: &str) {
    let file = env.manifest("thief.yaml", stack);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(error), "{err}");
    assert!(!env.berth(&["get", "container", "thief"]).status.success());
}

#[test]
fn a_port_published_on_one_loopback_address_leaves_the_others_to_other_containers() {
    let env = Env::new("nethostip");
    let held = free_port();
    let port = held.port;
    let published = |name: &str, ip: &str| {
        sh(
            name,
            &format!("  networks: [hip]\n  ports: [{{hostIp: {ip}, host: {port}, container: 80}}]\n"),
            HTTPD,
        )
    };
    let first = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("hip", "{}"),
        published("one", "127.0.0.1")
    );
    let file = env.manifest("one.yaml", &first);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "one", 20, |v| v["status"] == "Running");
    assert!(http_get_at([127, 0, 0, 1], port, 20).contains("hello-from-one"));
    // Only that address: another loopback address on the port is not forwarded.
    assert!(std::net::TcpStream::connect(("127.0.0.3", port)).is_err());

    // The same port on 127.0.0.2 is another publication, for another container.
    let second = format!("{}{}", env.image_doc(), published("two", "127.0.0.2"));
    let file = env.manifest("two.yaml", &second);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "two", 20, |v| v["status"] == "Running");
    assert!(http_get_at([127, 0, 0, 2], port, 20).contains("hello-from-two"));
    assert!(http_get_at([127, 0, 0, 1], port, 5).contains("hello-from-one"));
    let ps = env.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.2:{port}->80/tcp")), "{ps}");

    // The same address and port is refused, and nothing of it is applied.
    let thief = format!("{}{}", env.image_doc(), published("thief", "127.0.0.1"));
    refused_whole(
        &env,
        &thief,
        &format!("container/thief: host port 127.0.0.1:{port}/tcp is already published by container/one"),
    );
    // As is `run -p IP:HOST:CONTAINER` on a taken address, and on every
    // address (which would take 127.0.0.1 and 127.0.0.2 too).
    for p in [format!("127.0.0.2:{port}:80"), format!("{port}:80")] {
        let out = env.berth(&["run", "-d", "--name", "thief", "-p", &p, "busybox", "true"]);
        assert!(!out.status.success(), "-p {p}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is already published by container/"), "-p {p}: {err}");
    }
    // A free address by `run` works.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "three",
        "-p",
        &format!("127.0.0.3:{port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert!(http_get_at([127, 0, 0, 3], port, 20).contains("hello-from-three"));
    assert!(http_get_at([127, 0, 0, 2], port, 5).contains("hello-from-two"));
}

/// Interface names a container printed from /proc/net/dev.
fn interfaces(logs: &str) -> Vec<String> {
    let mut names: Vec<String> = logs
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, counters)| counters.split_whitespace().count() == 16)
        .map(|(n, _)| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn none_host_and_container_modes_and_nothing_is_left_after_delete() {
    let env = Env::new("netmodes");
    let stack = format!(
        "{}{}{}{}{}{}",
        env.image_doc(),
        network_doc("m", "{internal: true}"),
        sh("srv", "  networks: [m]\n", HTTPD),
        sh("alone", "  network: none\n", "cat /proc/net/dev; cat /etc/hosts; ip route 2>/dev/null; true"),
        sh("onhost", "  network: host\n", "cat /proc/net/dev"),
        sh(
            "joiner",
            "  network: container:srv\n",
            "for i in $(seq 50); do wget -q -O- http://127.0.0.1/ && break; sleep 0.2; done; cat /proc/net/dev /proc/net/route",
        ),
    );
    let file = env.manifest("modes.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);

    let (code, logs) = exit_code(&env, "alone", 30);
    assert_eq!(code, 0, "{logs}");
    assert_eq!(interfaces(&logs), ["lo"], "{logs}");
    assert!(logs.contains("127.0.0.1\tlocalhost"), "{logs}");

    let (code, logs) = exit_code(&env, "onhost", 30);
    assert_eq!(code, 0, "{logs}");
    let host_ifs = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let seen = interfaces(&logs);
    let shared = host_ifs.iter().filter(|i| *i != "lo" && seen.contains(i)).count();
    assert!(shared > 0, "host {host_ifs:?} container {seen:?}");

    let (code, logs) = exit_code(&env, "joiner", 30);
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("hello-from-srv"), "{logs}");
    assert_eq!(interfaces(&logs), ["eth0", "lo"], "{logs}");

    // On an internal network there is no default route (destination 0).
    assert!(logs.contains("eth0\t"), "{logs}");
    assert!(!logs.contains("eth0\t00000000"), "{logs}");

    // Deleting everything leaves no link, namespace, rule or allocation.
    let view: serde_json::Value = serde_json::from_str(&env.ok(&["get", "-o", "json"])).unwrap();
    let keys: Vec<String> = view
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["kind"].as_str().unwrap().to_lowercase(),
                v["name"].as_str().unwrap()
            )
        })
        .collect();
    let mut args = vec!["delete"];
    args.extend(keys.iter().map(String::as_str));
    env.ok(&args);
    let prefix = env.cgroup_prefix();
    let nets = Networks::new(&env.run, &prefix);
    let tag = nets.bridge_name("")[2..8].to_string();
    let links = links_left(|n| n.len() > 8 && n[2..8] == tag);
    assert!(links.is_empty(), "{links:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.run.join("net").to_str().unwrap()), "{mounts}");
    assert!(nets.list().is_empty(), "{:?}", nets.list());
    assert_eq!(
        berth::network::nat::rule_count(&nets.child_waits, nets.table()).unwrap(),
        None
    );
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    let left: i64 = db
        .query_row("SELECT count(*) FROM allocations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn run_publishes_on_the_default_bridge_and_honours_network_none() {
    let env = Env::new("netrun");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let held = free_port();
    let port = held.port;
    let published = format!("{port}:80");
    env.ok(&[
        "run", "-d", "--name", "web", "-p", &published, "busybox", "sh", "-c", HTTPD,
    ]);
    assert!(http_get(port, 20).contains("hello-from-web"));
    // The default network was made on first use.
    let net = env.view("network", "bridge");
    assert_eq!(net["status"], "Ready", "{net}");

    let out = env.berth(&["run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(interfaces(&String::from_utf8_lossy(&out.stdout)), ["lo"]);
    let out = env.berth(&["run", "--rm", "busybox", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&String::from_utf8_lossy(&out.stdout)), ["eth0", "lo"]);

    let taken = env.berth(&["run", "-d", "--name", "thief", "-p", &published, "busybox", "true"]);
    assert!(!taken.status.success());
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(err.contains("already published by container/web"), "{err}");
    let bad = env.berth(&["run", "-p", "80:x", "busybox", "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("-p \"80:x\": expected [[IP:][HOST]:]CONTAINER"));
}

#[test]
fn a_bridge_a_veth_or_nft_rules_removed_by_hand_are_repaired_on_the_next_pass() {
    let env = Env::new("netdrift");
    let held = free_port();
    let port = held.port;
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("d", "{}"),
        sh(
            "srv",
            &format!("  networks: [d]\n  ports: [{{host: {port}, container: 80}}]\n"),
            HTTPD
        ),
    );
    let file = env.manifest("drift.yaml", &stack);
    let apply = || env.ok(&["apply", "-f", file.to_str().unwrap()]);
    apply();
    env.wait_for("container", "srv", 20, |v| v["status"] == "Running");
    assert!(http_get(port, 20).contains("hello-from-srv"));
    let nets = Networks::new(&env.run, &env.cgroup_prefix());

    let bridge = nets.bridge_name("d");
    link::delete_link(&bridge).unwrap();
    apply();
    assert!(http_get(port, 10).contains("hello-from-srv"));
    let described = env.ok(&["describe", "network/d"]);
    assert!(
        described.contains(&format!("bridge {bridge} was missing")),
        "{described}"
    );

    link::delete_link(&nets.veth_name("srv", 0)).unwrap();
    apply();
    assert!(http_get(port, 10).contains("hello-from-srv"));
    let described = env.ok(&["describe", "container/srv"]);
    assert!(described.contains("eth0 on network/d was missing"), "{described}");

    let flushed = std::process::Command::new("nft")
        .args(["flush", "table", "inet", nets.table()])
        .status()
        .unwrap();
    assert!(flushed.success());
    apply();
    assert!(http_get(port, 10).contains("hello-from-srv"));
    let described = env.ok(&["describe", "network/d"]);
    assert!(described.contains("nftables rules were missing"), "{described}");
    // Not restarted: repaired around it.
    assert_eq!(env.view("container", "srv")["restarts"], 0);
}

#[test]
fn a_killed_daemon_keeps_containers_reachable_and_gives_no_address_twice() {
    let mut env = Env::new("netrestart");
    let held = free_port();
    let port = held.port;
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("r", "{subnet: 10.89.251.0/29}"),
        sh(
            "one",
            &format!("  networks: [r]\n  ports: [{{host: {port}, container: 80}}]\n"),
            HTTPD
        ),
    );
    let file = env.manifest("one.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "one", 20, |v| v["status"] == "Running");
    assert!(http_get(port, 20).contains("hello-from-one"));

    env.kill_daemon();
    env.start_daemon();
    assert!(http_get(port, 10).contains("hello-from-one"));
    let more = format!(
        "{}{}{}",
        env.image_doc(),
        sh("two", "  networks: [r]\n", "sleep 1000"),
        sh("three", "  networks: [r]\n", "sleep 1000"),
    );
    let file = env.manifest("more.yaml", &more);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "three", 20, |v| v["status"] == "Running");
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT address FROM allocations WHERE network = 'r'")
        .unwrap();
    let mut addresses: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    addresses.sort();
    assert_eq!(addresses, ["10.89.251.2", "10.89.251.3", "10.89.251.4"]);
    // A /29 holds five hosts besides the gateway: a sixth container is refused by name.
    let full = format!(
        "{}{}{}{}",
        env.image_doc(),
        sh("four", "  networks: [r]\n", "sleep 1000"),
        sh("five", "  networks: [r]\n", "sleep 1000"),
        sh("six", "  networks: [r]\n", "sleep 1000"),
    );
    let file = env.manifest("full.yaml", &full);
    env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let settled = |v: &serde_json::Value| v["status"] != "Pending" && v["status"] != "Starting";
    let views: Vec<serde_json::Value> = ["four", "five", "six"]
        .iter()
        .map(|n| env.wait_for("container", n, 20, settled))
        .collect();
    let refused: Vec<&serde_json::Value> = views.iter().filter(|v| v["status"] != "Running").collect();
    assert_eq!(refused.len(), 1, "{views:?}");
    assert!(
        refused[0].to_string().contains("subnet 10.89.251.0/29 is full"),
        "{}",
        refused[0]
    );
}

#[test]
fn network_create_ls_inspect_and_rm_refused_while_in_use() {
    let env = Env::new("netcli");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        env.ok(&["network", "create", "n1", "--subnet", "10.89.252.0/24", "--internal"])
            .trim(),
        "n1"
    );
    let ls = env.ok(&["network", "ls"]);
    assert!(ls.lines().any(|l| l.contains("n1")), "{ls}");
    let inspect = env.ok(&["network", "inspect", "n1"]);
    assert!(inspect.contains("10.89.252.0/24"), "{inspect}");
    // Host bits set: normalised to the network address with a warning naming both (Docker keeps
    // such a subnet as given).
    let fixed = env.berth(&["network", "create", "n2", "--subnet", "10.89.253.1/24"]);
    let warning = String::from_utf8_lossy(&fixed.stderr);
    assert!(fixed.status.success(), "{warning}");
    assert!(
        warning.contains("10.89.253.1/24 has host bits set: using its network address 10.89.253.0/24"),
        "{warning}"
    );
    assert!(env.ok(&["network", "inspect", "n2"]).contains("10.89.253.0/24"));
    env.ok(&["network", "rm", "n2"]);

    let out = env.ok(&["run", "--rm", "--network", "n1", "busybox", "cat", "/etc/resolv.conf"]);
    assert_eq!(out, "nameserver 10.89.252.1\n");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "n1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let refused = env.berth(&["network", "rm", "n1"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("network/n1 is used by container/user"), "{err}");
    env.ok(&["delete", "container/user"]);
    env.ok(&["network", "rm", "n1"]);
    assert!(!env.ok(&["network", "ls"]).contains("n1"));
}

/// A veth whose namespace something still held when the container went
/// stays until berth deletes it after a grace period; a daemon SIGKILLed
/// inside that period leaves it, and the next start removes it.
#[test]
fn a_veth_left_by_a_killed_daemon_is_removed_at_the_next_start() {
    let mut env = Env::new("netstray");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let nets = Networks::new(&env.run, &env.cgroup_prefix());
    let tag = nets.bridge_name("")[2..8].to_string();
    let ours = |n: &str| n.starts_with("bv") && n[2..8] == tag;
    env.ok(&["run", "-d", "--name", "held", "busybox", "sleep", "1000"]);
    // An open fd keeps the namespace, and so its veth, after berth lets go.
    let holder = std::fs::File::open(nets.netns_path("held")).unwrap();
    env.ok(&["rm", "-f", "held"]);
    env.kill_daemon();
    let left: Vec<String> = link::link_names().unwrap().into_iter().filter(|n| ours(n)).collect();
    assert_eq!(left.len(), 1, "the held namespace's veth: {left:?}");
    // Still held: only berth can remove it now.
    env.start_daemon();
    env.ok(&["ps", "-a"]);
    let left = links_left(ours);
    assert!(left.is_empty(), "{left:?}\n{}", env.daemon_log());
    drop(holder);
}

#[test]
fn a_hundred_runs_on_a_bridge_leave_no_veth_netns_rule_or_allocation() {
    let env = Env::new("netcycles");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let nets = Networks::new(&env.run, &env.cgroup_prefix());
    let tag = nets.bridge_name("")[2..8].to_string();
    let started = std::time::Instant::now();
    for i in 0..100 {
        let port = format!("{}:80", 20000 + i);
        let out = env.berth(&["run", "--rm", "-p", &port, "busybox", "true"]);
        assert!(out.status.success(), "run {i}: {out:?}");
    }
    eprintln!("100 runs on the bridge in {:?}", started.elapsed());
    let veths = links_left(|n| n.starts_with("bv") && n[2..8] == tag);
    assert!(veths.is_empty(), "{veths:?}");
    assert!(nets.list().is_empty(), "{:?}", nets.list());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.run.join("net").to_str().unwrap()));
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    let left: i64 = db
        .query_row("SELECT count(*) FROM allocations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    // The bridge stays (the default network outlives runs); its table holds
    // its own rules and no published port.
    let rules = berth::network::nat::rule_count(&nets.child_waits, nets.table())
        .unwrap()
        .unwrap_or(0);
    assert_eq!(rules, berth::network::nat::expected_rules(&[nat_net()], &[]), "{rules}");
}

/// The host links `keep` selects, once the kernel had time to destroy the
/// namespaces berth released (it does so on a work queue, and their veths
/// with them, a few ms after `run --rm` returns; berth deletes what is still
/// there after 2 s).
fn links_left(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left: Vec<String> = link::link_names().unwrap().into_iter().filter(|n| keep(n)).collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn nat_net() -> berth::network::NatNetwork {
    berth::network::NatNetwork {
        bridge: "x".into(),
        subnet: "10.0.0.0/24".parse().unwrap(),
        internal: false,
    }
}

/// Docker's `ip filter FORWARD` (iptables-nft), made here when the host has
/// none: berth keeps accepts for its bridges there, marked as its own, and
/// leaves every other rule alone. Policy accept: the test changes no traffic.
#[test]
fn berth_lets_its_bridges_through_a_docker_forward_chain_and_touches_nothing_else() {
    let nft = |args: &[&str]| std::process::Command::new("nft").args(args).output().unwrap();
    let made_here = !nft(&["list", "chain", "ip", "filter", "FORWARD"]).status.success();
    /// Removes the table this test made, even when it fails half-way.
    struct Made(bool);
    impl Drop for Made {
        fn drop(&mut self) {
            if self.0 {
                let _ = std::process::Command::new("nft")
                    .args(["delete", "table", "ip", "filter"])
                    .output();
            }
        }
    }
    let _made = Made(made_here);
    if made_here {
        assert!(nft(&["add", "table", "ip", "filter"]).status.success());
        let chain = nft(&["add chain ip filter FORWARD { type filter hook forward priority 0; policy accept; }"]);
        assert!(chain.status.success(), "{chain:?}");
    }
    let foreign = nft(&[
        "add",
        "rule",
        "ip",
        "filter",
        "FORWARD",
        "iifname",
        "not-berth0",
        "counter",
        "accept",
        "comment",
        "\"someone else\"",
    ]);
    assert!(foreign.status.success(), "{foreign:?}");

    let env = Env::new("netneighbour");
    let stack = format!("{}{}", env.image_doc(), network_doc("nb", "{}"));
    let file = env.manifest("nb.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let nets = Networks::new(&env.run, &env.cgroup_prefix());
    let bridge = nets.bridge_name("nb");
    let listing = || String::from_utf8_lossy(&nft(&["list", "chain", "ip", "filter", "FORWARD"]).stdout).into_owned();
    let comment = format!("berth:{}", nets.table());
    let text = listing();
    assert!(
        text.contains(&format!("iifname \"{bridge}\" accept comment \"{comment}\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("oifname \"{bridge}\" accept comment \"{comment}\"")),
        "{text}"
    );
    // Applying again replaces berth's rules, never adds more.
    env.ok(&["network", "rm", "nb"]);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(listing().matches(&comment).count(), 2, "{}", listing());

    env.ok(&["network", "rm", "nb"]);
    let text = listing();
    assert!(!text.contains(&comment), "{text}");
    assert!(text.contains("someone else"), "{text}");

    // Clean up what this test made, and only that.
    let with_handles =
        String::from_utf8_lossy(&nft(&["-a", "list", "chain", "ip", "filter", "FORWARD"]).stdout).into_owned();
    let handle = with_handles
        .lines()
        .find(|l| l.contains("someone else"))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(str::trim)
        .map(String::from);
    if let (false, Some(h)) = (made_here, handle) {
        nft(&["delete", "rule", "ip", "filter", "FORWARD", "handle", &h]);
    }
}

/// The parent is a `dummy` link, as the issue asks, where the kernel has
/// the driver; this one has none built in and no modules (`ip link add …
/// type dummy` says "Unknown device type"), so there it is a veth end, up
/// with its peer (else it has no carrier, nor do the macvlans).
#[test]
fn macvlan_containers_on_a_host_parent_reach_each_other() {
    let env = Env::new("netmacvlan");
    let parent = format!("bmv{}", std::process::id() % 100_000);
    let peer = format!("{parent}p");
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = link::delete_link(&self.0);
        }
    }
    let dummy = ip(&["link", "add", &parent, "type", "dummy"]);
    if !dummy {
        assert!(ip(&["link", "add", &parent, "type", "veth", "peer", "name", &peer]));
    }
    let _parent_goes = Gone(parent.clone());
    assert!(ip(&["link", "set", &parent, "up"]));
    if !dummy {
        assert!(ip(&["link", "set", &peer, "up"]));
    }
    let stack = format!(
        "{}{}{}{}",
        env.image_doc(),
        network_doc(
            "lan",
            &format!("{{driver: macvlan, parent: {parent}, subnet: 10.89.254.0/24}}")
        ),
        sh("srv", "  networks: [{name: lan, ipv4Address: 10.89.254.10}]\n", HTTPD),
        sh(
            "cli",
            "  networks: [lan]\n",
            "for target in 10.89.254.10 srv; do ok=; for i in $(seq 20); do \
             ping -c1 -W1 $target > /tmp/ping && ok=1 && break; done; [ -n \"$ok\" ] || exit 1; \
             cat /tmp/ping; done; \
             for i in $(seq 20); do wget -q -O- http://srv/ && break; sleep 0.2; done; cat /proc/net/dev",
        ),
    );
    let file = env.manifest("lan.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (code, logs) = exit_code(&env, "cli", 60);
    assert_eq!(code, 0, "{logs}");
    assert_eq!(logs.matches("1 packets received").count(), 2, "{logs}");
    // TCP too.
    assert!(logs.contains("hello-from-srv"), "{logs}");
    assert_eq!(interfaces(&logs), ["eth0", "lo"], "{logs}");
    let net = env.view("network", "lan");
    assert_eq!(net["status"], "Ready", "{net}");
    env.ok(&["delete", "container/cli", "container/srv", "network/lan"]);
}

/// The addresses `owner` holds, by network, as the store records them.
fn allocations(env: &Env, owner: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT network, address FROM allocations WHERE owner = ?1 ORDER BY network")
        .unwrap();
    stmt.query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `GET /` from inside `container` to `host`:80 once (busybox `nc`: its
/// `wget -T` dies of SIGSEGV under exec here).
fn get_once(env: &Env, container: &str, host: &str) -> Option<String> {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {host} 80");
    let out = env.berth(&["exec", container, "sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.contains("200 OK")).then_some(text)
}

/// [`get_once`], retried for a few seconds.
fn fetch_from(env: &Env, container: &str, host: &str) -> Option<String> {
    for _ in 0..25 {
        if let Some(text) = get_once(env, container, host) {
            return Some(text);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    None
}

#[test]
fn network_connect_and_disconnect_change_a_running_containers_networks() {
    let mut env = Env::new("netconnect");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.ok(&["network", "create", "n1", "--subnet", "10.89.246.0/24"]);
    env.ok(&["network", "create", "n2", "--subnet", "10.89.247.0/24"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n2",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let idle = "trap 'exit 0' TERM; sleep 1000 & wait";
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "n1",
        "busybox",
        "sh",
        "-c",
        idle,
    ]);
    let reach = |env: &Env| get_once(env, "cli", "srv").is_some();
    assert!(!reach(&env), "cli reached srv before it was connected");

    env.ok(&["network", "connect", "--alias", "front", "n2", "cli"]);
    assert!(fetch_from(&env, "cli", "srv")
        .unwrap_or_default()
        .contains("hello-from-srv"));
    let held = allocations(&env, "cli");
    assert_eq!(held.len(), 2, "{held:?}");
    let n2_ip = held.iter().find(|(n, _)| n == "n2").unwrap().1.clone();
    assert_eq!(n2_ip, "10.89.247.3");
    let dev = env.ok(&["exec", "cli", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&dev), ["eth0", "eth1", "lo"]);
    // Its name and alias on n2, in the DNS and in the peer's /etc/hosts.
    let lookup = env.ok(&["exec", "srv", "nslookup", "front"]);
    assert!(lookup.contains(&n2_ip), "{lookup}");
    let hosts = env.ok(&["exec", "srv", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{n2_ip}\tcli front")), "{hosts}");
    let again = env.berth(&["network", "connect", "n2", "cli"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already on network/n2"));

    // Kept over a restart of the container and of the daemon.
    env.ok(&["restart", "cli"]);
    assert!(fetch_from(&env, "cli", "srv").is_some());
    env.kill_daemon();
    env.start_daemon();
    assert!(fetch_from(&env, "cli", "srv").is_some());
    assert_eq!(allocations(&env, "cli"), held);

    env.ok(&["network", "disconnect", "n2", "cli"]);
    assert!(!reach(&env), "cli still reached srv after disconnect");
    let dev = env.ok(&["exec", "cli", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&dev), ["eth0", "lo"]);
    assert_eq!(
        allocations(&env, "cli"),
        [("n1".to_string(), "10.89.246.2".to_string())]
    );
    let hosts = env.ok(&["exec", "srv", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("cli"), "{hosts}");
    // Its address on n2 is free again: the next container gets it.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "third",
        "--network",
        "n2",
        "busybox",
        "sh",
        "-c",
        idle,
    ]);
    assert_eq!(allocations(&env, "third"), [("n2".to_string(), n2_ip.clone())]);

    // Leaving its first network: n2 becomes eth0, with the default route.
    env.ok(&["network", "connect", "--ip", "10.89.247.9", "n2", "cli"]);
    env.ok(&["network", "disconnect", "n1", "cli"]);
    let dev = env.ok(&["exec", "cli", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&dev), ["eth0", "lo"]);
    let route = env.ok(&["exec", "cli", "ip", "route"]);
    assert!(route.contains("default via 10.89.247.1 dev eth0"), "{route}");
    assert!(fetch_from(&env, "cli", "srv").is_some());
    assert_eq!(
        allocations(&env, "cli"),
        [("n2".to_string(), "10.89.247.9".to_string())]
    );

    // A manifest's container is changed in its manifest.
    let decl = env.manifest("decl.yaml", &sh("decl", "  networks: [n1]\n", idle));
    env.ok(&["apply", "-f", decl.to_str().unwrap()]);
    env.wait_for("container", "decl", 20, |v| v["status"] == "Running");
    let refused = env.berth(&["network", "connect", "n2", "decl"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("decl.yaml") && err.contains("spec.networks"), "{err}");
    let missing = env.berth(&["network", "connect", "n9", "cli"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("network/n9 not found"));
    env.ok(&[
        "delete",
        "container/decl",
        "container/cli",
        "container/srv",
        "container/third",
    ]);
}

#[test]
fn ip_range_bounds_addresses_and_the_default_address_pool_is_the_daemons_flag() {
    let mut env = Env::new("netpool");
    env.kill_daemon();
    env.extra_env.push((
        "BERTH_DEFAULT_ADDRESS_POOL".into(),
        "base=10.79.0.0/24,size=28 base=10.79.1.0/24,size=26".into(),
    ));
    env.start_daemon();
    let stack = format!(
        "{}{}{}{}{}{}",
        env.image_doc(),
        network_doc("fixed", "{subnet: 10.79.0.0/28}"),
        network_doc("auto", "{}"),
        network_doc("ranged", "{subnet: 10.79.2.0/24, ipRange: 10.79.2.64/31}"),
        sh("r1", "  networks: [ranged]\n", "sleep 1000"),
        sh("r2", "  networks: [ranged]\n", "sleep 1000"),
    );
    let file = env.manifest("pool.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "r2", 20, |v| v["status"] == "Running");
    // The first /28 of the first pool is taken (by `fixed`): the next one.
    let inspect = env.ok(&["network", "inspect", "auto"]);
    assert!(inspect.contains("10.79.0.16/28"), "{inspect}");
    let mut got: Vec<String> = allocations(&env, "r1")
        .into_iter()
        .chain(allocations(&env, "r2"))
        .map(|(_, a)| a)
        .collect();
    got.sort();
    assert_eq!(got, ["10.79.2.64", "10.79.2.65"]);
    // The range is full; a static address outside it is still fine.
    let more = format!(
        "{}{}",
        sh("r3", "  networks: [ranged]\n", "sleep 1000"),
        sh(
            "r4",
            "  networks: [{name: ranged, ipv4Address: 10.79.2.9}]\n",
            "sleep 1000"
        ),
    );
    let file = env.manifest("more.yaml", &format!("{}{more}", env.image_doc()));
    env.berth(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "r4", 20, |v| v["status"] == "Running");
    let r3 = env.wait_for("container", "r3", 20, |v| v.to_string().contains("is full"));
    assert!(r3.to_string().contains("subnet 10.79.2.64/31 is full"), "{r3}");

    let bad = env.manifest(
        "bad.yaml",
        &network_doc("worse", "{subnet: 10.79.3.0/24, ipRange: 10.79.4.0/28}"),
    );
    let out = env.berth(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:5") && err.contains("spec.ipRange"), "{err}");
    assert!(
        err.contains("ipRange 10.79.4.0/28 is not inside subnet 10.79.3.0/24"),
        "{err}"
    );
    // Dual stack is in the data model, and refused until IPv6 is done.
    let v6 = env.manifest(
        "v6.yaml",
        "apiVersion: berth/v1\nkind: Network\nmetadata: {name: v6}\nspec:\n  subnet: 10.79.5.0/24\n  subnet6: fd00:79::/64\n",
    );
    let out = env.berth(&["apply", "-f", v6.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("v6.yaml:6") && err.contains("spec.subnet6"), "{err}");
    assert!(err.contains("IPv6 is not supported yet"), "{err}");
    env.ok(&["delete", "container/r1", "container/r2", "container/r3", "container/r4"]);
}

/// A UDP echo server for the container (busybox's `nc` has no `-u`):
/// answers each datagram on port 9000 with `echo:` and the datagram.
const UDP_ECHO_C: &str = r#"
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(9000);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 1; }
    puts("listening"); fflush(stdout);
    char b[512];
    for (;;) {
        struct sockaddr_in p; socklen_t l = sizeof p;
        int n = recvfrom(s, b + 5, sizeof b - 5, 0, (struct sockaddr *)&p, &l);
        if (n < 0) continue;
        memcpy(b, "echo:", 5);
        sendto(s, b, n + 5, 0, (struct sockaddr *)&p, l);
    }
}
"#;

#[test]
fn a_published_udp_port_on_127_0_0_1_reaches_the_container_and_answers() {
    let env = Env::new("netudp");
    let bin = env.dir.join("udp");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("echo.c"), UDP_ECHO_C).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(bin.join("udpecho"))
        .arg(bin.join("echo.c"))
        .status()
        .unwrap();
    assert!(cc.success(), "cc -static failed");
    // A UDP port cannot be held the way PortHold holds a TCP one: berth's
    // check binds without SO_REUSEADDR. So the kernel picks a free port and
    // the apply is retried with another when something took it meanwhile.
    let mut tries = 0;
    let port = loop {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stack = format!(
            "{}{}{}",
            env.image_doc(),
            network_doc("u", "{subnet: 10.79.8.0/24}"),
            sh(
                "echo",
                &format!(
                    "  networks: [u]\n  volumes: [{{hostPath: {}, path: /opt/udp, readOnly: true}}]\n  ports: [{{host: {port}, container: 9000, protocol: udp}}]\n",
                    bin.display()
                ),
                "exec /opt/udp/udpecho"
            ),
        );
        let file = env.manifest("udp.yaml", &stack);
        let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            break port;
        }
        tries += 1;
        assert!(tries < 5 && err.contains("already in use"), "{err}");
    };
    env.wait_for("container", "echo", 20, |v| v["status"] == "Running");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut answer = None;
    for i in 0..20 {
        client.send(format!("ping{i}").as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = client.recv(&mut buf) {
            answer = Some((i, String::from_utf8_lossy(&buf[..n]).into_owned()));
            break;
        }
    }
    let (i, text) = answer.unwrap_or_else(|| panic!("no UDP answer: {}", env.log_text("echo")));
    assert_eq!(text, format!("echo:ping{i}"));
    // A second stack cannot take the same UDP port.
    let thief = format!(
        "{}{}",
        env.image_doc(),
        sh(
            "thief",
            &format!("  networks: [u]\n  ports: [{{host: {port}, container: 53, protocol: udp}}]\n"),
            "sleep 1"
        ),
    );
    let file = env.manifest("thief.yaml", &thief);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already published by container/echo"), "{err}");
    env.ok(&["delete", "container/echo", "network/u"]);
}

/// A DNS server on 127.0.0.1 for the test: `outside.example.test` is
/// 127.0.0.77, every other name NXDOMAIN. Returns its address.
fn tiny_dns() -> std::net::SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{rdata::A, RData, Record};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = req.queries().first().cloned() else {
                continue;
            };
            let mut resp = Message::new();
            resp.set_id(req.id())
                .set_message_type(MessageType::Response)
                .set_recursion_desired(true)
                .set_recursion_available(true)
                .add_query(q.clone());
            if q.name().to_ascii().trim_end_matches('.') == "outside.example.test" {
                resp.add_answer(Record::from_rdata(q.name().clone(), 5, RData::A(A::new(127, 0, 0, 77))));
            } else {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            let _ = socket.send_to(&resp.to_vec().unwrap(), peer);
        }
    });
    addr
}

#[test]
fn other_names_go_to_the_upstream_and_a_replaced_containers_address_answers_at_once() {
    let mut env = Env::new("netdns");
    let upstream = tiny_dns();
    env.kill_daemon();
    env.extra_env.push(("BERTH_DNS_UPSTREAM".into(), upstream.to_string()));
    env.start_daemon();
    let stack = |srv_ip: &str| {
        format!(
            "{}{}{}{}",
            env.image_doc(),
            network_doc("d", "{subnet: 10.79.9.0/24}"),
            sh(
                "srv",
                &format!("  networks: [{{name: d, ipv4Address: {srv_ip}}}]\n"),
                "sleep 1000"
            ),
            sh("cli", "  networks: [d]\n", "sleep 1000"),
        )
    };
    let file = env.manifest("dns.yaml", &stack("10.79.9.9"));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "cli", 20, |v| v["status"] == "Running");
    env.wait_for("container", "srv", 20, |v| v["status"] == "Running");
    let out = env.ok(&["exec", "cli", "nslookup", "outside.example.test"]);
    assert!(out.contains("127.0.0.77"), "{out}");
    let out = env.berth(&["exec", "cli", "nslookup", "nowhere.example.test"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("127.0.0.77"));
    let out = env.ok(&["exec", "cli", "nslookup", "srv"]);
    assert!(out.contains("10.79.9.9"), "{out}");

    // srv replaced with a new address: the next lookup gives it.
    std::fs::write(&file, stack("10.79.9.19")).unwrap();
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // cli's /etc/hosts is rewritten right after the DNS records.
    let cli_hosts = env.run.join("net/cli/hosts");
    while !std::fs::read_to_string(&cli_hosts)
        .unwrap_or_default()
        .contains("10.79.9.19\tsrv")
    {
        assert!(std::time::Instant::now() < deadline, "srv was not replaced");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = env.ok(&["exec", "cli", "nslookup", "srv"]);
    assert!(out.contains("10.79.9.19") && !out.contains("10.79.9.9\n"), "{out}");
    env.ok(&["delete", "container/cli", "container/srv", "network/d"]);
}

#[test]
fn a_host_port_another_process_holds_is_refused_at_apply_with_its_line() {
    let env = Env::new("netportheld");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let held = free_port();
    let free = held.port;
    let web = format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec:\n  image: busybox\n  networks: [h]\n  command: [sleep, '1000']\n  ports:\n    - {{host: {free}, container: 80}}\n    - {{host: {tcp_port}, container: 81}}\n    - {{host: {udp_port}, container: 53, protocol: udp}}\n"
    );
    let stack = format!(
        "{}{}{web}",
        env.image_doc(),
        network_doc("h", "{subnet: 10.79.10.0/24}"),
    );
    let file = env.manifest("held.yaml", &stack);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<usize> = stack
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&format!("host: {tcp_port},")) || l.contains(&format!("host: {udp_port},")))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        err.contains(&format!("held.yaml:{}", lines[0]))
            && err.contains(&format!("host port {tcp_port}/tcp is already in use")),
        "{err}"
    );
    assert!(
        err.contains(&format!("held.yaml:{}", lines[1]))
            && err.contains(&format!("host port {udp_port}/udp is already in use")),
        "{err}"
    );
    assert!(!err.contains(&format!("host port {free}/")), "{err}");
    // Nothing of the apply was made.
    let all = env.ok(&["get", "-o", "json"]);
    assert!(!all.contains("\"web\"") && !all.contains("\"h\""), "{all}");
    drop((tcp, udp));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "web", 20, |v| v["status"] == "Running");
    env.ok(&["delete", "container/web", "network/h"]);
}

/// The reconciler skips listing berth's table (an `nft` process) while the
/// kernel's ruleset generation has not moved: it must move with every change.
#[test]
fn the_ruleset_generation_moves_with_every_nftables_change() {
    common::require_root();
    use berth::network::nat;
    let table = format!("berth-gentest{}", std::process::id());
    let waits = nat::ChildWaits::default();
    let before = nat::ruleset_generation().expect("the kernel answers NFT_MSG_GETGEN");
    let net = berth::network::NatNetwork {
        bridge: "bbgentest0".into(),
        subnet: "10.89.251.0/24".parse().unwrap(),
        internal: true,
    };
    nat::sync(&waits, &table, &[net], &[]).unwrap();
    let made = nat::ruleset_generation().unwrap();
    nat::remove_table(&waits, &table).unwrap();
    let removed = nat::ruleset_generation().unwrap();
    assert!(made > before, "{before} -> {made}");
    assert!(removed > made, "{made} -> {removed}");
    assert_eq!(nat::rule_count(&waits, &table).unwrap(), None);
}

/// A raw TCP SYN, as a container with NET_RAW can send it: an Ethernet frame
/// to the bridge's MAC with IPv4 destination DST. Resent every 0.5 s; prints
/// SYNACK when the port answers, else NONE after SECS. A datagram to the
/// gateway first makes the host learn the sender's MAC (its own ARP for it
/// would come from 127.0.0.1, which nobody answers), as any traffic of a
/// real container does. Args: IFACE BRIDGE_MAC SRC_IP GATEWAY DST_IP DST_PORT SECS.
const RAW_SYN_PY: &str = r#"
import random, socket, struct, sys, time
iface, dmac, sip, gateway, dip, dport, secs = sys.argv[1:8]
dport = int(dport)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (gateway, 9))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
smac = s.getsockname()[4]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
sport = random.randint(20000, 60000)
src, dst = socket.inet_aton(sip), socket.inet_aton(dip)
tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = bytes.fromhex(dmac.replace(":", "")) + smac + b"\x08\x00" + ip + tcp
s.settimeout(0.1)
deadline = time.time() + float(secs)
resend = 0.0
while time.time() < deadline:
    if time.time() >= resend:
        s.send(frame)
        resend = time.time() + 0.5
    try:
        pkt = s.recv(2048)
    except socket.timeout:
        continue
    h = pkt[14:]
    if len(h) < 40 or h[9] != 6 or h[12:16] != dst:
        continue
    t = h[(h[0] & 15) * 4:]
    sp, dp = struct.unpack("!HH", t[:4])
    if sp == dport and dp == sport and t[13] & 0x12 == 0x12:
        print("SYNACK")
        sys.exit(0)
print("NONE")
"#;

/// One raw UDP datagram "probe" (checksum 0: none, as IPv4 allows), sent as
/// [`RAW_SYN_PY`] sends its SYN. Args: IFACE BRIDGE_MAC SRC_IP GATEWAY DST_IP DST_PORT.
const RAW_UDP_PY: &str = r#"
import socket, struct, sys
iface, dmac, sip, gateway, dip, dport = sys.argv[1:7]
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (gateway, 9))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
smac = s.getsockname()[4]
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
src, dst = socket.inet_aton(sip), socket.inet_aton(dip)
udp = struct.pack("!HHHH", 40000, int(dport), 8 + 5, 0) + b"probe"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s.send(bytes.fromhex(dmac.replace(":", "")) + smac + b"\x08\x00" + ip + udp)
"#;

/// `script` (a raw-socket probe) run by python3 inside the network
/// namespace at `netns`: from its eth0 at `src`, framed to `bridge`'s MAC
/// (whose address is `gateway`), to 127.0.0.1:`port`.
fn raw_probe(netns: &Path, script: &str, bridge: &str, src: &str, gateway: &str, port: u16) -> std::process::Command {
    let mac = std::fs::read_to_string(format!("/sys/class/net/{bridge}/address")).unwrap();
    let mut probe = std::process::Command::new("nsenter");
    probe
        .arg(format!("--net={}", netns.display()))
        .args(["python3", "-c", script, "eth0", mac.trim(), src, gateway, "127.0.0.1"])
        .arg(port.to_string());
    probe
}

/// Sends [`RAW_UDP_PY`]'s datagram from `netns` to a fresh host UDP socket
/// on 127.0.0.1; whether it arrived.
fn raw_udp_arrives(netns: &Path, bridge: &str, src: &str, gateway: &str) -> bool {
    let host = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let status = raw_probe(netns, RAW_UDP_PY, bridge, src, gateway, port)
        .status()
        .unwrap();
    assert!(status.success(), "raw UDP probe failed");
    host.set_read_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 64];
    host.recv(&mut buf).is_ok_and(|n| &buf[..n] == b"probe")
}

/// Runs [`RAW_SYN_PY`] inside the network namespace at `netns`, from its
/// eth0 at `src`, to 127.0.0.1:`port` through `bridge` (whose address is
/// `gateway`); whether a SYN-ACK came.
fn raw_syn_answered(netns: &Path, bridge: &str, src: &str, gateway: &str, port: u16, secs: u32) -> bool {
    let out = raw_probe(netns, RAW_SYN_PY, bridge, src, gateway, port)
        .arg(secs.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && (text.contains("SYNACK") || text.contains("NONE")),
        "raw SYN probe failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.contains("SYNACK")
}

/// A host TCP server on 127.0.0.1 only (kernel-chosen port), accepting and
/// closing until the test ends.
fn loopback_server() -> u16 {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in server.incoming() {});
    port
}

/// CVE-2020-8558's pattern: `route_localnet=1` on a bridge lets a neighbour
/// on it reach services bound to the host's 127.0.0.1. berth's table drops
/// what comes from its bridges to 127.0.0.0/8 that it did not DNAT.
#[test]
fn a_netns_on_a_bridge_cannot_reach_the_hosts_loopback_with_a_raw_syn() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let nets = Networks::new(dir.path(), &format!("berth-lotest{pid}"));
    let bridge = BridgeConfig {
        name: nets.bridge_name("lo"),
        alias: nets.alias("network/lo"),
        subnet: "10.89.249.0/24".parse().unwrap(),
        gateway: "10.89.249.1".parse().unwrap(),
        mtu: None,
    };
    /// Removes what the test made, even when it fails half-way.
    struct Cleanup(Networks, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = berth::network::nat::remove_table(&self.0.child_waits, self.0.table());
            let _ = self.0.remove_container("c1", 1);
            let _ = link::delete_link(&self.1);
        }
    }
    let _cleanup = Cleanup(nets.clone(), bridge.name.clone());
    link::ensure_bridge(&bridge).unwrap();
    let ns = nets.netns_path("c1");
    link::create_netns(&ns).unwrap();
    let veth = VethConfig {
        host_name: nets.veth_name("c1", 0),
        alias: nets.alias("container/c1"),
        bridge: bridge.name.clone(),
        ifname: "eth0".into(),
        address: "10.89.249.2".parse().unwrap(),
        prefix: 24,
        default_gateway: Some(bridge.gateway),
        mtu: None,
        mac: None,
    };
    link::attach_veth(&ns, &veth).unwrap();
    let port = loopback_server();

    // Without berth's table the probe gets through: it is sound.
    assert!(
        raw_syn_answered(&ns, &bridge.name, "10.89.249.2", "10.89.249.1", port, 5),
        "the probe never reached 127.0.0.1:{port} even unguarded"
    );
    assert!(raw_udp_arrives(&ns, &bridge.name, "10.89.249.2", "10.89.249.1"));
    let net = berth::network::NatNetwork {
        bridge: bridge.name.clone(),
        subnet: bridge.subnet,
        internal: false,
    };
    berth::network::nat::sync(&nets.child_waits, nets.table(), &[net], &[]).unwrap();
    assert!(
        !raw_syn_answered(&ns, &bridge.name, "10.89.249.2", "10.89.249.1", port, 2),
        "a raw SYN from the bridge reached 127.0.0.1:{port}"
    );
    assert!(
        !raw_udp_arrives(&ns, &bridge.name, "10.89.249.2", "10.89.249.1"),
        "a raw UDP datagram from the bridge reached 127.0.0.1"
    );
}

/// The same from inside a berth container (its network namespace, as its
/// NET_RAW allows), while its port published on 127.0.0.1 keeps working,
/// and the guard comes back when removed by hand.
#[test]
fn a_container_cannot_reach_the_hosts_loopback_and_its_127_0_0_1_port_still_works() {
    let env = Env::new("netloguard");
    let held = free_port();
    let published = held.port;
    let stack = format!(
        "{}{}{}",
        env.image_doc(),
        network_doc("g", "{subnet: 10.79.11.0/24}"),
        sh(
            "web",
            &format!(
                "  networks: [{{name: g, ipv4Address: 10.79.11.5}}]\n  ports: [{{host: {published}, container: 80, hostIp: 127.0.0.1}}]\n"
            ),
            HTTPD
        ),
    );
    let file = env.manifest("guard.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "web", 20, |v| v["status"] == "Running");
    assert!(http_get(published, 20).contains("hello-from-web"));
    let nets = Networks::new(&env.run, &env.cgroup_prefix());
    let bridge = nets.bridge_name("g");
    let ns = nets.netns_path("web");
    let port = loopback_server();
    assert!(
        !raw_syn_answered(&ns, &bridge, "10.79.11.5", "10.79.11.1", port, 2),
        "a container reached 127.0.0.1:{port}"
    );

    // The table as berth made it reads as intact (not rebuilt every pass).
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let described = env.ok(&["describe", "network/g"]);
    assert!(!described.contains("nftables rules were missing"), "{described}");

    // The guard's chain flushed by hand comes back with the next pass.
    let flushed = std::process::Command::new("nft")
        .args(["flush", "chain", "inet", nets.table(), "input"])
        .status()
        .unwrap();
    assert!(flushed.success());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let described = env.ok(&["describe", "network/g"]);
    assert!(described.contains("nftables rules were missing"), "{described}");
    assert!(!raw_syn_answered(&ns, &bridge, "10.79.11.5", "10.79.11.1", port, 2));
    assert!(http_get(published, 10).contains("hello-from-web"));
    env.ok(&["delete", "container/web", "network/g"]);
}

/// A DNS message: a query (`reply` None) or a response to one with `id`,
/// answering `name` with `a` (NXDOMAIN when None).
fn dns_message(id: u16, name: &str, reply: Option<Option<[u8; 4]>>) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
    use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};
    let name = <Name as std::str::FromStr>::from_str(name).unwrap();
    let mut m = Message::new();
    m.set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), RecordType::A));
    match reply {
        None => {}
        Some(Some(a)) => {
            m.set_message_type(MessageType::Response).add_answer(Record::from_rdata(
                name,
                5,
                RData::A(A::from(std::net::Ipv4Addr::from(a))),
            ));
        }
        Some(None) => {
            m.set_message_type(MessageType::Response)
                .set_response_code(ResponseCode::NXDomain);
        }
    }
    m.to_vec().unwrap()
}

/// Asks `server` for `name`'s A record; the answer, if one comes in `secs`.
fn dns_ask(server: std::net::SocketAddr, id: u16, name: &str, secs: u64) -> Option<hickory_proto::op::Message> {
    let client = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    client.connect(server).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(secs)))
        .unwrap();
    client.send(&dns_message(id, name, None)).unwrap();
    let mut buf = [0u8; 1500];
    let n = client.recv(&mut buf).ok()?;
    hickory_proto::op::Message::from_vec(&buf[..n]).ok()
}

fn a_records(m: &hickory_proto::op::Message) -> Vec<String> {
    m.answers().iter().map(|r| r.data().to_string()).collect()
}

/// An upstream that answers each query as its name says, hostile first:
/// `spoofed.*` gets a reply from another port of the host before the real
/// one, `wrongid.*` gets one with another ID first. The real answer is
/// always 127.0.0.77.
fn hostile_upstream() -> std::net::SocketAddr {
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = upstream.recv_from(&mut buf) {
            let Ok(req) = hickory_proto::op::Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(name) = req.queries().first().map(|q| q.name().to_ascii()) else {
                continue;
            };
            let id = req.id();
            if name.starts_with("spoofed.") {
                let _ = stranger.send_to(&dns_message(id, &name, Some(Some([127, 0, 0, 66]))), from);
            }
            if name.starts_with("wrongid.") {
                let _ = upstream.send_to(&dns_message(id ^ 1, &name, Some(Some([127, 0, 0, 67]))), from);
            }
            let _ = upstream.send_to(&dns_message(id, &name, Some(Some([127, 0, 0, 77]))), from);
        }
    });
    addr
}

/// The daemon's DNS server of a network on `subnet` (10.79.N.0/24), with
/// `upstream` as its resolver, a `srv` container at .9 and a `cli` one.
fn dns_env(name: &str, third: u8, upstream: std::net::SocketAddr) -> (Env, std::net::SocketAddr) {
    let mut env = Env::new(name);
    env.kill_daemon();
    env.extra_env.push(("BERTH_DNS_UPSTREAM".into(), upstream.to_string()));
    env.start_daemon();
    let stack = format!(
        "{}{}{}{}",
        env.image_doc(),
        network_doc("d", &format!("{{subnet: 10.79.{third}.0/24}}")),
        sh(
            "srv",
            &format!("  networks: [{{name: d, ipv4Address: 10.79.{third}.9}}]\n"),
            "sleep 1000"
        ),
        sh("cli", "  networks: [d]\n", "sleep 1000"),
    );
    let file = env.manifest("dns.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "srv", 20, |v| v["status"] == "Running");
    env.wait_for("container", "cli", 20, |v| v["status"] == "Running");
    (env, ([10, 79, third, 1], 53).into())
}

#[test]
fn the_dns_forwarder_takes_only_the_upstreams_answer_to_its_own_query() {
    let (env, server) = dns_env("netdnsspoof", 13, hostile_upstream());
    // A reply from another port of the upstream's host is not the answer.
    let m = dns_ask(server, 4242, "spoofed.example.test", 5).expect("an answer");
    assert_eq!(m.id(), 4242);
    assert_eq!(a_records(&m), ["127.0.0.77"], "{m:?}");
    // Nor is one from the upstream with another ID: the right one still is.
    let m = dns_ask(server, 4343, "wrongid.example.test", 5).expect("an answer");
    assert_eq!(m.id(), 4343);
    assert_eq!(a_records(&m), ["127.0.0.77"], "{m:?}");
    // What was ignored is said.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !env.daemon_log().contains("1 datagrams from an upstream ignored") {
        assert!(std::time::Instant::now() < deadline, "{}", env.daemon_log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.ok(&["delete", "container/cli", "container/srv", "network/d"]);
}

/// The bytes queued on the host's UDP socket at `addr` and the datagrams
/// it dropped for a full buffer (/proc/net/udp).
fn udp_queue_and_drops(addr: std::net::SocketAddr) -> (usize, usize) {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("{addr}: IPv4 only")
    };
    // The address as the kernel prints it: the network-order u32 in hex.
    let local = format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.ip().octets()), v4.port());
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let line = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&local.as_str()))
        .unwrap_or_else(|| panic!("no UDP socket on {addr} ({local}) in {table}"));
    let queued = line[4].split(':').nth(1).map(|h| usize::from_str_radix(h, 16).unwrap());
    (queued.unwrap(), line[line.len() - 1].parse().unwrap())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn a_dns_flood_gets_servfail_beyond_the_bound_and_the_daemons_fds_stay_flat() {
    use hickory_proto::op::{Message, ResponseCode};
    // An upstream that never answers: every forward waits its timeout.
    let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (env, server) = dns_env("netdnsflood", 14, blackhole.local_addr().unwrap());
    let pid = env.daemon.as_ref().unwrap().id();
    let before = fd_count(pid);
    let bound = berth::network::dns::FORWARDS_PER_NETWORK;
    let flood = 4 * bound;

    let client = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    client.connect(server).unwrap();
    // Room for every refusal, should the test read slower than they come.
    nix::sys::socket::setsockopt(&client, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20)).unwrap();
    // As fast as the daemon takes them, with at most 64 queries unanswered
    // beyond the forwards it may hold, and never more than 64 KiB queued on
    // its socket: a loaded machine then slows the flood instead of
    // overrunning the daemon's receive buffer (lost queries would look like
    // missing refusals; any the kernel drops all the same are counted). The
    // excess must be refused at once: waiting 1.5 s for a reply ends the
    // flood, long before the 3 s forward timeout would answer.
    let (_, dropped_before) = udp_queue_and_drops(server);
    client
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let (mut sent, mut servfail, mut most_fds) = (0, 0, 0);
    let mut buf = [0u8; 1500];
    let started = std::time::Instant::now();
    while sent < flood {
        if sent % 16 == 0 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while udp_queue_and_drops(server).0 > 64 << 10 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the daemon stopped reading its socket"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let window_full = sent >= bound + servfail + 64;
        if !window_full {
            client
                .send(&dns_message(sent as u16, &format!("n{sent}.example.test"), None))
                .unwrap();
            sent += 1;
        }
        client.set_nonblocking(!window_full).unwrap();
        match client.recv(&mut buf) {
            Ok(n) => {
                if Message::from_vec(&buf[..n]).is_ok_and(|m| m.response_code() == ResponseCode::ServFail) {
                    servfail += 1;
                }
            }
            Err(e) if !window_full && e.kind() == std::io::ErrorKind::WouldBlock => {}
            // The wait for a reply timed out: nothing was refused at once.
            Err(_) => break,
        }
        // Not on every query: listing the fds is slower than they come.
        if sent % 64 == 0 {
            most_fds = most_fds.max(fd_count(pid));
        }
    }
    client.set_nonblocking(false).unwrap();
    while servfail < flood - bound {
        let Ok(n) = client.recv(&mut buf) else { break };
        if Message::from_vec(&buf[..n]).is_ok_and(|m| m.response_code() == ResponseCode::ServFail) {
            servfail += 1;
        }
    }
    let took = started.elapsed();
    let rate = sent as f64 / took.as_secs_f64();
    most_fds = most_fds.max(fd_count(pid));
    let lost = udp_queue_and_drops(server).1 - dropped_before;
    eprintln!(
        "flood: {servfail} of {sent} refused at once ({rate:.0} queries/s, {lost} lost); daemon fds {before} before, {most_fds} at most"
    );
    assert!(
        servfail + lost >= flood - bound,
        "{servfail} of {flood} refused, {lost} lost"
    );
    assert!(lost < bound, "{lost} of {flood} queries lost");
    // At once: not by forwards timing out (3 s).
    assert!(took < std::time::Duration::from_secs(2), "the flood took {took:?}");
    assert!(
        most_fds <= before + bound + 16,
        "the daemon went from {before} to {most_fds} fds"
    );
    // The network's own names answer during the flood's forwards...
    let m = dns_ask(server, 1, "srv", 5).expect("srv answers during the flood");
    assert_eq!(a_records(&m), ["10.79.14.9"], "{m:?}");
    // ... and after, in a container, and what was refused is said.
    let out = env.ok(&["exec", "cli", "nslookup", "srv"]);
    assert!(out.contains("10.79.14.9"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !env.daemon_log().contains("queries answered SERVFAIL") {
        assert!(std::time::Instant::now() < deadline, "{}", env.daemon_log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.ok(&["delete", "container/cli", "container/srv", "network/d"]);
    drop(blackhole);
}

/// A file's identity and last change: what a write would move.
fn stamp(path: &Path) -> (u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.ino(), m.mtime(), m.mtime_nsec())
}

#[test]
fn a_start_leaves_the_hosts_files_of_other_networks_containers_untouched() {
    let env = Env::new("hostsquiet");
    let base = format!(
        "{}{}{}{}{}",
        env.image_doc(),
        network_doc("front", "{}"),
        network_doc("back", "{}"),
        sh("web", "  networks: [front]\n", "exec sleep 1000"),
        sh("db", "  networks: [back]\n", "exec sleep 1000"),
    );
    let file = env.manifest("stack.yaml", &base);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let (web, db) = (env.run.join("net/web/hosts"), env.run.join("net/db/hosts"));
    let (web_before, db_before) = (stamp(&web), std::fs::read_to_string(&db).unwrap());
    assert!(!db_before.contains("cache"), "{db_before}");

    let more = format!("{base}{}", sh("cache", "  networks: [back]\n", "exec sleep 1000"));
    std::fs::write(&file, more).unwrap();
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    // Peers learn of a container before it runs: db's file has it now.
    let db_after = std::fs::read_to_string(&db).unwrap();
    assert!(db_after.contains("\tcache\n"), "{db_after}");
    // web is on another network: its file was not written (same inode,
    // same change time), and still names only itself.
    assert_eq!(stamp(&web), web_before, "web's hosts file was rewritten");
    assert!(!std::fs::read_to_string(&web).unwrap().contains("cache"));
}

/// Issue 23: many containers on one network. Each finds every other by name
/// (through the network's DNS server and in its /etc/hosts), and deleting
/// them all leaves no namespace bind mount, veth, cgroup, address or
/// nftables table behind. (The size is what a debug build applies in well
/// under a minute here; the 1000-container stack is bench/run's.)
#[test]
fn a_crowded_network_resolves_every_peer_and_deleting_it_leaves_nothing() {
    const N: usize = 150;
    let env = Env::new("crowd");
    let mut text = env.image_doc();
    text.push_str(&network_doc("crowd", "{subnet: 10.79.64.0/22}"));
    for i in 0..N {
        text.push_str(&format!(
            "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: c{i:03}}}\nspec:\n  image: busybox\n  \
             networks: [crowd]\n  stopGracePeriod: 1s\n  command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n"
        ));
    }
    let file = env.manifest("crowd.yaml", &text);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait"]);

    // The first asks the DNS server for every peer; the last has them all
    // in /etc/hosts, the first of them included.
    let script = format!(
        "for i in $(seq -w 1 {}); do nslookup c$i >/dev/null || echo missing c$i; done; echo done",
        N - 1
    );
    let out = env.ok(&["exec", "c000", "sh", "-c", &script]);
    assert_eq!(out.trim(), "done", "names c000 could not resolve: {out}");
    let hosts = env.ok(&["exec", &format!("c{:03}", N - 1), "cat", "/etc/hosts"]);
    let peers = hosts.lines().filter(|l| l.starts_with("10.79.")).count();
    assert_eq!(peers, N, "its own line and one per peer: {hosts}");
    assert!(hosts.contains("\tc000\n"), "{hosts}");
    // A re-apply changes nothing.
    let again = env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(again.contains("no changes"), "{again}");

    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    assert!(env.shim_pids().is_empty(), "shims left: {:?}", env.shim_pids());
    let prefix = env.cgroup_prefix();
    let nets = Networks::new(&env.run, &prefix);
    let tag = nets.bridge_name("")[2..8].to_string();
    let links = links_left(|n| n.len() > 8 && n[2..8] == tag);
    assert!(links.is_empty(), "{links:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let netns_mounts = mounts
        .lines()
        .filter(|l| l.contains(env.run.join("net").to_str().unwrap()))
        .count();
    assert_eq!(netns_mounts, 0, "{mounts}");
    assert!(nets.list().is_empty(), "{:?}", nets.list());
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(&prefix))
        .filter(|p| std::fs::read_dir(p).is_ok_and(|d| d.flatten().any(|e| e.path().is_dir())))
        .collect();
    assert!(cgroups.is_empty(), "container cgroups left: {cgroups:?}");
    assert_eq!(
        berth::network::nat::rule_count(&nets.child_waits, nets.table()).unwrap(),
        None
    );
    let db = rusqlite::Connection::open(env.root.join("state.db")).unwrap();
    let left: i64 = db
        .query_row("SELECT count(*) FROM allocations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}
