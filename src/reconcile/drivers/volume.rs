//! Volumes: a directory each, made on create and removed with its data on
//! delete; with the local driver's options, something mounted on it (a
//! tmpfs, a device, a bind of a host directory), as Docker's `local` driver.

use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::manifest::{Kind, Object, Spec, VolumeSpec};
use crate::plan::{Launch, ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, Live, LiveInfo, VolumeInfo};
use crate::reconcile::seams::{BoxFuture, LocalMount};
use crate::reconcile::{now_millis, Engine};

pub struct VolumeDriver;

impl Driver for VolumeDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        let name = &live.key.name;
        // A mount gone (a reboot) is made again by a create.
        let mount_ok = match &live.spec {
            Spec::Volume(spec) => local_mount(spec).is_none() || engine.host.volumes.mounted(name),
            _ => true,
        };
        (engine.host.volumes.exists(name) && mount_ok).then_some(RunState::Present)
    }

    fn create<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        _launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let path = engine
                .host
                .volumes
                .create(obj.name())
                .map_err(|source| DriverError::Io {
                    action: "create volume",
                    path: engine.host.volumes.path(obj.name()),
                    source,
                })?;
            if let Some(m) = match &obj.spec {
                Spec::Volume(spec) => local_mount(spec),
                _ => None,
            } {
                let host = engine.host.volumes.clone();
                let name = obj.name().to_string();
                tokio::task::spawn_blocking(move || host.mount(&name, &m))
                    .await?
                    .map_err(|source| DriverError::Io {
                        action: "mount volume (driverOpts)",
                        path: engine.host.volumes.path(obj.name()),
                        source,
                    })?;
            }
            let info = LiveInfo::Volume(VolumeInfo { path: path.clone() });
            engine
                .store
                .live_put(&records::encode_live(obj, hash, &info, now_millis()))?;
            engine.event(
                &ObjectKey::new(Kind::Volume, obj.name()),
                "Created",
                &path.display().to_string(),
            );
            Ok(())
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            engine.host.volumes.remove(name).map_err(|source| DriverError::Io {
                action: "remove volume",
                path: engine.host.volumes.path(name),
                source,
            })?;
            engine.store.live_delete(Kind::Volume, name)?;
            Ok(())
        })
    }
}

/// The mount a Volume's `driverOpts` ask for (validated: `type` and
/// `device` together), `size=` turned from Docker's units into bytes; none
/// for a plain directory.
pub fn local_mount(spec: &VolumeSpec) -> Option<LocalMount> {
    let opts = &spec.driver_opts;
    let (fstype, device) = (opts.get("type")?, opts.get("device")?);
    let options = opts
        .get("o")
        .map(|o| {
            o.split(',')
                .filter(|f| !f.is_empty())
                .map(|f| {
                    match f
                        .strip_prefix("size=")
                        .and_then(|s| crate::manifest::quantity::parse_docker_size(s).ok())
                    {
                        Some(bytes) => format!("size={bytes}"),
                        None => f.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(LocalMount {
        fstype: fstype.clone(),
        device: device.clone(),
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_opts_become_a_mount_with_sizes_in_bytes() {
        let spec = |pairs: &[(&str, &str)]| VolumeSpec {
            driver: None,
            driver_opts: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        assert_eq!(local_mount(&spec(&[])), None);
        let m = local_mount(&spec(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=100m,uid=1000"),
        ]))
        .unwrap();
        assert_eq!(
            (m.fstype.as_str(), m.device.as_str(), m.options.clone()),
            (
                "tmpfs",
                "tmpfs",
                vec!["size=104857600".to_string(), "uid=1000".to_string()]
            )
        );
        assert!(!m.is_bind());
        let m = local_mount(&spec(&[("type", "none"), ("device", "/srv/d"), ("o", "bind,ro")])).unwrap();
        assert!(m.is_bind());
    }
}
