//! Carries out what [`super::plan`] decided, through a [`NetworkHost`]:
//! interfaces over netlink, berth's nftables table in one transaction, the
//! files in place, the DNS servers' records. Decides nothing itself beyond
//! what to do when a step fails. Every call blocks: the engine makes them
//! from `spawn_blocking`.
//!
//! Containers are named here as the host seam knows them (the engine's
//! wrapper turns names into runtime ids); kernel objects inside the plans
//! are already named by runtime id.

use std::collections::HashMap;

use super::dns::Records;
use super::plan::{Files, Interface, NatPlan, Refresh};
use super::{BridgeConfig, NetworkHost, Result};

/// Makes (or repairs) bridge network `name`: its bridge, then its DNS
/// server on the gateway with `records` (an internal network's forwards
/// nothing). For a `fresh` network a failure removes the bridge again, so
/// nothing is left half-made.
pub fn bridge_network(
    host: &dyn NetworkHost,
    name: &str,
    cfg: &BridgeConfig,
    internal: bool,
    records: Records,
    fresh: bool,
) -> Result<()> {
    host.ensure_bridge(cfg)?;
    let started = host.dns_start(name, cfg.gateway, internal, records);
    if started.is_err() && fresh {
        if let Err(e) = host.delete_link(&cfg.name) {
            tracing::warn!(
                "removing bridge {} of network/{name} after its DNS server failed: {e}",
                cfg.name
            );
        }
    }
    started
}

/// What is wrong with bridge network `name` on the host, in words for an
/// event: its bridge, berth's nftables table (against `nat`), its DNS
/// server. Empty when all is well.
pub fn broken(host: &dyn NetworkHost, name: &str, cfg: &BridgeConfig, nat: &NatPlan) -> Vec<String> {
    let mut wrong = Vec::new();
    if !host.bridge_ok(cfg) {
        wrong.push(format!("bridge {} was missing or lost its address", cfg.name));
    }
    if !nat_intact(host, nat) {
        wrong.push("berth's nftables rules were missing".to_string());
    }
    if !host.dns_running(name) {
        wrong.push("its DNS server was not running".to_string());
    }
    wrong
}

/// Whether every wired container of `members` (container, host end of its
/// veth) has that veth up on `bridge`; one with no namespace is not wired.
pub fn veths_on_bridge(host: &dyn NetworkHost, members: &[(String, String)], bridge: &str) -> bool {
    let wired: Vec<String> = members
        .iter()
        .filter(|(id, _)| host.netns_exists(id))
        .map(|(_, veth)| veth.clone())
        .collect();
    wired.is_empty() || host.veths_ok(&wired, bridge)
}

/// Removes network `name` from the host: its DNS server (with `dns`) and
/// its bridge (a macvlan network has none: `bridge` is empty).
pub fn remove_network(host: &dyn NetworkHost, name: &str, bridge: &str, dns: bool) -> Result<()> {
    if dns {
        host.dns_stop(name);
    }
    if bridge.is_empty() {
        return Ok(());
    }
    host.delete_link(bridge)
}

/// Gives container `id` its namespace (made, or kept from an earlier run
/// of the same container) and, when `fresh` (there was none), makes
/// `interfaces` in it. A fresh one that fails is removed whole, so no
/// half-wired namespace is left.
pub fn namespace(host: &dyn NetworkHost, id: &str, interfaces: &[Interface], fresh: bool) -> Result<()> {
    let made = host.create_netns(id).and_then(|_| {
        if fresh {
            self::interfaces(host, id, interfaces)
        } else {
            Ok(())
        }
    });
    if made.is_err() && fresh {
        if let Err(e) = host.remove_container(id, interfaces.len()) {
            tracing::warn!(container = id, "removing a namespace that failed to be wired: {e}");
        }
    }
    made
}

/// Makes `interfaces` in container `id`'s namespace (made before), in
/// order; stops at the first that fails.
pub fn interfaces(host: &dyn NetworkHost, id: &str, interfaces: &[Interface]) -> Result<()> {
    for iface in interfaces {
        match iface {
            Interface::Veth(cfg) => host.attach(id, cfg)?,
            Interface::Macvlan(cfg) => host.attach_macvlan(id, cfg)?,
        }
    }
    Ok(())
}

/// Makes `iface` again: its old pair goes first, since its container end
/// holds the name `eth<i>` (a bridge made again leaves its old ports
/// detached).
pub fn reattach(host: &dyn NetworkHost, id: &str, iface: &Interface) -> Result<()> {
    host.delete_link(&iface.config().host_name)?;
    interfaces(host, id, std::slice::from_ref(iface))
}

/// Removes the interfaces `indexes` of container `id` (runtime id
/// `runtime_id`, which names the host ends). With `force`, a failure is
/// logged and the rest still go; without, the first failure stops it.
pub fn detach(
    host: &dyn NetworkHost,
    id: &str,
    runtime_id: &str,
    indexes: std::ops::Range<usize>,
    force: bool,
) -> Result<()> {
    for index in indexes {
        let veth = host.names().veth_name(runtime_id, index);
        match host.detach(id, &veth, &format!("eth{index}")) {
            Err(e) if !force => return Err(e),
            Err(e) => tracing::warn!(container = id, "disconnecting eth{index}: {e}"),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Writes container `id`'s /etc/hosts, /etc/hostname and /etc/resolv.conf.
pub fn files(host: &dyn NetworkHost, id: &str, files: &Files) -> Result<()> {
    host.write_file(id, "hosts", &files.hosts)?;
    host.write_file(id, "hostname", &files.hostname)?;
    host.write_file(id, "resolv.conf", &files.resolv)?;
    Ok(())
}

/// Replaces berth's nftables table with `plan`, in one transaction.
pub fn nat(host: &dyn NetworkHost, plan: &NatPlan) -> Result<()> {
    host.sync_nat(&plan.networks, &plan.ports)
}

/// Whether berth's table holds exactly what `plan` would make.
pub fn nat_intact(host: &dyn NetworkHost, plan: &NatPlan) -> bool {
    host.nat_intact(&plan.networks, &plan.ports)
}

/// Hands every network's DNS server its records and rewrites the hosts
/// files the refresh lists (in place: running containers see them at once),
/// skipping containers with no namespace (not wired, or gone). Returns the
/// fingerprints to record as written: those of networks where a file
/// failed are left out, so the next refresh tries them again.
pub fn refresh(host: &dyn NetworkHost, refresh: Refresh) -> HashMap<String, u64> {
    for (network, records) in refresh.dns {
        host.dns_set(&network, records);
    }
    let mut written = refresh.fingerprints;
    for (name, networks, text) in &refresh.hosts {
        if !host.netns_exists(name) {
            continue;
        }
        if let Err(e) = host.write_file(name, "hosts", text) {
            tracing::warn!(container = %name, "refreshing /etc/hosts: {e}");
            for net in networks {
                written.remove(net);
            }
        }
    }
    written
}
