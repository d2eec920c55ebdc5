//! Stopping a container: its stop signal, then SIGKILL after the grace
//! period; `berth stop` and `berth kill`.

use super::*;

/// Waits until the container is no longer running, up to `timeout`.
pub(super) async fn wait_stopped(
    engine: &Engine,
    name: &str,
    exits: &mut broadcast::Receiver<String>,
    timeout: Duration,
) -> bool {
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
pub(super) async fn stop_container(engine: &Engine, name: &str, grace: Duration) {
    stop_container_with(engine, name, grace, None).await
}

/// [`stop_container`] with another signal than the container's own
/// (Docker's `stop --signal`).
pub(super) async fn stop_container_with(engine: &Engine, name: &str, grace: Duration, signal: Option<Signal>) {
    let mut exits = engine.exits();
    if !matches!(engine.host.containers.probe(name), Probe::Running(_) | Probe::Starting) {
        return;
    }
    thaw_if_frozen(engine, name).await;
    let signal = signal.unwrap_or_else(|| stop_signal_of(engine, name));
    // Teardown goes on (SIGKILL and the cgroup kill still end it), but the
    // failure is said: it is why the stop took the whole grace period.
    let said = |signal: Signal, e: crate::runtime::RuntimeError| {
        engine.event(
            &ObjectKey::new(Kind::Container, name),
            "StopFailed",
            &format!("cannot send {signal}: {e}"),
        )
    };
    if let Err(e) = engine.host.containers.signal(name, signal) {
        said(signal, e);
    }
    if wait_stopped(engine, name, &mut exits, grace).await {
        return;
    }
    if let Err(e) = engine.host.containers.signal(name, Signal::SIGKILL) {
        said(Signal::SIGKILL, e);
    }
    engine.host.containers.kill_all(name);
    if !wait_stopped(engine, name, &mut exits, KILL_WAIT).await {
        tracing::warn!(container = name, "still running 5 s after SIGKILL");
    }
}

/// The signal that asks a container to stop: its image's StopSignal
/// (`SIGQUIT`, `QUIT` or a number), else SIGTERM.
pub(super) fn stop_signal_of(engine: &Engine, name: &str) -> Signal {
    let wanted = match engine.live(Kind::Container, name) {
        Ok(Some(live)) => live.container_info().and_then(|i| i.stop_signal.clone()),
        _ => None,
    };
    wanted.and_then(|s| parse_signal(&s)).unwrap_or(Signal::SIGTERM)
}

pub(super) fn parse_signal(text: &str) -> Option<Signal> {
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

pub(super) fn grace_of(engine: &Engine, name: &str) -> Duration {
    match engine.live(Kind::Container, name) {
        Ok(Some(live)) => live
            .container_spec()
            .and_then(|c| c.stop_grace_period)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_GRACE),
        _ => DEFAULT_GRACE,
    }
}

/// Stops a container by hand, keeping it (`berth stop`): it is not restarted
/// until `start`, or an apply that changes it.
pub async fn stop_by_name(engine: &Arc<Engine>, name: &str) {
    stop_by_name_with(engine, name, Default::default()).await
}

/// [`stop_by_name`] with a grace period and signal of the caller's.
pub async fn stop_by_name_with(engine: &Arc<Engine>, name: &str, opts: crate::reconcile::StopOptions) {
    let lock = engine.lock_for(&ObjectKey::new(Kind::Container, name));
    let _held = lock.lock().await;
    // Held first, so the exit it causes is recorded without a restart.
    set_hold(engine, name, Some(Hold::Stopped));
    let grace = opts.grace.unwrap_or_else(|| grace_of(engine, name));
    let was_running = running(engine, name);
    stop_container_with(engine, name, grace, opts.signal).await;
    set_hold(engine, name, Some(Hold::Stopped));
    if was_running {
        engine.event(&ObjectKey::new(Kind::Container, name), "Stopped", "by hand");
    }
}

/// Thaws a frozen container, so that a signal to stop it acts now.
pub(super) async fn thaw_if_frozen(engine: &Engine, name: &str) {
    if !engine.host.containers.is_frozen(name) {
        return;
    }
    let host = engine.host.containers.clone();
    let id = name.to_string();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || host.freeze(&id, false)).await {
        tracing::warn!(container = name, "thawing before the stop: {e}");
    }
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
    engine.event(
        &ObjectKey::new(Kind::Container, name),
        "Killed",
        &format!("signal {}", signal as i32),
    );
    engine.host.containers.signal(name, signal).map_err(DriverError::from)?;
    if signal == Signal::SIGKILL {
        // The whole container, as runc kill --all: exec'd processes too.
        engine.host.containers.kill_all(name);
    }
    Ok(())
}
