//! The daemon's REST API on a unix socket (axum). Handlers parse requests and
//! call the engine; the engine owns all state.

pub mod openapi;
pub mod types;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::manifest::{
    self, ContainerSpec, Diagnostic, Kind, Metadata, Object, Origin, Resources, RestartPolicy, Spec,
};
use crate::reconcile::{Engine, StatusKind};
use crate::runtime::{logs, Probe};
use types::*;

/// An error answer: status plus message, mapped once here.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The API's router, with a handler for every route of [`openapi::ROUTES`].
pub fn router(engine: Arc<Engine>) -> Router {
    routes().with_state(engine)
}

fn routes() -> Router<Arc<Engine>> {
    openapi::ROUTES
        .iter()
        .fold(Router::new(), |router, route| router.route(route.path, handler(route)))
}

fn handler(route: &openapi::Route) -> axum::routing::MethodRouter<Arc<Engine>> {
    match (route.method, route.path) {
        ("get", "/v1/version") => get(version),
        ("post", "/v1/apply") => post(apply),
        ("post", "/v1/delete") => post(delete),
        ("get", "/v1/objects") => get(list),
        ("get", "/v1/objects/{kind}/{name}") => get(describe),
        ("post", "/v1/wait") => post(wait),
        ("get", "/v1/logs/{name}") => get(logs_handler),
        ("post", "/v1/run") => post(run),
        ("post", "/v1/stop/{name}") => post(stop),
        ("get", "/v1/events") => get(events),
        (method, path) => panic!("documented route {method} {path} has no handler"),
    }
}

async fn version(State(engine): State<Arc<Engine>>) -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        root: engine.runtime.layout.root.display().to_string(),
        pid: std::process::id(),
    })
}

fn key_string(kind: Kind, name: &str) -> String {
    format!("{}/{}", kind.as_str().to_ascii_lowercase(), name)
}

/// Parses `kind/name` (kind case-insensitive, plural allowed).
pub fn parse_key(s: &str) -> Option<(Kind, String)> {
    let (k, n) = s.split_once('/')?;
    Some((Kind::parse_loose(k)?, n.to_string()))
}

