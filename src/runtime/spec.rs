//! The OCI runtime spec berth writes for a container: Docker's safe defaults
//! plus what the caller asks for. Pure: builds data, writes nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use libcontainer::oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxBlockIo, LinuxBlockIoBuilder, LinuxBuilder, LinuxCapabilitiesBuilder,
    LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxIdMappingBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator,
    LinuxSyscallBuilder, LinuxThrottleDevice, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use libcontainer::oci_spec::OciSpecError;
use serde::{Deserialize, Serialize};

use super::{seccomp, RuntimeError};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The mounts every container gets, as Docker makes them: destination,
/// type, source, options.
const STANDARD_MOUNTS: [(&str, &str, &str, &[&str]); 7] = [
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
    ("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
    (
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ),
];

/// The character devices (major, minor; `None` for all minors) the device
/// cgroup lets through, all others being refused: the standard ones
/// libcontainer creates, null, zero, full, tty, random, urandom, ptmx and the
/// pts.
const ALLOWED_DEVICES: [(i64, Option<i64>); 8] = [
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (5, Some(0)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(2)),
    (136, None),
];

/// Docker's masked paths (moby `oci/defaults.go`).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The namespace flags of clone(2) (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC |
/// NEWUSER | NEWPID | NEWNET), Docker's mask: it refuses them without
/// SYS_ADMIN. CLONE_NEWTIME (0x80) lies in clone(2)'s exit-signal byte and
/// only works through clone3 and unshare, which are refused anyway.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// personality(2) values Docker allows: PER_LINUX, UNAME26 variants, and the query.
const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The network namespace the shim and every exec shim join before
/// libcontainer runs (a user namespace container on berth's network).
pub const JOIN_NETNS_ANNOTATION: &str = "berth.netns";

/// A bind, tmpfs or other mount inside the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub destination: String,
    pub source: String,
    /// `bind` or `tmpfs`.
    pub kind: String,
    pub options: Vec<String>,
    /// A volume of berth's (not a host path): under a user namespace its
    /// root directory is given to the container's root, as Docker's
    /// userns-remap does, so that the container can write to it.
    #[serde(default)]
    pub volume: bool,
}

/// cgroup limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<u32>,
    /// Memory plus swap in bytes; -1 is unlimited swap.
    pub memory_swap: Option<i64>,
    /// Soft limit in bytes.
    pub memory_reservation: Option<u64>,
    pub oom_kill_disable: bool,
    /// CFS period and quota in microseconds, when not from `cpus`.
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// blkio.weight (10–1000) and per device.
    pub blkio_weight: Option<u16>,
    pub blkio_weight_device: Vec<DeviceLimit>,
    pub device_read_bps: Vec<DeviceLimit>,
    pub device_write_bps: Vec<DeviceLimit>,
    pub device_read_iops: Vec<DeviceLimit>,
    pub device_write_iops: Vec<DeviceLimit>,
}

/// A limit on one block device, named by its numbers (the caller resolves
/// a device path); `value` is a weight, bytes or operations per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLimit {
    pub major: i64,
    pub minor: i64,
    pub value: u64,
}

/// The container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum NetnsMode {
    /// A fresh namespace made by libcontainer, with only `lo`.
    #[default]
    New,
    /// The host's own network.
    Host,
    /// Join the namespace mounted at this path (berth's, made beforehand).
    Path(PathBuf),
}

/// Everything the runtime needs to make one container. It knows nothing of
/// manifests: the reconciler translates a manifest into this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub hostname: String,
    /// The UTS namespace's NIS domain name; the kernel's `(none)` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Read-only lower directories of the overlay, top first.
    pub lower_dirs: Vec<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub limits: Limits,
    #[serde(default)]
    pub netns: NetnsMode,
    /// Sets no_new_privs on the container's processes. Off by default, as
    /// in Docker: setuid programs (`su`, `ping` in some images) work.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The user namespace: the runtime turns `Auto` and `Daemon` into a
    /// `Range` (or the host's) before the spec is built.
    #[serde(default)]
    pub userns: super::userns::UsernsMode,
    /// The init's stdio and its log.
    #[serde(flatten)]
    pub io: InitIo,
    /// Privileges, capabilities, devices, namespaces… beyond Docker's defaults.
    #[serde(default)]
    pub isolation: super::isolation::Isolation,
    /// The root filesystem is mounted read-only (mounts stay as they are).
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Size of `/dev/shm` in bytes (default 64 MiB, Docker's).
    #[serde(default)]
    pub shm_bytes: Option<u64>,
}

/// How the init's stdio is wired and its output kept: what the container
/// asks for, and (with the daemon's rotation defaults filled in) what the
/// shim is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitIo {
    /// Rotate the log at this size, keeping `log_max_files` files in all.
    #[serde(default)]
    pub log_max_bytes: Option<u64>,
    #[serde(default)]
    pub log_max_files: Option<u32>,
    /// The init's stdio is a pty whose master the shim holds; it relays it
    /// to whoever connects to `attach.sock` in the run dir.
    #[serde(default)]
    pub tty: bool,
    /// Without a tty: the init's stdin is a pipe the shim feeds from the
    /// attached client (`-i`), closed at the client's EOF; stdout and
    /// stderr are framed to that client (see `shim`).
    #[serde(default)]
    pub stdin: bool,
    /// Report ready once created, and start the init only after the first
    /// client attached (or a while passed): `run` in the foreground. Without
    /// a tty or stdin, the client gets the output alone.
    #[serde(default)]
    pub wait_attach: bool,
}

