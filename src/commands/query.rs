//! Commands that look (`get`, `describe`, `events`, `version`), wait for
//! readiness (`apply --wait`), or stop a container by hand.

use std::sync::Arc;
use std::time::Duration;

use super::{CommandError, Result};
use crate::manifest::Kind;
use crate::plan::ObjectKey;
use crate::reconcile::Engine;
use crate::wire::{Description, Event, ObjectView, StatusKind, StopResponse, VersionInfo, WaitRequest, WaitResponse};

/// How long `wait` may sleep between looks: backoff timers change status
/// without an event.
const WAIT_POLL: Duration = Duration::from_millis(200);

pub fn parse_kind(kind: &str) -> Result<Kind> {
    Kind::parse_loose(kind).ok_or_else(|| {
        CommandError::Invalid(format!(
            "unknown kind {kind:?}: expected image, container, network or volume"
        ))
    })
}

/// Views of objects, optionally of one kind; naming one object that does
/// not exist is `NotFound`, as `kubectl get KIND NAME` answers.
pub fn list(engine: &Arc<Engine>, kind: Option<&str>, name: Option<&str>) -> Result<Vec<ObjectView>> {
    let kind = kind.map(parse_kind).transpose()?;
    if let Some(name) = name {
        match kind {
            Some(k) => super::check_name(k, name)?,
            None => super::check_name_of("object", name)?,
        }
    }
    let views = engine.views(kind, name)?;
    if let (Some(name), true) = (name, views.is_empty()) {
        let what = match kind {
            Some(k) => ObjectKey::new(k, name).to_string(),
            None => name.to_string(),
        };
        return Err(CommandError::NotFound(what));
    }
    Ok(views)
}

pub fn describe(engine: &Arc<Engine>, kind: &str, name: &str) -> Result<Description> {
    let kind = parse_kind(kind)?;
    super::check_name(kind, name)?;
    let key = ObjectKey::new(kind, name);
    engine
        .describe(&key)?
        .ok_or_else(|| CommandError::NotFound(key.to_string()))
}

pub fn events(engine: &Engine, after: i64) -> Result<Vec<Event>> {
    Ok(engine.events(after, None, 1000)?)
}

pub fn version(engine: &Engine) -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        root: engine.root().display().to_string(),
        pid: std::process::id(),
    }
}

/// Stops a container (SIGTERM, then SIGKILL after its grace period), keeping it.
pub async fn stop(engine: &Arc<Engine>, name: &str) -> Result<StopResponse> {
    stop_with(engine, name, Default::default()).await
}

/// [`stop`] with a grace period or first signal of the caller's (Docker's
/// `stop -t N --signal S`).
pub async fn stop_with(engine: &Arc<Engine>, name: &str, opts: crate::reconcile::StopOptions) -> Result<StopResponse> {
    super::check_name(Kind::Container, name)?;
    if !engine.container_exists(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    engine.stop_by_name_with(name, opts).await;
    Ok(StopResponse { stopped: name.into() })
}

/// Waits until the objects (all with a source when `keys` is empty) are
/// ready, one has failed, or the timeout passes.
pub async fn wait(engine: &Arc<Engine>, req: WaitRequest) -> Result<WaitResponse> {
    let mut changes = engine.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms);
    loop {
        changes.borrow_and_update();
        let views = engine.views(None, None)?;
        let line = |v: &ObjectView| format!("{}/{}: {}", v.kind.to_ascii_lowercase(), v.name, v.status);
        let wanted: Vec<&ObjectView> = views
            .iter()
            .filter(|v| {
                v.source.is_some()
                    && (req.keys.is_empty()
                        || req
                            .keys
                            .contains(&format!("{}/{}", v.kind.to_ascii_lowercase(), v.name)))
            })
            .collect();
        let of = |state: StatusKind| -> Vec<String> {
            wanted.iter().filter(|v| v.state == state).map(|v| line(v)).collect()
        };
        let (waiting, failed) = (of(StatusKind::Progressing), of(StatusKind::Failed));
        if waiting.is_empty() || !failed.is_empty() {
            return Ok(WaitResponse {
                ready: waiting.is_empty() && failed.is_empty(),
                waiting,
                failed,
            });
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(WAIT_POLL) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(WaitResponse { ready: false, waiting, failed });
            }
        }
    }
}
