//! Container names and runtime ids. A container's runtime id names its run
//! dir, cgroup, log, shim and network namespace; its name is what people and
//! the store use. They are the same until `rename`: then the name moves (in
//! one store transaction) and the id stays, so nothing of a running
//! container is moved under it, and a crash mid-rename leaves it either
//! wholly under the old name or wholly under the new one.
//!
//! The engine keeps calling its host seams with names: [`wrap`] puts the
//! translation in front of the container and network hosts, so no call site
//! needs to know. Ids that differ from names live in the `container_ids`
//! table and in [`Ids`] (loaded from it at start).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use nix::sys::signal::Signal;

use super::seams::{BoxFuture, ContainerHost, Host, NetworkHost};
use crate::network::{self, BridgeConfig, NatNetwork, Networks, PortForward, Proto, Subnet, VethConfig};
use crate::runtime::exec::{ExecProcess, ExecSpec};
use crate::runtime::{self, ContainerConfig, Probe, RunRecord};

/// Names whose runtime id differs, both ways.
#[derive(Debug, Default)]
pub struct IdMap {
    by_name: HashMap<String, String>,
    by_id: HashMap<String, String>,
}

/// Shared between the engine (which changes it with the store) and the
/// wrapped hosts (which read it on every call).
#[derive(Debug, Clone, Default)]
pub struct Ids(Arc<RwLock<IdMap>>);

