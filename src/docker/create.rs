//! `POST /containers/create`'s body (Docker's Config, HostConfig and
//! NetworkingConfig) turned into the [`RunRequest`] `berth create` sends.
//! Pure. Each field berth honours is mapped; any other field sent with a
//! value other than its zero is refused by its name, never dropped.

use std::collections::BTreeMap;

use bollard_stubs::models::{ContainerCreateBody, HostConfig, RestartPolicyNameEnum};
use serde_json::Value;

use super::{DockerError, Result};
use crate::manifest::{
    self, ContainerSpec, Healthcheck, NetworkAttachment, PortMapping, Resources, RestartPolicy, SecurityContext,
    VolumeMount,
};
use crate::wire::{RunRequest, UpdateRequest, DEFAULT_NETWORK};

/// Config fields this translation reads. The attach flags are accepted
/// because the attach request itself says what is attached.
const CONFIG_FIELDS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "Image",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "HostConfig",
    "NetworkingConfig",
];

/// HostConfig fields this translation reads. `ConsoleSize` is the first
/// size of a tty, which the attach's resize sets.
const HOST_FIELDS: &[&str] = &[
    "Binds",
    "PortBindings",
    "NetworkMode",
    "RestartPolicy",
    "AutoRemove",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "Memory",
    "NanoCpus",
    "CpuShares",
    "PidsLimit",
    "MemorySwap",
    "MemoryReservation",
    "OomKillDisable",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "BlkioWeight",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "Init",
    "ConsoleSize",
    "LogConfig",
    "ExtraHosts",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "PidMode",
    "IpcMode",
    "UTSMode",
    "ShmSize",
    "Tmpfs",
    "VolumesFrom",
    "Ulimits",
    "GroupAdd",
    "Sysctls",
    "OomScoreAdj",
    "SecurityOpt",
    "Devices",
    "Mounts",
];

/// Fields of one of `HostConfig.Mounts` this translation reads.
const MOUNT_FIELDS: &[&str] = &[
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "TmpfsOptions",
    "VolumeOptions",
    "Consistency",
];

/// Endpoint fields read for the network a container joins.
const ENDPOINT_FIELDS: &[&str] = &["Aliases", "IPAMConfig"];

/// Whether a JSON value is what Go encodes for a field left unset: null,
/// false, 0, "", an empty list or map, or a struct of only such fields.
/// Docker's struct fields are capitalized (`LogConfig.Type`); a map's keys
/// (`Volumes`' paths, `ExposedPorts`' ports) are not, and a map with a key
/// is a value.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o
            .iter()
            .all(|(k, v)| k.starts_with(|c: char| c.is_ascii_uppercase()) && is_zero(v)),
    }
}

/// Fields whose "unset" the docker CLI sends as a value other than zero.
const UNSET_VALUES: &[(&str, i64)] = &[("MemorySwappiness", -1)];

fn is_unset(field: &str, v: &Value) -> bool {
    is_zero(v)
        || UNSET_VALUES
            .iter()
            .any(|(f, unset)| *f == field && v.as_i64() == Some(*unset))
}

/// Refuses the first field of `obj` outside `known` that has a value.
fn refuse_unknown(prefix: &str, obj: &serde_json::Map<String, Value>, known: &[&str]) -> Result<()> {
    match obj
        .iter()
        .find(|(k, v)| !known.contains(&k.as_str()) && !is_unset(k, v))
    {
        Some((k, _)) => Err(DockerError::unsupported(
            format!("{prefix}{k}"),
            "berth's Docker API does not take this field (yet); leave it unset",
        )),
        None => Ok(()),
    }
}