/// Host facts the spec depends on.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// `/sys/fs/cgroup/<subsys>` directories of v1 hierarchies (empty on a pure v2 host).
    pub v1_cgroup_mounts: Vec<String>,
    /// What this container's isolation needs from the host (per container).
    pub isolation: super::isolation::Resolved,
    /// What the host's cgroups can do beyond the basics; a limit they cannot
    /// hold is refused rather than dropped.
    pub cgroup: CgroupFeatures,
}

/// Optional cgroup features, read from the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupFeatures {
    /// v1's memory.oom_control (v2 has no switch to turn the OOM killer off).
    pub oom_control: bool,
    /// Swap accounting: v1's memory.memsw.* (v2's memory.swap.max).
    pub swap_limit: bool,
    /// Proportional I/O weights: v1's blkio.weight or blkio.bfq.weight
    /// (a BFQ scheduler), v2's io controller.
    pub io_weight: bool,
}

const CFS_PERIOD_US: u64 = 100_000;

/// The cgroup part of the spec for `limits`, with the device rules when
/// given (at create; an update in place leaves them as they are).
pub fn limit_resources(
    id: &str,
    limits: &Limits,
    host: CgroupFeatures,
    devices: Option<Vec<LinuxDeviceCgroup>>,
) -> Result<LinuxResources, RuntimeError> {
    let err = |part: &'static str| {
        move |e: OciSpecError| RuntimeError::Spec {
            id: id.to_string(),
            message: format!("{part}: {e}"),
        }
    };
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(devices) = devices {
        resources = resources.devices(devices);
    }
    check_cgroup_features(id, limits, host)?;
    let bytes = |what: &str, bytes: u64| {
        i64::try_from(bytes).map_err(|_| RuntimeError::Spec {
            id: id.to_string(),
            message: format!("{what} {bytes} bytes is too large; give at most {} bytes", i64::MAX),
        })
    };
    if limits.memory_bytes.is_some()
        || limits.memory_swap.is_some()
        || limits.memory_reservation.is_some()
        || limits.oom_kill_disable
    {
        // Without memory_swap, memsw is left alone, as runc leaves it: no
        // swap limit beyond the host's.
        let mut memory = LinuxMemoryBuilder::default();
        if let Some(limit) = limits.memory_bytes {
            memory = memory.limit(bytes("memory limit", limit)?);
        }
        if let Some(swap) = limits.memory_swap {
            memory = memory.swap(swap);
        }
        if let Some(reservation) = limits.memory_reservation {
            memory = memory.reservation(bytes("memory reservation", reservation)?);
        }
        if limits.oom_kill_disable {
            // libcontainer 0.7 does not apply this (the shim writes
            // memory.oom_control itself), but the spec says what was asked.
            memory = memory.disable_oom_killer(true);
        }
        resources = resources.memory(memory.build().map_err(err("memory"))?);
    }
    if limits.cpus.is_some()
        || limits.cpu_shares.is_some()
        || limits.cpu_period.is_some()
        || limits.cpu_quota.is_some()
        || limits.cpuset_cpus.is_some()
        || limits.cpuset_mems.is_some()
    {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(cpus) = limits.cpus {
            cpu = cpu
                .quota((cpus * CFS_PERIOD_US as f64).round() as i64)
                .period(CFS_PERIOD_US);
        }
        if let Some(period) = limits.cpu_period {
            cpu = cpu.period(period);
        }
        if let Some(quota) = limits.cpu_quota {
            cpu = cpu.quota(i64::try_from(quota).unwrap_or(i64::MAX));
        }
        if let Some(shares) = limits.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(cpus) = &limits.cpuset_cpus {
            cpu = cpu.cpus(cpus.clone());
        }
        if let Some(mems) = &limits.cpuset_mems {
            cpu = cpu.mems(mems.clone());
        }
        resources = resources.cpu(cpu.build().map_err(err("cpu"))?);
    }
    if let Some(pids) = limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build().map_err(err("pids"))?);
    }
    if let Some(block_io) = block_io(limits).map_err(err("block io"))? {
        resources = resources.block_io(block_io);
    }
    resources.build().map_err(err("resources"))
}

/// Refuses a limit the host's cgroups cannot hold, naming it and the missing
/// file: libcontainer would otherwise drop it or fail on a bare ENOENT.
fn check_cgroup_features(id: &str, limits: &Limits, host: CgroupFeatures) -> Result<(), RuntimeError> {
    let refuse = |message: &str| {
        Err(RuntimeError::Spec {
            id: id.to_string(),
            message: message.to_string(),
        })
    };
    if limits.oom_kill_disable && !host.oom_control {
        return refuse(
            "the OOM killer cannot be disabled on this host: it needs cgroup v1's memory.oom_control \
             (cgroup v2 has no such switch); remove oomKillDisable (--oom-kill-disable)",
        );
    }
    if limits.memory_swap.is_some() && !host.swap_limit {
        return refuse(
            "this host's memory cgroup has no swap accounting (no memory.memsw.limit_in_bytes; boot with \
             swapaccount=1): remove memorySwap (--memory-swap)",
        );
    }
    if (limits.blkio_weight.is_some() || !limits.blkio_weight_device.is_empty()) && !host.io_weight {
        return refuse(
            "this host's block I/O cgroup has no proportional weights (no blkio.weight or blkio.bfq.weight: \
             the disks' scheduler is not BFQ); remove blkioWeight and blkioWeightDevice (--blkio-weight, \
             --blkio-weight-device), or use the rate limits (--device-read-bps …)",
        );
    }
    Ok(())
}

