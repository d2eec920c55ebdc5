//! A recording fake of the host (tests only), as youki's `TestHelperSyscall`:
//! every call is recorded, probes answer from a script that tests change, and
//! failures can be injected per container or image, or on the Nth call of a
//! kind ([`FakeHost::fail_on`]) or of any mutation ([`FakeHost::fail_nth`]).
//! No root, no kernel.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::seams::{
    AnonymousVolumeInfo, AttachStreams, BoxFuture, ContainerHost, Host, ImageHost, LocalMount, LogSource, NetworkHost,
    VolumeHost,
};
use crate::image::{self, ImageConfig, ImageError, ImageRecord, ImageSummary};
use crate::network::dns::Records;
use crate::network::{self, BridgeConfig, NatNetwork, Networks, PortForward, Proto, Subnet, VethConfig};
use crate::runtime::exec::{ExecProcess, ExecReport, ExecSpec};
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
    MountVolume(String, String),
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
    Freeze(String, bool),
    /// A running container's limits changed in place (`update`).
    /// With the memory limit asked for.
    UpdateLimits(String, Option<u64>),
    /// Init pid, into the container, the path in the container.
    Copy(i32, bool, PathBuf),
    Exec(String, Vec<String>),
    /// A container's filesystem written as a tar (`export`).
    Export(String),
}

/// A kind of [`Call`], to inject a failure into (see [`FakeHost::fail_on`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Start,
    Signal,
    KillAll,
    Cleanup,
    Remove,
    Import,
    CreateVolume,
    MountVolume,
    RemoveVolume,
    PopulateVolume,
    EnsureBridge,
    DeleteLink,
    CreateNetns,
    Attach,
    Detach,
    RemoveNetwork,
    SyncNat,
    Pull,
    RemoveImage,
    Freeze,
    UpdateLimits,
    Copy,
    Exec,
    Export,
}

impl Call {
    pub fn op(&self) -> Op {
        match self {
            Call::Start(_) => Op::Start,
            Call::Signal(..) => Op::Signal,
            Call::KillAll(_) => Op::KillAll,
            Call::Cleanup(_) => Op::Cleanup,
            Call::Remove(_) => Op::Remove,
            Call::Import(_) => Op::Import,
            Call::CreateVolume(_) => Op::CreateVolume,
            Call::MountVolume(..) => Op::MountVolume,
            Call::RemoveVolume(_) => Op::RemoveVolume,
            Call::PopulateVolume(..) => Op::PopulateVolume,
            Call::EnsureBridge(_) => Op::EnsureBridge,
            Call::DeleteLink(_) => Op::DeleteLink,
            Call::CreateNetns(_) => Op::CreateNetns,
            Call::Attach(..) => Op::Attach,
            Call::Detach(..) => Op::Detach,
            Call::RemoveNetwork(_) => Op::RemoveNetwork,
            Call::SyncNat(..) => Op::SyncNat,
            Call::Pull(_) => Op::Pull,
            Call::RemoveImage(_) => Op::RemoveImage,
            Call::Freeze(..) => Op::Freeze,
            Call::UpdateLimits(..) => Op::UpdateLimits,
            Call::Copy(..) => Op::Copy,
            Call::Exec(..) => Op::Exec,
            Call::Export(_) => Op::Export,
        }
    }
}

/// Armed failures: each fails one call, the Nth counted from when it was
/// armed, then disarms (as youki's `set_ret_err_times` with 1).
#[derive(Default)]
struct Faults {
    /// Per kind: calls of it seen since armed, and which one fails.
    on: HashMap<Op, (usize, usize)>,
    /// Any mutation: seen since armed, and which one fails.
    any: Option<(usize, usize)>,
}

