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
    let veth = VethConfig {
        host_name: nets.veth_name("c1", 0),
        alias: nets.alias("container/c1"),
        bridge: bridge.name.clone(),
        ifname: "eth0".into(),
        address: "10.89.250.2".parse().unwrap(),
        prefix: 24,
        default_gateway: Some(bridge.gateway),
        mtu: Some(1400),
    };
    link::attach_veth(&ns, &veth).unwrap();
    let mut names = link::netns_links(&ns).unwrap();
    names.sort();
    assert_eq!(names, ["eth0", "lo"]);
    assert!(link::link_exists(&veth.host_name).unwrap());

    nets.remove_container("c1", 1).unwrap();
    assert!(!link::link_exists(&veth.host_name).unwrap());
    assert!(!Path::new(&ns).exists());
    link::delete_link(&bridge.name).unwrap();
    assert!(!link::link_exists(&bridge.name).unwrap());
}

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
fn containers_on_one_network_talk_by_name_and_ip_and_other_networks_cannot_reach_them() {
    let env = Env::new("netpeers");
    let stack = format!(
        "{}{}{}{}{}",
        env.image_doc(),
        network_doc("front", "{}"),
        network_doc("other", "{}"),
        sh("srv", "  networks: [front]\n", HTTPD),
        sh(
            "cli",
            "  networks: [front]\n",
            "for i in $(seq 50); do wget -q -O- http://srv/ && break; sleep 0.2; done; \
             ip=$(grep -w srv /etc/hosts | cut -f1); wget -q -O- http://$ip/ && cat /etc/resolv.conf /etc/hostname",
        ),
    );
    let file = env.manifest("stack.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (code, logs) = exit_code(&env, "cli", 30);
    assert_eq!(code, 0, "{logs}");
    assert_eq!(logs.matches("hello-from-srv").count(), 2, "{logs}");
    assert!(logs.contains("nameserver"), "{logs}");
    assert!(logs.trim_end().ends_with("cli"), "{logs}");

    // srv's address, as cli's /etc/hosts gives it.
    let hosts = std::fs::read_to_string(env.run.join("net/cli/hosts")).unwrap();
    let srv_ip = hosts
        .lines()
        .find(|l| l.ends_with("\tsrv"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no srv in {hosts}"))
        .to_string();
    let stranger = format!(
        "{}{}",
        env.image_doc(),
        sh(
            "stranger",
            "  networks: [other]\n",
            &format!("grep -w srv /etc/hosts && exit 3; wget -T 2 -q -O- http://{srv_ip}/ && exit 4; exit 7")
        ),
    );
    let file = env.manifest("stranger.yaml", &stranger);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (code, logs) = exit_code(&env, "stranger", 30);
    assert_eq!(code, 7, "the other network reached srv: {logs}");
}

/// A port nothing on the host listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:`port`, retried until it answers or `secs` pass.
fn http_get(port: u16, secs: u64) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                std::time::Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(text) if !text.is_empty() => return text,
            other => assert!(std::time::Instant::now() < deadline, "127.0.0.1:{port}: {other:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_published_port_on_127_0_0_1_reaches_httpd_and_a_second_stack_cannot_take_it() {
    let env = Env::new("netports");
    let port = free_port();
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
    let file = env.manifest("thief.yaml", &second);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "container/thief: host port {port}/tcp is already published by container/web"
        )),
        "{err}"
    );
    // Nothing of the refused stack was applied.
    assert!(!env.berth(&["get", "container", "thief"]).status.success());
    assert!(http_get(port, 5).contains("hello-from-web"));
}
