//! `/volumes…`: list, create, inspect and delete, applied as the document
//! `berth volume create` applies (one source per volume).

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::VolumeCreateRequest;
use serde_json::json;

use super::{body_bytes, decode_json, json, parse_filters, query_bool, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect};
use crate::manifest::Kind;

type Q = Query<HashMap<String, String>>;

fn volume(state: &Shared, name: &str) -> Result<docker_inspect::VolumeJson> {
    commands::check_name(Kind::Volume, name)?;
    docker_inspect::volume(&state.engine, name)?
        .ok_or_else(|| DockerError::NotFound(format!("get {name}: no such volume")))
}

/// `GET /volumes?filters=`: `name` and `label` filters.
pub async fn list(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    let filters = parse_filters(&q)?;
    if let Some(key) = filters.keys().find(|k| !matches!(k.as_str(), "name" | "label")) {
        return Err(DockerError::unsupported(
            format!("filters.{key}"),
            "berth filters volumes by name and label",
        ));
    }
    let mut out = Vec::new();
    for view in commands::query::list(&state.engine, Some("volume"), None)? {
        let Some(doc) = docker_inspect::volume(&state.engine, &view.name)? else {
            continue;
        };
        let name_ok = filters
            .get("name")
            .is_none_or(|v| v.iter().any(|n| doc.name.contains(n.as_str())));
        let label_ok = filters.get("label").is_none_or(|wanted| {
            wanted.iter().all(|w| match w.split_once('=') {
                Some((k, v)) => doc.labels.get(k).is_some_and(|have| have == v),
                None => doc.labels.contains_key(w),
            })
        });
        if name_ok && label_ok {
            out.push(doc);
        }
    }
    Ok(json(StatusCode::OK, &json!({"Volumes": out, "Warnings": []})))
}

/// `GET /volumes/{name}`.
pub async fn inspect(State(state): State<Shared>, Path(name): Path<String>) -> Result<Response> {
    Ok(json(StatusCode::OK, &volume(&state, &name)?))
}

/// `POST /volumes/create`: 201 with the volume; an existing one of the
/// same name is answered as it is, as Docker does.
pub async fn create(State(state): State<Shared>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let raw: serde_json::Value = decode_json(&route, &bytes)?;
    let req: VolumeCreateRequest =
        serde_json::from_value(raw).map_err(|e| DockerError::BadRequest(format!("{route}: invalid body: {e}")))?;
    let name = match req.name.clone().filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => anonymous_name()?,
    };
    commands::check_name(Kind::Volume, &name)?;
    let driver = req
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "local".into());
    if driver != "local" {
        return Err(DockerError::unsupported(
            "Driver",
            format!("{driver}: berth has the local driver"),
        ));
    }
    if let Some(existing) = docker_inspect::volume(&state.engine, &name)? {
        return Ok(json(StatusCode::CREATED, &existing));
    }
    let doc = json!({
        "apiVersion": "berth/v1",
        "kind": "Volume",
        "metadata": {"name": name, "labels": req.labels.clone().unwrap_or_default()},
        "spec": {"driver": "local", "driverOpts": req.driver_opts.clone().unwrap_or_default()},
    });
    super::networks::apply_document(
        &state,
        commands::run::volume_source(&name),
        format!("<docker volume create {name}>"),
        doc.to_string(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &volume(&state, &name)?))
}

/// Random hex digits for a volume made without a name, as Docker's (32,
/// not Docker's 64: names are at most 63 characters in berth).
fn anonymous_name() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| DockerError::Command(commands::CommandError::Unavailable(format!("volume name: {e}"))))?;
    Ok(hex::encode(bytes))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 while a container uses it.
pub async fn remove(State(state): State<Shared>, Path(name): Path<String>, Query(q): Q) -> Result<Response> {
    query_bool(&q, "force")?;
    volume(&state, &name)?;
    super::networks::delete_key(&state, &format!("volume/{name}")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /volumes/prune?filters=`: unused anonymous volumes, or every
/// unused one with the `all` filter; `label` and `label!` narrow it.
pub async fn prune(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    let filters = parse_filters(&q)?;
    let mut prune = commands::docker_ops::VolumePrune::default();
    for (key, values) in filters {
        match key.as_str() {
            "label" => prune.label = values,
            "label!" => prune.not_label = values,
            "all" => {
                prune.all = match values.as_slice() {
                    [] => false,
                    [v] if matches!(v.as_str(), "1" | "true" | "True") => true,
                    [v] if matches!(v.as_str(), "0" | "false" | "False") => false,
                    _ => {
                        return Err(DockerError::BadRequest(format!(
                            "invalid filter 'all={}': expected true or false",
                            values.join(",")
                        )))
                    }
                }
            }
            other => {
                return Err(DockerError::unsupported(
                    format!("filters.{other}"),
                    "berth prunes volumes by label, label! and all",
                ))
            }
        }
    }
    let report = commands::docker_ops::prune_volumes(&state.engine, &prune).await?;
    if let Some(f) = report.failed.first() {
        return Err(DockerError::Command(commands::CommandError::Unavailable(f.clone())));
    }
    Ok(json(
        StatusCode::OK,
        &json!({"VolumesDeleted": report.deleted, "SpaceReclaimed": 0}),
    ))
}
