//! `network connect` / `disconnect`: a container's networks changed in
//! place, while it runs. The new list is stored as its desired spec and its
//! live record together (with the hash a pass computes for it, so no pass
//! replaces it), and its namespace is rewired to match: interfaces of
//! networks it left go, and since `eth<i>` is the `i`th network of the
//! list, the interfaces after the first change are made again under their
//! new index with the addresses they hold.

use std::sync::Arc;

use std::net::Ipv4Addr;

use super::network::{address_for, blocking, network_infos, refresh_hosts, sync_nat};
use super::DriverResult;
use crate::manifest::{Kind, Object, Spec};
use crate::network::{apply, plan as netplan};
use crate::plan::{self, ObjectKey};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, Live, NetworkInfo};
use crate::reconcile::Engine;

/// Gives the container `obj` names (already desired from `source`) the
/// networks `obj` lists, keeping what it holds on those it stays on. With
/// `force`, failures to remove kernel objects do not stop it.
pub async fn set_networks(engine: &Arc<Engine>, source: &str, obj: &Object, force: bool) -> DriverResult {
    let Spec::Container(new_spec) = &obj.spec else {
        return Err(DriverError::Invalid(format!("{} is not a container", obj.name())));
    };
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    // No pass plans between the store writes and the rewiring.
    let _pass = engine.pass_lock.lock().await;
    let held = engine.lock_for(&key);
    let _held = held.lock().await;
    let old_row = engine
        .store
        .live_get(Kind::Container, name)?
        .ok_or_else(|| DriverError::Invalid(format!("container/{name} was never started")))?;
    let old = records::decode_live(old_row)?;
    let old_spec = old
        .container_spec()
        .cloned()
        .ok_or_else(|| DriverError::Invalid(format!("container/{name} has no container spec")))?;
    let old_nets: Vec<&str> = old_spec.networks.iter().map(|n| n.name()).collect();
    let new_nets: Vec<&str> = new_spec.networks.iter().map(|n| n.name()).collect();
    // Interfaces from here on are made again; those before stay as they are.
    let first_change = old_nets
        .iter()
        .zip(&new_nets)
        .position(|(a, b)| a != b)
        .unwrap_or(old_nets.len().min(new_nets.len()));
    let infos = network_infos(engine, new_nets[first_change..].iter().copied(), |net| {
        DriverError::Invalid(format!("network/{net} is not made yet"))
    })?;
    let wired = engine.host.networks.netns_exists(name);
    let left: Vec<&str> = old_nets.iter().copied().filter(|n| !new_nets.contains(n)).collect();
    let joined: Vec<&str> = new_nets.iter().copied().filter(|n| !old_nets.contains(n)).collect();

    // Addresses first: a full subnet or a taken static address refuses
    // the change before anything else moves.
    let mut addresses = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        let att = &new_spec.networks[first_change + i];
        match address_for(engine, &att.name, info, name, att.ipv4_address.as_deref()) {
            Ok(ip) => addresses.push(ip),
            Err(e) => {
                for net in &joined {
                    let _ = engine.store.alloc_release(net, name);
                }
                return Err(e);
            }
        }
    }
    if wired {
        if let Err(e) = rewire(engine, name, first_change, old_nets.len(), &infos, &addresses, force).await {
            // Back as it was: the old interfaces with their addresses.
            for net in &joined {
                let _ = engine.store.alloc_release(net, name);
            }
            let mut old_infos = Vec::new();
            let mut old_addresses = Vec::new();
            for net in &old_nets[first_change..] {
                let info = engine
                    .live(Kind::Network, net)?
                    .as_ref()
                    .and_then(Live::network_info)
                    .cloned();
                let ip = engine.store.alloc_of(net, name)?;
                if let (Some(info), Some(ip)) = (info, ip) {
                    old_infos.push(info);
                    old_addresses.push(ip);
                }
            }
            let _ = rewire(
                engine,
                name,
                first_change,
                new_nets.len(),
                &old_infos,
                &old_addresses,
                true,
            )
            .await;
            return Err(e);
        }
    }
    for net in &left {
        engine.store.alloc_release(net, name)?;
    }
    engine.store_set(source, std::slice::from_ref(obj), false, &|_, _| None)?;
    let hash = plan::spec_hashes(&engine.desired_objects()?)
        .get(&key)
        .cloned()
        .unwrap_or_default();
    engine
        .store
        .live_put(&records::encode_live(obj, &hash, &old.info, old.created_at))?;
    refresh_hosts(engine).await;
    if !new_spec.ports.is_empty() || !old_spec.ports.is_empty() || new_spec.publish_all || old_spec.publish_all {
        sync_nat(engine).await?;
    }
    for net in &joined {
        let ip = engine.store.alloc_of(net, name)?;
        let with = ip.map(|ip| format!(" with {ip}")).unwrap_or_default();
        engine.event(&key, "Connected", &format!("to network/{net}{with}"));
    }
    for net in &left {
        engine.event(&key, "Disconnected", &format!("from network/{net}"));
    }
    engine.changed();
    Ok(())
}

/// Removes `name`'s interfaces `from..old_count` and makes one per `infos`
/// from index `from` on, with `addresses`.
async fn rewire(
    engine: &Engine,
    name: &str,
    from: usize,
    old_count: usize,
    infos: &[NetworkInfo],
    addresses: &[Ipv4Addr],
    force: bool,
) -> DriverResult {
    let runtime_id = engine.runtime_id(name);
    let nets: Vec<(&NetworkInfo, Ipv4Addr)> = infos.iter().zip(addresses.iter().copied()).collect();
    let interfaces = netplan::interfaces(engine.host.networks.names(), &runtime_id, from, &nets, None);
    let id = name.to_string();
    blocking(engine, move |h| {
        apply::detach(h, &id, &runtime_id, from..old_count, force)?;
        apply::interfaces(h, &id, &interfaces)
    })
    .await??;
    Ok(())
}
