//! One driver per kind, with the same small contract. The executor calls
//! them for the plan's actions; observation asks them what is really there.
//! A new kind is a new file here and a line in [`driver`].

mod connect;
mod container;
mod image;
pub(crate) use image::BuildJob;
mod network;
pub(crate) use network::HostsWritten;
mod volume;

use std::sync::Arc;

use super::error::DriverError;
use super::records::Live;
use super::seams::BoxFuture;
use super::Engine;
use crate::manifest::{Kind, Object};
use crate::plan::{Launch, RunState};

pub type DriverResult = Result<(), DriverError>;

/// Whether observing may act on what it finds: record exits, adopt shims,
/// and kill what a dead shim left. `diff` only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    AndRecord,
    Only,
}

/// # Contract
/// - `observe` says what a live object is now; `None` means it is gone and
///   will be made again.
/// - `create` makes an object from its spec and records it live with `hash`,
///   leaving it as `launch` says (only containers have a choice);
///   `start` and `replace` default to it.
/// - `delete` removes the object and its live record; a missing object is
///   already deleted. Errors leave the record, so a later pass retries.
pub trait Driver: Send + Sync {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, mode: Observe) -> Option<RunState>;

    fn create<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        launch: Launch,
    ) -> BoxFuture<'a, DriverResult>;

    fn start<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        self.create(engine, obj, hash, launch)
    }

    fn replace<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        self.create(engine, obj, hash, launch)
    }

    /// Changes a made object in place (the plan asks only containers).
    fn update<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
        self.replace(engine, obj, hash, Launch::Start)
    }

    fn stop<'a>(&'a self, _engine: &'a Arc<Engine>, _name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult>;
}

/// The driver of a kind.
pub fn driver(kind: Kind) -> Option<&'static dyn Driver> {
    match kind {
        Kind::Container => Some(&container::ContainerDriver),
        Kind::Image => Some(&image::ImageDriver),
        Kind::Volume => Some(&volume::VolumeDriver),
        Kind::Network => Some(&network::NetworkDriver),
    }
}

pub(super) use connect::set_networks;

/// Hands DNS servers and peers' /etc/hosts the names that are published
/// now: after a container's health changed (see `network::publishes_names`).
pub(super) async fn refresh_names(engine: &Engine) {
    network::refresh_hosts(engine).await;
}
pub(super) use container::{
    freeze_by_name, kill_by_name, remove_now, rename, restart_unhealthy, restore, set_resources, start_by_name,
    start_by_name_with, stop_by_name, stop_by_name_with,
};
