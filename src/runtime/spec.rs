//! The OCI runtime spec berth writes for a container: Docker's safe defaults
//! plus what the caller asks for. Pure: builds data, writes nothing.

use std::path::PathBuf;

use libcontainer::oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::RuntimeError;

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
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

/// Syscalls Docker's default seccomp profile does not allow to a container
/// without extra capabilities. Docker's profile is an allow-list; berth denies
/// the same dangerous set explicitly so that new harmless syscalls keep working.
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The namespace flags of clone(2) (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC |
/// NEWUSER | NEWPID | NEWNET | NEWTIME): Docker refuses them without SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0080;

/// A bind, tmpfs or other mount inside the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub destination: String,
    pub source: String,
    /// `bind` or `tmpfs`.
    pub kind: String,
    pub options: Vec<String>,
}

/// cgroup limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<u32>,
}

/// Everything the runtime needs to make one container. It knows nothing of
/// manifests: the reconciler translates a manifest into this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub hostname: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Read-only lower directories of the overlay, top first.
    pub lower_dirs: Vec<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub limits: Limits,
}

/// Host facts the spec depends on.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// `/sys/fs/cgroup/<subsys>` directories of v1 hierarchies (empty on a pure v2 host).
    pub v1_cgroup_mounts: Vec<String>,
}

const CFS_PERIOD_US: u64 = 100_000;

/// Builds the OCI spec for `cfg`, with the rootfs at `rootfs` and the cgroup at `cgroup_path`.
pub fn build(cfg: &ContainerConfig, rootfs: &str, cgroup_path: &str, host: &HostInfo) -> Result<Spec, RuntimeError> {
    let caps: Vec<&str> = DEFAULT_CAPS.to_vec();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &cfg.mounts {
        mounts.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options}));
    }
    let mut readonly: Vec<String> = READONLY_PATHS.iter().map(|s| s.to_string()).collect();
    // libcontainer mounts v1 hierarchies read-write whatever the spec says
    // (notes/libcontainer.md §6); listing them here remounts them read-only so
    // a container cannot raise its own limits.
    if !host.v1_cgroup_mounts.is_empty() {
        readonly.push("/sys/fs/cgroup".to_string());
        readonly.extend(host.v1_cgroup_mounts.iter().cloned());
    }

    let mut resources = serde_json::Map::new();
    resources.insert(
        "devices".into(),
        json!([{"allow": false, "access": "rwm"}, 
        // The standard devices libcontainer creates: null, zero, full, tty, random, urandom, ptmx/pts.
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"}]),
    );
    let limits = &cfg.limits;
    if let Some(bytes) = limits.memory_bytes {
        // swap = memory, as Docker does when only --memory is given and swap
        // accounting is off: no extra swap beyond the limit.
        resources.insert("memory".into(), json!({"limit": bytes}));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(cpus) = limits.cpus {
        cpu.insert("quota".into(), json!((cpus * CFS_PERIOD_US as f64).round() as i64));
        cpu.insert("period".into(), json!(CFS_PERIOD_US));
    }
    if let Some(shares) = limits.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(pids) = limits.pids {
        resources.insert("pids".into(), json!({"limit": pids}));
    }

    let mut seccomp_syscalls = vec![
        json!({"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}),
        // glibc falls back to clone(2), whose flags the rules below can inspect.
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    // seccomp can only test `(arg & mask) == value`, so "any namespace flag
    // set" becomes one rule per flag.
    for flag in (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|f| CLONE_NAMESPACE_FLAGS & f != 0)
    {
        seccomp_syscalls.push(
            json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}),
        );
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "root": {"path": rootfs, "readonly": false},
        "hostname": cfg.hostname,
        "process": {
            "terminal": false,
            "user": {"uid": cfg.uid, "gid": cfg.gid},
            "args": cfg.args,
            "env": cfg.env,
            "cwd": cfg.cwd,
            "noNewPrivileges": true,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
        },
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}],
            "cgroupsPath": cgroup_path,
            "resources": Value::Object(resources),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": readonly,
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": seccomp_syscalls
            }
        }
    });
    serde_json::from_value(spec).map_err(|e| RuntimeError::Spec {
        id: cfg.id.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            },
            ..Default::default()
        }
    }

    #[test]
    fn spec_has_docker_defaults_and_limits() {
        let host = HostInfo {
            v1_cgroup_mounts: vec!["/sys/fs/cgroup/memory".into()],
        };
        let spec = build(&config(), "/r", "/berth-x/web", &host).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], json!(true));
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
    }

    #[test]
    fn clone_rules_deny_each_namespace_flag() {
        let spec = build(&config(), "/r", "/berth-x/web", &HostInfo::default()).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        let clone_rules: Vec<&Value> = v["linux"]["seccomp"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"] == json!(["clone"]))
            .collect();
        assert_eq!(clone_rules.len(), CLONE_NAMESPACE_FLAGS.count_ones() as usize);
    }
}
