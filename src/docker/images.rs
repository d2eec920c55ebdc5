//! `/images/…`: list, inspect, pull (`create`), tag and delete, over
//! `commands::images` and the Docker-shaped documents of `docker_inspect`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary};
use serde_json::json;

use super::{json, parse_filters, query_bool, refuse_prune_filters, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect, CommandError};
use crate::image::Credentials;
use crate::wire::{PullProgress, PullRequest, PushRequest, RemoveImageRequest, TagRequest};

type Q = Query<HashMap<String, String>>;

/// `docker.io/library/busybox:latest` as Docker's clients show it
/// (`busybox:latest`); other registries keep their host.
pub(super) fn familiar(reference: &str) -> String {
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
        if let Some(name) = path.strip_suffix("/history") {
            return history(&state, name);
        }
        if let Some(name) = path.strip_suffix("/get") {
            return super::archive_images::save(&state, vec![name.to_string()]).await;
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

/// RFC 3339 as Unix seconds (0 when absent or unreadable, as Docker's
/// zero time shows).
fn unix_seconds(text: Option<&str>) -> i64 {
    text.and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map_or(0, |t| t.unix_timestamp())
}

/// `GET /images/{name}/history`: Docker's walk of the config's history,
/// newest first, each step that made a layer with that layer's unpacked
/// size; only the top entry has the image's id and tags, the others are
/// `<missing>` as for any pulled image (they are not images of their own).
fn history(state: &Shared, name: &str) -> Result<Response> {
    let detail = commands::images::inspect(
        &state.engine,
        crate::wire::InspectImageRequest { name: name.to_string() },
    )
    .map_err(|e| not_found(e, name))?;
    let sizes = commands::images::layer_sizes(&state.engine, name).map_err(|e| not_found(e, name))?;
    let mut entries = Vec::new();
    if detail.history.is_empty() {
        // An image without history (imported, or made by tools that
        // write none): one entry per layer, as Docker shows such images.
        for size in &sizes {
            entries.push(json!({
                "Created": detail.created_at / 1000,
                "CreatedBy": "",
                "Size": size,
                "Comment": "",
            }));
        }
    } else {
        let mut layer = 0;
        for h in &detail.history {
            let size = match h.empty_layer {
                true => 0,
                false => {
                    let size = sizes.get(layer).copied().ok_or_else(|| {
                        DockerError::Command(CommandError::Unavailable(format!(
                            "image {name}: its history names more layers than its {} layers",
                            sizes.len()
                        )))
                    })?;
                    layer += 1;
                    size
                }
            };
            entries.push(json!({
                "Created": unix_seconds(h.created.as_deref()),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            }));
        }
    }
    entries.reverse();
    for (i, entry) in entries.iter_mut().enumerate() {
        let (id, tags) = match i {
            0 => (
                json!(detail.id),
                json!(detail.references.iter().map(|r| familiar(r)).collect::<Vec<_>>()),
            ),
            _ => (json!("<missing>"), serde_json::Value::Null),
        };
        entry["Id"] = id;
        entry["Tags"] = tags;
    }
    Ok(json(StatusCode::OK, &entries))
}

/// `GET /images/search`: berth does not search registries.
pub async fn search() -> DockerError {
    DockerError::NotImplemented(
        "GET /images/search: berth does not search registries; browse the registry, then `docker pull` by name".into(),
    )
}

/// `POST /images/{name}/tag?repo=&tag=` (201) and `/images/{name}/push`.
pub async fn by_name_post(
    State(state): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    Query(q): Q,
) -> Result<Response> {
    let Some(source) = path.strip_suffix("/tag") else {
        if let Some(name) = path.strip_suffix("/push") {
            return push(&state, name, &headers, &q).await;
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
/// `errorDetail` (the status is sent already). Credentials in
/// `X-Registry-Auth` are used for this pull; without them, those of the
/// daemon's `~/.docker/config.json`. With `fromSrc` it is an import
/// (see [`super::archive_images::import`]).
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response> {
    let q: HashMap<String, String> = raw
        .as_deref()
        .map(|r| form_urlencoded::parse(r.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if q.contains_key("fromSrc") {
        return super::archive_images::import(&state, raw.as_deref(), body).await;
    }
    let credentials = registry_auth(&headers)?;
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
    let mut progress = commands::images::pull_as(
        &state.engine,
        PullRequest {
            reference: reference.clone(),
            platform,
        },
        credentials,
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

/// base64 in either alphabet (Docker's clients send the URL-safe one),
/// padded or not; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One leftover character holds less than a byte: not base64.
    (bits < 6).then_some(out)
}

/// Docker's `AuthConfig`, as `X-Registry-Auth` carries it.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    /// `user:password` in base64, as `config.json` keeps it.
    auth: String,
    identitytoken: String,
    // Sent by clients, not needed: the reference names the registry.
    #[allow(dead_code)]
    serveraddress: String,
}

/// The credentials of `X-Registry-Auth` (base64url JSON), if any: an
/// absent header, or one with no credentials in it (the CLI sends `{}`
/// when not logged in), is none; a header that does not decode is a 400.
fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>> {
    let Some(value) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let bad = |why: &str| DockerError::BadRequest(format!("X-Registry-Auth: {why}"));
    let text = value.to_str().map_err(|_| bad("not ASCII"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let json = base64_decode(text).ok_or_else(|| bad("not base64url"))?;
    let config: AuthConfig = serde_json::from_slice(&json).map_err(|e| bad(&format!("not a JSON auth config: {e}")))?;
    if !config.identitytoken.is_empty() {
        return Ok(Some(Credentials::IdentityToken(config.identitytoken)));
    }
    if config.username.is_empty() && config.password.is_empty() && !config.auth.is_empty() {
        let pair = base64_decode(&config.auth)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("auth: not base64 of user:password"))?;
        let (username, password) = pair.split_once(':').ok_or_else(|| bad("auth: not user:password"))?;
        return Ok(Some(Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }));
    }
    match (config.username.is_empty(), config.password.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(Credentials::Basic {
            username: config.username,
            password: config.password,
        })),
        _ => Err(bad("username and password go together")),
    }
}

/// `POST /images/{name}/push?tag=`: the local image `name:tag` to the
/// registry its name says (every local tag of the repository when `tag`
/// is empty, as Docker's `--all-tags`). The answer is Docker's JSON lines;
/// a push that fails once the stream has begun ends with `errorDetail`.
async fn push(state: &Shared, name: &str, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<Response> {
    let credentials = registry_auth(headers)?;
    let tag = q.get("tag").map(String::as_str).unwrap_or_default();
    let sources: Vec<String> = match tag {
        "" => {
            let wanted = crate::image::record::normalize(name)
                .map_err(|e| DockerError::BadRequest(e.to_string()))?
                .whole();
            let wanted = repository(&wanted).to_string();
            let mut tags: Vec<String> = commands::images::list(&state.engine, None)?
                .into_iter()
                .flat_map(|i| i.references)
                .filter(|r| repository(r) == wanted && !r.contains('@'))
                .collect();
            tags.sort();
            if tags.is_empty() {
                return Err(DockerError::NotFound(format!("No such image: {name}")));
            }
            tags
        }
        tag => vec![format!("{name}:{tag}")],
    };
    for source in &sources {
        // Refused before the stream starts, as Docker answers 404.
        if commands::images::list(&state.engine, Some(source))
            .map_err(|e| not_found(e, source))?
            .is_empty()
        {
            return Err(DockerError::NotFound(format!("No such image: {source}")));
        }
    }
    let engine = state.engine.clone();
    let shown = familiar(repository(&sources[0]));
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, Infallible>>(8);
    tokio::spawn(async move {
        let _ = tx
            .send(line(
                &json!({"status": format!("The push refers to repository [{shown}]")}),
            ))
            .await;
        for source in sources {
            let result = commands::images::push_as(
                &engine,
                PushRequest {
                    source: source.clone(),
                    target: None,
                },
                credentials.clone(),
            )
            .await;
            let out = match result {
                Ok(pushed) => {
                    let tag = source.rsplit_once(':').map(|(_, t)| t.to_string()).unwrap_or_default();
                    let _ = tx
                        .send(line(&json!({"status": format!("{tag}: digest: {}", pushed.digest)})))
                        .await;
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": pushed.digest}})
                }
                Err(e) => {
                    let message = e.to_string();
                    let _ = tx
                        .send(line(&json!({"errorDetail": {"message": message}, "error": message})))
                        .await;
                    return;
                }
            };
            if tx.send(line(&out)).await.is_err() {
                return;
            }
        }
    });
    Ok(super::stream::json_lines(rx))
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
    fn registry_auth_decodes_dockers_header_and_refuses_a_malformed_one() {
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-registry-auth", v.parse().unwrap());
            h
        };
        assert!(registry_auth(&HeaderMap::new()).unwrap().is_none());
        // `{}`, as the CLI sends it when not logged in.
        assert!(registry_auth(&header("e30=")).unwrap().is_none());
        // {"username":"shop","password":"s3cret","serveraddress":"r"}, URL-safe and unpadded.
        let basic = "eyJ1c2VybmFtZSI6InNob3AiLCJwYXNzd29yZCI6InMzY3JldCIsInNlcnZlcmFkZHJlc3MiOiJyIn0";
        assert!(matches!(
            registry_auth(&header(basic)).unwrap(),
            Some(Credentials::Basic { username, password }) if username == "shop" && password == "s3cret"
        ));
        // {"identitytoken":"tok"}
        assert!(matches!(
            registry_auth(&header("eyJpZGVudGl0eXRva2VuIjoidG9rIn0=")).unwrap(),
            Some(Credentials::IdentityToken(t)) if t == "tok"
        ));
        for bad in ["!!!", "bm90IGpzb24=", "eyJ1c2VybmFtZSI6InNob3AifQ=="] {
            let e = registry_auth(&header(bad)).err().unwrap();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.to_string().contains("X-Registry-Auth"), "{e}");
        }
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
