//! `/containers/…`: create, start, wait, attach, logs, stop, kill, restart,
//! rm, list, inspect, rename, resize, each over the engine command `berth`'s
//! own API calls. A container's Docker id is its berth name (its runtime
//! id, which `inspect` reports), so no id table is kept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ContainerCreateResponse, ContainerWaitExitError, ContainerWaitResponse};
use tokio::sync::{mpsc, oneshot};

use super::{
    body_bytes, create as translate, decode_json, json, lock, parse_filters, query_bool, refuse_prune_filters,
    upgraded, DockerError, Result, Shared,
};
use crate::commands::{self, docker_inspect, docker_list, CommandError};
use crate::manifest::Kind;
use crate::reconcile::{StopOptions, FOREVER};
use crate::wire::{DeleteRequest, KillRequest};

type Q = Query<HashMap<String, String>>;

const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// How long `wait?condition=removed` waits for the attached client's relay
/// to report an exit it saw after the container was already removed.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(5);

/// A hijacked attach that came before the start (Docker's `run`): it
/// connects once `start` says the container is up and waits for it.
pub struct PendingAttach {
    started: oneshot::Sender<()>,
}

/// The container `id` names, Docker-shaped, or 404.
pub(super) fn container(state: &Shared, id: &str) -> Result<docker_inspect::ContainerJson> {
    commands::check_name(Kind::Container, id)?;
    docker_inspect::container(&state.engine, id)?
        .ok_or_else(|| DockerError::NotFound(format!("No such container: {id}")))
}

/// Docker answers 404 for an image that is not here, so the CLI pulls it
/// and creates again; berth's own create would pull it at start.
fn image_present(state: &Shared, image: &str) -> Result<()> {
    let found = commands::images::list(&state.engine, Some(image)).map_err(|e| match e {
        CommandError::Invalid(m) => DockerError::BadRequest(m),
        other => other.into(),
    })?;
    if found.is_empty() {
        return Err(DockerError::NotFound(format!("No such image: {image}")));
    }
    Ok(())
}

/// `POST /containers/create?name=`.
pub async fn create(State(state): State<Shared>, Query(q): Q, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let body: serde_json::Value = decode_json(&route, &bytes)?;
    if let Some(platform) = q.get("platform").filter(|p| !p.is_empty()) {
        let here = format!("linux/{}", super::system::go_arch());
        if *platform != here {
            return Err(DockerError::unsupported(
                "platform",
                format!("{platform}: berth runs {here} images on this host"),
            ));
        }
    }
    let mut run = translate::run_request(q.get("name").map(String::as_str), &body)?;
    // As `berth run`: a bare name is an Image object's when one is defined,
    // else the registry reference NAME:latest (Docker's reading of it).
    let image = &run.spec.image;
    let is_object = !crate::image::record::looks_like_reference(image)
        && !commands::query::list(&state.engine, Some("image"), Some(image))
            .unwrap_or_default()
            .is_empty();
    if !is_object {
        if !crate::image::record::looks_like_reference(image) {
            run.spec.image.push_str(":latest");
        }
        image_present(&state, &run.spec.image)?;
    }
    let made = commands::run::create(&state.engine, run).await?;
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id: made.container,
            warnings: Vec::new(),
        },
    ))
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already. A
/// client that attached first is waited for by the init.
pub async fn start(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    let doc = container(&state, &id)?;
    if doc.state.running {
        return Err(DockerError::NotModified(format!("container {id} is already started")));
    }
    let pending = lock(&state.attaches).remove(&id).unwrap_or_default();
    lock(&state.exits).remove(&id);
    if pending.is_empty() {
        commands::lifecycle::start(&state.engine, &id).await?;
    } else {
        commands::lifecycle::start_for_attach(&state.engine, &id).await?;
        // Every one is told (no short circuit): each then connects.
        let mut delivered = false;
        for p in pending {
            delivered |= p.started.send(()).is_ok();
        }
        if !delivered {
            // Every client that attached has gone: none will report the
            // exit, so the passes (and --rm) take the container back.
            state.engine.detach(&id);
            state.engine.wake();
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Docker's `t` and `signal` of a stop or restart: `t` is seconds before
/// SIGKILL (any number; `-1` waits for ever, as Docker), `signal` the first
/// signal instead of the container's stop signal. Absent, the container's own.
fn stop_options(q: &HashMap<String, String>) -> Result<StopOptions> {
    let grace = match q.get("t").map(String::as_str) {
        None | Some("") => None,
        Some("-1") => Some(FOREVER),
        Some(t) => match t.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs).min(FOREVER)),
            Err(_) => {
                return Err(DockerError::BadRequest(format!(
                    "invalid value for query parameter t: {t:?} is not a number of seconds (or -1 to wait for ever)"
                )))
            }
        },
    };
    let signal = match q.get("signal").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            commands::lifecycle::parse_signal(s)
                .map_err(|e| DockerError::BadRequest(format!("invalid value for query parameter signal: {e}")))?,
        ),
    };
    Ok(StopOptions { grace, signal })
}