async fn apply(State(engine): State<Arc<Engine>>, Json(req): Json<ApplyRequest>) -> ApiResult<Json<ApplyResponse>> {
    let stored = engine.store.desired().map_err(ApiError::internal)?;
    // References may point at objects other sources already defined.
    let exists = |kind: Kind, name: &str| {
        stored
            .iter()
            .any(|o| o.kind == kind.as_str() && o.name == name && !(req.prune && o.source == req.source_id))
    };
    let objects = match manifest::load(&req.sources, &exists) {
        Ok(o) => o,
        Err(errors) => {
            return Ok(Json(ApplyResponse {
                errors,
                ..Default::default()
            }))
        }
    };
    let in_set: HashSet<(Kind, String)> = objects.iter().map(|o| (o.kind(), o.name().to_string())).collect();
    let keys: Vec<String> = objects.iter().map(|o| key_string(o.kind(), o.name())).collect();
    if req.prune {
        let pruned: HashSet<(String, String)> = stored
            .iter()
            .filter(|o| o.source == req.source_id)
            .filter(|o| !Kind::parse_loose(&o.kind).is_some_and(|k| in_set.contains(&(k, o.name.clone()))))
            .map(|o| (o.kind.clone(), o.name.clone()))
            .collect();
        let desired = engine.desired().map_err(ApiError::internal)?;
        let other_source = |o: &Object| {
            stored
                .iter()
                .any(|s| s.name == o.name() && s.kind == o.kind().as_str() && s.source != req.source_id)
        };
        refuse_if_used(&desired, &pruned, other_source)?;
    }
    if req.dry_run {
        let mut desired: Vec<Object> = engine
            .desired()
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|o| !in_set.contains(&(o.kind(), o.name().to_string())))
            .filter(|o| {
                !req.prune
                    || stored
                        .iter()
                        .any(|s| s.kind == o.kind().as_str() && s.name == o.name() && s.source != req.source_id)
            })
            .collect();
        desired.extend(objects);
        let plan = engine.plan_for(&desired).map_err(ApiError::internal)?;
        return Ok(Json(ApplyResponse {
            actions: crate::plan::describe(&plan),
            objects: keys,
            ..Default::default()
        }));
    }
    let rows: Vec<(String, String, String)> = objects
        .iter()
        .map(|o| {
            Ok((
                o.kind().as_str().to_string(),
                o.name().to_string(),
                serde_json::to_string(o)?,
            ))
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(ApiError::internal)?;
    let outcome = engine
        .store
        .apply(&req.source_id, &rows, req.prune)
        .map_err(ApiError::internal)?;
    let report = engine.reconcile().await.map_err(ApiError::internal)?;
    Ok(Json(ApplyResponse {
        errors: Vec::new(),
        actions: report.done,
        failed: report.failed,
        revision: Some(outcome.revision),
        objects: keys,
    }))
}

async fn delete(State(engine): State<Arc<Engine>>, Json(req): Json<DeleteRequest>) -> ApiResult<Json<DeleteResponse>> {
    let mut keys: Vec<(String, String)> = Vec::new();
    if !req.sources.is_empty() {
        match manifest::parse(&req.sources) {
            Ok(objects) => keys.extend(
                objects
                    .iter()
                    .map(|o| (o.kind().as_str().to_string(), o.name().to_string())),
            ),
            Err(errors) => {
                return Ok(Json(DeleteResponse {
                    errors,
                    ..Default::default()
                }))
            }
        }
    }
    for k in &req.keys {
        let (kind, name) = parse_key(k).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{k:?} is not KIND/NAME (e.g. container/web)"),
            )
        })?;
        keys.push((kind.as_str().to_string(), name));
    }
    let fmt = |(k, n): &(String, String)| format!("{}/{}", k.to_ascii_lowercase(), n);
    // As Docker refuses to remove an image a container uses: deleting it
    // would take the running containers down with it.
    let desired = engine.desired().map_err(ApiError::internal)?;
    let removing: HashSet<(String, String)> = keys.iter().cloned().collect();
    refuse_if_used(&desired, &removing, |_| true)?;
    let removed = engine.store.delete_objects(&keys).map_err(ApiError::internal)?;
    let report = engine.reconcile().await.map_err(ApiError::internal)?;
    Ok(Json(DeleteResponse {
        errors: Vec::new(),
        deleted: removed.iter().map(fmt).collect(),
        not_found: keys.iter().filter(|k| !removed.contains(k)).map(fmt).collect(),
        failed: report.failed,
    }))
}

/// Refuses to remove images or volumes that a remaining container uses;
/// `counts(container)` says which containers to consider.
fn refuse_if_used(
    desired: &[Object],
    removing: &HashSet<(String, String)>,
    counts: impl Fn(&Object) -> bool,
) -> ApiResult<()> {
    let key = |kind: Kind, name: &str| (kind.as_str().to_string(), name.to_string());
    let mut in_use = Vec::new();
    for o in desired
        .iter()
        .filter(|o| !removing.contains(&key(o.kind(), o.name())) && counts(o))
    {
        let Spec::Container(c) = &o.spec else { continue };
        let volumes = c
            .volumes
            .iter()
            .filter_map(|m| m.volume.as_deref())
            .map(|v| (Kind::Volume, v));
        for (kind, name) in std::iter::once((Kind::Image, c.image.as_str())).chain(volumes) {
            if removing.contains(&key(kind, name)) {
                in_use.push(format!("{} is used by container/{}", key_string(kind, name), o.name()));
            }
        }
    }
    if in_use.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!("{}; delete those containers too (or first)", in_use.join(", ")),
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<String>,
    name: Option<String>,
}

async fn list(State(engine): State<Arc<Engine>>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let kind = match q.kind.as_deref() {
        Some(k) => Some(Kind::parse_loose(k).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown kind {k:?}: expected image, container, network or volume"),
            )
        })?),
        None => None,
    };
    let views = engine.views(kind, q.name.as_deref()).map_err(ApiError::internal)?;
    Ok(Json(views).into_response())
}

async fn describe(
    State(engine): State<Arc<Engine>>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let kind = Kind::parse_loose(&kind)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("unknown kind {kind:?}")))?;
    match engine.describe(kind, &name).map_err(ApiError::internal)? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{} not found", key_string(kind, &name)),
        )),
    }
}

