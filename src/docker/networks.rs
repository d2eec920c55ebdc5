//! `/networks…`: list, create, inspect and delete. A network made here is
//! an imperative object (`berth get network` shows it), applied as the
//! document `berth network create` applies.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{NetworkCreateRequest, NetworkCreateResponse};
use serde_json::{json, Value};

use super::{body_bytes, decode_json, json, parse_filters, refuse_prune_filters, DockerError, Result, Shared};
use crate::commands::CommandError;
use crate::commands::{self, docker_inspect};
use crate::manifest::Kind;
use crate::wire::{ApplyRequest, DeleteRequest, NetworkConnectRequest, NetworkDisconnectRequest};

type Q = Query<HashMap<String, String>>;

fn network(state: &Shared, id: &str) -> Result<docker_inspect::NetworkJson> {
    commands::check_name(Kind::Network, id)?;
    docker_inspect::network(&state.engine, id)?.ok_or_else(|| DockerError::NotFound(format!("network {id} not found")))
}

/// `GET /networks?filters=`: `name` and `label` filters.
pub async fn list(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    let filters = parse_filters(&q)?;
    if let Some(key) = filters.keys().find(|k| !matches!(k.as_str(), "name" | "label" | "id")) {
        return Err(DockerError::unsupported(
            format!("filters.{key}"),
            "berth filters networks by name, id and label",
        ));
    }
    let mut out = Vec::new();
    for view in commands::query::list(&state.engine, Some("network"), None)? {
        let Some(doc) = docker_inspect::network(&state.engine, &view.name)? else {
            continue;
        };
        let names_match = |key: &str| {
            filters
                .get(key)
                .is_none_or(|v| v.iter().any(|n| doc.name.contains(n.as_str())))
        };
        let labels = &doc.labels;
        let labels_match = filters.get("label").is_none_or(|wanted| {
            wanted.iter().all(|w| match w.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(w),
            })
        });
        if names_match("name") && names_match("id") && labels_match {
            out.push(doc);
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// `GET /networks/{id}`.
pub async fn inspect(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    Ok(json(StatusCode::OK, &network(&state, &id)?))
}

/// The Network document for a create request; what berth cannot make is
/// refused by field name.
fn document(req: &NetworkCreateRequest, raw: &Value) -> Result<Value> {
    let driver = req
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "bridge".into());
    if driver != "bridge" {
        return Err(DockerError::unsupported(
            "Driver",
            format!("{driver}: berth makes bridge networks here"),
        ));
    }
    if req.enable_ipv6.unwrap_or(false) {
        return Err(DockerError::unsupported(
            "EnableIPv6",
            "berth's Docker API makes IPv4 networks",
        ));
    }
    if req.options.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(DockerError::unsupported(
            "Options",
            "berth takes no bridge driver options",
        ));
    }
    for field in ["Ingress", "ConfigOnly", "ConfigFrom", "Scope"] {
        if raw
            .get(field)
            .is_some_and(|v| !v.is_null() && v != &json!(false) && v != &json!("") && v != &json!("local"))
        {
            return Err(DockerError::unsupported(field, "berth makes local networks only"));
        }
    }
    let mut spec = serde_json::Map::new();
    spec.insert("driver".into(), json!("bridge"));
    if req.internal.unwrap_or(false) {
        spec.insert("internal".into(), json!(true));
    }
    if let Some(ipam) = &req.ipam {
        if ipam.driver.as_deref().is_some_and(|d| !d.is_empty() && d != "default") {
            return Err(DockerError::unsupported(
                "IPAM.Driver",
                "berth allocates addresses itself (default)",
            ));
        }
        match ipam.config.as_deref().unwrap_or_default() {
            [] => {}
            [one] => {
                if let Some(s) = one.subnet.as_ref().filter(|s| !s.is_empty()) {
                    spec.insert("subnet".into(), json!(s));
                }
                if let Some(g) = one.gateway.as_ref().filter(|s| !s.is_empty()) {
                    spec.insert("gateway".into(), json!(g));
                }
                if let Some(r) = one.ip_range.as_ref().filter(|s| !s.is_empty()) {
                    spec.insert("ipRange".into(), json!(r));
                }
                if one.auxiliary_addresses.as_ref().is_some_and(|a| !a.is_empty()) {
                    return Err(DockerError::unsupported(
                        "IPAM.Config.AuxiliaryAddresses",
                        "berth reserves no extra addresses",
                    ));
                }
            }
            _ => {
                return Err(DockerError::unsupported(
                    "IPAM.Config",
                    "berth's networks have one IPv4 subnet",
                ))
            }
        }
    }
    let labels = raw.get("Labels").cloned().filter(|l| !l.is_null()).unwrap_or(json!({}));
    Ok(json!({
        "apiVersion": "berth/v1",
        "kind": "Network",
        "metadata": {"name": req.name, "labels": labels},
        "spec": spec,
    }))
}