/// `POST /containers/{id}/stop?t=&signal=`: 204, or 304 when it is not running.
pub async fn stop(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let opts = stop_options(&q)?;
    let doc = container(&state, &id)?;
    if !doc.state.running {
        return Err(DockerError::NotModified(format!("container {id} is already stopped")));
    }
    commands::query::stop_with(&state.engine, &id, opts).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/restart`.
pub async fn restart(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let opts = stop_options(&q)?;
    container(&state, &id)?;
    commands::lifecycle::restart_with(&state.engine, &id, opts).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/kill?signal=`: 409 when it is not running.
pub async fn kill(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let doc = container(&state, &id)?;
    if !doc.state.running {
        return Err(DockerError::Conflict(format!("container {id} is not running")));
    }
    let req = KillRequest {
        signal: q.get("signal").filter(|s| !s.is_empty()).cloned(),
    };
    commands::lifecycle::kill(&state.engine, &id, &req).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /containers/{id}?force=&v=`: a running container only with
/// `force`. berth removes a container's anonymous volumes with it, so `v`
/// asks for nothing more.
pub async fn remove(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let force = query_bool(&q, "force")?;
    query_bool(&q, "v")?;
    if query_bool(&q, "link")? {
        return Err(DockerError::unsupported("link", "berth has no legacy links to remove"));
    }
    let doc = container(&state, &id)?;
    if doc.state.running && !force {
        return Err(DockerError::Conflict(format!(
            "cannot remove container {id}: it is running: stop the container before removing it, or force remove"
        )));
    }
    let resp = commands::delete::delete(
        &state.engine,
        DeleteRequest {
            sources: Vec::new(),
            keys: vec![format!("container/{id}")],
        },
    )
    .await?;
    if !resp.not_found.is_empty() {
        return Err(DockerError::NotFound(format!("No such container: {id}")));
    }
    if let Some(failed) = resp.failed.first().or(resp.errors.first().map(|d| &d.message)) {
        return Err(DockerError::Command(CommandError::Unavailable(failed.clone())));
    }
    // Attaches still waiting for a start end with it (their senders drop).
    lock(&state.attaches).remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/pause`: 204; 409 when it is not running.
pub async fn pause(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    freeze(&state, &id, true).await
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    freeze(&state, &id, false).await
}

async fn freeze(state: &Shared, id: &str, frozen: bool) -> Result<Response> {
    let doc = container(state, id)?;
    if !doc.state.running {
        return Err(DockerError::Conflict(format!("container {id} is not running")));
    }
    commands::lifecycle::pause(&state.engine, id, frozen).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /containers/{id}/changes`: its filesystem against its image.
pub async fn changes(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    container(&state, &id)?;
    let engine = state.engine.clone();
    let walk = tokio::task::spawn_blocking(move || commands::docker_ops::diff(&engine, &id));
    let changes = walk
        .await
        .map_err(|e| DockerError::Command(CommandError::Unavailable(e.to_string())))??;
    Ok(json(StatusCode::OK, &changes))
}

/// `POST /containers/prune`: every stopped container.
pub async fn prune(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    refuse_prune_filters(&q)?;
    let report = commands::docker_ops::prune_containers(&state.engine).await?;
    if let Some(f) = report.failed.first() {
        return Err(DockerError::Command(CommandError::Unavailable(f.clone())));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"ContainersDeleted": report.deleted, "SpaceReclaimed": 0}),
    ))
}

/// `GET /containers/json?all=&limit=&size=&filters=`.
pub async fn list(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(DockerError::BadRequest(format!(
                    "invalid limit {n:?}: expected a number"
                )))
            }
        },
    };
    let req = docker_list::ListContainersRequest {
        all: query_bool(&q, "all")?,
        limit,
        size: query_bool(&q, "size")?,
        filters: parse_filters(&q)?,
    };
    Ok(json(StatusCode::OK, &docker_list::list(&state.engine, &req)?))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    Ok(json(StatusCode::OK, &container(&state, &id)?))
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let new = q
        .get("name")
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DockerError::BadRequest("rename needs the new name: ?name=NEW".into()))?;
    container(&state, &id)?;
    commands::lifecycle::rename(&state.engine, &id, new).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `h` and `w` of a resize.
pub(super) fn size_of(q: &HashMap<String, String>) -> Result<(u16, u16)> {
    let dim = |key: &str| -> Result<u16> {
        q.get(key)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| DockerError::BadRequest(format!("resize needs {key} as a number from 0 to 65535")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`: passed to the attached client's
/// relay; nothing to resize when nobody is attached with a tty.
pub async fn resize(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let size = size_of(&q)?;
    container(&state, &id)?;
    let tx = lock(&state.resizes).get(&id).cloned();
    if let Some(tx) = tx {
        let _ = tx.send(size).await;
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`:
/// the headers go at once (the Go client waits for them before it starts
/// the container), the exit code when it comes.
pub async fn wait(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let condition = q.get("condition").map(String::as_str).unwrap_or("not-running");
    if !matches!(condition, "" | "not-running" | "next-exit" | "removed") {
        return Err(DockerError::BadRequest(format!(
            "invalid condition {condition:?}: expected not-running, next-exit or removed"
        )));
    }
    let doc = container(&state, &id)?;
    if matches!(condition, "" | "not-running") && !doc.state.running {
        return Ok(json(
            StatusCode::OK,
            &ContainerWaitResponse {
                status_code: doc.state.exit_code as i64,
                error: None,
            },
        ));
    }
    let removed = condition == "removed";
    let answer = async move {
        let result = match removed {
            true => wait_removed(&state, &id).await,
            false => commands::docker_ops::wait(&state.engine, &id)
                .await
                .map(|w| w.status_code)
                .map_err(DockerError::from),
        };
        let resp = match result {
            Ok(code) => ContainerWaitResponse {
                status_code: code as i64,
                error: None,
            },
            Err(e) => ContainerWaitResponse {
                status_code: -1,
                error: Some(ContainerWaitExitError {
                    message: Some(e.to_string()),
                }),
            },
        };
        let mut line = serde_json::to_vec(&resp).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::once(answer)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Until the container is gone; its exit code, seen while it was there or
/// reported by the relay of the client attached to it (a `--rm` run goes
/// before that client hears its exit).
async fn wait_removed(state: &Shared, id: &str) -> Result<i32> {
    let engine = state.engine.clone();
    let mut exits = engine.exits();
    let mut changes = engine.changes();
    let mut seen = None;
    loop {
        changes.borrow_and_update();
        match docker_inspect::container(&engine, id)? {
            Some(doc) if !doc.state.running && doc.state.status != "created" => seen = Some(doc.state.exit_code),
            Some(_) => {}
            None => break,
        }
        tokio::select! {
            _ = exits.recv() => {}
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let deadline = tokio::time::Instant::now() + EXIT_REPORT_WAIT;
    loop {
        if let Some(code) = lock(&state.exits).remove(id) {
            return Ok(code);
        }
        if let Some(code) = seen {
            return Ok(code);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DockerError::Command(CommandError::Unavailable(format!(
                "container {id} was removed before its exit code was seen"
            ))));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /containers/{id}/attach?stream=1&stdin=&stdout=&stderr=` with
/// `Upgrade: tcp`: `101`, then the container's stdio in Docker's framing.
/// Before the start it waits for it (see [`start`]); on a running
/// container it connects at once; one with neither a tty nor an open stdin
/// is followed through its log.
pub async fn attach(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Q,
    mut req: Request,
) -> Result<Response> {
    if !req.headers().contains_key(header::UPGRADE) {
        return Err(DockerError::BadRequest(
            "attach needs `Connection: Upgrade` and `Upgrade: tcp` (a hijacked connection)".into(),
        ));
    }
    if !query_bool(&q, "stream")? && query_bool(&q, "logs")? {
        return Err(DockerError::unsupported(
            "logs",
            "attach replays no log: use GET /containers/{id}/logs",
        ));
    }
    let detach_keys = q.get("detachKeys").filter(|k| !k.is_empty()).cloned();
    let doc = container(&state, &id)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tty = doc.config.tty;
    let content_type = if tty { RAW_STREAM } else { MULTIPLEXED_STREAM };
    if !doc.state.running {
        commands::exec::DetachKeys::parse(detach_keys.as_deref())?;
        let (started, wait_start) = oneshot::channel();
        lock(&state.attaches)
            .entry(id.clone())
            .or_default()
            .push(PendingAttach { started });
        tokio::spawn(async move {
            let Ok(io) = on_upgrade.await else { return };
            // The sender goes with the container (removed) or the start (failed).
            if wait_start.await.is_err() {
                return;
            }
            match commands::attach::connect(&state.engine, &id, detach_keys.as_deref()).await {
                Ok(attached) => relay_attach(state, id, attached, hyper_util::rt::TokioIo::new(io), tty).await,
                Err(e) => {
                    tracing::warn!(container = %id, "docker attach after start: {e}");
                    state.engine.detach(&id);
                    state.engine.wake();
                }
            }
        });
        return Ok(upgraded(content_type));
    }
    match commands::attach::connect(&state.engine, &id, detach_keys.as_deref()).await {
        Ok(attached) => {
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    relay_attach(state, id, attached, hyper_util::rt::TokioIo::new(io), tty).await;
                }
            });
        }
        // Neither a tty nor stdin: its output is in its log only.
        Err(CommandError::Invalid(_)) => {
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    follow_output(state, id, hyper_util::rt::TokioIo::new(io)).await;
                }
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(upgraded(content_type))
}

/// Relays an attach; records the exit it ends with for `wait`.
async fn relay_attach<C>(state: Shared, id: String, attached: commands::attach::Attached, client: C, tty: bool)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (resize_tx, resizes) = mpsc::channel(4);
    if tty {
        lock(&state.resizes).insert(id.clone(), resize_tx);
    }
    let engine = state.engine.clone();
    let name = id.clone();
    let exits = state.clone();
    let key = id.clone();
    // Recorded before the client sees the end, so its `wait` finds it.
    let on_exit = move |exit: Option<&crate::wire::ExecExit>| {
        if let Some(exit) = exit {
            lock(&exits.exits).insert(key, exit.exit_code);
        }
    };
    super::stream::relay(client, tty, resizes, on_exit, move |io| {
        commands::attach::pump(engine, name, attached, io, None)
    })
    .await;
    lock(&state.resizes).remove(&id);
}

/// A running container's new output, from its log, in Docker's frames,
/// until it stops or the client goes.
async fn follow_output<C>(state: Shared, id: String, client: C)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::AsyncWriteExt;
    let (_rd, mut wr) = tokio::io::split(client);
    let Ok(mut lines) = commands::logs::logs(&state.engine, &id, Some(0), true, Default::default()) else {
        return;
    };
    while let Some(line) = lines.recv().await {
        let frame = log_frame(&line, false, false);
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// One log line as Docker sends it: framed (stream 1 or 2) unless the
/// container has a tty, with its time first when asked.
fn log_frame(line: &crate::wire::LogLine, tty: bool, timestamps: bool) -> Vec<u8> {
    let mut text = Vec::with_capacity(line.text.len() + 48);
    if timestamps {
        text.extend_from_slice(line.time.as_bytes());
        text.push(b' ');
    }
    text.extend_from_slice(line.text.as_bytes());
    text.push(b'\n');
    if tty {
        return text;
    }
    let stream = if line.stream == "stderr" { 2 } else { 1 };
    let mut out = crate::wire::exec_frame::header(stream, text.len()).to_vec();
    out.extend_from_slice(&text);
    out
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&timestamps=&since=&until=`.
pub async fn logs(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let stdout = query_bool(&q, "stdout")?;
    let stderr = query_bool(&q, "stderr")?;
    if !stdout && !stderr {
        return Err(DockerError::BadRequest(
            "Bad parameters: you must choose at least one stream (stdout or stderr)".into(),
        ));
    }
    let follow = query_bool(&q, "follow")?;
    let timestamps = query_bool(&q, "timestamps")?;
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| DockerError::BadRequest(format!("invalid tail {n:?}: expected a number or all")))?,
        ),
    };
    let time = |key: &str| q.get(key).map(String::as_str).filter(|v| !v.is_empty() && *v != "0");
    let range = commands::logs::TimeRange::parse(time("since"), time("until"))?;
    let doc = container(&state, &id)?;
    let tty = doc.config.tty;
    let mut lines = commands::logs::logs(&state.engine, &id, tail, follow, range)?;
    let stream = futures_util::stream::poll_fn(move |cx| loop {
        match lines.poll_recv(cx) {
            std::task::Poll::Ready(Some(line)) => {
                let wanted = if line.stream == "stderr" { stderr } else { stdout };
                if wanted {
                    return std::task::Poll::Ready(Some(Ok::<_, Infallible>(Bytes::from(log_frame(
                        &line, tty, timestamps,
                    )))));
                }
            }
            std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, if tty { RAW_STREAM } else { MULTIPLEXED_STREAM })
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_framed_unless_the_container_has_a_tty() {
        let line = crate::wire::LogLine {
            time: "2026-01-01T00:00:00Z".into(),
            stream: "stderr".into(),
            text: "oops".into(),
        };
        assert_eq!(log_frame(&line, true, false), b"oops\n");
        let framed = log_frame(&line, false, true);
        assert_eq!(&framed[..8], &[2, 0, 0, 0, 0, 0, 0, 26]);
        assert_eq!(&framed[8..], b"2026-01-01T00:00:00Z oops\n");
    }

    #[test]
    fn stop_takes_any_timeout_minus_one_for_ever_and_a_signal_and_names_bad_ones() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(stop_options(&HashMap::new()).unwrap().grace.is_none());
        assert_eq!(stop_options(&q("t", "3")).unwrap().grace, Some(Duration::from_secs(3)));
        assert_eq!(stop_options(&q("t", "-1")).unwrap().grace, Some(FOREVER));
        assert_eq!(
            stop_options(&q("signal", "SIGUSR1")).unwrap().signal,
            Some(nix::sys::signal::Signal::SIGUSR1)
        );
        for (k, v) in [("t", "soon"), ("t", "-2"), ("signal", "SIGNOPE")] {
            let e = stop_options(&q(k, v)).unwrap_err();
            assert!(e.to_string().contains(&format!("parameter {k}")), "{e}");
        }
    }

    #[test]
    fn resize_needs_both_dimensions() {
        let q = HashMap::from([("h".to_string(), "24".to_string()), ("w".to_string(), "80".to_string())]);
        assert_eq!(size_of(&q).unwrap(), (24, 80));
        assert!(size_of(&HashMap::from([("h".to_string(), "x".to_string())])).is_err());
    }
}
