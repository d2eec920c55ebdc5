//! Seeing inside containers: `stats`, `top`, `inspect`. Read-only.

use std::sync::Arc;

use super::{CommandError, Result};
use crate::manifest::Kind;
use crate::reconcile::Engine;
use crate::wire::{
    ContainerInspect, ContainerStats, CopyRequest, CopyResponse, RuntimeView, StatsRequest, TopProcess, TopResponse,
};

/// One reading per named container (all running ones when none is named);
/// a named container that is not running is an error.
pub fn stats(engine: &Arc<Engine>, req: &StatsRequest) -> Result<Vec<ContainerStats>> {
    let names: Vec<String> = if req.names.is_empty() {
        engine
            .views(Some(Kind::Container), None)?
            .into_iter()
            .filter(|v| v.pid.is_some())
            .map(|v| v.name)
            .collect()
    } else {
        req.names.clone()
    };
    let mut out = Vec::new();
    for name in names {
        super::check_name(Kind::Container, &name)?;
        if !engine.container_exists(&name)? {
            return Err(CommandError::NotFound(format!("container/{name}")));
        }
        let Some(s) = engine.container_stats(&name) else {
            if req.names.is_empty() {
                continue; // it stopped meanwhile
            }
            return Err(CommandError::Conflict(format!("container {name} is not running")));
        };
        out.push(ContainerStats { name, sample: s });
    }
    Ok(out)
}

pub fn top(engine: &Arc<Engine>, name: &str) -> Result<TopResponse> {
    super::check_name(Kind::Container, name)?;
    if !engine.container_exists(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    if engine.container_stats(name).is_none() {
        return Err(CommandError::Conflict(format!("container {name} is not running")));
    }
    let processes = engine
        .container_processes(name)
        .into_iter()
        .map(|p| TopProcess {
            pid: p.pid,
            ppid: p.ppid,
            uid: p.uid,
            cpu_seconds: p.cpu_seconds,
            rss_bytes: p.rss_bytes,
            command: p.command,
        })
        .collect();
    Ok(TopResponse { processes })
}

pub fn inspect(engine: &Arc<Engine>, name: &str) -> Result<ContainerInspect> {
    super::check_name(Kind::Container, name)?;
    let view = engine
        .views(Some(Kind::Container), Some(name))?
        .into_iter()
        .next()
        .ok_or_else(|| CommandError::NotFound(format!("container/{name}")))?;
    let runtime = engine.container_oci_spec(name).map(|spec| RuntimeView::of(&spec));
    let (labels, exposed_ports, anonymous) = engine.container_image_facts(name);
    Ok(ContainerInspect {
        labels,
        exposed_ports,
        published_ports: engine.container_published_ports(name),
        anonymous_volumes: anonymous
            .into_iter()
            .map(|a| crate::wire::AnonymousVolume {
                name: a.id,
                path: a.path,
            })
            .collect(),
        running: view.pid.is_some(),
        paused: view.status == "Paused",
        name: view.name,
        image: view.image,
        status: view.status,
        pid: view.pid,
        exit: view.exit,
        restarts: view.restarts,
        created_at: view.created_at,
        source: view.source,
        log_path: engine.log_file(name).display().to_string(),
        config: view.spec,
        runtime,
    })
}

/// `cp`: both paths absolute; the container must run (its files are reached
/// through its init; see `runtime::copy` for why nothing can escape it).
pub async fn copy(engine: &Arc<Engine>, name: &str, req: CopyRequest) -> Result<CopyResponse> {
    super::check_name(Kind::Container, name)?;
    for (what, p) in [("container", &req.container_path), ("host", &req.host_path)] {
        if !p.starts_with('/') {
            return Err(CommandError::Invalid(format!(
                "cp: the {what} path {p:?} must be absolute"
            )));
        }
    }
    if !engine.container_exists(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    let pid = engine
        .running_init(name)
        .ok_or_else(|| CommandError::Conflict(format!("container {name} is not running: cp needs it running")))?;
    let engine = engine.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        engine.copy(
            pid,
            req.into_container,
            std::path::Path::new(&req.container_path),
            std::path::Path::new(&req.host_path),
        )
    })
    .await
    .map_err(|e| CommandError::Unavailable(e.to_string()))?
    .map_err(|e| CommandError::Invalid(format!("cp: {e}")))?;
    Ok(CopyResponse { bytes })
}
