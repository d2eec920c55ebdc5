//! Images: a root filesystem tar imported into the layer store. Deleting an
//! image only forgets it: its layer is collected once no image or container
//! uses it (`gc.rs`).

use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::manifest::{Kind, Object, Spec};
use crate::plan::{ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, ImageInfo, Live, LiveInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{now_millis, Engine};

pub struct ImageDriver;

impl Driver for ImageDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        match &live.info {
            LiveInfo::Image(info) if engine.host.images.layer_present(&info.dir) => Some(RunState::Present),
            _ => None,
        }
    }

    fn create<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let Spec::Image(spec) = &obj.spec else {
                return Err(DriverError::Invalid(format!("{} is not an image", obj.name())));
            };
            let Some(path) = spec.import.clone() else {
                return Err(DriverError::Unsupported(
                    "only images with spec.import are supported yet".into(),
                ));
            };
            let images = engine.host.images.clone();
            let digest = spec.digest.clone();
            let layer =
                tokio::task::spawn_blocking(move || images.import(std::path::Path::new(&path), digest.as_deref()))
                    .await??;
            let info = LiveInfo::Image(ImageInfo {
                digest: layer.digest.clone(),
                dir: layer.dir.clone(),
            });
            engine
                .store
                .live_put(&records::encode_live(obj, hash, &info, now_millis()))?;
            engine.event(
                &ObjectKey::new(Kind::Image, obj.name()),
                "Imported",
                &format!("{} unpacked to {}", layer.digest, layer.dir.display()),
            );
            Ok(())
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            engine.store.live_delete(Kind::Image, name)?;
            Ok(())
        })
    }
}
