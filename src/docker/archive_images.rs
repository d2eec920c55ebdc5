//! Images as tar streams: `GET /images/{name}/get` and `/images/get`
//! (`docker save`), `POST /images/load` (`docker load`) and
//! `POST /images/create?fromSrc=-` (`docker import`). berth's commands read
//! and write archives as files on the daemon's host, so a body is streamed
//! to a file under the image store's `tmp/` first (bounded), and a saved
//! archive is written there, opened, unlinked and streamed from the open
//! file: nothing is left behind whatever the client does.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;

use super::{query_bool, DockerError, Result, Shared};
use crate::commands::{self, CommandError};
use crate::wire::{ImportImageRequest, LoadRequest, SaveRequest};

/// The most bytes one uploaded archive may have (as the image store's own
/// bound on an archive).
pub const MAX_ARCHIVE_BYTES: u64 = 8 << 30;

/// A file under the store's `tmp/`, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scratch(state: &Shared, what: &str) -> Result<Scratch> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = commands::build::scratch_root(&state.engine);
    std::fs::create_dir_all(&dir).map_err(|e| unavailable(&format!("making {}", dir.display()), e))?;
    Ok(Scratch(
        dir.join(format!("docker-{what}-{}-{n}.tar", std::process::id())),
    ))
}

fn unavailable(what: &str, e: std::io::Error) -> DockerError {
    DockerError::Command(CommandError::Unavailable(format!("{what}: {e}")))
}

/// Streams `body` into `to` (over [`MAX_ARCHIVE_BYTES`]: 413, the file is
/// removed by its owner).
async fn receive(route: &str, mut body: Body, to: &Scratch) -> Result<()> {
    let mut file = std::fs::File::create(&to.0).map_err(|e| unavailable("storing the upload", e))?;
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| DockerError::BadRequest(format!("{route}: reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > MAX_ARCHIVE_BYTES {
                return Err(DockerError::TooLarge { route: route.into() });
            }
            file.write_all(&data)
                .map_err(|e| unavailable("storing the upload", e))?;
        }
    }
    if size == 0 {
        return Err(DockerError::BadRequest(format!(
            "{route}: the body is empty; a tar is expected"
        )));
    }
    Ok(())
}

