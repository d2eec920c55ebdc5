//! `GET /system/df` and `POST /auth`: Docker's shapes over `berth system
//! df` and `berth login`.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{body_bytes, decode_json, json, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect, docker_list, CommandError};
use crate::wire::LoginRequest;

type Q = Query<HashMap<String, String>>;

/// `GET /system/df?type=`: Docker's lists with the sizes berth measures:
/// `LayersSize` is the images' distinct layer bytes, each image its own
/// size and how many containers use it, each container its writable layer,
/// each volume how many containers mount it (its own size is not measured
/// one by one: Docker's -1, unknown).
pub async fn df(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    if let Some(t) = q
        .get("type")
        .filter(|t| !matches!(t.as_str(), "" | "container" | "image" | "volume" | "build-cache"))
    {
        return Err(DockerError::BadRequest(format!(
            "invalid value for query parameter type: {t:?}: expected container, image, volume or build-cache"
        )));
    }
    let usage = commands::images::disk_usage(&state.engine).await?;
    let containers = docker_list::list(
        &state.engine,
        &docker_list::ListContainersRequest {
            all: true,
            limit: None,
            size: true,
            filters: Default::default(),
        },
    )?;
    let images: Vec<_> = commands::images::list(&state.engine, None)?
        .into_iter()
        .map(|i| {
            let users = containers.iter().filter(|c| c.image_id == i.id).count();
            json!({
                "Id": i.id, "ParentId": "", "RepoTags": i.references, "RepoDigests": [],
                "Created": i.created_at / 1000, "Size": i.size, "SharedSize": -1,
                "Labels": {}, "Containers": users,
            })
        })
        .collect();
    let mut volumes = Vec::new();
    for view in commands::query::list(&state.engine, Some("volume"), None)? {
        let Some(doc) = docker_inspect::volume(&state.engine, &view.name)? else {
            continue;
        };
        let users = containers
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(view.name.as_str())))
            .count();
        let mut v = serde_json::to_value(&doc).unwrap_or_default();
        v["UsageData"] = json!({"Size": -1, "RefCount": users});
        volumes.push(v);
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "LayersSize": usage.images.size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }),
    ))
}

/// `POST /auth`: checks the credentials against the registry as `berth
/// login` does; 401 when the registry refuses them.
pub async fn auth(State(state): State<Shared>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let body: serde_json::Value = decode_json(&route, &bytes)?;
    let field = |name: &str| -> Result<String> {
        match body.get(name) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(DockerError::BadRequest(format!("{route}: {name} must be a string"))),
        }
    };
    let (username, password, server) = (field("username")?, field("password")?, field("serveraddress")?);
    for (name, value) in [
        ("username", &username),
        ("password", &password),
        ("serveraddress", &server),
    ] {
        if value.is_empty() {
            return Err(DockerError::BadRequest(format!("{route}: {name} is required")));
        }
    }
    // The CLI sends a URL for Docker Hub and a bare host[:port] otherwise.
    let registry = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let login = LoginRequest {
        registry,
        username,
        password,
    };
    match commands::images::login(&state.engine, login).await {
        Ok(()) => Ok(json(
            StatusCode::OK,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(CommandError::Invalid(m)) if m.contains("refused") => Err(DockerError::Unauthorized(m)),
        Err(e) => Err(e.into()),
    }
}