impl Faults {
    /// Counts `call`; the message of its injected failure, if it is one.
    fn check(&mut self, call: &Call) -> Option<String> {
        let mut fails = false;
        if let Some((seen, nth)) = self.on.get_mut(&call.op()) {
            *seen += 1;
            if *seen == *nth {
                self.on.remove(&call.op());
                fails = true;
            }
        }
        if let Some((seen, nth)) = &mut self.any {
            *seen += 1;
            if *seen == *nth {
                self.any = None;
                fails = true;
            }
        }
        fails.then(|| format!("injected failure of {call:?}"))
    }
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
    /// Volumes with the local driver's mount on them.
    mounted_volumes: HashSet<String>,
    anonymous: Vec<AnonymousVolumeInfo>,
    bridges: HashSet<String>,
    /// Host ends of veths, with their bridge.
    veths: HashMap<String, String>,
    netns: HashSet<String>,
    /// Interfaces inside each namespace besides `lo`, by container id.
    ifaces: HashMap<String, BTreeSet<String>>,
    /// Records of running DNS servers by network.
    dns: HashMap<String, Records>,
    /// Written network files by (id, file name).
    files: HashMap<(String, String), String>,
    /// How many times each was written.
    file_writes: HashMap<(String, String), usize>,
    /// What a pull of a reference finds in the "registry".
    registry: HashMap<String, ImageRecord>,
    /// Pulled images by reference.
    pulled: HashMap<String, ImageRecord>,
    /// Build cache entries by key.
    build_cache: HashMap<String, ImageRecord>,
    /// The config each container was last started with.
    configs: HashMap<String, ContainerConfig>,
    /// The exit code a container gets from SIGTERM (none: it ignores it).
    term_exit: Option<i32>,
    /// Containers whose processes are frozen.
    frozen: HashSet<String>,
    /// Regular files inside containers, by (id, absolute path).
    container_files: HashMap<(String, PathBuf), Vec<u8>>,
    /// Each container's log, oldest line first.
    logs: HashMap<String, Vec<runtime::logs::LogLine>>,
    faults: Faults,
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

    /// Records a mutation; the message of its injected failure, if armed.
    /// A failed call changes nothing, as the seams promise of the real host.
    fn mutate(&self, call: Call) -> Result<(), String> {
        let failed = self.script().faults.check(&call);
        self.record(call);
        failed.map_or(Ok(()), Err)
    }

    /// The `nth` (from 1) call of kind `op` from now fails, once.
    pub fn fail_on(&self, op: Op, nth: usize) {
        self.script().faults.on.insert(op, (0, nth));
    }

    /// The `nth` (from 1) mutation from now fails, once, whatever it is.
    pub fn fail_nth(&self, nth: usize) {
        self.script().faults.any = Some((0, nth));
    }

    /// Container `id` writes `text` as a line to its stdout (its log).
    pub fn put_log_line(&self, id: &str, text: &str) {
        self.script()
            .logs
            .entry(id.into())
            .or_default()
            .push(runtime::logs::LogLine {
                time: runtime::logs::timestamp_now(),
                stream: "stdout".into(),
                text: text.into(),
            });
    }

    /// Puts a regular file into container `id`'s root filesystem.
    pub fn put_container_file(&self, id: &str, path: &str, text: &str) {
        self.script()
            .container_files
            .insert((id.into(), PathBuf::from(path)), text.as_bytes().to_vec());
    }

