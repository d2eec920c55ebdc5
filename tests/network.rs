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
