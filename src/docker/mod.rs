//! Docker's Engine API on `<run-dir>/docker.sock`: a front end beside
//! [`crate::api`], so that the docker CLI (and later docker-compose and
//! docker-py) drive berth. One file per resource, as podman's compat
//! handlers: each decodes Docker's body and query, calls the same engine
//! command berth's own API calls, and answers in Docker's shape. It has no
//! command logic of its own; what it cannot honour it refuses by field name.
//!
//! Every route answers with and without the `/v1.NN` prefix the clients put
//! in front ([`strip_version`]); errors are Docker's `{"message": …}` with
//! Docker's status codes ([`DockerError`]).

mod archive_images;
mod build;
mod containers;
mod create;
mod events;
mod exec;
mod images;
mod networks;
mod ops;
mod stats;
mod stream;
mod sysops;
mod system;
mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::commands::CommandError;
use crate::reconcile::Engine;

/// The API version berth speaks, the highest it answers to: the docker CLI
/// 28.x negotiates down to it (below 1.30 it would poll for events).
pub const API_VERSION: &str = "1.47";
/// The oldest version a client may ask for, as Docker's own minimum.
pub const MIN_API_VERSION: &str = "1.24";

/// Largest request body: Docker's JSON bodies (a container's config, an
/// exec, a network) are a few KiB; image and build contexts are streamed,
/// not read whole, when those routes come.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Endpoints of Docker's API that berth does not serve at all: answered
/// 501 with a message rather than 404, so a client says what is missing.
const UNSUPPORTED: [&str; 9] = [
    "swarm",
    "services",
    "nodes",
    "tasks",
    "secrets",
    "configs",
    "plugins",
    "distribution",
    "session",
];

/// What went wrong, as Docker's API says it: each variant has Docker's
/// status, and the message goes out as `{"message": …}`.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A malformed request: bad JSON, a bad query value, a bad name (400).
    #[error("{0}")]
    BadRequest(String),
    /// A field berth cannot honour with the value given (400), named as
    /// Docker's documents name it (`HostConfig.CpusetMems`).
    #[error("{field} is not supported by berth: {why}")]
    Unsupported { field: String, why: String },
    /// A registry refused the credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No such container, image, network, volume or exec (404).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the object's state (409).
    #[error("{0}")]
    Conflict(String),
    /// Nothing to do: already started or stopped (304, no body).
    #[error("{0}")]
    NotModified(String),
    /// The body is over [`MAX_REQUEST_BYTES`] (413).
    #[error("{route}: request body over the {} MiB limit", MAX_REQUEST_BYTES >> 20)]
    TooLarge { route: String },
    /// A part of Docker's API berth does not serve (501).
    #[error("{0}")]
    NotImplemented(String),
    /// What an engine command answered.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl DockerError {
    /// Docker's status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            DockerError::BadRequest(_) | DockerError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            DockerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DockerError::NotFound(_) => StatusCode::NOT_FOUND,
            DockerError::Conflict(_) => StatusCode::CONFLICT,
            DockerError::NotModified(_) => StatusCode::NOT_MODIFIED,
            DockerError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DockerError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            DockerError::Command(e) => match e {
                CommandError::NotFound(_) => StatusCode::NOT_FOUND,
                CommandError::Conflict(_) => StatusCode::CONFLICT,
                CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
                CommandError::Unavailable(_) | CommandError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn unsupported(field: impl Into<String>, why: impl Into<String>) -> DockerError {
        DockerError::Unsupported {
            field: field.into(),
            why: why.into(),
        }
    }
}

impl IntoResponse for DockerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::NOT_MODIFIED {
            // A 304 has no body (RFC 9110); Docker's clients read none.
            return status.into_response();
        }
        let message = match &self {
            // Docker says "No such container: x"; berth's "container/x not found".
            DockerError::Command(CommandError::NotFound(what)) => format!("No such {}", what.replacen('/', ": ", 1)),
            other => other.to_string(),
        };
        (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
    }
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// What the handlers share: the engine, and the little state of Docker's
/// protocol that berth's commands have no use for (exec ids, attaches that
/// wait for a start).
pub struct DockerState {
    engine: Arc<Engine>,
    execs: Mutex<HashMap<String, exec::ExecInstance>>,
    attaches: Mutex<HashMap<String, Vec<containers::PendingAttach>>>,
    /// Per container, where a resize goes while a client is attached with a tty.
    resizes: Mutex<HashMap<String, tokio::sync::mpsc::Sender<(u16, u16)>>>,
    /// Exit codes attached clients saw, for a `wait` that outlives the
    /// container (`--rm`); taken by that wait, cleared at the next start.
    exits: Mutex<HashMap<String, i32>>,
}

