//! `/containers/{id}/top`, `/update` and `/export`: Docker's shapes over
//! the engine commands `berth top`, `berth update` and `berth export` call.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ContainerTopResponse, ContainerUpdateResponse};

use super::containers::container;
use super::{body_bytes, create as translate, decode_json, json, DockerError, Result, Shared};
use crate::commands::{self, CommandError};
use crate::wire::ExportRequest;

type Q = Query<HashMap<String, String>>;

/// What `ps_args` may say: berth lists a container's processes itself (no
/// `ps` runs), in the columns of `ps -ef`, which is Docker's default.
const PS_EF: [&str; 5] = ["", "-ef", "ef", "-e -f", "-f -e"];

/// `GET /containers/{id}/top?ps_args=`: 409 when it is not running.
pub async fn top(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let args = q.get("ps_args").map(|a| a.trim()).unwrap_or_default();
    if !PS_EF.contains(&args) {
        return Err(DockerError::unsupported(
            "ps_args",
            format!("{args:?}: berth lists processes in the columns of ps -ef only (pass no ps options, or -ef)"),
        ));
    }
    let doc = container(&state, &id)?;
    if !doc.state.running {
        return Err(DockerError::Conflict(format!("container {id} is not running")));
    }
    let listed = commands::inspect::top(&state.engine, &id)?;
    let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
    let processes = listed
        .processes
        .iter()
        .map(|p| {
            vec![
                user_name(p.uid),
                p.pid.to_string(),
                p.ppid.to_string(),
                "0".into(),
                "-".into(),
                "?".into(),
                clock(p.cpu_seconds),
                p.command.clone(),
            ]
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &ContainerTopResponse {
            titles: Some(titles.iter().map(|t| t.to_string()).collect()),
            processes: Some(processes),
        },
    ))
}

/// As `ps` names a uid: `root` for 0, the number otherwise (the container's
/// own passwd is not the host's, and ps on the host shows numbers for it).
fn user_name(uid: u32) -> String {
    match uid {
        0 => "root".into(),
        n => n.to_string(),
    }
}

/// CPU time as ps's `TIME`: `HH:MM:SS`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `POST /containers/{id}/update`: Resources and RestartPolicy, in place.
pub async fn update(State(state): State<Shared>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let body: serde_json::Value = decode_json(&route, &bytes)?;
    let update = translate::update_request(&body)?;
    container(&state, &id)?;
    commands::update::update(&state.engine, &id, &update).await?;
    Ok(json(
        StatusCode::OK,
        &ContainerUpdateResponse {
            warnings: Some(Vec::new()),
        },
    ))
}

/// `GET /containers/{id}/export`: its root filesystem as a tar, written by
/// `berth export` to a scratch file that is unlinked once open, then sent.
pub async fn export(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    container(&state, &id)?;
    let scratch = commands::build::scratch_root(&state.engine);
    let unavailable =
        |what: &str, e: std::io::Error| DockerError::Command(CommandError::Unavailable(format!("export: {what}: {e}")));
    std::fs::create_dir_all(&scratch).map_err(|e| unavailable("scratch directory", e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let path = scratch.join(format!("export-{id}-{nanos}.tar"));
    let req = ExportRequest {
        container: id.clone(),
        path: path.display().to_string(),
    };
    let written = commands::images::export(&state.engine, req).await;
    let opened =
        written.and_then(|()| std::fs::File::open(&path).map_err(|e| CommandError::Unavailable(e.to_string())));
    // Gone from the directory either way; the open file stays readable.
    let _ = std::fs::remove_file(&path);
    let file = tokio::fs::File::from_std(opened?);
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, Infallible>(Bytes::from(buf)), file))
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_shown_as_ps_shows_it() {
        assert_eq!(clock(0.4), "00:00:00");
        assert_eq!(clock(3725.0), "01:02:05");
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(1000), "1000");
    }
}
