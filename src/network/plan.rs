//! The planner: what the kernel and the files must hold for the networks
//! and the containers on them, computed from typed inputs with no I/O at
//! all (no netlink, no nft, no files, no store). The reconcile drivers
//! gather the inputs (records, allocations, specs), call these functions,
//! and hand the output to [`super::apply`], which is the only part that
//! touches the host. Kept apart so the decisions (interface names and
//! addresses, routes, hosts files, DNS records, the nftables table) are
//! tested with plain asserts, as netavark's `Batch` and containerd's
//! `Prepare` return data for an executor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dns::{scoped, Records};
use super::nat::{self, NatNetwork, PortForward, Proto};
use super::{files, BridgeConfig, Networks, Subnet, VethConfig};

/// A network as made and recorded: the subnet chosen once is kept for its
/// life. Addresses are typed and stored as text, so rows written when they
/// were strings read unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// A macvlan network's parent interface (it has no bridge then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Where in `subnet` addresses are given (`ipRange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet>,
    /// The IPv6 subnet of a dual-stack network (none until IPv6 is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
}

/// A container as the planner sees it: what its hosts file and its names
/// in DNS are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Its networks in order: the `i`th is `eth<i>`.
    pub networks: Vec<String>,
    /// `extraHosts`, as (name, target), for the end of /etc/hosts.
    pub extra_hosts: Vec<(String, HostTarget)>,
}

/// Where an `extraHosts` name points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    /// Docker's `host-gateway`: the gateway of the first network.
    Gateway,
    Address(String),
}

/// One holder of an address on a network, as hosts files list it.
struct Entry<'a> {
    owner: &'a str,
    ip: Ipv4Addr,
    names: Vec<String>,
    line: String,
}

type Entries<'a> = HashMap<&'a str, Vec<Entry<'a>>>;

/// Who holds which address, and the aliases each container has on each
/// network: read once, then every hosts file and DNS table is computed
/// from it. (Reading them per container made a refresh decode the whole
/// live table once per container on the network.)
#[derive(Debug, Clone, Default)]
pub struct Addressing {
    /// (network, address, owner) of every allocation.
    pub allocations: Vec<(String, Ipv4Addr, String)>,
    /// The aliases of every container, by (network, container).
    pub aliases: HashMap<(String, String), Vec<String>>,
    /// The gateway of every network (`host-gateway`).
    pub gateways: HashMap<String, Ipv4Addr>,
    /// Containers whose names are not published: not healthy yet, or not
    /// serving (a start-first rollout's new or old container). They keep
    /// their own entry; peers and DNS do not see them.
    pub hidden: HashSet<String>,
}