/// The request `docker create` stands for: `name` from the query, `body`
/// as sent.
pub fn run_request(name: Option<&str>, body: &Value) -> Result<RunRequest> {
    let Value::Object(top) = body else {
        return Err(DockerError::BadRequest(
            "POST /containers/create takes a JSON object as its body".into(),
        ));
    };
    refuse_unknown("", top, CONFIG_FIELDS)?;
    if let Some(Value::Object(host)) = top.get("HostConfig") {
        refuse_unknown("HostConfig.", host, HOST_FIELDS)?;
    }
    let req: ContainerCreateBody = serde_json::from_value(body.clone())
        .map_err(|e| DockerError::BadRequest(format!("POST /containers/create: invalid body: {e}")))?;
    let image = req
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| DockerError::BadRequest("Config.Image is required: the image to run".into()))?;
    let host = req.host_config.clone().unwrap_or_default();
    let mut spec = ContainerSpec {
        image,
        command: req.cmd.clone().unwrap_or_default(),
        // Docker's `--entrypoint ""` sends [""]: no entrypoint at all.
        entrypoint: req
            .entrypoint
            .clone()
            .map(|e| e.into_iter().filter(|part| !part.is_empty()).collect()),
        tty: req.tty.unwrap_or(false),
        stdin: req.open_stdin.unwrap_or(false),
        user: req.user.clone().filter(|u| !u.is_empty()),
        working_dir: req.working_dir.clone().filter(|d| !d.is_empty()),
        hostname: req.hostname.clone().filter(|h| !h.is_empty()),
        domainname: req.domainname.clone().filter(|d| !d.is_empty()),
        stop_signal: req.stop_signal.clone().filter(|s| !s.is_empty()),
        stop_grace_period: req
            .stop_timeout
            .filter(|t| *t > 0)
            .map(|t| manifest::Duration(std::time::Duration::from_secs(t as u64))),
        init: host.init.unwrap_or(false),
        publish_all: host.publish_all_ports.unwrap_or(false),
        read_only_rootfs: host.readonly_rootfs.unwrap_or(false),
        ..Default::default()
    };
    for e in req.env.iter().flatten() {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                spec.env.insert(k.to_string(), v.to_string());
            }
            _ => return Err(DockerError::BadRequest(format!("Config.Env: {e:?} is not KEY=VALUE"))),
        }
    }
    if let Some(hc) = &req.healthcheck {
        spec.healthcheck = healthcheck(hc)?;
    }
    spec.restart_policy = RestartPolicy::Never;
    if let Some(policy) = &host.restart_policy {
        let (policy, retries) = match policy.name {
            None | Some(RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO) => (RestartPolicy::Never, None),
            Some(RestartPolicyNameEnum::ALWAYS) => (RestartPolicy::Always, None),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => (RestartPolicy::UnlessStopped, None),
            Some(RestartPolicyNameEnum::ON_FAILURE) => (
                RestartPolicy::OnFailure,
                policy.maximum_retry_count.filter(|n| *n > 0).map(|n| n as u32),
            ),
        };
        spec.restart_policy = policy;
        spec.restart_max_retries = retries;
    }
    spec.resources = resources(&host)?;
    let security = security(&host)?;
    if security != SecurityContext::default() {
        spec.security_context = Some(security);
    }
    namespaces_and_names(&mut spec, &host)?;
    for (i, raw) in body
        .pointer("/HostConfig/Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        spec.volumes.push(mount(i, raw)?);
    }
    let mut tmpfs: Vec<(&String, &String)> = host.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (path, opts) in tmpfs {
        spec.volumes.push(parse_tmpfs(path, opts)?);
    }
    if let Some(log) = &host.log_config {
        let kind = log.typ.clone().unwrap_or_default();
        if !matches!(kind.as_str(), "" | "json-file" | "local") || log.config.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(DockerError::unsupported(
                "HostConfig.LogConfig",
                "berth keeps each container's output in its own log file (the `local` driver); no other driver or options",
            ));
        }
    }
    for bind in host.binds.iter().flatten() {
        spec.volumes.push(parse_bind(bind)?);
    }
    spec.ports = ports(&host)?;
    // Docker's ExposedPorts is image metadata; berth keeps none, so only
    // ports that are also published are taken (they are honoured by that).
    for exposed in req.exposed_ports.iter().flatten() {
        let published = host.port_bindings.as_ref().is_some_and(|p| p.contains_key(exposed));
        if !published {
            return Err(DockerError::unsupported(
                "Config.ExposedPorts",
                format!("{exposed} is exposed but not published; berth keeps no exposed-port metadata: publish it or leave it out"),
            ));
        }
    }
    network(&mut spec, &host, body)?;
    let labels: BTreeMap<String, String> = req.labels.clone().unwrap_or_default().into_iter().collect();
    Ok(RunRequest {
        name: name
            .map(|n| n.trim_start_matches('/').to_string())
            .filter(|n| !n.is_empty()),
        spec,
        labels,
        rm: host.auto_remove.unwrap_or(false),
        detach: true,
        attach: false,
        detach_keys: None,
        volume_opts: BTreeMap::new(),
    })
}

/// Docker's Healthcheck: `["CMD", args…]` or `["CMD-SHELL", command]`,
/// durations in nanoseconds; none when `Test` is empty.
fn healthcheck(hc: &bollard_stubs::models::HealthConfig) -> Result<Option<Healthcheck>> {
    let test = hc.test.clone().unwrap_or_default();
    let exec = match test.split_first() {
        None => return Ok(None),
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((kind, [cmd])) if kind == "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
        Some(_) => {
            return Err(DockerError::unsupported(
                "Config.Healthcheck.Test",
                "berth takes [\"CMD\", ARGS…] or [\"CMD-SHELL\", COMMAND]",
            ))
        }
    };
    let nanos = |n: Option<i64>| {
        n.filter(|n| *n > 0)
            .map(|n| manifest::Duration(std::time::Duration::from_nanos(n as u64)))
    };
    Ok(Some(Healthcheck {
        exec,
        interval: nanos(hc.interval),
        timeout: nanos(hc.timeout),
        retries: hc.retries.filter(|r| *r > 0).map(|r| r as u32),
        start_period: nanos(hc.start_period),
        on_unhealthy: None,
    }))
}

