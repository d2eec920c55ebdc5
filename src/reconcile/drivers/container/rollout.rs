//! Start-first rollouts (`spec.update.order: start-first`): the new
//! container starts beside the running one under a staging name
//! (`NAME.next`, a name no manifest can use: it has a dot), with its ports
//! and names unpublished. Once it is healthy (or, without a healthcheck,
//! running), one store transaction moves the name to it and the old one to
//! `NAME.old`; one nft transaction then points the published host ports at
//! it, DNS and peers' /etc/hosts follow, and only then is the old one
//! stopped with its grace period. Connections the old one holds finish on
//! it (conntrack keeps their DNAT); new ones reach the new one.
//!
//! A daemon that dies mid-rollout leaves `NAME.next` or `NAME.old` as live
//! records no manifest wants: the next pass deletes them like any other
//! (and `NAME` is either the old container, replaced again, or the new one).

use super::*;
use crate::manifest::{UpdateFailure, UpdateOrder, UpdateStrategy};

/// How long a replacement may take to be healthy, without `healthTimeout`.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a replacement's readiness is looked at.
const READY_POLL: Duration = Duration::from_millis(100);

pub(super) fn staging_name(name: &str) -> String {
    format!("{name}.next")
}

pub(super) fn retiring_name(name: &str) -> String {
    format!("{name}.old")
}

/// The rollout strategy of `obj` when it replaces a running container
/// start-first; `None` for a stop-first replace.
pub(super) fn start_first(engine: &Engine, obj: &Object) -> Option<UpdateStrategy> {
    let Spec::Container(spec) = &obj.spec else { return None };
    let strategy = spec.update.clone()?;
    // Nothing serves: there is no downtime to avoid.
    (strategy.order == UpdateOrder::StartFirst && running(engine, obj.name())).then_some(strategy)
}

/// Replaces running container `obj.name()` start-first. The caller holds
/// the container's lock.
pub(super) async fn roll_out(engine: &Arc<Engine>, obj: &Object, hash: &str, strategy: UpdateStrategy) -> DriverResult {
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    let (staging, retiring) = (staging_name(name), retiring_name(name));
    let (skey, rkey) = (
        ObjectKey::new(Kind::Container, staging.as_str()),
        ObjectKey::new(Kind::Container, retiring.as_str()),
    );
    let (ls, lr) = (engine.lock_for(&skey), engine.lock_for(&rkey));
    let (_s, _r) = (ls.lock().await, lr.lock().await);
    // What an interrupted rollout left goes first.
    discard(engine, &staging).await?;
    discard(engine, &retiring).await?;
    let old = engine
        .live(Kind::Container, name)?
        .ok_or_else(|| DriverError::Invalid(format!("container/{name} was never started")))?;

    let timeout = strategy.health_timeout.map(|d| d.0).unwrap_or(DEFAULT_HEALTH_TIMEOUT);
    engine.event(
        &key,
        "RolloutStarted",
        &format!(
            "start-first: starting the new version beside the running one (healthy within {}s)",
            timeout.as_secs_f64()
        ),
    );
    let mut staged = obj.clone();
    staged.metadata.name = staging.clone();
    if let Spec::Container(c) = &mut staged.spec {
        // It is to be `name` once it serves; the hostname inside says so from the start.
        if c.hostname.is_none() && c.network.is_none() {
            c.hostname = Some(name.to_string());
        }
    }
    // Recorded unpublished before it is wired, so that no NAT sync and no
    // hosts refresh ever publishes it under the old one's ports or names.
    let info = ContainerInfo {
        unpublished: true,
        ..Default::default()
    };
    engine.ensure_id(&staging)?;
    engine.store.live_put(&records::encode_live(
        &staged,
        hash,
        &LiveInfo::Container(info),
        now_millis(),
    ))?;
    let ready = match start_with(engine, &staged, hash, false).await {
        Ok(()) => wait_ready(engine, &staging, timeout).await,
        Err(e) => Err(format!("did not start: {}", e.status_message())),
    };
    match ready {
        Ok(()) => take_over(engine, obj, hash, &old, &staging, &retiring).await,
        Err(reason) if strategy.on_failure == UpdateFailure::Continue && running(engine, &staging) => {
            engine.event(
                &key,
                "RolloutUnhealthy",
                &format!("the new version {reason}; taking over all the same (onFailure: continue)"),
            );
            take_over(engine, obj, hash, &old, &staging, &retiring).await
        }
        Err(reason) => {
            discard(engine, &staging).await?;
            rollout_failed(engine, &old, hash, strategy.on_failure, &reason).await
        }
    }
}