impl Addressing {
    fn aliases_of(&self, network: &str, owner: &str) -> &[String] {
        self.aliases
            .get(&(network.to_string(), owner.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// Every network's entries, in allocation order: (owner, address,
    /// names), and the line each is in a hosts file; built once per refresh
    /// rather than once per container (each file is then a copy of lines).
    fn entries(&self) -> Entries<'_> {
        let mut by: Entries<'_> = HashMap::new();
        for (network, ip, owner) in &self.allocations {
            let mut names = vec![owner.clone()];
            names.extend(self.aliases_of(network, owner).iter().cloned());
            let line = format!("{ip}\t{}\n", names.join(" "));
            by.entry(network.as_str()).or_default().push(Entry {
                owner: owner.as_str(),
                ip: *ip,
                names,
                line,
            });
        }
        by
    }

    /// /etc/hosts of `member`: itself on each of its networks, then every
    /// other container holding an address on one of them, then its
    /// `extraHosts`.
    pub fn hosts(&self, member: &Member) -> String {
        self.hosts_from(member, &self.entries())
    }

    fn hosts_from(&self, member: &Member, entries: &Entries<'_>) -> String {
        let mut own = Vec::new();
        let mut peers = String::new();
        for net in &member.networks {
            for e in entries.get(net.as_str()).map_or(&[][..], Vec::as_slice) {
                if e.owner == member.name {
                    own.push((e.ip, e.names.clone()));
                } else if !self.hidden.contains(e.owner) {
                    peers.push_str(&e.line);
                }
            }
        }
        if own.is_empty() {
            // `none`: the name still resolves, to the loopback.
            own.push((Ipv4Addr::new(127, 0, 1, 1), vec![member.name.clone()]));
        }
        // Its own hostname resolves to itself, as Docker writes it (with
        // the domain: `host.domain host`).
        if let Some(hostname) = &member.hostname {
            let mut mine = vec![hostname.clone()];
            if let Some(domain) = &member.domainname {
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
        let gateway = member.networks.first().and_then(|n| self.gateways.get(n)).copied();
        let mut text = files::hosts(&own, &[]);
        text.push_str(&peers);
        text.push_str(&extra_hosts(member, gateway));
        text
    }

    /// The names `network`'s DNS server answers: its containers' names;
    /// and, for each of its containers that is on other networks too, the
    /// names there, scoped to that container (it asks this server only).
    pub fn dns_records(&self, network: &str) -> Records {
        let mut records = Records::new();
        // A Docker-style name (`proj_web_1`) answers as its DNS label
        // (`proj-web-1`); one with no label form has no record of its own.
        let names_of = |net: &str, owner: &str| {
            let shown = !self.hidden.contains(owner);
            std::iter::once(owner)
                .filter(move |_| shown)
                .chain(
                    self.aliases_of(net, owner)
                        .iter()
                        .map(String::as_str)
                        .filter(move |_| shown),
                )
                .filter_map(crate::dnsname::dns_label_of)
                .collect::<Vec<_>>()
        };
        // Each owner's other networks, and each network's holders, indexed
        // once: scanning all allocations per allocation was O(N²) per
        // refresh on a network of N.
        let mut networks_of: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut holders: HashMap<&str, Vec<(Ipv4Addr, &str)>> = HashMap::new();
        for (net, ip, owner) in &self.allocations {
            networks_of.entry(owner.as_str()).or_default().push(net.as_str());
            holders.entry(net.as_str()).or_default().push((*ip, owner.as_str()));
        }
        for (client, owner) in holders.get(network).map_or(&[][..], Vec::as_slice) {
            for name in names_of(network, owner) {
                records.entry(name).or_default().push(*client);
            }
            for other in networks_of[owner].iter().filter(|n| **n != network) {
                for (ip, peer) in holders.get(other).map_or(&[][..], Vec::as_slice) {
                    for name in names_of(other, peer) {
                        records.entry(scoped(*client, &name)).or_default().push(*ip);
                    }
                }
            }
        }
        records
    }

    /// What `network`'s hosts entries are made of, in a stable order.
    pub fn fingerprint(&self, network: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut entries: Vec<(Ipv4Addr, &str, bool, &[String])> = self
            .allocations
            .iter()
            .filter(|(net, _, _)| net == network)
            .map(|(net, ip, owner)| {
                let shown = !self.hidden.contains(owner);
                (*ip, owner.as_str(), shown, self.aliases_of(net, owner))
            })
            .collect();
        entries.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        entries.hash(&mut h);
        h.finish()
    }
}

/// The `extraHosts` lines of `member`; `host-gateway` is `gateway`, and
/// left out where there is none (validation refuses that, so only an
/// unvalidated spec gets here).
pub fn extra_hosts(member: &Member, gateway: Option<Ipv4Addr>) -> String {
    let lines: Vec<(String, String)> = member
        .extra_hosts
        .iter()
        .filter_map(|(host, target)| {
            let ip = match target {
                HostTarget::Gateway => gateway?.to_string(),
                HostTarget::Address(ip) => ip.clone(),
            };
            Some((ip, host.clone()))
        })
        .collect();
    files::extra_hosts(&lines)
}

/// Resolver settings over the generated resolv.conf (Docker's `--dns`,
/// `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// /etc/resolv.conf of a container whose first network is `first`: on a
/// bridge, its DNS server (the gateway) only, with the host's search and
/// options; elsewhere (`none`, macvlan) the host's resolvers. `dns` over it.
pub fn resolv_conf(first: Option<&NetworkInfo>, host_resolv: &str, dns: Option<&DnsSettings>) -> String {
    let resolv = match first.filter(|i| i.parent.is_none()) {
        Some(first) => {
            let gateway = first.gateway.to_string();
            files::resolv_conf(&format!("nameserver {gateway}\n{host_resolv}"), true)
                .lines()
                .filter(|l| !l.starts_with("nameserver") || l.ends_with(gateway.as_str()))
                .map(|l| format!("{l}\n"))
                .collect()
        }
        None => files::resolv_conf(host_resolv, true),
    };
    dns_over(resolv, dns)
}

/// `resolv` with `dns` over it.
pub fn dns_over(resolv: String, dns: Option<&DnsSettings>) -> String {
    match dns {
        Some(d) => files::with_dns(&resolv, &d.servers, &d.search, &d.options),
        None => resolv,
    }
}

/// The bridge of network `name` as recorded in `net`.
pub fn bridge(names: &Networks, name: &str, net: &NetworkInfo) -> BridgeConfig {
    BridgeConfig {
        name: net.bridge.clone(),
        alias: names.alias(&format!("network/{name}")),
        subnet: net.subnet,
        gateway: net.gateway,
        mtu: net.mtu,
    }
}

/// The three files a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub hosts: String,
    pub hostname: String,
    pub resolv: String,
}

/// How one interface of a container is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    /// A veth pair with its host end on `cfg.bridge`.
    Veth(VethConfig),
    /// A macvlan on the parent named by `cfg.bridge`.
    Macvlan(VethConfig),
}

impl Interface {
    pub fn config(&self) -> &VethConfig {
        match self {
            Interface::Veth(c) | Interface::Macvlan(c) => c,
        }
    }
}

/// The interface `eth<index>` of the container with runtime id `id` on
/// `net` with `address`: named by the runtime id (which `rename` keeps),
/// with the default route through the gateway on `eth0` of a network that
/// is not internal.
pub fn interface(names: &Networks, id: &str, index: usize, net: &NetworkInfo, address: Ipv4Addr) -> Interface {
    let cfg = VethConfig {
        host_name: names.veth_name(id, index),
        alias: names.alias(&format!("container/{id} eth{index}")),
        bridge: net.parent.clone().unwrap_or_else(|| net.bridge.clone()),
        ifname: format!("eth{index}"),
        address,
        prefix: net.subnet.prefix,
        default_gateway: (index == 0 && !net.internal).then_some(net.gateway),
        mtu: net.mtu,
        mac: None,
    };
    if net.parent.is_some() {
        Interface::Macvlan(cfg)
    } else {
        Interface::Veth(cfg)
    }
}

/// The interfaces `eth<from>`… of container `id`, one per (network,
/// address); `mac` goes to `eth0`.
pub fn interfaces(
    names: &Networks,
    id: &str,
    from: usize,
    nets: &[(&NetworkInfo, Ipv4Addr)],
    mac: Option<[u8; 6]>,
) -> Vec<Interface> {
    nets.iter()
        .enumerate()
        .map(|(i, (net, address))| {
            let mut iface = interface(names, id, from + i, net, *address);
            if from + i == 0 {
                match &mut iface {
                    Interface::Veth(c) | Interface::Macvlan(c) => c.mac = mac,
                }
            }
            iface
        })
        .collect()
}

/// What a container on bridge or macvlan networks gets: its interfaces
/// and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub interfaces: Vec<Interface>,
    pub files: Files,
}

/// What the planner needs to wire one container.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    /// Its runtime id, which names its kernel objects.
    pub id: &'a str,
    pub member: &'a Member,
    /// Its networks with the address it holds on each, in order.
    pub networks: &'a [(&'a NetworkInfo, Ipv4Addr)],
    /// `eth0`'s MAC address.
    pub mac: Option<[u8; 6]>,
    pub hostname: &'a str,
    pub dns: Option<&'a DnsSettings>,
}

