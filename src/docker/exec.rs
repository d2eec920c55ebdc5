//! `/containers/{id}/exec` and `/exec/{id}/…`: Docker's two-step exec
//! (create an instance, then start it, hijacked or detached) over berth's
//! one-step `commands::exec`. The instances are the only state here: what
//! was asked, and the exit code once the process ended, for `inspect`.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, ProcessConfig};
use tokio::sync::mpsc;

use super::{body_bytes, decode_json, decode_optional_json, json, lock, upgraded, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect};
use crate::manifest::Kind;
use crate::wire::ExecRequest;

/// Instances kept; past this, ended ones are forgotten first.
const MAX_INSTANCES: usize = 1024;

/// One exec, as created and as it went.
pub struct ExecInstance {
    container: String,
    request: ExecRequest,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: Option<i32>,
    resize: Option<mpsc::Sender<(u16, u16)>>,
}

/// 64 hex digits from the kernel's random pool, as Docker's ids look.
fn new_id() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// `POST /containers/{id}/exec`: 201 with the instance's id; 409 when the
/// container is not running.
pub async fn create(State(state): State<Shared>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let body: serde_json::Value = decode_json(&route, &bytes)?;
    let config: ExecConfig =
        serde_json::from_value(body).map_err(|e| DockerError::BadRequest(format!("{route}: invalid body: {e}")))?;
    commands::check_name(Kind::Container, &id)?;
    let doc = docker_inspect::container(&state.engine, &id)?
        .ok_or_else(|| DockerError::NotFound(format!("No such container: {id}")))?;
    if !doc.state.running {
        return Err(DockerError::Conflict(format!("container {id} is not running")));
    }
    if config.privileged.unwrap_or(false) {
        return Err(DockerError::unsupported(
            "Privileged",
            "an exec runs with its container's privileges in berth",
        ));
    }
    let command = config.cmd.clone().unwrap_or_default();
    if command.is_empty() {
        return Err(DockerError::BadRequest("Cmd: an exec needs a command".into()));
    }
    let size = config.console_size.as_deref().and_then(console_size);
    let request = ExecRequest {
        command,
        env: config.env.clone().unwrap_or_default(),
        user: config.user.clone().filter(|u| !u.is_empty()),
        working_dir: config.working_dir.clone().filter(|d| !d.is_empty()),
        interactive: config.attach_stdin.unwrap_or(false),
        detach: false,
        tty: config.tty.unwrap_or(false),
        rows: size.map(|s| s.0),
        columns: size.map(|s| s.1),
        detach_keys: config.detach_keys.clone().filter(|k| !k.is_empty()),
    };
    commands::exec::DetachKeys::parse(request.detach_keys.as_deref())?;
    let exec_id =
        new_id().map_err(|e| DockerError::Command(commands::CommandError::Unavailable(format!("exec id: {e}"))))?;
    let mut execs = lock(&state.execs);
    if execs.len() >= MAX_INSTANCES {
        execs.retain(|_, e| e.running || !e.started);
    }
    if execs.len() >= MAX_INSTANCES {
        return Err(DockerError::Conflict(format!(
            "{MAX_INSTANCES} exec instances are waiting to be started: start or forget some first"
        )));
    }
    execs.insert(
        exec_id.clone(),
        ExecInstance {
            container: id,
            request,
            started: false,
            running: false,
            exit_code: None,
            pid: None,
            resize: None,
        },
    );
    // bollard's IdResponse writes `id`: Go's decoder takes any case, but
    // docker-py reads `Id` exactly, as Docker sends it.
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "Id": exec_id })))
}

/// Docker's `[height, width]`.
fn console_size(size: &[usize]) -> Option<(u16, u16)> {
    match size {
        [h, w] if *h > 0 && *w > 0 => Some(((*h).min(u16::MAX as usize) as u16, (*w).min(u16::MAX as usize) as u16)),
        _ => None,
    }
}

/// The instance's container and request, marked started; 404 or 409.
fn take_for_start(state: &Shared, exec_id: &str) -> Result<(String, ExecRequest)> {
    let mut execs = lock(&state.execs);
    let e = execs
        .get_mut(exec_id)
        .ok_or_else(|| DockerError::NotFound(format!("No such exec instance: {exec_id}")))?;
    if e.started {
        return Err(DockerError::Conflict(format!(
            "exec instance {exec_id} has already been started"
        )));
    }
    e.started = true;
    e.running = true;
    Ok((e.container.clone(), e.request.clone()))
}

fn finished(state: &Shared, exec_id: &str, code: i32) {
    if let Some(e) = lock(&state.execs).get_mut(exec_id) {
        e.running = false;
        e.exit_code = Some(code);
        e.resize = None;
    }
}

