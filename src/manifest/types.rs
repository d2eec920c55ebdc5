//! The four kinds of berth objects as Rust types. These types are the single
//! source of truth: serde parses them, schemars turns them into `schema/`, and
//! `plan` hashes their canonical JSON.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity::{Cpus, Duration, Memory, MemorySwap};

/// The kind of an object; identity is (kind, name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    Image,
    Container,
    Network,
    Volume,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Image, Kind::Container, Kind::Network, Kind::Volume];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "Image",
            Kind::Container => "Container",
            Kind::Network => "Network",
            Kind::Volume => "Volume",
        }
    }

    /// Parses the exact spelling `as_str` gives (as stored).
    pub fn parse_exact(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Parses a kind case-insensitively, also accepting plurals (`containers`),
    /// as `kubectl get` does.
    pub fn parse_loose(s: &str) -> Option<Kind> {
        let lower = s.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(singular))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a document came from: file name as given to the parser, and the
/// 1-based line and column of the document's first key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// `metadata:` of every document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// DNS label: lower-case letters, digits and `-`, at most 63 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One parsed, typed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub metadata: Metadata,
    pub spec: Spec,
    pub origin: Origin,
}

impl Object {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "spec")]
#[allow(clippy::large_enum_variant)] // few objects live at once; boxing would only add noise
pub enum Spec {
    Image(ImageSpec),
    Container(ContainerSpec),
    Network(NetworkSpec),
    Volume(VolumeSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Image(_) => Kind::Image,
            Spec::Container(_) => Kind::Container,
            Spec::Network(_) => Kind::Network,
            Spec::Volume(_) => Kind::Volume,
        }
    }
}

/// Where an image comes from. Exactly one source must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    /// Path of a tar of a root filesystem on the daemon's host, imported once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
    /// Expected `sha256:<hex>` of the import tar; checked before unpacking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Registry reference to pull: `registry/repo:tag` or `registry/repo@sha256:…`
    /// (`busybox` alone means `docker.io/library/busybox:latest`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// When `ref` is pulled: `IfNotPresent` (the default), `Always`, `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// `os/arch[/variant]` to pull from a multi-platform image (default `linux/amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Absolute path of an archive to load: `docker save` output or an OCI
    /// archive (the first image in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// Build it from a Dockerfile: `{context: ./app, dockerfile: Dockerfile,
    /// args: {K: V}, target: STAGE}`, paths relative to the manifest file.
    /// Rebuilt when the context's files or the Dockerfile change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
    /// Default command of containers made from this image (replaces a
    /// pulled image's `Cmd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Default environment of containers made from this image (over a
    /// pulled image's `Env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// An Image built from a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageBuild {
    /// The context directory, relative to the manifest file (or absolute).
    pub context: String,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build args (`--build-arg`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Build up to this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The content digest of the context and Dockerfile, filled in by the
    /// daemon at each pass (never written in a manifest): the spec hash
    /// covers it, so a changed source file rebuilds the image and replaces
    /// the containers that use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub context_digest: Option<String>,
}

/// When an Image's `ref` is pulled from its registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull only when no image has this reference locally.
    #[default]
    IfNotPresent,
    /// Pull every time the Image is created or replaced.
    Always,
    /// Never pull: the image must be there already.
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
    /// As `always`; a container stopped by hand stays stopped, across
    /// daemon restarts too (berth keeps every stop, so `always` does as well).
    UnlessStopped,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependencyCondition {
    /// The dependency's process has been started.
    #[default]
    Started,
    /// The dependency's healthcheck passes.
    Healthy,
    /// The dependency ran to completion with exit code 0.
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub condition: DependencyCondition,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// CPU limit in cores (`0.5`, `2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Memory limit (`100Mi`, `1Gi`, `500000000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// Relative CPU weight (2–262144, Docker's default is 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    // Docker run parity (issue 20, resources): the rest of `docker run`'s
    // resource flags, each under the flag's own name.
    /// Memory plus swap (`--memory-swap`): at least `memory`, which it
    /// needs; `unlimited` for unlimited swap. Equal to `memory`: no swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<MemorySwap>,
    /// Soft limit (`--memory-reservation`): the kernel reclaims down to it
    /// under memory pressure. Below `memory` when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<Memory>,
    /// Do not OOM-kill the container's processes (`--oom-kill-disable`):
    /// they wait for memory instead. cgroup v1 only; refused on v2, which
    /// has no such switch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_kill_disable: bool,
    /// CFS period in microseconds (`--cpu-period`, 1000–1000000); not with
    /// `cpus`, which sets period and quota itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (`--cpu-quota`, at least 1000);
    /// not with `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<u64>,
    /// CPUs the container may run on (`--cpuset-cpus`), e.g. `0-2,4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (`--cpuset-mems`), e.g. `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<String>,
    /// Relative block I/O weight (`--blkio-weight`, 10–1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    /// Block I/O weight per device (`--blkio-weight-device`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_weight_device: Vec<DeviceWeight>,
    /// Read rate limit per device in bytes per second (`--device-read-bps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<DeviceRate>,
    /// Write rate limit per device in bytes per second (`--device-write-bps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<DeviceRate>,
    /// Read operations per second per device (`--device-read-iops`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<DeviceIops>,
    /// Write operations per second per device (`--device-write-iops`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<DeviceIops>,
}

