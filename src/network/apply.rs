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

use super::plan::{Files, Interface, NatPlan, Refresh};
use super::{NetworkHost, Result};

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