/// `POST /exec/{id}/start`: detached, 200 once it runs; else hijacked
/// (`101`, `Upgrade: tcp`) with its stdio in Docker's framing.
pub async fn start(State(state): State<Shared>, Path(exec_id): Path<String>, mut req: Request) -> Result<Response> {
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (route, bytes) = body_bytes(req, &()).await?;
    let config: ExecStartConfig = decode_optional_json(&route, &bytes)?;
    let created_tty = lock(&state.execs)
        .get(&exec_id)
        .map(|e| e.request.tty)
        .ok_or_else(|| DockerError::NotFound(format!("No such exec instance: {exec_id}")))?;
    if config.tty.unwrap_or(false) != created_tty {
        return Err(DockerError::unsupported(
            "Tty",
            "an exec's tty is chosen when it is created; start it with the same Tty",
        ));
    }
    if config.detach.unwrap_or(false) {
        let (container, mut request) = take_for_start(&state, &exec_id)?;
        request.detach = true;
        match commands::exec::detached(&state.engine, &container, &request).await {
            Ok(started) => {
                if let Some(e) = lock(&state.execs).get_mut(&exec_id) {
                    e.pid = Some(started.pid);
                }
                // Nobody relays a detached exec's exit: it is not known here.
                return Ok(StatusCode::OK.into_response());
            }
            Err(e) => {
                finished(&state, &exec_id, 126);
                return Err(e.into());
            }
        }
    }
    if !upgrade {
        return Err(DockerError::BadRequest(
            "an attached exec start needs `Connection: Upgrade` and `Upgrade: tcp` (or Detach)".into(),
        ));
    }
    let (container, mut request) = take_for_start(&state, &exec_id)?;
    if let Some((rows, columns)) = config.console_size.as_deref().and_then(console_size) {
        request.rows = Some(rows);
        request.columns = Some(columns);
    }
    let keys = request
        .tty
        .then(|| commands::exec::DetachKeys::parse(request.detach_keys.as_deref()))
        .transpose()?;
    let process = match commands::exec::start(&state.engine, &container, &request) {
        Ok(p) => p,
        Err(e) => {
            finished(&state, &exec_id, 126);
            return Err(e.into());
        }
    };
    let tty = request.tty;
    let (resize_tx, resizes) = mpsc::channel(4);
    if let Some(e) = lock(&state.execs).get_mut(&exec_id) {
        e.resize = Some(resize_tx);
    }
    let size = request.rows.zip(request.columns);
    tokio::spawn(async move {
        let Ok(io) = on_upgrade.await else {
            finished(&state, &exec_id, 255);
            return;
        };
        let recorder = state.clone();
        let id = exec_id.clone();
        // Recorded before the client sees the end: it inspects at once.
        let on_exit = move |exit: Option<&crate::wire::ExecExit>| {
            finished(&recorder, &id, exit.map_or(255, |e| e.exit_code));
        };
        super::stream::relay(hyper_util::rt::TokioIo::new(io), tty, resizes, on_exit, move |io| {
            commands::exec::pump(process, io, size, keys)
        })
        .await;
    });
    Ok(upgraded(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    State(state): State<Shared>,
    Path(exec_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let size = super::containers::size_of(&q)?;
    let tx = {
        let execs = lock(&state.execs);
        let e = execs
            .get(&exec_id)
            .ok_or_else(|| DockerError::NotFound(format!("No such exec instance: {exec_id}")))?;
        e.resize.clone()
    };
    if let Some(tx) = tx {
        let _ = tx.send(size).await;
    }
    Ok(StatusCode::OK.into_response())
}

/// `GET /exec/{id}/json`: `Running`, and `ExitCode` once it ended.
pub async fn inspect(State(state): State<Shared>, Path(exec_id): Path<String>) -> Result<Response> {
    let execs = lock(&state.execs);
    let e = execs
        .get(&exec_id)
        .ok_or_else(|| DockerError::NotFound(format!("No such exec instance: {exec_id}")))?;
    let (entrypoint, arguments) = match e.request.command.split_first() {
        Some((first, rest)) => (Some(first.clone()), Some(rest.to_vec())),
        None => (None, None),
    };
    let resp = ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(e.request.detach_keys.clone().unwrap_or_default()),
        id: Some(exec_id.clone()),
        running: Some(e.running),
        exit_code: e.exit_code.map(i64::from),
        process_config: Some(ProcessConfig {
            privileged: Some(false),
            user: Some(e.request.user.clone().unwrap_or_default()),
            tty: Some(e.request.tty),
            entrypoint,
            arguments,
        }),
        open_stdin: Some(e.request.interactive),
        open_stderr: Some(true),
        open_stdout: Some(true),
        container_id: Some(e.container.clone()),
        pid: e.pid.map(i64::from),
    };
    Ok(json(StatusCode::OK, &resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_sizes_are_height_then_width_and_zero_is_none() {
        assert_eq!(console_size(&[24, 80]), Some((24, 80)));
        assert_eq!(console_size(&[0, 0]), None);
        assert_eq!(console_size(&[1]), None);
        assert_eq!(console_size(&[100_000, 5]), Some((u16::MAX, 5)));
    }

    #[test]
    fn exec_ids_look_like_dockers() {
        let a = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id().unwrap());
    }
}
