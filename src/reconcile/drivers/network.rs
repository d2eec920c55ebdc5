//! Networks: a bridge each, with a subnet chosen once and kept; and what a
//! container needs of them (its namespace, veths, addresses from IPAM, its
//! /etc files, NAT for its published ports). This driver gathers the inputs
//! (records, allocations, specs), asks `network::plan` what to make and
//! hands that to `network::apply`; it keeps the store's side (allocations,
//! records, events). Observation reads the kernel: a bridge deleted or
//! stripped by hand, or berth's nftables table flushed, makes the network
//! "gone", and the next pass makes it again with an event naming what was
//! repaired.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::manifest::{ContainerSpec, Kind, Object, PortMapping, Spec};
use crate::network::plan::{self, Addressing, Files, HostTarget, Member, NatPlan, Published};
use crate::network::ports::{self, Wish};
use crate::network::{apply, ipam, BridgeConfig, Proto, Subnet};
use crate::plan::{Launch, ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, Live, LiveInfo, NetworkInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{now_millis, Engine};
use crate::runtime::{MountSpec, NetnsMode};

pub struct NetworkDriver;

/// An address a spec names (validated on apply; an unvalidated one is
/// refused here by field).
fn spec_ip(field: &str, text: &str) -> Result<Ipv4Addr, DriverError> {
    text.parse()
        .map_err(|_| DriverError::Invalid(format!("{field} {text:?} is not an IPv4 address")))
}

fn bridge_config(engine: &Engine, name: &str, info: &NetworkInfo) -> BridgeConfig {
    plan::bridge(engine.host.networks.names(), name, info)
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
fn nat_plan(engine: &Engine) -> Result<NatPlan, DriverError> {
    let live = engine.live_all()?;
    let mut endpoints = Vec::new();
    for rec in &live {
        let Some(spec) = rec.container_spec() else { continue };
        // A start-first rollout's container that does not serve (yet, or
        // any more): its host ports go to the one that does.
        if rec.container_info().is_some_and(|i| i.unpublished) {
            continue;
        }
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
        endpoints.push((ip, published.iter().map(published_of).collect()));
    }
    Ok(plan::nat(live.iter().filter_map(Live::network_info), &endpoints))
}

fn published_of(p: &PortMapping) -> Published {
    Published {
        proto: proto_of(p.protocol.as_deref()),
        host_ip: p.host_addr(),
        host_port: p.host,
        container_port: p.container,
    }
}

fn proto_of(text: Option<&str>) -> Proto {
    if text == Some("udp") {
        Proto::Udp
    } else {
        Proto::Tcp
    }
}

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
                    "host port {} is held by container/{} (an ephemeral port it was given); waiting for it to be free",
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
    let wishes: Vec<Wish> = wanted
        .iter()
        .map(|w| Wish {
            proto: proto_of(w.protocol.as_deref()),
            host_ip: w.host_addr(),
            host: w.host,
            previous: before
                .iter()
                .find(|p| p.container == w.container && p.proto() == w.proto() && p.host_ip == w.host_ip && p.host != 0)
                .map(|p| p.host),
        })
        .collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let free = |ip, port, proto| engine.host.networks.check_port_free(ip, port, proto).is_ok();
    match engine.ports.choose(name, &wishes, &taken, seed, free) {
        Ok(ports) => {
            for (w, port) in wanted.iter_mut().zip(ports) {
                w.host = port;
            }
            Ok(wanted)
        }
        Err(i) => Err(DriverError::Waiting(format!(
            "no free host port in {}-{} to publish container port {}/{}; free one",
            ports::EPHEMERAL.start(),
            ports::EPHEMERAL.end(),
            wanted[i].container,
            wanted[i].proto()
        ))),
    }
}

/// Rebuilds berth's nftables table from the store.
pub(super) async fn sync_nat(engine: &Engine) -> DriverResult {
    let _held = engine.nat_sync.lock().await;
    let plan = nat_plan(engine)?;
    blocking(engine, move |h| apply::nat(h, &plan)).await??;
    Ok(())
}

impl Driver for NetworkDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        let info = live.network_info()?;
        if let Some(parent) = &info.parent {
            return engine.host.networks.link_exists(parent).then_some(RunState::Present);
        }
        let host = engine.host.networks.as_ref();
        let cfg = bridge_config(engine, &live.key.name, info);
        let veths: Vec<(String, String)> = members(engine, &live.key.name)
            .into_iter()
            .map(|(container, index)| {
                let veth = host.names().veth_name(&engine.runtime_id(&container), index);
                (container, veth)
            })
            .collect();
        let whole = apply::veths_on_bridge(host, &veths, &info.bridge)
            && apply::broken(host, &live.key.name, &cfg, &nat_plan(engine).ok()?).is_empty();
        whole.then_some(RunState::Present)
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
                blocking(engine, move |h| apply::remove_network(h, "", &bridge, false)).await??;
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
            let bridge = engine
                .live(Kind::Network, name)?
                .as_ref()
                .and_then(Live::network_info)
                .map(|info| info.bridge.clone())
                .unwrap_or_default();
            let network = name.to_string();
            blocking(engine, move |h| apply::remove_network(h, &network, &bridge, true)).await??;
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
                Some(text) => text.parse::<Subnet>()?,
                None => choose_subnet(engine, name, avoid).await?,
            };
            let gateway = match &spec.gateway {
                Some(gw) => spec_ip("gateway", gw)?,
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
                ip_range: spec.ip_range.as_deref().map(ipam::parse_range).transpose()?,
                subnet6: spec.subnet6.clone(),
                subnet,
                gateway,
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
    let cfg = bridge_config(engine, name, &info);
    let repaired = match kept {
        Some(_) => apply::broken(engine.host.networks.as_ref(), name, &cfg, &nat_plan(engine)?),
        None => Vec::new(),
    };
    let records = addressing_now(engine)?.dns_records(name);
    let (network, c, internal, fresh) = (name.to_string(), cfg.clone(), info.internal, kept.is_none());
    let made = blocking(engine, move |h| {
        apply::bridge_network(h, &network, &c, internal, records, fresh)
    })
    .await?;
    if let Err(e) = made {
        // Another daemon's DNS server holds the gateway of the subnet just
        // chosen from the pool: choose another.
        let in_use = matches!(&e, crate::network::NetworkError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::AddrInUse);
        if in_use && fresh && spec.subnet.is_none() {
            return Err(Retry::Taken(cfg.subnet));
        }
        return Err(Retry::Failed(e.into()));
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
        let names = engine.host.networks.names();
        let iface = plan::interface(names, &engine.runtime_id(&name), index, info, ip);
        let veth = iface.config();
        if engine.host.networks.veth_ok(&veth.host_name, &veth.bridge) {
            continue;
        }
        let ifname = veth.ifname.clone();
        let id = name.clone();
        match blocking(engine, move |h| apply::reattach(h, &id, &iface)).await {
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
            taken.push(info.subnet);
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

/// The address `container` holds on `network`, allocated now if it holds
/// none: `wanted` when given (a static address), else the lowest free one.
pub(super) fn address_for(
    engine: &Engine,
    network: &str,
    info: &NetworkInfo,
    container: &str,
    wanted: Option<&str>,
) -> Result<Ipv4Addr, DriverError> {
    if let Some(ip) = engine.store.alloc_of(network, container)? {
        return Ok(ip);
    }
    if let Some(wanted) = wanted {
        let used: BTreeSet<Ipv4Addr> = engine.store.alloc_used(network)?.into_iter().collect();
        let wanted = spec_ip("ipv4Address", wanted)?;
        let ip = ipam::check_static(network, info.subnet, info.gateway, &used, wanted)?;
        if engine.store.alloc_take(network, ip, container)? {
            return Ok(ip);
        }
        return Err(DriverError::Invalid(format!(
            "network {network}: address {ip}: is already in use"
        )));
    }
    // The store's primary key settles a race with another allocation.
    for _ in 0..8 {
        let used: BTreeSet<Ipv4Addr> = engine.store.alloc_used(network)?.into_iter().collect();
        let ip = ipam::allocate_in(network, info.subnet, info.ip_range, info.gateway, &used)?;
        if engine.store.alloc_take(network, ip, container)? {
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
    let hostname = crate::reconcile::translate::hostname_of(name, spec);
    match spec.network.as_deref() {
        Some("host") => {
            let mut hosts = crate::network::files::host_hosts();
            hosts.push_str(&plan::extra_hosts(&member(name, spec), None));
            let resolv = engine.host.networks.host_resolv_conf();
            let files = Files {
                hosts,
                hostname: format!("{hostname}\n"),
                resolv: plan::dns_over(
                    crate::network::files::resolv_conf(&resolv, false),
                    dns_settings(spec).as_ref(),
                ),
            };
            apply::files(engine.host.networks.as_ref(), name, &files)?;
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
    let infos = network_infos(engine, spec.networks.iter().map(|n| n.name()), |net| {
        DriverError::Waiting(format!("waiting for network/{net} to be created"))
    })?;
    for p in &spec.ports {
        let proto = proto_of(p.protocol.as_deref());
        let (ip, port) = (p.host_addr(), p.host);
        blocking(engine, move |h| h.check_port_free(ip, port, proto)).await??;
    }
    let fresh = !engine.host.networks.netns_exists(name);
    let wired = wire_netns(engine, name, spec, &infos, hostname, fresh).await;
    if wired.is_err() && fresh {
        let _ = engine.store.alloc_release_owner(name);
    }
    apply::files(engine.host.networks.as_ref(), name, &wired?)?;
    // Peers learn the new address before the container runs, so a peer
    // that reaches it by name finds it in /etc/hosts as well as in DNS.
    refresh_hosts(engine).await;
    Ok(Wired {
        netns: NetnsMode::Path(names.netns_path(&engine.runtime_id(name))),
        mounts: etc_mounts(names.dir(&engine.runtime_id(name))),
    })
}

/// The records of `networks`, in order; one not made yet is `missing(name)`.
pub(super) fn network_infos<'a>(
    engine: &Engine,
    networks: impl IntoIterator<Item = &'a str>,
    missing: impl Fn(&str) -> DriverError,
) -> Result<Vec<NetworkInfo>, DriverError> {
    let mut infos = Vec::new();
    for net in networks {
        let info = engine
            .live(Kind::Network, net)?
            .as_ref()
            .and_then(Live::network_info)
            .cloned()
            .ok_or_else(|| missing(net))?;
        infos.push(info);
    }
    Ok(infos)
}

/// Gives `name` an address on each network, then its namespace; when it
/// is `fresh` (not kept from an earlier run), its interfaces too. Returns
/// the files it is to get.
async fn wire_netns(
    engine: &Engine,
    name: &str,
    spec: &ContainerSpec,
    infos: &[NetworkInfo],
    hostname: String,
    fresh: bool,
) -> Result<Files, DriverError> {
    let mut nets = Vec::new();
    for (net, info) in spec.networks.iter().zip(infos) {
        let ip = address_for(engine, &net.name, info, name, net.ipv4_address.as_deref())?;
        nets.push((info, ip));
    }
    let (member, dns) = (member(name, spec), dns_settings(spec));
    let id = engine.runtime_id(name);
    let wiring = plan::container(
        engine.host.networks.names(),
        &addressing_now(engine)?,
        &engine.host.networks.host_resolv_conf(),
        &plan::Container {
            id: &id,
            member: &member,
            networks: &nets,
            // Validated; an unvalidated bad one keeps the kernel's.
            mac: spec
                .mac_address
                .as_deref()
                .and_then(|m| crate::manifest::parse_mac(m).ok()),
            hostname: &hostname,
            dns: dns.as_ref(),
        },
    );
    let (id, interfaces) = (name.to_string(), wiring.interfaces);
    blocking(engine, move |h| apply::namespace(h, &id, &interfaces, fresh)).await??;
    Ok(wiring.files)
}

/// What the planner needs of container `name` for its hosts file and names.
fn member(name: &str, spec: &ContainerSpec) -> Member {
    Member {
        name: name.to_string(),
        hostname: spec.hostname.clone(),
        domainname: spec.domainname.clone(),
        networks: spec.networks.iter().map(|n| n.name().to_string()).collect(),
        extra_hosts: spec
            .extra_hosts
            .iter()
            .map(|e| {
                let target = if e.ip == crate::manifest::HOST_GATEWAY {
                    HostTarget::Gateway
                } else {
                    HostTarget::Address(e.ip.clone())
                };
                (e.host.clone(), target)
            })
            .collect(),
    }
}

fn dns_settings(spec: &ContainerSpec) -> Option<plan::DnsSettings> {
    spec.dns.as_ref().map(|d| plan::DnsSettings {
        servers: d.servers.clone(),
        search: d.search.clone(),
        options: d.options.clone(),
    })
}

/// Who holds which address and with which aliases, read once from the
/// store and `live`; every hosts file and DNS table is computed from it.
fn addressing(engine: &Engine, live: &[Live]) -> Result<Addressing, DriverError> {
    let mut addressing = Addressing {
        allocations: engine.store.alloc_all()?,
        ..Default::default()
    };
    for rec in live {
        if let Some(info) = rec.network_info() {
            addressing.gateways.insert(rec.key.name.clone(), info.gateway);
        }
        let Some(spec) = rec.container_spec() else { continue };
        if !publishes_names(engine, rec, spec) {
            addressing.hidden.insert(rec.key.name.clone());
        }
        for net in &spec.networks {
            if !net.aliases.is_empty() {
                addressing
                    .aliases
                    .insert((net.name.clone(), rec.key.name.clone()), net.aliases.clone());
            }
        }
    }
    Ok(addressing)
}

/// Whether container `rec`'s names are in DNS and peers' /etc/hosts: not
/// while a start-first rollout holds it back, nor, when it has a
/// healthcheck, before its check passed (so a peer never reaches a
/// container that cannot serve yet).
fn publishes_names(engine: &Engine, rec: &Live, spec: &ContainerSpec) -> bool {
    let Some(info) = rec.container_info() else { return true };
    if info.unpublished {
        return false;
    }
    if spec.healthcheck.is_none() && info.image_healthcheck.is_none() {
        return true;
    }
    engine.is_healthy(&rec.key.name)
}

fn addressing_now(engine: &Engine) -> Result<Addressing, DriverError> {
    addressing(engine, &engine.live_all()?)
}

/// Each network's addresses and aliases as the /etc/hosts files on it were
/// last written from (a fingerprint per network; see [`plan::refresh`]),
/// and the bookkeeping that lets one refresh stand for all the requests made
/// before it began. Empty at start: the daemon's first refresh writes every
/// file.
#[derive(Default)]
pub(crate) struct HostsWritten {
    written: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Refreshes asked for so far.
    requested: std::sync::atomic::AtomicU64,
    /// How many of those the last finished refresh stands for: it read the
    /// store after they were asked for.
    covered: std::sync::atomic::AtomicU64,
    /// One refresh at a time, so an older one cannot record its reading
    /// after a newer one wrote.
    turn: tokio::sync::Mutex<()>,
}

/// Hands every network's DNS server its records, and rewrites /etc/hosts
/// of the wired containers on each network whose addresses changed, after
/// one joined or left. Returns once a refresh that read the store after
/// this call began has been written.
///
/// Refreshes are coalesced: a start asked for one after each change, and
/// each read and decoded the whole live table, rendered every peer's file
/// and rewrote it, so N starts on one network did O(N) refreshes of O(N)
/// files (issue 23: 1000 containers never finished). Callers that ask while
/// one is running wait for the next, and that one serves all of them. The
/// files are written off the async threads.
pub(super) async fn refresh_hosts(engine: &Engine) {
    use std::sync::atomic::Ordering::SeqCst;
    let state = &engine.hosts_written;
    // Every change this caller made is in the store before this count.
    let mine = state.requested.fetch_add(1, SeqCst) + 1;
    let _turn = state.turn.lock().await;
    if state.covered.load(SeqCst) >= mine {
        return;
    }
    // Read before the store: this refresh sees every change asked for so far.
    let upto = state.requested.load(SeqCst);
    let written = state
        .written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let refresh = match refresh_plan(engine, &written) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("refreshing /etc/hosts and DNS records: {e}");
            return;
        }
    };
    match blocking(engine, move |h| apply::refresh(h, refresh)).await {
        Ok(now) => *state.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now,
        Err(e) => {
            tracing::warn!("refreshing /etc/hosts and DNS records: {e}");
            return;
        }
    }
    state.covered.store(upto, SeqCst);
}

/// What a refresh writes, from one reading of the store.
fn refresh_plan(
    engine: &Engine,
    written: &std::collections::HashMap<String, u64>,
) -> Result<plan::Refresh, DriverError> {
    let live = engine.live_all()?;
    let addressing = addressing(engine, &live)?;
    let networks: Vec<&str> = live
        .iter()
        .filter(|r| r.network_info().is_some())
        .map(|r| r.key.name.as_str())
        .collect();
    let members: Vec<Member> = live
        .iter()
        .filter_map(|r| Some(member(&r.key.name, r.container_spec()?)))
        .collect();
    Ok(plan::refresh(&addressing, &networks, &members, written))
}

/// Removes what `wire` made for `name` and frees its addresses.
pub(super) async fn unwire(engine: &Engine, name: &str, interfaces: usize) -> DriverResult {
    let id = name.to_string();
    blocking(engine, move |h| h.remove_container(&id, interfaces)).await??;
    engine.store.alloc_release_owner(name)?;
    Ok(())
}