/// A block device's I/O weight, as Docker's `--blkio-weight-device
/// /dev/sda:200`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceWeight {
    /// The block device on the host, e.g. `/dev/sda`.
    pub path: String,
    /// 10–1000.
    pub weight: u16,
}

/// A block device's byte rate limit, as Docker's `--device-read-bps
/// /dev/sda:1mb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceRate {
    /// The block device on the host, e.g. `/dev/sda`.
    pub path: String,
    /// Bytes per second, e.g. `1Mi`.
    pub rate: Memory,
}

/// A block device's operations-per-second limit, as Docker's
/// `--device-read-iops /dev/sda:1000`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceIops {
    /// The block device on the host, e.g. `/dev/sda`.
    pub path: String,
    /// Operations per second, at least 1.
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortMapping {
    /// The host IPv4 address the port is published on (Docker's `-p
    /// IP:HOST:CONTAINER`); every local address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The host's port; `0`: an ephemeral port, chosen free at each start
    /// (Docker's `-p 80`), which `inspect` shows.
    pub host: u16,
    pub container: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl PortMapping {
    /// `tcp` unless told `udp`.
    pub fn proto(&self) -> &str {
        self.protocol.as_deref().unwrap_or("tcp")
    }

    /// The host address, None for every address (and for text validation
    /// refuses, so nothing unvalidated narrows a publication).
    pub fn host_addr(&self) -> Option<std::net::Ipv4Addr> {
        self.host_ip.as_deref().and_then(|t| t.parse().ok())
    }

    /// Whether both cannot be published at once: the same port and
    /// protocol, unless both name an address and the addresses differ (the
    /// kernel tells 127.0.0.1:80 and 127.0.0.2:80 apart, but an
    /// every-address publication takes the port on all of them).
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        // Ephemeral ports are chosen apart at start.
        self.host != 0
            && self.host == other.host
            && self.proto() == other.proto()
            && match (self.host_addr(), other.host_addr()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// `[IP:]PORT/PROTO`, as errors name a publication.
    pub fn host_label(&self) -> String {
        match self.host_addr() {
            Some(ip) => format!("{ip}:{}/{}", self.host, self.proto()),
            None => format!("{}/{}", self.host, self.proto()),
        }
    }
}

/// One mount: exactly one of `volume`, `hostPath`, `tmpfs` or `anonymous`
/// is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMount {
    /// A named Volume (`run -v NAME:/path` makes it on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Path inside the container of a tmpfs mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<String>,
    /// Path inside the container (for `volume` and `hostPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Size of a tmpfs mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Memory>,
    /// Permission bits of a tmpfs mount's root, in octal (`"1777"`, the
    /// default, or `"0700"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Mount propagation of a `hostPath` bind (Docker's `bind-propagation`;
    /// default `rprivate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
    /// A volume of this container's own at `path`, made on its first start
    /// and removed with it (Docker's `-v /path`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// Do not copy the image's content at `path` into a new, empty volume
    /// (Docker's `nocopy`, `volume-nocopy`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// Programs on a `tmpfs` mount cannot be run (`noexec`; Docker's
    /// `--tmpfs` default, which `run --tmpfs /p:exec` lifts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noexec: bool,
}

/// Another container whose mounts (volumes, anonymous volumes and host
/// binds, not tmpfs) this one mounts at the same paths, as Docker's
/// `--volumes-from NAME[:ro|rw]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumesFrom {
    /// The Container's name.
    pub container: String,
    /// Mount them all read-only; otherwise each keeps its own mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// How mount events propagate between a bind mount and its source, as
/// `mount(8)` and Docker name it; the `r` forms apply to submounts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    Rprivate,
    Shared,
    Rshared,
    Slave,
    Rslave,
}

impl Propagation {
    /// The OCI mount option.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
        }
    }
}

/// A tmpfs `mode`: octal digits of permission bits up to `7777`.
pub fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// A command run in the container to tell whether it works, as Docker's
/// HEALTHCHECK: `starting` until it first passes, `unhealthy` after
/// `retries` failures in a row (failures within `startPeriod` do not count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Healthcheck {
    /// The command (exec form); exit 0 is healthy.
    pub exec: Vec<String>,
    /// Time between checks (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// A check that runs longer is killed and counts as failed (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Failures in a row that make it unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Time after a start during which failures do not count (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// What to do once unhealthy (default `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unhealthy: Option<OnUnhealthy>,
}

