//! Docker-shaped documents of containers, images, networks and volumes: the
//! parts of `docker inspect` that scripts read, under Docker's field names.
//! `berth inspect` prints them, and a Docker-compatible API serves the same
//! structs from `GET /containers/{id}/json` and its siblings.
//!
//! Ids: berth names its objects, so a container's `Id` is its runtime id
//! (its name unless renamed) and a network's or volume's is its name; every
//! berth command takes them back. An image's is its config digest, as Docker's.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommandError, Result};
use crate::manifest::{self, Kind, RestartPolicy};
use crate::reconcile::{ContainerFacts, Engine, NetworkFacts, VolumeFacts};

/// Go's zero `time.Time`, which Docker prints for "never".
const NEVER: &str = "0001-01-01T00:00:00Z";

/// `POST /v1/docker/inspect`: one object by name or id, of any kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InspectRequest {
    pub name: String,
    /// `container`, `image`, `network` or `volume`; without it, the first
    /// kind that has the name, in Docker's order (container, image, volume,
    /// network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One document, of whichever kind was found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Document {
    Container(Box<ContainerJson>),
    Image(Box<ImageJson>),
    Network(Box<NetworkJson>),
    Volume(Box<VolumeJson>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerJson {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    /// The image's id.
    pub image: String,
    pub log_path: String,
    /// `/` and the name, as Docker's.
    pub name: String,
    pub restart_count: u32,
    pub driver: String,
    pub platform: String,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<MountPoint>,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// The init's pid on the host; 0 when not running.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub binds: Vec<String>,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub restart_policy: RestartPolicyJson,
    pub auto_remove: bool,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub pid_mode: String,
    pub ipc_mode: String,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub memory: u64,
    pub nano_cpus: u64,
    pub cpu_shares: u64,
    pub pids_limit: Option<u64>,
    pub tmpfs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyJson {
    /// no, always, on-failure or unless-stopped.
    pub name: String,
    pub maximum_retry_count: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// volume, bind or tmpfs.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    /// The image as the container names it.
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// Its address on the default `bridge` network ("" on others, as Docker's).
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
    /// `80/tcp` to its host bindings; `null` for a port exposed only.
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    pub sandbox_key: String,
    pub networks: BTreeMap<String, EndpointSettings>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// Empty: berth leaves a container's MAC to the kernel and does not read it back.
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ImageJson {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: String,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Bytes of its unpacked layers.
    pub size: u64,
    /// The config's `config` object (Cmd, Env, Entrypoint, Labels…) as stored.
    pub config: serde_json::Value,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    /// The layers' diff ids, bottom first.
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkJson {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub containers: BTreeMap<String, NetworkMember>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkMember {
    pub name: String,
    pub mac_address: String,
    /// `10.89.0.2/24`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeJson {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

/// `inspect NAME`: the object of `kind`, or without one the first kind that
/// has the name, in Docker's order (a container before an image of the same
/// name).
pub fn inspect(engine: &Arc<Engine>, req: &InspectRequest) -> Result<Document> {
    let kinds: Vec<Kind> = match req.kind.as_deref() {
        None => vec![Kind::Container, Kind::Image, Kind::Volume, Kind::Network],
        Some("container") => vec![Kind::Container],
        Some("image") => vec![Kind::Image],
        Some("network") => vec![Kind::Network],
        Some("volume") => vec![Kind::Volume],
        Some(other) => {
            return Err(CommandError::Invalid(format!(
                "inspect: unknown --type {}: use container, image, network or volume",
                super::quote(other)
            )))
        }
    };
    // Whether some kind other than images could have this name.
    let label = kinds
        .iter()
        .any(|k| *k != Kind::Image && manifest::is_object_name(*k, &req.name));
    if !label {
        match kinds.as_slice() {
            [Kind::Image] => {}
            [kind] => super::check_name(*kind, &req.name)?,
            _ if !is_image_name(&req.name) => {
                return Err(CommandError::Invalid(format!(
                    "invalid name {}: neither an object's name (letters, digits, `_`, `.` and `-`) \
                     nor an image reference or id",
                    super::quote(&req.name)
                )))
            }
            _ => {}
        }
    }
    for kind in &kinds {
        let found = match kind {
            Kind::Image => image(engine, &req.name)?.map(|d| Document::Image(Box::new(d))),
            // A name this kind cannot have is simply not found there.
            _ if !manifest::is_object_name(*kind, &req.name) => None,
            Kind::Container => container(engine, &req.name)?.map(|d| Document::Container(Box::new(d))),
            Kind::Network => network(engine, &req.name)?.map(|d| Document::Network(Box::new(d))),
            Kind::Volume => volume(engine, &req.name)?.map(|d| Document::Volume(Box::new(d))),
        };
        if let Some(doc) = found {
            return Ok(doc);
        }
    }
    let what = match req.kind.as_deref() {
        Some(kind) => format!("{kind} {}", super::quote(&req.name)),
        None => format!(
            "object {} (no container, image, volume or network has it)",
            super::quote(&req.name)
        ),
    };
    Err(CommandError::NotFound(what))
}

/// An image reference (`registry/repo:tag`) or id (`sha256:` and hex).
fn is_image_name(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    (!hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        || crate::image::record::normalize(name).is_ok()
}

/// RFC 3339 of unix milliseconds, with nanoseconds as Docker prints them.
fn rfc3339(ms: Option<i64>) -> String {
    ms.filter(|ms| *ms > 0)
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| NEVER.to_string())
}

/// Docker's state name of a berth status (`Running (healthy)`, `Exited(1)`, …).
fn docker_status(view: &crate::wire::ObjectView) -> &'static str {
    let s = view.status.as_str();
    if s.starts_with("Paused") {
        "paused"
    } else if view.pid.is_some() {
        "running"
    } else if s.starts_with("Restarting") || s.starts_with("Starting") {
        "restarting"
    } else if s.starts_with("Deleting") {
        "removing"
    } else if view.exit.is_some() {
        "exited"
    } else {
        "created"
    }
}

pub fn container(engine: &Arc<Engine>, name: &str) -> Result<Option<ContainerJson>> {
    let Some(f) = engine.container_facts(name)? else {
        return Ok(None);
    };
    Ok(Some(container_json(&f)))
}

pub fn container_json(f: &ContainerFacts) -> ContainerJson {
    let spec = &f.spec;
    let security = spec.security_context.clone().unwrap_or_default();
    let image_config = f.image.as_ref().map(|i| &i.config);
    let process = f.oci.as_ref().and_then(|o| o.process().as_ref());
    let entrypoint = spec
        .entrypoint
        .clone()
        .or_else(|| image_config.map(|c| c.entrypoint.clone()))
        .filter(|e| !e.is_empty());
    let cmd = if !spec.command.is_empty() {
        Some(spec.command.clone())
    } else if spec.entrypoint.is_some() {
        None
    } else {
        image_config.map(|c| c.cmd.clone()).filter(|c| !c.is_empty())
    };
    let argv: Vec<String> = entrypoint
        .iter()
        .flatten()
        .chain(cmd.iter().flatten())
        .cloned()
        .collect();
    let env = match process.and_then(|p| p.env().clone()) {
        Some(env) if !env.is_empty() => env,
        _ => spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    };
    let exit = f.view.exit.as_ref();
    let status = docker_status(&f.view);
    let running = f.view.pid.is_some();
    let state = ContainerState {
        status: status.into(),
        running,
        paused: status == "paused",
        restarting: status == "restarting",
        oom_killed: exit.is_some_and(|e| e.oom_killed),
        dead: false,
        pid: f.view.pid.unwrap_or(0),
        exit_code: if running { 0 } else { exit.map_or(0, |e| e.code) },
        error: f
            .view
            .detail
            .clone()
            .filter(|_| f.view.status.starts_with("Failed"))
            .unwrap_or_default(),
        started_at: rfc3339(f.started_at),
        finished_at: rfc3339(f.last_exit.as_ref().map(|e| e.finished_at)),
        health: f.view.health.as_ref().map(|h| Health {
            status: h.status.clone(),
            failing_streak: h.failing_streak,
        }),
    };
    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in &spec.ports {
        port_bindings
            .entry(format!("{}/{}", p.container, p.proto()))
            .or_default()
            .push(PortBinding {
                host_ip: p.host_ip.clone().unwrap_or_default(),
                host_port: p.host.to_string(),
            });
    }
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = image_config
        .map(|c| c.exposed_ports.keys().map(|k| (k.clone(), None)).collect())
        .unwrap_or_default();
    if running {
        for (port, bindings) in &port_bindings {
            let shown = bindings
                .iter()
                .map(|b| PortBinding {
                    host_ip: if b.host_ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        b.host_ip.clone()
                    },
                    host_port: b.host_port.clone(),
                })
                .collect();
            ports.insert(port.clone(), Some(shown));
        }
    }
    let (mounts, binds, tmpfs) = mounts(f);
    let resources = spec.resources.as_ref();
    let network_mode = match (&spec.network, spec.networks.first()) {
        (Some(mode), _) => mode.clone(),
        (None, Some(first)) => first.name.clone(),
        (None, None) => "none".into(),
    };
    let mut network_settings = NetworkSettings {
        ports,
        sandbox_key: if spec.networks.is_empty() {
            String::new()
        } else {
            format!("/run/netns/{}", f.id)
        },
        ..Default::default()
    };
    for a in &f.addresses {
        let aliases = spec
            .networks
            .iter()
            .find(|n| n.name == a.network)
            .map(|n| n.aliases.clone())
            .filter(|a| !a.is_empty());
        if a.network == crate::wire::DEFAULT_NETWORK {
            network_settings.ip_address = a.ip.clone();
            network_settings.ip_prefix_len = a.prefix;
            network_settings.gateway = a.gateway.clone();
        }
        network_settings.networks.insert(
            a.network.clone(),
            EndpointSettings {
                aliases,
                network_id: a.network.clone(),
                gateway: a.gateway.clone(),
                ip_address: a.ip.clone(),
                ip_prefix_len: a.prefix,
                mac_address: String::new(),
            },
        );
    }
    let no_new_privileges = spec
        .security_context
        .as_ref()
        .and_then(|s| s.no_new_privileges)
        .unwrap_or(false);
    let user = spec
        .user
        .clone()
        .or_else(|| image_config.and_then(|c| c.user.clone()))
        .unwrap_or_default();
    ContainerJson {
        id: f.id.clone(),
        created: rfc3339(Some(f.created_at)),
        path: argv.first().cloned().unwrap_or_default(),
        args: argv.iter().skip(1).cloned().collect(),
        state,
        image: f.image.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
        log_path: f.log_path.display().to_string(),
        name: format!("/{}", f.view.name),
        restart_count: f.view.restarts,
        driver: "overlay".into(),
        platform: "linux".into(),
        host_config: HostConfig {
            binds,
            log_config: LogConfig {
                kind: "json-file".into(),
                config: BTreeMap::new(),
            },
            network_mode,
            port_bindings,
            restart_policy: RestartPolicyJson {
                name: match spec.restart_policy {
                    RestartPolicy::Always => "always",
                    RestartPolicy::UnlessStopped => "unless-stopped",
                    RestartPolicy::OnFailure => "on-failure",
                    RestartPolicy::Never => "no",
                }
                .into(),
                maximum_retry_count: spec.restart_max_retries.unwrap_or(0),
            },
            auto_remove: f.auto_remove,
            security_opt: if no_new_privileges {
                vec!["no-new-privileges".into()]
            } else {
                Vec::new()
            },
            privileged: security.privileged,
            publish_all_ports: spec.publish_all,
            readonly_rootfs: spec.read_only_rootfs,
            cap_add: security.cap_add.clone(),
            cap_drop: security.cap_drop.clone(),
            pid_mode: spec.pid.clone().unwrap_or_default(),
            ipc_mode: spec.ipc.clone().unwrap_or_else(|| "private".into()),
            uts_mode: spec.uts.clone().unwrap_or_default(),
            userns_mode: match spec.userns {
                Some(manifest::UsernsMode::Auto) => "auto".into(),
                Some(manifest::UsernsMode::Host) => "host".into(),
                None => String::new(),
            },
            memory: resources.and_then(|r| r.memory).map_or(0, |m| m.0),
            nano_cpus: resources.and_then(|r| r.cpus).map_or(0, |c| (c.0 * 1e9).round() as u64),
            cpu_shares: resources.and_then(|r| r.cpu_shares).unwrap_or(0),
            pids_limit: resources.and_then(|r| r.pids).map(u64::from),
            tmpfs,
        },
        graph_driver: GraphDriver {
            name: "overlay".into(),
            data: [("UpperDir".to_string(), f.upper_dir.display().to_string())].into(),
        },
        mounts,
        config: ContainerConfig {
            hostname: f
                .oci
                .as_ref()
                .and_then(|o| o.hostname().clone())
                .unwrap_or_else(|| f.view.name.clone()),
            domainname: String::new(),
            user,
            attach_stdin: spec.stdin,
            tty: spec.tty,
            open_stdin: spec.stdin,
            exposed_ports: image_config
                .map(|c| {
                    c.exposed_ports
                        .keys()
                        .map(|k| (k.clone(), serde_json::json!({})))
                        .collect()
                })
                .unwrap_or_default(),
            env,
            cmd,
            image: spec.image.clone(),
            volumes: image_config
                .map(|c| {
                    c.volumes
                        .keys()
                        .map(|k| (k.clone(), serde_json::json!({})))
                        .collect::<BTreeMap<_, _>>()
                })
                .filter(|v| !v.is_empty()),
            working_dir: process
                .map(|p| p.cwd().display().to_string())
                .or_else(|| spec.working_dir.clone())
                .or_else(|| image_config.and_then(|c| c.working_dir.clone()))
                .unwrap_or_default(),
            entrypoint,
            labels: f.labels.clone(),
            stop_signal: image_config.and_then(|c| c.stop_signal.clone()),
        },
        network_settings,
    }
}

/// `Mounts`, `HostConfig.Binds` and `HostConfig.Tmpfs` of a container.
fn mounts(f: &ContainerFacts) -> (Vec<MountPoint>, Vec<String>, BTreeMap<String, String>) {
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    let mut tmpfs = BTreeMap::new();
    for v in &f.spec.volumes {
        let destination = v.path.clone().or_else(|| v.tmpfs.clone()).unwrap_or_default();
        let mode = if v.read_only { "ro" } else { "rw" };
        let propagation = v
            .propagation
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|p| p.as_str().map(str::to_ascii_lowercase))
            .unwrap_or_else(|| "rprivate".into());
        if let Some(name) = &v.volume {
            binds.push(format!("{name}:{destination}:{mode}"));
            mounts.push(MountPoint {
                kind: "volume".into(),
                name: Some(name.clone()),
                source: f
                    .volume_dirs
                    .get(name)
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                destination,
                driver: Some("local".into()),
                mode: if v.read_only { "ro".into() } else { "z".into() },
                rw: !v.read_only,
                propagation: String::new(),
            });
        } else if let Some(host) = &v.host_path {
            binds.push(format!("{host}:{destination}:{mode}"));
            mounts.push(MountPoint {
                kind: "bind".into(),
                name: None,
                source: host.clone(),
                destination,
                driver: None,
                mode: if v.read_only { "ro".into() } else { String::new() },
                rw: !v.read_only,
                propagation,
            });
        } else if v.tmpfs.is_some() {
            let mut opts = Vec::new();
            if let Some(size) = v.size {
                opts.push(format!("size={}", size.0));
            }
            if let Some(mode) = &v.mode {
                opts.push(format!("mode={mode}"));
            }
            tmpfs.insert(destination.clone(), opts.join(","));
            mounts.push(MountPoint {
                kind: "tmpfs".into(),
                name: None,
                source: String::new(),
                destination,
                driver: None,
                mode: String::new(),
                rw: !v.read_only,
                propagation: String::new(),
            });
        }
    }
    for a in &f.anonymous {
        mounts.push(MountPoint {
            kind: "volume".into(),
            name: Some(a.id.clone()),
            source: String::new(),
            destination: a.path.clone(),
            driver: Some("local".into()),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
        });
    }
    (mounts, binds, tmpfs)
}

pub fn image(engine: &Arc<Engine>, name: &str) -> Result<Option<ImageJson>> {
    let host = engine.image_host();
    // An Image object's name first (a DNS label), then a reference or id.
    let object = match manifest::is_dns_label(name) {
        true => engine.image_object_id(name)?,
        false => None,
    };
    let Some(record) = object.and_then(|id| host.image(&id)).or_else(|| host.image(name)) else {
        return Ok(None);
    };
    let blob: serde_json::Value = host
        .config_blob(&record)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let references = host
        .images()
        .map_err(|e| CommandError::Unavailable(format!("listing images: {e}")))?
        .into_iter()
        .find(|s| s.record.id == record.id)
        .map(|s| s.references)
        .unwrap_or_default();
    let repo_digests = references
        .iter()
        .map(|r| {
            let repo = r.split_once('@').map_or_else(|| repository(r), |(repo, _)| repo);
            format!("{repo}@{}", record.manifest_digest)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut platform = record.platform.split('/');
    let os = platform.next().unwrap_or_default().to_string();
    let architecture = platform.next().unwrap_or_default().to_string();
    let variant = platform.next().map(str::to_owned);
    let layers = blob["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(Some(ImageJson {
        id: record.id.clone(),
        repo_tags: references.iter().filter(|r| !r.contains('@')).cloned().collect(),
        repo_digests,
        created: blob["created"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| rfc3339(Some(record.created_at))),
        architecture,
        os,
        variant,
        size: host.layer_sizes(&record).iter().sum(),
        config: blob["config"].clone(),
        root_fs: RootFs {
            kind: "layers".into(),
            layers,
        },
    }))
}

/// `registry/repo` of `registry/repo:tag` (a port's colon is not a tag's).
fn repository(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

pub fn network(engine: &Arc<Engine>, name: &str) -> Result<Option<NetworkJson>> {
    let Some(f) = engine.network_facts(name)? else {
        return Ok(None);
    };
    Ok(Some(network_json(&f)))
}

fn network_json(f: &NetworkFacts) -> NetworkJson {
    let prefix = f
        .subnet
        .as_deref()
        .and_then(|s| s.rsplit_once('/'))
        .map(|(_, p)| p)
        .unwrap_or("32");
    let mut options = BTreeMap::new();
    if let Some(bridge) = &f.bridge {
        if f.spec.parent.is_none() {
            options.insert("com.docker.network.bridge.name".into(), bridge.clone());
        }
    }
    if let Some(mtu) = f.spec.mtu {
        options.insert("com.docker.network.driver.mtu".into(), mtu.to_string());
    }
    if let Some(parent) = &f.spec.parent {
        options.insert("parent".into(), parent.clone());
    }
    NetworkJson {
        name: f.name.clone(),
        id: f.name.clone(),
        created: rfc3339(f.created_at),
        scope: "local".into(),
        driver: f.spec.driver.clone().unwrap_or_else(|| "bridge".into()),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            config: f
                .subnet
                .iter()
                .map(|subnet| IpamConfig {
                    subnet: subnet.clone(),
                    gateway: f.gateway.clone().unwrap_or_default(),
                    ip_range: f.ip_range.clone(),
                })
                .collect(),
        },
        internal: f.spec.internal,
        attachable: true,
        containers: f
            .members
            .iter()
            .map(|(container, ip)| {
                (
                    container.clone(),
                    NetworkMember {
                        name: container.clone(),
                        mac_address: String::new(),
                        ipv4_address: format!("{ip}/{prefix}"),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect(),
        options,
        labels: f.labels.clone(),
    }
}

pub fn volume(engine: &Arc<Engine>, name: &str) -> Result<Option<VolumeJson>> {
    Ok(engine.volume_facts(name)?.map(|f| volume_json(&f)))
}

fn volume_json(f: &VolumeFacts) -> VolumeJson {
    let mut labels = f.labels.clone();
    if let Some((container, _)) = &f.anonymous_of {
        // Docker marks anonymous volumes so; berth also names the owner.
        labels.insert("com.docker.volume.anonymous".into(), String::new());
        labels.insert("berth.io/anonymous-of".into(), container.clone());
    }
    VolumeJson {
        name: f.name.clone(),
        driver: "local".into(),
        mountpoint: f.dir.display().to_string(),
        created_at: rfc3339(f.created_at),
        labels,
        options: BTreeMap::new(),
        scope: "local".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_gos_zero_time_and_a_time_is_rfc3339() {
        assert_eq!(rfc3339(None), NEVER);
        assert_eq!(rfc3339(Some(0)), NEVER);
        assert_eq!(rfc3339(Some(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn image_names_are_references_or_ids() {
        for ok in ["busybox", "localhost:5000/app:1", "sha256:0123abcd", &"a".repeat(64)] {
            assert!(is_image_name(ok), "{ok}");
        }
        for bad in ["Web", "../web", "web/..", "./web", "web x", "web%00", "web\u{1b}[31m"] {
            assert!(!is_image_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_repository_keeps_a_registry_port() {
        assert_eq!(repository("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(
            repository("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
    }

    #[test]
    fn documents_use_dockers_field_names() {
        let doc = serde_json::to_value(ContainerJson::default()).unwrap();
        for path in [
            "/State/Pid",
            "/State/OOMKilled",
            "/Config/Labels",
            "/NetworkSettings/Networks",
            "/NetworkSettings/IPAddress",
            "/HostConfig/NanoCpus",
            "/HostConfig/PidsLimit",
            "/HostConfig/RestartPolicy/MaximumRetryCount",
        ] {
            assert!(doc.pointer(path).is_some(), "{path} in {doc}");
        }
        let net = serde_json::to_value(NetworkJson::default()).unwrap();
        assert!(net.pointer("/IPAM/Config").is_some(), "{net}");
        let img = serde_json::to_value(ImageJson::default()).unwrap();
        assert!(img.pointer("/RootFS/Layers").is_some(), "{img}");
    }
}
