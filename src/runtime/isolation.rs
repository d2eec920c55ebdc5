//! Isolation beyond Docker's defaults: privileged containers, capability
//! changes, seccomp profiles, devices, shared namespaces, sysctls, rlimits,
//! the OOM score and berth's init. `resolve` reads what the spec needs from
//! the host (the bounding set, device numbers, a profile file); `apply` is
//! pure and edits the spec `spec::build` made with Docker's defaults.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{
    Capabilities, Capability, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxSeccomp, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, Spec,
};
use serde::{Deserialize, Serialize};

/// Where berth's init appears in a container started with `init`, as
/// Docker's docker-init.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// What a container asks for beyond Docker's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Isolation {
    /// Every capability of the host's bounding set, every host device, no
    /// seccomp, no masked or read-only paths, writable /sys and cgroups.
    #[serde(default)]
    pub privileged: bool,
    /// `CAP_…` names or `ALL`, applied after `cap_drop`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub seccomp: SeccompMode,
    #[serde(default)]
    pub devices: Vec<DeviceRequest>,
    #[serde(default)]
    pub device_rules: Vec<DeviceRule>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    pub pid: NamespaceJoin,
    #[serde(default)]
    pub ipc: NamespaceJoin,
    #[serde(default)]
    pub uts: NamespaceJoin,
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `RLIMIT_…` name, soft, hard.
    #[serde(default)]
    pub rlimits: Vec<(String, u64, u64)>,
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Run berth's init as PID 1, with the command as its child.
    #[serde(default)]
    pub init: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum SeccompMode {
    /// Docker's default profile (`seccomp::ALLOWED`).
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's JSON format, read from this host path.
    Profile(PathBuf),
}

/// A namespace of the container's own, the host's, or one to join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum NamespaceJoin {
    #[default]
    New,
    Host,
    /// A `/proc/PID/ns/…` path of another container's process.
    Path(PathBuf),
}

/// A host device made in the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub host_path: String,
    pub path: String,
    /// Letters of `rwm`.
    pub access: String,
}

/// A device cgroup allow rule; `None` numbers match any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// `c`, `b` or `a`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// A device node on the host, as `stat` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDevice {
    pub path: String,
    pub kind: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What the host gives for one container's isolation (see `resolve`).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The host's capability bounding set (CapBnd of /proc/self/status).
    pub bounding: Vec<Capability>,
    /// The requested devices, or every device for a privileged container.
    pub devices: Vec<HostDevice>,
    /// The seccomp profile file's text.
    pub seccomp_profile: Option<String>,
    /// The host path of berth's init binary.
    pub init_binary: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("container {id}: device {path}: {why}")]
    Device { id: String, path: String, why: String },
    #[error("container {id}: seccomp profile {path}: {why}")]
    Profile { id: String, path: String, why: String },
    #[error("container {id}: {message}")]
    Refused { id: String, message: String },
}

/// Reads what `apply` needs from the host for container `id`.
pub fn resolve(id: &str, iso: &Isolation, init_binary: Option<&Path>) -> Result<Resolved, IsolationError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .map(capabilities_of_mask)
        .unwrap_or_default();
    let mut devices = Vec::new();
    if iso.privileged {
        host_devices(Path::new("/dev"), &mut devices);
    }
    for req in &iso.devices {
        let dev = device_at(Path::new(&req.host_path)).ok_or_else(|| IsolationError::Device {
            id: id.into(),
            path: req.host_path.clone(),
            why: "no such character or block device on the host: give a path under /dev that `ls -l` shows with c or b"
                .into(),
        })?;
        devices.push(dev);
    }
    let seccomp_profile = match &iso.seccomp {
        SeccompMode::Profile(path) => Some(std::fs::read_to_string(path).map_err(|e| IsolationError::Profile {
            id: id.into(),
            path: path.display().to_string(),
            why: format!("cannot read it: {e}"),
        })?),
        _ => None,
    };
    if iso.init && init_binary.is_none() {
        return Err(IsolationError::Refused {
            id: id.into(),
            message: "init: this berth was built without its init (no static C compiler at build time); rebuild with gcc and a static libc, or run without --init".into(),
        });
    }
    Ok(Resolved {
        bounding,
        devices,
        seccomp_profile,
        init_binary: init_binary.map(Path::to_path_buf),
    })
}

