//! `berth pause` / `unpause`: the cgroup freezer.

use super::*;

/// `berth pause` / `unpause`: the cgroup freezer, remembered as a hold.
pub async fn freeze_by_name(engine: &Arc<Engine>, name: &str, frozen: bool) -> std::result::Result<(), VerbError> {
    let lock = engine.lock_for(&ObjectKey::new(Kind::Container, name));
    let _held = lock.lock().await;
    if !running(engine, name) {
        return Err(VerbError::NotRunning(name.into()));
    }
    let hold = held(engine, name);
    if frozen && hold == Some(Hold::Paused) {
        return Err(VerbError::Paused(name.into()));
    }
    if !frozen && hold != Some(Hold::Paused) && !engine.host.containers.is_frozen(name) {
        return Err(VerbError::NotPaused(name.into()));
    }
    let host = engine.host.containers.clone();
    let id = name.to_string();
    tokio::task::spawn_blocking(move || host.freeze(&id, frozen))
        .await
        .map_err(DriverError::from)?
        .map_err(DriverError::from)?;
    set_hold(engine, name, frozen.then_some(Hold::Paused));
    let key = ObjectKey::new(Kind::Container, name);
    engine.event(&key, if frozen { "Paused" } else { "Unpaused" }, "by hand");
    Ok(())
}