/// Fields of `POST /containers/{id}/update` berth honours: the limits
/// `berth update` changes in place, and the restart policy.
const UPDATE_FIELDS: &[&str] = &[
    "Memory",
    "NanoCpus",
    "CpuShares",
    "PidsLimit",
    "MemorySwap",
    "MemoryReservation",
    "OomKillDisable",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "BlkioWeight",
    "RestartPolicy",
];

/// The [`UpdateRequest`] a `docker update` body stands for: its Resources
/// (HostConfig's fields of the same names) and RestartPolicy. A field berth
/// cannot change in place, given a value, is refused by its name.
pub fn update_request(body: &Value) -> Result<UpdateRequest> {
    let Value::Object(top) = body else {
        return Err(DockerError::BadRequest("the update body must be a JSON object".into()));
    };
    refuse_unknown("", top, UPDATE_FIELDS)?;
    let host: HostConfig = serde_json::from_value(body.clone())
        .map_err(|e| DockerError::BadRequest(format!("invalid update body: {e}")))?;
    let restart_policy = match &host.restart_policy {
        None => None,
        Some(p) => {
            if p.maximum_retry_count.unwrap_or(0) != 0 {
                return Err(DockerError::unsupported(
                    "RestartPolicy.MaximumRetryCount",
                    "update changes the restart policy's name only; recreate the container for a retry count",
                ));
            }
            match p.name {
                None | Some(RestartPolicyNameEnum::EMPTY) => None,
                Some(RestartPolicyNameEnum::NO) => Some(RestartPolicy::Never),
                Some(RestartPolicyNameEnum::ALWAYS) => Some(RestartPolicy::Always),
                Some(RestartPolicyNameEnum::UNLESS_STOPPED) => Some(RestartPolicy::UnlessStopped),
                Some(RestartPolicyNameEnum::ON_FAILURE) => Some(RestartPolicy::OnFailure),
            }
        }
    };
    Ok(UpdateRequest {
        resources: resources(&host)?.unwrap_or_default(),
        restart_policy,
    })
}

fn resources(host: &HostConfig) -> Result<Option<Resources>> {
    let negative = |field: &str| DockerError::BadRequest(format!("HostConfig.{field} must not be negative"));
    let memory = match host.memory.unwrap_or(0) {
        m if m < 0 => return Err(negative("Memory")),
        0 => None,
        m => Some(manifest::Memory(m as u64)),
    };
    let cpus = match host.nano_cpus.unwrap_or(0) {
        n if n < 0 => return Err(negative("NanoCpus")),
        0 => None,
        n => Some(manifest::Cpus(n as f64 / 1e9)),
    };
    let cpu_shares = match host.cpu_shares.unwrap_or(0) {
        s if s < 0 => return Err(negative("CpuShares")),
        0 => None,
        s => Some(s as u64),
    };
    // Docker: 0 or -1 is unlimited.
    let pids = match host.pids_limit.unwrap_or(0) {
        p if p <= 0 => None,
        p => Some(
            u32::try_from(p).map_err(|_| DockerError::BadRequest(format!("HostConfig.PidsLimit {p} is too large")))?,
        ),
    };
    // Docker: MemorySwap -1 is unlimited swap, 0 unset.
    let memory_swap = match host.memory_swap.unwrap_or(0) {
        -1 => Some(manifest::MemorySwap::Unlimited),
        n if n < 0 => return Err(negative("MemorySwap")),
        0 => None,
        n => Some(manifest::MemorySwap::Limit(manifest::Memory(n as u64))),
    };
    let positive = |field: &str, v: Option<i64>| -> Result<Option<u64>> {
        match v.unwrap_or(0) {
            n if n < 0 => Err(negative(field)),
            0 => Ok(None),
            n => Ok(Some(n as u64)),
        }
    };
    let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let resources = Resources {
        memory,
        cpus,
        cpu_shares,
        pids,
        memory_swap,
        memory_reservation: positive("MemoryReservation", host.memory_reservation)?.map(manifest::Memory),
        oom_kill_disable: host.oom_kill_disable.unwrap_or(false),
        cpu_period: positive("CpuPeriod", host.cpu_period)?,
        cpu_quota: positive("CpuQuota", host.cpu_quota)?,
        cpuset_cpus: text(&host.cpuset_cpus),
        cpuset_mems: text(&host.cpuset_mems),
        blkio_weight: host.blkio_weight.filter(|w| *w > 0),
        ..Default::default()
    };
    Ok((resources != Resources::default()).then_some(resources))
}