/// The wiring of `c`, with its peers from `addressing` (read after its own
/// addresses were given) and the host's resolver configuration.
pub fn container(names: &Networks, addressing: &Addressing, host_resolv: &str, c: &Container<'_>) -> Wiring {
    Wiring {
        interfaces: interfaces(names, c.id, 0, c.networks, c.mac),
        files: Files {
            hosts: addressing.hosts(c.member),
            hostname: format!("{}\n", c.hostname),
            resolv: resolv_conf(c.networks.first().map(|(n, _)| *n), host_resolv, c.dns),
        },
    }
}

/// One port a container publishes (the host port chosen: never 0 here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// What berth's nftables table must hold: every bridge network, and the
/// published ports of every container, each to its address on its first
/// network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatPlan {
    pub networks: Vec<NatNetwork>,
    pub ports: Vec<PortForward>,
}

impl NatPlan {
    /// The table as one nft batch (see [`nat::ruleset_json`]).
    pub fn ruleset(&self, table: &str) -> Value {
        nat::ruleset_json(table, &self.networks, &self.ports)
    }

    /// How many rules [`NatPlan::ruleset`] holds.
    pub fn rule_count(&self) -> usize {
        nat::expected_rules(&self.networks, &self.ports)
    }
}

/// The NAT plan of `networks` (macvlan ones have no bridge and are left
/// out) and `endpoints`: a container's address on its first network with
/// the ports it publishes there. Ports with no host port (not chosen yet)
/// are left out.
pub fn nat<'a>(
    networks: impl IntoIterator<Item = &'a NetworkInfo>,
    endpoints: &[(Ipv4Addr, Vec<Published>)],
) -> NatPlan {
    let networks = networks
        .into_iter()
        .filter(|n| n.parent.is_none())
        .map(|n| NatNetwork {
            bridge: n.bridge.clone(),
            subnet: n.subnet,
            internal: n.internal,
        })
        .collect();
    let ports = endpoints
        .iter()
        .flat_map(|(ip, published)| {
            published.iter().filter(|p| p.host_port != 0).map(|p| PortForward {
                proto: p.proto,
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_ip: *ip,
                container_port: p.container_port,
            })
        })
        .collect();
    NatPlan { networks, ports }
}

