//! The seams between the engine and the host: everything the reconciler does
//! to or learns from the kernel goes through these traits, handed to
//! [`super::Engine::new`] in a [`Host`]. `linux.rs` implements them over the
//! real runtime, image store and volume directories; `fake.rs` (tests only)
//! records every call and answers from a script, so reconcile decisions are
//! tested without root.
//!
//! # Terms
//! A container is known by its id (the Container object's name). Its *shim*
//! is the per-container supervisor process; its *init* is the container's
//! first process. [`Probe`] is what the host says about both right now.
//!
//! # Guarantees the engine relies on
//! - `start` either returns a running container or leaves nothing behind.
//! - `remove` and volume `remove` treat "already gone" as success.
//! - `wait_shim` resolves once the shim has exited, at once if it already has.
//!
//! No method has a default body: an implementation (or a wrapper such as
//! `ids::Named`) that forgot one would quietly answer "nothing" instead of
//! failing to compile.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::Spec;
use nix::sys::signal::Signal;

use crate::image::{self, ImageRecord, ImageSummary};
use crate::runtime::exec::{ExecProcess, ExecSpec};
use crate::runtime::{self, ContainerConfig, Probe, RunRecord};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Containers: start, observe, signal, tear down.
pub trait ContainerHost: Send + Sync {
    /// Creates and starts a container; returns once its init runs.
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>>;
    /// What the kernel and the run dir say about `id` right now.
    fn probe(&self, id: &str) -> Probe;
    fn signal(&self, id: &str, signal: Signal) -> runtime::Result<()>;
    /// SIGKILLs every process in the container's cgroup.
    fn kill_all(&self, id: &str);
    /// Unmounts and removes the run-time state of a container whose shim is gone.
    fn cleanup(&self, id: &str) -> runtime::Result<()>;
    /// Removes everything of a stopped container (blocking).
    fn remove(&self, id: &str) -> runtime::Result<()>;
    /// Ids of every container with a run dir.
    fn list(&self) -> Vec<String>;
    /// The container's log file (shown by `inspect`; read through `open_log`).
    fn log_file(&self, id: &str) -> PathBuf;
    /// A reader of the container's log from its last `tail` lines (from the
    /// oldest kept line when `None`) on, through rotations (blocking). An
    /// absent log reads as empty.
    fn open_log(&self, id: &str, tail: Option<usize>) -> std::io::Result<Box<dyn LogSource>>;
    /// The container's writable layer (its overlay upper dir).
    fn upper_dir(&self, id: &str) -> PathBuf;
    /// Connects to the stdio of running container `id` (blocking), with
    /// `tty` also taking its pty master. None when the container has
    /// neither a tty nor an open stdin: there is nothing to attach to.
    fn attach(&self, id: &str, tty: bool) -> std::io::Result<Option<AttachStreams>>;
    /// Resolves once the shim of `run` has exited (and reaps it).
    fn wait_shim(&self, run: RunRecord) -> BoxFuture<'static, ()>;
    /// Changes a running container's cgroup limits in place (blocking).
    fn update_limits(&self, id: &str, limits: &crate::runtime::Limits) -> runtime::Result<()>;
    /// Freezes or thaws every process of a running container (blocking).
    fn freeze(&self, id: &str, frozen: bool) -> runtime::Result<()>;
    /// Copies between a running container (init `init_pid`) and the host:
    /// into the container when `into_container` (see `runtime::copy`).
    /// Returns the bytes copied.
    fn copy(
        &self,
        init_pid: i32,
        into_container: bool,
        container_path: &Path,
        host_path: &Path,
    ) -> std::io::Result<u64>;
    /// A regular file of a running container (init `init_pid`), resolved
    /// inside its root (see `runtime::copy::read_file`).
    fn read_file(&self, init_pid: i32, path: &Path) -> std::io::Result<String>;
    /// The counters of a running container whose init is `init_pid`.
    fn stats(&self, id: &str, init_pid: i32) -> Option<runtime::stats::Sample>;
    /// The processes of a container; none when it does not run.
    fn processes(&self, id: &str) -> Vec<runtime::stats::ProcessInfo>;
    /// The OCI spec a container runs with, while its bundle exists.
    fn oci_spec(&self, id: &str) -> Option<Spec>;
    /// Whether the container's processes are frozen (read from the cgroup).
    fn is_frozen(&self, id: &str) -> bool;
    /// Writes the container's root filesystem, its writable layer over
    /// `lower_dirs` (its image's, top first), as one tar at `out`: whole or
    /// not at all (blocking).
    fn export(&self, id: &str, lower_dirs: &[PathBuf], out: &Path) -> std::io::Result<()>;
    /// Starts a process in running container `id` (see `runtime::exec`).
    fn exec(&self, id: &str, process: ExecSpec, attach: bool, stdin: bool) -> runtime::Result<ExecProcess>;
}

