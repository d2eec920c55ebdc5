//! A recording fake of the host (tests only), as youki's `TestHelperSyscall`:
//! every call is recorded, probes answer from a script that tests change, and
//! failures can be injected per container or image. No root, no kernel.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::seams::{AnonymousVolumeInfo, BoxFuture, ContainerHost, Host, ImageHost, NetworkHost, VolumeHost};
use crate::image::{self, ImageConfig, ImageError, ImageRecord, ImageSummary};
use crate::network::dns::Records;
use crate::network::{self, BridgeConfig, NatNetwork, Networks, PortForward, Proto, Subnet, VethConfig};
use crate::runtime::{self, ContainerConfig, ExitRecord, Probe, RunRecord, RuntimeError};

/// One call the engine made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Start(String),
    Signal(String, Signal),
    KillAll(String),
    Cleanup(String),
    Remove(String),
    Import(String),
    CreateVolume(String),
    RemoveVolume(String),
    PopulateVolume(String, PathBuf),
    EnsureBridge(String),
    DeleteLink(String),
    CreateNetns(String),
    Attach(String, String),
    Detach(String, String),
    RemoveNetwork(String),
    SyncNat(usize, usize),
    Pull(String),
    RemoveImage(String),
}

#[derive(Default)]
struct Script {
    probes: HashMap<String, Probe>,
    /// Start of these containers fails with the message.
    start_failures: HashMap<String, String>,
    /// Imports of these tar paths fail with the message.
    import_failures: HashMap<String, String>,
    /// Run dirs that exist.
    run_dirs: HashSet<String>,
    /// Images imported without a reference (Image objects'), found by id.
    imported: Vec<ImageRecord>,
    volumes: HashSet<String>,
    anonymous: Vec<AnonymousVolumeInfo>,
    bridges: HashSet<String>,
    /// Host ends of veths, with their bridge.
    veths: HashMap<String, String>,
    netns: HashSet<String>,
    /// Records of running DNS servers by network.
    dns: HashMap<String, Records>,
    /// Written network files by (id, file name).
    files: HashMap<(String, String), String>,
    /// What a pull of a reference finds in the "registry".
    registry: HashMap<String, ImageRecord>,
    /// Pulled images by reference.
    pulled: HashMap<String, ImageRecord>,
    /// The config each container was last started with.
    configs: HashMap<String, ContainerConfig>,
    /// The exit code a container gets from SIGTERM (none: it ignores it).
    term_exit: Option<i32>,
}

/// The fake host: containers, images and volumes in memory.
pub struct FakeHost {
    calls: Mutex<Vec<Call>>,
    script: Arc<Mutex<Script>>,
    next_pid: AtomicI32,
    /// Bumped whenever a shim "exits", so `wait_shim` futures wake.
    shim_exits: watch::Sender<u64>,
    names: Networks,
}

fn exit(code: i32) -> ExitRecord {
    ExitRecord {
        code,
        signal: None,
        oom_killed: false,
        finished_at: runtime::now_millis(),
    }
}

impl FakeHost {
    pub fn new() -> Arc<FakeHost> {
        let (shim_exits, _) = watch::channel(0);
        Arc::new(FakeHost {
            calls: Mutex::new(Vec::new()),
            script: Arc::new(Mutex::new(Script {
                term_exit: Some(143),
                ..Default::default()
            })),
            next_pid: AtomicI32::new(1000),
            shim_exits,
            names: Networks::new(Path::new("/fake/run"), "berth-fake0000"),
        })
    }

