//! Manifest → runtime: turns a Container object into the runtime's
//! [`ContainerConfig`]. The only place that knows both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::image::ImageConfig;
use crate::manifest::types::{parse_mode, Propagation};
use crate::manifest::{ContainerSpec, DeviceIops, DeviceRate, Duration, Healthcheck, ImageSpec, MemorySwap, Resources};
use crate::runtime::isolation::{DeviceRequest, DeviceRule, Isolation, NamespaceJoin, SeccompMode};
use crate::runtime::{ContainerConfig, DeviceLimit, InitIo, Limits, MountSpec, NetnsMode};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container spec cannot be turned into a runtime config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Neither the container nor its image names a command.
    #[error("no command: set spec.command, or cmd on the image")]
    NoCommand,
    /// The user (the container's, else the image's) cannot be resolved.
    #[error("user {0:?}: {1}")]
    BadUser(String, String),
    /// A device of an I/O limit is not a block device of the host.
    #[error("{field}: {path:?} {why}: name a block device of the host, e.g. /dev/sda")]
    BadDevice {
        field: &'static str,
        path: String,
        why: String,
    },
    /// A `groupAdd` name is not in the image's /etc/group.
    #[error("groupAdd {0:?}: {1}")]
    BadGroup(String, String),
}

/// What a container takes from its image, whether imported (the Image
/// object's `cmd` and `env`) or pulled (its config, under the Image object's
/// `cmd` and `env` when it has any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageView {
    /// Overlay lower dirs, top first.
    pub lower_dirs: Vec<PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value`, in order (later wins).
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    /// The image's `/etc/passwd` and `/etc/group`, to resolve user names.
    pub passwd: Option<String>,
    pub group: Option<String>,
    /// The image's HEALTHCHECK, for a container without its own.
    pub healthcheck: Option<Healthcheck>,
    /// The config's `Volumes`: paths that get an anonymous volume unless a
    /// mount of the container covers them.
    pub volumes: Vec<String>,
    /// The config's `ExposedPorts` (`80/tcp`), for inspect.
    pub exposed_ports: Vec<String>,
    /// The config's `Labels`: the container's defaults.
    pub labels: BTreeMap<String, String>,
}

/// Docker's image HEALTHCHECK as a manifest `healthcheck`: `NONE` (or an
/// empty test) is none, `CMD-SHELL` runs through `/bin/sh -c`, zero times
/// keep berth's defaults (which are Docker's).
pub fn image_healthcheck(h: &crate::image::ImageHealthcheck) -> Option<Healthcheck> {
    let exec = match h.test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => args.to_vec(),
        Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), args.join(" ")]
        }
        _ => return None,
    };
    let time = |ns: u64| (ns > 0).then(|| Duration(std::time::Duration::from_nanos(ns)));
    Some(Healthcheck {
        exec,
        interval: time(h.interval),
        timeout: time(h.timeout),
        retries: (h.retries > 0).then_some(h.retries),
        start_period: time(h.start_period),
        on_unhealthy: None,
    })
}

impl ImageView {
    /// A one-layer view with the Image object's `cmd` and `env` (tests build
    /// views from it; an imported image is a pulled one now).
    #[cfg(test)]
    pub fn imported(layer: &std::path::Path, image: &ImageSpec) -> ImageView {
        ImageView {
            lower_dirs: vec![layer.to_path_buf()],
            cmd: image.cmd.clone(),
            env: image.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ..Default::default()
        }
    }

    /// A pulled image; an Image object's `cmd` replaces the config's `Cmd`
    /// and its `env` goes over the config's `Env`.
    pub fn pulled(lower_dirs: Vec<PathBuf>, config: &ImageConfig, image: Option<&ImageSpec>) -> ImageView {
        let mut view = ImageView {
            lower_dirs,
            entrypoint: config.entrypoint.clone(),
            cmd: config.cmd.clone(),
            env: config.env.clone(),
            working_dir: config.working_dir.clone().filter(|d| !d.is_empty()),
            user: config.user.clone().filter(|u| !u.is_empty()),
            stop_signal: config.stop_signal.clone(),
            healthcheck: config.healthcheck.as_ref().and_then(image_healthcheck),
            volumes: config.volumes.keys().cloned().collect(),
            exposed_ports: config.exposed_ports.keys().cloned().collect(),
            labels: config.labels.clone(),
            ..Default::default()
        };
        if let Some(spec) = image {
            if !spec.cmd.is_empty() {
                view.cmd = spec.cmd.clone();
            }
            view.env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        view
    }
}

/// An anonymous volume: one path of the image's `Volumes` that no mount of
/// the container covers, as Docker makes one for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousVolume {
    /// Its name: 64 hex digits, as Docker's; never a named volume's, which
    /// are DNS labels of at most 63 characters.
    pub id: String,
    /// The path inside the container (normalized).
    pub path: String,
    /// Mounted read-only (a `-v /path:ro` of the spec's own).
    pub read_only: bool,
    /// Not filled from the image (`nocopy`).
    pub nocopy: bool,
}

/// `path` without `.` parts, repeated and trailing slashes; `None` when it is
/// not absolute or has a `..`.
fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The image's volumes that the container's own mounts leave uncovered (a
/// mount at exactly the same path covers one, as in Docker), each with the
/// anonymous volume's name: a hash of the container's name and the path, so
/// a restart or replace of the container finds the same volume again.
/// Paths that are not absolute or hold `..` are skipped, as `/` is.
///
/// The spec's own `anonymous` mounts come first, named the same way (so a
/// `-v /data` and an image's `VOLUME /data` of the same container are one
/// volume).
pub fn anonymous_volumes(name: &str, spec: &ContainerSpec, image: &ImageView) -> Vec<AnonymousVolume> {
    use sha2::{Digest, Sha256};
    let id_of = |path: &str| -> String {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut out: Vec<AnonymousVolume> = Vec::new();
    for m in spec.volumes.iter().filter(|m| m.anonymous) {
        let Some(path) = m.path.as_deref().and_then(normalize_path).filter(|p| p != "/") else {
            continue;
        };
        if out.iter().all(|a| a.path != path) {
            out.push(AnonymousVolume {
                id: id_of(&path),
                path,
                read_only: m.read_only,
                nocopy: m.nocopy,
            });
        }
    }
    let covered: Vec<String> = spec
        .volumes
        .iter()
        .filter_map(|m| m.tmpfs.as_deref().or(m.path.as_deref()))
        .filter_map(normalize_path)
        .collect();
    for raw in &image.volumes {
        let Some(path) = normalize_path(raw).filter(|p| p != "/") else {
            continue;
        };
        if covered.contains(&path) || out.iter().any(|a| a.path == path) {
            continue;
        }
        out.push(AnonymousVolume {
            id: id_of(&path),
            path,
            read_only: false,
            nocopy: false,
        });
    }
    out
}

/// The mounts `--volumes-from SOURCE[:ro]` gives: the source's named
/// volumes, host binds and anonymous volumes (`anonymous`, as
/// [`anonymous_volumes`] names them for it) at the same paths, each
/// read-only if it is or if `read_only`; not its tmpfs mounts (as Docker).
/// A path the container mounts itself (`own`) stays its own.
pub fn volumes_from_mounts(
    source: &ContainerSpec,
    anonymous: &[AnonymousVolume],
    read_only: bool,
    own: &ContainerSpec,
    volume_dir: &dyn Fn(&str) -> PathBuf,
) -> Vec<MountSpec> {
    let taken: Vec<String> = own
        .volumes
        .iter()
        .filter_map(|m| m.tmpfs.as_deref().or(m.path.as_deref()))
        .filter_map(normalize_path)
        .collect();
    let mut out: Vec<MountSpec> = Vec::new();
    let mut push = |mount: MountSpec| {
        let Some(path) = normalize_path(&mount.destination) else {
            return;
        };
        if !taken.contains(&path) && out.iter().all(|m| m.destination != mount.destination) {
            out.push(mount);
        }
    };
    for m in &source.volumes {
        let ro = m.read_only || read_only;
        if let (Some(vol), Some(path)) = (&m.volume, &m.path) {
            push(bind(volume_dir(vol), path, ro));
        } else if let (Some(host), Some(path)) = (&m.host_path, &m.path) {
            let mut mount = bind(PathBuf::from(host), path, ro);
            mount
                .options
                .push(m.propagation.unwrap_or(Propagation::Rprivate).as_str().to_string());
            push(mount);
        }
    }
    for anon in anonymous {
        push(bind(volume_dir(&anon.id), &anon.path, anon.read_only || read_only));
    }
    out
}

/// The container's labels: the image's, under the manifest's.
pub fn labels(image: &ImageView, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = image.labels.clone();
    labels.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// `volume_dir(name)` gives the host directory of a named volume.
///
/// As Docker: the process is the entrypoint (the container's, else the
/// image's) followed by the container's `command`, else the image's `Cmd`,
/// which an overridden entrypoint drops. Env: defaults, then the image's,
/// then the container's. Working dir and user: the container's, else the
/// image's; user names are resolved in the image's passwd and group. Each
/// path of the image's `Volumes` no mount covers gets its anonymous volume
/// (see [`anonymous_volumes`]).
pub fn container_config(
    name: &str,
    spec: &ContainerSpec,
    image: &ImageView,
    volume_dir: &dyn Fn(&str) -> PathBuf,
) -> Result<ContainerConfig, TranslateError> {
    let mut args = spec.entrypoint.clone().unwrap_or_else(|| image.entrypoint.clone());
    if !spec.command.is_empty() {
        args.extend(spec.command.iter().cloned());
    } else if spec.entrypoint.is_none() {
        args.extend(image.cmd.iter().cloned());
    }
    if args.is_empty() {
        return Err(TranslateError::NoCommand);
    }
    let hostname = hostname_of(name, spec);
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("HOSTNAME".into(), hostname.clone());
    if spec.tty {
        // As Docker and podman: programs on a pty look for it; the image's
        // or the user's TERM goes over it.
        env.insert("TERM".into(), "xterm".into());
    }
    for pair in &image.env {
        let (k, v) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        env.insert(k.to_string(), v.to_string());
    }
    env.extend(spec.env.clone());
    let (uid, gid) = match spec.user.as_deref().or(image.user.as_deref()) {
        None => (0, 0),
        Some(u) => crate::image::record::resolve_user(u, image.passwd.as_deref(), image.group.as_deref())
            .map_err(|why| TranslateError::BadUser(u.to_string(), why))?,
    };
    let mut mounts = Vec::new();
    for m in &spec.volumes {
        if let Some(vol) = &m.volume {
            mounts.push(MountSpec {
                volume: true,
                ..bind(volume_dir(vol), m.path.as_deref().unwrap_or_default(), m.read_only)
            });
        } else if let Some(host) = &m.host_path {
            let mut mount = bind(PathBuf::from(host), m.path.as_deref().unwrap_or_default(), m.read_only);
            mount
                .options
                .push(m.propagation.unwrap_or(Propagation::Rprivate).as_str().to_string());
            mounts.push(mount);
        } else if let Some(dest) = &m.tmpfs {
            // Validated; a bad one (an unvalidated spec) keeps the default.
            let mode = m.mode.as_deref().and_then(parse_mode).unwrap_or(0o1777);
            let mut options = vec!["nosuid".to_string(), "nodev".to_string(), format!("mode={mode:o}")];
            if m.read_only {
                options.push("ro".to_string());
            }
            if m.noexec {
                options.push("noexec".to_string());
            }
            if let Some(size) = m.size {
                options.push(format!("size={}", size.0));
            }
            mounts.push(MountSpec {
                destination: dest.clone(),
                source: "tmpfs".into(),
                kind: "tmpfs".into(),
                options,
                volume: false,
            });
        }
    }
    for anon in anonymous_volumes(name, spec, image) {
        mounts.push(MountSpec {
            volume: true,
            ..bind(volume_dir(&anon.id), &anon.path, anon.read_only)
        });
    }
    let res = spec.resources.clone().unwrap_or_default();
    Ok(ContainerConfig {
        id: name.to_string(),
        hostname,
        domainname: spec.domainname.clone(),
        args,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: spec
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .unwrap_or_else(|| "/".into()),
        uid,
        gid,
        lower_dirs: image.lower_dirs.clone(),
        mounts,
        limits: limits(&res)?,
        // The container driver joins berth's namespace (see drivers/container.rs).
        netns: NetnsMode::New,
        no_new_privileges: spec
            .security_context
            .as_ref()
            .and_then(|s| s.no_new_privileges)
            .unwrap_or(false),
        userns: match spec.userns {
            None => crate::runtime::userns::UsernsMode::Daemon,
            Some(crate::manifest::UsernsMode::Host) => crate::runtime::userns::UsernsMode::Host,
            Some(crate::manifest::UsernsMode::Auto) => crate::runtime::userns::UsernsMode::Auto,
        },
        io: InitIo {
            log_max_bytes: spec.logs.as_ref().and_then(|l| l.max_size).map(|m| m.0),
            log_max_files: spec.logs.as_ref().and_then(|l| l.max_files),
            tty: spec.tty,
            stdin: spec.stdin,
            wait_attach: false,
        },
        isolation: isolation(spec, image)?,
        readonly_rootfs: spec.read_only_rootfs,
        shm_bytes: spec.shm_size.map(|s| s.0),
    })
}

/// The container's isolation settings for the runtime. A `container:NAME`
/// namespace stays `New` here: the driver joins the peer's, which only a
/// running peer has.
fn isolation(spec: &ContainerSpec, image: &ImageView) -> Result<Isolation, TranslateError> {
    use crate::manifest::isolation as rules;
    let sc = spec.security_context.clone().unwrap_or_default();
    let caps = |list: &[String]| list.iter().filter_map(|c| rules::normalize_capability(c)).collect();
    let mode = |m: &Option<String>| match m.as_deref() {
        Some("host") => NamespaceJoin::Host,
        _ => NamespaceJoin::New,
    };
    let mut additional_gids = Vec::new();
    for g in &sc.group_add {
        let gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                crate::image::record::resolve_user(&format!("0:{g}"), None, image.group.as_deref())
                    .map_err(|why| TranslateError::BadGroup(g.clone(), why))?
                    .1
            }
        };
        additional_gids.push(gid);
    }
    Ok(Isolation {
        privileged: sc.privileged,
        cap_add: caps(&sc.cap_add),
        cap_drop: caps(&sc.cap_drop),
        seccomp: match sc.seccomp_profile.as_deref() {
            None | Some("default") => SeccompMode::Default,
            Some("unconfined") => SeccompMode::Unconfined,
            Some(path) => SeccompMode::Profile(PathBuf::from(path)),
        },
        devices: spec
            .devices
            .iter()
            .map(|d| DeviceRequest {
                host_path: d.host_path.clone(),
                path: d.path.clone().unwrap_or_else(|| d.host_path.clone()),
                access: d.permissions.clone().unwrap_or_else(|| "rwm".into()),
            })
            .collect(),
        device_rules: spec
            .device_cgroup_rules
            .iter()
            .filter_map(|r| rules::parse_device_rule(r).ok())
            .map(|r| DeviceRule {
                kind: r.kind,
                major: r.major,
                minor: r.minor,
                access: r.access,
            })
            .collect(),
        additional_gids,
        pid: mode(&spec.pid),
        ipc: mode(&spec.ipc),
        uts: mode(&spec.uts),
        sysctls: sc.sysctls.clone(),
        rlimits: sc
            .ulimits
            .iter()
            .filter_map(|(name, l)| rules::rlimit_name(name).map(|r| (r.to_string(), l.soft, l.hard)))
            .collect(),
        oom_score_adj: sc.oom_score_adj,
        init: spec.init,
    })
}

/// The runtime's limits for `res`, with device paths turned into the numbers
/// the cgroup files take (read from the host now, as Docker does at create).
pub(crate) fn limits(res: &Resources) -> Result<Limits, TranslateError> {
    Ok(Limits {
        memory_bytes: res.memory.map(|m| m.0),
        cpus: res.cpus.map(|c| c.0),
        cpu_shares: res.cpu_shares,
        pids: res.pids,
        memory_swap: res.memory_swap.map(|s| match s {
            MemorySwap::Unlimited => -1,
            MemorySwap::Limit(m) => i64::try_from(m.0).unwrap_or(i64::MAX),
        }),
        memory_reservation: res.memory_reservation.map(|m| m.0),
        oom_kill_disable: res.oom_kill_disable,
        cpu_period: res.cpu_period,
        cpu_quota: res.cpu_quota,
        cpuset_cpus: res.cpuset_cpus.clone(),
        cpuset_mems: res.cpuset_mems.clone(),
        blkio_weight: res.blkio_weight,
        blkio_weight_device: devices(
            "spec.resources.blkioWeightDevice",
            res.blkio_weight_device
                .iter()
                .map(|d| (d.path.as_str(), u64::from(d.weight))),
        )?,
        device_read_bps: devices("spec.resources.deviceReadBps", rates(&res.device_read_bps))?,
        device_write_bps: devices("spec.resources.deviceWriteBps", rates(&res.device_write_bps))?,
        device_read_iops: devices("spec.resources.deviceReadIops", iops(&res.device_read_iops))?,
        device_write_iops: devices("spec.resources.deviceWriteIops", iops(&res.device_write_iops))?,
    })
}

fn rates(list: &[DeviceRate]) -> impl Iterator<Item = (&str, u64)> {
    list.iter().map(|d| (d.path.as_str(), d.rate.0))
}

fn iops(list: &[DeviceIops]) -> impl Iterator<Item = (&str, u64)> {
    list.iter().map(|d| (d.path.as_str(), d.rate))
}

/// Each device path of `list` with its numbers; `field` names the list in
/// the error.
fn devices<'a>(
    field: &'static str,
    list: impl Iterator<Item = (&'a str, u64)>,
) -> Result<Vec<DeviceLimit>, TranslateError> {
    list.map(|(path, value)| {
        let (major, minor) = block_device(path).map_err(|why| TranslateError::BadDevice {
            field,
            path: path.to_string(),
            why,
        })?;
        Ok(DeviceLimit { major, minor, value })
    })
    .collect()
}

/// The major and minor numbers of the block device at `path`.
fn block_device(path: &str) -> Result<(i64, i64), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read ({e})"))?;
    if !meta.file_type().is_block_device() {
        return Err("is not a block device".into());
    }
    let rdev = meta.rdev();
    Ok((
        i64::from(nix::sys::stat::major(rdev) as u32),
        i64::from(nix::sys::stat::minor(rdev) as u32),
    ))
}

/// The container's hostname: `hostname` when set, else its name (as a DNS label), or with `network: host` the host's,
/// as Docker gives it (its UTS namespace stays its own, so a change made
/// inside does not reach the host).
pub fn hostname_of(name: &str, spec: &ContainerSpec) -> String {
    if let Some(hostname) = &spec.hostname {
        return hostname.clone();
    }
    if spec.network.as_deref() == Some("host") {
        if let Ok(host) = nix::unistd::gethostname() {
            if let Some(host) = host.to_str().filter(|h| !h.is_empty()) {
                return host.to_string();
            }
        }
    }
    // A Docker-style name (`proj_web_1`) gives the label its DNS record has.
    crate::manifest::dns_label_of(name).unwrap_or_else(|| name.to_string())
}

fn bind(source: PathBuf, dest: &str, read_only: bool) -> MountSpec {
    let mut options = vec!["rbind".to_string(), "nosuid".to_string(), "nodev".to_string()];
    options.push(if read_only { "ro" } else { "rw" }.to_string());
    MountSpec {
        destination: dest.to_string(),
        source: source.to_string_lossy().into_owned(),
        kind: "bind".into(),
        options,
        volume: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Memory, Resources, VolumeMount};

    #[test]
    fn command_env_user_mounts_and_limits_are_translated() {
        let spec = ContainerSpec {
            image: "bb".into(),
            command: vec!["sh".into()],
            env: [("A".to_string(), "1".to_string())].into(),
            user: Some("1000:100".into()),
            volumes: vec![
                VolumeMount {
                    volume: Some("data".into()),
                    path: Some("/data".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/tmp".into()),
                    size: Some(Memory(1 << 20)),
                    ..Default::default()
                },
            ],
            resources: Some(Resources {
                memory: Some(Memory(64 << 20)),
                pids: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        let image = ImageView::imported(std::path::Path::new("/l"), &ImageSpec::default());
        let cfg = container_config("web", &spec, &image, &|v| PathBuf::from(format!("/v/{v}"))).unwrap();
        assert_eq!(cfg.args, ["sh"]);
        assert!(cfg.env.contains(&"A=1".to_string()));
        assert!(cfg.env.contains(&"HOSTNAME=web".to_string()));
        assert_eq!((cfg.uid, cfg.gid), (1000, 100));
        assert_eq!(cfg.mounts[0].source, "/v/data");
        assert!(cfg.mounts[1].options.contains(&"size=1048576".to_string()));
        assert_eq!(cfg.limits.memory_bytes, Some(64 << 20));
    }

    #[test]
    fn image_cmd_is_the_default_command() {
        let image = ImageSpec {
            cmd: vec!["httpd".into()],
            ..Default::default()
        };
        let spec = ContainerSpec {
            image: "bb".into(),
            ..Default::default()
        };
        let view = ImageView::imported(std::path::Path::new("/l"), &image);
        let cfg = container_config("web", &spec, &view, &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["httpd"]);
        let none = container_config(
            "web",
            &spec,
            &ImageView::imported(std::path::Path::new("/l"), &ImageSpec::default()),
            &|_| PathBuf::new(),
        );
        assert_eq!(none.unwrap_err(), TranslateError::NoCommand);
    }

    fn pulled() -> ImageView {
        let config = ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/opt/bin:/bin".into(), "MODE=image".into(), "KEEP=1".into()],
            working_dir: Some("/srv".into()),
            user: Some("app".into()),
            ..Default::default()
        };
        let mut view = ImageView::pulled(vec!["/l/b".into(), "/l/a".into()], &config, None);
        view.passwd = Some("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n".into());
        view.group = Some("root:x:0:\nstaff:x:50:\n".into());
        view
    }

    fn spec(f: impl FnOnce(&mut ContainerSpec)) -> ContainerSpec {
        let mut spec = ContainerSpec {
            image: "localhost:5000/x:1".into(),
            ..Default::default()
        };
        f(&mut spec);
        spec
    }

    #[test]
    fn a_pulled_images_config_is_the_default() {
        let cfg = container_config("web", &spec(|_| {}), &pulled(), &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["/entry", "serve", "--port=80"]);
        assert!(cfg.env.contains(&"PATH=/opt/bin:/bin".to_string()), "{:?}", cfg.env);
        assert!(cfg.env.contains(&"MODE=image".to_string()));
        assert_eq!(cfg.cwd, "/srv");
        assert_eq!((cfg.uid, cfg.gid), (1000, 1001));
        assert_eq!(cfg.lower_dirs, [PathBuf::from("/l/b"), PathBuf::from("/l/a")]);
    }

    #[test]
    fn the_manifest_overrides_the_image_as_docker_does() {
        let s = spec(|s| {
            s.command = vec!["other".into()];
            s.env = [("MODE".to_string(), "manifest".to_string())].into();
            s.working_dir = Some("/tmp".into());
            s.user = Some("app:staff".into());
        });
        let cfg = container_config("web", &s, &pulled(), &|_| PathBuf::new()).unwrap();
        // `command` replaces Cmd; the entrypoint stays.
        assert_eq!(cfg.args, ["/entry", "other"]);
        assert!(cfg.env.contains(&"MODE=manifest".to_string()));
        assert!(cfg.env.contains(&"KEEP=1".to_string()));
        assert_eq!(cfg.cwd, "/tmp");
        assert_eq!((cfg.uid, cfg.gid), (1000, 50));

        // An entrypoint of its own drops the image's Cmd.
        let s = spec(|s| s.entrypoint = Some(vec!["/bin/sh".into()]));
        let cfg = container_config("web", &s, &pulled(), &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["/bin/sh"]);
        // An empty one clears it: the command alone runs.
        let s = spec(|s| {
            s.entrypoint = Some(vec![]);
            s.command = vec!["true".into()];
        });
        let cfg = container_config("web", &s, &pulled(), &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["true"]);

        // An Image object's cmd and env go over the config's.
        let image = ImageSpec {
            cmd: vec!["sub".into()],
            env: [("MODE".to_string(), "object".to_string())].into(),
            ..Default::default()
        };
        let mut view = ImageView::pulled(vec![], &ImageConfig::default(), Some(&image));
        view.env.insert(0, "MODE=config".into());
        let cfg = container_config("web", &spec(|_| {}), &view, &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["sub"]);
        assert!(cfg.env.contains(&"MODE=object".to_string()));
    }

    #[test]
    fn uncovered_image_volumes_get_anonymous_ones_kept_by_name_and_path() {
        let config = ImageConfig {
            cmd: vec!["true".into()],
            volumes: ["/data/", "/logs", "/cache", "rel", "/", "/x/../y"]
                .into_iter()
                .map(|p| (p.to_string(), crate::wire::Empty {}))
                .collect(),
            ..Default::default()
        };
        let view = ImageView::pulled(vec![], &config, None);
        let s = spec(|s| {
            s.volumes = vec![
                VolumeMount {
                    volume: Some("logs".into()),
                    path: Some("/logs/".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/cache".into()),
                    ..Default::default()
                },
            ]
        });
        let anon = anonymous_volumes("web", &s, &view);
        assert_eq!(anon.len(), 1, "{anon:?}");
        assert_eq!(anon[0].path, "/data");
        assert_eq!(anon[0].id.len(), 64);
        // The same container and path find the same volume; another does not.
        assert_eq!(anonymous_volumes("web", &s, &view), anon);
        assert_ne!(anonymous_volumes("db", &s, &view)[0].id, anon[0].id);
        let cfg = container_config("web", &s, &view, &|v| PathBuf::from(format!("/v/{v}"))).unwrap();
        let data = cfg.mounts.iter().find(|m| m.destination == "/data").unwrap();
        assert_eq!(data.source, format!("/v/{}", anon[0].id));
        assert!(data.options.contains(&"rw".to_string()));
    }

    #[test]
    fn bind_propagation_and_tmpfs_mode_become_mount_options() {
        let s = spec(|s| {
            s.volumes = vec![
                VolumeMount {
                    host_path: Some("/srv".into()),
                    path: Some("/a".into()),
                    propagation: Some(Propagation::Rslave),
                    ..Default::default()
                },
                VolumeMount {
                    host_path: Some("/srv".into()),
                    path: Some("/b".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/t".into()),
                    mode: Some("0700".into()),
                    ..Default::default()
                },
                VolumeMount {
                    tmpfs: Some("/ro".into()),
                    read_only: true,
                    ..Default::default()
                },
            ]
        });
        let cfg = container_config("web", &s, &pulled(), &|_| PathBuf::new()).unwrap();
        assert!(cfg.mounts[0].options.contains(&"rslave".to_string()));
        // Docker's default for binds.
        assert!(cfg.mounts[1].options.contains(&"rprivate".to_string()));
        assert!(
            cfg.mounts[2].options.contains(&"mode=700".to_string()),
            "{:?}",
            cfg.mounts[2]
        );
        assert!(!cfg.mounts[2].options.contains(&"ro".to_string()));
        // A read-only tmpfs is mounted read-only, not quietly writable.
        assert!(cfg.mounts[3].options.contains(&"ro".to_string()), "{:?}", cfg.mounts[3]);
    }

    #[test]
    fn the_images_labels_are_defaults_under_the_manifests() {
        let config = ImageConfig {
            labels: [("a", "image"), ("b", "image")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            exposed_ports: [("80/tcp".to_string(), crate::wire::Empty {})].into(),
            ..Default::default()
        };
        let view = ImageView::pulled(vec![], &config, None);
        let own = [("b".to_string(), "manifest".to_string())].into();
        let merged = labels(&view, &own);
        assert_eq!(merged["a"], "image");
        assert_eq!(merged["b"], "manifest");
        assert_eq!(view.exposed_ports, ["80/tcp"]);
    }

    #[test]
    fn an_unknown_user_name_is_a_clear_error() {
        let s = spec(|s| s.user = Some("nobody".into()));
        let err = container_config("web", &s, &pulled(), &|_| PathBuf::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"nobody\": user `nobody` is not in the image's /etc/passwd"
        );
    }
}

#[cfg(test)]
mod image_healthcheck_tests {
    use super::*;

    #[test]
    fn docker_healthchecks_become_manifest_ones() {
        let blob: crate::image::ImageConfig = serde_json::from_str(
            r#"{"Healthcheck":{"Test":["CMD","curl","-f","http://localhost/"],"Interval":30000000000,"Timeout":0,"Retries":0}}"#,
        )
        .unwrap();
        let h = image_healthcheck(blob.healthcheck.as_ref().unwrap()).unwrap();
        assert_eq!(h.exec, ["curl", "-f", "http://localhost/"]);
        assert_eq!(h.interval.map(|d| d.0), Some(std::time::Duration::from_secs(30)));
        assert_eq!(h.timeout, None);
        assert_eq!(h.retries, None);
        let none = crate::image::ImageHealthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(image_healthcheck(&none), None);
        assert_eq!(image_healthcheck(&Default::default()), None);
    }
}
