//! Containers: started through the runtime's shim, watched through their
//! shim's pidfd, restarted per policy with backoff, stopped with SIGTERM then
//! SIGKILL after the grace period. Every action on one container holds its
//! lock, so `run`, `stop` and a pass never act on it at once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::broadcast;

use super::{network, Driver, DriverResult, Observe};
use crate::manifest::{ContainerSpec, DependencyCondition, Kind, Object, RestartPolicy, Spec};
use crate::plan::{self, ObjectKey, RunState};
use crate::reconcile::error::{DriverError, VerbError};
use crate::reconcile::records::{self, ContainerInfo, Hold, Live, LiveInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{lock, now_millis, policy, translate, Engine, Result};
use crate::runtime::{ExitRecord, Probe, RunRecord};

pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long a container may take to die after SIGKILL before we say so.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub struct ContainerDriver;

impl Driver for ContainerDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, mode: Observe) -> Option<RunState> {
        Some(observe_container(engine, live, mode))
    }

    fn create<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, obj.name()));
            let _held = held.lock().await;
            start_container(engine, obj, hash).await
        })
    }

    fn replace<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, obj.name()));
            let _held = held.lock().await;
            remove_container(engine, obj.name()).await?;
            start_container(engine, obj, hash).await
        })
    }

    fn stop<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, name));
            let _held = held.lock().await;
            stop_container(engine, name, DEFAULT_GRACE).await;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, name));
            let _held = held.lock().await;
            remove_container(engine, name).await?;
            // Before the live record goes: a failure is retried by a later
            // pass, which finds the record still there.
            remove_anonymous_volumes(engine, name).await?;
            engine.store.live_delete(Kind::Container, name)?;
            engine.forget_id(name)?;
            Ok(())
        })
    }
}

fn exit(code: i32, finished_at: i64) -> ExitRecord {
    ExitRecord {
        code,
        signal: None,
        oom_killed: false,
        finished_at,
    }
}

/// What a live container is now. With [`Observe::AndRecord`], an exit not
/// seen before is recorded (and its restart scheduled), a running shim is
/// adopted, and a container whose shim died is killed and cleaned up.
fn observe_container(engine: &Arc<Engine>, live: &Live, mode: Observe) -> RunState {
    let name = &live.key.name;
    let policy = live.restart_policy();
    if engine.watched_run(live).is_some() {
        return RunState::Running;
    }
    let mut info = live.container_info().cloned().unwrap_or_default();
    let now = now_millis();
    let exit = match engine.host.containers.probe(name) {
        Probe::Running(run) => {
            // A shim started by a daemon that died before it answered is
            // adopted here; watching it twice is harmless (see watch_shim).
            if mode == Observe::AndRecord {
                watch_shim(engine, name.clone(), run);
            }
            return RunState::Running;
        }
        Probe::Starting => return RunState::Running,
        Probe::Exited(exit) => exit,
        Probe::Lost { .. } if mode == Observe::Only => {
            // What a pass would find: an exit to handle by the policy.
            return RunState::Exited {
                code: 255,
                restart_due: info.hold != Some(Hold::Stopped) && policy::wants_restart(policy, 255),
            };
        }
        Probe::Lost { init_alive, .. } => {
            // The shim died: its container cannot be supervised any more.
            if init_alive {
                engine.host.containers.kill_all(name);
            }
            if let Err(e) = engine.host.containers.cleanup(name) {
                tracing::warn!(container = %name, "cleanup after a lost shim: {e}");
            }
            engine.event(
                &live.key,
                "ShimLost",
                "the container's shim died; its process was killed",
            );
            exit(255, now)
        }
        Probe::Absent => match (&info.failure, &info.last_exit) {
            (Some(_), _) => exit(128, 0),
            (None, Some(last)) => last.clone(),
            // Made by `create` and not started yet: nothing to record.
            (None, None) if info.hold == Some(Hold::Stopped) => {
                return RunState::Exited {
                    code: 0,
                    restart_due: false,
                }
            }
            // Recorded but never started (the daemon died in between).
            (None, None) => exit(255, now),
        },
    };
    let unrecorded = info.last_exit.as_ref().map(|e| e.finished_at) != Some(exit.finished_at);
    if info.failure.is_none() && unrecorded {
        if mode == Observe::Only {
            // A pass would record it now and schedule the restart.
            return RunState::Exited {
                code: exit.code,
                restart_due: false,
            };
        }
        record_exit(engine, name, &mut info, &exit, policy);
    }
    RunState::Exited {
        code: exit.code,
        restart_due: info.hold != Some(Hold::Stopped)
            && policy::restart_due(policy, exit.code, info.next_restart_at, now),
    }
}