    /// The container whose init is `init_pid`, while it runs.
    fn running_with_init(&self, init_pid: i32) -> std::io::Result<String> {
        self.script()
            .probes
            .iter()
            .find(|(_, p)| matches!(p, Probe::Running(r) if r.init_pid == init_pid))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no running container has init {init_pid}"),
                )
            })
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

    /// How many times a network file of `id` was written.
    pub fn file_writes(&self, id: &str, file: &str) -> usize {
        let s = self.script();
        s.file_writes
            .get(&(id.to_string(), file.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Deletes a bridge or veth behind berth's back.
    /// A deleted bridge releases its ports, as the kernel's does.
    pub fn drop_link(&self, name: &str) {
        let mut s = self.script();
        s.bridges.remove(name);
        s.veths.remove(name);
        s.veths.retain(|_, bridge| bridge != name);
    }

    /// Host ends of the veths that exist, sorted.
    pub fn veths(&self) -> Vec<String> {
        let mut veths: Vec<String> = self.script().veths.keys().cloned().collect();
        veths.sort();
        veths
    }

    /// Network namespaces that exist, by container id.
    pub fn netns(&self) -> HashSet<String> {
        self.script().netns.clone()
    }

    pub fn probe_of(&self, id: &str) -> Probe {
        self.script().probes.get(id).cloned().unwrap_or(Probe::Absent)
    }
}

/// A reader of a fake container's log: the lines past `at`.
struct FakeLog {
    script: Arc<Mutex<Script>>,
    id: String,
    at: usize,
}

impl LogSource for FakeLog {
    fn next_lines(&mut self) -> BoxFuture<'_, std::io::Result<Vec<runtime::logs::LogLine>>> {
        let lines: Vec<_> = self
            .script
            .lock()
            .unwrap()
            .logs
            .get(&self.id)
            .map(|l| l.get(self.at..).unwrap_or_default().to_vec())
            .unwrap_or_default();
        self.at += lines.len();
        Box::pin(std::future::ready(Ok(lines)))
    }
}

impl ContainerHost for FakeHost {
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>> {
        Box::pin(async move {
            self.mutate(Call::Start(cfg.id.clone()))
                .map_err(|message| RuntimeError::Setup {
                    id: cfg.id.clone(),
                    message,
                })?;
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
        self.mutate(Call::Signal(id.into(), signal))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })?;
        let code = match signal {
            Signal::SIGKILL => Some(137),
            Signal::SIGTERM => self.script().term_exit,
            _ => None,
        };
        if let (Some(code), Probe::Running(_)) = (code, self.probe_of(id)) {
            self.script().frozen.remove(id);
            self.exit(id, code);
        }
        Ok(())
    }

    fn kill_all(&self, id: &str) {
        // Infallible on the real host too (it logs): a failure changes nothing.
        let _ = self.mutate(Call::KillAll(id.into()));
    }

    fn cleanup(&self, id: &str) -> runtime::Result<()> {
        self.mutate(Call::Cleanup(id.into()))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })?;
        let mut s = self.script();
        s.probes.remove(id);
        s.run_dirs.remove(id);
        s.frozen.remove(id);
        s.container_files.retain(|(owner, _), _| owner != id);
        Ok(())
    }

    fn remove(&self, id: &str) -> runtime::Result<()> {
        self.mutate(Call::Remove(id.into()))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })?;
        let mut s = self.script();
        s.probes.remove(id);
        s.run_dirs.remove(id);
        s.frozen.remove(id);
        s.container_files.retain(|(owner, _), _| owner != id);
        s.logs.remove(id);
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

    fn open_log(&self, id: &str, tail: Option<usize>) -> std::io::Result<Box<dyn LogSource>> {
        let len = self.script().logs.get(id).map_or(0, Vec::len);
        Ok(Box::new(FakeLog {
            script: self.script.clone(),
            id: id.into(),
            at: tail.map_or(0, |n| len.saturating_sub(n)),
        }))
    }

    fn upper_dir(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/fake-upper").join(id)
    }

    /// A container started with a tty or stdin echoes what it reads, as
    /// `cat` would, until its stdin closes; the fake has no pty, so the
    /// master it hands out is the stream itself.
    fn attach(&self, id: &str, tty: bool) -> std::io::Result<Option<AttachStreams>> {
        let open = self.script().configs.get(id).is_some_and(|c| c.io.tty || c.io.stdin);
        if !open || !matches!(self.probe_of(id), Probe::Running(_)) {
            return Ok(None);
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let mut echo = theirs.try_clone()?;
        std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = std::io::copy(&mut theirs, &mut echo);
        });
        let stream = std::os::fd::OwnedFd::from(ours);
        let master = if tty { Some(stream.try_clone()?) } else { None };
        Ok(Some(AttachStreams { stream, master }))
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

    fn update_limits(&self, id: &str, limits: &crate::runtime::Limits) -> runtime::Result<()> {
        self.mutate(Call::UpdateLimits(id.into(), limits.memory_bytes))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })
    }
    fn freeze(&self, id: &str, frozen: bool) -> runtime::Result<()> {
        self.mutate(Call::Freeze(id.into(), frozen))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })?;
        if !matches!(self.probe_of(id), Probe::Running(_)) {
            return Err(RuntimeError::Setup {
                id: id.into(),
                message: "cannot load the container's state: it does not run".into(),
            });
        }
        let mut s = self.script();
        if frozen {
            s.frozen.insert(id.into());
        } else {
            s.frozen.remove(id);
        }
        Ok(())
    }

    fn copy(
        &self,
        init_pid: i32,
        into_container: bool,
        container_path: &Path,
        host_path: &Path,
    ) -> std::io::Result<u64> {
        self.mutate(Call::Copy(init_pid, into_container, container_path.into()))
            .map_err(std::io::Error::other)?;
        let id = self.running_with_init(init_pid)?;
        // Regular files only: enough for the engine's logic, which the fake serves.
        let key = (id, container_path.to_path_buf());
        if into_container {
            let bytes = std::fs::read(host_path)?;
            let n = bytes.len() as u64;
            self.script().container_files.insert(key, bytes);
            Ok(n)
        } else {
            let bytes = self.script().container_files.get(&key).cloned().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("in the container: {}: no such file", container_path.display()),
                )
            })?;
            let to = match container_path.file_name() {
                Some(name) if host_path.is_dir() => host_path.join(name),
                _ => host_path.to_path_buf(),
            };
            std::fs::write(to, &bytes)?;
            Ok(bytes.len() as u64)
        }
    }

    /// The container's files (see [`FakeHost::put_container_file`]); the
    /// fake's images hold none, so `lower_dirs` add nothing.
    fn export(&self, id: &str, _lower_dirs: &[PathBuf], out: &Path) -> std::io::Result<()> {
        self.mutate(Call::Export(id.into())).map_err(std::io::Error::other)?;
        let mut files: Vec<(PathBuf, Vec<u8>)> = self
            .script()
            .container_files
            .iter()
            .filter(|((owner, _), _)| owner == id)
            .map(|((_, path), bytes)| (path.clone(), bytes.clone()))
            .collect();
        files.sort();
        super::linux::write_whole(out, |f| {
            let mut tar = tar::Builder::new(std::io::BufWriter::new(f));
            for (path, bytes) in &files {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                let name = path.strip_prefix("/").unwrap_or(path);
                tar.append_data(&mut h, name, bytes.as_slice())?;
            }
            std::io::Write::flush(&mut tar.into_inner()?)
        })
    }

    fn read_file(&self, init_pid: i32, path: &Path) -> std::io::Result<String> {
        let id = self.running_with_init(init_pid)?;
        let bytes = self
            .script()
            .container_files
            .get(&(id, path.to_path_buf()))
            .cloned()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("open {}: no such file", path.display()),
                )
            })?;
        String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn stats(&self, id: &str, init_pid: i32) -> Option<runtime::stats::Sample> {
        let running = matches!(self.probe_of(id), Probe::Running(r) if r.init_pid == init_pid);
        // As the real cgroup reads: zeroes for a container that does not run.
        Some(if running {
            runtime::stats::Sample {
                cpu_ns: 1_000_000,
                system_ns: 1_000_000_000,
                online_cpus: 2,
                memory_bytes: 1 << 20,
                memory_limit_bytes: 1 << 30,
                pids: 1,
                ..Default::default()
            }
        } else {
            runtime::stats::Sample {
                online_cpus: 2,
                memory_limit_bytes: 1 << 30,
                ..Default::default()
            }
        })
    }

    fn processes(&self, id: &str) -> Vec<runtime::stats::ProcessInfo> {
        let Probe::Running(run) = self.probe_of(id) else {
            return Vec::new();
        };
        let command = self.config_of(id).map(|c| c.args.join(" ")).unwrap_or_default();
        vec![runtime::stats::ProcessInfo {
            pid: run.init_pid,
            ppid: run.shim_pid,
            uid: self.config_of(id).map_or(0, |c| c.uid),
            cpu_seconds: 0.0,
            rss_bytes: 1 << 20,
            command,
        }]
    }

    fn oci_spec(&self, id: &str) -> Option<libcontainer::oci_spec::runtime::Spec> {
        let s = self.script();
        // The bundle lives as long as the run dir.
        if !s.run_dirs.contains(id) {
            return None;
        }
        let cfg = s.configs.get(id)?;
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "hostname": cfg.hostname,
            "process": {"args": cfg.args, "env": cfg.env, "cwd": cfg.cwd, "user": {"uid": cfg.uid, "gid": cfg.gid}},
        });
        Some(serde_json::from_value(spec).expect("the fake's spec is a valid OCI spec"))
    }

    fn is_frozen(&self, id: &str) -> bool {
        self.script().frozen.contains(id)
    }

    fn exec(&self, id: &str, process: ExecSpec, attach: bool, stdin: bool) -> runtime::Result<ExecProcess> {
        self.mutate(Call::Exec(id.into(), process.args.clone()))
            .map_err(|message| RuntimeError::Setup { id: id.into(), message })?;
        // As the real exec shim: a container that does not run is refused
        // in the first report, not by this call.
        let reports = match self.probe_of(id) {
            Probe::Running(run) => vec![
                ExecReport::Started { pid: run.init_pid + 1 },
                ExecReport::Exited { code: 0 },
            ],
            _ => vec![ExecReport::Failed {
                error: format!("container {id} does not run"),
                exit_code: 126,
            }],
        };
        fake_exec(id, &reports, attach && !process.tty, stdin && !process.tty)
    }
}