fn stream_answer(content_type: &'static str, body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// An image error of an archive command as Docker's status: a name that
/// names nothing is 404, a bad archive or name 400.
fn archive_error(e: CommandError) -> DockerError {
    match e {
        CommandError::NotFound(what) => {
            DockerError::NotFound(format!("No such image: {}", what.trim_start_matches("image ")))
        }
        CommandError::Invalid(m) => DockerError::BadRequest(m),
        other => other.into(),
    }
}

/// `docker save`: the images in one docker-archive tar (Docker's
/// `manifest.json` beside an OCI layout, as Docker 25+ writes).
pub async fn save(state: &Shared, names: Vec<String>) -> Result<Response> {
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err(DockerError::BadRequest("names: name at least one image to save".into()));
    }
    let out = scratch(state, "save")?;
    commands::images::save(
        &state.engine,
        SaveRequest {
            names,
            path: out.0.display().to_string(),
            format: None,
        },
    )
    .await
    .map_err(archive_error)?;
    let file = tokio::fs::File::open(&out.0)
        .await
        .map_err(|e| unavailable("reading the saved archive", e))?;
    // The open file is all the stream needs: the name goes now.
    drop(out);
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok(stream_answer("application/x-tar", Body::from_stream(stream)))
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(State(state): State<Shared>, RawQuery(raw): RawQuery) -> Result<Response> {
    let names: Vec<String> = raw
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    save(&state, names).await
}

/// `POST /images/load?quiet=`: the body is a `docker save` or OCI archive.
/// The answer is Docker's JSON lines, one `Loaded image: …` per reference
/// (`Loaded image ID: …` for an image with none). Loading is all or
/// nothing (see `ImageStore::load`), so a refused archive writes nothing.
pub async fn load(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response> {
    // Nothing is shown but the result, quiet or not: berth's load has no
    // progress to hide.
    query_bool(&q, "quiet")?;
    let upload = scratch(&state, "load")?;
    receive("POST /images/load", body, &upload).await?;
    let loaded = commands::images::load(
        &state.engine,
        LoadRequest {
            path: upload.0.display().to_string(),
        },
    )
    .await
    .map_err(|e| match e {
        // The archive is the client's: what is wrong with it is a 400.
        CommandError::Unavailable(m) if !m.contains("No space") => DockerError::BadRequest(m),
        other => archive_error(other),
    })?;
    let mut out = Vec::new();
    for image in loaded.images {
        let mut lines = image
            .references
            .iter()
            .map(|r| format!("Loaded image: {}\n", super::images::familiar(r)))
            .collect::<Vec<_>>();
        if lines.is_empty() {
            lines.push(format!("Loaded image ID: {}\n", image.id));
        }
        for l in lines {
            serde_json::to_writer(&mut out, &json!({ "stream": l })).unwrap_or_default();
            out.push(b'\n');
        }
    }
    Ok(stream_answer("application/json", Body::from(out)))
}

/// The `changes` of an import that berth honours: `CMD` (JSON or shell
/// form). Any other instruction is refused by name.
fn import_cmd(changes: &[String]) -> Result<Vec<String>> {
    let mut cmd = Vec::new();
    for change in changes {
        let change = change.trim();
        let (word, rest) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
        let rest = rest.trim();
        if !word.eq_ignore_ascii_case("CMD") {
            return Err(DockerError::unsupported(
                format!("changes ({})", word.to_ascii_uppercase()),
                "berth's import sets only CMD; build FROM the imported image for the rest",
            ));
        }
        cmd = match rest.starts_with('[') {
            true => serde_json::from_str(rest).map_err(|e| {
                DockerError::BadRequest(format!("changes: CMD {rest}: not a JSON list of strings: {e}"))
            })?,
            false => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
        };
    }
    Ok(cmd)
}

/// A refused upload is read to its end (up to [`DRAIN_LIMIT`]) before the
/// answer: a client still writing its body (the docker CLI) would otherwise
/// see a broken pipe instead of the reason.
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// The most of a refused upload read before answering.
const DRAIN_LIMIT: usize = 256 << 20;

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=&message=`: the body
/// is a root filesystem tar (plain, gzip or zstd), made one layer of a new
/// image. A URL source is refused: the daemon fetches nothing for a client.
pub async fn import(state: &Shared, raw: Option<&str>, body: Body) -> Result<Response> {
    let (cmd, reference) = match import_options(raw) {
        Ok(options) => options,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let upload = scratch(state, "import")?;
    receive("POST /images/create", body, &upload).await?;
    let image = commands::images::import(
        &state.engine,
        ImportImageRequest {
            path: upload.0.display().to_string(),
            reference,
            cmd,
        },
    )
    .await
    .map_err(archive_error)?;
    let mut out = serde_json::to_vec(&json!({ "status": image.id })).unwrap_or_default();
    out.push(b'\n');
    Ok(stream_answer("application/json", Body::from(out)))
}

/// The CMD and the reference an import's query asks for, or why not.
fn import_options(raw: Option<&str>) -> Result<(Vec<String>, String)> {
    let pairs: Vec<(String, String)> = raw
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let one = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if one("fromSrc") != "-" {
        return Err(DockerError::unsupported(
            "fromSrc",
            "berth imports only a tar sent as the body (fromSrc=-), not from a URL",
        ));
    }
    if !one("message").is_empty() {
        return Err(DockerError::unsupported(
            "message",
            "berth's import writes no history entry to hold a commit message",
        ));
    }
    if !one("platform").is_empty() && one("platform") != "linux/amd64" && one("platform") != "linux" {
        return Err(DockerError::unsupported("platform", "berth imports linux/amd64 images"));
    }
    let changes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let cmd = import_cmd(&changes)?;
    let repo = one("repo");
    if repo.is_empty() {
        return Err(DockerError::BadRequest(
            "repo: berth names every imported image: give a repository (docker import FILE NAME[:TAG])".into(),
        ));
    }
    let reference = match one("tag") {
        "" => repo.to_string(),
        tag => format!("{repo}:{tag}"),
    };
    Ok((cmd, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_takes_cmd_changes_and_refuses_others_by_name() {
        assert_eq!(import_cmd(&["CMD [\"/bin/sh\"]".into()]).unwrap(), ["/bin/sh"]);
        assert_eq!(
            import_cmd(&["cmd echo hi".into()]).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert!(import_cmd(&[]).unwrap().is_empty());
        let e = import_cmd(&["ENV A=1".into()]).unwrap_err().to_string();
        assert!(e.contains("changes (ENV)"), "{e}");
        assert!(import_cmd(&["CMD [1]".into()]).unwrap_err().to_string().contains("CMD"));
    }
}
