//! Container networking: berth's own network namespaces, bridges and veth
//! pairs over rtnetlink, IPAM (pure; allocations live in the store), the
//! files every container gets (/etc/hosts, hostname, resolv.conf), and NAT
//! and published ports in an nftables table of berth's own. Knows nothing of
//! images or manifests: the reconciler gathers typed inputs, `plan` turns
//! them into what to make (interfaces, files, DNS records, one nft batch)
//! without I/O, and `apply` carries that out through a [`NetworkHost`].
//!
//! Layout under the run dir, per container `id`:
//! ```text
//! <run>/net/<id>/netns         the bind-mounted network namespace
//! <run>/net/<id>/hosts         bind-mounted at /etc/hosts (also hostname, resolv.conf)
//! ```
//! Each network has an embedded DNS server on its gateway address (`dns.rs`).
//! Kernel objects carry a tag from the root's prefix, so two daemons never
//! collide, in names of at most 15 characters: bridges `bb<tag><net>`, host
//! ends of veths `bv<tag><hash>`; their alias (shown by `ip link`) names
//! the daemon's prefix and the object.

pub mod apply;
pub mod dns;
pub mod files;
mod host;
pub mod ipam;
pub mod link;
pub mod nat;
pub mod plan;
pub mod ports;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use host::NetworkHost;
pub use ipam::{Pool, Subnet};
pub use link::{BridgeConfig, VethConfig};
pub use nat::{ChildWaits, NatNetwork, PortForward, Proto};
pub use plan::NetworkInfo;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Bad input: a subnet, an address, a port.
    #[error("{0}")]
    Invalid(String),
    #[error("network {network}: subnet {subnet} is full: remove a container or use a larger subnet")]
    SubnetFull { network: String, subnet: String },
    #[error("network {network}: no free subnet in the address pools ({pools}): set spec.subnet, or give the daemon more with --default-address-pool")]
    NoFreeSubnet { network: String, pools: String },
    #[error("{action}: {message}")]
    Netlink { action: String, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nftables: {0}")]
    Nft(String),
    /// `what` is `[IP:]PORT/PROTO`.
    #[error("host port {what} is already in use on this host: {source}; publish another port")]
    PortInUse { what: String, source: std::io::Error },
    /// Teardown left things behind; every failure is listed.
    #[error("cleanup incomplete: {}", .0.join("; "))]
    Cleanup(Vec<String>),
}

pub type Result<T> = std::result::Result<T, NetworkError>;

fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..6].to_string()
}

/// Names and paths of one daemon's network objects, and the operations on
/// them. `prefix` is the runtime layout's per-root prefix.
#[derive(Debug, Clone)]
pub struct Networks {
    run: PathBuf,
    prefix: String,
    tag: String,
    /// The embedded DNS servers, one per network.
    pub dns: std::sync::Arc<dns::Dns>,
    /// Where subnets of networks that name none come from.
    pools: Vec<Pool>,
    /// Where embedded DNS servers forward names not their own; the host's
    /// /etc/resolv.conf when `None`.
    dns_upstream: Option<Vec<std::net::SocketAddr>>,
    /// The nftables ruleset generation at which berth's table last held the
    /// rule count given beside it (see [`Networks::nat_verified`]).
    nat_checked: std::sync::Arc<std::sync::Mutex<Option<(u32, usize)>>>,
    /// The `nft` children being waited for, shared with the daemon's reaper.
    pub child_waits: std::sync::Arc<nat::ChildWaits>,
}

impl Networks {
    pub fn new(run: &Path, prefix: &str) -> Networks {
        Networks {
            run: run.to_path_buf(),
            prefix: prefix.to_string(),
            tag: short_hash(prefix),
            dns: Default::default(),
            pools: Pool::default_pools(),
            dns_upstream: None,
            nat_checked: Default::default(),
            child_waits: Default::default(),
        }
    }

    /// Whether berth's table was found holding `rules` rules at ruleset
    /// generation `generation`: nothing in any table has changed since, so
    /// it still does, and listing it again (an `nft` process on every
    /// reconcile pass) can be skipped.
    pub fn nat_verified(&self, generation: Option<u32>, rules: usize) -> bool {
        let checked = *self.nat_checked.lock().unwrap_or_else(|p| p.into_inner());
        generation.is_some() && checked == generation.map(|g| (g, rules))
    }

    /// Records that the table held `rules` rules at `generation`, read
    /// before the table was listed (a change in between bumps it, so the
    /// next check lists again).
    pub fn set_nat_verified(&self, generation: Option<u32>, rules: usize) {
        *self.nat_checked.lock().unwrap_or_else(|p| p.into_inner()) = generation.map(|g| (g, rules));
    }

    /// The daemon's `--dns-upstream` resolvers (none: the host's).
    pub fn with_dns_upstream(mut self, upstream: Vec<std::net::SocketAddr>) -> Networks {
        if !upstream.is_empty() {
            self.dns_upstream = Some(upstream);
        }
        self
    }

