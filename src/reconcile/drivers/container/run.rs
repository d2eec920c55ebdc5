//! Imperative `run` and `create`: one container object made outside a pass.

use super::*;

/// Imperative create-and-start of one container object (`berth run`),
/// without waiting for a pass.
pub async fn run_now(engine: &Arc<Engine>, obj: &Object, wait_attach: bool) -> DriverResult {
    let (key, hash) = key_and_hash(engine, obj)?;
    let held = engine.lock_for(&key);
    let _held = held.lock().await;
    start_with(engine, obj, &hash, wait_attach).await
}

/// The key of imperative container `obj` and its spec hash as a pass
/// computes it, with the full desired set (`obj` added if not yet in it).
pub(super) fn key_and_hash(engine: &Engine, obj: &Object) -> Result<(ObjectKey, String)> {
    let mut desired = engine.desired_objects()?;
    if !desired
        .iter()
        .any(|o| o.kind() == Kind::Container && o.name() == obj.name())
    {
        desired.push(obj.clone());
    }
    let key = ObjectKey::new(Kind::Container, obj.name());
    let hash = plan::spec_hashes(&desired).get(&key).cloned().unwrap_or_default();
    Ok((key, hash))
}

/// Records a container as made but held stopped (`berth create`): passes
/// leave it until `start` lifts the hold.
pub async fn create_held(engine: &Arc<Engine>, obj: &Object) -> DriverResult {
    let (key, hash) = key_and_hash(engine, obj)?;
    let held = engine.lock_for(&key);
    let _held = held.lock().await;
    let info = ContainerInfo {
        hold: Some(Hold::Stopped),
        ..Default::default()
    };
    let rec = records::encode_live(obj, &hash, &LiveInfo::Container(info), now_millis());
    engine.ensure_id(obj.name())?;
    engine.store.live_put(&rec)?;
    Ok(())
}
