//! Removing a container: its shim, runtime state, network and anonymous
//! volumes (`run --rm` removes at once).

use super::*;

/// Removes the anonymous volumes of container `name`, and any whose
/// container has no live record left (a daemon that died between the two).
/// Every one is tried; the first error is returned.
pub(super) async fn remove_anonymous_volumes(engine: &Engine, name: &str) -> DriverResult {
    let mut first = None;
    for anon in engine.host.volumes.anonymous() {
        let orphan = anon.container != name && matches!(engine.live(Kind::Container, &anon.container), Ok(None));
        if anon.container != name && !orphan {
            continue;
        }
        let host = engine.host.volumes.clone();
        let id = anon.id.clone();
        let removed = tokio::task::spawn_blocking(move || host.remove(&id)).await?;
        match removed {
            Ok(()) => engine.event(
                &ObjectKey::new(Kind::Container, anon.container.clone()),
                "VolumeRemoved",
                &format!("removed anonymous volume {} ({})", anon.id, anon.path),
            ),
            Err(source) => {
                first.get_or_insert(DriverError::Io {
                    action: "remove anonymous volume",
                    path: engine.host.volumes.path(&anon.id),
                    source,
                });
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// Stops and removes everything of a container but its live record.
pub(super) async fn remove_container(engine: &Engine, name: &str) -> DriverResult {
    stop_container(engine, name, grace_of(engine, name)).await;
    let host = engine.host.containers.clone();
    let id = name.to_string();
    let (networks, ports) = engine
        .live(Kind::Container, name)?
        .and_then(|l| {
            l.container_spec()
                .map(|c| (c.networks.len(), !c.ports.is_empty() || c.publish_all))
        })
        .unwrap_or((0, false));
    // The container's files, mounts and cgroups, and its network (veths,
    // namespace, addresses), have nothing to wait for in each other once the
    // init is gone: remove them at the same time. Deleting a veth alone
    // waits for an RCU barrier in the kernel (~5-20 ms here), which the
    // runtime's part no longer queues behind. Both always run; the first
    // failure is reported.
    let (removed, unwired) = tokio::join!(
        tokio::task::spawn_blocking(move || host.remove(&id)),
        network::unwire(engine, name, networks)
    );
    removed??;
    unwired?;
    if networks > 0 {
        network::refresh_hosts(engine).await;
    }
    if ports {
        network::sync_nat(engine).await?;
    }
    Ok(())
}

/// Stops and forgets a container at once (`run --rm`).
pub async fn remove_now(engine: &Arc<Engine>, name: &str) -> DriverResult {
    let key = ObjectKey::new(Kind::Container, name);
    let held = engine.lock_for(&key);
    let _held = held.lock().await;
    remove_container(engine, name).await?;
    remove_anonymous_volumes(engine, name).await?;
    engine.store.live_delete(Kind::Container, name)?;
    engine.forget_id(name)?;
    engine.set_pending(&key, None);
    Ok(())
}