/// What berth does with an unhealthy container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnUnhealthy {
    /// Only report it.
    #[default]
    None,
    /// Stop it and start it again (with the restart backoff).
    Restart,
    /// Stop it (kept stopped until `berth start`).
    Stop,
}

/// How a changed spec replaces a running container (`spec.update`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `stop-first` (the default): the old container stops, then the new
    /// one starts. `start-first`: the new one starts beside the old one and
    /// takes over its names and published ports once healthy.
    #[serde(default)]
    pub order: UpdateOrder,
    /// How long a start-first replacement may take to become healthy (or,
    /// without a healthcheck, to be running) before it counts as failed
    /// (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<Duration>,
    /// What a failed start-first replacement leads to (default `rollback`).
    #[serde(default)]
    pub on_failure: UpdateFailure,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UpdateFailure {
    /// The old container keeps serving, the container's previous spec is
    /// restored and the failure recorded.
    #[default]
    Rollback,
    /// The old container keeps serving; the new spec is not tried again
    /// until it changes.
    Pause,
    /// The new container takes over all the same.
    Continue,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Name of an Image object, or a registry reference (pulled when missing).
    pub image: String,
    /// Replaces the image's `Entrypoint` (and then drops its `Cmd`, as
    /// Docker's `--entrypoint` does); `[]` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The command to run (after the entrypoint); defaults to the image's `cmd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; names are looked up in the
    /// image's `/etc/passwd` and `/etc/group`. Defaults to the image's `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Bridge networks to join: `eth0` on the first, `eth1` on the next…
    /// Each is a name, or `{name, aliases, ipv4Address}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<NetworkAttachmentSchema>")]
    pub networks: Vec<NetworkAttachment>,
    /// `none` (the default without `networks`: only `lo`), `host`, or
    /// `container:NAME` (share that container's network namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Published ports: the host's port to the container's on its first network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// The init gets a pty, held by the shim (`berth attach`, `run -t`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep the init's stdin open for `berth attach` (`run -i`); with `tty`
    /// it is the pty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Time between SIGTERM and SIGKILL on stop (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    /// How a changed spec rolls out (default: stop-first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Log rotation (default: one file, unbounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogSpec>,
    // Storage (Docker's `--read-only`, `--shm-size`, `--volumes-from`).
    /// Mount the root filesystem read-only; mounts (volumes, tmpfs, `/dev`,
    /// `/dev/shm`) stay writable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_rootfs: bool,
    /// Size of `/dev/shm` (default `64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Memory>,
    /// Containers whose mounts this one shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<VolumesFrom>,
    // Isolation (Docker's --device, --pid, --ipc, --uts, --init, --stop-signal).
    /// Host devices made in the container (`--device`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Device cgroup rules beyond the defaults, as Docker's
    /// `--device-cgroup-rule`: `c|b|a MAJOR|* :MINOR|* r?w?m?` (e.g. `c 1:3 rwm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// PID namespace: its own (the default), `host`, or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// IPC namespace: its own (the default), `host`, or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// UTS namespace (host and domain name): its own (the default) or `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Run berth's minimal init as PID 1 (Docker's `--init`): it reaps
    /// orphaned zombies, forwards signals and exits with the command's code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The signal that asks it to stop (`SIGQUIT`, `QUIT` or a number);
    /// default the image's `StopSignal`, else `SIGTERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// The user namespace: `auto` gives the container a range of its own
    /// from the `containers` user's subordinate ids (its root is not the
    /// host's), `host` keeps the host's even when the daemon remaps; absent,
    /// the daemon's `--userns-remap` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UsernsMode>,
    // Identity and name resolution (Docker's --hostname, --domainname,
    // --add-host, --dns*, --mac-address, --restart on-failure:N).
    /// The container's hostname (default: its name; with `network: host`,
    /// the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its NIS domain name (`domainname` inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// More lines of its /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
    /// Its /etc/resolv.conf settings, each replacing what it would get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSpec>,
    /// The MAC address of its interface on its first network, as
    /// `02:42:ac:11:00:02` (a unicast address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// With `restartPolicy: on-failure`: restarts after this many failed
    /// runs in a row no more (Docker's `on-failure:N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_max_retries: Option<u32>,
    /// Publish every port its image EXPOSEs on an ephemeral host port
    /// (Docker's `-P`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
}

/// One more line of /etc/hosts: `host` resolves to `ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtraHost {
    /// A host name (letters, digits, `-`, `.`).
    pub host: String,
    /// An IPv4 or IPv6 address, or `host-gateway`: the gateway of the
    /// container's first network (the host, as seen from the container).
    pub ip: String,
}

