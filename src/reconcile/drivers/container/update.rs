//! A container changed in place (`berth update`, or a manifest change the
//! plan classifies as an update): its cgroup limits written through the
//! runtime while its processes run on, its new spec and hash recorded so no
//! pass replaces it. Only what can change without a restart comes here (see
//! `plan::build::in_place_changes`).

use std::sync::Arc;

use super::super::DriverResult;
use crate::manifest::{Kind, Object, Spec};
use crate::plan::{self, ObjectKey};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, LiveInfo};
use crate::reconcile::{translate, Engine};
use crate::runtime::Probe;

/// Applies `obj`'s limits to the running container it names and records it
/// live with `hash`. The caller holds the container's lock.
pub async fn update_container(engine: &Arc<Engine>, obj: &Object, hash: &str) -> DriverResult {
    let Spec::Container(spec) = &obj.spec else {
        return Err(DriverError::Invalid(format!("{} is not a container", obj.name())));
    };
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    let old = engine
        .store
        .live_get(Kind::Container, name)?
        .map(records::decode_live)
        .transpose()?
        .ok_or_else(|| DriverError::Invalid(format!("container/{name} was never started")))?;
    let limits = translate::limits(&spec.resources.clone().unwrap_or_default())
        .map_err(|e| DriverError::Invalid(format!("container/{name}: {e}")))?;
    // A container that does not run gets the new limits when it starts.
    if matches!(engine.host.containers.probe(name), Probe::Running(_)) {
        let host = engine.host.containers.clone();
        let id = name.to_string();
        tokio::task::spawn_blocking(move || host.update_limits(&id, &limits))
            .await
            .map_err(DriverError::from)?
            .map_err(DriverError::from)?;
    }
    let info: LiveInfo = old.info.clone();
    engine
        .store
        .live_put(&records::encode_live(obj, hash, &info, old.created_at))?;
    let changes = match &old.spec {
        old_spec @ Spec::Container(_) => plan::spec_changes(old_spec, &obj.spec).join("; "),
        _ => String::new(),
    };
    engine.event(&key, "Updated", &format!("in place: {changes}"));
    Ok(())
}

/// `berth update`: stores `obj` (already desired from `source`, an
/// imperative container) and updates the container in place.
pub async fn set_resources(engine: &Arc<Engine>, source: &str, obj: &Object) -> DriverResult {
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    // No pass plans between the store write and the cgroup writes.
    let _pass = engine.pass_lock.lock().await;
    let held = engine.lock_for(&key);
    let _held = held.lock().await;
    engine.store_set(source, std::slice::from_ref(obj), false, &|_, _| None)?;
    let hash = plan::spec_hashes(&engine.desired_objects()?)
        .get(&key)
        .cloned()
        .unwrap_or_default();
    update_container(engine, obj, &hash).await
}