/// Privileges and the process's limits: Privileged, CapAdd/CapDrop,
/// GroupAdd, Sysctls, Ulimits, OomScoreAdj and SecurityOpt's
/// `no-new-privileges` and `seccomp=unconfined` (a profile's contents, as
/// the CLI sends them, have no place in berth's spec).
fn security(host: &HostConfig) -> Result<SecurityContext> {
    let mut sc = SecurityContext {
        privileged: host.privileged.unwrap_or(false),
        cap_add: host.cap_add.clone().unwrap_or_default(),
        cap_drop: host.cap_drop.clone().unwrap_or_default(),
        group_add: host.group_add.clone().unwrap_or_default(),
        sysctls: host.sysctls.clone().unwrap_or_default().into_iter().collect(),
        oom_score_adj: match host.oom_score_adj.unwrap_or(0) {
            0 => None,
            n => Some(
                i32::try_from(n)
                    .map_err(|_| DockerError::BadRequest(format!("HostConfig.OomScoreAdj {n} is out of range")))?,
            ),
        },
        ..Default::default()
    };
    for u in host.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if name.is_empty() || soft < 0 || hard < 0 {
            return Err(DockerError::BadRequest(format!(
                "HostConfig.Ulimits: {name:?} needs a Name and Soft and Hard limits of 0 or more"
            )));
        }
        sc.ulimits.insert(
            name,
            manifest::Ulimit {
                soft: soft as u64,
                hard: hard as u64,
            },
        );
    }
    for opt in host.security_opt.iter().flatten() {
        match opt.as_str() {
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                sc.no_new_privileges = Some(true)
            }
            "no-new-privileges:false" | "no-new-privileges=false" => sc.no_new_privileges = Some(false),
            "seccomp=unconfined" | "seccomp:unconfined" => sc.seccomp_profile = Some("unconfined".into()),
            // The CLI sends a profile file's contents, which berth's spec
            // does not carry (it names a file on the daemon's host).
            other => {
                return Err(DockerError::unsupported(
                    "HostConfig.SecurityOpt",
                    format!(
                        "{:?}: berth's Docker API takes no-new-privileges[:true|false] and seccomp=unconfined",
                        other.chars().take(60).collect::<String>()
                    ),
                ))
            }
        }
    }
    Ok(sc)
}

/// ExtraHosts, Dns*, the Pid/Ipc/UTS modes, ShmSize, VolumesFrom and
/// Devices: carried over as they are; the spec's validation checks each
/// value as it checks a manifest's.
fn namespaces_and_names(spec: &mut ContainerSpec, host: &HostConfig) -> Result<()> {
    for entry in host.extra_hosts.iter().flatten() {
        let (name, ip) = entry
            .split_once(':')
            .ok_or_else(|| DockerError::BadRequest(format!("HostConfig.ExtraHosts {entry:?}: expected NAME:IP")))?;
        spec.extra_hosts.push(manifest::ExtraHost {
            host: name.to_string(),
            ip: ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        });
    }
    let dns = manifest::DnsSpec {
        servers: host.dns.clone().unwrap_or_default(),
        search: host.dns_search.clone().unwrap_or_default(),
        options: host.dns_options.clone().unwrap_or_default(),
    };
    if dns != manifest::DnsSpec::default() {
        spec.dns = Some(dns);
    }
    let mode = |m: &Option<String>| m.clone().filter(|m| !m.is_empty());
    spec.pid = mode(&host.pid_mode);
    spec.ipc = mode(&host.ipc_mode);
    spec.uts = mode(&host.uts_mode);
    spec.shm_size = match host.shm_size.unwrap_or(0) {
        n if n < 0 => {
            return Err(DockerError::BadRequest(
                "HostConfig.ShmSize must not be negative".into(),
            ))
        }
        0 => None,
        n => Some(manifest::Memory(n as u64)),
    };
    for from in host.volumes_from.iter().flatten() {
        let (container, mode) = from.split_once(':').unwrap_or((from, "rw"));
        let read_only = match mode {
            "ro" => true,
            "rw" => false,
            _ => {
                return Err(DockerError::BadRequest(format!(
                    "HostConfig.VolumesFrom {from:?}: expected CONTAINER[:ro|rw]"
                )))
            }
        };
        spec.volumes_from.push(manifest::VolumesFrom {
            container: container.to_string(),
            read_only,
        });
    }
    for d in host.devices.iter().flatten() {
        let host_path = d.path_on_host.clone().unwrap_or_default();
        if host_path.is_empty() {
            return Err(DockerError::BadRequest(
                "HostConfig.Devices: each needs PathOnHost".into(),
            ));
        }
        spec.devices.push(manifest::Device {
            host_path,
            path: d.path_in_container.clone().filter(|p| !p.is_empty()),
            permissions: d.cgroup_permissions.clone().filter(|p| !p.is_empty()),
        });
    }
    Ok(())
}