    /// The host to build an engine with.
    pub fn host(self: &Arc<Self>) -> Host {
        Host {
            containers: self.clone(),
            images: self.clone(),
            volumes: self.clone(),
            networks: self.clone(),
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// How many times `id` was started.
    pub fn starts(&self, id: &str) -> usize {
        self.calls().iter().filter(|c| **c == Call::Start(id.into())).count()
    }

    pub fn fail_start(&self, id: &str, message: &str) {
        self.script().start_failures.insert(id.into(), message.into());
    }

    pub fn heal_start(&self, id: &str) {
        self.script().start_failures.remove(id);
    }

    /// The config `id` was last started with.
    pub fn config_of(&self, id: &str) -> Option<ContainerConfig> {
        self.script().configs.get(id).cloned()
    }

    /// Makes `reference` pullable, with this config.
    pub fn offer_image(&self, reference: &str, config: ImageConfig) -> ImageRecord {
        let record = ImageRecord {
            id: format!("sha256:{:0>64}", reference.len()),
            manifest_digest: format!("sha256:{:0>64}", reference.len() + 1),
            config,
            platform: "linux/amd64".into(),
            layers: vec![],
            chain_ids: vec![format!("sha256:{:0>64}", 7)],
            created_at: 0,
        };
        self.script().registry.insert(reference.into(), record.clone());
        record
    }

    pub fn fail_import(&self, tar: &str, message: &str) {
        self.script().import_failures.insert(tar.into(), message.into());
    }

    /// Whether containers exit on SIGTERM (143) or ignore it (need SIGKILL).
    pub fn ignore_sigterm(&self) {
        self.script().term_exit = None;
    }

    /// Scripts what probing `id` answers, and wakes shim watchers.
    pub fn set_probe(&self, id: &str, probe: Probe) {
        let mut s = self.script();
        s.run_dirs.insert(id.into());
        s.probes.insert(id.into(), probe);
        drop(s);
        self.shim_exits.send_modify(|g| *g += 1);
    }

    /// The container's init exits with `code`; its shim records it and exits.
    pub fn exit(&self, id: &str, code: i32) {
        self.set_probe(id, Probe::Exited(exit(code)));
    }

    /// A run dir left by a container the store does not know.
    pub fn add_run_dir(&self, id: &str) {
        self.script().run_dirs.insert(id.into());
    }

    pub fn run_record(&self) -> RunRecord {
        let pid = self.next_pid.fetch_add(2, Ordering::SeqCst);
        RunRecord {
            shim_pid: pid,
            shim_start: 1,
            init_pid: pid + 1,
            init_start: 1,
            started_at: runtime::now_millis(),
        }
    }

    /// The names `network`'s DNS server answers, sorted.
    pub fn dns_names(&self, network: &str) -> Option<Vec<String>> {
        let s = self.script();
        let mut names: Vec<String> = s.dns.get(network)?.keys().cloned().collect();
        names.sort();
        Some(names)
    }

    /// A network file written for `id`.
    pub fn file(&self, id: &str, file: &str) -> Option<String> {
        self.script().files.get(&(id.to_string(), file.to_string())).cloned()
    }

    /// Deletes a bridge or veth behind berth's back.
    /// A deleted bridge releases its ports, as the kernel's does.
    pub fn drop_link(&self, name: &str) {
        let mut s = self.script();
        s.bridges.remove(name);
        s.veths.remove(name);
        s.veths.retain(|_, bridge| bridge != name);
    }

    pub fn probe_of(&self, id: &str) -> Probe {
        self.script().probes.get(id).cloned().unwrap_or(Probe::Absent)
    }
}

impl ContainerHost for FakeHost {
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>> {
        Box::pin(async move {
            self.record(Call::Start(cfg.id.clone()));
            self.script().configs.insert(cfg.id.clone(), cfg.clone());
            if let Some(message) = self.script().start_failures.get(&cfg.id).cloned() {
                return Err(RuntimeError::Setup {
                    id: cfg.id.clone(),
                    message,
                });
            }
            let run = self.run_record();
            self.set_probe(&cfg.id, Probe::Running(run));
            Ok(run)
        })
    }

    fn probe(&self, id: &str) -> Probe {
        self.probe_of(id)
    }

    fn signal(&self, id: &str, signal: Signal) -> runtime::Result<()> {
        self.record(Call::Signal(id.into(), signal));
        let code = match signal {
            Signal::SIGKILL => Some(137),
            Signal::SIGTERM => self.script().term_exit,
            _ => None,
        };
        if let (Some(code), Probe::Running(_)) = (code, self.probe_of(id)) {
            self.exit(id, code);
        }
        Ok(())
    }

    fn kill_all(&self, id: &str) {
        self.record(Call::KillAll(id.into()));
    }

    fn cleanup(&self, id: &str) -> runtime::Result<()> {
        self.record(Call::Cleanup(id.into()));
        let mut s = self.script();
        s.probes.remove(id);
        s.run_dirs.remove(id);
        Ok(())
    }

    fn remove(&self, id: &str) -> runtime::Result<()> {
        self.record(Call::Remove(id.into()));
        let mut s = self.script();
        s.probes.remove(id);
        s.run_dirs.remove(id);
        Ok(())
    }

    fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.script().run_dirs.iter().cloned().collect();
        ids.sort();
        ids
    }

    fn log_file(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/fake-logs").join(id)
    }

    fn upper_dir(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/fake-upper").join(id)
    }

    fn attach_socket(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/fake-attach").join(id)
    }

    fn wait_shim(&self, run: RunRecord) -> BoxFuture<'static, ()> {
        // The shim is alive while its container's probe names it running.
        let script = self.script.clone();
        let mut exits = self.shim_exits.subscribe();
        Box::pin(async move {
            loop {
                let alive = script
                    .lock()
                    .unwrap()
                    .probes
                    .values()
                    .any(|p| matches!(p, Probe::Running(r) if r.shim_pid == run.shim_pid));
                if !alive || exits.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

impl ImageHost for FakeHost {
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        _platform: Option<&'a str>,
        _progress: image::Progress,
    ) -> BoxFuture<'a, image::Result<ImageRecord>> {
        Box::pin(async move {
            self.record(Call::Pull(reference.into()));
            let mut s = self.script();
            let record = s.registry.get(reference).cloned().ok_or_else(|| ImageError::Registry {
                reference: reference.into(),
                message: "not found".into(),
            })?;
            s.pulled.insert(reference.into(), record.clone());
            Ok(record)
        })
    }

    fn image(&self, name: &str) -> Option<ImageRecord> {
        let s = self.script();
        s.pulled
            .get(name)
            .cloned()
            .or_else(|| s.pulled.values().find(|r| r.id == name).cloned())
            .or_else(|| s.imported.iter().find(|r| r.id == name).cloned())
    }

    fn images(&self) -> image::Result<Vec<ImageSummary>> {
        Ok(self
            .script()
            .pulled
            .iter()
            .map(|(r, record)| ImageSummary {
                record: record.clone(),
                references: vec![r.clone()],
            })
            .collect())
    }

    fn lower_dirs(&self, record: &ImageRecord) -> image::Result<Vec<PathBuf>> {
        Ok(record
            .chain_ids
            .iter()
            .map(|c| PathBuf::from("/fake/l").join(c))
            .collect())
    }

    fn image_file(&self, _record: &ImageRecord, _path: &str) -> Option<String> {
        None
    }

    fn tag(&self, source: &str, target: &str) -> image::Result<ImageRecord> {
        let record = self.image(source).ok_or_else(|| ImageError::NotFound {
            reference: source.into(),
        })?;
        self.script().pulled.insert(target.into(), record.clone());
        Ok(record)
    }

    fn push<'a>(&'a self, source: &'a str, _target: Option<&'a str>) -> BoxFuture<'a, image::Result<String>> {
        Box::pin(async move {
            let record = self.image(source).ok_or_else(|| ImageError::NotFound {
                reference: source.into(),
            })?;
            Ok(record.manifest_digest)
        })
    }

    fn save(&self, _names: &[String], _out: &Path, _oci_only: bool) -> image::Result<()> {
        Ok(())
    }

    fn load(&self, _archive: &Path) -> image::Result<Vec<(ImageRecord, Vec<String>)>> {
        Ok(Vec::new())
    }

    fn login<'a>(
        &'a self,
        _registry: &'a str,
        _username: &'a str,
        _password: &'a str,
    ) -> BoxFuture<'a, image::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn logout(&self, _registry: &str) -> image::Result<bool> {
        Ok(false)
    }

    fn import_image(
        &self,
        tar: &Path,
        reference: Option<&str>,
        expected: Option<&str>,
        _cmd: Vec<String>,
    ) -> image::Result<ImageRecord> {
        let tar = tar.display().to_string();
        self.record(Call::Import(tar.clone()));
        if let Some(message) = self.script().import_failures.get(&tar).cloned() {
            return Err(ImageError::ReadArchive {
                path: tar.into(),
                source: std::io::Error::other(message),
            });
        }
        // One tar, one image, as the store's unnamed imports are.
        let digest = expected
            .map(String::from)
            .unwrap_or_else(|| format!("sha256:{:0>64}", tar.len()));
        let record = ImageRecord {
            id: format!("sha256:{:0>64}", hex::encode(&tar.as_bytes()[..tar.len().min(32)])),
            manifest_digest: format!("sha256:{:0>64}", tar.len() + 2),
            config: ImageConfig::default(),
            platform: "linux/amd64".into(),
            layers: vec![image::record::LayerRef {
                digest,
                size: 0,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            }],
            chain_ids: vec![format!("sha256:{:0>64}", tar.len() + 3)],
            created_at: 0,
        };
        let mut s = self.script();
        match reference {
            Some(r) => {
                s.pulled.insert(r.into(), record.clone());
            }
            None if !s.imported.contains(&record) => s.imported.push(record.clone()),
            None => {}
        }
        Ok(record)
    }

    fn config_blob(&self, _record: &ImageRecord) -> Option<Vec<u8>> {
        None
    }

    fn commit(
        &self,
        base: &ImageRecord,
        _upper: &Path,
        config: ImageConfig,
        reference: &str,
    ) -> image::Result<ImageRecord> {
        let mut record = base.clone();
        record.config = config;
        record.id = format!("sha256:{:0>64}", reference.len() + 2);
        self.script().pulled.insert(reference.into(), record.clone());
        Ok(record)
    }

    fn prune(&self, in_use: &std::collections::HashSet<String>) -> image::Result<Vec<ImageRecord>> {
        let _ = in_use;
        Ok(Vec::new())
    }

    fn remove_image(&self, name: &str) -> image::Result<(ImageRecord, bool)> {
        self.record(Call::RemoveImage(name.into()));
        let record = self
            .image(name)
            .ok_or_else(|| ImageError::NotFound { reference: name.into() })?;
        let mut s = self.script();
        s.pulled.remove(name);
        let left = s.pulled.values().any(|r| r.id == record.id);
        Ok((record, !left))
    }
}