impl Ids {
    pub fn load(rows: Vec<(String, String)>) -> Ids {
        let ids = Ids::default();
        for (name, id) in rows {
            ids.set(&name, &id);
        }
        ids
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, IdMap> {
        // Writers only insert or remove whole entries.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IdMap> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The runtime id of container `name`. A name another container still
    /// runs under as its id, with no id of its own yet, gets one that names
    /// nothing (its container does not exist until [`Ids::set`] gives it one).
    pub fn id_of(&self, name: &str) -> String {
        let m = self.read();
        if let Some(id) = m.by_name.get(name) {
            return id.clone();
        }
        if m.by_id.contains_key(name) {
            return format!("{name}.unassigned");
        }
        name.to_string()
    }

    /// The container whose runtime id is `id`.
    pub fn name_of(&self, id: &str) -> String {
        let m = self.read();
        if let Some(name) = m.by_id.get(id) {
            return name.clone();
        }
        id.to_string()
    }

    /// Whether `name` needs an id of its own (another container runs under it).
    pub fn needs_own_id(&self, name: &str) -> bool {
        let m = self.read();
        !m.by_name.contains_key(name) && m.by_id.contains_key(name)
    }

    /// Records `name`'s id; an id equal to the name is the default, not stored.
    pub fn set(&self, name: &str, id: &str) {
        let mut m = self.write();
        if let Some(old) = m.by_name.remove(name) {
            m.by_id.remove(&old);
        }
        if name != id {
            m.by_name.insert(name.to_string(), id.to_string());
            m.by_id.insert(id.to_string(), name.to_string());
        }
    }

    pub fn forget(&self, name: &str) {
        let mut m = self.write();
        if let Some(id) = m.by_name.remove(name) {
            m.by_id.remove(&id);
        }
    }
}

/// `host` with its container and network seams taking names.
pub fn wrap(host: Host, ids: &Ids) -> Host {
    Host {
        containers: Arc::new(Named {
            inner: host.containers,
            ids: ids.clone(),
        }),
        networks: Arc::new(Named {
            inner: host.networks,
            ids: ids.clone(),
        }),
        ..host
    }
}

struct Named<T: ?Sized> {
    inner: Arc<T>,
    ids: Ids,
}

impl<T: ?Sized> Named<T> {
    fn id(&self, name: &str) -> String {
        self.ids.id_of(name)
    }
}

impl ContainerHost for Named<dyn ContainerHost> {
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>> {
        Box::pin(async move {
            let mut cfg = cfg.clone();
            cfg.id = self.id(&cfg.id);
            self.inner.start(&cfg).await
        })
    }
    fn probe(&self, id: &str) -> Probe {
        self.inner.probe(&self.id(id))
    }
    fn signal(&self, id: &str, signal: Signal) -> runtime::Result<()> {
        self.inner.signal(&self.id(id), signal)
    }
    fn kill_all(&self, id: &str) {
        self.inner.kill_all(&self.id(id))
    }
    fn cleanup(&self, id: &str) -> runtime::Result<()> {
        self.inner.cleanup(&self.id(id))
    }
    fn remove(&self, id: &str) -> runtime::Result<()> {
        self.inner.remove(&self.id(id))
    }
    fn list(&self) -> Vec<String> {
        self.inner.list().into_iter().map(|id| self.ids.name_of(&id)).collect()
    }
    fn log_file(&self, id: &str) -> PathBuf {
        self.inner.log_file(&self.id(id))
    }
    fn open_log(&self, id: &str, tail: Option<usize>) -> std::io::Result<Box<dyn super::seams::LogSource>> {
        self.inner.open_log(&self.id(id), tail)
    }
    fn upper_dir(&self, id: &str) -> PathBuf {
        self.inner.upper_dir(&self.id(id))
    }
    fn attach(&self, id: &str, tty: bool) -> std::io::Result<Option<super::seams::AttachStreams>> {
        self.inner.attach(&self.id(id), tty)
    }
    fn wait_shim(&self, run: RunRecord) -> BoxFuture<'static, ()> {
        self.inner.wait_shim(run)
    }
    fn update_limits(&self, id: &str, limits: &crate::runtime::Limits) -> runtime::Result<()> {
        self.inner.update_limits(&self.id(id), limits)
    }
    fn freeze(&self, id: &str, frozen: bool) -> runtime::Result<()> {
        self.inner.freeze(&self.id(id), frozen)
    }
    fn copy(
        &self,
        init_pid: i32,
        into_container: bool,
        container_path: &Path,
        host_path: &Path,
    ) -> std::io::Result<u64> {
        self.inner.copy(init_pid, into_container, container_path, host_path)
    }
    fn read_file(&self, init_pid: i32, path: &Path) -> std::io::Result<String> {
        self.inner.read_file(init_pid, path)
    }
    fn stats(&self, id: &str, init_pid: i32) -> Option<runtime::stats::Sample> {
        self.inner.stats(&self.id(id), init_pid)
    }
    fn processes(&self, id: &str) -> Vec<runtime::stats::ProcessInfo> {
        self.inner.processes(&self.id(id))
    }
    fn oci_spec(&self, id: &str) -> Option<libcontainer::oci_spec::runtime::Spec> {
        self.inner.oci_spec(&self.id(id))
    }
    fn is_frozen(&self, id: &str) -> bool {
        self.inner.is_frozen(&self.id(id))
    }
    fn export(&self, id: &str, lower_dirs: &[PathBuf], out: &Path) -> std::io::Result<()> {
        self.inner.export(&self.id(id), lower_dirs, out)
    }
    fn exec(&self, id: &str, process: ExecSpec, attach: bool, stdin: bool) -> runtime::Result<ExecProcess> {
        self.inner.exec(&self.id(id), process, attach, stdin)
    }
}

impl NetworkHost for Named<dyn NetworkHost> {
    fn names(&self) -> &Networks {
        self.inner.names()
    }
    fn host_routes(&self) -> network::Result<Vec<Subnet>> {
        self.inner.host_routes()
    }
    fn ensure_bridge(&self, cfg: &BridgeConfig) -> network::Result<()> {
        self.inner.ensure_bridge(cfg)
    }
    fn bridge_ok(&self, cfg: &BridgeConfig) -> bool {
        self.inner.bridge_ok(cfg)
    }
    fn veth_ok(&self, veth: &str, bridge: &str) -> bool {
        self.inner.veth_ok(veth, bridge)
    }
    fn veths_ok(&self, veths: &[String], bridge: &str) -> bool {
        self.inner.veths_ok(veths, bridge)
    }
    fn delete_link(&self, name: &str) -> network::Result<()> {
        self.inner.delete_link(name)
    }
    fn create_netns(&self, id: &str) -> network::Result<PathBuf> {
        self.inner.create_netns(&self.id(id))
    }
    fn netns_exists(&self, id: &str) -> bool {
        self.inner.netns_exists(&self.id(id))
    }
    fn attach(&self, id: &str, veth: &VethConfig) -> network::Result<()> {
        self.inner.attach(&self.id(id), veth)
    }
    fn attach_macvlan(&self, id: &str, cfg: &VethConfig) -> network::Result<()> {
        self.inner.attach_macvlan(&self.id(id), cfg)
    }
    fn detach(&self, id: &str, host_name: &str, ifname: &str) -> network::Result<()> {
        self.inner.detach(&self.id(id), host_name, ifname)
    }
    fn link_exists(&self, name: &str) -> bool {
        self.inner.link_exists(name)
    }
    fn host_veths(&self) -> Vec<String> {
        self.inner.host_veths()
    }
    fn netns_links(&self, id: &str) -> network::Result<Vec<String>> {
        self.inner.netns_links(&self.id(id))
    }
    fn remove_container(&self, id: &str, interfaces: usize) -> network::Result<()> {
        self.inner.remove_container(&self.id(id), interfaces)
    }
    fn write_file(&self, id: &str, file: &str, text: &str) -> network::Result<PathBuf> {
        self.inner.write_file(&self.id(id), file, text)
    }
    fn host_resolv_conf(&self) -> String {
        self.inner.host_resolv_conf()
    }
    fn sync_nat(&self, networks: &[NatNetwork], ports: &[PortForward]) -> network::Result<()> {
        self.inner.sync_nat(networks, ports)
    }
    fn nat_intact(&self, networks: &[NatNetwork], ports: &[PortForward]) -> bool {
        self.inner.nat_intact(networks, ports)
    }
    fn check_port_free(&self, ip: Option<std::net::Ipv4Addr>, port: u16, proto: Proto) -> network::Result<()> {
        self.inner.check_port_free(ip, port, proto)
    }
    fn list(&self) -> Vec<String> {
        self.inner.list().into_iter().map(|id| self.ids.name_of(&id)).collect()
    }
    fn dns_start(
        &self,
        network: &str,
        gateway: std::net::Ipv4Addr,
        internal: bool,
        records: network::dns::Records,
    ) -> network::Result<()> {
        self.inner.dns_start(network, gateway, internal, records)
    }
    fn dns_set(&self, network: &str, records: network::dns::Records) {
        self.inner.dns_set(network, records)
    }
    fn dns_running(&self, network: &str) -> bool {
        self.inner.dns_running(network)
    }
    fn dns_stop(&self, network: &str) {
        self.inner.dns_stop(network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_container_keeps_its_id_and_its_old_name_names_nothing_until_given_an_id() {
        let ids = Ids::default();
        assert_eq!(ids.id_of("web"), "web");
        ids.set("front", "web");
        assert_eq!(ids.id_of("front"), "web");
        assert_eq!(ids.name_of("web"), "front");
        assert!(ids.needs_own_id("web"));
        assert_eq!(ids.id_of("web"), "web.unassigned");
        ids.set("web", "web-1a2b3c4d");
        assert_eq!(ids.id_of("web"), "web-1a2b3c4d");
        // Renamed back to its id: the default again.
        ids.set("front", "front");
        assert_eq!(ids.id_of("front"), "front");
        assert_eq!(ids.name_of("web"), "web");
        ids.forget("web");
        assert_eq!(ids.id_of("web"), "web");
    }
}
