//! The seam between berth and the host's networking: every netlink, nft,
//! file and DNS-server operation a network plan is applied with. The real
//! one is [`super::Networks`] (its impl is in `reconcile/linux.rs`, beside
//! the other seams'); reconcile's recording fake answers from a script, so
//! [`super::apply`] and the drivers are tested without root.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::dns::Records;
use super::{BridgeConfig, NatNetwork, Networks, PortForward, Proto, Subnet, VethConfig};

/// Networks: bridges, berth's network namespaces and veths, the files a
/// container gets, and the NAT table. Every call blocks (netlink, nft):
/// the engine makes them from `spawn_blocking`.
pub trait NetworkHost: Send + Sync {
    /// Names and paths of this daemon's network objects.
    fn names(&self) -> &Networks;
    /// IPv4 destinations routed on the host, for IPAM to avoid.
    fn host_routes(&self) -> super::Result<Vec<Subnet>>;
    /// Makes or repairs a bridge (idempotent).
    fn ensure_bridge(&self, cfg: &BridgeConfig) -> super::Result<()>;
    /// Whether the bridge exists, is up and holds its gateway address.
    fn bridge_ok(&self, cfg: &BridgeConfig) -> bool;
    /// Whether a container's host-side veth is up on its bridge.
    fn veth_ok(&self, veth: &str, bridge: &str) -> bool;
    /// Whether every one of `veths` is up on `bridge`: one question for a
    /// whole network, which the real host answers from one link dump (a
    /// question per veth made every pass cost a netlink round trip per
    /// container, issue 23).
    fn veths_ok(&self, veths: &[String], bridge: &str) -> bool {
        veths.iter().all(|v| self.veth_ok(v, bridge))
    }
    /// Deletes a link by name; a missing one is fine.
    fn delete_link(&self, name: &str) -> super::Result<()>;
    /// Makes container `id`'s namespace (only `lo`, up); keeps an existing one.
    fn create_netns(&self, id: &str) -> super::Result<PathBuf>;
    fn netns_exists(&self, id: &str) -> bool;
    /// Wires one interface of `id`'s namespace to a bridge.
    fn attach(&self, id: &str, veth: &VethConfig) -> super::Result<()>;
    /// Gives `id`'s namespace a macvlan on the parent named by `cfg.bridge`.
    fn attach_macvlan(&self, id: &str, cfg: &VethConfig) -> super::Result<()>;
    /// Removes one interface of `id`'s namespace: the host end `host_name`
    /// (a veth) and `ifname` inside; missing ones are fine.
    fn detach(&self, id: &str, host_name: &str, ifname: &str) -> super::Result<()>;
    /// Whether a host interface exists.
    fn link_exists(&self, name: &str) -> bool;
    /// Host links named as this root's veths, whoever's they are.
    fn host_veths(&self) -> Vec<String>;
    /// Interface names inside `id`'s namespace.
    fn netns_links(&self, id: &str) -> super::Result<Vec<String>>;
    /// Removes `id`'s veths, namespace and files; what is gone is done.
    fn remove_container(&self, id: &str, interfaces: usize) -> super::Result<()>;
    /// Writes one of `id`'s files (in place: it may be mounted) and returns its path.
    fn write_file(&self, id: &str, file: &str, text: &str) -> super::Result<PathBuf>;
    /// The host's resolver configuration.
    fn host_resolv_conf(&self) -> String;
    /// Replaces berth's nftables table with these networks and ports.
    fn sync_nat(&self, networks: &[NatNetwork], ports: &[PortForward]) -> super::Result<()>;
    /// Whether berth's table holds exactly the rules these would make.
    fn nat_intact(&self, networks: &[NatNetwork], ports: &[PortForward]) -> bool;
    /// Fails when a host process holds the port.
    fn check_port_free(&self, ip: Option<std::net::Ipv4Addr>, port: u16, proto: Proto) -> super::Result<()>;
    /// Ids with a network dir.
    fn list(&self) -> Vec<String>;
    /// Starts (or keeps) `network`'s DNS server on its gateway with these
    /// records; internal networks forward nothing. The servers run on a
    /// thread of their own, so any thread may call this.
    fn dns_start(&self, network: &str, gateway: Ipv4Addr, internal: bool, records: Records) -> super::Result<()>;
    fn dns_set(&self, network: &str, records: Records);
    fn dns_running(&self, network: &str) -> bool;
    fn dns_stop(&self, network: &str);
}
