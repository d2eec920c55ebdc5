//! The low-level runtime: bundles, rootfs overlays, the per-container shim
//! (libcontainer inside), exit records, logs and cgroups. Knows nothing of
//! manifests or plans: it is handed a [`ContainerConfig`].
//!
//! Layout of one container `id`:
//! ```text
//! <run>/containers/<id>/bundle/config.json   OCI spec (kept until delete: exec re-reads it)
//! <run>/containers/<id>/rootfs/              overlay mount point (mounted in the shim's own mount namespace)
//! <run>/containers/<id>/shim.json            what the shim is told
//! <run>/containers/<id>/state.json           shim + init pid and start times (written by the shim)
//! <run>/containers/<id>/exit.json            exit record (written by the shim)
//! <run>/lc/<id>/                             libcontainer's own state
//! <root>/containers/<id>/{upper,work}/       the container's writable layer
//! <root>/containers/<id>/container.log       timestamped stdout/stderr
//! ```

pub mod cgroup;
pub mod copy;
pub mod exec;
pub mod isolation;
pub mod logs;
pub mod proc;
pub mod profile;
pub mod propagation;
pub mod sealed;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod userns;
pub mod workload;
pub mod zygote;

use std::fs;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

pub use spec::{CgroupFeatures, ContainerConfig, DeviceLimit, HostInfo, InitIo, Limits, MountSpec, NetnsMode};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The OCI spec could not be built or serialized: a bug in berth.
    #[error("container {id}: invalid runtime spec: {message}")]
    Spec { id: String, message: String },
    /// The container's isolation settings cannot be given on this host.
    #[error(transparent)]
    Isolation(#[from] isolation::IsolationError),
    /// A file or directory operation failed.
    #[error("container {id}: {action} {path}: {source}")]
    Io {
        id: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The shim could not be started.
    #[error("container {id}: cannot start shim: {source}")]
    SpawnShim { id: String, source: std::io::Error },
    /// The shim reported that the container could not be created or started.
    #[error("container {id}: {message}")]
    Setup { id: String, message: String },
    /// The container's command cannot be run: `code` is 127 when the
    /// executable is missing, 126 when it cannot be executed (as Docker).
    #[error("container {id}: {message}")]
    CannotExecute { id: String, message: String, code: i32 },
    /// Signalling the container failed.
    #[error("container {id}: cannot send {signal}: {source}")]
    Signal {
        id: String,
        signal: String,
        source: nix::Error,
    },
    /// A mount destination is a symlink in the image: mounting there would
    /// follow it, so it is refused up front with the path.
    #[error("container {id}: mount destination {destination} is a symlink in the image ({link} -> {target}); mount at the path it points to instead")]
    MountOnSymlink {
        id: String,
        destination: String,
        link: String,
        target: String,
    },
    /// The container's user namespace cannot be given.
    #[error("container {id}: {source}")]
    Userns { id: String, source: userns::UsernsError },
    /// Teardown left things behind; every failure is listed.
    #[error("container {id}: cleanup incomplete: {}", .errors.join("; "))]
    Cleanup { id: String, errors: Vec<String> },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

fn io_err(id: &str, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let id = id.to_string();
    let path = path.to_path_buf();
    move |source| RuntimeError::Io {
        id,
        action,
        path,
        source,
    }
}

/// Where everything of one daemon lives. Kernel objects carry a prefix
/// derived from the root dir so that two daemons never collide.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    pub run: PathBuf,
    pub prefix: String,
}

impl Layout {
    pub fn new(root: PathBuf, run: PathBuf) -> Layout {
        let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
        let prefix = format!("berth-{}", &hex::encode(digest)[..8]);
        Layout { root, run, prefix }
    }
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join("containers").join(id)
    }
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("bundle")
    }
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("rootfs")
    }
    pub fn state_file(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("state.json")
    }
    pub fn exit_file(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("exit.json")
    }
    /// Where a container's shim relays its pty (see `shim::ATTACH_SOCKET`).
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.run_dir(id).join(shim::ATTACH_SOCKET)
    }
    pub fn lc_root(&self) -> PathBuf {
        self.run.join("lc")
    }
    /// The user namespace range a container keeps for its life.
    pub fn userns_file(&self, id: &str) -> PathBuf {
        self.data_dir(id).join("userns.json")
    }
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.data_dir(id).join("container.log")
    }
    /// Absolute cgroup path (relative to each hierarchy root).
    pub fn cgroup_path(&self, id: &str) -> String {
        format!("/{}/{}", self.prefix, id)
    }
}

