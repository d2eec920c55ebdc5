//! Starting a container: its image, volumes and network, the shim, and
//! the watch on the shim's exit; `berth start` and a restart when unhealthy.

use super::*;

/// Creates and starts a container (or restarts it from its existing
/// writable layer when the live record has the same spec hash). The caller
/// holds the container's lock.
pub(super) async fn start_container(engine: &Arc<Engine>, obj: &Object, hash: &str) -> DriverResult {
    start_with(engine, obj, hash, false).await
}

/// [`start_container`]; with `wait_attach`, the init waits for the first
/// attached client before it execs (see `ShimConfig::wait_attach`).
pub(super) async fn start_with(engine: &Arc<Engine>, obj: &Object, hash: &str, wait_attach: bool) -> DriverResult {
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
    cfg.io.wait_attach = wait_attach;
    join_peer_namespaces(engine, spec, &mut cfg.isolation)?;
    // As Docker, a source's own volumes-from come along (read-only if
    // either link says so); each container once, so a cycle ends.
    let mut queue: Vec<crate::manifest::VolumesFrom> = spec.volumes_from.clone();
    let mut seen: HashSet<String> = HashSet::from([name.to_string()]);
    while let Some(from) = queue.pop() {
        if !seen.insert(from.container.clone()) {
            continue;
        }
        let (mounts, further) = volumes_from(engine, spec, &from).await?;
        for m in mounts {
            if cfg.mounts.iter().all(|have| have.destination != m.destination) {
                cfg.mounts.push(m);
            }
        }
        queue.extend(further.into_iter().map(|f| crate::manifest::VolumesFrom {
            read_only: f.read_only || from.read_only,
            ..f
        }));
    }
    populate_volumes(engine, spec, &resolved.view.lower_dirs).await?;
    let wired = network::wire(engine, name, spec).await?;
    let chosen_before = engine
        .live(Kind::Container, name)?
        .filter(|rec| rec.spec_hash == hash)
        .and_then(|rec| rec.container_info().map(|i| i.published.clone()))
        .unwrap_or_default();
    let published = match network::publish(engine, name, spec, &resolved.view.exposed_ports, &chosen_before).await {
        Ok(p) => p,
        Err(e) => {
            unwire_failed(engine, &key, spec).await;
            return Err(e);
        }
    };
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
    if info.next_restart_at.is_none() {
        // Started by hand (or first): on-failure's count starts over, as
        // `docker start` resets RestartCount.
        info.failed_runs = 0;
    }
    info.failure = None;
    info.next_restart_at = None;
    info.hold = None;
    info.started_at = Some(now_millis());
    // Rows of an older berth named a bare imported tree here; none is now.
    info.layer = None;
    info.image_id = resolved.image_id.clone();
    info.stop_signal = spec.stop_signal.clone().or_else(|| resolved.view.stop_signal.clone());
    info.image_healthcheck = match &spec.healthcheck {
        Some(_) => None,
        None => resolved.view.healthcheck.clone(),
    };
    info.labels = translate::labels(&resolved.view, &obj.metadata.labels);
    info.exposed_ports = resolved.view.exposed_ports.clone();
    info.published = published;
    let put = |info: &ContainerInfo| {
        let rec = records::encode_live(obj, hash, &LiveInfo::Container(info.clone()), created_at);
        engine.store.live_put(&rec)
    };
    engine.ensure_id(name)?;
    put(&info)?;
    // Made only once the live record exists, so the delete that removes
    // them always runs (see ContainerDriver::delete).
    if let Err(err) = make_anonymous_volumes(engine, name, spec, &resolved.view).await {
        unwire_failed(engine, &key, spec).await;
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
                network::refresh_hosts(engine).await;
            }
            // NAT holds networks and published ports only.
            if !info.published.is_empty() {
                if let Err(e) = network::sync_nat(engine).await {
                    engine.event(&key, "NatFailed", &e.to_string());
                }
            }
            engine.changed();
            Ok(())
        }
        Err(e) => {
            unwire_failed(engine, &key, spec).await;
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

/// `pid`/`ipc: container:NAME`: the namespace of the peer's running init,
/// by its /proc path (the runtime knows nothing of other containers).
fn join_peer_namespaces(
    engine: &Engine,
    spec: &ContainerSpec,
    iso: &mut crate::runtime::isolation::Isolation,
) -> DriverResult {
    use crate::runtime::isolation::NamespaceJoin;
    for (ns, mode, join) in [("pid", &spec.pid, &mut iso.pid), ("ipc", &spec.ipc, &mut iso.ipc)] {
        let Some(peer) = mode.as_deref().and_then(|m| m.strip_prefix("container:")) else {
            continue;
        };
        match engine.host.containers.probe(peer) {
            Probe::Running(run) => *join = NamespaceJoin::Path(format!("/proc/{}/ns/{ns}", run.init_pid).into()),
            _ => {
                return Err(DriverError::Waiting(format!(
                    "waiting for container/{peer} to run: this container joins its {ns} namespace"
                )))
            }
        }
    }
    Ok(())
}

/// Undoes `network::wire` once a later step of a start failed: a start
/// leaves nothing behind, else a container that does not run would hold
/// its veths, namespace and addresses (and stay in its peers' hosts) until
/// it is deleted. The retry wires it again.
async fn unwire_failed(engine: &Engine, key: &ObjectKey, spec: &ContainerSpec) {
    if let Err(e) = network::unwire(engine, &key.name, spec.networks.len()).await {
        engine.event(key, "UnwireFailed", &e.status_message());
    }
    if !spec.networks.is_empty() {
        network::refresh_hosts(engine).await;
    }
}

/// A container's image, whichever way it was named.
pub(super) struct ResolvedImage {
    view: translate::ImageView,
    /// The image's id.
    image_id: Option<String>,
}

/// Finds the container's image: an Image object (imported or pulled), or a
/// registry reference named directly, pulled if missing (`IfNotPresent`).
pub(super) async fn resolve_image(
    engine: &Arc<Engine>,
    key: &ObjectKey,
    name: &str,
) -> Result<ResolvedImage, DriverError> {
    let pulled = |record: &crate::image::ImageRecord, spec: Option<&crate::manifest::ImageSpec>| {
        let lowers = engine.host.images.lower_dirs(record)?;
        let mut view = translate::ImageView::pulled(lowers, &record.config, spec);
        view.passwd = engine.host.images.image_file(record, "/etc/passwd");
        view.group = engine.host.images.image_file(record, "/etc/group");
        Ok::<_, DriverError>(ResolvedImage {
            view,
            image_id: Some(record.id.clone()),
        })
    };
    if let Some(image) = engine.live(Kind::Image, name)? {
        let (LiveInfo::Image(info), Spec::Image(image_spec)) = (&image.info, &image.spec) else {
            return Err(DriverError::Invalid(format!("image/{name} has no image record")));
        };
        // No id: an import an older berth kept as a bare tree; the Image
        // object's next pass imports it again as an image.
        let id = info
            .id
            .as_ref()
            .ok_or_else(|| DriverError::Waiting(format!("waiting for image/{name} to be imported again")))?;
        let record =
            engine.host.images.image(id).ok_or_else(|| {
                DriverError::Waiting(format!("waiting for image/{name} to be pulled or imported again"))
            })?;
        return pulled(&record, Some(image_spec));
    }
    if crate::image::record::looks_like_reference(name) {
        let record =
            super::super::image::ensure_image(engine, key, name, None, crate::manifest::PullPolicy::IfNotPresent)
                .await?;
        return pulled(&record, None);
    }
    Err(DriverError::Waiting(format!("waiting for image/{name} to be imported")))
}

/// Fills each named volume the container mounts from the image's content at
/// its mount path, on the volume's first use (see `VolumeHost::populate`).
/// The content is the image's merged view at `path` (see `image::merged`).
pub(super) async fn populate_volumes(engine: &Engine, spec: &ContainerSpec, layers: &[PathBuf]) -> DriverResult {
    for m in spec.volumes.iter().filter(|m| !m.nocopy) {
        if let (Some(volume), Some(path)) = (&m.volume, &m.path) {
            populate_one(engine, volume, path, layers).await?;
        }
    }
    Ok(())
}

/// Fills volume `volume` from the image's content at `path` on its first
/// use (see `VolumeHost::populate`).
pub(super) async fn populate_one(engine: &Engine, volume: &str, path: &str, layers: &[PathBuf]) -> DriverResult {
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

/// The mounts `from` gives the container with spec `own`: the source's
/// volumes as they are now, its anonymous ones made if it never started
/// (Docker's data volume container is only ever `create`d); and the
/// source's own `volumesFrom`.
async fn volumes_from(
    engine: &Arc<Engine>,
    own: &ContainerSpec,
    from: &crate::manifest::VolumesFrom,
) -> Result<(Vec<crate::runtime::MountSpec>, Vec<crate::manifest::VolumesFrom>), DriverError> {
    let source_name = from.container.as_str();
    let desired = engine.desired_objects()?;
    let source = desired
        .iter()
        .find(|o| o.kind() == Kind::Container && o.name() == source_name)
        .and_then(|o| match &o.spec {
            Spec::Container(spec) => Some(spec.clone()),
            _ => None,
        });
    // Its anonymous volumes are made only once it has a live record, so
    // that its delete removes them (see `make_anonymous_volumes`).
    let (Some(source), Some(_)) = (source, engine.live(Kind::Container, source_name)?) else {
        return Err(DriverError::Waiting(format!(
            "waiting for container/{source_name} (volumesFrom) to be created"
        )));
    };
    for m in &source.volumes {
        if let Some(v) = m.volume.as_deref().filter(|v| !engine.host.volumes.exists(v)) {
            return Err(DriverError::Waiting(format!(
                "waiting for volume/{v} of container/{source_name} (volumesFrom) to be made"
            )));
        }
    }
    let key = ObjectKey::new(Kind::Container, source_name);
    let resolved = resolve_image(engine, &key, &source.image).await?;
    make_anonymous_volumes(engine, source_name, &source, &resolved.view).await?;
    let anonymous = translate::anonymous_volumes(source_name, &source, &resolved.view);
    let volumes = engine.host.volumes.clone();
    let mounts = translate::volumes_from_mounts(&source, &anonymous, from.read_only, own, &|v| volumes.path(v));
    Ok((mounts, source.volumes_from.clone()))
}

/// Makes the anonymous volumes of the image's `Volumes` the container's
/// mounts leave uncovered (translate put them in its mounts), filled from
/// the image on first use like named volumes. They are kept across restarts
/// and replaces of the container (as Compose keeps them on recreate) and
/// removed with it (see [`remove_anonymous_volumes`]).
pub(super) async fn make_anonymous_volumes(
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
        if !anon.nocopy {
            populate_one(engine, &anon.id, &anon.path, &view.lower_dirs).await?;
        }
    }
    Ok(())
}

/// Watches a shim until it exits, then records the exit and wakes the loop.
pub(super) fn watch_shim(engine: &Arc<Engine>, name: String, run: RunRecord) {
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

pub(super) fn on_shim_exit(engine: &Engine, name: &str) {
    crate::runtime::profile::mark(name, "shim exit seen");
    if let Probe::Exited(exit) = engine.host.containers.probe(name) {
        match engine.live(Kind::Container, name) {
            Ok(Some(live)) => {
                let mut info = live.container_info().cloned().unwrap_or_default();
                if info.last_exit.as_ref().map(|e| e.finished_at) != Some(exit.finished_at) {
                    record_exit(engine, name, &mut info, &exit, live.restart_rule());
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

/// `berth start`: starts a stopped container again (from its writable
/// layer) and lifts a stop hold.
pub async fn start_by_name(engine: &Arc<Engine>, name: &str) -> std::result::Result<(), VerbError> {
    start_by_name_with(engine, name, false).await
}

/// [`start_by_name`]; with `wait_attach`, the init waits for the first
/// attached client before it execs (Docker's attach-then-start).
pub async fn start_by_name_with(
    engine: &Arc<Engine>,
    name: &str,
    wait_attach: bool,
) -> std::result::Result<(), VerbError> {
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
    start_with(engine, &obj, &hash, wait_attach).await?;
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