    /// Where names not of a network are forwarded.
    pub fn dns_upstream(&self) -> Vec<std::net::SocketAddr> {
        match &self.dns_upstream {
            Some(up) => up.clone(),
            None => dns::upstream_of(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        }
    }

    /// The daemon's `--default-address-pool`s, in order (none: the default).
    pub fn with_pools(mut self, pools: Vec<Pool>) -> Networks {
        if !pools.is_empty() {
            self.pools = pools;
        }
        self
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// berth's nftables table of this root.
    pub fn table(&self) -> &str {
        &self.prefix
    }

    pub fn bridge_name(&self, network: &str) -> String {
        format!("bb{}{}", self.tag, short_hash(network))
    }

    /// Host links named as this root's veths (see [`Networks::veth_name`]).
    pub fn host_veths(&self) -> Vec<String> {
        let prefix = format!("bv{}", self.tag);
        std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host end of container `id`'s `index`th interface.
    pub fn veth_name(&self, id: &str, index: usize) -> String {
        format!("bv{}{}", self.tag, short_hash(&format!("{id}/{index}")))
    }

    pub fn alias(&self, what: &str) -> String {
        format!("{} {what}", self.prefix)
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.run.join("net").join(id)
    }

    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("netns")
    }

    /// Ids with a network dir, for orphan collection.
    pub fn list(&self) -> Vec<String> {
        std::fs::read_dir(self.run.join("net"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes container `id`'s veths (`interfaces` of them), namespace and
    /// files. Keeps going and reports every failure; what is gone is done.
    pub fn remove_container(&self, id: &str, interfaces: usize) -> Result<()> {
        let mut errors = Vec::new();
        // The host ends as they are now: after the namespace goes, a link
        // of the same name may be a newer container's.
        let veths: Vec<(String, u32)> = (0..interfaces)
            .map(|i| self.veth_name(id, i))
            .filter_map(|name| link::host_index(&name).map(|index| (name, index)))
            .collect();
        // The namespace goes first: the network driver repairs a container
        // whose namespace is there but whose veth is not.
        if let Err(e) = link::remove_netns(&self.netns_path(id)) {
            errors.push(e.to_string());
        }
        // With the bind mount gone and no process in it, the kernel destroys
        // the namespace on its own (cleanup_net work queue) and each veth
        // with it, both ends. Deleting a veth here instead waited 5-20 ms
        // in the kernel (synchronize_net) on every `run --rm`. Only what is
        // still there once that had time (a namespace something still holds,
        // a veth whose peer was moved out) is deleted, off this path.
        reap_veths_later(veths);
        let dir = self.dir(id);
        // The refresh of peers' /etc/hosts may write a file into the dir
        // while it is being removed (seen once in CI: "Directory not
        // empty"); a few more tries take what it added.
        let mut tries = 0;
        loop {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(format!("remove {}: {e}", dir.display()));
                    break;
                }
                _ => break,
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NetworkError::Cleanup(errors))
        }
    }

    /// Fails when a host process already listens on `port` at `ip` (every
    /// address when None; nothing of berth holds published ports: they are
    /// DNAT rules, no proxy).
    pub fn check_port_free(&self, ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> Result<()> {
        let busy = |source| NetworkError::PortInUse {
            what: match ip {
                Some(ip) => format!("{ip}:{port}/{}", proto.as_str()),
                None => format!("{port}/{}", proto.as_str()),
            },
            source,
        };
        let at = (ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
        match proto {
            Proto::Tcp => std::net::TcpListener::bind(at).map(drop).map_err(busy),
            Proto::Udp => std::net::UdpSocket::bind(at).map(drop).map_err(busy),
        }
    }
}

/// How long the kernel is given to destroy a released namespace's veths
/// before they are deleted one by one.
const VETH_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Watches host veths whose namespace was released, and deletes those
/// still there after [`VETH_GRACE`]. Runs on a thread of its own; when one
/// cannot be started, they are deleted now.
fn reap_veths_later(veths: Vec<(String, u32)>) {
    if veths.is_empty() {
        return;
    }
    let for_thread = veths.clone();
    let spawned = std::thread::Builder::new()
        .name("berth-veth-reap".into())
        .spawn(move || reap_veths(for_thread));
    if spawned.is_err() {
        reap_veths(veths);
    }
}

/// Waits up to [`VETH_GRACE`] for `veths` to go with their namespace, then
/// deletes those still there.
fn reap_veths(mut left: Vec<(String, u32)>) {
    let deadline = std::time::Instant::now() + VETH_GRACE;
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        left.retain(|(name, index)| link::index_is(*index, name));
    }
    for (name, index) in left {
        if let Err(e) = link::delete_index_if_named(index, &name) {
            tracing::warn!("veth {name} outlived its namespace and cannot be deleted: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_fit_in_15_characters_and_differ_per_root() {
        let a = Networks::new(Path::new("/run/a"), "berth-11111111");
        let b = Networks::new(Path::new("/run/b"), "berth-22222222");
        assert!(a.bridge_name("backend").len() <= 15);
        assert!(a.veth_name("a-very-long-container-name-indeed", 3).len() <= 15);
        assert_ne!(a.bridge_name("backend"), b.bridge_name("backend"));
        assert_ne!(a.veth_name("web", 0), a.veth_name("web", 1));
        assert!(a.alias("network/backend").contains("berth-11111111"));
        assert_eq!(a.netns_path("web"), Path::new("/run/a/net/web/netns"));
    }
}
