//! The real host behind the seams: berth's runtime (shims driving
//! libcontainer), the image store, and volume directories under the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::seams::{
    AnonymousVolumeInfo, AttachStreams, BoxFuture, ContainerHost, Host, ImageHost, LocalMount, LogSource, NetworkHost,
    VolumeHost,
};
use crate::image::{self, ImageRecord, ImageStore, ImageSummary};
use crate::network::{self, link, nat, BridgeConfig, NatNetwork, Networks, PortForward, Proto, Subnet, VethConfig};
use crate::runtime::{self, ContainerConfig, Probe, RunRecord, Runtime};

/// Writes `out` through a temporary file beside it, renamed into place once
/// `write` succeeds: a reader never sees half a file, and a failure leaves
/// nothing.
pub(crate) fn write_whole(out: &Path, write: impl FnOnce(std::fs::File) -> std::io::Result<()>) -> std::io::Result<()> {
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(write)
        .and_then(|()| std::fs::rename(&tmp, out));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl LogSource for runtime::logs::LogReader {
    fn next_lines(&mut self) -> BoxFuture<'_, std::io::Result<Vec<runtime::logs::LogLine>>> {
        Box::pin(runtime::logs::LogReader::next_lines(self))
    }
}

impl ContainerHost for Runtime {
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>> {
        Box::pin(async move { Runtime::start(self, cfg).await.map(|s| s.record) })
    }
    fn probe(&self, id: &str) -> Probe {
        Runtime::probe(self, id)
    }
    fn signal(&self, id: &str, signal: Signal) -> runtime::Result<()> {
        Runtime::signal(self, id, signal)
    }
    fn kill_all(&self, id: &str) {
        Runtime::kill_all(self, id)
    }
    fn cleanup(&self, id: &str) -> runtime::Result<()> {
        Runtime::cleanup(self, id)
    }
    fn remove(&self, id: &str) -> runtime::Result<()> {
        Runtime::remove(self, id)
    }
    fn list(&self) -> Vec<String> {
        self.list_run_dirs()
    }
    fn log_file(&self, id: &str) -> PathBuf {
        self.layout.log_file(id)
    }
    fn open_log(&self, id: &str, tail: Option<usize>) -> std::io::Result<Box<dyn LogSource>> {
        Ok(Box::new(runtime::logs::LogReader::open(
            &self.layout.log_file(id),
            tail,
        )?))
    }
    fn upper_dir(&self, id: &str) -> PathBuf {
        self.layout.data_dir(id).join("upper")
    }
    fn attach(&self, id: &str, tty: bool) -> std::io::Result<Option<AttachStreams>> {
        // The shim makes its attach socket only for a tty or an open stdin.
        let path = self.layout.attach_socket(id);
        if !path.exists() {
            return Ok(None);
        }
        let stream = std::os::unix::net::UnixStream::connect(&path)?;
        // The shim sends the master as soon as it accepts; never hang on a stuck one.
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let stream = std::os::fd::OwnedFd::from(stream);
        let master = if tty {
            Some(runtime::exec::receive_fd(&stream)?)
        } else {
            None
        };
        Ok(Some(AttachStreams { stream, master }))
    }
    fn export(&self, id: &str, lower_dirs: &[PathBuf], out: &Path) -> std::io::Result<()> {
        let mut layers = vec![ContainerHost::upper_dir(self, id)];
        layers.extend_from_slice(lower_dirs);
        write_whole(out, |f| {
            crate::image::export::export(&layers, std::io::BufWriter::new(f))
        })
    }
    fn wait_shim(&self, run: RunRecord) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Ok(fd) = runtime::pidfd_open(run.shim_pid) {
                // Checked after opening the pidfd: the pid cannot be reused now.
                if runtime::proc::alive_with_start(run.shim_pid, run.shim_start) {
                    let _ = runtime::wait_pidfd(fd).await;
                }
            }
            runtime::reap_shim(run.shim_pid);
        })
    }
    fn update_limits(&self, id: &str, limits: &crate::runtime::Limits) -> runtime::Result<()> {
        Runtime::update_limits(self, id, limits)
    }
    fn freeze(&self, id: &str, frozen: bool) -> runtime::Result<()> {
        Runtime::freeze(self, id, frozen)
    }
    fn is_frozen(&self, id: &str) -> bool {
        Runtime::is_frozen(self, id)
    }
    fn copy(
        &self,
        init_pid: i32,
        into_container: bool,
        container_path: &Path,
        host_path: &Path,
    ) -> std::io::Result<u64> {
        if into_container {
            runtime::copy::copy_in(init_pid, host_path, container_path)
        } else {
            runtime::copy::copy_out(init_pid, container_path, host_path)
        }
    }
    fn read_file(&self, init_pid: i32, path: &Path) -> std::io::Result<String> {
        // Files read this way are small (/etc/passwd); 4 MiB bounds a hostile one.
        runtime::copy::read_file(init_pid, path, 4 << 20)
    }
    fn stats(&self, id: &str, init_pid: i32) -> Option<runtime::stats::Sample> {
        Some(Runtime::stats(self, id, init_pid))
    }
    fn processes(&self, id: &str) -> Vec<runtime::stats::ProcessInfo> {
        Runtime::processes(self, id)
    }
    fn oci_spec(&self, id: &str) -> Option<libcontainer::oci_spec::runtime::Spec> {
        Runtime::oci_spec(self, id)
    }
    fn exec(
        &self,
        id: &str,
        process: runtime::exec::ExecSpec,
        attach: bool,
        stdin: bool,
    ) -> runtime::Result<runtime::exec::ExecProcess> {
        Runtime::exec(self, id, process, attach, stdin)
    }
}