impl VolumeHost for FakeHost {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("/fake/volumes").join(name)
    }

    fn create(&self, name: &str) -> std::io::Result<PathBuf> {
        self.record(Call::CreateVolume(name.into()));
        self.script().volumes.insert(name.into());
        Ok(self.path(name))
    }

    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.record(Call::RemoveVolume(name.into()));
        self.script().volumes.remove(name);
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.script().volumes.contains(name)
    }

    fn populate(&self, name: &str, from: &[PathBuf]) -> std::io::Result<bool> {
        self.record(Call::PopulateVolume(
            name.into(),
            from.first().cloned().unwrap_or_default(),
        ));
        Ok(false)
    }

    fn create_anonymous(&self, id: &str, container: &str, path: &str) -> std::io::Result<PathBuf> {
        self.create(id)?;
        let mut script = self.script();
        if !script.anonymous.iter().any(|a| a.id == id) {
            script.anonymous.push(AnonymousVolumeInfo {
                id: id.into(),
                container: container.into(),
                path: path.into(),
            });
        }
        Ok(self.path(id))
    }

    fn anonymous(&self) -> Vec<AnonymousVolumeInfo> {
        let script = self.script();
        script
            .anonymous
            .iter()
            .filter(|a| script.volumes.contains(&a.id))
            .cloned()
            .collect()
    }
}