/// An exec that is over at once: `reports` say how, and its output pipes
/// are at EOF.
fn fake_exec(id: &str, reports: &[ExecReport], attach: bool, stdin: bool) -> runtime::Result<ExecProcess> {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::unix::pipe;
    let spawn_err = |source: std::io::Error| RuntimeError::SpawnShim { id: id.into(), source };
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()));
    let (reports_r, reports_w) = pipe()?;
    let mut w = std::fs::File::from(reports_w);
    for report in reports {
        let line = serde_json::to_string(report).expect("a report serializes");
        writeln!(w, "{line}").map_err(spawn_err)?;
    }
    drop(w);
    let eof = |wanted: bool| -> runtime::Result<Option<pipe::Receiver>> {
        if !wanted {
            return Ok(None);
        }
        let (r, _w) = pipe()?;
        pipe::Receiver::from_owned_fd(r).map(Some).map_err(spawn_err)
    };
    let input = if stdin {
        // The process has exited: what is written goes nowhere.
        let (_r, w) = pipe()?;
        Some(pipe::Sender::from_owned_fd(w).map_err(spawn_err)?)
    } else {
        None
    };
    Ok(ExecProcess {
        stdin: input,
        stdout: eof(attach)?,
        stderr: eof(attach)?,
        reports: tokio::io::BufReader::new(pipe::Receiver::from_owned_fd(reports_r).map_err(spawn_err)?).lines(),
        pty_socket: None,
    })
}