fn record_exit(engine: &Engine, name: &str, info: &mut ContainerInfo, exit: &ExitRecord, restart: RestartPolicy) {
    let key = ObjectKey::new(Kind::Container, name);
    let decision = policy::decide_exit(
        restart,
        exit.code,
        info.backoff_step,
        info.started_at,
        exit.finished_at,
        now_millis(),
    );
    info.backoff_step = decision.backoff_step;
    // Stopped by hand: the policy waits for `start`.
    info.next_restart_at = decision.restart_at.filter(|_| info.hold != Some(Hold::Stopped));
    info.last_exit = Some(exit.clone());
    info.run = None;
    let mut msg = format!("exited with code {}", exit.code);
    if exit.oom_killed {
        msg.push_str(" (OOMKilled)");
    }
    if info.next_restart_at.is_some() {
        msg.push_str(&format!("; restarting in {} ms", decision.delay_ms));
    }
    engine.event(&key, if exit.oom_killed { "OOMKilled" } else { "Exited" }, &msg);
    let text = records::encode_info(&LiveInfo::Container(info.clone()));
    if let Err(e) = engine.store.live_set_info(Kind::Container, name, &text) {
        tracing::warn!(container = name, "cannot record its exit: {e}");
    }
}

/// Checks that every `dependsOn` condition holds now.
fn dependencies_met(engine: &Engine, obj: &Object) -> DriverResult {
    let Spec::Container(spec) = &obj.spec else {
        return Ok(());
    };
    for dep in &spec.depends_on {
        let probe = engine.host.containers.probe(&dep.name);
        let (met, cond) = match dep.condition {
            DependencyCondition::Started => (matches!(probe, Probe::Running(_) | Probe::Exited(_)), "started"),
            DependencyCondition::Completed => (matches!(probe, Probe::Exited(ref e) if e.code == 0), "completed"),
            DependencyCondition::Healthy => {
                if matches!(probe, Probe::Running(_)) && !has_healthcheck(engine, &dep.name) {
                    let msg = format!(
                        "container/{} waits for container/{} to be healthy, but {} has no healthcheck \
                         (neither in its manifest nor in its image): give it one, or depend on it with \
                         `condition: started`",
                        obj.name(),
                        dep.name,
                        dep.name
                    );
                    let key = ObjectKey::new(Kind::Container, obj.name());
                    if engine.pending_reason(&key) != Some(crate::reconcile::Blocked::Waiting(msg.clone())) {
                        engine.event(&key, "NoHealthcheck", &msg);
                    }
                    return Err(DriverError::Waiting(msg));
                }
                (engine.is_healthy(&dep.name), "healthy")
            }
        };
        if !met {
            return Err(DriverError::Waiting(format!(
                "waiting for container/{} to be {cond}",
                dep.name
            )));
        }
    }
    Ok(())
}

/// Whether a made container has a healthcheck: its own, or its image's.
fn has_healthcheck(engine: &Engine, name: &str) -> bool {
    match engine.live(Kind::Container, name) {
        Ok(Some(live)) => {
            live.container_spec().is_some_and(|c| c.healthcheck.is_some())
                || live.container_info().is_some_and(|i| i.image_healthcheck.is_some())
        }
        // Not made yet: nothing is known.
        _ => true,
    }
}

/// Creates and starts a container (or restarts it from its existing
/// writable layer when the live record has the same spec hash). The caller
/// holds the container's lock.
async fn start_container(engine: &Arc<Engine>, obj: &Object, hash: &str) -> DriverResult {
    start_with(engine, obj, hash, false).await
}