/// berth's static init (build.rs); empty when it could not be built.
const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Writes berth's init into `dir` (once; again if another berth wrote a
/// different one) and returns its path; None when this berth has none.
/// It is only ever bind-mounted read-only into containers.
pub fn write_init(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    if INIT_BINARY.is_empty() {
        return Ok(None);
    }
    let path = dir.join("berth-init");
    let same = std::fs::metadata(&path).is_ok_and(|m| m.len() == INIT_BINARY.len() as u64)
        && std::fs::read(&path).is_ok_and(|b| b == INIT_BINARY);
    if !same {
        std::fs::create_dir_all(dir)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // A name of its own per writer, then an atomic rename: a container
        // starting meanwhile binds a whole file, never half of one.
        let tmp = dir.join(format!(".berth-init.{}.{nanos}", std::process::id()));
        std::fs::write(&tmp, INIT_BINARY)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(Some(path))
}

use crate::capabilities::CAPABILITIES as KERNEL_CAPABILITIES;

/// The capabilities whose bits are set in `mask`, as the kernel numbers them.
pub fn capabilities_of_mask(mask: u64) -> Vec<Capability> {
    KERNEL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .filter_map(|(_, name)| capability(&format!("CAP_{name}")))
        .collect()
}

fn capability(name: &str) -> Option<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

fn device_at(path: &Path) -> Option<HostDevice> {
    let meta = std::fs::metadata(path).ok()?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(HostDevice {
        path: path.to_string_lossy().into_owned(),
        kind,
        major: libc::major(rdev) as i64,
        minor: libc::minor(rdev) as i64,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Every device node under `dir`, as Docker's privileged mode gives them;
/// /dev/pts, /dev/shm, /dev/mqueue and the console are the container's own.
fn host_devices(dir: &Path, out: &mut Vec<HostDevice>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let own = [
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/dev/console",
            "/dev/ptmx",
            "/dev/.lxc",
            "/dev/.udev",
        ];
        if own.iter().any(|o| path == Path::new(o)) {
            continue;
        }
        if ft.is_dir() {
            host_devices(&path, out);
        } else if ft.is_char_device() || ft.is_block_device() {
            out.extend(device_at(&path));
        }
    }
}

/// Edits `spec` (built with Docker's defaults) for `iso`. Pure.
pub fn apply(spec: &mut Spec, id: &str, iso: &Isolation, host: &Resolved) -> Result<(), IsolationError> {
    let refused = |message: String| IsolationError::Refused { id: id.into(), message };
    let oci = |what: &str, e: libcontainer::oci_spec::OciSpecError| refused(format!("{what}: {e}"));

    // Capabilities: the base set, minus drops, plus adds, as Docker does.
    let mut caps: Vec<Capability> = if iso.privileged {
        host.bounding.clone()
    } else {
        super::spec::DEFAULT_CAPS.to_vec()
    };
    if iso.cap_drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for name in iso.cap_drop.iter().filter(|c| *c != "ALL") {
        let cap = capability(name).ok_or_else(|| refused(format!("unknown capability {name}")))?;
        caps.retain(|c| *c != cap);
    }
    for name in &iso.cap_add {
        let add: Vec<Capability> = if name == "ALL" {
            host.bounding.clone()
        } else {
            let cap = capability(name).ok_or_else(|| refused(format!("unknown capability {name}")))?;
            if !host.bounding.is_empty() && !host.bounding.contains(&cap) {
                return Err(refused(format!(
                    "cap-add {name}: the host's capability bounding set lacks it, so no process here can hold it; leave it out"
                )));
            }
            vec![cap]
        };
        for cap in add {
            if !caps.contains(&cap) {
                caps.push(cap);
            }
        }
    }
    let set: Capabilities = caps.into_iter().collect();
    if let Some(process) = spec.process_mut() {
        let mut c = process.capabilities().clone().unwrap_or_default();
        c.set_bounding(Some(set.clone()))
            .set_effective(Some(set.clone()))
            .set_permitted(Some(set));
        process.set_capabilities(Some(c));
        if !iso.additional_gids.is_empty() {
            process
                .user_mut()
                .set_additional_gids(Some(iso.additional_gids.clone()));
        }
        if !iso.rlimits.is_empty() {
            let mut rlimits = Vec::new();
            for (name, soft, hard) in &iso.rlimits {
                let typ: PosixRlimitType = serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| refused(format!("unknown rlimit {name}")))?;
                rlimits.push(
                    PosixRlimitBuilder::default()
                        .typ(typ)
                        .soft(*soft)
                        .hard(*hard)
                        .build()
                        .map_err(|e| oci("rlimit", e))?,
                );
            }
            process.set_rlimits(Some(rlimits));
        }
        if let Some(adj) = iso.oom_score_adj {
            process.set_oom_score_adj(Some(adj));
        }
        if iso.init {
            let mut args = vec![INIT_PATH.to_string(), "--".to_string()];
            args.extend(process.args().clone().unwrap_or_default());
            process.set_args(Some(args));
        }
    }

    if iso.privileged {
        // /sys and the cgroup mounts writable, as Docker's privileged mode.
        for m in spec.mounts_mut().iter_mut().flatten() {
            if matches!(m.destination().to_str(), Some("/sys" | "/sys/fs/cgroup")) {
                let opts: Vec<String> = m.options().clone().unwrap_or_default();
                m.set_options(Some(
                    opts.into_iter()
                        .filter(|o| o != "ro")
                        .chain(["rw".to_string()])
                        .collect(),
                ));
            }
        }
    }
    // `ipc: host` shares the host's /dev/shm too, as Docker's `--ipc host`.
    // Another container's /dev/shm is a tmpfs in its own mount namespace,
    // which libcontainer cannot bind from (it resolves /proc/PID/root to
    // the host's root): `container:` shares SysV IPC and mqueues only.
    if iso.ipc == NamespaceJoin::Host {
        let source = PathBuf::from("/dev/shm");
        for m in spec.mounts_mut().iter_mut().flatten() {
            if m.destination() == Path::new("/dev/shm") {
                m.set_typ(Some("bind".to_string()))
                    .set_source(Some(source.clone()))
                    .set_options(Some(vec![
                        "rbind".to_string(),
                        "nosuid".to_string(),
                        "nodev".to_string(),
                        "noexec".to_string(),
                    ]));
            }
        }
    }
    if let (true, Some(binary)) = (iso.init, &host.init_binary) {
        let mount = MountBuilder::default()
            .destination(INIT_PATH)
            .typ("bind")
            .source(binary)
            .options(vec![
                "bind".to_string(),
                "ro".to_string(),
                "nosuid".to_string(),
                "nodev".to_string(),
            ])
            .build()
            .map_err(|e| oci("init mount", e))?;
        spec.mounts_mut().get_or_insert_with(Vec::new).push(mount);
    }
    let seccomp = if iso.privileged {
        None
    } else {
        match &iso.seccomp {
            SeccompMode::Default => spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            SeccompMode::Unconfined => None,
            SeccompMode::Profile(path) => {
                let text = host.seccomp_profile.as_deref().unwrap_or_default();
                Some(docker_profile(text, &path.display().to_string(), spec).map_err(|why| {
                    IsolationError::Profile {
                        id: id.into(),
                        path: path.display().to_string(),
                        why,
                    }
                })?)
            }
        }
    };

    let seccomp = match seccomp {
        Some(filter) if iso.seccomp == SeccompMode::Default => {
            let effective = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref())
                .and_then(|c| c.effective().clone())
                .unwrap_or_default();
            Some(allow_for_capabilities(filter, &effective).map_err(|e| oci("seccomp rule", e))?)
        }
        other => other,
    };
    let Some(linux) = spec.linux_mut() else {
        return Err(refused("the spec has no linux section".into()));
    };
    linux.set_seccomp(seccomp);
    if iso.privileged {
        linux.set_masked_paths(None).set_readonly_paths(None);
    }
    let mut nodes: Vec<LinuxDevice> = Vec::new();
    let mut rules: Vec<LinuxDeviceCgroup> = Vec::new();
    let rule = |kind: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(kind).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().map_err(|e| oci("device rule", e))
    };
    if iso.privileged {
        rules.push(rule(LinuxDeviceType::A, None, None, "rwm")?);
    }
    let mut add_node = |dev: &HostDevice, path: &str| -> Result<(), IsolationError> {
        nodes.retain(|n| n.path() != Path::new(path));
        nodes.push(
            LinuxDeviceBuilder::default()
                .path(path)
                .typ(dev.kind)
                .major(dev.major)
                .minor(dev.minor)
                .file_mode(dev.mode)
                .uid(dev.uid)
                .gid(dev.gid)
                .build()
                .map_err(|e| oci("device", e))?,
        );
        Ok(())
    };
    if iso.privileged {
        for dev in &host.devices {
            add_node(dev, &dev.path)?;
        }
    }
    for req in &iso.devices {
        let dev = host
            .devices
            .iter()
            .find(|d| d.path == req.host_path)
            .ok_or_else(|| refused(format!("device {} was not looked up on the host", req.host_path)))?;
        add_node(dev, &req.path)?;
        rules.push(rule(dev.kind, Some(dev.major), Some(dev.minor), &req.access)?);
    }
    for r in &iso.device_rules {
        let kind = match r.kind {
            'b' => LinuxDeviceType::B,
            'c' => LinuxDeviceType::C,
            _ => LinuxDeviceType::A,
        };
        rules.push(rule(kind, r.major, r.minor, &r.access)?);
    }
    if !nodes.is_empty() {
        linux.set_devices(Some(nodes));
    }
    if !rules.is_empty() {
        if let Some(res) = linux.resources_mut() {
            res.devices_mut().get_or_insert_with(Vec::new).extend(rules);
        }
    }
    if !iso.sysctls.is_empty() {
        let sysctl = linux.sysctl_mut().get_or_insert_with(Default::default);
        sysctl.extend(iso.sysctls.clone());
    }
    let mut namespaces: Vec<LinuxNamespace> = linux.namespaces().clone().unwrap_or_default();
    for (typ, join) in [
        (LinuxNamespaceType::Pid, &iso.pid),
        (LinuxNamespaceType::Ipc, &iso.ipc),
        (LinuxNamespaceType::Uts, &iso.uts),
    ] {
        // In place: libcontainer enters them in the spec's order.
        match join {
            NamespaceJoin::New => {}
            NamespaceJoin::Host => namespaces.retain(|n| n.typ() != typ),
            NamespaceJoin::Path(p) => {
                let joined = LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .path(p)
                    .build()
                    .map_err(|e| oci("namespace", e))?;
                match namespaces.iter_mut().find(|n| n.typ() == typ) {
                    Some(n) => *n = joined,
                    None => namespaces.push(joined),
                }
            }
        }
    }
    linux.set_namespaces(Some(namespaces));
    if iso.uts == NamespaceJoin::Host {
        // The host's name stays the host's: libcontainer sets it only in a
        // new UTS namespace, but the spec should not claim one.
        spec.set_hostname(None);
    }
    Ok(())
}

