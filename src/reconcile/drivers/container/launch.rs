//! How a container is left once made: started (a pass, `berth run`),
//! started for a client to attach (`run -t`/`-i`), or held stopped
//! (`berth create`), as the plan's action says.

use super::*;

/// Makes a container as `launch` says; the caller holds its lock.
pub(super) async fn launch_container(engine: &Arc<Engine>, obj: &Object, hash: &str, launch: Launch) -> DriverResult {
    // Before its start's events, as Docker's `create` comes before `start`.
    engine.event(&ObjectKey::new(Kind::Container, obj.name()), "Created", "made");
    match launch {
        Launch::Start => start_with(engine, obj, hash, false).await,
        Launch::WaitAttach => start_with(engine, obj, hash, true).await,
        Launch::Held => record_held(engine, obj, hash),
    }
}

/// Records a container as made but held stopped (`berth create`): passes
/// leave it until `start` lifts the hold.
fn record_held(engine: &Engine, obj: &Object, hash: &str) -> DriverResult {
    let info = ContainerInfo {
        hold: Some(Hold::Stopped),
        ..Default::default()
    };
    let rec = records::encode_live(obj, hash, &LiveInfo::Container(info), now_millis());
    engine.ensure_id(obj.name())?;
    engine.store.live_put(&rec)?;
    Ok(())
}