/// What the shim is told, written to `shim.json` by the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    pub lc_root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub lower_dirs: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub log: PathBuf,
    pub state_file: PathBuf,
    pub exit_file: PathBuf,
    pub cgroup_path: String,
    /// The container's user namespace range: the shim mounts the image's
    /// layers idmapped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<userns::IdRange>,
    /// The network namespace the shim joins before libcontainer starts (a
    /// user namespace container on berth's network; see
    /// `spec::JOIN_NETNS_ANNOTATION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_netns: Option<PathBuf>,
    /// The container's, with the daemon's log rotation filled in.
    #[serde(flatten)]
    pub io: InitIo,
    /// Write the shim's start-path marks for the daemon ([`profile`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub profile: bool,
}

/// Written by the shim once the container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub shim_pid: i32,
    pub shim_start: u64,
    pub init_pid: i32,
    pub init_start: u64,
    /// Unix time in milliseconds.
    pub started_at: i64,
}

/// Written by the shim when the init has exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExitRecord {
    /// Exit code, or 128 + signal number.
    pub code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Unix time in milliseconds.
    pub finished_at: i64,
}

/// What the kernel says about a container right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No run directory: never started here, or fully cleaned up.
    Absent,
    /// Shim and init alive, with the recorded start times.
    Running(RunRecord),
    /// The shim recorded an exit.
    Exited(ExitRecord),
    /// The shim is gone without an exit record (it crashed or was killed);
    /// `init_alive` says whether the container's process outlived it.
    Lost {
        init_alive: bool,
        record: Option<RunRecord>,
    },
    /// A shim is still setting up (no state.json yet) and alive.
    Starting,
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically: temp file, then rename, so a reader
/// (or a daemon after a crash of the shim or of itself) sees the old or the
/// new record, never a torn one. No fsync: these are the run dir's records
/// (a shim's pid and start times, an exit status), which describe processes
/// that a power loss or kernel crash ends anyway, so making them durable
/// buys nothing, while an fsync on a run dir that is not a tmpfs waits for
/// a journal commit of the whole file system: measured 3 ms idle and up to
/// 128 ms while other builds wrote, on every container start and exit.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    fs::rename(&tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Gives the root directory of each of the container's volumes that still
/// belongs to the host's root to the container's root (only the top: what
/// another container already wrote keeps its owner).
fn give_volumes_to(cfg: &ContainerConfig, range: &userns::IdRange) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for m in cfg.mounts.iter().filter(|m| m.volume) {
        let dir = Path::new(&m.source);
        let meta = fs::metadata(dir).map_err(io_err(&cfg.id, "stat", dir))?;
        if meta.uid() == 0 && meta.gid() == 0 {
            std::os::unix::fs::chown(dir, Some(range.uid), Some(range.gid)).map_err(io_err(&cfg.id, "chown", dir))?;
        }
    }
    Ok(())
}

/// Refuses mount destinations that pass through a symlink of the image's
/// layers (the top-most layer holding a path decides), naming the link.
fn check_mount_destinations(cfg: &ContainerConfig) -> Result<()> {
    for m in &cfg.mounts {
        let mut inside = PathBuf::from("/");
        for part in Path::new(&m.destination).components().skip(1) {
            inside.push(part);
            let relative = inside.strip_prefix("/").unwrap_or(&inside);
            let found = cfg.lower_dirs.iter().find_map(|lower| {
                fs::symlink_metadata(lower.join(relative))
                    .ok()
                    .map(|meta| (lower, meta))
            });
            let Some((lower, meta)) = found else { break };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(lower.join(relative))
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(RuntimeError::MountOnSymlink {
                    id: cfg.id.clone(),
                    destination: m.destination.clone(),
                    link: inside.display().to_string(),
                    target,
                });
            }
        }
    }
    Ok(())
}

