//! Networks: a bridge each, with a subnet chosen once and kept; and what a
//! container needs of them (its namespace, veths, addresses from IPAM, its
//! /etc files, NAT for its published ports). Observation reads the kernel:
//! a bridge deleted or stripped by hand, or berth's nftables table flushed,
//! makes the network "gone", and the next pass makes it again with an event
//! naming what was repaired.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::manifest::{ContainerSpec, Kind, Object, Spec};
use crate::network::{ipam, BridgeConfig, NatNetwork, PortForward, Proto, Subnet, VethConfig};
use crate::plan::{Launch, ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, Live, LiveInfo, NetworkInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{now_millis, Engine};
use crate::runtime::{MountSpec, NetnsMode};

pub struct NetworkDriver;

fn parse_subnet(text: &str) -> Result<Subnet, DriverError> {
    Ok(text.parse::<Subnet>()?)
}

fn parse_ip(text: &str) -> Result<Ipv4Addr, DriverError> {
    text.parse()
        .map_err(|_| DriverError::Invalid(format!("{text:?} is not an IPv4 address")))
}

fn bridge_config(engine: &Engine, name: &str, info: &NetworkInfo) -> Result<BridgeConfig, DriverError> {
    Ok(BridgeConfig {
        name: info.bridge.clone(),
        alias: engine.host.networks.names().alias(&format!("network/{name}")),
        subnet: parse_subnet(&info.subnet)?,
        gateway: parse_ip(&info.gateway)?,
        mtu: info.mtu,
    })
}

pub(super) async fn blocking<T: Send + 'static>(
    engine: &Engine,
    work: impl FnOnce(&dyn crate::reconcile::seams::NetworkHost) -> T + Send + 'static,
) -> Result<T, DriverError> {
    let host = engine.host.networks.clone();
    Ok(tokio::task::spawn_blocking(move || work(host.as_ref())).await?)
}

/// What NAT must hold now: every live network, and the published ports of
/// every container holding an address on its first network.
fn nat_state(engine: &Engine) -> Result<(Vec<NatNetwork>, Vec<PortForward>), DriverError> {
    let live = engine.live_all()?;
    let mut networks = Vec::new();
    let mut ports = Vec::new();
    for rec in &live {
        if let Some(info) = rec.network_info().filter(|i| i.parent.is_none()) {
            networks.push(NatNetwork {
                bridge: info.bridge.clone(),
                subnet: parse_subnet(&info.subnet)?,
                internal: info.internal,
            });
        }
        let Some(spec) = rec.container_spec() else { continue };
        let Some(first) = spec.networks.first().map(|n| n.name()) else {
            continue;
        };
        let Some(ip) = engine.store.alloc_of(first, &rec.key.name)? else {
            continue;
        };
        // What its start published (ephemeral ports chosen); a record of an
        // older berth has only the spec's.
        let published = rec.container_info().map(|i| i.published.as_slice()).unwrap_or_default();
        let published = if published.is_empty() { &spec.ports } else { published };
        for p in published.iter().filter(|p| p.host != 0) {
            ports.push(PortForward {
                proto: proto_of(p.protocol.as_deref()),
                host_ip: p.host_addr(),
                host_port: p.host,
                container_ip: parse_ip(&ip)?,
                container_port: p.container,
            });
        }
    }
    Ok((networks, ports))
}

fn proto_of(text: Option<&str>) -> Proto {
    if text == Some("udp") {
        Proto::Udp
    } else {
        Proto::Tcp
    }
}

/// Docker's ephemeral port range (its default; the kernel's
/// `ip_local_port_range` here too).
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Ephemeral ports handed to a start that has not recorded them yet, so
/// that two starts at once do not take the same one; an entry older than
/// a start can take is stale.
static CHOSEN: std::sync::Mutex<Vec<(Proto, u16, String, std::time::Instant)>> = std::sync::Mutex::new(Vec::new());

/// The ports `spec` publishes: its `ports`, then with `publishAll` each of
/// the image's `exposed` ports (`80/tcp`) it does not publish already, on
/// an ephemeral host port (`host: 0`).
pub(super) fn wanted_ports(spec: &ContainerSpec, exposed: &[String]) -> Vec<crate::manifest::PortMapping> {
    let mut out = spec.ports.clone();
    if spec.publish_all {
        for e in exposed {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let Ok(container) = port.parse::<u16>() else { continue };
            let proto = if proto == "udp" { "udp" } else { "tcp" };
            if out.iter().any(|p| p.container == container && p.proto() == proto) {
                continue;
            }
            out.push(crate::manifest::PortMapping {
                host_ip: None,
                host: 0,
                container,
                protocol: (proto == "udp").then(|| "udp".to_string()),
            });
        }
    }
    out
}