type Shared = Arc<DockerState>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A handler that panicked leaves plain maps behind: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The router of Docker's API: versioned and bare paths alike.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = Arc::new(DockerState {
        engine,
        execs: Mutex::new(HashMap::new()),
        attaches: Mutex::new(HashMap::new()),
        resizes: Mutex::new(HashMap::new()),
        exits: Mutex::new(HashMap::new()),
    });
    let routes = routes()
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state);
    // The prefix is taken off before the inner router matches (a layer on
    // a router that only has a fallback runs before the fallback routes).
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(strip_version))
        .layer(axum::middleware::from_fn(headers))
}

fn routes() -> Router<Shared> {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/prune", post(containers::prune))
        .route("/networks/prune", post(networks::prune))
        .route("/images/prune", post(images::prune))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/build", post(build::build))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/search", get(images::search))
        .route("/images/get", get(archive_images::save_many))
        .route("/images/load", post(archive_images::load))
        .route(
            "/images/{*name}",
            get(images::by_name).post(images::by_name_post).delete(images::remove),
        )
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/{name}", get(volumes::inspect).delete(volumes::remove))
        // The container-side remainder of issue 22 (task 22a), together.
        .route("/containers/{id}/top", get(ops::top))
        .route("/containers/{id}/update", post(ops::update))
        .route("/containers/{id}/export", get(ops::export))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/volumes/prune", post(volumes::prune))
        .route("/events", get(events::events))
        .route("/system/df", get(sysops::df))
        .route("/auth", post(sysops::auth))
}

/// `/v1.47/containers/json` → `/containers/json`. A version outside
/// [`MIN_API_VERSION`]..=[`API_VERSION`] is refused as Docker refuses it.
async fn strip_version(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return next.run(req).await;
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(asked) = parse_version(version) else {
        return next.run(req).await;
    };
    if asked > parse_version(API_VERSION).unwrap_or_default() {
        return DockerError::BadRequest(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        ))
        .into_response();
    }
    if asked < parse_version(MIN_API_VERSION).unwrap_or_default() {
        return DockerError::BadRequest(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, \
             please upgrade your client to a newer version"
        ))
        .into_response();
    }
    let tail = if tail.is_empty() { "/" } else { tail };
    let rewritten = match req.uri().query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail.to_string(),
    };
    match rewritten.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return DockerError::BadRequest(format!("bad request path {path:?}")).into_response(),
    }
    next.run(req).await
}

/// `1.47` as (1, 47); None for anything else (`v1` alone is no version).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(major) || !all_digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Docker's headers on every answer: the clients negotiate the version
/// from `API-Version` and switch on `OSType`.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("builder-version", HeaderValue::from_static("1"));
    h.insert(
        "server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// A path outside the API: 501 for the parts of Docker's API berth does
/// not have (swarm and its kin), 404 with Docker's message otherwise.
async fn no_route(req: Request) -> DockerError {
    let path = req.uri().path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    if UNSUPPORTED.contains(&first) {
        return DockerError::NotImplemented(format!(
            "{} {path}: berth does not serve Docker's {first} API (no swarm mode, plugins or distribution)",
            req.method()
        ));
    }
    DockerError::NotFound(format!("page not found: {} {path}", req.method()))
}

/// Refuses `filters` on a prune: berth prunes everything unused, and
/// pruning less than asked is safe but pruning more is not.
fn refuse_prune_filters(q: &HashMap<String, String>) -> Result<()> {
    match parse_filters(q)?.keys().next() {
        Some(key) => Err(DockerError::unsupported(
            format!("filters.{key}"),
            "berth prunes everything unused, without filters",
        )),
        None => Ok(()),
    }
}

/// `METHOD /path` of a request, for error messages.
fn route_of(req: &Request) -> String {
    format!("{} {}", req.method(), req.uri().path())
}

/// The raw JSON body, refused with Docker's statuses: over the limit
/// (413) or of another content type (400); with the route for messages.
/// Handlers decode it themselves: some look at which fields were sent.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<(String, Bytes)> {
    let route = route_of(&req);
    if let Some(ct) = req.headers().get(axum::http::header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if !essence.eq_ignore_ascii_case("application/json") && !essence.is_empty() {
            return Err(DockerError::BadRequest(format!(
                "{route}: Content-Type specified ({essence}) must be 'application/json'"
            )));
        }
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            DockerError::TooLarge { route: route.clone() }
        } else {
            DockerError::BadRequest(format!("{route}: {}", rejection.body_text()))
        }
    })?;
    Ok((route, bytes))
}