/// The runtime as the daemon uses it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub layout: Layout,
    /// The executable the shim is started from (a sealed memfd when available).
    shim_exe: PathBuf,
    host: HostInfo,
    /// Log rotation of containers whose config sets none (daemon flags).
    log_defaults: (Option<u64>, Option<u32>),
    /// Forks the exec shims; started on the first exec.
    zygote: std::sync::Arc<std::sync::Mutex<Option<zygote::Zygote>>>,
    /// The range every container without a mode of its own gets (Docker's
    /// `--userns-remap`).
    userns_remap: Option<userns::IdRange>,
    /// Held while a range is chosen and recorded, so that two starts never
    /// take the same slice.
    userns_lock: std::sync::Arc<std::sync::Mutex<()>>,
}

/// A started container: its shim and init.
#[derive(Debug)]
pub struct Started {
    pub record: RunRecord,
}

impl Runtime {
    pub fn new(layout: Layout, shim_exe: PathBuf) -> Runtime {
        Runtime {
            layout,
            shim_exe,
            host: cgroup::host_info(),
            log_defaults: (None, None),
            zygote: Default::default(),
            userns_remap: None,
            userns_lock: Default::default(),
        }
    }

    /// Every container without a user namespace mode of its own gets `range`.
    pub fn with_userns_remap(mut self, range: Option<userns::IdRange>) -> Runtime {
        self.userns_remap = range;
        self
    }

    /// The range `cfg` runs with, recorded in its data dir on first use and
    /// reused afterwards (its upper dir is owned by it). None: the host's.
    fn userns_range(&self, cfg: &ContainerConfig) -> Result<Option<userns::IdRange>> {
        let id = cfg.id.as_str();
        let wanted = match cfg.userns {
            userns::UsernsMode::Daemon => self.userns_remap.map(userns::UsernsMode::Range),
            userns::UsernsMode::Host => None,
            mode => Some(mode),
        };
        let Some(wanted) = wanted else {
            return Ok(None);
        };
        let _held = self.userns_lock.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.layout.userns_file(id);
        let recorded = userns::recorded(&file);
        let range = match (wanted, recorded) {
            (userns::UsernsMode::Range(r), _) => r,
            // Same mode as before: the same slice.
            (userns::UsernsMode::Auto, Some(r)) if r.size == userns::AUTO_SIZE => r,
            _ => {
                let (uids, gids) = userns::subordinate_ids(userns::AUTO_USER)
                    .map_err(|source| RuntimeError::Userns { id: id.into(), source })?;
                let mut taken: Vec<userns::IdRange> = self.userns_remap.into_iter().collect();
                if let Ok(dirs) = fs::read_dir(self.layout.root.join("containers")) {
                    for dir in dirs.flatten() {
                        if dir.file_name() != id {
                            taken.extend(userns::recorded(&dir.path().join("userns.json")));
                        }
                    }
                }
                userns::first_free(uids, gids, userns::AUTO_SIZE, &taken).ok_or_else(|| RuntimeError::Userns {
                    id: id.into(),
                    source: userns::UsernsError::Exhausted {
                        user: userns::AUTO_USER.into(),
                        size: userns::AUTO_SIZE,
                    },
                })?
            }
        };
        if recorded != Some(range) {
            let data = self.layout.data_dir(id);
            fs::create_dir_all(&data).map_err(io_err(id, "create", &data))?;
            let bytes = serde_json::to_vec(&range).map_err(|e| RuntimeError::Spec {
                id: id.into(),
                message: e.to_string(),
            })?;
            write_atomic(&file, &bytes).map_err(io_err(id, "write", &file))?;
            // The writable layer belongs to the container's root. A new range
            // on an old upper dir (the mode changed) would leave the files of
            // the old one unwritable: start that layer over.
            let upper = data.join("upper");
            if recorded.is_some() {
                let _ = fs::remove_dir_all(&upper);
                fs::create_dir_all(&upper).map_err(io_err(id, "create", &upper))?;
            }
            std::os::unix::fs::chown(&upper, Some(range.uid), Some(range.gid)).map_err(io_err(id, "chown", &upper))?;
        }
        Ok(Some(range))
    }

