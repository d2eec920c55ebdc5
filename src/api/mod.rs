//! The daemon's REST API on a unix socket (axum). A handler decodes the
//! request, calls one engine command and encodes the reply; error kinds map
//! to HTTP statuses in one place ([`status_of`]).

pub mod openapi;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::commands::{self, CommandError};
use crate::reconcile::Engine;
use crate::wire::*;

/// Largest request body: a whole stack of manifests, each up to
/// `manifest::MAX_SOURCE_BYTES` (16 MiB), JSON-encoded.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// The one mapping from error kind to HTTP status.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unavailable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: a kind and a message, with the kind's status unless
/// the HTTP layer has a more precise one (413 for a body over the limit).
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn invalid(message: String) -> ApiError {
        ApiError {
            kind: ErrorKind::Invalid,
            status: status_of(ErrorKind::Invalid),
            message,
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let kind = e.kind();
        ApiError {
            kind,
            status: status_of(kind),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            kind: self.kind,
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The documented route a request matched, put in its extensions by
/// [`routes`].
#[derive(Debug, Clone, Copy)]
struct Documented(&'static str);

/// `POST /v1/kill/{name}`: the route a request matched, as documented, to
/// name it in errors (the raw path would repeat the caller's input).
fn route_of(req: &Request) -> String {
    let path = req
        .extensions()
        .get::<Documented>()
        .map_or_else(|| req.uri().path().to_string(), |d| d.0.to_string());
    format!("{} {path}", req.method())
}

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` type), as axum's own `Json` requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON object body decoded as `T`. Refused, naming the route: a body
/// over [`MAX_REQUEST_BYTES`] (413), one that is not JSON, and one that is
/// JSON but not an object: serde reads a struct from an array too, so `[]`
/// would otherwise be a request with every field at its default.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let route = route_of(&req);
        if !json_content_type(req.headers()) {
            return Err(ApiError::invalid(format!(
                "{route} takes a JSON body: send it with `content-type: application/json`"
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    ..ApiError::invalid(format!(
                        "{route}: request body over the {} MiB limit: apply fewer or smaller manifests at once",
                        MAX_REQUEST_BYTES >> 20
                    ))
                }
            } else {
                ApiError::invalid(format!("{route}: {}", rejection.body_text()))
            }
        })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::invalid(format!("{route} takes a JSON object as its body")));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(ApiError::invalid(format!("{route}: {}", rejection.body_text()))),
        }
    }
}

/// In front of every route documented without a request body: a request
/// that brings one is refused before the handler runs, so a body meant for
/// another route (or a confused client) cannot be taken as a bare verb.
/// Reads at most one frame: a non-empty one is enough to refuse.
async fn refuse_body(req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let (parts, mut body) = req.into_parts();
    match body.frame().await {
        None => {}
        Some(Ok(frame)) if frame.data_ref().is_none_or(|d| d.is_empty()) && body.is_end_stream() => {}
        Some(_) => {
            return ApiError::invalid(format!("{route} takes no request body: send the request without one"))
                .into_response()
        }
    }
    next.run(Request::from_parts(parts, Body::empty())).await
}

/// What a path outside the API gets: the kind and a message, as every
/// other error, so a client prints more than "404".
async fn no_route(req: Request) -> ApiError {
    ApiError {
        kind: ErrorKind::NotFound,
        status: StatusCode::NOT_FOUND,
        message: format!("no API route {} {}", req.method(), req.uri().path()),
    }
}

/// The API's router, with a handler for every route of [`openapi::ROUTES`].
pub fn router(engine: Arc<Engine>) -> Router {
    routes()
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(engine)
}

fn routes() -> Router<Arc<Engine>> {
    openapi::ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            let method_router = match route.request {
                Some(_) => handler(route),
                None => handler(route).layer(axum::middleware::from_fn(refuse_body)),
            };
            // Outermost, so that `refuse_body` and `JsonBody` can name the route.
            router.route(route.path, method_router.layer(axum::Extension(Documented(route.path))))
        })
        .fallback(no_route)
}

fn handler(route: &openapi::Route) -> axum::routing::MethodRouter<Arc<Engine>> {
    match (route.method, route.path) {
        ("get", "/v1/version") => get(version),
        ("post", "/v1/apply") => post(apply),
        ("post", "/v1/delete") => post(delete),
        ("get", "/v1/objects") => get(list),
        ("get", "/v1/objects/{kind}/{name}") => get(describe),
        ("post", "/v1/wait") => post(wait),
        ("get", "/v1/logs/{name}") => get(logs),
        ("post", "/v1/run") => post(run),
        ("post", "/v1/create") => post(create),
        ("post", "/v1/exec/{name}") => post(exec),
        ("post", "/v1/attach/{name}") => post(attach),
        ("post", "/v1/stop/{name}") => post(stop),
        ("post", "/v1/start/{name}") => post(start),
        ("post", "/v1/restart/{name}") => post(restart),
        ("post", "/v1/kill/{name}") => post(kill),
        ("post", "/v1/pause/{name}") => post(pause),
        ("post", "/v1/networks/connect") => post(network_connect),
        ("post", "/v1/networks/disconnect") => post(network_disconnect),
        ("post", "/v1/unpause/{name}") => post(unpause),
        ("post", "/v1/rename/{name}") => post(rename),
        ("post", "/v1/update/{name}") => post(update),
        ("post", "/v1/stats") => post(stats),
        ("get", "/v1/top/{name}") => get(top),
        ("post", "/v1/cp/{name}") => post(copy),
        ("get", "/v1/inspect/{name}") => get(inspect),
        ("get", "/v1/events") => get(events),
        ("post", "/v1/images/pull") => post(pull),
        ("get", "/v1/images") => get(images),
        ("post", "/v1/images/remove") => post(remove_image),
        ("post", "/v1/images/tag") => post(tag),
        ("post", "/v1/images/push") => post(push),
        ("post", "/v1/images/prune") => post(prune),
        ("post", "/v1/images/save") => post(save),
        ("post", "/v1/images/load") => post(load),
        ("post", "/v1/images/commit") => post(commit),
        ("post", "/v1/build") => post(build),
        ("post", "/v1/builder/prune") => post(builder_prune),
        ("post", "/v1/images/inspect") => post(inspect_image),
        ("post", "/v1/login") => post(login),
        ("post", "/v1/logout") => post(logout),
        ("post", "/v1/export") => post(export),
        ("get", "/v1/system/df") => get(disk_usage),
        ("post", "/v1/images/import") => post(import_image),
        ("post", "/v1/docker/inspect") => post(docker_inspect),
        ("post", "/v1/docker/containers") => post(docker_containers),
        ("post", "/v1/docker/wait/{name}") => post(docker_wait),
        ("get", "/v1/docker/diff/{name}") => get(docker_diff),
        ("post", "/v1/docker/containers/prune") => post(docker_prune_containers),
        ("post", "/v1/docker/networks/prune") => post(docker_prune_networks),
        ("get", "/v1/revisions") => get(revisions),
        ("post", "/v1/rollback") => post(rollback),
        ("get", "/v1/sources") => get(sources),
        ("post", "/v1/sources") => post(source_add),
        ("post", "/v1/sources/{name}/sync") => post(source_sync),
        ("post", "/v1/sources/{name}/suspend") => post(source_suspend),
        ("post", "/v1/sources/{name}/resume") => post(source_resume),
        ("post", "/v1/sources/{name}/remove") => post(source_remove),
        ("get", "/v1/sources/{name}/diff") => get(source_diff),
        (method, path) => panic!("documented route {method} {path} has no handler"),
    }
}

async fn version(State(engine): State<Arc<Engine>>) -> Json<VersionInfo> {
    Json(commands::query::version(&engine))
}

async fn apply(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<ApplyRequest>,
) -> ApiResult<Json<ApplyResponse>> {
    Ok(Json(commands::apply::apply(&engine, req).await?))
}

async fn delete(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> ApiResult<Json<DeleteResponse>> {
    Ok(Json(commands::delete::delete(&engine, req).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<String>,
    name: Option<String>,
}

async fn list(State(engine): State<Arc<Engine>>, Query(q): Query<ListQuery>) -> ApiResult<Json<Vec<ObjectView>>> {
    Ok(Json(commands::query::list(
        &engine,
        q.kind.as_deref(),
        q.name.as_deref(),
    )?))
}

async fn describe(
    State(engine): State<Arc<Engine>>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<Description>> {
    Ok(Json(commands::query::describe(&engine, &kind, &name)?))
}

async fn wait(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<WaitRequest>,
) -> ApiResult<Json<WaitResponse>> {
    Ok(Json(commands::query::wait(&engine, req).await?))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
    since: Option<String>,
    until: Option<String>,
}

async fn logs(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let range = commands::logs::TimeRange::parse(q.since.as_deref(), q.until.as_deref())?;
    Ok(ndjson_stream(commands::logs::logs(
        &engine, &name, q.tail, q.follow, range,
    )?))
}

async fn run(State(engine): State<Arc<Engine>>, JsonBody(req): JsonBody<RunRequest>) -> ApiResult<Response> {
    Ok(ndjson_stream(commands::run::run(&engine, req).await?))
}

async fn create(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<RunRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::run::create(&engine, req).await?))
}

/// `exec`: detached, a JSON answer; attached, the request must ask for an
/// upgrade, and the upgraded connection is handed to [`commands::exec::pump`].
async fn exec(State(engine): State<Arc<Engine>>, Path(name): Path<String>, mut req: Request) -> ApiResult<Response> {
    let upgrade = req.headers().contains_key(axum::http::header::UPGRADE);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let JsonBody(body) = JsonBody::<ExecRequest>::from_request(req, &()).await?;
    if body.detach {
        return Ok(Json(commands::exec::detached(&engine, &name, &body).await?).into_response());
    }
    if !upgrade {
        return Err(ApiError::invalid(
            "an attached exec needs `Connection: Upgrade` and `Upgrade: berth-stdio` (or detach)".into(),
        ));
    }
    let keys = body
        .tty
        .then(|| commands::exec::DetachKeys::parse(body.detach_keys.as_deref()))
        .transpose()?;
    let process = commands::exec::start(&engine, &name, &body)?;
    let size = body.rows.zip(body.columns);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => commands::exec::pump(process, hyper_util::rt::TokioIo::new(io), size, keys).await,
            Err(e) => tracing::warn!(container = %name, "exec: upgrade failed: {e}"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "Upgrade")
        .header(axum::http::header::UPGRADE, exec_frame::PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// `attach`: the upgraded connection is handed to [`commands::attach::pump`].
async fn attach(State(engine): State<Arc<Engine>>, Path(name): Path<String>, mut req: Request) -> ApiResult<Response> {
    let upgrade = req.headers().contains_key(axum::http::header::UPGRADE);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let JsonBody(body) = JsonBody::<AttachRequest>::from_request(req, &()).await?;
    if !upgrade {
        return Err(ApiError::invalid(
            "attach needs `Connection: Upgrade` and `Upgrade: berth-stdio`".into(),
        ));
    }
    let attached = commands::attach::connect(&engine, &name, body.detach_keys.as_deref()).await?;
    let size = body.rows.zip(body.columns);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => commands::attach::pump(engine, name, attached, hyper_util::rt::TokioIo::new(io), size).await,
            Err(e) => tracing::warn!(container = %name, "attach: upgrade failed: {e}"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "Upgrade")
        .header(axum::http::header::UPGRADE, exec_frame::PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn stop(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<StopResponse>> {
    Ok(Json(commands::query::stop(&engine, &name).await?))
}

async fn start(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::start(&engine, &name).await?))
}

async fn restart(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::restart(&engine, &name).await?))
}

async fn kill(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<KillRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::kill(&engine, &name, &req).await?))
}

async fn network_connect(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<NetworkConnectRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::network::connect(&engine, &req).await?))
}

async fn network_disconnect(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<NetworkDisconnectRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::network::disconnect(&engine, &req).await?))
}

async fn pause(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::pause(&engine, &name, true).await?))
}

async fn rename(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<crate::wire::RenameRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::rename(&engine, &name, &req.name).await?))
}

async fn update(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<crate::wire::UpdateRequest>,
) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::update::update(&engine, &name, &req).await?))
}

async fn unpause(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<VerbResponse>> {
    Ok(Json(commands::lifecycle::pause(&engine, &name, false).await?))
}

async fn stats(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<StatsRequest>,
) -> ApiResult<Json<Vec<ContainerStats>>> {
    Ok(Json(commands::inspect::stats(&engine, &req)?))
}

async fn copy(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CopyRequest>,
) -> ApiResult<Json<CopyResponse>> {
    Ok(Json(commands::inspect::copy(&engine, &name, req).await?))
}

async fn top(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<TopResponse>> {
    Ok(Json(commands::inspect::top(&engine, &name)?))
}

async fn inspect(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<ContainerInspect>> {
    Ok(Json(commands::inspect::inspect(&engine, &name)?))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
}

async fn events(State(engine): State<Arc<Engine>>, Query(q): Query<EventsQuery>) -> ApiResult<Json<Vec<Event>>> {
    Ok(Json(commands::query::events(&engine, q.after)?))
}

async fn build(State(engine): State<Arc<Engine>>, JsonBody(req): JsonBody<BuildRequest>) -> ApiResult<Response> {
    Ok(ndjson_stream(commands::build::build(&engine, req).await?))
}

async fn builder_prune(State(engine): State<Arc<Engine>>) -> ApiResult<Json<BuilderPruneResponse>> {
    Ok(Json(commands::build::prune(&engine).await?))
}

async fn pull(State(engine): State<Arc<Engine>>, JsonBody(req): JsonBody<PullRequest>) -> ApiResult<Response> {
    Ok(ndjson_stream(commands::images::pull(&engine, req).await?))
}

#[derive(Debug, Deserialize)]
struct ImagesQuery {
    reference: Option<String>,
}

async fn images(
    State(engine): State<Arc<Engine>>,
    Query(q): Query<ImagesQuery>,
) -> ApiResult<Json<Vec<ImageListItem>>> {
    Ok(Json(commands::images::list(&engine, q.reference.as_deref())?))
}

async fn remove_image(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<RemoveImageRequest>,
) -> ApiResult<Json<RemoveImageResponse>> {
    Ok(Json(commands::images::remove(&engine, req).await?))
}

async fn tag(State(engine): State<Arc<Engine>>, JsonBody(req): JsonBody<TagRequest>) -> ApiResult<Json<ImageListItem>> {
    Ok(Json(commands::images::tag(&engine, req)?))
}

async fn push(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<PushRequest>,
) -> ApiResult<Json<PushResponse>> {
    Ok(Json(commands::images::push(&engine, req).await?))
}

async fn prune(State(engine): State<Arc<Engine>>) -> ApiResult<Json<PruneResponse>> {
    Ok(Json(commands::images::prune(&engine).await?))
}

async fn save(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<SaveRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    commands::images::save(&engine, req).await?;
    Ok(Json(serde_json::json!({})))
}

async fn load(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<LoadRequest>,
) -> ApiResult<Json<LoadResponse>> {
    Ok(Json(commands::images::load(&engine, req).await?))
}

async fn commit(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<CommitRequest>,
) -> ApiResult<Json<ImageListItem>> {
    Ok(Json(commands::images::commit(&engine, req).await?))
}

async fn docker_inspect(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<commands::docker_inspect::InspectRequest>,
) -> ApiResult<Json<commands::docker_inspect::Document>> {
    Ok(Json(commands::docker_inspect::inspect(&engine, &req)?))
}

async fn docker_containers(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<commands::docker_list::ListContainersRequest>,
) -> ApiResult<Json<Vec<commands::docker_list::ContainerSummary>>> {
    Ok(Json(commands::docker_list::list(&engine, &req)?))
}

async fn docker_wait(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<commands::docker_ops::WaitExit>> {
    Ok(Json(commands::docker_ops::wait(&engine, &name).await?))
}

async fn docker_diff(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<commands::docker_ops::Change>>> {
    let walk = tokio::task::spawn_blocking(move || commands::docker_ops::diff(&engine, &name));
    Ok(Json(walk.await.map_err(|e| CommandError::Unavailable(e.to_string()))??))
}

async fn docker_prune_containers(
    State(engine): State<Arc<Engine>>,
) -> ApiResult<Json<commands::docker_ops::PruneReport>> {
    Ok(Json(commands::docker_ops::prune_containers(&engine).await?))
}

async fn docker_prune_networks(
    State(engine): State<Arc<Engine>>,
) -> ApiResult<Json<commands::docker_ops::PruneReport>> {
    Ok(Json(commands::docker_ops::prune_networks(&engine).await?))
}

async fn inspect_image(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<InspectImageRequest>,
) -> ApiResult<Json<ImageDetail>> {
    Ok(Json(commands::images::inspect(&engine, req)?))
}

async fn login(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    commands::images::login(&engine, req).await?;
    Ok(Json(serde_json::json!({})))
}

async fn logout(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<LogoutRequest>,
) -> ApiResult<Json<LogoutResponse>> {
    Ok(Json(commands::images::logout(&engine, req)?))
}

async fn export(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<ExportRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    commands::images::export(&engine, req).await?;
    Ok(Json(serde_json::json!({})))
}

async fn disk_usage(State(engine): State<Arc<Engine>>) -> ApiResult<Json<DiskUsage>> {
    Ok(Json(commands::images::disk_usage(&engine).await?))
}

async fn import_image(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<ImportImageRequest>,
) -> ApiResult<Json<ImageListItem>> {
    Ok(Json(commands::images::import(&engine, req).await?))
}

/// Newline-delimited JSON from a bounded channel: the body is polled only as
/// fast as the client reads, so a slow client slows the producer down. Lines
/// already waiting are sent together, up to [`FRAME_BYTES`] per body frame.
fn ndjson_stream<T: serde::Serialize + Send + 'static>(mut rx: mpsc::Receiver<T>) -> Response {
    let stream = futures_util::stream::poll_fn(move |cx| {
        let mut frame: Vec<u8> = Vec::new();
        while frame.len() < FRAME_BYTES {
            match rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(v)) => {
                    // Wire types are plain data: serializing them cannot fail.
                    if serde_json::to_writer(&mut frame, &v).is_ok() {
                        frame.push(b'\n');
                    }
                }
                std::task::Poll::Ready(None) if frame.is_empty() => return std::task::Poll::Ready(None),
                std::task::Poll::Pending if frame.is_empty() => return std::task::Poll::Pending,
                _ => break,
            }
        }
        std::task::Poll::Ready(Some(Ok::<_, Infallible>(axum::body::Bytes::from(frame))))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Most bytes of stream lines sent in one body frame.
const FRAME_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevisionsQuery {
    source: Option<String>,
}

async fn revisions(
    State(engine): State<Arc<Engine>>,
    Query(q): Query<RevisionsQuery>,
) -> ApiResult<Json<Vec<RevisionView>>> {
    Ok(Json(commands::revisions::list(&engine, q.source.as_deref())?))
}

async fn rollback(
    State(engine): State<Arc<Engine>>,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> ApiResult<Json<ApplyResponse>> {
    Ok(Json(commands::revisions::rollback(&engine, req).await?))
}

async fn sources(State(engine): State<Arc<Engine>>) -> ApiResult<Json<Vec<SourceView>>> {
    Ok(Json(commands::sources::list(&engine)?))
}

async fn source_add(
    State(engine): State<Arc<Engine>>,
    JsonBody(spec): JsonBody<GitSourceSpec>,
) -> ApiResult<Json<SourceView>> {
    Ok(Json(commands::sources::add(&engine, spec)?))
}

async fn source_sync(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<SyncResponse>> {
    Ok(Json(commands::sources::sync(&engine, &name, true).await?))
}

async fn source_suspend(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<SourceView>> {
    Ok(Json(commands::sources::suspend(&engine, &name, true)?))
}

async fn source_resume(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<SourceView>> {
    Ok(Json(commands::sources::suspend(&engine, &name, false)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    prune: bool,
}

async fn source_remove(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<Json<SourceView>> {
    Ok(Json(commands::sources::remove(&engine, &name, q.prune).await?))
}

async fn source_diff(State(engine): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<SyncResponse>> {
    Ok(Json(commands::sources::diff(&engine, &name).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_has_a_handler() {
        // Building the router panics on a route without a handler.
        let _ = routes();
        // No route is documented twice (a count here would conflict on
        // every branch that adds one).
        let distinct: std::collections::HashSet<_> = openapi::ROUTES.iter().map(|r| (r.method, r.path)).collect();
        assert_eq!(distinct.len(), openapi::ROUTES.len());
        assert!(distinct.contains(&("post", "/v1/images/pull")));
    }

    #[test]
    fn each_error_kind_has_its_own_status() {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Invalid,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ];
        let statuses: std::collections::HashSet<_> = kinds.iter().map(|k| status_of(*k)).collect();
        assert_eq!(statuses.len(), kinds.len());
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
    }
}