async fn wait(State(engine): State<Arc<Engine>>, Json(req): Json<WaitRequest>) -> ApiResult<Json<WaitResponse>> {
    let mut changes = engine.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms);
    loop {
        changes.borrow_and_update();
        let views = engine.views(None, None).map_err(ApiError::internal)?;
        let wanted = |v: &&crate::reconcile::ObjectView| {
            v.source.is_some()
                && (req.keys.is_empty()
                    || req
                        .keys
                        .contains(&format!("{}/{}", v.kind.to_ascii_lowercase(), v.name)))
        };
        let line =
            |v: &crate::reconcile::ObjectView| format!("{}/{}: {}", v.kind.to_ascii_lowercase(), v.name, v.status);
        let waiting: Vec<String> = views
            .iter()
            .filter(wanted)
            .filter(|v| v.state == StatusKind::Progressing)
            .map(line)
            .collect();
        let failed: Vec<String> = views
            .iter()
            .filter(wanted)
            .filter(|v| v.state == StatusKind::Failed)
            .map(line)
            .collect();
        if waiting.is_empty() || !failed.is_empty() {
            return Ok(Json(WaitResponse {
                ready: waiting.is_empty() && failed.is_empty(),
                waiting,
                failed,
            }));
        }
        tokio::select! {
            _ = changes.changed() => {}
            // Backoff timers and probes change status without an event.
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(Json(WaitResponse { ready: false, waiting, failed }));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
}

/// Newline-delimited JSON over a channel-fed body.
fn ndjson_stream<T: serde::Serialize + Send + 'static>(mut rx: mpsc::Receiver<T>) -> Response {
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|item| {
            item.map(|v| {
                let mut line = serde_json::to_vec(&v).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, Infallible>(axum::body::Bytes::from(line))
            })
        })
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn logs_handler(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let known = engine
        .store
        .live_get("Container", &name)
        .map_err(ApiError::internal)?
        .is_some()
        || engine.runtime.layout.log_file(&name).exists();
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("container/{name} not found"),
        ));
    }
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _ = follow_logs(&engine, &name, q.tail, q.follow, |line| {
            tx.clone().try_send(line).is_ok() || !tx.is_closed()
        })
        .await;
    });
    Ok(ndjson_stream(rx))
}

/// Sends the log's lines (the last `tail`), then with `follow` new lines
/// until the container is no longer running. `send` returns false when the
/// reader went away.
pub async fn follow_logs(
    engine: &Engine,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    mut send: impl FnMut(logs::LogLine) -> bool,
) -> std::io::Result<()> {
    let path = engine.runtime.layout.log_file(name);
    let mut exits = engine.exits();
    let (lines, mut offset) = logs::tail(&path, tail)?;
    for l in lines {
        if !send(l) {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        let running = matches!(engine.runtime.probe(name), Probe::Running(_) | Probe::Starting);
        let (lines, next) = logs::read_from(&path, offset)?;
        offset = next;
        for l in lines {
            if !send(l) {
                return Ok(());
            }
        }
        if !running {
            return Ok(());
        }
        tokio::select! {
            _ = exits.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn run(State(engine): State<Arc<Engine>>, Json(req): Json<RunRequest>) -> ApiResult<Response> {
    let obj = run_object(&req)?;
    let name = obj.name().to_string();
    let stored = engine.store.desired().map_err(ApiError::internal)?;
    if stored.iter().any(|o| o.kind == "Container" && o.name == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container/{name} already exists"),
        ));
    }
    let exists = |kind: Kind, n: &str| stored.iter().any(|o| o.kind == kind.as_str() && o.name == n);
    let problems = manifest::validate(std::slice::from_ref(&obj), &exists);
    if !problems.is_empty() {
        let msg = problems.iter().map(run_problem).collect::<Vec<_>>().join("; ");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, msg));
    }
    let body = serde_json::to_string(&obj).map_err(ApiError::internal)?;
    let source = format!("run:{name}");
    engine
        .store
        .apply(&source, &[("Container".into(), name.clone(), body)], false)
        .map_err(ApiError::internal)?;
    tracing::debug!(container = %name, "run: stored");
    if !req.detach {
        // This handler reports the exit and removes the container itself.
        engine.attach(&name);
    }
    if let Err(message) = engine.run_now(&obj).await {
        // Nothing of a failed run stays behind.
        let _ = engine.store.delete_objects(&[("Container".into(), name.clone())]);
        let _ = engine.remove_now(&name).await;
        engine.detach(&name);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message));
    }
    let (tx, rx) = mpsc::channel(256);
    let _ = tx.try_send(RunEvent::Started { name: name.clone() });
    if req.detach {
        drop(tx);
        return Ok(ndjson_stream(rx));
    }
    let rm = req.rm;
    // Runs to the end even when the client goes away, so --rm always removes.
    tokio::spawn(async move {
        let log_tx = tx.clone();
        let _ = follow_logs(&engine, &name, None, true, |line| {
            let _ = log_tx.try_send(RunEvent::Log(line));
            true
        })
        .await;
        let exit = match engine.runtime.probe(&name) {
            Probe::Exited(e) => Some(e),
            _ => None,
        };
        tracing::debug!(container = %name, "run: exited");
        if rm {
            let _ = engine.store.delete_objects(&[("Container".into(), name.clone())]);
            if let Err(e) = engine.remove_now(&name).await {
                tracing::warn!(container = %name, "run --rm cleanup: {e}");
            }
            tracing::debug!(container = %name, "run: removed");
        }
        engine.detach(&name);
        let _ = match exit {
            Some(e) => {
                tx.send(RunEvent::Exited {
                    code: e.code,
                    oom_killed: e.oom_killed,
                })
                .await
            }
            None => {
                tx.send(RunEvent::Error {
                    message: "container ended without an exit record".into(),
                })
                .await
            }
        };
    });
    Ok(ndjson_stream(rx))
}