    /// Log rotation for containers whose config sets none.
    pub fn with_log_defaults(mut self, max_bytes: Option<u64>, max_files: Option<u32>) -> Runtime {
        self.log_defaults = (max_bytes, max_files);
        self
    }

    /// The log rotation a container gets: its own, else the daemon's.
    fn log_rotation(&self, cfg: &ContainerConfig) -> (Option<u64>, Option<u32>) {
        if cfg.io.log_max_bytes.is_some() {
            (cfg.io.log_max_bytes, cfg.io.log_max_files)
        } else {
            (self.log_defaults.0, cfg.io.log_max_files.or(self.log_defaults.1))
        }
    }

    /// Creates the bundle and rootfs dirs, then starts a shim that mounts the
    /// overlay and creates and starts the container. Returns once the
    /// container runs, or with the shim's setup error. A failure leaves nothing.
    pub async fn start(&self, cfg: &ContainerConfig) -> Result<Started> {
        // The shim and libcontainer's intermediate move processes between
        // cgroups in a few ms: the grace period starts now.
        cgroup::prewarm_migration();
        let result = self.start_inner(cfg).await;
        if result.is_err() {
            // Roll back: the shim cleans up after itself, but the bundle and
            // any half-made state are ours.
            let _ = self.cleanup(&cfg.id);
        }
        result
    }