/// [`start_container`]; with `wait_attach`, the init waits for the first
/// attached client before it execs (see `ShimConfig::wait_attach`).
async fn start_with(engine: &Arc<Engine>, obj: &Object, hash: &str, wait_attach: bool) -> DriverResult {
    let Spec::Container(spec) = &obj.spec else {
        return Err(DriverError::Invalid(format!("{} is not a container", obj.name())));
    };
    let name = obj.name();
    let key = ObjectKey::new(Kind::Container, name);
    dependencies_met(engine, obj)?;
    let resolved = resolve_image(engine, &key, &spec.image).await?;
    let volumes = engine.host.volumes.clone();
    let mut cfg = translate::container_config(name, spec, &resolved.view, &|v| volumes.path(v))
        .map_err(|e| DriverError::Invalid(e.to_string()))?;
    cfg.wait_attach = wait_attach;
    populate_volumes(engine, spec, &resolved.view.lower_dirs).await?;
    let wired = network::wire(engine, name, spec).await?;
    cfg.netns = wired.netns;
    cfg.mounts.extend(wired.mounts);

    let live = engine.live(Kind::Container, name)?;
    // A restart (or the start after `create`) is the same container: it
    // keeps its creation time; a replaced spec makes a new one.
    let created_at = match &live {
        Some(rec) if rec.spec_hash == hash => rec.created_at,
        _ => now_millis(),
    };
    let mut info = match live {
        Some(rec) if rec.spec_hash == hash => {
            let mut info = rec.container_info().cloned().unwrap_or_default();
            // A first start after `create` is not a restart.
            if info.last_exit.is_some() || info.run.is_some() {
                info.restarts += 1;
            }
            info.backoff_step += 1;
            info
        }
        _ => ContainerInfo::default(),
    };
    info.failure = None;
    info.next_restart_at = None;
    info.hold = None;
    info.started_at = Some(now_millis());
    info.layer = resolved.layer.clone();
    info.image_id = resolved.image_id.clone();
    info.stop_signal = resolved.view.stop_signal.clone();
    info.image_healthcheck = match &spec.healthcheck {
        Some(_) => None,
        None => resolved.view.healthcheck.clone(),
    };
    info.labels = translate::labels(&resolved.view, &obj.metadata.labels);
    info.exposed_ports = resolved.view.exposed_ports.clone();
    let put = |info: &ContainerInfo| {
        let rec = records::encode_live(obj, hash, &LiveInfo::Container(info.clone()), created_at);
        engine.store.live_put(&rec)
    };
    engine.ensure_id(name)?;
    put(&info)?;
    // Made only once the live record exists, so the delete that removes
    // them always runs (see ContainerDriver::delete).
    if let Err(err) = make_anonymous_volumes(engine, name, spec, &resolved.view).await {
        info.failure = Some(err.status_message());
        info.next_restart_at = Some(now_millis() + policy::backoff_delay_ms(info.backoff_step));
        put(&info)?;
        engine.event(&key, "Failed", &err.status_message());
        engine.changed();
        return Err(err);
    }
    tracing::debug!(container = name, "start: shim spawning");
    match engine.host.containers.start(&cfg).await {
        Ok(run) => {
            tracing::debug!(container = name, "start: container running");
            info.run = Some(run);
            put(&info)?;
            engine.event(&key, "Started", &format!("pid {}", run.init_pid));
            watch_shim(engine, name.to_string(), run);
            if !spec.networks.is_empty() {
                network::refresh_hosts(engine);
            }
            // NAT holds networks and published ports only.
            if !spec.ports.is_empty() {
                if let Err(e) = network::sync_nat(engine).await {
                    engine.event(&key, "NatFailed", &e.to_string());
                }
            }
            engine.changed();
            Ok(())
        }
        Err(e) => {
            let err = DriverError::Runtime(e);
            let message = err.status_message();
            info.failure = Some(message.clone());
            info.next_restart_at = Some(now_millis() + policy::backoff_delay_ms(info.backoff_step));
            put(&info)?;
            engine.event(&key, "Failed", &message);
            engine.changed();
            Err(err)
        }
    }
}

/// A container's image, whichever way it was named.
struct ResolvedImage {
    view: translate::ImageView,
    /// An imported image's layer (kept from layer GC while the container lives).
    layer: Option<PathBuf>,
    /// A pulled image's id.
    image_id: Option<String>,
}