impl NetworkHost for FakeHost {
    fn names(&self) -> &Networks {
        &self.names
    }
    fn host_routes(&self) -> network::Result<Vec<Subnet>> {
        Ok(vec!["10.77.0.0/24".parse().unwrap()])
    }
    fn ensure_bridge(&self, cfg: &BridgeConfig) -> network::Result<()> {
        self.record(Call::EnsureBridge(cfg.name.clone()));
        self.script().bridges.insert(cfg.name.clone());
        Ok(())
    }
    fn bridge_ok(&self, cfg: &BridgeConfig) -> bool {
        self.script().bridges.contains(&cfg.name)
    }
    fn veth_ok(&self, veth: &str, bridge: &str) -> bool {
        let s = self.script();
        s.bridges.contains(bridge) && s.veths.get(veth).is_some_and(|b| b == bridge)
    }
    fn delete_link(&self, name: &str) -> network::Result<()> {
        self.record(Call::DeleteLink(name.into()));
        let mut s = self.script();
        s.bridges.remove(name);
        s.veths.remove(name);
        Ok(())
    }
    fn create_netns(&self, id: &str) -> network::Result<PathBuf> {
        self.record(Call::CreateNetns(id.into()));
        self.script().netns.insert(id.into());
        Ok(self.names.netns_path(id))
    }
    fn netns_exists(&self, id: &str) -> bool {
        self.script().netns.contains(id)
    }
    fn attach(&self, id: &str, veth: &VethConfig) -> network::Result<()> {
        self.record(Call::Attach(id.into(), format!("{} {}", veth.ifname, veth.address)));
        self.script().veths.insert(veth.host_name.clone(), veth.bridge.clone());
        Ok(())
    }
    fn attach_macvlan(&self, id: &str, cfg: &VethConfig) -> network::Result<()> {
        self.record(Call::Attach(
            id.into(),
            format!("{} {} macvlan", cfg.ifname, cfg.address),
        ));
        Ok(())
    }
    fn detach(&self, id: &str, host_name: &str, ifname: &str) -> network::Result<()> {
        self.record(Call::Detach(id.into(), ifname.into()));
        self.script().veths.remove(host_name);
        Ok(())
    }
    fn link_exists(&self, name: &str) -> bool {
        name == "eth0" || self.script().bridges.contains(name)
    }
    fn host_veths(&self) -> Vec<String> {
        Vec::new()
    }
    fn netns_links(&self, _id: &str) -> network::Result<Vec<String>> {
        Ok(vec!["lo".into()])
    }
    fn remove_container(&self, id: &str, _interfaces: usize) -> network::Result<()> {
        self.record(Call::RemoveNetwork(id.into()));
        let mut s = self.script();
        s.netns.remove(id);
        s.files.retain(|(owner, _), _| owner != id);
        Ok(())
    }
    fn write_file(&self, id: &str, file: &str, text: &str) -> network::Result<PathBuf> {
        self.script().files.insert((id.into(), file.into()), text.into());
        Ok(self.names.dir(id).join(file))
    }
    fn host_resolv_conf(&self) -> String {
        "nameserver 192.0.2.53\n".into()
    }
    fn sync_nat(&self, networks: &[NatNetwork], ports: &[PortForward]) -> network::Result<()> {
        self.record(Call::SyncNat(networks.len(), ports.len()));
        Ok(())
    }
    fn nat_intact(&self, _networks: &[NatNetwork], _ports: &[PortForward]) -> bool {
        true
    }
    fn check_port_free(&self, _ip: Option<std::net::Ipv4Addr>, _port: u16, _proto: Proto) -> network::Result<()> {
        Ok(())
    }
    fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.script().netns.iter().cloned().collect();
        ids.sort();
        ids
    }
    fn dns_start(
        &self,
        network: &str,
        _gateway: std::net::Ipv4Addr,
        _internal: bool,
        records: Records,
    ) -> network::Result<()> {
        self.script().dns.insert(network.into(), records);
        Ok(())
    }
    fn dns_set(&self, network: &str, records: Records) {
        if let Some(r) = self.script().dns.get_mut(network) {
            *r = records;
        }
    }
    fn dns_running(&self, network: &str) -> bool {
        self.script().dns.contains_key(network)
    }
    fn dns_stop(&self, network: &str) {
        self.script().dns.remove(network);
    }
}

/// An engine over a fresh store in a temp dir and a fake host: what every
/// engine-level unit test starts from.
pub struct World {
    pub engine: Arc<super::Engine>,
    pub host: Arc<FakeHost>,
    /// Keeps the store's directory for the test's lifetime.
    pub dir: tempfile::TempDir,
}

pub fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::new();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let engine = super::Engine::new(store, host.host(), dir.path().into());
    World { engine, host, dir }
}