    async fn start_inner(&self, cfg: &ContainerConfig) -> Result<Started> {
        let id = cfg.id.as_str();
        profile::mark(id, "runtime start");
        check_mount_destinations(cfg)?;
        // A previous run's leftovers (exit record, bundle, a crashed shim's
        // mount or cgroup) go first. Cleanup removes the run dir last, so
        // without one there is nothing to clean.
        if self.layout.run_dir(id).exists() || self.layout.lc_root().join(id).exists() {
            self.cleanup(id)?;
        }
        let l = &self.layout;
        let data = l.data_dir(id);
        for dir in [
            l.bundle(id),
            l.rootfs(id),
            data.join("upper"),
            data.join("work"),
            l.lc_root(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(id, "create", &dir))?;
        }
        let rootfs = l.rootfs(id);
        let range = self.userns_range(cfg)?;
        let resolved;
        let cfg = match range {
            Some(r) => {
                resolved = ContainerConfig {
                    userns: userns::UsernsMode::Range(r),
                    ..cfg.clone()
                };
                &resolved
            }
            None => cfg,
        };
        if let Some(range) = range {
            give_volumes_to(cfg, &range)?;
        }
        let init = match cfg.isolation.init {
            true => isolation::write_init(&self.layout.run).map_err(io_err(
                id,
                "write berth's init in",
                &self.layout.run,
            ))?,
            false => None,
        };
        let host = HostInfo {
            isolation: isolation::resolve(id, &cfg.isolation, init.as_deref())?,
            ..self.host.clone()
        };
        let spec = spec::build(cfg, &rootfs.to_string_lossy(), &l.cgroup_path(id), &host)?;
        let config_json = l.bundle(id).join("config.json");
        let spec_bytes = serde_json::to_vec(&spec).map_err(|e| RuntimeError::Spec {
            id: id.into(),
            message: e.to_string(),
        })?;
        fs::write(&config_json, spec_bytes).map_err(io_err(id, "write", &config_json))?;
        let (log_max_bytes, log_max_files) = self.log_rotation(cfg);
        let shim_cfg = ShimConfig {
            id: id.to_string(),
            lc_root: l.lc_root(),
            bundle: l.bundle(id),
            rootfs,
            lower_dirs: cfg.lower_dirs.clone(),
            upper: data.join("upper"),
            work: data.join("work"),
            log: l.log_file(id),
            state_file: l.state_file(id),
            exit_file: l.exit_file(id),
            cgroup_path: l.cgroup_path(id),
            userns: range,
            join_netns: match (&cfg.netns, range) {
                (NetnsMode::Path(path), Some(_)) => Some(path.clone()),
                _ => None,
            },
            io: InitIo {
                log_max_bytes,
                log_max_files,
                ..cfg.io
            },
            profile: profile::enabled(),
        };
        let shim_json = l.run_dir(id).join("shim.json");
        let bytes = serde_json::to_vec(&shim_cfg).map_err(|e| RuntimeError::Spec {
            id: id.into(),
            message: e.to_string(),
        })?;
        fs::write(&shim_json, bytes).map_err(io_err(id, "write", &shim_json))?;
        let shim_log = l.run_dir(id).join("shim.log");
        let shim_stderr = fs::File::create(&shim_log).map_err(io_err(id, "create", &shim_log))?;
        profile::mark(id, "bundle written");

        // The shim is forked by the zygote (see `zygote`), which reaps it:
        // the daemon watches it through its pidfd (see `reap_shim`).
        let spawn_err = |source| RuntimeError::SpawnShim { id: id.into(), source };
        let (report_r, report_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(std::io::Error::from(e)))?;
        let null = fs::File::open("/dev/null").map_err(spawn_err)?;
        let request = serde_json::to_vec(&zygote::StartRequest { shim: shim_json })
            .map_err(|e| spawn_err(std::io::Error::other(e)))?;
        {
            use std::os::fd::AsRawFd;
            let fds = [null.as_raw_fd(), report_w.as_raw_fd(), shim_stderr.as_raw_fd()];
            self.fork_shim(&request, &fds).map_err(spawn_err)?;
        }
        // Only the shim holds the write end now: its exit before a report
        // is an EOF here.
        drop((report_w, null, shim_stderr));
        profile::mark(id, "shim forked");
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(report_r).map_err(spawn_err)?;
        let mut line = String::new();
        let read = BufReader::new(pipe).read_line(&mut line).await;
        let report: ShimReport = match read {
            Ok(n) if n > 0 => serde_json::from_str(&line).unwrap_or(ShimReport::Error {
                error: format!("shim sent an unreadable report: {line:?}"),
                exit_code: None,
            }),
            _ => {
                let detail = fs::read_to_string(&shim_log).unwrap_or_default();
                return Err(RuntimeError::Setup {
                    id: id.into(),
                    message: format!("shim exited before the container started: {}", detail.trim()),
                });
            }
        };
        profile::mark(id, "shim reported");
        match report {
            ShimReport::Ready { record } => Ok(Started { record }),
            ShimReport::Error { error, exit_code } => Err(match exit_code {
                Some(code) => RuntimeError::CannotExecute {
                    id: id.into(),
                    message: error,
                    code,
                },
                None => RuntimeError::Setup {
                    id: id.into(),
                    message: error,
                },
            }),
        }
    }

    /// Observes one container from its run dir and /proc.
    pub fn probe(&self, id: &str) -> Probe {
        let dir = self.layout.run_dir(id);
        if !dir.exists() {
            return Probe::Absent;
        }
        if let Some(exit) = read_json::<ExitRecord>(&self.layout.exit_file(id)) {
            return Probe::Exited(exit);
        }
        match read_json::<RunRecord>(&self.layout.state_file(id)) {
            Some(rec) => {
                let shim_alive = proc::alive_with_start(rec.shim_pid, rec.shim_start);
                let init_alive = proc::alive_with_start(rec.init_pid, rec.init_start);
                if shim_alive && init_alive {
                    Probe::Running(rec)
                } else if shim_alive {
                    // The init exited and the shim is finishing its record.
                    Probe::Starting
                } else if let Some(exit) = read_json::<ExitRecord>(&self.layout.exit_file(id)) {
                    // The shim wrote the record between our two reads.
                    Probe::Exited(exit)
                } else {
                    Probe::Lost {
                        init_alive,
                        record: Some(rec),
                    }
                }
            }
            None => {
                let shim_alive = read_shim_pid(&dir).is_some_and(|(pid, start)| proc::alive_with_start(pid, start));
                if shim_alive {
                    Probe::Starting
                } else {
                    Probe::Lost {
                        init_alive: false,
                        record: None,
                    }
                }
            }
        }
    }