/// A connection to a container's stdio (see [`ContainerHost::attach`]).
#[derive(Debug)]
pub struct AttachStreams {
    /// The byte stream: the pty with a tty, else the shim's frames out and
    /// raw stdin in.
    pub stream: std::os::fd::OwnedFd,
    /// With a tty, its master (for resizes).
    pub master: Option<std::os::fd::OwnedFd>,
}

/// A container's log as it grows (see [`ContainerHost::open_log`]).
pub trait LogSource: Send {
    /// The next lines written, a chunk at most; none once the reader has
    /// caught up (more may come later).
    fn next_lines(&mut self) -> BoxFuture<'_, std::io::Result<Vec<runtime::logs::LogLine>>>;
}

/// Builds an Image object's Dockerfile. The daemon provides it: a build
/// runs its steps in containers, through the commands above this layer.
pub trait ImageBuilder: Send + Sync {
    /// Builds `opts`; the image's id, or why not (the step, its command,
    /// its exit code).
    fn build<'a>(
        &'a self,
        engine: &'a std::sync::Arc<super::Engine>,
        opts: crate::build::BuildOptions,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// Rolls back the revision of `source` that brought a rollout which failed
/// (`onFailure: rollback`): the revision before it is applied again and the
/// failed one is marked so, with `reason`. The daemon provides it, from the
/// command layer that keeps revisions.
pub trait RevisionRollback: Send + Sync {
    fn roll_back(
        &self,
        engine: std::sync::Arc<super::Engine>,
        source: String,
        reason: String,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// Images: pull, import, load, commit, list, remove.
pub trait ImageHost: Send + Sync {
    /// Pulls a registry reference (`platform` default `linux/amd64`); the
    /// reference then names the image. Nothing is unpacked on error.
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        progress: image::Progress,
    ) -> BoxFuture<'a, image::Result<ImageRecord>>;
    /// [`ImageHost::pull`] with a client's credentials instead of those
    /// the daemon's `config.json` holds.
    fn pull_as<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        progress: image::Progress,
        credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<ImageRecord>>;
    /// A pulled image by reference or id.
    fn image(&self, name: &str) -> Option<ImageRecord>;
    /// Every pulled image with its references; an error when the store's
    /// index or a record does not read (never a list missing names).
    fn images(&self) -> image::Result<Vec<ImageSummary>>;
    /// Each layer's unpacked size in bytes, bottom first, as `docker images`
    /// counts it (blocking), one per chain id.
    fn layer_sizes(&self, record: &ImageRecord) -> Vec<u64>;
    /// The image's overlay lower dirs, top first.
    fn lower_dirs(&self, record: &ImageRecord) -> image::Result<Vec<PathBuf>>;
    /// A regular file of the image's root filesystem (`/etc/passwd`).
    fn image_file(&self, record: &ImageRecord, path: &str) -> Option<String>;
    /// Makes `target` name what `source` names.
    fn tag(&self, source: &str, target: &str) -> image::Result<ImageRecord>;
    /// Removes a reference, and the image with its last one (blocking).
    /// Returns the image and whether it was deleted.
    fn remove_image(&self, name: &str) -> image::Result<(ImageRecord, bool)>;
    /// Pushes the image `source` names to `target`; returns the manifest digest.
    fn push<'a>(&'a self, source: &'a str, target: Option<&'a str>) -> BoxFuture<'a, image::Result<String>>;
    /// [`ImageHost::push`] with a client's credentials.
    fn push_as<'a>(
        &'a self,
        source: &'a str,
        target: Option<&'a str>,
        credentials: Option<&'a image::Credentials>,
    ) -> BoxFuture<'a, image::Result<String>>;
    /// Removes images no reference names (but those in `in_use`), then the
    /// blobs and snapshots nothing uses (blocking).
    fn prune(&self, in_use: &std::collections::HashSet<String>) -> image::Result<Vec<ImageRecord>>;
    /// Writes images into a tar at `out` (OCI layout, plus Docker's
    /// manifest.json unless `oci_only`); blocking.
    fn save(&self, names: &[String], out: &Path, oci_only: bool) -> image::Result<()>;
    /// Loads a `docker save` or OCI archive; blocking. Returns the images
    /// with the references they got.
    fn load(&self, archive: &Path) -> image::Result<Vec<(ImageRecord, Vec<String>)>>;
    /// Checks credentials against a registry and stores them for pulls and pushes.
    fn login<'a>(&'a self, registry: &'a str, username: &'a str, password: &'a str)
        -> BoxFuture<'a, image::Result<()>>;
    /// Forgets a registry's credentials; whether there were any.
    fn logout(&self, registry: &str) -> image::Result<bool>;
    /// A root filesystem tar as a one-layer image (blocking), named
    /// `reference`, or unnamed (found by its id) without one; the tar must
    /// hash to `expected` when given, checked before anything is unpacked.
    fn import_image(
        &self,
        tar: &Path,
        reference: Option<&str>,
        expected: Option<&str>,
        cmd: Vec<String>,
    ) -> image::Result<ImageRecord>;
    /// The image's config blob as stored (verified).
    fn config_blob(&self, record: &ImageRecord) -> Option<Vec<u8>>;
    /// A new image: `base` plus the tree `upper` as a layer, with `config`,
    /// named `reference` (blocking).
    fn commit(
        &self,
        base: &ImageRecord,
        upper: &Path,
        config: image::ImageConfig,
        reference: &str,
    ) -> image::Result<ImageRecord>;
    /// A new unnamed image: `base` (`None`: scratch) plus the tree `layer`
    /// if given, with `config` and one more history entry (blocking).
    fn derive(
        &self,
        base: Option<&ImageRecord>,
        layer: Option<&Path>,
        config: image::ImageConfig,
        history: image::HistoryEntry,
    ) -> image::Result<ImageRecord>;
    /// The image a build step with this cache key made, while its layers
    /// are all there.
    fn cache_get(&self, key: &str) -> image::Result<Option<ImageRecord>>;
    fn cache_put(&self, key: &str, record: &ImageRecord) -> image::Result<()>;
    /// Removes the build cache and the layers only it kept: entries, bytes.
    fn cache_prune(&self) -> image::Result<(usize, u64)>;
    fn cache_usage(&self) -> image::Result<image::CacheUsage>;
    /// Puts a cached image's record back among the images if it is not there.
    fn restore_record(&self, record: &ImageRecord) -> image::Result<()>;
    /// Removes an image record no reference names (its layers stay while
    /// the build cache holds them); whether it did.
    fn forget_unnamed(&self, id: &str) -> image::Result<bool>;
}