/// Resolver settings written into the container's /etc/resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsSpec {
    /// Name server addresses (instead of the network's DNS server or the host's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Search domains (instead of the host's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options such as `ndots:2` (instead of the host's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A host device made in the container, as Docker's `--device
/// HOST[:CONTAINER[:PERMISSIONS]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    /// The device on the host, under `/dev`.
    pub host_path: String,
    /// Where it appears in the container (default: `hostPath`), under `/dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the container may do with it: letters of `rwm` (default `rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// A resource limit: the soft one, which the process may raise up to the hard one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ulimit {
    pub soft: u64,
    pub hard: u64,
}

/// A container's user namespace, as Docker's and podman's `--userns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsernsMode {
    /// The host's user namespace.
    Host,
    /// A distinct subordinate range of its own.
    Auto,
}

/// Log rotation, as Docker's json-file `max-size` and `max-file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogSpec {
    /// Rotate the log when it reaches this size, e.g. `10Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Memory>,
    /// Files kept in all, the current one included (default 1: a full log
    /// starts over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
}

/// Process security settings beyond Docker's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    /// Set no_new_privs, so that setuid programs gain nothing. Off by
    /// default, as in Docker (`--security-opt no-new-privileges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    // Isolation (Docker's --privileged, --cap-add, --security-opt seccomp, …).
    /// Every capability of the host's bounding set, every host device, no
    /// seccomp filter, no masked or read-only paths, writable `/sys` and
    /// cgroups (`--privileged`). Never implied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Capabilities added to Docker's default set: `NET_ADMIN` or
    /// `CAP_NET_ADMIN` (any case), or `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it (applied before `capAdd`, as Docker does
    /// with `ALL`); `ALL` drops every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `default` (Docker's profile), `unconfined` (no filter), or the
    /// absolute path of a profile in Docker's JSON format on the daemon's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    /// More groups of the process: names from the image's `/etc/group`, or gids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// Namespaced kernel parameters: `net.*` (not with `network: host`),
    /// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile`, `nproc`, `core`, …, as `ulimit`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// The OOM killer's preference for it, -1000 (never) to 1000 (first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

/// One network a container joins, with the names it answers to there
/// beside its own and, optionally, a fixed address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub name: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

impl NetworkAttachment {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl From<&str> for NetworkAttachment {
    fn from(name: &str) -> Self {
        NetworkAttachment {
            name: name.to_string(),
            ..Default::default()
        }
    }
}

impl From<String> for NetworkAttachment {
    fn from(name: String) -> Self {
        NetworkAttachment {
            name,
            ..Default::default()
        }
    }
}

impl PartialEq<&str> for NetworkAttachment {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other && self.aliases.is_empty() && self.ipv4_address.is_none()
    }
}

/// The long form of [`NetworkAttachment`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkAttachmentLong {
    pub name: String,
    /// More names the container answers to on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed address in the network's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
}

/// What the schema says a network attachment is: a name or the long form.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NetworkAttachmentSchema {
    Name(String),
    Long(NetworkAttachmentLong),
}

impl Serialize for NetworkAttachment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The short form when it says everything: specs (and their hashes)
        // of plain `networks: [a]` stay as they were.
        if self.aliases.is_empty() && self.ipv4_address.is_none() {
            s.serialize_str(&self.name)
        } else {
            NetworkAttachmentLong {
                name: self.name.clone(),
                aliases: self.aliases.clone(),
                ipv4_address: self.ipv4_address.clone(),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NetworkAttachment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NetworkAttachment;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a network name, or {name, aliases, ipv4Address}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NetworkAttachment, E> {
                Ok(v.into())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<NetworkAttachment, A::Error> {
                let long = NetworkAttachmentLong::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(NetworkAttachment {
                    name: long.name,
                    aliases: long.aliases,
                    ipv4_address: long.ipv4_address,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    /// `bridge` or `macvlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Containers get addresses only within this part of `subnet` (static
    /// `ipv4Address`es may be anywhere in `subnet`), e.g. `10.89.7.128/25`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// An IPv6 subnet beside `subnet` (dual stack). Reserved: refused until
    /// berth does IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// No route out of the host: no masquerade, no forwarding beyond the bridge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// MTU of the bridge and of containers' interfaces on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// macvlan: the host interface containers' macvlans hang off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Only `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options of the `local` driver, as Docker's `volume create -o`:
    /// `type` (a filesystem type such as `tmpfs`, or `none` for a bind),
    /// `device` (what to mount: `tmpfs`, or an absolute host path) and `o`
    /// (mount options: `size=100m`, `mode=1777`, `uid=`, `gid=`, `bind`,
    /// `ro`…). Without them the volume is a plain directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}