impl ImageHost for ImageStore {
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        progress: image::Progress,
    ) -> BoxFuture<'a, image::Result<ImageRecord>> {
        Box::pin(ImageStore::pull(self, reference, platform, progress))
    }
    fn pull_as<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        progress: image::Progress,
        credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<ImageRecord>> {
        Box::pin(ImageStore::pull_as(self, reference, platform, progress, credentials))
    }
    fn image(&self, name: &str) -> Option<ImageRecord> {
        ImageStore::image(self, name)
    }
    fn images(&self) -> image::Result<Vec<ImageSummary>> {
        ImageStore::images(self)
    }
    fn lower_dirs(&self, record: &ImageRecord) -> image::Result<Vec<PathBuf>> {
        ImageStore::lower_dirs(self, record)
    }
    fn layer_sizes(&self, record: &ImageRecord) -> Vec<u64> {
        ImageStore::layer_sizes(self, record)
    }
    fn image_file(&self, record: &ImageRecord, path: &str) -> Option<String> {
        ImageStore::image_file(self, record, path)
    }
    fn tag(&self, source: &str, target: &str) -> image::Result<ImageRecord> {
        ImageStore::tag(self, source, target)
    }
    fn remove_image(&self, name: &str) -> image::Result<(ImageRecord, bool)> {
        ImageStore::remove_image(self, name)
    }
    fn push<'a>(&'a self, source: &'a str, target: Option<&'a str>) -> BoxFuture<'a, image::Result<String>> {
        Box::pin(ImageStore::push(self, source, target))
    }
    fn push_as<'a>(
        &'a self,
        source: &'a str,
        target: Option<&'a str>,
        credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<String>> {
        Box::pin(ImageStore::push_as(self, source, target, credentials))
    }
    fn prune(&self, in_use: &std::collections::HashSet<String>) -> image::Result<Vec<ImageRecord>> {
        ImageStore::prune(self, in_use)
    }
    fn save(&self, names: &[String], out: &Path, oci_only: bool) -> image::Result<()> {
        ImageStore::save(self, names, out, oci_only)
    }
    fn load(&self, archive: &Path) -> image::Result<Vec<(ImageRecord, Vec<String>)>> {
        ImageStore::load(self, archive)
    }
    fn login<'a>(
        &'a self,
        registry: &'a str,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, image::Result<()>> {
        Box::pin(ImageStore::login(self, registry, username, password))
    }
    fn logout(&self, registry: &str) -> image::Result<bool> {
        ImageStore::logout(self, registry)
    }
    fn import_image(
        &self,
        tar: &Path,
        reference: Option<&str>,
        expected: Option<&str>,
        cmd: Vec<String>,
    ) -> image::Result<ImageRecord> {
        ImageStore::import_image(self, tar, reference, expected, cmd)
    }
    fn config_blob(&self, record: &ImageRecord) -> Option<Vec<u8>> {
        self.content.read(&record.id).ok()
    }
    fn commit(
        &self,
        base: &ImageRecord,
        upper: &Path,
        config: image::ImageConfig,
        reference: &str,
    ) -> image::Result<ImageRecord> {
        ImageStore::commit(self, base, upper, config, reference)
    }

    fn derive(
        &self,
        base: Option<&ImageRecord>,
        layer: Option<&Path>,
        config: image::ImageConfig,
        history: image::HistoryEntry,
    ) -> image::Result<ImageRecord> {
        ImageStore::derive(self, base, layer, config, history, "build")
    }

    fn cache_get(&self, key: &str) -> image::Result<Option<ImageRecord>> {
        ImageStore::cache_get(self, key)
    }

    fn cache_put(&self, key: &str, record: &ImageRecord) -> image::Result<()> {
        ImageStore::cache_put(self, key, record)
    }

    fn cache_prune(&self) -> image::Result<(usize, u64)> {
        ImageStore::cache_prune(self)
    }

    fn cache_usage(&self) -> image::Result<image::CacheUsage> {
        ImageStore::cache_usage(self)
    }

    fn restore_record(&self, record: &ImageRecord) -> image::Result<()> {
        if self.records.get(&record.id).is_none() {
            self.records.put(record)?;
        }
        Ok(())
    }

    fn forget_unnamed(&self, id: &str) -> image::Result<bool> {
        if self.records.refs()?.values().any(|v| v == id) || self.records.get(id).is_none() {
            return Ok(false);
        }
        self.records.delete(id)?;
        Ok(true)
    }
}