/// Waits until container `name` can serve: healthy when it has a
/// healthcheck, else running. The reason it cannot, otherwise.
async fn wait_ready(engine: &Engine, name: &str, timeout: Duration) -> std::result::Result<(), String> {
    let checked = engine.live(Kind::Container, name).ok().flatten().is_some_and(|l| {
        l.container_spec().is_some_and(|c| c.healthcheck.is_some())
            || l.container_info().is_some_and(|i| i.image_healthcheck.is_some())
    });
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match engine.host.containers.probe(name) {
            Probe::Running(run) if !checked => {
                let _ = run;
                return Ok(());
            }
            Probe::Running(run) => match engine.health(name, run.init_pid) {
                Some(h) if h.status == crate::reconcile::health::HealthStatus::Healthy => return Ok(()),
                Some(h) if h.status == crate::reconcile::health::HealthStatus::Unhealthy => {
                    let last = h
                        .log
                        .back()
                        .map(|l| format!("its check exited {}: {:?}", l.exit_code, l.output.trim()))
                        .unwrap_or_default();
                    return Err(format!("became unhealthy ({last})"));
                }
                _ => {}
            },
            Probe::Starting => {}
            Probe::Exited(e) => return Err(format!("exited with code {}", e.code)),
            Probe::Lost { .. } | Probe::Absent => return Err("stopped running".into()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("was not healthy within {}s", timeout.as_secs_f64()));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// The switch: the name moves to the new container (store), its published
/// ports follow in one nft transaction, then its names in DNS and hosts;
/// then the old one stops with its grace period and is removed.
async fn take_over(
    engine: &Arc<Engine>,
    obj: &Object,
    hash: &str,
    old: &Live,
    staging: &str,
    retiring: &str,
) -> DriverResult {
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    let staged = engine
        .live(Kind::Container, staging)?
        .ok_or_else(|| DriverError::Invalid(format!("container/{staging} vanished during its rollout")))?;
    let mut new_info = staged.container_info().cloned().unwrap_or_default();
    new_info.unpublished = false;
    new_info.held_back = None;
    new_info.rollout = Some("done: the new version took over start-first".into());
    let mut old_info = old.container_info().cloned().unwrap_or_default();
    old_info.unpublished = true;
    // Stopped by the rollout, never restarted by a policy meanwhile.
    old_info.hold = Some(Hold::Stopped);
    let mut old_obj = obj.clone();
    old_obj.metadata.name = retiring.to_string();
    old_obj.spec = old.spec.clone();
    let old_rec = records::encode_live(&old_obj, &old.spec_hash, &LiveInfo::Container(old_info), old.created_at);
    let new_rec = records::encode_live(obj, hash, &LiveInfo::Container(new_info), staged.created_at);
    let (old_id, new_id) = (engine.ids.id_of(name), engine.ids.id_of(staging));
    engine
        .store
        .swap_containers(name, staging, retiring, [&old_rec, &new_rec], (&old_id, &new_id))?;
    engine.ids.forget(name);
    engine.ids.forget(staging);
    engine.ids.set(retiring, &old_id);
    engine.ids.set(name, &new_id);
    // One nft transaction: every published port of the name now leads to
    // the new container.
    if let Err(e) = network::sync_nat(engine).await {
        engine.event(&key, "NatFailed", &e.to_string());
    }
    network::refresh_hosts(engine).await;
    engine.event(
        &key,
        "RolloutSwitched",
        "the new version serves the name, its aliases and published ports; stopping the old one",
    );
    engine.changed();
    discard(engine, retiring).await?;
    engine.event(&key, "RolloutDone", "start-first rollout complete");
    Ok(())
}

/// Stops and forgets container `name` if there is one (a rollout's staging
/// or retiring container).
async fn discard(engine: &Engine, name: &str) -> DriverResult {
    if engine.live(Kind::Container, name)?.is_none() {
        return Ok(());
    }
    remove_container(engine, name).await?;
    remove_anonymous_volumes(engine, name).await?;
    engine.store.live_delete(Kind::Container, name)?;
    engine.forget_id(name)?;
    Ok(())
}

/// A replacement that never became healthy: the old container serves on,
/// the failure is recorded, and as `onFailure` says the spec it came from is
/// rolled back (see [`roll_back`]) or held back until it changes.
async fn rollout_failed(
    engine: &Arc<Engine>,
    old: &Live,
    hash: &str,
    on_failure: UpdateFailure,
    reason: &str,
) -> DriverResult {
    let name = old.key.name.as_str();
    let key = old.key.clone();
    let what = match on_failure {
        UpdateFailure::Pause => "paused: the old version serves on until the spec changes again",
        _ => "rolled back: the old version serves on",
    };
    let message = format!("the new version {reason}; {what}");
    // The old record as it is now (its run), with the failure noted.
    if let Some(live) = engine.live(Kind::Container, name)? {
        let mut info = live.container_info().cloned().unwrap_or_default();
        info.held_back = Some(hash.to_string());
        info.rollout = Some(format!("failed: {message}"));
        engine
            .store
            .live_set_info(Kind::Container, name, &records::encode_info(&LiveInfo::Container(info)))?;
    }
    engine.event(&key, "RolloutFailed", &message);
    if on_failure == UpdateFailure::Rollback {
        roll_back(engine, old, &message)?;
    }
    Err(DriverError::Invalid(format!(
        "container/{name}: start-first rollout failed: {message}"
    )))
}

/// `onFailure: rollback`: the revision that brought the failing spec is
/// rolled back as a whole (the daemon's [`crate::reconcile::seams::RevisionRollback`]), after this
/// pass: the pass holds its lock, and an apply waits for passes. Until then
/// the failing spec is held back, so no pass retries it. Without a revision
/// to go back to (or without the daemon's hook), the container's previous
/// spec alone is desired again.
pub(crate) fn roll_back(engine: &Arc<Engine>, old: &Live, reason: &str) -> DriverResult {
    let Some(hook) = engine.revision_rollback.get().cloned() else {
        return restore_previous_spec(engine, old, reason);
    };
    let Some(found) = engine.desired_all()?.into_iter().find(|d| d.key() == old.key) else {
        return Ok(());
    };
    let (engine, old, reason) = (engine.clone(), old.clone(), reason.to_string());
    tokio::spawn(async move {
        match hook
            .roll_back(engine.clone(), found.source.clone(), reason.clone())
            .await
        {
            Ok(()) => engine.event(
                &old.key,
                "RolledBack",
                &format!("revision of {} rolled back: {reason}", found.source),
            ),
            Err(e) => {
                engine.event(
                    &old.key,
                    "RollbackFailed",
                    &format!("the revision of {}: {e}", found.source),
                );
                if let Err(e) = restore_previous_spec(&engine, &old, &reason) {
                    engine.event(&old.key, "RollbackFailed", &e.to_string());
                }
            }
        }
        engine.wake();
    });
    Ok(())
}

/// Puts the container's previous spec back as the desired one (its source
/// stays), so every pass keeps the old version.
fn restore_previous_spec(engine: &Engine, old: &Live, reason: &str) -> DriverResult {
    let name = old.key.name.as_str();
    let desired = engine.desired_all()?;
    let Some(found) = desired.iter().find(|d| d.key() == old.key) else {
        return Ok(());
    };
    let mut obj = found.object.clone();
    obj.spec = old.spec.clone();
    engine.store_set(&found.source, std::slice::from_ref(&obj), false, &|_, _| None)?;
    engine.event(
        &old.key,
        "RolledBack",
        &format!("container/{name}: its previous spec is desired again ({reason})"),
    );
    Ok(())
}