/// The ports container `name` publishes for this start, each ephemeral one
/// (`host: 0`) given a free host port: the one it had (`before`) when that
/// is still free, else the first free one from a point that varies.
pub(super) async fn publish(
    engine: &Engine,
    name: &str,
    spec: &ContainerSpec,
    exposed: &[String],
    before: &[crate::manifest::PortMapping],
) -> Result<Vec<crate::manifest::PortMapping>, DriverError> {
    let mut wanted = wanted_ports(spec, exposed);
    if wanted.is_empty() {
        return Ok(wanted);
    }
    // Taken: what other containers publish, and what starts at once chose.
    let mut taken: BTreeSet<(Proto, u16)> = BTreeSet::new();
    for rec in engine.live_all()? {
        if rec.key.name == *name {
            continue;
        }
        let Some(other) = rec.container_spec() else { continue };
        let chosen = rec.container_info().map(|i| i.published.clone()).unwrap_or_default();
        // Apply refuses a fixed port another spec holds, but not one
        // another container was given ephemerally: that is found here.
        for p in wanted.iter().filter(|p| p.host != 0) {
            if let Some(held) = chosen.iter().find(|c| c.clashes_with(p) && !other.ports.contains(c)) {
                return Err(DriverError::Waiting(format!(
                    "host port {} is held by container/{} (an ephemeral port it was given);                      waiting for it to be free",
                    held.host_label(),
                    rec.key.name
                )));
            }
        }
        for p in other.ports.iter().chain(&chosen) {
            taken.insert((proto_of(p.protocol.as_deref()), p.host));
        }
    }
    if wanted.iter().all(|p| p.host != 0) {
        return Ok(wanted);
    }
    let fresh_for = std::time::Duration::from_secs(60);
    let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
    chosen.retain(|(_, _, owner, at)| at.elapsed() < fresh_for && owner != name);
    for (proto, port, _, _) in chosen.iter() {
        taken.insert((*proto, *port));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let span = u32::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
    for i in 0..wanted.len() {
        if wanted[i].host != 0 {
            continue;
        }
        let proto = proto_of(wanted[i].protocol.as_deref());
        let ip = wanted[i].host_addr();
        let same = |p: &crate::manifest::PortMapping| {
            p.container == wanted[i].container && p.proto() == wanted[i].proto() && p.host_ip == wanted[i].host_ip
        };
        let previous = before.iter().find(|p| same(p) && p.host != 0).map(|p| p.host);
        let start = (seed + i as u32 * 7919) % span;
        let candidates = previous
            .into_iter()
            .chain((0..span).map(|k| EPHEMERAL_PORTS.start() + ((start + k) % span) as u16));
        let mut found = None;
        for port in candidates {
            if taken.contains(&(proto, port))
                || wanted
                    .iter()
                    .any(|p| p.host == port && proto_of(p.protocol.as_deref()) == proto)
            {
                continue;
            }
            if engine.host.networks.check_port_free(ip, port, proto).is_ok() {
                found = Some(port);
                break;
            }
        }
        let port = found.ok_or_else(|| {
            DriverError::Waiting(format!(
                "no free host port in {}-{} to publish container port {}/{}; free one",
                EPHEMERAL_PORTS.start(),
                EPHEMERAL_PORTS.end(),
                wanted[i].container,
                wanted[i].proto()
            ))
        })?;
        wanted[i].host = port;
        chosen.push((proto, port, name.to_string(), std::time::Instant::now()));
    }
    Ok(wanted)
}

/// Rebuilds berth's nftables table from the store.
pub(super) async fn sync_nat(engine: &Engine) -> DriverResult {
    let _held = engine.nat_sync.lock().await;
    let (networks, ports) = nat_state(engine)?;
    blocking(engine, move |h| h.sync_nat(&networks, &ports)).await??;
    Ok(())
}

impl Driver for NetworkDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        let info = live.network_info()?;
        if let Some(parent) = &info.parent {
            return engine.host.networks.link_exists(parent).then_some(RunState::Present);
        }
        let cfg = bridge_config(engine, &live.key.name, info).ok()?;
        if !engine.host.networks.bridge_ok(&cfg) || !engine.host.networks.dns_running(&live.key.name) {
            return None;
        }
        for (container, index) in members(engine, &live.key.name) {
            let veth = engine
                .host
                .networks
                .names()
                .veth_name(&engine.runtime_id(&container), index);
            if engine.host.networks.netns_exists(&container) && !engine.host.networks.veth_ok(&veth, &info.bridge) {
                return None;
            }
        }
        let (networks, ports) = nat_state(engine).ok()?;
        if !engine.host.networks.nat_intact(&networks, &ports) {
            return None;
        }
        Some(RunState::Present)
    }

    fn create<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        _launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let prev = engine.live(Kind::Network, obj.name())?;
            create_network(engine, obj, hash, prev.as_ref()).await
        })
    }

    fn replace<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        _launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            // Its containers are replaced after it (their hash covers it):
            // they let go of the old bridge and their old addresses then.
            if let Some(info) = engine
                .live(Kind::Network, obj.name())?
                .as_ref()
                .and_then(Live::network_info)
            {
                let bridge = info.bridge.clone();
                if !bridge.is_empty() {
                    blocking(engine, move |h| h.delete_link(&bridge)).await??;
                }
            }
            engine.store.alloc_release_network(obj.name())?;
            create_network(engine, obj, hash, None).await
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let users: Vec<String> = engine
                .live_all()?
                .iter()
                .filter(|r| {
                    r.container_spec()
                        .is_some_and(|c| c.networks.iter().any(|n| n.name == name))
                })
                .map(|r| r.key.to_string())
                .collect();
            if !users.is_empty() {
                return Err(DriverError::Waiting(format!(
                    "network/{name} is in use by {}",
                    users.join(", ")
                )));
            }
            engine.host.networks.dns_stop(name);
            if let Some(info) = engine.live(Kind::Network, name)?.as_ref().and_then(Live::network_info) {
                let bridge = info.bridge.clone();
                if !bridge.is_empty() {
                    blocking(engine, move |h| h.delete_link(&bridge)).await??;
                }
            }
            engine.store.alloc_release_network(name)?;
            engine.store.live_delete(Kind::Network, name)?;
            sync_nat(engine).await
        })
    }
}