/// Finds the container's image: an Image object (imported or pulled), or a
/// registry reference named directly, pulled if missing (`IfNotPresent`).
async fn resolve_image(engine: &Arc<Engine>, key: &ObjectKey, name: &str) -> Result<ResolvedImage, DriverError> {
    let pulled = |record: &crate::image::ImageRecord, spec: Option<&crate::manifest::ImageSpec>| {
        let lowers = engine.host.images.lower_dirs(record)?;
        let mut view = translate::ImageView::pulled(lowers, &record.config, spec);
        view.passwd = engine.host.images.image_file(record, "/etc/passwd");
        view.group = engine.host.images.image_file(record, "/etc/group");
        Ok::<_, DriverError>(ResolvedImage {
            view,
            layer: None,
            image_id: Some(record.id.clone()),
        })
    };
    if let Some(image) = engine.live(Kind::Image, name)? {
        let (LiveInfo::Image(info), Spec::Image(image_spec)) = (&image.info, &image.spec) else {
            return Err(DriverError::Invalid(format!("image/{name} has no image record")));
        };
        if let Some(id) = &info.id {
            let record = engine
                .host
                .images
                .image(id)
                .ok_or_else(|| DriverError::Waiting(format!("waiting for image/{name} to be pulled again")))?;
            return pulled(&record, Some(image_spec));
        }
        let mut view = translate::ImageView::imported(&info.dir, image_spec);
        let layer = [info.dir.clone()];
        view.passwd = crate::image::merged::read_file(&layer, "/etc/passwd");
        view.group = crate::image::merged::read_file(&layer, "/etc/group");
        return Ok(ResolvedImage {
            view,
            layer: Some(info.dir.clone()),
            image_id: None,
        });
    }
    if crate::image::record::looks_like_reference(name) {
        let record =
            super::image::ensure_image(engine, key, name, None, crate::manifest::PullPolicy::IfNotPresent).await?;
        return pulled(&record, None);
    }
    Err(DriverError::Waiting(format!("waiting for image/{name} to be imported")))
}

/// Fills each named volume the container mounts from the image's content at
/// its mount path, on the volume's first use (see `VolumeHost::populate`).
/// The content is the image's merged view at `path` (see `image::merged`).
async fn populate_volumes(engine: &Engine, spec: &ContainerSpec, layers: &[PathBuf]) -> DriverResult {
    for m in &spec.volumes {
        if let (Some(volume), Some(path)) = (&m.volume, &m.path) {
            populate_one(engine, volume, path, layers).await?;
        }
    }
    Ok(())
}

/// Fills volume `volume` from the image's content at `path` on its first
/// use (see `VolumeHost::populate`).
async fn populate_one(engine: &Engine, volume: &str, path: &str, layers: &[PathBuf]) -> DriverResult {
    let from = crate::image::merged::lookup(layers, path);
    if from.is_empty() {
        return Ok(());
    }
    let host = engine.host.volumes.clone();
    let name = volume.to_string();
    let copied = tokio::task::spawn_blocking(move || host.populate(&name, &from))
        .await?
        .map_err(|source| DriverError::Io {
            action: "populate volume",
            path: engine.host.volumes.path(volume),
            source,
        })?;
    if copied {
        let key = ObjectKey::new(Kind::Volume, volume.to_string());
        engine.event(
            &key,
            "Populated",
            &format!("copied the image's {path} into it on first use"),
        );
    }
    Ok(())
}

/// Makes the anonymous volumes of the image's `Volumes` the container's
/// mounts leave uncovered (translate put them in its mounts), filled from
/// the image on first use like named volumes. They are kept across restarts
/// and replaces of the container (as Compose keeps them on recreate) and
/// removed with it (see [`remove_anonymous_volumes`]).
async fn make_anonymous_volumes(
    engine: &Engine,
    name: &str,
    spec: &ContainerSpec,
    view: &translate::ImageView,
) -> DriverResult {
    for anon in translate::anonymous_volumes(name, spec, view) {
        let host = engine.host.volumes.clone();
        let (id, container, path) = (anon.id.clone(), name.to_string(), anon.path.clone());
        tokio::task::spawn_blocking(move || host.create_anonymous(&id, &container, &path))
            .await?
            .map_err(|source| DriverError::Io {
                action: "create anonymous volume",
                path: engine.host.volumes.path(&anon.id),
                source,
            })?;
        populate_one(engine, &anon.id, &anon.path, &view.lower_dirs).await?;
    }
    Ok(())
}