/// Volumes as directories: `<dir>/<name>/_data`, as Docker lays them out.
#[derive(Debug, Clone)]
pub struct VolumeDirs {
    pub dir: PathBuf,
}

impl VolumeHost for VolumeDirs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }
    fn create(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.path(name);
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        // The local driver's mount comes off first: deleting through a bind
        // would delete the host directory's files, through a device its
        // filesystem's. Detached, as the volume's users are gone.
        let data = self.path(name);
        for _ in 0..8 {
            if !self.mounted(name) {
                break;
            }
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)?;
        }
        if self.mounted(name) {
            return Err(std::io::Error::other(format!(
                "{} is still mounted; unmount it, then remove the volume again",
                data.display()
            )));
        }
        match std::fs::remove_dir_all(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn mount(&self, name: &str, m: &LocalMount) -> std::io::Result<()> {
        use nix::mount::MsFlags;
        if self.mounted(name) {
            return Ok(());
        }
        let data = self.path(name);
        let mut flags = MsFlags::empty();
        let mut fs_options: Vec<&str> = Vec::new();
        for o in &m.options {
            match o.as_str() {
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" => {}
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                "noatime" => flags |= MsFlags::MS_NOATIME,
                "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
                other => fs_options.push(other),
            }
        }
        if m.is_bind() {
            let meta = std::fs::metadata(&m.device)
                .map_err(|e| std::io::Error::new(e.kind(), format!("bind source {}: {e}", m.device)))?;
            if !meta.is_dir() {
                return Err(std::io::Error::other(format!(
                    "bind source {} is not a directory",
                    m.device
                )));
            }
            let bind = flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
            nix::mount::mount(Some(m.device.as_str()), &data, None::<&str>, bind, None::<&str>)?;
            // A bind takes its other flags only on a remount.
            let rest = flags - bind;
            if !rest.is_empty() {
                let remounted = nix::mount::mount(
                    None::<&str>,
                    &data,
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | rest,
                    None::<&str>,
                );
                if let Err(e) = remounted {
                    let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
                    return Err(e.into());
                }
            }
            return Ok(());
        }
        let fs_data = fs_options.join(",");
        nix::mount::mount(
            Some(m.device.as_str()),
            &data,
            Some(m.fstype.as_str()),
            flags,
            (!fs_data.is_empty()).then_some(fs_data.as_str()),
        )
        .map_err(|e| {
            std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!("mount {} ({}) with {:?}: {e}", m.device, m.fstype, m.options.join(",")),
            )
        })
    }

    fn mounted(&self, name: &str) -> bool {
        let data = self.path(name);
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return false;
        };
        // The fifth field is the mount point, octal-escaped (volume paths
        // hold no spaces, so it is the path itself).
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|p| Path::new(p) == data)
    }
    fn exists(&self, name: &str) -> bool {
        self.path(name).is_dir()
    }

    fn populate(&self, name: &str, from: &[PathBuf]) -> std::io::Result<bool> {
        // Marked once, beside the data: a volume the user emptied later is
        // not filled again.
        let marker = self.dir.join(name).join("populated");
        let data = self.path(name);
        if marker.exists() {
            return Ok(false);
        }
        let empty = std::fs::read_dir(&data)?.next().is_none();
        let source_is_dir = from
            .first()
            .is_some_and(|top| std::fs::symlink_metadata(top).is_ok_and(|m| m.is_dir()));
        let copied = empty && source_is_dir;
        if copied {
            image::merged::copy_merged(from, &data)?;
        }
        std::fs::write(&marker, b"")?;
        Ok(copied)
    }

    fn create_anonymous(&self, id: &str, container: &str, path: &str) -> std::io::Result<PathBuf> {
        let data = self.create(id)?;
        let owner = AnonymousVolumeInfo {
            id: id.to_string(),
            container: container.to_string(),
            path: path.to_string(),
        };
        let record = self.dir.join(id).join(ANONYMOUS_RECORD);
        if !record.exists() {
            // Written whole before it is seen: a torn record would hide the
            // volume from the delete that must remove it.
            let tmp = self.dir.join(id).join(".anonymous.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&owner)?)?;
            std::fs::rename(&tmp, &record)?;
        }
        Ok(data)
    }

    fn anonymous(&self) -> Vec<AnonymousVolumeInfo> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<AnonymousVolumeInfo> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let text = std::fs::read(e.path().join(ANONYMOUS_RECORD)).ok()?;
                let mut info: AnonymousVolumeInfo = serde_json::from_slice(&text).ok()?;
                info.id = e.file_name().to_str()?.to_string();
                Some(info)
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// The file beside an anonymous volume's `_data` that names its container.
const ANONYMOUS_RECORD: &str = "anonymous.json";

impl NetworkHost for Networks {
    fn names(&self) -> &Networks {
        self
    }
    fn host_routes(&self) -> network::Result<Vec<Subnet>> {
        let mut taken = link::host_routes()?;
        // podman's networks, routed only while their containers run.
        let documents: Vec<String> = std::fs::read_dir("/etc/containers/networks")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        taken.extend(network::ipam::podman_subnets(&documents));
        Ok(taken)
    }
    fn ensure_bridge(&self, cfg: &BridgeConfig) -> network::Result<()> {
        link::ensure_bridge(cfg)
    }
    fn bridge_ok(&self, cfg: &BridgeConfig) -> bool {
        link::bridge_ok(&cfg.name, cfg.gateway, cfg.subnet.prefix).unwrap_or(false)
    }
    fn veth_ok(&self, veth: &str, bridge: &str) -> bool {
        link::veth_on_bridge(veth, bridge).unwrap_or(false)
    }
    fn veths_ok(&self, veths: &[String], bridge: &str) -> bool {
        link::veths_on_bridge(veths, bridge).unwrap_or(false)
    }
    fn delete_link(&self, name: &str) -> network::Result<()> {
        link::delete_link(name)
    }
    fn create_netns(&self, id: &str) -> network::Result<PathBuf> {
        let path = self.netns_path(id);
        link::create_netns(&path)?;
        Ok(path)
    }
    fn netns_exists(&self, id: &str) -> bool {
        link::is_netns(&self.netns_path(id))
    }
    fn attach(&self, id: &str, veth: &VethConfig) -> network::Result<()> {
        link::attach_veth(&self.netns_path(id), veth)
    }
    fn attach_macvlan(&self, id: &str, cfg: &VethConfig) -> network::Result<()> {
        link::attach_macvlan(&self.netns_path(id), cfg)
    }
    fn detach(&self, id: &str, host_name: &str, ifname: &str) -> network::Result<()> {
        link::delete_link(host_name)?;
        let netns = self.netns_path(id);
        if link::is_netns(&netns) {
            link::delete_link_in(&netns, ifname)?;
        }
        Ok(())
    }
    fn link_exists(&self, name: &str) -> bool {
        link::link_exists(name).unwrap_or(false)
    }
    fn host_veths(&self) -> Vec<String> {
        Networks::host_veths(self)
    }
    fn netns_links(&self, id: &str) -> network::Result<Vec<String>> {
        link::netns_links(&self.netns_path(id))
    }
    fn remove_container(&self, id: &str, interfaces: usize) -> network::Result<()> {
        Networks::remove_container(self, id, interfaces)
    }
    fn write_file(&self, id: &str, file: &str, text: &str) -> network::Result<PathBuf> {
        let dir = self.dir(id);
        let path = dir.join(file);
        std::fs::create_dir_all(&dir)
            .and_then(|()| network::files::write_in_place(&path, text))
            .map_err(|source| network::NetworkError::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
    fn host_resolv_conf(&self) -> String {
        network::files::host_resolv_conf()
    }
    fn sync_nat(&self, networks: &[NatNetwork], ports: &[PortForward]) -> network::Result<()> {
        nat::sync(&self.child_waits, self.table(), networks, ports)
    }
    fn nat_intact(&self, networks: &[NatNetwork], ports: &[PortForward]) -> bool {
        let want = nat::expected_rules(networks, ports);
        // Read before listing: a change after it bumps it past what is recorded.
        let generation = nat::ruleset_generation();
        if self.nat_verified(generation, want) {
            return true;
        }
        let intact = match nat::rule_count(&self.child_waits, self.table()) {
            Ok(Some(n)) => n == want,
            Ok(None) => networks.is_empty() && ports.is_empty(),
            Err(_) => false,
        };
        self.set_nat_verified(generation.filter(|_| intact), want);
        intact
    }
    fn check_port_free(&self, ip: Option<std::net::Ipv4Addr>, port: u16, proto: Proto) -> network::Result<()> {
        Networks::check_port_free(self, ip, port, proto)
    }
    fn list(&self) -> Vec<String> {
        Networks::list(self)
    }
    fn dns_start(
        &self,
        network: &str,
        gateway: std::net::Ipv4Addr,
        internal: bool,
        records: network::dns::Records,
    ) -> network::Result<()> {
        let upstream = if internal { Vec::new() } else { self.dns_upstream() };
        self.dns.start(network, gateway, upstream, records)
    }
    fn dns_set(&self, network: &str, records: network::dns::Records) {
        self.dns.set_records(network, records)
    }
    fn dns_running(&self, network: &str) -> bool {
        self.dns.running(network)
    }
    fn dns_stop(&self, network: &str) {
        self.dns.stop(network)
    }
}

/// The host of a daemon with this runtime and image store; volumes live
/// under `<root>/volumes`.
pub fn host(
    runtime: Runtime,
    images: ImageStore,
    pools: Vec<network::Pool>,
    dns_upstream: Vec<std::net::SocketAddr>,
    child_waits: Arc<network::ChildWaits>,
) -> Host {
    let volumes = VolumeDirs {
        dir: runtime.layout.root.join("volumes"),
    };
    let mut networks = Networks::new(&runtime.layout.run, &runtime.layout.prefix)
        .with_pools(pools)
        .with_dns_upstream(dns_upstream);
    networks.child_waits = child_waits;
    Host {
        containers: Arc::new(runtime),
        images: Arc::new(images),
        volumes: Arc::new(volumes),
        networks: Arc::new(networks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_volume_is_populated_from_the_image_once() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("layer/www");
        std::fs::create_dir_all(image.join("sub")).unwrap();
        std::fs::write(image.join("index.html"), "hi").unwrap();
        std::os::unix::fs::symlink("index.html", image.join("link")).unwrap();
        let volumes = VolumeDirs {
            dir: dir.path().join("volumes"),
        };
        volumes.create("web").unwrap();
        assert!(volumes.populate("web", std::slice::from_ref(&image)).unwrap());
        let data = volumes.path("web");
        assert_eq!(std::fs::read_to_string(data.join("index.html")).unwrap(), "hi");
        assert!(data.join("sub").is_dir());
        assert_eq!(std::fs::read_link(data.join("link")).unwrap(), Path::new("index.html"));
        // Emptied by its user, it stays empty.
        std::fs::remove_file(data.join("index.html")).unwrap();
        assert!(!volumes.populate("web", std::slice::from_ref(&image)).unwrap());
        assert!(!data.join("index.html").exists());
    }

    #[test]
    fn a_volume_that_already_holds_data_is_not_populated() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("layer/data");
        std::fs::create_dir_all(&image).unwrap();
        std::fs::write(image.join("seed"), "x").unwrap();
        let volumes = VolumeDirs {
            dir: dir.path().join("volumes"),
        };
        let data = volumes.create("db").unwrap();
        std::fs::write(data.join("mine"), "y").unwrap();
        assert!(!volumes.populate("db", std::slice::from_ref(&image)).unwrap());
        assert!(!data.join("seed").exists());
    }
}
