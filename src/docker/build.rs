//! `POST /build`: Docker's legacy builder API (what the docker CLI without
//! buildx sends) onto `berth build`. The body is the context as a tar
//! (plain or gzip), streamed to a file under the image store's `tmp/` (at
//! most [`MAX_CONTEXT_BYTES`]) and unpacked there; the answer is Docker's
//! JSON-lines stream: `{"stream": "Step 1/3 : …"}`, `{"aux": {"ID": …}}`,
//! and an error as `errorDetail`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::json;

use super::images::short;
use super::{DockerError, Shared};
use crate::commands;
use crate::wire::{BuildEvent, BuildRequest};

type Result<T> = std::result::Result<T, DockerError>;

/// The most context bytes one build takes (as sent, compressed or not).
pub const MAX_CONTEXT_BYTES: u64 = 8 << 30;

/// A context unpacked for one build (`context`, under `root`), removed
/// with `root` when the build ends.
struct ContextDir {
    root: PathBuf,
    context: PathBuf,
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The query's values by key, repeats kept (`t=a&t=b`).
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True")
}

/// A JSON object of strings in a query value (`buildargs`, `labels`).
fn string_map(key: &str, value: &str) -> Result<BTreeMap<String, String>> {
    if value.is_empty() {
        return Ok(BTreeMap::new());
    }
    let v: BTreeMap<String, Option<String>> = serde_json::from_str(value)
        .map_err(|e| DockerError::BadRequest(format!("{key}: a JSON object of strings is expected: {e}")))?;
    // Docker's `null` value means "take it from the client's environment",
    // which the CLI has already done: left out.
    Ok(v.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

pub async fn build(State(state): State<Shared>, RawQuery(raw): RawQuery, body: Body) -> Result<Response> {
    let mut req = BuildRequest::default();
    let mut quiet = false;
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "t" => req.tags.push(v),
            "dockerfile" if !v.is_empty() => req.dockerfile = Some(v),
            "buildargs" => req.build_args = string_map("buildargs", &v)?,
            "labels" => req.labels = string_map("labels", &v)?,
            "target" if !v.is_empty() => req.target = Some(v),
            "nocache" => req.no_cache = truthy(&v),
            // docker-py sends Python's `False`.
            "pull" => req.pull = truthy(&v) || (!v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")),
            "networkmode" if !v.is_empty() && v != "default" => req.network = Some(v),
            "platform" if !v.is_empty() => req.platform = Some(v),
            "q" => quiet = truthy(&v),
            "remote" if !v.is_empty() => {
                return Err(DockerError::NotImplemented(
                    "building from a remote context (git or URL) is not served: send the context as a tar".into(),
                ))
            }
            // Accepted as Docker accepts them; berth's build has no use for
            // them (intermediate containers are always removed).
            _ => {}
        }
    }
    if req
        .dockerfile
        .as_deref()
        .is_some_and(|f| f.starts_with('/') || f.split('/').any(|c| c == ".."))
    {
        return Err(DockerError::BadRequest(
            "dockerfile: a path inside the context is expected".into(),
        ));
    }
    let context = receive_context(&state, body).await?;
    req.context = context.context.display().to_string();
    let mut events = commands::build::build(&state.engine, req).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        // The context lives until the build ends.
        let _context = context;
        let line = |v: serde_json::Value| {
            let mut out = serde_json::to_vec(&v).unwrap_or_default();
            out.push(b'\n');
            Ok(Bytes::from(out))
        };
        while let Some(event) = events.recv().await {
            let out = match event {
                BuildEvent::Step {
                    number,
                    total,
                    instruction,
                } if !quiet => json!({"stream": format!("Step {number}/{total} : {instruction}\n")}),
                BuildEvent::Cached if !quiet => json!({"stream": " ---> Using cache\n"}),
                BuildEvent::Output { text, .. } if !quiet => json!({"stream": text}),
                BuildEvent::Note { message } if !quiet => json!({"stream": format!("{message}\n")}),
                BuildEvent::StepDone { id } if !quiet => json!({"stream": format!(" ---> {}\n", short(&id))}),
                BuildEvent::Built { id } => {
                    let aux = line(json!({"aux": {"ID": id}}));
                    if tx.send(aux).await.is_err() {
                        return;
                    }
                    if quiet {
                        // What `docker build -q` prints.
                        if tx.send(line(json!({"stream": format!("{id}\n")}))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    json!({"stream": format!("Successfully built {}\n", short(&id))})
                }
                BuildEvent::Tagged { reference } if !quiet => {
                    json!({"stream": format!("Successfully tagged {reference}\n")})
                }
                BuildEvent::Error { message } => json!({"errorDetail": {"message": message}, "error": message}),
                _ => continue,
            };
            if tx.send(line(out)).await.is_err() {
                return;
            }
        }
    });
    Ok(super::stream::json_lines(rx))
}

/// Streams the body to a file (over the limit: 413, nothing kept), then
/// unpacks it. The tar crate refuses entries that would land outside the
/// directory (`..`, absolute names, through a link it made).
async fn receive_context(state: &Shared, mut body: Body) -> Result<ContextDir> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = commands::build::scratch_root(&state.engine).join(format!("docker-build-{}-{n}", std::process::id()));
    let dir = ContextDir {
        root: base.clone(),
        context: base.join("context"),
    };
    let io = |what: &str, e: std::io::Error| {
        DockerError::Command(commands::CommandError::Unavailable(format!("{what}: {e}")))
    };
    std::fs::create_dir_all(base.join("context")).map_err(|e| io("making the context dir", e))?;
    let archive = base.join("context.tar");
    let mut file = std::fs::File::create(&archive).map_err(|e| io("storing the context", e))?;
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| DockerError::BadRequest(format!("reading the build context: {e}")))?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > MAX_CONTEXT_BYTES {
                return Err(DockerError::TooLarge { route: "build".into() });
            }
            file.write_all(&data).map_err(|e| io("storing the context", e))?;
        }
    }
    drop(file);
    let into = base.join("context");
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut head = [0u8; 2];
        let gzip = {
            use std::io::Read;
            let mut f = std::fs::File::open(&archive)?;
            f.read(&mut head)? == 2 && head == [0x1f, 0x8b]
        };
        let f = std::fs::File::open(&archive)?;
        let reader: Box<dyn std::io::Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        tar.unpack(&into)?;
        std::fs::remove_file(&archive)
    })
    .await
    .map_err(|e| DockerError::BadRequest(format!("unpacking the build context: {e}")))?
    .map_err(|e| DockerError::BadRequest(format!("the build context is not a tar (plain or gzip): {e}")))?;
    Ok(dir)
}
