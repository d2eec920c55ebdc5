//! Manifest → runtime: turns a Container object into the runtime's
//! [`ContainerConfig`]. The only place that knows both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::manifest::{ContainerSpec, ImageSpec};
use crate::runtime::{ContainerConfig, Limits, MountSpec, NetnsMode};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container spec cannot be turned into a runtime config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Neither the container nor its image names a command.
    #[error("no command: set spec.command, or cmd on the image")]
    NoCommand,
    /// `spec.user` is not `uid` or `uid:gid`.
    #[error("spec.user {0:?} is not uid or uid:gid")]
    BadUser(String),
}

/// `volume_dir(name)` gives the host directory of a named volume.
pub fn container_config(
    name: &str,
    spec: &ContainerSpec,
    image: &ImageSpec,
    layer: &Path,
    volume_dir: &dyn Fn(&str) -> PathBuf,
) -> Result<ContainerConfig, TranslateError> {
    let args = if spec.command.is_empty() {
        image.cmd.clone()
    } else {
        spec.command.clone()
    };
    if args.is_empty() {
        return Err(TranslateError::NoCommand);
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("HOSTNAME".into(), name.into());
    env.extend(image.env.clone());
    env.extend(spec.env.clone());
    let (uid, gid) = match spec.user.as_deref() {
        None => (0, 0),
        Some(u) => parse_user(u).ok_or_else(|| TranslateError::BadUser(u.to_string()))?,
    };
    let mut mounts = Vec::new();
    for m in &spec.volumes {
        if let Some(vol) = &m.volume {
            mounts.push(bind(
                volume_dir(vol),
                m.path.as_deref().unwrap_or_default(),
                m.read_only,
            ));
        } else if let Some(host) = &m.host_path {
            mounts.push(bind(
                PathBuf::from(host),
                m.path.as_deref().unwrap_or_default(),
                m.read_only,
            ));
        } else if let Some(dest) = &m.tmpfs {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
            if let Some(size) = m.size {
                options.push(format!("size={}", size.0));
            }
            mounts.push(MountSpec {
                destination: dest.clone(),
                source: "tmpfs".into(),
                kind: "tmpfs".into(),
                options,
            });
        }
    }
    let res = spec.resources.clone().unwrap_or_default();
    Ok(ContainerConfig {
        id: name.to_string(),
        hostname: name.to_string(),
        args,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: spec.working_dir.clone().unwrap_or_else(|| "/".into()),
        uid,
        gid,
        lower_dirs: vec![layer.to_path_buf()],
        mounts,
        limits: Limits {
            memory_bytes: res.memory.map(|m| m.0),
            cpus: res.cpus.map(|c| c.0),
            cpu_shares: res.cpu_shares,
            pids: res.pids,
        },
        // The container driver joins berth's namespace (see drivers/container.rs).
        netns: NetnsMode::New,
        no_new_privileges: spec
            .security_context
            .as_ref()
            .and_then(|s| s.no_new_privileges)
            .unwrap_or(false),
    })
}

fn bind(source: PathBuf, dest: &str, read_only: bool) -> MountSpec {
    let mut options = vec!["rbind".to_string(), "nosuid".to_string(), "nodev".to_string()];
    options.push(if read_only { "ro" } else { "rw" }.to_string());
    MountSpec {
        destination: dest.to_string(),
        source: source.to_string_lossy().into_owned(),
        kind: "bind".into(),
        options,
    }
}

fn parse_user(u: &str) -> Option<(u32, u32)> {
    match u.split_once(':') {
        Some((uid, gid)) => Some((uid.parse().ok()?, gid.parse().ok()?)),
        None => {
            let uid = u.parse().ok()?;
            Some((uid, uid))
        }
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
        let cfg = container_config("web", &spec, &ImageSpec::default(), Path::new("/l"), &|v| {
            PathBuf::from(format!("/v/{v}"))
        })
        .unwrap();
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
        let cfg = container_config("web", &spec, &image, Path::new("/l"), &|_| PathBuf::new()).unwrap();
        assert_eq!(cfg.args, ["httpd"]);
        let none = container_config("web", &spec, &ImageSpec::default(), Path::new("/l"), &|_| {
            PathBuf::new()
        });
        assert_eq!(none.unwrap_err(), TranslateError::NoCommand);
    }
}