fn decode_json<T: DeserializeOwned>(route: &str, bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DockerError::BadRequest(format!(
            "{route}: the request needs a JSON body"
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| DockerError::BadRequest(format!("{route}: invalid JSON body: {e}")))
}

/// A JSON body that may be absent (Docker's `start`, `exec start` from old
/// clients): the default then.
fn decode_optional_json<T: DeserializeOwned + Default>(route: &str, bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode_json(route, bytes)
}

/// Docker's booleans in a query: `1`, `true`, `True`… are true; `0`,
/// `false`, empty are false; anything else is refused by parameter name.
fn query_bool(q: &HashMap<String, String>, key: &str) -> Result<bool> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "0" || v == "false" || v == "no" => Ok(false),
        Some(v) if v == "1" || v == "true" || v == "yes" => Ok(true),
        Some(v) => Err(DockerError::BadRequest(format!(
            "invalid value for query parameter {key}: {v:?} is not a boolean"
        ))),
    }
}

/// Docker's `filters` query parameter: `{"key": {"value": true}}` (or the
/// older `{"key": ["value"]}`) as key → values.
fn parse_filters(q: &HashMap<String, String>) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let Some(text) = q.get("filters").filter(|t| !t.is_empty()) else {
        return Ok(Default::default());
    };
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DockerError::BadRequest(format!("invalid filters parameter: {e}")))?;
    let serde_json::Value::Object(map) = raw else {
        return Err(DockerError::BadRequest(
            "invalid filters parameter: expected a JSON object".into(),
        ));
    };
    let mut out = std::collections::BTreeMap::new();
    for (key, values) in map {
        let values: Vec<String> = match values {
            serde_json::Value::Object(m) => m
                .into_iter()
                .filter(|(_, on)| on.as_bool() != Some(false))
                .map(|(v, _)| v)
                .collect(),
            serde_json::Value::Array(a) => a.into_iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => {
                return Err(DockerError::BadRequest(format!(
                    "invalid filters parameter: the values of {key:?} must be an object or a list"
                )))
            }
        };
        out.insert(key, values);
    }
    Ok(out)
}

/// A JSON answer with a status.
fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

/// The answer that hands a connection over (`101 UPGRADED`, `Upgrade: tcp`),
/// as Docker's hijacked routes answer a client that asked for an upgrade.
fn upgraded(content_type: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "Upgrade")
        .header(axum::http::header::UPGRADE, "tcp")
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Serves the router on `listener` until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_only_as_major_dot_minor() {
        assert_eq!(parse_version("1.47"), Some((1, 47)));
        assert_eq!(parse_version("1.24"), Some((1, 24)));
        assert!(parse_version("1.47") > parse_version("1.9"));
        for bad in ["1", "", "1.", ".4", "1.4a", "a.b", "1.2.3", "12345.1"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn filters_take_both_of_dockers_forms_and_refuse_others() {
        let q = |t: &str| HashMap::from([("filters".to_string(), t.to_string())]);
        let f = parse_filters(&q(r#"{"label":{"a=b":true},"name":["web"]}"#)).unwrap();
        assert_eq!(f["label"], ["a=b"]);
        assert_eq!(f["name"], ["web"]);
        assert!(parse_filters(&q("[1]")).unwrap_err().to_string().contains("filters"));
        assert!(parse_filters(&q(r#"{"name":"web"}"#))
            .unwrap_err()
            .to_string()
            .contains("name"));
        assert!(parse_filters(&HashMap::new()).unwrap().is_empty());
    }

    #[test]
    fn query_booleans_are_dockers_and_a_bad_one_is_named() {
        let q = HashMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "False".to_string()),
            ("c".to_string(), "maybe".to_string()),
        ]);
        assert!(query_bool(&q, "a").unwrap());
        assert!(!query_bool(&q, "b").unwrap());
        assert!(!query_bool(&q, "missing").unwrap());
        assert!(query_bool(&q, "c").unwrap_err().to_string().contains("c"));
    }

    #[test]
    fn each_error_has_dockers_status() {
        assert_eq!(DockerError::NotModified("x".into()).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            DockerError::Command(CommandError::NotFound("container/x".into())).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            DockerError::unsupported("HostConfig.X", "y").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            DockerError::TooLarge {
                route: "POST /x".into()
            }
            .status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            DockerError::NotImplemented("x".into()).status(),
            StatusCode::NOT_IMPLEMENTED
        );
    }
}