/// The syscalls Docker's default profile allows only with a capability
/// (moby `profiles/seccomp/default.json`, its `includes.caps` rules).
const CAPABILITY_SYSCALLS: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (Capability::SysModule, &["delete_module", "init_module", "finit_module"]),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (Capability::SysTime, &["settimeofday", "clock_settime"]),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// Docker's default filter for a container holding `caps`: the syscalls a
/// held capability unlocks are allowed, as Docker's profile does (with
/// CAP_SYS_ADMIN, clone with any flags and clone3 too), so that `--cap-add
/// SYS_ADMIN` can mount.
fn allow_for_capabilities(
    mut filter: LinuxSeccomp,
    caps: &Capabilities,
) -> Result<LinuxSeccomp, libcontainer::oci_spec::OciSpecError> {
    use libcontainer::oci_spec::runtime::{LinuxSeccompAction, LinuxSyscallBuilder};
    let mut rules = filter.syscalls().clone().unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for (cap, calls) in CAPABILITY_SYSCALLS {
        if caps.contains(cap) {
            names.extend(calls.iter().map(|c| c.to_string()));
        }
    }
    if names.is_empty() {
        return Ok(filter);
    }
    if caps.contains(&Capability::SysAdmin) {
        // The flag-checking clone rule and clone3's ENOSYS give way to a
        // plain allow; libseccomp refuses two actions for one syscall.
        for rule in rules.iter_mut() {
            let keep: Vec<String> = rule
                .names()
                .iter()
                .filter(|n| *n != "clone" && *n != "clone3")
                .cloned()
                .collect();
            rule.set_names(keep);
        }
        rules.retain(|r| !r.names().is_empty());
    }
    let present: std::collections::HashSet<String> = rules.iter().flat_map(|r| r.names().clone()).collect();
    names.sort();
    names.dedup();
    names.retain(|n| !present.contains(n));
    if !names.is_empty() {
        rules.push(
            LinuxSyscallBuilder::default()
                .names(names)
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()?,
        );
    }
    filter.set_syscalls(Some(rules));
    Ok(filter)
}