/// Named volumes: a directory each.
pub trait VolumeHost: Send + Sync {
    /// The directory containers mount.
    fn path(&self, name: &str) -> PathBuf;
    fn create(&self, name: &str) -> std::io::Result<PathBuf>;
    /// Removes the volume and its data; a missing volume is not an error.
    fn remove(&self, name: &str) -> std::io::Result<()>;
    fn exists(&self, name: &str) -> bool;
    /// On a volume's first use: when it is empty and was never populated,
    /// copies the image's directory at the mount path into it, as Docker
    /// does: `from` are the layers' directories that make it up, top first
    /// (see `image::merged::lookup`). Returns whether it copied. Blocking.
    fn populate(&self, name: &str, from: &[PathBuf]) -> std::io::Result<bool>;
    /// Makes (or keeps) anonymous volume `id` for `path` of `container`,
    /// recording its owner beside its data. Blocking.
    fn create_anonymous(&self, id: &str, container: &str, path: &str) -> std::io::Result<PathBuf>;
    /// Every anonymous volume there is.
    fn anonymous(&self) -> Vec<AnonymousVolumeInfo>;
    /// Mounts what the local driver's options ask for on the volume's
    /// directory, unless it is mounted already. Blocking.
    fn mount(&self, name: &str, m: &LocalMount) -> std::io::Result<()>;
    /// Whether something is mounted on the volume's directory.
    fn mounted(&self, name: &str) -> bool;
}

/// What the local driver mounts on a volume's directory (Docker's
/// `volume create -o type=… -o device=… -o o=…`), sizes already in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMount {
    /// The filesystem type (`tmpfs`, `ext4`…); `none` for a bind.
    pub fstype: String,
    /// What is mounted: `tmpfs`, a block device or a host directory.
    pub device: String,
    /// `o`, split at commas.
    pub options: Vec<String>,
}

impl LocalMount {
    /// A bind of a host directory (`o=bind` or `o=rbind`).
    pub fn is_bind(&self) -> bool {
        self.options.iter().any(|o| o == "bind" || o == "rbind")
    }
}

/// An anonymous volume as its directory records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnonymousVolumeInfo {
    /// Its name (64 hex digits).
    #[serde(default)]
    pub id: String,
    /// The container it was made for (removed with it).
    pub container: String,
    /// Where that container mounts it.
    pub path: String,
}

/// Networks: defined beside the code that applies network plans through it.
pub use crate::network::NetworkHost;

/// What the engine is built with.
#[derive(Clone)]
pub struct Host {
    pub containers: Arc<dyn ContainerHost>,
    pub images: Arc<dyn ImageHost>,
    pub volumes: Arc<dyn VolumeHost>,
    pub networks: Arc<dyn NetworkHost>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}