/// `HostConfig.Tmpfs` `{PATH: "size=64m,mode=1777,…"}`, as `--tmpfs` takes it.
fn parse_tmpfs(path: &str, opts: &str) -> Result<VolumeMount> {
    let bad = |why: String| DockerError::BadRequest(format!("HostConfig.Tmpfs {path:?}: {why}"));
    let mut m = VolumeMount {
        tmpfs: Some(path.to_string()),
        noexec: true,
        ..Default::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => {
                let bytes = manifest::quantity::parse_docker_size(v).map_err(|e| bad(e.0))?;
                m.size = Some(manifest::Memory(bytes));
            }
            Some(("mode", v)) => m.mode = Some(v.to_string()),
            None if o == "ro" => m.read_only = true,
            None if o == "exec" => m.noexec = false,
            None if matches!(o, "rw" | "noexec" | "nosuid" | "nodev") => {}
            _ => {
                return Err(DockerError::unsupported(
                    "HostConfig.Tmpfs",
                    format!("{path:?}: option {o:?}; berth takes size, mode, ro, rw, exec, noexec, nosuid, nodev"),
                ))
            }
        }
    }
    Ok(m)
}

/// One of `HostConfig.Mounts`: bind, volume or tmpfs, read-only or not,
/// a volume's NoCopy, a tmpfs's size and mode.
fn mount(i: usize, raw: &Value) -> Result<VolumeMount> {
    let at = format!("HostConfig.Mounts[{i}]");
    let Value::Object(fields) = raw else {
        return Err(DockerError::BadRequest(format!("{at}: expected an object")));
    };
    refuse_unknown(&format!("{at}."), fields, MOUNT_FIELDS)?;
    if let Some(Value::Object(v)) = fields.get("VolumeOptions") {
        refuse_unknown(&format!("{at}.VolumeOptions."), v, &["NoCopy"])?;
    }
    if let Some(Value::Object(t)) = fields.get("TmpfsOptions") {
        refuse_unknown(&format!("{at}.TmpfsOptions."), t, &["SizeBytes", "Mode"])?;
    }
    let m: bollard_stubs::models::Mount =
        serde_json::from_value(raw.clone()).map_err(|e| DockerError::BadRequest(format!("{at}: {e}")))?;
    let target = m.target.clone().filter(|t| t.starts_with('/')).ok_or_else(|| {
        DockerError::BadRequest(format!("{at}.Target: an absolute path in the container is required"))
    })?;
    let source = m.source.clone().filter(|s| !s.is_empty());
    let mut out = VolumeMount {
        read_only: m.read_only.unwrap_or(false),
        ..Default::default()
    };
    use bollard_stubs::models::MountType;
    match m.typ {
        Some(MountType::BIND) => {
            out.host_path =
                Some(source.ok_or_else(|| DockerError::BadRequest(format!("{at}.Source: a bind needs one")))?);
            out.path = Some(target);
        }
        Some(MountType::VOLUME) => {
            match source {
                Some(name) => out.volume = Some(name),
                None => out.anonymous = true,
            }
            out.nocopy = m.volume_options.as_ref().and_then(|v| v.no_copy).unwrap_or(false);
            out.path = Some(target);
        }
        Some(MountType::TMPFS) => {
            out.tmpfs = Some(target);
            out.noexec = true;
            if let Some(t) = &m.tmpfs_options {
                out.size = t.size_bytes.filter(|n| *n > 0).map(|n| manifest::Memory(n as u64));
                out.mode = t.mode.filter(|n| *n > 0).map(|n| format!("{n:o}"));
            }
        }
        other => {
            return Err(DockerError::unsupported(
                format!("{at}.Type"),
                format!("{other:?}: berth mounts bind, volume and tmpfs"),
            ))
        }
    }
    Ok(out)
}

/// `SOURCE:TARGET[:ro|rw]`: a host path when SOURCE is absolute, else a
/// named volume.
fn parse_bind(bind: &str) -> Result<VolumeMount> {
    let bad = |why: &str| DockerError::BadRequest(format!("HostConfig.Binds {bind:?}: {why}"));
    let parts: Vec<&str> = bind.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(bad("expected SOURCE:TARGET[:ro|rw]")),
    };
    if source.is_empty() || !target.starts_with('/') {
        return Err(bad("expected a source and an absolute target"));
    }
    let mut read_only = false;
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            other => {
                return Err(DockerError::unsupported(
                    "HostConfig.Binds",
                    format!("{bind:?}: option {other:?}; berth takes ro and rw here"),
                ))
            }
        }
    }
    let mut m = VolumeMount {
        path: Some(target.to_string()),
        read_only,
        ..Default::default()
    };
    if source.starts_with('/') {
        m.host_path = Some(source.to_string());
    } else {
        m.volume = Some(source.to_string());
    }
    Ok(m)
}