    /// Sends `signal` to the container's init, after checking it is still the
    /// process we started (pid reuse).
    pub fn signal(&self, id: &str, signal: nix::sys::signal::Signal) -> Result<()> {
        if let Some(rec) = read_json::<RunRecord>(&self.layout.state_file(id)) {
            if proc::alive_with_start(rec.init_pid, rec.init_start) {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.init_pid), signal).map_err(|source| {
                    RuntimeError::Signal {
                        id: id.into(),
                        signal: signal.to_string(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws every process of the container with the
    /// cgroup freezer, through libcontainer (v1 `freezer.state`, v2
    /// `cgroup.freeze`), which also records the state for its own checks
    /// (an exec into a frozen container is refused there). Blocking: the v1
    /// freezer is polled until the state settles.
    pub fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let setup = |message: String| RuntimeError::Setup { id: id.into(), message };
        let mut container = libcontainer::container::Container::load(self.layout.lc_root().join(id))
            .map_err(|e| setup(format!("cannot load the container's state: {e}")))?;
        let result = if frozen { container.pause() } else { container.resume() };
        result.map_err(|e| {
            setup(format!(
                "cannot {} the container: {}",
                if frozen { "pause" } else { "unpause" },
                shim::describe_error(&e)
            ))
        })
    }

    /// Changes a running container's cgroup limits in place (`berth
    /// update`): the same writes libcontainer makes at create, its device
    /// rules left as they are. A limit left out is left as it is.
    pub fn update_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
        let resources = spec::limit_resources(id, limits, self.host.cgroup, None)?;
        let setup = |message: String| RuntimeError::Setup {
            id: id.to_string(),
            message,
        };
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: PathBuf::from(self.layout.cgroup_path(id)),
            systemd_cgroup: false,
            container_name: id.to_string(),
        })
        .map_err(|e| setup(format!("cannot open its cgroups: {e}")))?;
        manager
            .apply(&ControllerOpt {
                resources: &resources,
                disable_oom_killer: limits.oom_kill_disable,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| setup(format!("cannot change its cgroup limits: {e}")))
    }

    /// Whether the container's processes are frozen now (read from the cgroup).
    pub fn is_frozen(&self, id: &str) -> bool {
        cgroup::is_frozen(&self.layout.cgroup_path(id))
    }

    /// The container's counters (see `stats::sample`).
    pub fn stats(&self, id: &str, init_pid: i32) -> stats::Sample {
        stats::sample(&self.layout.cgroup_path(id), init_pid)
    }

    /// The container's processes.
    pub fn processes(&self, id: &str) -> Vec<stats::ProcessInfo> {
        stats::processes(&self.layout.cgroup_path(id))
    }

    /// The OCI spec the container runs with (its bundle's config.json).
    pub fn oci_spec(&self, id: &str) -> Option<libcontainer::oci_spec::runtime::Spec> {
        read_json(&self.layout.bundle(id).join("config.json"))
    }

    /// The executable shims are started from.
    pub fn shim_exe(&self) -> &Path {
        &self.shim_exe
    }

    /// Kills every process in the container's cgroup (a shim-less orphan).
    pub fn kill_all(&self, id: &str) {
        cgroup::kill_all(&self.layout.cgroup_path(id));
    }

    /// Removes everything of a stopped container's run (mount, cgroup,
    /// libcontainer state, run dir) but keeps its data dir (writable layer,
    /// logs) for a restart. Keeps going on errors and reports them all.
    /// Idempotent: what is already gone counts as done.
    pub fn cleanup(&self, id: &str) -> Result<()> {
        if profile::enabled() {
            profile::log_shim_marks(id, &self.layout.run_dir(id));
            profile::mark(id, "cleanup start");
        }
        let mut errors = Vec::new();
        let rootfs = self.layout.rootfs(id);
        if proc::is_mountpoint(&rootfs) {
            if let Err(e) = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
                errors.push(format!("unmount {}: {e}", rootfs.display()));
            }
        }
        let cg = self.layout.cgroup_path(id);
        cgroup::kill_all(&cg);
        errors.extend(cgroup::remove(&cg));
        for dir in [self.layout.lc_root().join(id), self.layout.run_dir(id)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors.push(format!("remove {}: {e}", dir.display())),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Cleanup { id: id.into(), errors })
        }
    }