fn run_problem(d: &Diagnostic) -> String {
    format!("{}: {}", d.field, d.message)
}

/// The Container object `berth run` stands for.
fn run_object(req: &RunRequest) -> ApiResult<Object> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let name = req.name.clone().unwrap_or_else(|| {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "run-{:08x}",
            (n as u64 ^ (std::process::id() as u64) << 32) & 0xffff_ffff
        )
    });
    let mut env = std::collections::BTreeMap::new();
    for e in &req.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| bad(format!("-e {e:?}: expected KEY=VALUE")))?;
        env.insert(k.to_string(), v.to_string());
    }
    let memory = req
        .memory
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: manifest::quantity::QuantityError| bad(e.0))?;
    let cpus = req
        .cpus
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: manifest::quantity::QuantityError| bad(e.0))?;
    let resources = (memory.is_some() || cpus.is_some()).then_some(Resources {
        memory,
        cpus,
        ..Default::default()
    });
    let mut labels = std::collections::BTreeMap::new();
    if req.rm {
        // Lets a pass remove it after an exit nobody is attached to (a
        // detached run, or a daemon restart mid-run).
        labels.insert(crate::reconcile::AUTOREMOVE_LABEL.to_string(), "true".to_string());
    }
    Ok(Object {
        metadata: Metadata { name, labels },
        spec: Spec::Container(ContainerSpec {
            image: req.image.clone(),
            command: req.command.clone(),
            env,
            resources,
            restart_policy: RestartPolicy::Never,
            ..Default::default()
        }),
        origin: Origin {
            file: "<run>".into(),
            line: 0,
            column: 0,
        },
    })
}

async fn stop(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<StopResponse>> {
    if engine
        .store
        .live_get("Container", &name)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("container/{name} not found"),
        ));
    }
    engine.stop_by_name(&name).await;
    Ok(Json(StopResponse { stopped: name }))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
}

async fn events(State(engine): State<Arc<Engine>>, Query(q): Query<EventsQuery>) -> ApiResult<Response> {
    let events = engine.store.events(q.after, None, 1000).map_err(ApiError::internal)?;
    Ok(Json(events).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_has_a_handler() {
        // Building the router panics on a route without a handler.
        let _ = routes();
        assert_eq!(openapi::ROUTES.len(), 10);
    }

    #[test]
    fn keys_parse_loosely_as_kubectl_does() {
        assert_eq!(parse_key("containers/web"), Some((Kind::Container, "web".to_string())));
        assert_eq!(parse_key("Image/busybox"), Some((Kind::Image, "busybox".to_string())));
        assert_eq!(parse_key("web"), None);
        assert_eq!(parse_key("pod/web"), None);
    }
}