/// A profile in Docker's format (moby `profiles/seccomp`) as the OCI
/// filter: `archMap` becomes `architectures`, rules whose `includes` or
/// `excludes` (capabilities, architectures, kernel versions) do not match
/// this container are left out, and MASKED_EQ arguments have `value` and
/// `valueTwo` swapped, as libcontainer reads them the other way round
/// (see `spec::build`).
fn docker_profile(text: &str, path: &str, spec: &Spec) -> Result<LinuxSeccomp, String> {
    use serde_json::{json, Value};
    let mut v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| format!("{path} holds no JSON object"))?;
    if !obj.contains_key("defaultAction") {
        return Err("no `defaultAction`: not a seccomp profile in Docker's format".into());
    }
    let caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.effective().as_ref())
        .map(|set| {
            set.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(map) = obj.remove("archMap") {
        if !obj.contains_key("architectures") {
            let arches: Vec<Value> = map
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("architecture").cloned())
                .filter(|a| a == "SCMP_ARCH_X86_64")
                .collect();
            obj.insert("architectures".into(), Value::Array(arches));
        }
    }
    if let Some(Value::Array(arches)) = obj.get_mut("architectures") {
        // Only the native ABI: libcontainer resolves names for it alone (see seccomp.rs).
        arches.retain(|a| a == "SCMP_ARCH_X86_64");
        if arches.is_empty() {
            arches.push(json!("SCMP_ARCH_X86_64"));
        }
    }
    obj.remove("defaultErrno");
    let holds = |cond: &Value, want_all: bool| -> bool {
        let matches_arch = |a: &Value| a == "amd64" || a == "x86_64" || a == "SCMP_ARCH_X86_64";
        let caps_ok = cond.get("caps").and_then(Value::as_array).map(|list| {
            let has = |c: &Value| c.as_str().is_some_and(|c| caps.iter().any(|x| x == c));
            if want_all {
                list.iter().all(has)
            } else {
                list.iter().any(has)
            }
        });
        let arch_ok = cond
            .get("arches")
            .and_then(Value::as_array)
            .map(|list| list.iter().any(matches_arch));
        match (caps_ok, arch_ok) {
            (None, None) => want_all,
            (c, a) if want_all => c.unwrap_or(true) && a.unwrap_or(true),
            (c, a) => c.unwrap_or(false) || a.unwrap_or(false),
        }
    };
    let mut rules = Vec::new();
    for mut rule in obj
        .remove("syscalls")
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_default()
    {
        let r = rule.as_object_mut().ok_or("a `syscalls` entry is not an object")?;
        if let Some(inc) = r.remove("includes") {
            if !holds(&inc, true) {
                continue;
            }
        }
        if let Some(exc) = r.remove("excludes") {
            if exc.as_object().is_some_and(|o| !o.is_empty()) && holds(&exc, false) {
                continue;
            }
        }
        for key in ["comment", "name"] {
            if key == "name" {
                if let Some(name) = r.remove("name") {
                    r.insert("names".into(), Value::Array(vec![name]));
                }
            } else {
                r.remove(key);
            }
        }
        if let Some(Value::Array(args)) = r.get_mut("args") {
            for arg in args.iter_mut() {
                if arg.get("op").and_then(Value::as_str) == Some("SCMP_CMP_MASKED_EQ") {
                    let value = arg.get("value").cloned().unwrap_or(json!(0));
                    let two = arg.get("valueTwo").cloned().unwrap_or(json!(0));
                    arg["value"] = two;
                    arg["valueTwo"] = value;
                }
            }
        }
        rules.push(rule);
    }
    obj.insert("syscalls".into(), Value::Array(rules));
    serde_json::from_value(v).map_err(|e| format!("not a seccomp profile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{build, ContainerConfig, HostInfo};
    use serde_json::{json, Value};

    fn config(iso: Isolation) -> ContainerConfig {
        ContainerConfig {
            id: "web".into(),
            hostname: "web".into(),
            args: vec!["/bin/sh".into()],
            cwd: "/".into(),
            isolation: iso,
            ..Default::default()
        }
    }

    fn host() -> Resolved {
        Resolved {
            // This machine kind's bounding set: all but CAP_SYS_RESOURCE (bit 24).
            bounding: capabilities_of_mask(0x1fffeffffff),
            devices: vec![HostDevice {
                path: "/dev/null".into(),
                kind: LinuxDeviceType::C,
                major: 1,
                minor: 3,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }],
            ..Default::default()
        }
    }

    fn spec_json(iso: Isolation) -> Result<Value, IsolationError> {
        let host = HostInfo {
            isolation: host(),
            ..Default::default()
        };
        match build(&config(iso), "/r", "/c", &host) {
            Ok(spec) => Ok(serde_json::to_value(spec).unwrap()),
            Err(crate::runtime::RuntimeError::Isolation(e)) => Err(e),
            Err(e) => panic!("{e}"),
        }
    }

    fn caps(v: &Value) -> Vec<String> {
        let mut c: Vec<String> = v["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        c.sort();
        c
    }

    #[test]
    fn the_kernel_list_is_the_manifests_and_oci_spec_knows_every_name() {
        assert_eq!(capabilities_of_mask(u64::MAX).len(), KERNEL_CAPABILITIES.len());
    }

    #[test]
    fn the_bounding_mask_is_read_bit_by_bit() {
        let all = capabilities_of_mask(0x1fffeffffff);
        assert_eq!(all.len(), 40);
        assert!(!all.contains(&Capability::SysResource));
        assert_eq!(capabilities_of_mask(1 << 10), [Capability::NetBindService]);
    }

    #[test]
    fn privileged_takes_the_hosts_caps_and_devices_and_drops_every_confinement() {
        let v = spec_json(Isolation {
            privileged: true,
            ..Default::default()
        })
        .unwrap();
        let c = caps(&v);
        assert_eq!(c.len(), 40);
        assert!(!c.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(v["linux"].get("seccomp"), None);
        assert_eq!(v["linux"].get("maskedPaths"), None);
        assert_eq!(v["linux"].get("readonlyPaths"), None);
        assert_eq!(v["linux"]["devices"][0]["path"], json!("/dev/null"));
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert!(
            rules.contains(&json!({"allow": true, "type": "a", "access": "rwm"})),
            "{rules:?}"
        );
        for m in v["mounts"].as_array().unwrap() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                assert!(!m["options"].as_array().unwrap().contains(&json!("ro")), "{m}");
            }
        }
    }

    #[test]
    fn privileged_is_never_implied() {
        let v = spec_json(Isolation {
            cap_add: vec!["ALL".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(caps(&v).len(), 40);
        assert!(v["linux"]["seccomp"].is_object());
        assert!(v["linux"]["readonlyPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/sys")));
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/keys")));
        assert_eq!(v["linux"].get("devices"), None);
    }

    #[test]
    fn drop_all_then_add_leaves_exactly_the_added() {
        let v = spec_json(Isolation {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["CAP_NET_BIND_SERVICE".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(caps(&v), ["CAP_NET_BIND_SERVICE"]);
        let v = spec_json(Isolation {
            cap_drop: vec!["CAP_CHOWN".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(caps(&v).len(), 13);
        let e = spec_json(Isolation {
            cap_add: vec!["CAP_SYS_RESOURCE".into()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("CAP_SYS_RESOURCE") && e.contains("bounding set"), "{e}");
    }

    #[test]
    fn devices_sysctls_rlimits_namespaces_and_init() {
        let v = spec_json(Isolation {
            devices: vec![DeviceRequest {
                host_path: "/dev/null".into(),
                path: "/dev/mynull".into(),
                access: "rw".into(),
            }],
            sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            rlimits: vec![("RLIMIT_NOFILE".into(), 100, 200)],
            oom_score_adj: Some(300),
            additional_gids: vec![10, 20],
            pid: NamespaceJoin::Host,
            ipc: NamespaceJoin::Path("/proc/7/ns/ipc".into()),
            uts: NamespaceJoin::Host,
            init: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            v["linux"]["devices"][0],
            json!({"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0})
        );
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert!(rules.contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})));
        assert_eq!(v["linux"]["sysctl"]["net.ipv4.ip_forward"], json!("1"));
        assert_eq!(
            v["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}])
        );
        assert_eq!(v["process"]["oomScoreAdj"], json!(300));
        assert_eq!(v["process"]["user"]["additionalGids"], json!([10, 20]));
        let ns: Vec<&Value> = v["linux"]["namespaces"].as_array().unwrap().iter().collect();
        assert!(!ns.iter().any(|n| n["type"] == "pid" || n["type"] == "uts"));
        assert!(ns.contains(&&json!({"type": "ipc", "path": "/proc/7/ns/ipc"})));
        let host_ipc = spec_json(Isolation {
            ipc: NamespaceJoin::Host,
            ..Default::default()
        })
        .unwrap();
        let mounts = host_ipc["mounts"].as_array().unwrap();
        let shm = mounts.iter().find(|m| m["destination"] == "/dev/shm").unwrap();
        assert_eq!((&shm["type"], &shm["source"]), (&json!("bind"), &json!("/dev/shm")));
        assert_eq!(v.get("hostname"), None);
        assert_eq!(v["process"]["args"], json!([INIT_PATH, "--", "/bin/sh"]));
    }

    #[test]
    fn an_added_capability_unlocks_its_syscalls_in_the_default_filter() {
        let allowed = |v: &Value, name: &str| {
            v["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["names"].as_array().unwrap().contains(&json!(name)))
                .map(|r| (r["action"].clone(), r.get("args").cloned()))
                .collect::<Vec<_>>()
        };
        let plain = spec_json(Isolation::default()).unwrap();
        assert!(allowed(&plain, "mount").is_empty());
        assert_eq!(allowed(&plain, "clone3")[0].0, json!("SCMP_ACT_ERRNO"));
        let admin = spec_json(Isolation {
            cap_add: vec!["CAP_SYS_ADMIN".into(), "CAP_SYS_TIME".into()],
            ..Default::default()
        })
        .unwrap();
        for name in ["mount", "umount2", "unshare", "settimeofday", "clone", "clone3"] {
            assert_eq!(allowed(&admin, name), [(json!("SCMP_ACT_ALLOW"), None)], "{name}");
        }
        // Dropped, it unlocks nothing.
        let dropped = spec_json(Isolation {
            cap_drop: vec!["CAP_SYS_CHROOT".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(allowed(&dropped, "mount").is_empty());
    }

    #[test]
    fn a_docker_profile_becomes_the_filter_with_masked_eq_swapped() {
        let docker = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "", "includes": {}, "excludes": {}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        });
        let cfg = config(Isolation::default());
        let spec = build(&cfg, "/r", "/c", &HostInfo::default()).unwrap();
        let filter = docker_profile(&docker.to_string(), "p.json", &spec).unwrap();
        let v = serde_json::to_value(filter).unwrap();
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64"]));
        let names: Vec<&Value> = v["syscalls"].as_array().unwrap().iter().map(|r| &r["names"]).collect();
        assert_eq!(names, [&json!(["read", "write"]), &json!(["clone"])]);
        assert_eq!(v["syscalls"][1]["args"][0]["valueTwo"], json!(2114060288u64));
        assert_eq!(v["syscalls"][1]["args"][0]["value"], json!(0));
        assert!(docker_profile("{}", "p.json", &spec)
            .unwrap_err()
            .contains("defaultAction"));
        assert!(docker_profile("nope", "p.json", &spec)
            .unwrap_err()
            .contains("not JSON"));
    }
}