/// The OCI block I/O section, None when no I/O limit is asked for.
fn block_io(limits: &Limits) -> Result<Option<LinuxBlockIo>, OciSpecError> {
    let throttle = |list: &[DeviceLimit]| -> Result<Option<Vec<LinuxThrottleDevice>>, OciSpecError> {
        if list.is_empty() {
            return Ok(None);
        }
        list.iter()
            .map(|d| {
                LinuxThrottleDeviceBuilder::default()
                    .major(d.major)
                    .minor(d.minor)
                    .rate(d.value)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let read_bps = throttle(&limits.device_read_bps)?;
    let write_bps = throttle(&limits.device_write_bps)?;
    let read_iops = throttle(&limits.device_read_iops)?;
    let write_iops = throttle(&limits.device_write_iops)?;
    if limits.blkio_weight.is_none()
        && limits.blkio_weight_device.is_empty()
        && read_bps.is_none()
        && write_bps.is_none()
        && read_iops.is_none()
        && write_iops.is_none()
    {
        return Ok(None);
    }
    let mut io = LinuxBlockIoBuilder::default();
    if let Some(weight) = limits.blkio_weight {
        io = io.weight(weight);
    }
    if !limits.blkio_weight_device.is_empty() {
        let devices = limits
            .blkio_weight_device
            .iter()
            .map(|d| {
                LinuxWeightDeviceBuilder::default()
                    .major(d.major)
                    .minor(d.minor)
                    .weight(u16::try_from(d.value).unwrap_or(u16::MAX))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        io = io.weight_device(devices);
    }
    if let Some(list) = read_bps {
        io = io.throttle_read_bps_device(list);
    }
    if let Some(list) = write_bps {
        io = io.throttle_write_bps_device(list);
    }
    if let Some(list) = read_iops {
        io = io.throttle_read_iops_device(list);
    }
    if let Some(list) = write_iops {
        io = io.throttle_write_iops_device(list);
    }
    io.build().map(Some)
}

/// Builds the OCI spec for `cfg`, with the rootfs at `rootfs` and the cgroup at `cgroup_path`.
pub fn build(cfg: &ContainerConfig, rootfs: &str, cgroup_path: &str, host: &HostInfo) -> Result<Spec, RuntimeError> {
    // Builders fail only on fields they validate (none berth sets); naming the
    // part still says where to look.
    let err = |part: &'static str| {
        move |e: OciSpecError| RuntimeError::Spec {
            id: cfg.id.clone(),
            message: format!("{part}: {e}"),
        }
    };
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<String>>();

    let userns = match cfg.userns {
        super::userns::UsernsMode::Range(range) => Some(range),
        _ => None,
    };
    let mut mounts = Vec::with_capacity(STANDARD_MOUNTS.len() + cfg.mounts.len());
    for (destination, typ, source, options) in STANDARD_MOUNTS {
        if destination == "/sys" && userns.is_some() && !matches!(cfg.netns, NetnsMode::New) {
            // sysfs can be mounted only by a user namespace that owns the
            // network namespace; the host's, read-only, instead (as runc
            // does for Docker's userns-remap).
            mounts.push(
                MountBuilder::default()
                    .destination("/sys")
                    .typ("bind")
                    .source("/sys")
                    .options(strings(&["rbind", "nosuid", "noexec", "nodev", "ro"]))
                    .build()
                    .map_err(err("mount"))?,
            );
            continue;
        }
        let mut options = strings(options);
        if let (Some(bytes), "/dev/shm") = (cfg.shm_bytes, destination) {
            // The kernel takes bytes; Docker's own default is the 65536k.
            for o in options.iter_mut().filter(|o| o.starts_with("size=")) {
                *o = format!("size={bytes}");
            }
        }
        mounts.push(
            MountBuilder::default()
                .destination(destination)
                .typ(typ)
                .source(source)
                .options(options)
                .build()
                .map_err(err("mount"))?,
        );
    }
    for m in &cfg.mounts {
        mounts.push(
            MountBuilder::default()
                .destination(&m.destination)
                .typ(&m.kind)
                .source(&m.source)
                .options(m.options.clone())
                .build()
                .map_err(err("mount"))?,
        );
    }
    let mut readonly = strings(&READONLY_PATHS);
    // libcontainer mounts v1 hierarchies read-write whatever the spec says
    // (notes/libcontainer.md §6); listing them here remounts them read-only so
    // a container cannot raise its own limits.
    if !host.v1_cgroup_mounts.is_empty() {
        readonly.push("/sys/fs/cgroup".to_string());
        readonly.extend(host.v1_cgroup_mounts.iter().cloned());
    }

    let mut devices = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(err("device rule"))?];
    for (major, minor) in ALLOWED_DEVICES {
        let rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        let rule = match minor {
            Some(minor) => rule.minor(minor),
            None => rule,
        };
        devices.push(rule.build().map_err(err("device rule"))?);
    }
    let resources = limit_resources(&cfg.id, &cfg.limits, host.cgroup, Some(devices))?;

    let rule =
        |names: Vec<String>, action: LinuxSeccompAction| LinuxSyscallBuilder::default().names(names).action(action);
    let arg0 = |value: u64, op: LinuxSeccompOperator| {
        LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(value)
            .op(op)
            .build()
            .map_err(err("seccomp argument"))
    };
    let one = |name: &str| vec![name.to_string()];
    let mut syscalls = vec![
        rule(strings(seccomp::ALLOWED), LinuxSeccompAction::ScmpActAllow)
            .build()
            .map_err(err("seccomp rule"))?,
        // glibc falls back to clone(2), whose flags the rule below can inspect.
        rule(one("clone3"), LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::ENOSYS as u32)
            .build()
            .map_err(err("seccomp rule"))?,
        // clone without any namespace flag. libcontainer reads a MASKED_EQ
        // rule as (arg & valueTwo) == value, the reverse of runc's order, so
        // the mask goes in valueTwo; every fork in every test depends on it.
        rule(one("clone"), LinuxSeccompAction::ScmpActAllow)
            .args(vec![LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(0u64)
                .value_two(CLONE_NAMESPACE_FLAGS)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .map_err(err("seccomp argument"))?])
            .build()
            .map_err(err("seccomp rule"))?,
    ];
    // Every socket family but the ones Docker refuses, as its three rules.
    let [alg, vsock] = seccomp::SOCKET_FAMILIES_DENIED;
    for (op, value) in [
        (LinuxSeccompOperator::ScmpCmpLt, alg),
        (LinuxSeccompOperator::ScmpCmpEq, alg + 1),
        (LinuxSeccompOperator::ScmpCmpGt, vsock),
    ] {
        syscalls.push(
            rule(one("socket"), LinuxSeccompAction::ScmpActAllow)
                .args(vec![arg0(value, op)?])
                .build()
                .map_err(err("seccomp rule"))?,
        );
    }
    for value in PERSONALITY_ALLOWED {
        syscalls.push(
            rule(one("personality"), LinuxSeccompAction::ScmpActAllow)
                .args(vec![arg0(value, LinuxSeccompOperator::ScmpCmpEq)?])
                .build()
                .map_err(err("seccomp rule"))?,
        );
    }
    let seccomp = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(vec![Arch::ScmpArchX86_64])
        .syscalls(syscalls)
        .build()
        .map_err(err("seccomp"))?;

    let namespace = |typ: LinuxNamespaceType| LinuxNamespaceBuilder::default().typ(typ);
    let mut namespaces = Vec::with_capacity(5);
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ] {
        namespaces.push(namespace(typ).build().map_err(err("namespace"))?);
    }
    // Joining a network namespace the host's user namespace owns is refused
    // from inside a new user namespace, and libcontainer always makes the
    // user namespace first: the shim (and each exec shim) joins berth's
    // namespace itself, before libcontainer starts, and the spec names none.
    let joined_by_shim = match (&cfg.netns, userns) {
        (NetnsMode::Path(path), Some(_)) => Some(path.clone()),
        _ => None,
    };
    let own_netns = match &cfg.netns {
        NetnsMode::New => Some(namespace(LinuxNamespaceType::Network)),
        NetnsMode::Host => None,
        NetnsMode::Path(_) if joined_by_shim.is_some() => None,
        NetnsMode::Path(path) => Some(namespace(LinuxNamespaceType::Network).path(path)),
    };
    let mut linux = LinuxBuilder::default();
    if let Some(range) = userns {
        namespaces.push(namespace(LinuxNamespaceType::User).build().map_err(err("namespace"))?);
        let mapping = |host_id: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(range.size)
                .build()
                .map_err(err("id mapping"))
        };
        linux = linux
            .uid_mappings(vec![mapping(range.uid)?])
            .gid_mappings(vec![mapping(range.gid)?]);
    }
    // (A namespace the shim joins gets it from the shim, in host ids: the
    // container's root cannot write the host-owned namespace's sysctls.)
    if own_netns.is_some() {
        // Docker's default in a network namespace of the container's own:
        // unprivileged ICMP sockets, so `ping` works without setuid.
        linux = linux.sysctl(HashMap::from([(
            "net.ipv4.ping_group_range".to_string(),
            "0 2147483647".to_string(),
        )]));
    }
    if let Some(ns) = own_netns {
        namespaces.push(ns.build().map_err(err("namespace"))?);
    }
    let linux = linux
        .namespaces(namespaces)
        .cgroups_path(cgroup_path)
        .resources(resources)
        .masked_paths(strings(&MASKED_PATHS))
        .readonly_paths(readonly)
        .seccomp(seccomp)
        .build()
        .map_err(err("linux"))?;

    let caps: Capabilities = DEFAULT_CAPS.into_iter().collect();
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(err("capabilities"))?;
    // The builder starts from oci-spec's defaults; the sets berth does not
    // name stay empty, as runc leaves them.
    capabilities.set_inheritable(None).set_ambient(None);
    let mut process = ProcessBuilder::default()
        .terminal(cfg.io.tty)
        .user(
            UserBuilder::default()
                .uid(cfg.uid)
                .gid(cfg.gid)
                .build()
                .map_err(err("user"))?,
        )
        .args(cfg.args.clone())
        .env(cfg.env.clone())
        .cwd(&cfg.cwd)
        .capabilities(capabilities)
        .build()
        .map_err(err("process"))?;
    // oci-spec's defaults add an rlimit berth never asked for (the daemon's
    // own limits are inherited instead).
    process.set_rlimits(None);
    // Without no_new_privs the field is left out, not set to false:
    // libcontainer loads the seccomp filter early, while init still holds
    // CAP_SYS_ADMIN (as runc does), only when the field is absent; with
    // `false` it loads it after dropping capabilities and the kernel refuses
    // (notes/libcontainer.md §6). oci-spec's default is `true`.
    process.set_no_new_privileges(cfg.no_new_privileges.then_some(true));

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(cfg.readonly_rootfs)
                .build()
                .map_err(err("root"))?,
        )
        .hostname(&cfg.hostname)
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(err("spec"))?;
    spec.set_annotations(
        joined_by_shim.map(|path| HashMap::from([(JOIN_NETNS_ANNOTATION.to_string(), path.display().to_string())])),
    );
    super::isolation::apply(&mut spec, &cfg.id, &cfg.isolation, &host.isolation)?;
    spec.set_domainname(cfg.domainname.clone());
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config() -> ContainerConfig {
        ContainerConfig {
            id: "web".into(),
            hostname: "web".into(),
            args: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            limits: Limits {
                memory_bytes: Some(64 << 20),
                cpus: Some(0.5),
                cpu_shares: Some(512),
                pids: Some(32),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn spec_has_docker_defaults_and_limits() {
        let host = HostInfo {
            v1_cgroup_mounts: vec!["/sys/fs/cgroup/memory".into()],
            ..Default::default()
        };
        let spec = build(&config(), "/r", "/berth-x/web", &host).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["process"].get("noNewPrivileges"), None);
        assert_eq!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], json!(64 << 20));
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], json!(50_000));
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], json!(32));
        let ro = v["linux"]["readonlyPaths"].as_array().unwrap();
        assert!(ro.contains(&json!("/sys/fs/cgroup/memory")));
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/keys")));
        assert_eq!(v["hostname"], json!("web"));
        assert_eq!(v.get("domainname"), None);
        let cfg = ContainerConfig {
            domainname: Some("example.org".into()),
            ..config()
        };
        let v = serde_json::to_value(build(&cfg, "/r", "/c", &host).unwrap()).unwrap();
        assert_eq!(v["domainname"], json!("example.org"));
    }

    #[test]
    fn the_network_namespace_is_new_joined_by_path_or_the_hosts() {
        let ns = |cfg: &ContainerConfig| {
            let v = serde_json::to_value(build(cfg, "/r", "/c", &HostInfo::default()).unwrap()).unwrap();
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["type"] == "network")
                .cloned()
        };
        assert_eq!(ns(&config()), Some(json!({"type": "network"})));
        let joined = ContainerConfig {
            netns: NetnsMode::Path("/run/berth/net/web/netns".into()),
            ..config()
        };
        assert_eq!(ns(&joined).unwrap()["path"], json!("/run/berth/net/web/netns"));
        let host = ContainerConfig {
            netns: NetnsMode::Host,
            ..config()
        };
        assert_eq!(ns(&host), None);
    }

    #[test]
    fn seccomp_denies_by_default_and_allows_clone_only_without_namespace_flags() {
        let spec = build(&config(), "/r", "/berth-x/web", &HostInfo::default()).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        let seccomp = &v["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        let rules = seccomp["syscalls"].as_array().unwrap();
        let clone: Vec<&Value> = rules.iter().filter(|r| r["names"] == json!(["clone"])).collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["valueTwo"], json!(CLONE_NAMESPACE_FLAGS));
        let allowed = &rules[0]["names"];
        for name in ["read", "execve", "wait4", "ptrace", "process_vm_readv"] {
            assert!(allowed.as_array().unwrap().contains(&json!(name)), "{name}");
        }
        for name in ["mount", "unshare", "setns", "bpf", "clone", "keyctl"] {
            assert!(!allowed.as_array().unwrap().contains(&json!(name)), "{name}");
        }
    }

    #[test]
    fn every_x86_64_syscall_is_either_allowed_or_denied() {
        // A newer kernel header adds syscalls; each needs a decision here.
        let conditional = ["clone", "clone3", "personality", "socket"];
        for name in &syscall_table() {
            let name = name.as_str();
            let allowed = seccomp::ALLOWED.contains(&name);
            let denied = seccomp::DENIED.contains(&name);
            assert!(
                allowed ^ denied || conditional.contains(&name),
                "{name}: allowed={allowed} denied={denied}"
            );
        }
    }

    /// Docker's own default seccomp profile, as moby ships it
    /// (`profiles/seccomp/default.json` of Docker 20.10's source, from
    /// Debian's `golang-github-docker-docker-dev`): scripts/install-deps.sh
    /// extracts that one file here.
    const DOCKER_PROFILE: &str = "/var/cache/berth-test/docker-seccomp-default.json";

    /// Docker's rules as they apply to an x86_64 container with Docker's
    /// default capabilities on this kernel, one line per condition (the
    /// form [`rule_lines`] gives berth's filter): the rules whose
    /// `includes`/`excludes` (arches, caps, minKernel) select amd64 and the
    /// default caps, for the names in the x86_64 syscall table or in berth's
    /// decisions (names newer than the table's header).
    fn docker_rule_lines(
        profile: &Value,
        table: &std::collections::BTreeSet<String>,
    ) -> std::collections::BTreeSet<String> {
        // Docker's profile names capabilities as the spec serializes them.
        let caps: Vec<String> = DEFAULT_CAPS
            .iter()
            .map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_string())
            .collect();
        let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
        let kernel = nix::sys::utsname::uname().unwrap();
        let release = kernel.release().to_string_lossy().into_owned();
        let version = |v: &str| -> (u32, u32) {
            let mut parts = v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok());
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        };
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let applies = |rule: &Value| {
            let (inc, exc) = (&rule["includes"], &rule["excludes"]);
            let arches = strs(&inc["arches"]);
            let inc_caps = strs(&inc["caps"]);
            (arches.is_empty() || arches.iter().any(|a| a == "amd64"))
                && !strs(&exc["arches"]).iter().any(|a| a == "amd64")
                && (inc_caps.is_empty() || inc_caps.iter().any(|c| caps.contains(&c.as_str())))
                && !strs(&exc["caps"]).iter().any(|c| caps.contains(&c.as_str()))
                && inc["minKernel"]
                    .as_str()
                    .is_none_or(|min| version(min) <= version(&release))
        };
        let mut lines = std::collections::BTreeSet::new();
        for rule in profile["syscalls"].as_array().unwrap().iter().filter(|r| applies(r)) {
            for name in strs(&rule["names"]).into_iter().filter(|n| table.contains(n)) {
                match rule["action"].as_str().unwrap() {
                    "SCMP_ACT_ERRNO" => {
                        lines.insert(format!("{name} errno {}", rule["errnoRet"]));
                    }
                    "SCMP_ACT_ALLOW" => match rule["args"].as_array().filter(|a| !a.is_empty()) {
                        None => {
                            lines.insert(name);
                        }
                        Some(args) => {
                            for a in args {
                                let (index, value) = (&a["index"], a["value"].as_u64().unwrap());
                                lines.insert(match a["op"].as_str().unwrap() {
                                    // runc compares (arg & value) == valueTwo.
                                    "SCMP_CMP_MASKED_EQ" => {
                                        let expect = a["valueTwo"].as_u64().unwrap_or(0);
                                        format!("{name} if arg{index} & {value:#x} == {expect}")
                                    }
                                    "SCMP_CMP_LT" => format!("{name} if arg{index} < {value}"),
                                    "SCMP_CMP_EQ" => format!("{name} if arg{index} == {value}"),
                                    "SCMP_CMP_GT" => format!("{name} if arg{index} > {value}"),
                                    op => panic!("{name}: operator {op} has no line form"),
                                });
                            }
                        }
                    },
                    action => panic!("{name}: action {action} in Docker's profile"),
                }
            }
        }
        lines
    }

    /// Where berth's filter differs from Docker 20.10's default profile on
    /// purpose, rule line by rule line, with the reason. Most follow moby's
    /// later profiles (github.com/moby/profiles, Docker 23 to 28), which
    /// allow syscalls added to the kernel since 20.10 and refuse two socket
    /// families; the test data is 20.10's because that is the profile a
    /// Debian package ships here.
    const DELIBERATE: &[(&str, &str)] = &[
        (
            "cachestat",
            "allowed by moby's later profiles (kernel 6.5, read-only page-cache stats)",
        ),
        ("futex_requeue", "allowed by moby's later profiles (kernel 6.7, futex2)"),
        ("futex_wait", "allowed by moby's later profiles (kernel 6.7, futex2)"),
        ("futex_wake", "allowed by moby's later profiles (kernel 6.7, futex2)"),
        ("fchmodat2", "allowed by moby's later profiles (kernel 6.6)"),
        (
            "map_shadow_stack",
            "allowed by moby's later profiles (kernel 6.6, CET shadow stacks)",
        ),
        ("mseal", "allowed by moby's later profiles (kernel 6.10)"),
        (
            "uretprobe",
            "allowed by moby's later profiles (kernel 6.11, used by the kernel's own uprobes)",
        ),
        (
            "listmount",
            "allowed by moby's later profiles (kernel 6.8, lists the caller's own mount namespace)",
        ),
        ("statmount", "allowed by moby's later profiles (kernel 6.8)"),
        ("getxattrat", "allowed by moby's later profiles (kernel 6.13)"),
        ("setxattrat", "allowed by moby's later profiles (kernel 6.13)"),
        ("listxattrat", "allowed by moby's later profiles (kernel 6.13)"),
        ("removexattrat", "allowed by moby's later profiles (kernel 6.13)"),
        (
            "socket",
            "moby's later profiles refuse AF_ALG (38) and AF_VSOCK (40): the three lines below",
        ),
        (
            "socket if arg0 < 38",
            "moby's later profiles: every family below AF_ALG",
        ),
        (
            "socket if arg0 == 39",
            "moby's later profiles: between AF_ALG and AF_VSOCK",
        ),
        (
            "socket if arg0 > 40",
            "moby's later profiles: every family above AF_VSOCK",
        ),
        ("name_to_handle_at", "allowed by moby's later profiles"),
        (
            "pkey_alloc",
            "allowed by moby's later profiles (memory protection keys)",
        ),
        ("pkey_free", "allowed by moby's later profiles"),
        ("pkey_mprotect", "allowed by moby's later profiles"),
        (
            "process_vm_readv",
            "allowed by moby's later profiles with ptrace on kernels >= 4.8",
        ),
        (
            "process_vm_writev",
            "allowed by moby's later profiles with ptrace on kernels >= 4.8",
        ),
        (
            "io_uring_setup",
            "refused, as moby's profile does since Docker 25: io_uring has been a steady source of kernel exploits",
        ),
        ("io_uring_enter", "refused with io_uring_setup"),
        ("io_uring_register", "refused with io_uring_setup"),
    ];

    /// The generated filter as rule lines: `name` (allowed), `name if argN
    /// OP value` (allowed when the argument matches), `name errno N`.
    fn rule_lines(spec: &Spec) -> std::collections::BTreeSet<String> {
        let v = serde_json::to_value(spec).unwrap();
        let mut lines = std::collections::BTreeSet::new();
        for rule in v["linux"]["seccomp"]["syscalls"].as_array().unwrap() {
            for name in rule["names"].as_array().unwrap() {
                let name = name.as_str().unwrap();
                if rule["action"] == "SCMP_ACT_ERRNO" {
                    lines.insert(format!("{name} errno {}", rule["errnoRet"]));
                    continue;
                }
                assert_eq!(rule["action"], "SCMP_ACT_ALLOW");
                let Some(args) = rule.get("args").and_then(|a| a.as_array()) else {
                    lines.insert(name.to_string());
                    continue;
                };
                for a in args {
                    let (index, value) = (&a["index"], a["value"].as_u64().unwrap());
                    lines.insert(match a["op"].as_str().unwrap() {
                        "SCMP_CMP_MASKED_EQ" => {
                            // libcontainer compares (arg & valueTwo) == value.
                            assert_eq!(value, 0);
                            format!("{name} if arg{index} & {:#x} == 0", a["valueTwo"].as_u64().unwrap())
                        }
                        "SCMP_CMP_LT" => format!("{name} if arg{index} < {value}"),
                        "SCMP_CMP_EQ" => format!("{name} if arg{index} == {value}"),
                        "SCMP_CMP_GT" => format!("{name} if arg{index} > {value}"),
                        op => panic!("{name}: operator {op} has no line form"),
                    });
                }
            }
        }
        lines
    }

    /// The names berth decides on and the x86_64 syscall table of this host's headers.
    fn syscall_table() -> std::collections::BTreeSet<String> {
        let header = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
            .expect("the x86_64 syscall table (linux-libc-dev, installed with libc6-dev)");
        let mut table: std::collections::BTreeSet<String> = header
            .lines()
            .filter_map(|l| l.strip_prefix("#define __NR_"))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        table.extend(seccomp::ALLOWED.iter().chain(seccomp::DENIED).map(|n| n.to_string()));
        table
    }

    #[test]
    fn seccomp_matches_dockers_own_default_profile_rule_by_rule_but_for_written_down_choices() {
        let text = std::fs::read_to_string(DOCKER_PROFILE).unwrap_or_else(|e| {
            panic!("{DOCKER_PROFILE}: {e}; scripts/install-deps.sh extracts it from golang-github-docker-docker-dev")
        });
        let profile: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        let docker = docker_rule_lines(&profile, &syscall_table());
        // The reading of Docker's file is itself checked on rules known in it.
        for line in [
            "read",
            "ptrace",
            "clone3 errno 38",
            "personality if arg0 == 8",
            "chroot",
        ] {
            assert!(docker.contains(line), "{line} not read from Docker's profile");
        }
        assert!(!docker.contains("mount") && !docker.contains("reboot"));

        let spec = build(&config(), "/r", "/berth-x/web", &HostInfo::default()).unwrap();
        let ours = rule_lines(&spec);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["linux"]["seccomp"]["defaultErrnoRet"], json!(libc::EPERM));
        let deliberate = |line: &String| DELIBERATE.iter().any(|(l, _)| l == line);
        let only_docker: Vec<&String> = docker.difference(&ours).filter(|l| !deliberate(l)).collect();
        let only_berth: Vec<&String> = ours.difference(&docker).filter(|l| !deliberate(l)).collect();
        assert!(
            only_docker.is_empty() && only_berth.is_empty(),
            "seccomp differs from Docker's default profile; allowed only by Docker: {only_docker:?}; \
             only by berth: {only_berth:?}. Match it, or write the choice down in DELIBERATE"
        );
        // Every written-down choice is still a real difference.
        let stale: Vec<&str> = DELIBERATE
            .iter()
            .map(|(l, _)| *l)
            .filter(|l| docker.contains(*l) == ours.contains(*l))
            .collect();
        assert!(
            stale.is_empty(),
            "DELIBERATE lists lines that no longer differ: {stale:?}"
        );
        for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert!(!ours.contains(name), "{name} stays refused");
        }
    }

    /// The configs whose specs are kept in `testdata/spec-golden.json`: each
    /// field the builder branches on, alone or together.
    fn golden_cases() -> Vec<(&'static str, ContainerConfig, HostInfo)> {
        let v1 = HostInfo {
            v1_cgroup_mounts: vec!["/sys/fs/cgroup/memory".into(), "/sys/fs/cgroup/cpu,cpuacct".into()],
            cgroup: CgroupFeatures {
                oom_control: true,
                swap_limit: true,
                io_weight: true,
            },
            ..Default::default()
        };
        let mounts = vec![
            MountSpec {
                destination: "/data".into(),
                source: "/var/lib/berth/volumes/data".into(),
                kind: "bind".into(),
                options: vec!["rbind".into(), "ro".into()],
                volume: false,
            },
            MountSpec {
                destination: "/tmp".into(),
                source: "tmpfs".into(),
                kind: "tmpfs".into(),
                options: vec!["nosuid".into(), "nodev".into(), "size=16m".into(), "mode=1777".into()],
                volume: false,
            },
            MountSpec {
                destination: "/empty".into(),
                source: "/srv/empty".into(),
                kind: "bind".into(),
                options: vec![],
                volume: false,
            },
        ];
        vec![
            ("defaults", ContainerConfig::default(), HostInfo::default()),
            ("limits_v1_cgroups", config(), v1.clone()),
            (
                "tty",
                ContainerConfig {
                    io: InitIo {
                        tty: true,
                        stdin: true,
                        ..Default::default()
                    },
                    ..config()
                },
                HostInfo::default(),
            ),
            (
                "host_netns",
                ContainerConfig {
                    netns: NetnsMode::Host,
                    ..config()
                },
                HostInfo::default(),
            ),
            (
                "netns_path",
                ContainerConfig {
                    netns: NetnsMode::Path("/run/berth/net/web/netns".into()),
                    ..config()
                },
                v1.clone(),
            ),
            (
                "mounts",
                ContainerConfig {
                    mounts: mounts.clone(),
                    uid: 1000,
                    gid: 100,
                    cwd: "/srv".into(),
                    ..config()
                },
                HostInfo::default(),
            ),
            (
                "some_limits_no_new_privileges",
                ContainerConfig {
                    limits: Limits {
                        cpus: Some(1.25),
                        ..Default::default()
                    },
                    no_new_privileges: true,
                    ..config()
                },
                HostInfo::default(),
            ),
            (
                "shares_only",
                ContainerConfig {
                    limits: Limits {
                        cpu_shares: Some(2048),
                        memory_bytes: Some(1 << 30),
                        ..Default::default()
                    },
                    mounts,
                    ..config()
                },
                v1.clone(),
            ),
            (
                "docker_resources",
                ContainerConfig {
                    limits: docker_limits(),
                    ..config()
                },
                v1,
            ),
            (
                "readonly_rootfs_shm_size",
                ContainerConfig {
                    readonly_rootfs: true,
                    shm_bytes: Some(256 << 20),
                    ..config()
                },
                HostInfo::default(),
            ),
        ]
    }

    /// Every limit of `docker run`'s resource flags.
    fn docker_limits() -> Limits {
        let device = |value| DeviceLimit {
            major: 254,
            minor: 0,
            value,
        };
        Limits {
            memory_bytes: Some(100 << 20),
            memory_swap: Some(200 << 20),
            memory_reservation: Some(50 << 20),
            oom_kill_disable: true,
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            pids: Some(64),
            blkio_weight: Some(500),
            blkio_weight_device: vec![device(200)],
            device_read_bps: vec![device(1 << 20)],
            device_write_bps: vec![device(2 << 20)],
            device_read_iops: vec![device(100)],
            device_write_iops: vec![device(200)],
            ..Default::default()
        }
    }

    #[test]
    fn a_limit_the_hosts_cgroups_cannot_hold_is_refused_by_name() {
        let cases: [(Limits, &str); 3] = [
            (
                Limits {
                    oom_kill_disable: true,
                    ..Default::default()
                },
                "--oom-kill-disable",
            ),
            (
                Limits {
                    memory_bytes: Some(64 << 20),
                    memory_swap: Some(-1),
                    ..Default::default()
                },
                "--memory-swap",
            ),
            (
                Limits {
                    blkio_weight: Some(500),
                    ..Default::default()
                },
                "--blkio-weight",
            ),
        ];
        for (limits, flag) in cases {
            let cfg = ContainerConfig { limits, ..config() };
            match build(&cfg, "/r", "/c", &HostInfo::default()) {
                Err(RuntimeError::Spec { id, message }) => {
                    assert_eq!(id, "web");
                    assert!(message.contains(flag), "{message}");
                }
                other => panic!("{flag} on a host without it was not refused: {other:?}"),
            }
        }
        let all = HostInfo {
            cgroup: CgroupFeatures {
                oom_control: true,
                swap_limit: true,
                io_weight: true,
            },
            ..Default::default()
        };
        let cfg = ContainerConfig {
            limits: docker_limits(),
            ..config()
        };
        let v = serde_json::to_value(build(&cfg, "/r", "/c", &all).unwrap()).unwrap();
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["swap"], json!(200 << 20));
        assert_eq!(r["memory"]["disableOOMKiller"], json!(true));
        assert_eq!(r["cpu"]["cpus"], json!("0-1"));
        assert_eq!(
            (r["cpu"]["period"].clone(), r["cpu"]["quota"].clone()),
            (json!(50_000), json!(25_000))
        );
        assert_eq!(r["blockIO"]["weight"], json!(500));
        assert_eq!(
            r["blockIO"]["throttleReadBpsDevice"],
            json!([{"major": 254, "minor": 0, "rate": 1 << 20}])
        );
    }

    /// The allowed-names rule stands for `seccomp::ALLOWED` in the golden
    /// file, so that a syscall decision does not mean regenerating it.
    fn golden_value(cfg: &ContainerConfig, host: &HostInfo) -> Value {
        let spec = build(cfg, "/var/lib/berth/containers/web/rootfs", "/berth/web", host).unwrap();
        let mut v = serde_json::to_value(&spec).unwrap();
        let allowed = &mut v["linux"]["seccomp"]["syscalls"][0]["names"];
        assert_eq!(*allowed, json!(seccomp::ALLOWED));
        *allowed = json!("seccomp::ALLOWED");
        sort_capabilities(&mut v);
        v
    }

    /// oci-spec keeps capability sets in a HashSet: their order in the JSON
    /// differs from run to run, and means nothing.
    fn sort_capabilities(spec: &mut Value) {
        if let Some(sets) = spec["process"]["capabilities"].as_object_mut() {
            for set in sets.values_mut() {
                if let Some(list) = set.as_array_mut() {
                    list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                }
            }
        }
    }

    /// The spec serializes to the same JSON it did when built with `json!`
    /// (the golden file holds that code's output). Run with
    /// `BERTH_BLESS_SPEC=1` to rewrite it after a deliberate change.
    #[test]
    fn spec_json_matches_the_golden_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime/testdata/spec-golden.json");
        let ours: serde_json::Map<String, Value> = golden_cases()
            .iter()
            .map(|(name, cfg, host)| (name.to_string(), golden_value(cfg, host)))
            .collect();
        if std::env::var_os("BERTH_BLESS_SPEC").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&ours).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let golden: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            golden.keys().collect::<Vec<_>>(),
            ours.keys().collect::<Vec<_>>(),
            "golden cases"
        );
        for (name, expected) in &golden {
            let mut expected = expected.clone();
            sort_capabilities(&mut expected);
            assert_eq!(ours[name], expected, "the spec for case {name} changed");
        }
    }

    #[test]
    fn a_memory_limit_beyond_the_spec_s_range_is_refused_naming_the_container() {
        let cfg = ContainerConfig {
            limits: Limits {
                memory_bytes: Some(u64::MAX),
                ..Default::default()
            },
            ..config()
        };
        match build(&cfg, "/r", "/c", &HostInfo::default()) {
            Err(RuntimeError::Spec { id, message }) => {
                assert_eq!(id, "web");
                assert!(message.contains("too large"), "{message}");
            }
            other => panic!("a limit over i64::MAX was not refused: {other:?}"),
        }
    }

    #[test]
    fn no_new_privileges_is_set_only_when_asked_for() {
        let cfg = ContainerConfig {
            no_new_privileges: true,
            ..config()
        };
        let v = serde_json::to_value(build(&cfg, "/r", "/c", &HostInfo::default()).unwrap()).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], json!(true));
    }
}