/// Removes the anonymous volumes of container `name`, and any whose
/// container has no live record left (a daemon that died between the two).
/// Every one is tried; the first error is returned.
async fn remove_anonymous_volumes(engine: &Engine, name: &str) -> DriverResult {
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

/// Watches a shim until it exits, then records the exit and wakes the loop.
fn watch_shim(engine: &Arc<Engine>, name: String, run: RunRecord) {
    if !lock(&engine.watched).insert(run.shim_pid) {
        return;
    }
    crate::reconcile::health::monitor(engine, &name, run);
    // The name may change while it runs (`rename`); its runtime id does not.
    let id = engine.ids.id_of(&name);
    let engine = engine.clone();
    let waited = engine.host.containers.wait_shim(run);
    tokio::spawn(async move {
        waited.await;
        lock(&engine.watched).remove(&run.shim_pid);
        on_shim_exit(&engine, &engine.ids.name_of(&id));
    });
}

fn on_shim_exit(engine: &Engine, name: &str) {
    if let Probe::Exited(exit) = engine.host.containers.probe(name) {
        match engine.live(Kind::Container, name) {
            Ok(Some(live)) => {
                let mut info = live.container_info().cloned().unwrap_or_default();
                if info.last_exit.as_ref().map(|e| e.finished_at) != Some(exit.finished_at) {
                    record_exit(engine, name, &mut info, &exit, live.restart_policy());
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(container = name, "cannot record its exit: {e}"),
        }
    }
    let _ = engine.exits.send(name.to_string());
    engine.changed();
    engine.wake();
}

/// Waits until the container is no longer running, up to `timeout`.
async fn wait_stopped(engine: &Engine, name: &str, exits: &mut broadcast::Receiver<String>, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !matches!(engine.host.containers.probe(name), Probe::Running(_) | Probe::Starting) {
            return true;
        }
        tokio::select! {
            _ = exits.recv() => {}
            // A shim watched by nobody (adoption pending) exits without a message.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// SIGTERM, then SIGKILL after the grace period. A paused container is
/// thawed first: a frozen process cannot act on SIGTERM.
async fn stop_container(engine: &Engine, name: &str, grace: Duration) {
    let mut exits = engine.exits();
    if !matches!(engine.host.containers.probe(name), Probe::Running(_) | Probe::Starting) {
        return;
    }
    thaw_if_frozen(engine, name).await;
    let _ = engine.host.containers.signal(name, stop_signal_of(engine, name));
    if wait_stopped(engine, name, &mut exits, grace).await {
        return;
    }
    let _ = engine.host.containers.signal(name, Signal::SIGKILL);
    engine.host.containers.kill_all(name);
    if !wait_stopped(engine, name, &mut exits, KILL_WAIT).await {
        tracing::warn!(container = name, "still running 5 s after SIGKILL");
    }
}

/// The signal that asks a container to stop: its image's StopSignal
/// (`SIGQUIT`, `QUIT` or a number), else SIGTERM.
fn stop_signal_of(engine: &Engine, name: &str) -> Signal {
    let wanted = match engine.live(Kind::Container, name) {
        Ok(Some(live)) => live.container_info().and_then(|i| i.stop_signal.clone()),
        _ => None,
    };
    wanted.and_then(|s| parse_signal(&s)).unwrap_or(Signal::SIGTERM)
}

fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

fn grace_of(engine: &Engine, name: &str) -> Duration {
    match engine.live(Kind::Container, name) {
        Ok(Some(live)) => live
            .container_spec()
            .and_then(|c| c.stop_grace_period)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_GRACE),
        _ => DEFAULT_GRACE,
    }
}

/// Stops and removes everything of a container but its live record.
async fn remove_container(engine: &Engine, name: &str) -> DriverResult {
    stop_container(engine, name, grace_of(engine, name)).await;
    let host = engine.host.containers.clone();
    let id = name.to_string();
    let (networks, ports) = engine
        .live(Kind::Container, name)?
        .and_then(|l| l.container_spec().map(|c| (c.networks.len(), !c.ports.is_empty())))
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
        network::refresh_hosts(engine);
    }
    if ports {
        network::sync_nat(engine).await?;
    }
    Ok(())
}

/// Stops a container by hand, keeping it (`berth stop`): it is not restarted
/// until `start`, or an apply that changes it.
pub async fn stop_by_name(engine: &Arc<Engine>, name: &str) {
    let lock = engine.lock_for(&ObjectKey::new(Kind::Container, name));
    let _held = lock.lock().await;
    // Held first, so the exit it causes is recorded without a restart.
    set_hold(engine, name, Some(Hold::Stopped));
    stop_container(engine, name, grace_of(engine, name)).await;
    set_hold(engine, name, Some(Hold::Stopped));
}

/// Thaws a frozen container, so that a signal to stop it acts now.
async fn thaw_if_frozen(engine: &Engine, name: &str) {
    if !engine.host.containers.is_frozen(name) {
        return;
    }
    let host = engine.host.containers.clone();
    let id = name.to_string();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || host.freeze(&id, false)).await {
        tracing::warn!(container = name, "thawing before the stop: {e}");
    }
}

/// The hold on a container, from its live record.
fn held(engine: &Engine, name: &str) -> Option<Hold> {
    engine
        .live(Kind::Container, name)
        .ok()
        .flatten()
        .and_then(|l| l.container_info().and_then(|i| i.hold))
}

/// Records (or clears) a hold; the caller holds the container's lock.
fn set_hold(engine: &Engine, name: &str, hold: Option<Hold>) {
    let Ok(Some(live)) = engine.live(Kind::Container, name) else {
        return;
    };
    let mut info = live.container_info().cloned().unwrap_or_default();
    if info.hold == hold {
        return;
    }
    info.hold = hold;
    if hold == Some(Hold::Stopped) {
        info.next_restart_at = None;
    }
    let text = records::encode_info(&LiveInfo::Container(info));
    if let Err(e) = engine.store.live_set_info(Kind::Container, name, &text) {
        tracing::warn!(container = name, "cannot record its hold: {e}");
    }
    engine.changed();
}

fn running(engine: &Engine, name: &str) -> bool {
    matches!(engine.host.containers.probe(name), Probe::Running(_) | Probe::Starting)
}

/// `berth start`: starts a stopped container again (from its writable
/// layer) and lifts a stop hold.
pub async fn start_by_name(engine: &Arc<Engine>, name: &str) -> std::result::Result<(), VerbError> {
    let key = ObjectKey::new(Kind::Container, name);
    let lock = engine.lock_for(&key);
    let _held = lock.lock().await;
    if running(engine, name) {
        return Err(match held(engine, name) {
            Some(Hold::Paused) => VerbError::Paused(name.into()),
            _ => VerbError::AlreadyRunning(name.into()),
        });
    }
    let desired = engine.desired_objects().map_err(DriverError::from)?;
    let obj = desired
        .iter()
        .find(|o| o.kind() == Kind::Container && o.name() == name)
        .cloned()
        .ok_or_else(|| VerbError::NotDesired(name.into()))?;
    let hash = plan::spec_hashes(&desired).get(&key).cloned().unwrap_or_default();
    start_container(engine, &obj, &hash).await?;
    Ok(())
}

/// `onUnhealthy: restart`: stops the container and starts it again after
/// the restart backoff (which grows while restarts keep coming quickly).
pub async fn restart_unhealthy(engine: &Arc<Engine>, name: &str) -> DriverResult {
    let key = ObjectKey::new(Kind::Container, name);
    let lock = engine.lock_for(&key);
    let _held = lock.lock().await;
    // Held while it is down, so that the restart policy does not race us.
    set_hold(engine, name, Some(Hold::Stopped));
    stop_container(engine, name, grace_of(engine, name)).await;
    let step = engine
        .live(Kind::Container, name)?
        .and_then(|l| l.container_info().map(|i| i.backoff_step))
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(policy::backoff_delay_ms(step) as u64)).await;
    let desired = engine.desired_objects()?;
    let Some(obj) = desired
        .iter()
        .find(|o| o.kind() == Kind::Container && o.name() == name)
        .cloned()
    else {
        return Ok(());
    };
    let hash = plan::spec_hashes(&desired).get(&key).cloned().unwrap_or_default();
    start_container(engine, &obj, &hash).await
}

/// `berth kill`: a signal to the container's init. SIGKILL and SIGTERM stop
/// it by hand, as `docker kill` does: no restart until `start`.
pub async fn kill_by_name(engine: &Arc<Engine>, name: &str, signal: Signal) -> std::result::Result<(), VerbError> {
    let lock = engine.lock_for(&ObjectKey::new(Kind::Container, name));
    let _held = lock.lock().await;
    if !running(engine, name) {
        return Err(VerbError::NotRunning(name.into()));
    }
    if matches!(signal, Signal::SIGKILL | Signal::SIGTERM) {
        set_hold(engine, name, Some(Hold::Stopped));
        thaw_if_frozen(engine, name).await;
    }
    engine.host.containers.signal(name, signal).map_err(DriverError::from)?;
    if signal == Signal::SIGKILL {
        // The whole container, as runc kill --all: exec'd processes too.
        engine.host.containers.kill_all(name);
    }
    Ok(())
}

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
fn key_and_hash(engine: &Engine, obj: &Object) -> Result<(ObjectKey, String)> {
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

/// More interfaces than a container has (one per network it is on).
const MAX_INTERFACES: usize = 64;

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

/// `berth rename`: gives an imperative container a new name, running or not.
/// Only the name moves (in one store transaction); the runtime id stays (see
/// `reconcile::ids`), then DNS records and peers' /etc/hosts follow.
pub async fn rename(engine: &Arc<Engine>, old: &str, new: &str) -> std::result::Result<(), VerbError> {
    let invalid = |m: String| VerbError::Driver(DriverError::Invalid(m));
    if !crate::manifest::is_dns_label(new) {
        return Err(invalid(format!(
            "`{new}` is not a valid container name: use 1 to 63 lower-case letters, digits and `-`"
        )));
    }
    if old == new {
        return Err(VerbError::Conflict(format!("container {old} is already named {new}")));
    }
    // No pass and no other verb on either name while the rows move.
    let _pass = engine.pass_lock.lock().await;
    let (a, b) = (
        ObjectKey::new(Kind::Container, old),
        ObjectKey::new(Kind::Container, new),
    );
    let (first, second) = if a < b { (&a, &b) } else { (&b, &a) };
    let (l1, l2) = (engine.lock_for(first), engine.lock_for(second));
    let (_g1, _g2) = (l1.lock().await, l2.lock().await);

    let desired = engine.desired_all().map_err(DriverError::from)?;
    let Some(found) = desired.iter().find(|d| d.key() == a) else {
        return Err(VerbError::NotFound(old.into()));
    };
    if !found.source.starts_with("run:") {
        return Err(VerbError::Conflict(format!(
            "container {old} comes from {}: its name is the manifest's, rename it there",
            found.source
        )));
    }
    let taken =
        desired.iter().any(|d| d.key() == b) || engine.live(Kind::Container, new).map_err(DriverError::from)?.is_some();
    if taken {
        return Err(VerbError::Conflict(format!(
            "the name {new} is already in use by a container"
        )));
    }
    let users: Vec<String> = desired
        .iter()
        .filter_map(|d| {
            let Spec::Container(c) = &d.object.spec else {
                return None;
            };
            let shares = c.network.as_deref().and_then(|m| m.strip_prefix("container:")) == Some(old);
            let depends = c.depends_on.iter().any(|dep| dep.name == old);
            (shares || depends).then(|| d.object.name().to_string())
        })
        .collect();
    if !users.is_empty() {
        return Err(VerbError::Conflict(format!(
            "container {old} is named by {}: rename would break them",
            users.join(", ")
        )));
    }
    let mut obj = found.object.clone();
    obj.metadata.name = new.to_string();
    let body = serde_json::to_string(&obj).map_err(|e| invalid(e.to_string()))?;
    // A container with nothing made yet has no id to keep.
    let id = match engine.live(Kind::Container, old).map_err(DriverError::from)? {
        Some(_) => engine.ids.id_of(old),
        None => new.to_string(),
    };
    engine
        .store
        .rename_container(old, new, &body, &id)
        .map_err(DriverError::from)?;
    engine.ids.forget(old);
    engine.ids.set(new, &id);
    engine.rekey(&a, &b);
    engine.event(&b, "Renamed", &format!("renamed from {old}"));
    if let Spec::Container(c) = &obj.spec {
        if !c.networks.is_empty() {
            network::refresh_hosts(engine);
        }
    }
    engine.changed();
    Ok(())
}