impl ImageHost for FakeHost {
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        _platform: Option<&'a str>,
        _progress: image::Progress,
    ) -> BoxFuture<'a, image::Result<ImageRecord>> {
        Box::pin(async move {
            self.mutate(Call::Pull(reference.into()))
                .map_err(|message| ImageError::Registry {
                    reference: reference.into(),
                    message,
                })?;
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

    /// Nothing is unpacked here: the compressed sizes stand in.
    fn layer_sizes(&self, record: &ImageRecord) -> Vec<u64> {
        record.layers.iter().map(|l| l.size).collect()
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

    fn pull_as<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        progress: image::Progress,
        _credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<ImageRecord>> {
        // The fake has no registry to show credentials to.
        self.pull(reference, platform, progress)
    }

    fn push_as<'a>(
        &'a self,
        source: &'a str,
        target: Option<&'a str>,
        _credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<String>> {
        self.push(source, target)
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
        self.mutate(Call::Import(tar.clone()))
            .map_err(|message| ImageError::ReadArchive {
                path: tar.clone().into(),
                source: std::io::Error::other(message),
            })?;
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

    fn derive(
        &self,
        base: Option<&ImageRecord>,
        _layer: Option<&Path>,
        config: ImageConfig,
        history: image::HistoryEntry,
    ) -> image::Result<ImageRecord> {
        let mut record = base.cloned().unwrap_or(ImageRecord {
            id: String::new(),
            manifest_digest: String::new(),
            config: ImageConfig::default(),
            platform: "linux/amd64".into(),
            layers: Vec::new(),
            chain_ids: Vec::new(),
            created_at: 0,
        });
        record.config = config;
        let n = self.script().build_cache.len() + 1000;
        record.id = format!("sha256:{n:0>64}");
        let _ = history;
        self.script().imported.push(record.clone());
        Ok(record)
    }

    fn cache_get(&self, key: &str) -> image::Result<Option<ImageRecord>> {
        Ok(self.script().build_cache.get(key).cloned())
    }

    fn cache_put(&self, key: &str, record: &ImageRecord) -> image::Result<()> {
        self.script().build_cache.insert(key.into(), record.clone());
        Ok(())
    }

    fn cache_prune(&self) -> image::Result<(usize, u64)> {
        let mut s = self.script();
        let n = s.build_cache.len();
        s.build_cache.clear();
        Ok((n, 0))
    }

    fn cache_usage(&self) -> image::Result<image::CacheUsage> {
        Ok(image::CacheUsage {
            entries: self.script().build_cache.len(),
            reclaimable_bytes: 0,
        })
    }

    fn restore_record(&self, record: &ImageRecord) -> image::Result<()> {
        let mut s = self.script();
        if !s.imported.iter().any(|r| r.id == record.id) {
            s.imported.push(record.clone());
        }
        Ok(())
    }

    fn forget_unnamed(&self, id: &str) -> image::Result<bool> {
        let mut s = self.script();
        if s.pulled.values().any(|r| r.id == id) {
            return Ok(false);
        }
        let before = s.imported.len();
        s.imported.retain(|r| r.id != id);
        Ok(s.imported.len() != before)
    }

    fn prune(&self, in_use: &std::collections::HashSet<String>) -> image::Result<Vec<ImageRecord>> {
        let _ = in_use;
        Ok(Vec::new())
    }

    fn remove_image(&self, name: &str) -> image::Result<(ImageRecord, bool)> {
        self.mutate(Call::RemoveImage(name.into()))
            .map_err(|message| ImageError::Store {
                path: PathBuf::from("/fake/images").join(name),
                source: std::io::Error::other(message),
            })?;
        let record = self
            .image(name)
            .ok_or_else(|| ImageError::NotFound { reference: name.into() })?;
        let mut s = self.script();
        s.pulled.remove(name);
        let left = s.pulled.values().any(|r| r.id == record.id);
        if !left {
            // The store deletes an image with its last reference.
            s.imported.retain(|r| r.id != record.id);
        }
        Ok((record, !left))
    }
}

impl VolumeHost for FakeHost {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("/fake/volumes").join(name)
    }

    fn create(&self, name: &str) -> std::io::Result<PathBuf> {
        self.mutate(Call::CreateVolume(name.into()))
            .map_err(std::io::Error::other)?;
        self.script().volumes.insert(name.into());
        Ok(self.path(name))
    }

    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.mutate(Call::RemoveVolume(name.into()))
            .map_err(std::io::Error::other)?;
        let mut s = self.script();
        s.volumes.remove(name);
        s.mounted_volumes.remove(name);
        // Its owner record goes with its directory, as on disk.
        s.anonymous.retain(|a| a.id != name);
        Ok(())
    }

    fn mount(&self, name: &str, m: &LocalMount) -> std::io::Result<()> {
        if self.mounted(name) {
            return Ok(());
        }
        self.mutate(Call::MountVolume(name.into(), m.fstype.clone()))
            .map_err(std::io::Error::other)?;
        self.script().mounted_volumes.insert(name.into());
        Ok(())
    }

    fn mounted(&self, name: &str) -> bool {
        self.script().mounted_volumes.contains(name)
    }

    fn exists(&self, name: &str) -> bool {
        self.script().volumes.contains(name)
    }

    fn populate(&self, name: &str, from: &[PathBuf]) -> std::io::Result<bool> {
        self.mutate(Call::PopulateVolume(
            name.into(),
            from.first().cloned().unwrap_or_default(),
        ))
        .map_err(std::io::Error::other)?;
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
        self.mutate(Call::EnsureBridge(cfg.name.clone()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
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
        self.mutate(Call::DeleteLink(name.into()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
        let mut s = self.script();
        s.bridges.remove(name);
        s.veths.remove(name);
        Ok(())
    }
    fn create_netns(&self, id: &str) -> network::Result<PathBuf> {
        self.mutate(Call::CreateNetns(id.into()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
        self.script().netns.insert(id.into());
        Ok(self.names.netns_path(id))
    }
    fn netns_exists(&self, id: &str) -> bool {
        self.script().netns.contains(id)
    }
    fn attach(&self, id: &str, veth: &VethConfig) -> network::Result<()> {
        self.mutate(Call::Attach(id.into(), format!("{} {}", veth.ifname, veth.address)))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
        let mut s = self.script();
        // As the kernel: both ends need somewhere to go.
        let missing = if !s.netns.contains(id) {
            Some("the network namespace does not exist")
        } else if !s.bridges.contains(&veth.bridge) {
            Some("the bridge does not exist")
        } else {
            None
        };
        if let Some(message) = missing {
            return Err(network::NetworkError::Netlink {
                action: format!("attach {} to {}", veth.host_name, veth.bridge),
                message: message.into(),
            });
        }
        s.veths.insert(veth.host_name.clone(), veth.bridge.clone());
        s.ifaces.entry(id.into()).or_default().insert(veth.ifname.clone());
        Ok(())
    }
    fn attach_macvlan(&self, id: &str, cfg: &VethConfig) -> network::Result<()> {
        self.mutate(Call::Attach(
            id.into(),
            format!("{} {} macvlan", cfg.ifname, cfg.address),
        ))
        .map_err(|message| network::NetworkError::Netlink {
            action: "fake".into(),
            message,
        })?;
        Ok(())
    }
    fn detach(&self, id: &str, host_name: &str, ifname: &str) -> network::Result<()> {
        self.mutate(Call::Detach(id.into(), ifname.into()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
        let mut s = self.script();
        s.veths.remove(host_name);
        if let Some(ifaces) = s.ifaces.get_mut(id) {
            ifaces.remove(ifname);
        }
        Ok(())
    }
    fn link_exists(&self, name: &str) -> bool {
        let s = self.script();
        name == "eth0" || s.bridges.contains(name) || s.veths.contains_key(name)
    }
    fn host_veths(&self) -> Vec<String> {
        Vec::new()
    }
    fn netns_links(&self, id: &str) -> network::Result<Vec<String>> {
        let s = self.script();
        if !s.netns.contains(id) {
            return Err(network::NetworkError::Netlink {
                action: format!("list the links of {id}'s namespace"),
                message: "it does not exist".into(),
            });
        }
        let inside = s.ifaces.get(id).into_iter().flatten().cloned();
        Ok(std::iter::once("lo".to_string()).chain(inside).collect())
    }
    fn remove_container(&self, id: &str, interfaces: usize) -> network::Result<()> {
        self.mutate(Call::RemoveNetwork(id.into()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
        let mut s = self.script();
        s.netns.remove(id);
        s.ifaces.remove(id);
        s.files.retain(|(owner, _), _| owner != id);
        for i in 0..interfaces {
            s.veths.remove(&self.names.veth_name(id, i));
        }
        Ok(())
    }
    fn write_file(&self, id: &str, file: &str, text: &str) -> network::Result<PathBuf> {
        let mut s = self.script();
        s.files.insert((id.into(), file.into()), text.into());
        *s.file_writes.entry((id.into(), file.into())).or_default() += 1;
        Ok(self.names.dir(id).join(file))
    }
    fn host_resolv_conf(&self) -> String {
        "nameserver 192.0.2.53\n".into()
    }
    fn sync_nat(&self, networks: &[NatNetwork], ports: &[PortForward]) -> network::Result<()> {
        self.mutate(Call::SyncNat(networks.len(), ports.len()))
            .map_err(|message| network::NetworkError::Netlink {
                action: "fake".into(),
                message,
            })?;
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
