//! Volumes: a directory each, made on create and removed with its data on delete.

use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::manifest::{Kind, Object};
use crate::plan::{ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, Live, LiveInfo, VolumeInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{now_millis, Engine};

pub struct VolumeDriver;

impl Driver for VolumeDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        engine.host.volumes.exists(&live.key.name).then_some(RunState::Present)
    }

    fn create<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
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