/// What a refresh after a container joined or left must write: every
/// network's DNS records, and the hosts file of each container on a network
/// whose addresses changed since they were last written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refresh {
    pub dns: BTreeMap<String, Records>,
    /// (container, its networks, its hosts file).
    pub hosts: Vec<(String, Vec<String>, String)>,
    /// The fingerprint of each network the hosts files are written from;
    /// recorded once they are (see [`Addressing::fingerprint`]).
    pub fingerprints: HashMap<String, u64>,
}

/// The refresh of `networks` and `members` from `addressing`, given the
/// fingerprints the hosts files were `written` from. Writing every
/// container's file on each start built N texts of N lines per start, O(N²)
/// work for files that, but for the new peer's network, did not change.
pub fn refresh(
    addressing: &Addressing,
    networks: &[&str],
    members: &[Member],
    written: &HashMap<String, u64>,
) -> Refresh {
    let dns = networks
        .iter()
        .map(|n| (n.to_string(), addressing.dns_records(n)))
        .collect();
    // Who is wired on each network counts as much as who holds which
    // address: a container that starts beside a peer takes its address
    // before it is live, and its file must be written once it is.
    let mut on_network: HashMap<&str, Vec<&str>> = HashMap::new();
    for member in members {
        for net in &member.networks {
            on_network.entry(net.as_str()).or_default().push(member.name.as_str());
        }
    }
    let mut fingerprints = HashMap::new();
    let mut hosts = Vec::new();
    let entries = addressing.entries();
    for member in members {
        let mut changed = false;
        for net in &member.networks {
            let fingerprint = *fingerprints.entry(net.clone()).or_insert_with(|| {
                use std::hash::{Hash, Hasher};
                let mut names = on_network.get(net.as_str()).cloned().unwrap_or_default();
                names.sort_unstable();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                addressing.fingerprint(net).hash(&mut h);
                names.hash(&mut h);
                h.finish()
            });
            changed |= written.get(net) != Some(&fingerprint);
        }
        if changed {
            hosts.push((
                member.name.clone(),
                member.networks.clone(),
                addressing.hosts_from(member, &entries),
            ));
        }
    }
    Refresh {
        dns,
        hosts,
        fingerprints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn addressing() -> Addressing {
        let alloc = |n: &str, a: &str, o: &str| (n.to_string(), ip(a), o.to_string());
        Addressing {
            allocations: vec![
                alloc("back", "10.1.1.2", "db"),
                alloc("back", "10.1.1.3", "web"),
                alloc("front", "10.1.0.2", "web"),
                alloc("front", "10.1.0.3", "lb"),
            ],
            aliases: [(("back".to_string(), "db".to_string()), vec!["Postgres".to_string()])].into(),
            gateways: [("front".to_string(), ip("10.1.0.1"))].into(),
            hidden: HashSet::new(),
        }
    }

    #[test]
    fn a_hidden_container_keeps_its_own_entry_and_leaves_peers_and_dns() {
        let mut a = addressing();
        a.hidden.insert("db".into());
        let records = a.dns_records("back");
        assert!(
            !records.contains_key("db") && !records.contains_key("postgres"),
            "{records:?}"
        );
        assert!(records.contains_key("web"), "{records:?}");
        assert!(!a.hosts(&member("web", &["back"])).contains("db"));
        assert!(a.hosts(&member("db", &["back"])).contains("10.1.1.2\tdb"));
        assert_ne!(a.fingerprint("back"), addressing().fingerprint("back"));
    }

    fn member(name: &str, networks: &[&str]) -> Member {
        Member {
            name: name.into(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    fn net(bridge: &str, subnet: &str, internal: bool) -> NetworkInfo {
        let subnet: Subnet = subnet.parse().unwrap();
        NetworkInfo {
            bridge: bridge.into(),
            subnet,
            gateway: subnet.default_gateway(),
            internal,
            mtu: None,
            parent: None,
            ip_range: None,
            subnet6: None,
        }
    }

    #[test]
    fn hosts_and_dns_records_come_from_one_reading_of_the_addresses() {
        let a = addressing();
        let hosts = a.hosts(&member("web", &["front", "back"]));
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
        assert!(a.hosts(&member("x", &["elsewhere"])).ends_with("127.0.1.1\tx\n"));
        let named = Member {
            hostname: Some("www".into()),
            domainname: Some("example.org".into()),
            extra_hosts: vec![
                ("gw".into(), HostTarget::Gateway),
                ("db.test".into(), HostTarget::Address("192.0.2.7".into())),
            ],
            ..member("web", &["front"])
        };
        let hosts = a.hosts(&named);
        assert!(hosts.contains("10.1.0.2\twww.example.org www web\n"), "{hosts}");
        assert!(hosts.ends_with("10.1.0.1\tgw\n192.0.2.7\tdb.test\n"), "{hosts}");
        // On a network with no gateway known, host-gateway is left out.
        let far = Member {
            extra_hosts: vec![("gw".into(), HostTarget::Gateway)],
            ..member("db", &["back"])
        };
        assert!(!a.hosts(&far).contains("\tgw"));

        let back = a.dns_records("back");
        assert_eq!(back["postgres"], [ip("10.1.1.2")]);
        assert_eq!(back["web"], [ip("10.1.1.3")]);
        // web is on front too: its view of front is scoped to its address here.
        assert_eq!(back[&scoped(ip("10.1.1.3"), "lb")], [ip("10.1.0.3")]);
        assert!(!back.contains_key("lb"));
        assert!(a.dns_records("nowhere").is_empty());
    }

    #[test]
    fn a_refresh_rewrites_only_the_hosts_files_on_networks_whose_addresses_changed() {
        let mut a = addressing();
        let members = [
            member("web", &["front", "back"]),
            member("db", &["back"]),
            member("lb", &["front"]),
        ];
        let first = refresh(&a, &["front", "back"], &members, &HashMap::new());
        assert_eq!(first.hosts.len(), 3, "nothing written yet: every file");
        assert_eq!(first.dns.len(), 2);
        let again = refresh(&a, &["front", "back"], &members, &first.fingerprints);
        assert!(again.hosts.is_empty(), "{:?}", again.hosts);
        // A new peer on back: web and db are rewritten, lb (front only) is not.
        a.allocations.push(("back".into(), ip("10.1.1.4"), "cache".into()));
        let after = refresh(&a, &["front", "back"], &members, &first.fingerprints);
        let rewritten: Vec<&str> = after.hosts.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(rewritten, ["web", "db"]);
        assert!(after.hosts[1].2.ends_with("10.1.1.4\tcache\n"));
        assert_eq!(after.dns["back"]["cache"], [ip("10.1.1.4")]);
        // An alias change is a change too.
        a.aliases.insert(("front".into(), "lb".into()), vec!["proxy".into()]);
        let aliased = refresh(&a, &["front"], &members, &after.fingerprints);
        let rewritten: Vec<&str> = aliased.hosts.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(rewritten, ["web", "lb"]);
    }

    #[test]
    fn interfaces_are_named_by_runtime_id_and_only_eth0_of_a_routed_network_gets_the_default_route() {
        let names = Networks::new(Path::new("/run/x"), "berth-11111111");
        let front = net("bbfront", "10.1.0.0/24", false);
        let back = NetworkInfo {
            mtu: Some(1400),
            ..net("bbback", "10.1.1.0/26", false)
        };
        let mac = Some([2, 0, 0, 0, 0, 1]);
        let got = interfaces(
            &names,
            "abc123",
            0,
            &[(&front, ip("10.1.0.2")), (&back, ip("10.1.1.3"))],
            mac,
        );
        assert_eq!(got.len(), 2);
        let eth0 = got[0].config();
        assert!(matches!(got[0], Interface::Veth(_)));
        assert_eq!(eth0.host_name, names.veth_name("abc123", 0));
        assert_eq!(eth0.ifname, "eth0");
        assert_eq!(eth0.bridge, "bbfront");
        assert_eq!((eth0.address, eth0.prefix), (ip("10.1.0.2"), 24));
        assert_eq!(eth0.default_gateway, Some(ip("10.1.0.1")));
        assert_eq!(eth0.mac, mac);
        let eth1 = got[1].config();
        assert_eq!((eth1.ifname.as_str(), eth1.prefix, eth1.mtu), ("eth1", 26, Some(1400)));
        assert_eq!(eth1.default_gateway, None, "one default route, through eth0");
        assert_eq!(eth1.mac, None);
        assert!(eth1.alias.contains("container/abc123 eth1"));

        // Internal: no route out even on eth0. Interfaces made again from
        // index 1 keep their index (connect after the first network).
        let internal = net("bbint", "10.1.2.0/24", true);
        let eth0 = interface(&names, "abc123", 0, &internal, ip("10.1.2.2"));
        assert_eq!(eth0.config().default_gateway, None);
        let later = interfaces(&names, "abc123", 1, &[(&front, ip("10.1.0.9"))], mac);
        assert_eq!(later[0].config().ifname, "eth1");
        assert_eq!(later[0].config().mac, None, "the MAC is eth0's only");

        let b = bridge(&names, "front", &back);
        assert_eq!(
            (b.name.as_str(), b.gateway, b.mtu),
            ("bbback", ip("10.1.1.1"), Some(1400))
        );
        assert_eq!(b.subnet.prefix, 26);
        assert!(b.alias.ends_with("network/front") && b.alias.contains("berth-11111111"));

        // Macvlan: made on the parent, not a bridge.
        let lan = NetworkInfo {
            bridge: String::new(),
            parent: Some("enp1s0".into()),
            ..net("", "192.168.5.0/24", false)
        };
        let m = interface(&names, "abc123", 0, &lan, ip("192.168.5.20"));
        assert!(matches!(m, Interface::Macvlan(_)));
        assert_eq!(m.config().bridge, "enp1s0");
    }

    #[test]
    fn a_containers_wiring_has_an_interface_per_network_and_files_naming_its_peers_and_dns_server() {
        let names = Networks::new(Path::new("/run/x"), "berth-11111111");
        let (front, back) = (
            net("bbfront", "10.1.0.0/24", false),
            net("bbback", "10.1.1.0/24", false),
        );
        let web = Member {
            hostname: Some("www".into()),
            ..member("web", &["front", "back"])
        };
        let dns = DnsSettings {
            search: vec!["shop.test".into()],
            ..Default::default()
        };
        let nets = [(&front, ip("10.1.0.2")), (&back, ip("10.1.1.3"))];
        let wiring = container(
            &names,
            &addressing(),
            "nameserver 192.0.2.1\n",
            &Container {
                id: "abc123",
                member: &web,
                networks: &nets,
                mac: None,
                hostname: "www",
                dns: Some(&dns),
            },
        );
        let ifaces: Vec<(&str, Ipv4Addr)> = wiring
            .interfaces
            .iter()
            .map(|i| (i.config().ifname.as_str(), i.config().address))
            .collect();
        assert_eq!(ifaces, [("eth0", ip("10.1.0.2")), ("eth1", ip("10.1.1.3"))]);
        assert_eq!(wiring.files.hostname, "www\n");
        assert_eq!(wiring.files.resolv, "nameserver 10.1.0.1\nsearch shop.test\n");
        assert!(
            wiring.files.hosts.contains("10.1.0.2\twww web\n"),
            "{}",
            wiring.files.hosts
        );
        assert!(wiring.files.hosts.ends_with("10.1.0.3\tlb\n10.1.1.2\tdb Postgres\n"));

        // On no network (`none`): no interface, its name on the loopback,
        // the host's resolvers.
        let alone = member("solo", &[]);
        let wiring = container(
            &names,
            &addressing(),
            "nameserver 192.0.2.1\n",
            &Container {
                id: "solo",
                member: &alone,
                networks: &[],
                mac: None,
                hostname: "solo",
                dns: None,
            },
        );
        assert!(wiring.interfaces.is_empty());
        assert!(wiring.files.hosts.ends_with("127.0.1.1\tsolo\n"));
        assert_eq!(wiring.files.resolv, "nameserver 192.0.2.1\n");
    }

    #[test]
    fn resolv_conf_points_at_the_networks_dns_server_and_dns_settings_go_over_it() {
        let host = "nameserver 192.0.2.1\nnameserver 127.0.0.53\nsearch example.org\noptions ndots:2\n";
        let front = net("bbfront", "10.1.0.0/24", false);
        assert_eq!(
            resolv_conf(Some(&front), host, None),
            "nameserver 10.1.0.1\nsearch example.org\noptions ndots:2\n"
        );
        // `none` (and macvlan): the host's, loopback ones dropped.
        assert_eq!(
            resolv_conf(None, host, None),
            "nameserver 192.0.2.1\nsearch example.org\noptions ndots:2\n"
        );
        let dns = DnsSettings {
            servers: vec!["192.0.2.53".into()],
            search: vec![".".into()],
            options: vec![],
        };
        assert_eq!(
            resolv_conf(Some(&front), host, Some(&dns)),
            "nameserver 192.0.2.53\noptions ndots:2\n"
        );
    }

    #[test]
    fn the_nat_plan_forwards_each_published_port_to_the_first_address_and_leaves_out_macvlan_and_unchosen_ports() {
        let front = net("bbfront", "10.1.0.0/24", false);
        let internal = net("bbint", "10.1.2.0/24", true);
        let lan = NetworkInfo {
            parent: Some("enp1s0".into()),
            ..net("", "192.168.5.0/24", false)
        };
        let web = Published {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_port: 80,
        };
        let local_dns = Published {
            proto: Proto::Udp,
            host_ip: Some(ip("127.0.0.1")),
            host_port: 5353,
            container_port: 53,
        };
        let unchosen = Published { host_port: 0, ..web };
        let plan = nat(
            [&front, &internal, &lan],
            &[(ip("10.1.0.2"), vec![web, unchosen]), (ip("10.1.0.3"), vec![local_dns])],
        );
        assert_eq!(
            plan.networks.iter().map(|n| n.bridge.as_str()).collect::<Vec<_>>(),
            ["bbfront", "bbint"]
        );
        assert!(plan.networks[1].internal);
        assert_eq!(
            plan.ports,
            [
                PortForward {
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    container_ip: ip("10.1.0.2"),
                    container_port: 80,
                },
                PortForward {
                    proto: Proto::Udp,
                    host_ip: Some(ip("127.0.0.1")),
                    host_port: 5353,
                    container_ip: ip("10.1.0.3"),
                    container_port: 53,
                },
            ]
        );
        // One batch for the whole table, which nft's schema reads.
        let batch = plan.ruleset("berth-x");
        let parsed: nftables::schema::Nftables = serde_json::from_value(batch.clone()).unwrap();
        let rules = parsed
            .objects
            .iter()
            .filter(|o| format!("{o:?}").contains("Rule("))
            .count();
        assert_eq!(rules, plan.rule_count());
        let text = batch.to_string();
        // Both ports DNATed in prerouting and output.
        assert_eq!(
            text.matches(r#""dnat":{"addr":"10.1.0.2","family":"ip","port":80}"#)
                .count(),
            2
        );
        assert_eq!(
            text.matches(r#""dnat":{"addr":"10.1.0.3","family":"ip","port":53}"#)
                .count(),
            2
        );
        // Each bridge, the internal one too, drops what it sends to the
        // host's loopback unless berth DNATed it.
        let guards = batch["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["chain"] == "input" && r.to_string().contains("127.0.0.0"))
            .count();
        assert_eq!(guards, 2);
        // The macvlan network's LAN is never masqueraded nor isolated.
        assert!(!text.contains("192.168.5.0"), "{text}");
        // Nothing at all: an empty table still, with its chains.
        let empty = nat([], &[]);
        assert_eq!(empty.rule_count(), 0);
        assert!(empty.ruleset("berth-x")["nftables"].as_array().unwrap().len() > 3);
    }

    #[test]
    fn a_peer_that_becomes_live_after_the_addresses_were_taken_gets_its_file() {
        let a = addressing();
        // web's start refreshed while lb (address taken) was not live yet.
        let first = refresh(
            &a,
            &["front", "back"],
            &[member("web", &["front", "back"])],
            &HashMap::new(),
        );
        assert_eq!(first.hosts.len(), 1);
        // lb is live now; no address changed, but its file must be written.
        let members = [member("web", &["front", "back"]), member("lb", &["front"])];
        let second = refresh(&a, &["front", "back"], &members, &first.fingerprints);
        let written: Vec<&str> = second.hosts.iter().map(|h| h.0.as_str()).collect();
        assert!(written.contains(&"lb"), "{written:?}");
        // Nothing changed since: nothing is written.
        let third = refresh(&a, &["front", "back"], &members, &second.fingerprints);
        assert!(third.hosts.is_empty());
    }
}