/// Makes (or, with `prev`, repairs) the bridge and records the network.
async fn create_network(engine: &Arc<Engine>, obj: &Object, hash: &str, prev: Option<&Live>) -> DriverResult {
    let _held = engine.network_create.lock().await;
    // Another daemon on this host may take the subnet chosen from the pool
    // at the same moment (its DNS server then holds the gateway address):
    // choose again around it, a few times.
    let mut avoid = Vec::new();
    loop {
        match create_once(engine, obj, hash, prev, &avoid).await {
            Err(Retry::Taken(subnet)) if avoid.len() < 8 => avoid.push(subnet),
            Err(Retry::Taken(subnet)) => {
                return Err(DriverError::Invalid(format!(
                    "network/{}: subnets taken as they were chosen, last {subnet}; retrying later",
                    obj.name()
                )))
            }
            Err(Retry::Failed(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
}

enum Retry {
    /// The auto-chosen subnet turned out taken.
    Taken(Subnet),
    Failed(DriverError),
}

impl<E: Into<DriverError>> From<E> for Retry {
    fn from(e: E) -> Retry {
        Retry::Failed(e.into())
    }
}

async fn create_once(
    engine: &Arc<Engine>,
    obj: &Object,
    hash: &str,
    prev: Option<&Live>,
    avoid: &[Subnet],
) -> Result<(), Retry> {
    let Spec::Network(spec) = &obj.spec else {
        return Err(Retry::Failed(DriverError::Invalid(format!(
            "{} is not a network",
            obj.name()
        ))));
    };
    let name = obj.name();
    let key = ObjectKey::new(Kind::Network, name);
    let kept = prev
        .filter(|p| p.spec_hash == hash)
        .and_then(Live::network_info)
        .cloned();
    let info = match kept.clone() {
        Some(info) => info,
        None => {
            let subnet = match &spec.subnet {
                Some(text) => parse_subnet(text)?,
                None => choose_subnet(engine, name, avoid).await?,
            };
            let gateway = match &spec.gateway {
                Some(gw) => parse_ip(gw)?,
                None => subnet.default_gateway(),
            };
            let macvlan = spec.driver.as_deref() == Some("macvlan");
            NetworkInfo {
                bridge: if macvlan {
                    String::new()
                } else {
                    engine.host.networks.names().bridge_name(name)
                },
                parent: spec.parent.clone().filter(|_| macvlan),
                ip_range: spec.ip_range.clone(),
                subnet6: spec.subnet6.clone(),
                subnet: subnet.to_string(),
                gateway: gateway.to_string(),
                internal: spec.internal,
                mtu: spec.mtu,
            }
        }
    };
    if let Some(parent) = &info.parent {
        // A macvlan network is its parent interface: nothing to make.
        if !engine.host.networks.link_exists(parent) {
            return Err(Retry::Failed(DriverError::Invalid(format!(
                "network/{name}: parent interface {parent} does not exist"
            ))));
        }
        let rec = records::encode_live(obj, hash, &LiveInfo::Network(info.clone()), now_millis());
        engine.store.live_put(&rec)?;
        if kept.is_none() {
            engine.event(
                &key,
                "Created",
                &format!("macvlan on {parent} with subnet {}", info.subnet),
            );
        }
        return Ok(());
    }
    let cfg = bridge_config(engine, name, &info)?;
    let mut repaired = Vec::new();
    if kept.is_some() {
        if !engine.host.networks.bridge_ok(&cfg) {
            repaired.push(format!("bridge {} was missing or lost its address", cfg.name));
        }
        let (networks, ports) = nat_state(engine)?;
        if !engine.host.networks.nat_intact(&networks, &ports) {
            repaired.push("berth's nftables rules were missing".to_string());
        }
        if !engine.host.networks.dns_running(name) {
            repaired.push("its DNS server was not running".to_string());
        }
    }
    let c = cfg.clone();
    blocking(engine, move |h| h.ensure_bridge(&c)).await??;
    let dns = Addressing::now(engine).and_then(|addressing| {
        let records = dns_records(&addressing, name);
        Ok(engine
            .host
            .networks
            .dns_start(name, cfg.gateway, info.internal, records)?)
    });
    if let Err(e) = dns {
        // A new network leaves nothing half-made.
        if kept.is_none() {
            let bridge = cfg.name.clone();
            let _ = blocking(engine, move |h| h.delete_link(&bridge)).await;
            let in_use = matches!(&e, DriverError::Network(crate::network::NetworkError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse);
            if in_use && spec.subnet.is_none() {
                return Err(Retry::Taken(cfg.subnet));
            }
        }
        return Err(Retry::Failed(e));
    }
    let rec = records::encode_live(obj, hash, &LiveInfo::Network(info.clone()), now_millis());
    engine.store.live_put(&rec)?;
    if kept.is_some() {
        reattach_containers(engine, name, &info).await;
    }
    sync_nat(engine).await?;
    if kept.is_none() {
        engine.event(
            &key,
            "Created",
            &format!(
                "bridge {} with subnet {} (gateway {})",
                info.bridge, info.subnet, info.gateway
            ),
        );
    } else if !repaired.is_empty() {
        engine.event(&key, "Repaired", &repaired.join("; "));
    }
    Ok(())
}

/// Containers with a namespace on `network`, with the index of their
/// interface on it.
fn members(engine: &Engine, network: &str) -> Vec<(String, usize)> {
    let Ok(live) = engine.live_all() else { return Vec::new() };
    live.iter()
        .filter_map(|rec| {
            let index = rec.container_spec()?.networks.iter().position(|n| n.name == network)?;
            Some((rec.key.name.clone(), index))
        })
        .collect()
}

/// Wires again every container on the network whose veth is gone or off
/// the bridge (a bridge made again leaves its old ports detached), with the
/// address it holds.
async fn reattach_containers(engine: &Arc<Engine>, network: &str, info: &NetworkInfo) {
    for (name, index) in members(engine, network) {
        let key = ObjectKey::new(Kind::Container, name.clone());
        if !engine.host.networks.netns_exists(&name) {
            continue;
        }
        let Ok(Some(ip)) = engine.store.alloc_of(network, &name) else {
            continue;
        };
        let Ok(veth) = veth_config(engine, &name, index, info, &ip) else {
            continue;
        };
        if engine.host.networks.veth_ok(&veth.host_name, &veth.bridge) {
            continue;
        }
        let ifname = veth.ifname.clone();
        let id = name.clone();
        // The old pair goes first: its container end holds the name eth<i>.
        let done = blocking(engine, move |h| {
            h.delete_link(&veth.host_name)?;
            h.attach(&id, &veth)
        })
        .await;
        match done {
            Ok(Ok(())) => engine.event(
                &key,
                "Repaired",
                &format!("{ifname} on network/{network} was missing or off its bridge; wired again with {ip}"),
            ),
            Ok(Err(e)) => tracing::warn!(container = %name, "re-attaching to network/{network}: {e}"),
            Err(e) => tracing::warn!(container = %name, "re-attaching to network/{network}: {e}"),
        }
    }
}

/// A free subnet from the pool, around the host's routes and the subnets
/// of this daemon's other networks.
async fn choose_subnet(engine: &Engine, name: &str, avoid: &[Subnet]) -> Result<Subnet, DriverError> {
    let mut taken = blocking(engine, |h| h.host_routes()).await??;
    taken.extend_from_slice(avoid);
    for rec in engine.live_all()? {
        if let Some(info) = rec.network_info() {
            taken.push(parse_subnet(&info.subnet)?);
        }
    }
    // And those other networks ask for, made or not yet.
    for obj in engine.desired_objects()? {
        if let Spec::Network(spec) = &obj.spec {
            if let Some(subnet) = spec.subnet.as_deref().and_then(|s| s.parse().ok()) {
                taken.push(subnet);
            }
        }
    }
    let pools = engine.host.networks.names().pools();
    ipam::choose_from_pools(pools, &taken).ok_or_else(|| {
        DriverError::Network(crate::network::NetworkError::NoFreeSubnet {
            network: name.to_string(),
            pools: pools.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
        })
    })
}

pub(super) fn veth_config(
    engine: &Engine,
    container: &str,
    index: usize,
    info: &NetworkInfo,
    ip: &str,
) -> Result<VethConfig, DriverError> {
    let names = engine.host.networks.names();
    let subnet = parse_subnet(&info.subnet)?;
    // Kernel objects are named by the runtime id, which `rename` keeps.
    let container = &engine.runtime_id(container);
    Ok(VethConfig {
        host_name: names.veth_name(container, index),
        alias: names.alias(&format!("container/{container} eth{index}")),
        bridge: info.bridge.clone(),
        ifname: format!("eth{index}"),
        address: parse_ip(ip)?,
        prefix: subnet.prefix,
        default_gateway: (index == 0 && !info.internal)
            .then(|| parse_ip(&info.gateway))
            .transpose()?,
        mtu: info.mtu,
        mac: None,
    })
}

/// The address `container` holds on `network`, allocated now if it holds
/// none: `wanted` when given (a static address), else the lowest free one.
pub(super) fn address_for(
    engine: &Engine,
    network: &str,
    info: &NetworkInfo,
    container: &str,
    wanted: Option<&str>,
) -> Result<String, DriverError> {
    if let Some(ip) = engine.store.alloc_of(network, container)? {
        return Ok(ip);
    }
    let subnet = parse_subnet(&info.subnet)?;
    let gateway = parse_ip(&info.gateway)?;
    if let Some(wanted) = wanted {
        let used: BTreeSet<Ipv4Addr> = engine
            .store
            .alloc_used(network)?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let ip = ipam::check_static(network, subnet, gateway, &used, parse_ip(wanted)?)?.to_string();
        if engine.store.alloc_take(network, &ip, container)? {
            return Ok(ip);
        }
        return Err(DriverError::Invalid(format!(
            "network {network}: address {ip}: is already in use"
        )));
    }
    let range = info.ip_range.as_deref().map(ipam::parse_range).transpose()?;
    // The store's primary key settles a race with another allocation.
    for _ in 0..8 {
        let used: BTreeSet<Ipv4Addr> = engine
            .store
            .alloc_used(network)?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let ip = ipam::allocate_in(network, subnet, range, gateway, &used)?.to_string();
        if engine.store.alloc_take(network, &ip, container)? {
            return Ok(ip);
        }
    }
    Err(DriverError::Waiting(format!(
        "network/{network}: allocation raced; retrying"
    )))
}

/// How a container is wired: the namespace it joins and its /etc mounts.
pub(super) struct Wired {
    pub netns: NetnsMode,
    pub mounts: Vec<MountSpec>,
}

fn etc_mounts(dir: PathBuf) -> Vec<MountSpec> {
    ["hosts", "hostname", "resolv.conf"]
        .into_iter()
        .map(|file| MountSpec {
            destination: format!("/etc/{file}"),
            source: dir.join(file).to_string_lossy().into_owned(),
            kind: "bind".into(),
            options: vec!["rbind".into(), "nosuid".into(), "nodev".into(), "rw".into()],
            volume: false,
        })
        .collect()
}

/// Gives container `name` its network before it starts: berth's namespace
/// (made now, or kept from an earlier run of the same container) with a veth
/// and an address per network, or the host's or another container's; and
/// its /etc/hosts, /etc/hostname and /etc/resolv.conf. A failure leaves no
/// half-wired namespace behind.
pub(super) async fn wire(engine: &Engine, name: &str, spec: &ContainerSpec) -> Result<Wired, DriverError> {
    let names = engine.host.networks.names().clone();
    match spec.network.as_deref() {
        Some("host") => {
            let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            hosts.push_str(&extra_hosts_text(spec, None));
            let resolv = engine.host.networks.host_resolv_conf();
            write_files(
                engine,
                name,
                spec,
                &hosts,
                &dns_over(spec, crate::network::files::resolv_conf(&resolv, false)),
            )?;
            return Ok(Wired {
                netns: NetnsMode::Host,
                mounts: etc_mounts(names.dir(&engine.runtime_id(name))),
            });
        }
        Some(mode) if mode.starts_with("container:") => {
            let peer = &mode["container:".len()..];
            if !engine.host.networks.netns_exists(peer) {
                return Err(DriverError::Waiting(format!(
                    "waiting for container/{peer} to have its network namespace"
                )));
            }
            return Ok(Wired {
                netns: NetnsMode::Path(names.netns_path(&engine.runtime_id(peer))),
                mounts: etc_mounts(names.dir(&engine.runtime_id(peer))),
            });
        }
        _ => {}
    }
    let mut infos = Vec::new();
    for net in spec.networks.iter().map(|n| n.name()) {
        let info = engine
            .live(Kind::Network, net)?
            .as_ref()
            .and_then(Live::network_info)
            .cloned()
            .ok_or_else(|| DriverError::Waiting(format!("waiting for network/{net} to be created")))?;
        infos.push(info);
    }
    for p in &spec.ports {
        let proto = proto_of(p.protocol.as_deref());
        let (ip, port) = (p.host_addr(), p.host);
        blocking(engine, move |h| h.check_port_free(ip, port, proto)).await??;
    }
    let fresh = !engine.host.networks.netns_exists(name);
    let result = wire_netns(engine, name, spec, &infos, fresh).await;
    if result.is_err() && fresh {
        let (id, n) = (name.to_string(), spec.networks.len());
        let _ = blocking(engine, move |h| h.remove_container(&id, n)).await;
        let _ = engine.store.alloc_release_owner(name);
    }
    result?;
    let host_resolv = engine.host.networks.host_resolv_conf();
    // On a network, names go to its DNS server (the gateway); in `none`,
    // the host's resolvers (unreachable, as in Docker, but kept).
    let resolv = match infos.first().filter(|i| i.parent.is_none()) {
        Some(first) => {
            crate::network::files::resolv_conf(&format!("nameserver {}\n{host_resolv}", first.gateway), true)
                .lines()
                .filter(|l| !l.starts_with("nameserver") || l.ends_with(first.gateway.as_str()))
                .map(|l| format!("{l}\n"))
                .collect()
        }
        None => crate::network::files::resolv_conf(&host_resolv, true),
    };
    let resolv = dns_over(spec, resolv);
    let hosts = hosts_text(&Addressing::now(engine)?, name, spec);
    write_files(engine, name, spec, &hosts, &resolv)?;
    // Peers learn the new address before the container runs, so a peer
    // that reaches it by name finds it in /etc/hosts as well as in DNS.
    refresh_hosts(engine);
    Ok(Wired {
        netns: NetnsMode::Path(names.netns_path(&engine.runtime_id(name))),
        mounts: etc_mounts(names.dir(&engine.runtime_id(name))),
    })
}

async fn wire_netns(
    engine: &Engine,
    name: &str,
    spec: &ContainerSpec,
    infos: &[NetworkInfo],
    fresh: bool,
) -> DriverResult {
    let id = name.to_string();
    blocking(engine, move |h| h.create_netns(&id)).await??;
    for (index, (net, info)) in spec.networks.iter().zip(infos).enumerate() {
        let ip = address_for(engine, &net.name, info, name, net.ipv4_address.as_deref())?;
        if !fresh {
            continue;
        }
        let id = name.to_string();
        let mut cfg = veth_config(engine, name, index, info, &ip)?;
        if index == 0 {
            // Validated; an unvalidated bad one keeps the kernel's.
            cfg.mac = spec
                .mac_address
                .as_deref()
                .and_then(|m| crate::manifest::parse_mac(m).ok());
        }
        match &info.parent {
            Some(parent) => {
                cfg.bridge = parent.clone();
                blocking(engine, move |h| h.attach_macvlan(&id, &cfg)).await??;
            }
            None => {
                blocking(engine, move |h| h.attach(&id, &cfg)).await??;
            }
        }
    }
    Ok(())
}

fn write_files(engine: &Engine, name: &str, spec: &ContainerSpec, hosts: &str, resolv: &str) -> DriverResult {
    let h = &engine.host.networks;
    h.write_file(name, "hosts", hosts)?;
    let hostname = crate::reconcile::translate::hostname_of(name, spec);
    h.write_file(name, "hostname", &format!("{hostname}\n"))?;
    h.write_file(name, "resolv.conf", resolv)?;
    Ok(())
}

/// `resolv` with the container's `dns` settings over it.
fn dns_over(spec: &ContainerSpec, resolv: String) -> String {
    match &spec.dns {
        Some(d) => crate::network::files::with_dns(&resolv, &d.servers, &d.search, &d.options),
        None => resolv,
    }
}

/// The container's `extraHosts` lines; `host-gateway` is `gateway` (its
/// first network's), and left out where there is none (validation refuses
/// that, so only an unvalidated spec gets here).
fn extra_hosts_text(spec: &ContainerSpec, gateway: Option<&str>) -> String {
    let lines: Vec<(String, String)> = spec
        .extra_hosts
        .iter()
        .filter_map(|e| {
            let ip = if e.ip == crate::manifest::HOST_GATEWAY {
                gateway?.to_string()
            } else {
                e.ip.clone()
            };
            Some((ip, e.host.clone()))
        })
        .collect();
    crate::network::files::extra_hosts(&lines)
}

/// /etc/hosts of `name`: itself on each of its networks, then every other
/// container holding an address on one of them.
fn hosts_text(addressing: &Addressing, name: &str, spec: &ContainerSpec) -> String {
    let mut own = Vec::new();
    let mut peers = Vec::new();
    for net in spec.networks.iter().map(|n| n.name()) {
        for (network, address, owner) in &addressing.allocations {
            if network != net {
                continue;
            }
            let Ok(ip) = address.parse() else { continue };
            let mut names = vec![owner.clone()];
            names.extend(addressing.aliases_of(network, owner).iter().cloned());
            if owner == name {
                own.push((ip, names));
            } else {
                peers.push((ip, names));
            }
        }
    }
    if own.is_empty() {
        // `none`: the name still resolves, to the loopback.
        own.push((Ipv4Addr::new(127, 0, 1, 1), vec![name.to_string()]));
    }
    // Its own hostname resolves to itself, as Docker writes it (with the
    // domain: `host.domain host`).
    if let Some(hostname) = &spec.hostname {
        let mut mine = vec![hostname.clone()];
        if let Some(domain) = &spec.domainname {
            mine.insert(0, format!("{hostname}.{domain}"));
        }
        for (_, names) in &mut own {
            for n in mine.iter().rev() {
                if !names.contains(n) {
                    names.insert(0, n.clone());
                }
            }
        }
    }
    let gateway = spec
        .networks
        .first()
        .and_then(|n| addressing.gateways.get(n.name()))
        .map(String::as_str);
    let mut text = crate::network::files::hosts(&own, &peers);
    text.push_str(&extra_hosts_text(spec, gateway));
    text
}

/// The names `network`'s DNS server answers: its containers' names; and,
/// for each of its containers that is on other networks too, the names
/// there, scoped to that container (it asks this server only).
fn dns_records(addressing: &Addressing, network: &str) -> crate::network::dns::Records {
    use crate::network::dns::scoped;
    let mut records = crate::network::dns::Records::new();
    let allocations = &addressing.allocations;
    // A Docker-style name (`proj_web_1`) answers as its DNS label
    // (`proj-web-1`); one with no label form has no record of its own.
    let names_of = |net: &str, owner: &str| {
        std::iter::once(owner)
            .chain(addressing.aliases_of(net, owner).iter().map(String::as_str))
            .filter_map(crate::manifest::dns_label_of)
            .collect::<Vec<_>>()
    };
    for (net, address, owner) in allocations {
        if net != network {
            continue;
        }
        let Ok(client) = address.parse::<Ipv4Addr>() else {
            continue;
        };
        for name in names_of(net, owner) {
            records.entry(name).or_default().push(client);
        }
        for (other, _, _) in allocations.iter().filter(|(n, _, o)| o == owner && n != network) {
            for (_, peer_address, peer) in allocations.iter().filter(|(n, _, _)| n == other) {
                let Ok(ip) = peer_address.parse() else { continue };
                for name in names_of(other, peer) {
                    records.entry(scoped(client, &name)).or_default().push(ip);
                }
            }
        }
    }
    records
}

/// Who holds which address, and the aliases each container has on each
/// network: read once from the store, then every hosts file and DNS table
/// is computed from it without I/O. (Reading them per container made a
/// refresh decode the whole live table once per container on the network.)
struct Addressing {
    /// (network, address, owner) of every allocation.
    allocations: Vec<(String, String, String)>,
    /// The aliases of every live container, by (network, container).
    aliases: std::collections::HashMap<(String, String), Vec<String>>,
    /// The gateway address of every live network (`host-gateway`).
    gateways: std::collections::HashMap<String, String>,
}

impl Addressing {
    fn read(engine: &Engine, live: &[Live]) -> Result<Addressing, DriverError> {
        let mut aliases = std::collections::HashMap::new();
        let mut gateways = std::collections::HashMap::new();
        for rec in live {
            if let Some(info) = rec.network_info() {
                gateways.insert(rec.key.name.clone(), info.gateway.clone());
            }
            let Some(spec) = rec.container_spec() else { continue };
            for net in &spec.networks {
                if !net.aliases.is_empty() {
                    aliases.insert((net.name.clone(), rec.key.name.clone()), net.aliases.clone());
                }
            }
        }
        Ok(Addressing {
            allocations: engine.store.alloc_all()?,
            aliases,
            gateways,
        })
    }

    fn now(engine: &Engine) -> Result<Addressing, DriverError> {
        Addressing::read(engine, &engine.live_all()?)
    }

    fn aliases_of(&self, network: &str, owner: &str) -> &[String] {
        self.aliases
            .get(&(network.to_string(), owner.to_string()))
            .map_or(&[], Vec::as_slice)
    }
}

/// Each network's addresses and aliases as the /etc/hosts files on it were
/// last written from (a fingerprint per network). A refresh rewrites only
/// the files of containers on a network whose fingerprint changed: writing
/// every container's file on each start read and compared N files and
/// built N texts of N lines, O(N²) work per start for files that, but for
/// the new peer's network, did not change. Locked through a refresh, so an
/// older refresh cannot record its reading after a newer one wrote.
/// Empty at start: the daemon's first refresh writes every file.
#[derive(Default)]
pub(crate) struct HostsWritten(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl Addressing {
    /// What `network`'s hosts entries are made of, in a stable order.
    fn fingerprint(&self, network: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut entries: Vec<(&str, &str, &[String])> = self
            .allocations
            .iter()
            .filter(|(net, _, _)| net == network)
            .map(|(net, address, owner)| (address.as_str(), owner.as_str(), self.aliases_of(net, owner)))
            .collect();
        entries.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        entries.hash(&mut h);
        h.finish()
    }
}

/// Rewrites /etc/hosts of the wired containers on each network whose
/// addresses changed (in place: running containers see it at once), after
/// one joined or left (see [`HostsWritten`]).
pub(super) fn refresh_hosts(engine: &Engine) {
    let mut written = engine
        .hosts_written
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(live) = engine.live_all() else { return };
    let addressing = match Addressing::read(engine, &live) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("refreshing /etc/hosts and DNS records: {e}");
            return;
        }
    };
    for rec in &live {
        if rec.network_info().is_some() {
            let records = dns_records(&addressing, &rec.key.name);
            engine.host.networks.dns_set(&rec.key.name, records);
        }
    }
    let mut now = std::collections::HashMap::new();
    let mut failed = BTreeSet::new();
    for rec in &live {
        let Some(spec) = rec.container_spec() else { continue };
        let mut changed = false;
        for net in spec.networks.iter().map(|n| n.name()) {
            let fingerprint = *now
                .entry(net.to_string())
                .or_insert_with(|| addressing.fingerprint(net));
            changed |= written.get(net) != Some(&fingerprint);
        }
        if !changed || !engine.host.networks.netns_exists(&rec.key.name) {
            continue;
        }
        let text = hosts_text(&addressing, &rec.key.name, spec);
        if let Err(e) = engine.host.networks.write_file(&rec.key.name, "hosts", &text) {
            tracing::warn!(container = %rec.key.name, "refreshing /etc/hosts: {e}");
            // Not recorded: the next refresh tries its networks' files again.
            failed.extend(spec.networks.iter().map(|n| n.name().to_string()));
        }
    }
    now.retain(|net, _| !failed.contains(net));
    *written = now;
}

/// Removes what `wire` made for `name` and frees its addresses.
pub(super) async fn unwire(engine: &Engine, name: &str, interfaces: usize) -> DriverResult {
    let id = name.to_string();
    blocking(engine, move |h| h.remove_container(&id, interfaces)).await??;
    engine.store.alloc_release_owner(name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing() -> Addressing {
        let alloc = |n: &str, a: &str, o: &str| (n.to_string(), a.to_string(), o.to_string());
        Addressing {
            allocations: vec![
                alloc("back", "10.1.1.2", "db"),
                alloc("back", "10.1.1.3", "web"),
                alloc("front", "10.1.0.2", "web"),
                alloc("front", "10.1.0.3", "lb"),
            ],
            aliases: [(("back".to_string(), "db".to_string()), vec!["Postgres".to_string()])].into(),
            gateways: [("front".to_string(), "10.1.0.1".to_string())].into(),
        }
    }

    #[test]
    fn hosts_and_dns_records_come_from_one_reading_of_the_addresses() {
        let a = addressing();
        let web = ContainerSpec {
            networks: vec!["front".into(), "back".into()],
            ..Default::default()
        };
        let hosts = hosts_text(&a, "web", &web);
        // Its own addresses first, then its peers on the networks it joined.
        let tail: Vec<&str> = hosts.lines().skip(6).collect();
        assert_eq!(
            tail,
            [
                "10.1.0.2\tweb",
                "10.1.1.3\tweb",
                "10.1.0.3\tlb",
                "10.1.1.2\tdb Postgres"
            ]
        );
        let lonely = ContainerSpec {
            networks: vec!["elsewhere".into()],
            ..Default::default()
        };
        assert!(hosts_text(&a, "x", &lonely).ends_with("127.0.1.1\tx\n"));
        let named = ContainerSpec {
            networks: vec!["front".into()],
            hostname: Some("www".into()),
            domainname: Some("example.org".into()),
            extra_hosts: vec![
                crate::manifest::ExtraHost {
                    host: "gw".into(),
                    ip: "host-gateway".into(),
                },
                crate::manifest::ExtraHost {
                    host: "db.test".into(),
                    ip: "192.0.2.7".into(),
                },
            ],
            ..Default::default()
        };
        let hosts = hosts_text(&a, "web", &named);
        assert!(hosts.contains("10.1.0.2\twww.example.org www web\n"), "{hosts}");
        assert!(hosts.ends_with("10.1.0.1\tgw\n192.0.2.7\tdb.test\n"), "{hosts}");

        let back = dns_records(&a, "back");
        assert_eq!(back["postgres"], [Ipv4Addr::new(10, 1, 1, 2)]);
        assert_eq!(back["web"], [Ipv4Addr::new(10, 1, 1, 3)]);
        // web is on front too: its view of front is scoped to its address here.
        let scoped = crate::network::dns::scoped(Ipv4Addr::new(10, 1, 1, 3), "lb");
        assert_eq!(back[&scoped], [Ipv4Addr::new(10, 1, 0, 3)]);
        assert!(!back.contains_key("lb"));
    }
}