    /// `cleanup` plus the data dir: nothing of the container remains.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut errors = match self.cleanup(id) {
            Ok(()) => Vec::new(),
            Err(RuntimeError::Cleanup { errors, .. }) => errors,
            Err(e) => vec![e.to_string()],
        };
        profile::mark(id, "cleaned up");
        let data = self.layout.data_dir(id);
        match fs::remove_dir_all(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("remove {}: {e}", data.display())),
        }
        profile::mark(id, "data dir removed");
        // The per-daemon cgroup parent goes when its last child does.
        cgroup::remove_parent(&format!("/{}", self.layout.prefix));
        profile::mark(id, "removed");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Cleanup { id: id.into(), errors })
        }
    }

    /// Ids with a run dir, for live restore and orphan collection.
    pub fn list_run_dirs(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.layout.run.join("containers")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

/// Reaps a shim if it is our child; an adopted shim (after a daemon
/// restart) is not, and that is fine.
pub fn reap_shim(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

fn read_shim_pid(dir: &Path) -> Option<(i32, u64)> {
    let text = fs::read_to_string(dir.join("shim.pid")).ok()?;
    let (pid, start) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// The one line a shim writes to its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShimReport {
    Ready {
        record: RunRecord,
    },
    Error {
        error: String,
        /// 127 or 126 when the command itself cannot be run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

/// Docker's exit code for a command that cannot be run, from libcontainer's
/// check of the executable (made inside the container, after pivot_root, so
/// it resolves PATH and symlinks as the container sees them): 127 when it is
/// not found, 126 when it is not executable. Its error carries no kind, only
/// these texts (libcontainer `workload/default.rs`), as Docker's CLI also
/// goes by runc's message.
pub fn cannot_execute_code(message: &str) -> Option<i32> {
    if message.contains("not found in $PATH") {
        Some(127)
    } else if message.contains("does not have correct permissions")
        || message.contains("failed to check permissions for executable")
    {
        Some(126)
    } else {
        None
    }
}

/// A pidfd for `pid`, readable once the process exits.
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits (async) until the process behind `pidfd` has exited.
pub async fn wait_pidfd(pidfd: OwnedFd) -> std::io::Result<()> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open and the same
    // for the AsyncFd's whole life.
    let afd = unsafe { tokio::io::unix::AsyncFd::register(pidfd) }.map_err(std::io::Error::from)?;
    let _ready = afd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_rotates_its_log_as_it_says_else_as_the_daemon_does() {
        let rt =
            Runtime::new(Layout::new("/r".into(), "/run".into()), "/b".into()).with_log_defaults(Some(100), Some(3));
        let own = ContainerConfig {
            io: InitIo {
                log_max_bytes: Some(10),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(rt.log_rotation(&own), (Some(10), None));
        assert_eq!(rt.log_rotation(&ContainerConfig::default()), (Some(100), Some(3)));
        let files_only = ContainerConfig {
            io: InitIo {
                log_max_files: Some(5),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(rt.log_rotation(&files_only), (Some(100), Some(5)));
    }

    #[test]
    fn a_mount_destination_through_an_image_symlink_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var")).unwrap();
        std::os::unix::fs::symlink("/run", dir.path().join("var/run")).unwrap();
        let cfg = ContainerConfig {
            id: "web".into(),
            lower_dirs: vec![dir.path().into()],
            mounts: vec![MountSpec {
                destination: "/var/run/app".into(),
                source: "/tmp".into(),
                kind: "bind".into(),
                options: vec![],
                volume: false,
            }],
            ..Default::default()
        };
        let err = check_mount_destinations(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("/var/run/app is a symlink in the image (/var/run -> /run)"),
            "{err}"
        );
        let ok = ContainerConfig {
            mounts: vec![MountSpec {
                destination: "/var/lib/data".into(),
                ..cfg.mounts[0].clone()
            }],
            ..cfg
        };
        assert!(check_mount_destinations(&ok).is_ok());
    }
}
