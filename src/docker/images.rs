//! `/images/…`: list, inspect, pull (`create`), tag and delete, over
//! `commands::images` and the Docker-shaped documents of `docker_inspect`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary};
use serde_json::json;

use super::{json, parse_filters, query_bool, refuse_prune_filters, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect, CommandError};
use crate::wire::{PullProgress, PullRequest, RemoveImageRequest, TagRequest};

type Q = Query<HashMap<String, String>>;

/// `docker.io/library/busybox:latest` as Docker's clients show it
/// (`busybox:latest`); other registries keep their host.
fn familiar(reference: &str) -> String {
    let short = reference.strip_prefix("docker.io/").unwrap_or(reference);
    short.strip_prefix("library/").unwrap_or(short).to_string()
}

/// The repository of a reference, without its tag or digest.
fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rfind(':') {
        // A colon after the last slash is a tag's, not a registry port's.
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

fn not_found(e: CommandError, name: &str) -> DockerError {
    match e {
        CommandError::NotFound(_) => DockerError::NotFound(format!("No such image: {name}")),
        CommandError::Invalid(m) => DockerError::BadRequest(m),
        other => other.into(),
    }
}

/// `GET /images/json?filters=`: `reference` and `dangling` are taken;
/// other filters are refused by name.
pub async fn list(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    query_bool(&q, "all")?;
    let filters = parse_filters(&q)?;
    if let Some(key) = filters.keys().find(|k| !matches!(k.as_str(), "reference" | "dangling")) {
        return Err(DockerError::unsupported(
            format!("filters.{key}"),
            "berth filters images by reference and dangling",
        ));
    }
    let references = filters.get("reference").cloned().unwrap_or_default();
    let mut images = Vec::new();
    if references.is_empty() {
        images = commands::images::list(&state.engine, None)?;
    } else {
        for r in &references {
            for image in commands::images::list(&state.engine, Some(r)).map_err(|e| not_found(e, r))? {
                if images.iter().all(|i: &crate::wire::ImageListItem| i.id != image.id) {
                    images.push(image);
                }
            }
        }
    }
    if let Some(dangling) = filters.get("dangling").and_then(|v| v.first()) {
        let want = dangling == "true" || dangling == "1";
        images.retain(|i| i.references.is_empty() == want);
    }
    let summaries: Vec<ImageSummary> = images
        .iter()
        .map(|i| ImageSummary {
            id: i.id.clone(),
            parent_id: String::new(),
            repo_tags: i.references.iter().map(|r| familiar(r)).collect(),
            repo_digests: match i.manifest_digest.is_empty() {
                true => Vec::new(),
                false => i
                    .references
                    .iter()
                    .map(|r| format!("{}@{}", familiar(repository(r)), i.manifest_digest))
                    .collect(),
            },
            created: i.created_at / 1000,
            size: i.size as i64,
            shared_size: -1,
            labels: HashMap::new(),
            containers: -1,
            manifests: None,
            descriptor: None,
        })
        .collect();
    Ok(json(StatusCode::OK, &summaries))
}

/// `GET /images/{name}/json` (the name may hold slashes and a port).
pub async fn by_name(State(state): State<Shared>, Path(path): Path<String>) -> Result<Response> {
    let Some(name) = path.strip_suffix("/json") else {
        if path.ends_with("/history") {
            return Err(DockerError::NotImplemented(
                "image history is not served by berth's Docker API yet".into(),
            ));
        }
        return Err(DockerError::NotFound(format!("page not found: GET /images/{path}")));
    };
    let doc = docker_inspect::image(&state.engine, name)
        .map_err(|e| not_found(e, name))?
        .ok_or_else(|| DockerError::NotFound(format!("No such image: {name}")))?;
    // docker-compose 1.29 reads ContainerConfig, which Docker still fills
    // with the config the image was committed from; berth's is its Config.
    let mut value = serde_json::to_value(&doc).map_err(|e| CommandError::Unavailable(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        let config = obj.get("Config").cloned().unwrap_or(serde_json::Value::Null);
        obj.insert("ContainerConfig".into(), config);
        obj.insert(
            "RepoTags".into(),
            json!(doc.repo_tags.iter().map(|r| familiar(r)).collect::<Vec<_>>()),
        );
        obj.entry("Parent").or_insert(json!(""));
        obj.entry("Comment").or_insert(json!(""));
        obj.entry("Container").or_insert(json!(""));
        obj.entry("DockerVersion").or_insert(json!(""));
        obj.entry("Author").or_insert(json!(""));
    }
    Ok(json(StatusCode::OK, &value))
}

/// `POST /images/{name}/tag?repo=&tag=` (201); push is not served yet.
pub async fn by_name_post(State(state): State<Shared>, Path(path): Path<String>, Query(q): Q) -> Result<Response> {
    let Some(source) = path.strip_suffix("/tag") else {
        if path.ends_with("/push") {
            return Err(DockerError::NotImplemented(
                "image push is not served by berth's Docker API yet".into(),
            ));
        }
        return Err(DockerError::NotFound(format!("page not found: POST /images/{path}")));
    };
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| DockerError::BadRequest("tag needs repo: ?repo=NAME[&tag=TAG]".into()))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.clone(),
    };
    commands::images::tag(
        &state.engine,
        TagRequest {
            source: source.to_string(),
            target,
        },
    )
    .map_err(|e| not_found(e, source))?;
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE /images/{name}?force=&noprune=`.
pub async fn remove(State(state): State<Shared>, Path(name): Path<String>, Query(q): Q) -> Result<Response> {
    let force = query_bool(&q, "force")?;
    if query_bool(&q, "noprune")? {
        return Err(DockerError::unsupported(
            "noprune",
            "berth deletes an image's unused layers with it",
        ));
    }
    let resp = commands::images::remove(
        &state.engine,
        RemoveImageRequest {
            name: name.clone(),
            force,
        },
    )
    .await
    .map_err(|e| not_found(e, &name))?;
    let mut items = vec![ImageDeleteResponseItem {
        untagged: Some(name.clone()),
        deleted: None,
    }];
    if resp.deleted {
        items.push(ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(resp.id),
        });
    }
    Ok(json(StatusCode::OK, &items))
}

/// `POST /images/prune`: images no container uses and no reference names
/// (Docker's default, dangling only, is all berth prunes).
pub async fn prune(State(state): State<Shared>, Query(mut q): Q) -> Result<Response> {
    // The CLI says dangling=true unless `-a`; that is what berth prunes.
    let mut filters = parse_filters(&q)?;
    if filters
        .get("dangling")
        .is_some_and(|v| v.iter().all(|d| d == "true" || d == "1"))
    {
        filters.remove("dangling");
        q.insert("filters".into(), serde_json::to_string(&filters).unwrap_or_default());
    }
    refuse_prune_filters(&q)?;
    let resp = commands::images::prune(&state.engine).await?;
    let deleted: Vec<ImageDeleteResponseItem> = resp
        .removed
        .into_iter()
        .map(|id| ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(id),
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"ImagesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `POST /images/create?fromImage=&tag=`: a pull, its progress as Docker's
/// JSON lines; a failure once the stream has begun is a line with
/// `errorDetail` (the status is sent already). `X-Registry-Auth` is not
/// read: berth takes credentials from the same `~/.docker/config.json`
/// the docker CLI writes.
pub async fn create(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    if q.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(DockerError::NotImplemented(
            "importing an image with fromSrc is not served by berth's Docker API yet: use `berth import`".into(),
        ));
    }
    let image = q
        .get("fromImage")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| DockerError::BadRequest("images/create needs fromImage".into()))?;
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        // A digest is sent as the tag too.
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image.clone(),
    };
    let platform = q.get("platform").filter(|p| !p.is_empty()).cloned();
    let mut progress = commands::images::pull(
        &state.engine,
        PullRequest {
            reference: reference.clone(),
            platform,
        },
    )
    .await
    .map_err(|e| match e {
        CommandError::Invalid(m) => DockerError::BadRequest(m),
        other => other.into(),
    })?;
    let shown = familiar(&reference);
    let first = json!({"status": format!("Pulling from {}", familiar(repository(&reference))), "id": shown});
    let mut started = false;
    let stream = futures_util::stream::poll_fn(move |cx| {
        if !started {
            started = true;
            return std::task::Poll::Ready(Some(line(&first)));
        }
        match progress.poll_recv(cx) {
            std::task::Poll::Ready(Some(p)) => std::task::Poll::Ready(Some(line(&progress_line(&p, &shown)))),
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn line(v: &serde_json::Value) -> std::result::Result<Bytes, Infallible> {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Ok(Bytes::from(out))
}

/// First 12 hex digits of a digest, as Docker names layers in progress.
pub(super) fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

/// One progress line of a pull in Docker's JSON-lines shape.
fn progress_line(p: &PullProgress, reference: &str) -> serde_json::Value {
    match p {
        PullProgress::Resolved { digest, .. } => json!({"status": format!("Digest: {digest}")}),
        PullProgress::Present { digest } => json!({"status": "Already exists", "id": short(digest)}),
        PullProgress::Downloading { digest, done, total } => json!({
            "status": "Downloading",
            "progressDetail": {"current": done, "total": total},
            "id": short(digest),
        }),
        PullProgress::Downloaded { digest } => json!({"status": "Download complete", "id": short(digest)}),
        PullProgress::Unpacked { digest } => json!({"status": "Pull complete", "id": short(digest)}),
        PullProgress::Done { .. } => json!({"status": format!("Status: Image is up to date for {reference}")}),
        PullProgress::Error { message } => json!({"errorDetail": {"message": message}, "error": message}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_show_as_dockers_clients_show_them() {
        assert_eq!(familiar("docker.io/library/busybox:latest"), "busybox:latest");
        assert_eq!(familiar("docker.io/me/app:1"), "me/app:1");
        assert_eq!(familiar("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(repository("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn a_failed_pull_ends_with_dockers_error_detail() {
        let l = progress_line(
            &PullProgress::Error {
                message: "manifest unknown".into(),
            },
            "x",
        );
        assert_eq!(l["errorDetail"]["message"], "manifest unknown");
        assert_eq!(l["error"], "manifest unknown");
        let l = progress_line(
            &PullProgress::Downloading {
                digest: "sha256:0123456789abcdef".into(),
                done: 5,
                total: 10,
            },
            "x",
        );
        assert_eq!(l["id"], "0123456789ab");
        assert_eq!(l["progressDetail"]["total"], 10);
    }
}
