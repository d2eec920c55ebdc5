//! Live restore at daemon start: running containers are adopted.

use super::*;

/// More interfaces than a container has (one per network it is on).
pub(super) const MAX_INTERFACES: usize = 64;

/// Live restore: adopt running containers (watch their shims), and clear run
/// dirs nothing in the store accounts for. Called once before serving.
pub async fn restore(engine: &Arc<Engine>) -> Result<()> {
    let live = engine.live_all()?;
    let known: HashSet<&str> = live
        .iter()
        .filter(|r| r.key.kind == Kind::Container)
        .map(|r| r.key.name.as_str())
        .collect();
    for rec in live.iter().filter(|r| r.key.kind == Kind::Container) {
        if let Probe::Running(run) = engine.host.containers.probe(&rec.key.name) {
            tracing::info!(container = %rec.key.name, pid = run.init_pid, "adopted running container");
            watch_shim(engine, rec.key.name.clone(), run);
        }
    }
    for id in engine.host.networks.list() {
        if !known.contains(id.as_str()) {
            tracing::info!(container = %id, "removing network leftovers of an unknown container");
            // How many interfaces it had is not known: its namespace going
            // takes the rest with it.
            if let Err(e) = network::unwire(engine, &id, 4).await {
                tracing::warn!("{e}");
            }
        }
    }
    // A veth the kernel had not destroyed with its namespace when the
    // daemon stopped (see `Networks::remove_container`): no container of
    // this root has that name for one of its interfaces.
    let names = engine.host.networks.names();
    let ours: HashSet<String> = known
        .iter()
        .flat_map(|name| {
            let id = engine.runtime_id(name);
            (0..MAX_INTERFACES).map(move |i| names.veth_name(&id, i))
        })
        .collect();
    for link in engine.host.networks.host_veths() {
        if !ours.contains(&link) {
            tracing::info!(link = %link, "removing a veth no container has");
            if let Err(e) = engine.host.networks.delete_link(&link) {
                tracing::warn!("{e}");
            }
        }
    }
    for id in engine.host.containers.list() {
        if !known.contains(id.as_str()) {
            tracing::info!(container = %id, "removing leftovers of an unknown container");
            let host = engine.host.containers.clone();
            match tokio::task::spawn_blocking(move || host.remove(&id)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("{e}"),
                Err(e) => tracing::warn!("removing leftovers: {e}"),
            }
        }
    }
    Ok(())
}