/// `POST /networks/create`: 201 with its id (its name).
pub async fn create(State(state): State<Shared>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let raw: Value = decode_json(&route, &bytes)?;
    let req: NetworkCreateRequest = serde_json::from_value(raw.clone())
        .map_err(|e| DockerError::BadRequest(format!("{route}: invalid body: {e}")))?;
    commands::check_name(Kind::Network, &req.name)?;
    if docker_inspect::network(&state.engine, &req.name)?.is_some() {
        return Err(DockerError::Conflict(format!(
            "network with name {} already exists",
            req.name
        )));
    }
    let doc = document(&req, &raw)?;
    apply_document(
        &state,
        format!("network:{}", req.name),
        "<docker network create>".into(),
        doc.to_string(),
    )
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &NetworkCreateResponse {
            id: req.name,
            warning: String::new(),
        },
    ))
}

/// `DELETE /networks/{id}`: 204; 409 while a container uses it.
pub async fn remove(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response> {
    network(&state, &id)?;
    delete_key(&state, &format!("network/{id}")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The berth name of the container a connect or disconnect body names (by
/// name or id).
fn container_named(state: &Shared, raw: &Value) -> Result<String> {
    let given = raw["Container"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| DockerError::BadRequest("Container is required".into()))?;
    commands::check_name(Kind::Container, given)?;
    let doc = docker_inspect::container(&state.engine, given)?
        .ok_or_else(|| DockerError::NotFound(format!("No such container: {given}")))?;
    Ok(doc.name.trim_start_matches('/').to_string())
}

/// `POST /networks/{id}/connect`: the container joins the network with the
/// endpoint's aliases and fixed address. One already on it is connected
/// again with these (docker-compose 1.29 disconnects, then connects with
/// the service's aliases).
pub async fn connect(State(state): State<Shared>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let raw: Value = decode_json(&route, &bytes)?;
    network(&state, &id)?;
    let container = container_named(&state, &raw)?;
    let endpoint = &raw["EndpointConfig"];
    let aliases = match &endpoint["Aliases"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| DockerError::BadRequest("EndpointConfig.Aliases: strings are expected".into()))
            })
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(DockerError::BadRequest(
                "EndpointConfig.Aliases: a list is expected".into(),
            ))
        }
    };
    // As a Docker-style container name answers DNS as its label, so does an
    // alias (docker-compose gives `proj_web_1`): one with no label form is left out.
    let mut aliases: Vec<String> = aliases.iter().filter_map(|a| crate::dnsname::dns_label_of(a)).collect();
    aliases.dedup();
    let ipv4_address = endpoint["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let request = NetworkConnectRequest {
        network: id.clone(),
        container: container.clone(),
        aliases,
        ipv4_address,
    };
    match commands::network::connect(&state.engine, &request).await {
        Err(CommandError::Conflict(_)) => {
            let leave = NetworkDisconnectRequest {
                network: id,
                container,
                ..Default::default()
            };
            commands::network::disconnect(&state.engine, &leave).await?;
            commands::network::connect(&state.engine, &request).await?;
        }
        other => {
            other?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(State(state): State<Shared>, Path(id): Path<String>, req: Request) -> Result<Response> {
    let (route, bytes) = body_bytes(req, &()).await?;
    let raw: Value = decode_json(&route, &bytes)?;
    network(&state, &id)?;
    let container = container_named(&state, &raw)?;
    let leave = NetworkDisconnectRequest {
        network: id,
        container,
        ..Default::default()
    };
    commands::network::disconnect(&state.engine, &leave).await?;
    Ok(StatusCode::OK.into_response())
}

/// Applies one manifest document made from a Docker body as the whole set
/// of `source_id` (a network's, a volume's), with Docker's statuses for
/// what went wrong.
pub(super) async fn apply_document(state: &Shared, source_id: String, file: String, text: String) -> Result<()> {
    let resp = commands::apply::apply(
        &state.engine,
        ApplyRequest {
            source_id,
            sources: vec![crate::manifest::Source { file, text }],
            prune: false,
            dry_run: false,
            base_dir: None,
        },
    )
    .await?;
    if let Some(e) = resp.errors.first() {
        return Err(DockerError::BadRequest(format!("{}: {}", e.field, e.message)));
    }
    if let Some(f) = resp.failed.first() {
        return Err(DockerError::Command(commands::CommandError::Unavailable(f.clone())));
    }
    Ok(())
}

/// Deletes one object by key, with Docker's statuses for what went wrong.
pub(super) async fn delete_key(state: &Shared, key: &str) -> Result<()> {
    let resp = commands::delete::delete(
        &state.engine,
        DeleteRequest {
            sources: Vec::new(),
            keys: vec![key.to_string()],
        },
    )
    .await?;
    if let Some(e) = resp.errors.first() {
        return Err(DockerError::Conflict(e.message.clone()));
    }
    if !resp.not_found.is_empty() {
        return Err(DockerError::NotFound(format!("{key} not found")));
    }
    if let Some(f) = resp.failed.first() {
        return Err(DockerError::Conflict(f.clone()));
    }
    Ok(())
}

/// `POST /networks/prune`: every network no container uses.
pub async fn prune(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    refuse_prune_filters(&q)?;
    let report = commands::docker_ops::prune_networks(&state.engine).await?;
    if let Some(f) = report.failed.first() {
        return Err(DockerError::Command(commands::CommandError::Unavailable(f.clone())));
    }
    Ok(json(StatusCode::OK, &json!({"NetworksDeleted": report.deleted})))
}