/// PortBindings: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`; an
/// empty host port is one chosen at start.
fn ports(host: &HostConfig) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let Some(bindings) = &host.port_bindings else {
        return Ok(out);
    };
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let bad = |why: String| DockerError::BadRequest(format!("HostConfig.PortBindings {key:?}: {why}"));
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        if !matches!(proto, "tcp" | "udp") {
            return Err(bad(format!("protocol {proto:?}: berth publishes tcp and udp")));
        }
        let container: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("expected PORT/PROTOCOL".into()))?;
        for b in bindings[key].iter().flatten() {
            let host_port: u16 = match b.host_port.as_deref().unwrap_or("") {
                "" => 0,
                p => p
                    .parse()
                    .map_err(|_| bad(format!("host port {p:?} is not a port number")))?,
            };
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" | "0.0.0.0" => None,
                ip => {
                    let v4: std::net::Ipv4Addr = ip
                        .parse()
                        .map_err(|_| bad(format!("host address {ip:?}: berth publishes on IPv4 addresses")))?;
                    Some(v4.to_string())
                }
            };
            out.push(PortMapping {
                host_ip,
                host: host_port,
                container,
                protocol: (proto == "udp").then(|| "udp".to_string()),
            });
        }
    }
    Ok(out)
}

/// NetworkMode and the one endpoint Docker's CLI sends for it.
fn network(spec: &mut ContainerSpec, host: &HostConfig, body: &Value) -> Result<()> {
    let mode = host.network_mode.as_deref().unwrap_or("");
    let endpoints = body
        .pointer("/NetworkingConfig/EndpointsConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let joined = match mode {
        "" | "default" | "bridge" => DEFAULT_NETWORK,
        "host" | "none" => {
            spec.network = Some(mode.to_string());
            ""
        }
        m if m.starts_with("container:") => {
            spec.network = Some(m.to_string());
            ""
        }
        named => named,
    };
    for (net, settings) in &endpoints {
        let ours = net == joined || (joined == DEFAULT_NETWORK && net == "bridge");
        if !ours {
            if is_zero(settings) {
                continue;
            }
            return Err(DockerError::unsupported(
                format!("NetworkingConfig.EndpointsConfig.{net}"),
                "berth joins the network of HostConfig.NetworkMode at create; connect to others after",
            ));
        }
        if let Value::Object(fields) = settings {
            refuse_unknown(
                &format!("NetworkingConfig.EndpointsConfig.{net}."),
                fields,
                ENDPOINT_FIELDS,
            )?;
        }
    }
    if joined.is_empty() {
        return Ok(());
    }
    let mut attachment = NetworkAttachment::from(joined);
    if let Some(settings) = endpoints.get(joined) {
        attachment.aliases = settings
            .get("Aliases")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        attachment.ipv4_address = settings
            .pointer("/IPAMConfig/IPv4Address")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .map(String::from);
    }
    spec.networks = vec![attachment];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the docker CLI 28 sends for `docker run --rm busybox echo hi`
    /// (its zero fields included).
    fn cli_body() -> Value {
        serde_json::from_str(
            r#"{
            "Hostname": "", "Domainname": "", "User": "",
            "AttachStdin": false, "AttachStdout": true, "AttachStderr": true,
            "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": [], "Cmd": ["echo", "hi"], "Image": "busybox", "Volumes": {},
            "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {},
            "HostConfig": {
                "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "AutoRemove": true, "VolumeDriver": "", "VolumesFrom": null, "ConsoleSize": [40, 120],
                "CapAdd": null, "CapDrop": null, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                "ExtraHosts": null, "GroupAdd": null, "IpcMode": "", "Cgroup": "", "Links": null,
                "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false,
                "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
                "BlkioWeight": 0, "BlkioWeightDevice": [], "Devices": [], "MemoryReservation": 0,
                "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": null, "PidsLimit": null,
                "Ulimits": [], "MaskedPaths": null, "ReadonlyPaths": null
            },
            "NetworkingConfig": {"EndpointsConfig": {}}
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn the_clis_plain_run_becomes_a_container_on_the_default_network() {
        let req = run_request(Some("web"), &cli_body()).unwrap();
        assert_eq!(req.name.as_deref(), Some("web"));
        assert_eq!(req.spec.image, "busybox");
        assert_eq!(req.spec.command, ["echo", "hi"]);
        assert_eq!(req.spec.networks, [DEFAULT_NETWORK]);
        assert_eq!(req.spec.restart_policy, RestartPolicy::Never);
        assert!(req.rm);
        assert!(req.detach && !req.attach);
        assert!(req.spec.resources.is_none());
        assert!(!req.spec.publish_all);
    }

    #[test]
    fn honoured_host_config_fields_reach_the_spec() {
        let mut body = cli_body();
        body["Env"] = json!(["A=1", "B=x=y"]);
        body["Tty"] = json!(true);
        body["OpenStdin"] = json!(true);
        body["Labels"] = json!({"com.example": "yes"});
        body["ExposedPorts"] = json!({"80/tcp": {}});
        let host = &mut body["HostConfig"];
        host["Binds"] = json!(["/srv:/data:ro", "vol:/v"]);
        host["PortBindings"] =
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]});
        host["RestartPolicy"] = json!({"Name": "on-failure", "MaximumRetryCount": 3});
        host["Memory"] = json!(64 << 20);
        host["NanoCpus"] = json!(500_000_000);
        host["PidsLimit"] = json!(-1);
        host["CapDrop"] = json!(["NET_RAW"]);
        host["MemorySwap"] = json!(-1);
        host["CpusetCpus"] = json!("0");
        host["OomKillDisable"] = json!(false);
        let req = run_request(None, &body).unwrap();
        assert_eq!(req.name, None);
        assert_eq!(req.spec.env["B"], "x=y");
        assert!(req.spec.tty && req.spec.stdin);
        assert_eq!(req.labels["com.example"], "yes");
        assert_eq!(req.spec.volumes[0].host_path.as_deref(), Some("/srv"));
        assert!(req.spec.volumes[0].read_only);
        assert_eq!(req.spec.volumes[1].volume.as_deref(), Some("vol"));
        let ports: Vec<_> = req
            .spec
            .ports
            .iter()
            .map(|p| (p.host_ip.clone(), p.host, p.container, p.proto().to_string()))
            .collect();
        assert_eq!(
            ports,
            [
                (None, 0, 53, "udp".to_string()),
                (Some("127.0.0.1".into()), 8080, 80, "tcp".to_string())
            ]
        );
        assert_eq!(req.spec.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(req.spec.restart_max_retries, Some(3));
        let r = req.spec.resources.unwrap();
        assert_eq!(r.memory, Some(manifest::Memory(64 << 20)));
        assert_eq!(r.cpus, Some(manifest::Cpus(0.5)));
        assert_eq!(r.pids, None);
        assert_eq!(r.memory_swap, Some(manifest::MemorySwap::Unlimited));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("0"));
        assert!(!r.oom_kill_disable);
        assert_eq!(req.spec.security_context.unwrap().cap_drop, ["NET_RAW"]);
    }

    #[test]
    fn namespaces_names_mounts_and_limits_reach_the_spec() {
        let mut body = cli_body();
        let host = &mut body["HostConfig"];
        host["ExtraHosts"] = json!(["db:10.0.0.2", "gw:host-gateway"]);
        host["Dns"] = json!(["1.1.1.1"]);
        host["PidMode"] = json!("host");
        host["ShmSize"] = json!(1 << 20);
        host["Tmpfs"] = json!({"/run": "size=1m,mode=1777"});
        host["VolumesFrom"] = json!(["data:ro"]);
        host["Ulimits"] = json!([{"Name": "nofile", "Soft": 100, "Hard": 200}]);
        host["SecurityOpt"] = json!(["no-new-privileges"]);
        host["Mounts"] = json!([
            {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": true},
            {"Type": "volume", "Source": "", "Target": "/anon"},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096, "Mode": 448}}
        ]);
        let spec = run_request(None, &body).unwrap().spec;
        assert_eq!(spec.extra_hosts[1].ip, "host-gateway");
        assert_eq!(spec.dns.unwrap().servers, ["1.1.1.1"]);
        assert_eq!(spec.pid.as_deref(), Some("host"));
        assert_eq!(spec.shm_size, Some(manifest::Memory(1 << 20)));
        assert!(spec.volumes_from[0].read_only);
        let sc = spec.security_context.unwrap();
        assert_eq!(sc.ulimits["nofile"].hard, 200);
        assert_eq!(sc.no_new_privileges, Some(true));
        let v = &spec.volumes;
        assert_eq!((v[0].host_path.as_deref(), v[0].read_only), (Some("/srv"), true));
        assert!(v[1].anonymous);
        assert_eq!((v[2].tmpfs.as_deref(), v[2].mode.as_deref()), (Some("/t"), Some("700")));
        assert_eq!(
            (v[3].tmpfs.as_deref(), v[3].size),
            (Some("/run"), Some(manifest::Memory(1 << 20)))
        );
        for (field, value, named) in [
            (
                "Mounts",
                json!([{"Type": "npipe", "Target": "/x"}]),
                "HostConfig.Mounts[0].Type",
            ),
            (
                "Mounts",
                json!([{"Type": "bind", "Source": "/a", "Target": "/b", "BindOptions": {"Propagation": "shared"}}]),
                "HostConfig.Mounts[0].BindOptions",
            ),
            ("SecurityOpt", json!(["apparmor=x"]), "HostConfig.SecurityOpt"),
            ("Tmpfs", json!({"/x": "uid=5"}), "HostConfig.Tmpfs"),
        ] {
            let mut body = cli_body();
            body["HostConfig"][field] = value;
            let e = run_request(None, &body).unwrap_err().to_string();
            assert!(e.starts_with(named), "{e}");
        }
    }

    #[test]
    fn an_update_takes_limits_and_a_policy_and_refuses_what_it_cannot_change() {
        let req = update_request(&json!({
            "Memory": 67108864, "PidsLimit": 50, "CpuShares": 0, "MemorySwappiness": null,
            "KernelMemory": 0, "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}
        }))
        .unwrap();
        assert_eq!(req.resources.memory, Some(manifest::Memory(64 << 20)));
        assert_eq!(req.resources.pids, Some(50));
        assert_eq!(req.restart_policy, Some(RestartPolicy::Always));
        let none = update_request(&json!({"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}})).unwrap();
        assert_eq!(none.restart_policy, None);
        for (body, field) in [
            (json!({"KernelMemory": 5}), "KernelMemory"),
            (json!({"Devices": [{"PathOnHost": "/dev/null"}]}), "Devices"),
            (
                json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}),
                "RestartPolicy.MaximumRetryCount",
            ),
        ] {
            let e = update_request(&body).unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(update_request(&json!({"Memory": -1}))
            .unwrap_err()
            .to_string()
            .contains("Memory"));
        assert!(update_request(&json!([])).is_err());
    }

    #[test]
    fn a_named_network_takes_its_endpoints_aliases() {
        let mut body = cli_body();
        body["HostConfig"]["NetworkMode"] = json!("backend");
        body["NetworkingConfig"] =
            json!({"EndpointsConfig": {"backend": {"Aliases": ["db"], "Links": null, "MacAddress": ""}}});
        let req = run_request(None, &body).unwrap();
        assert_eq!(req.spec.networks.len(), 1);
        assert_eq!(req.spec.networks[0].name, "backend");
        assert_eq!(req.spec.networks[0].aliases, ["db"]);
        body["HostConfig"]["NetworkMode"] = json!("host");
        let req = run_request(None, &body).unwrap_err().to_string();
        assert!(req.contains("NetworkingConfig.EndpointsConfig.backend"), "{req}");
    }

    #[test]
    fn a_field_berth_cannot_honour_is_refused_by_its_name() {
        for (field, value) in [
            ("BlkioDeviceReadBps", json!([{"Path": "/dev/sda", "Rate": 1}])),
            ("VolumeDriver", json!("convoy")),
            ("Runtime", json!("runsc")),
            ("CgroupParent", json!("/x")),
        ] {
            let mut body = cli_body();
            body["HostConfig"][field] = value;
            let e = run_request(None, &body).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(e.to_string().starts_with(&format!("HostConfig.{field} ")), "{e}");
        }
        let mut body = cli_body();
        body["Volumes"] = json!({"/data": {}});
        assert!(run_request(None, &body)
            .unwrap_err()
            .to_string()
            .starts_with("Volumes "));
        let mut body = cli_body();
        body["HostConfig"]["LogConfig"] = json!({"Type": "syslog"});
        assert!(run_request(None, &body)
            .unwrap_err()
            .to_string()
            .contains("HostConfig.LogConfig"));
        let mut body = cli_body();
        body["ExposedPorts"] = json!({"80/tcp": {}});
        assert!(run_request(None, &body)
            .unwrap_err()
            .to_string()
            .contains("Config.ExposedPorts"));
    }

    #[test]
    fn bad_values_are_refused_saying_what_was_wrong() {
        let mut body = cli_body();
        body["HostConfig"]["Binds"] = json!(["/a:/b:z"]);
        assert!(run_request(None, &body).unwrap_err().to_string().contains("\"z\""));
        let mut body = cli_body();
        body["HostConfig"]["Binds"] = json!(["/a"]);
        assert!(run_request(None, &body)
            .unwrap_err()
            .to_string()
            .contains("SOURCE:TARGET"));
        let mut body = cli_body();
        body["HostConfig"]["PortBindings"] = json!({"80/sctp": [{"HostPort": "1"}]});
        assert!(run_request(None, &body).unwrap_err().to_string().contains("sctp"));
        let mut body = cli_body();
        body["Image"] = json!("");
        assert!(run_request(None, &body)
            .unwrap_err()
            .to_string()
            .contains("Config.Image"));
        let mut body = cli_body();
        body["Memory"] = json!(1);
        body["HostConfig"]["Memory"] = json!("lots");
        let e = run_request(None, &body).unwrap_err().to_string();
        assert!(e.contains("Memory"), "{e}");
        assert!(run_request(None, &json!([1])).is_err());
    }
}
