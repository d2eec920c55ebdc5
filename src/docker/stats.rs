//! `GET /containers/{id}/stats`: the counters `berth stats` reads, in
//! Docker's shape, filled where the docker CLI reads them: CPU % from
//! `cpu_stats` against `precpu_stats` (container and host CPU time, online
//! CPUs), memory from `memory_stats.usage` (berth's reading is already
//! without the page cache, so `stats` has no `inactive_file` to take off)
//! and `limit`, network bytes per interface, block I/O by `op`, pids.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::containers::container;
use super::{json, query_bool, DockerError, Result, Shared};
use crate::commands::{self, CommandError};
use crate::reconcile::Engine;
use crate::wire::{StatsRequest, StatsSample};

type Q = Query<HashMap<String, String>>;

/// Between two readings, as Docker: one a second while streaming, and the
/// wait of a single non-one-shot answer so that its CPU % has a span.
const INTERVAL: Duration = Duration::from_secs(1);

/// A reading and when it was taken (RFC 3339 with nanoseconds).
#[derive(Clone, Default)]
struct Reading {
    sample: StatsSample,
    at: String,
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: a stream of one JSON
/// document a second (the default) until the client goes, or one.
pub async fn stats(State(state): State<Shared>, Path(id): Path<String>, Query(q): Q) -> Result<Response> {
    let stream = match q.get("stream") {
        None => true,
        Some(_) => query_bool(&q, "stream")?,
    };
    let one_shot = query_bool(&q, "one-shot")?;
    if one_shot && stream {
        return Err(DockerError::BadRequest(
            "cannot have stream=true and one-shot=true: one-shot needs stream=false".into(),
        ));
    }
    let doc = container(&state, &id)?;
    let (cid, name) = (doc.id.clone(), doc.name.clone());
    let engine = state.engine.clone();
    if !stream {
        let first = read(&engine, &id)?;
        let (pre, now) = if one_shot {
            (None, first)
        } else {
            tokio::time::sleep(INTERVAL).await;
            (Some(first), read(&engine, &id)?)
        };
        return Ok(json(StatusCode::OK, &document(&cid, &name, &now, pre.as_ref())));
    }
    // The first reading before the headers: a container that is gone
    // now is a 404, not an empty stream.
    let first = read(&engine, &id)?;
    let body = futures_util::stream::unfold(
        (engine, id, cid, name, None::<Reading>, Some(first)),
        |(engine, id, cid, name, pre, next)| async move {
            let now = match next {
                Some(r) => r,
                None => {
                    tokio::time::sleep(INTERVAL).await;
                    read(&engine, &id).ok()?
                }
            };
            let mut line = serde_json::to_vec(&document(&cid, &name, &now, pre.as_ref())).unwrap_or_default();
            line.push(b'\n');
            Some((
                Ok::<_, Infallible>(Bytes::from(line)),
                (engine, id, cid, name, Some(now), None),
            ))
        },
    );
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// One reading of `berth stats`; zeros for a container that is not
/// running (Docker answers those too, with nothing counted).
fn read(engine: &std::sync::Arc<Engine>, id: &str) -> Result<Reading> {
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let req = StatsRequest { names: vec![id.into()] };
    let sample = match commands::inspect::stats(engine, &req) {
        Ok(mut all) => all.pop().map(|s| s.sample).unwrap_or_default(),
        Err(CommandError::Conflict(_)) => StatsSample::default(),
        Err(e) => return Err(e.into()),
    };
    Ok(Reading { sample, at })
}

fn cpu(s: Option<&StatsSample>) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                      "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    json!({
        "cpu_usage": {"total_usage": s.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": s.system_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// Docker's stats document for `now`, against `pre` when there is one
/// (Docker's zero time and empty `precpu_stats` otherwise).
fn document(id: &str, name: &str, now: &Reading, pre: Option<&Reading>) -> Value {
    let s = &now.sample;
    let blk = |op: &str, value: u64| json!({"major": 0, "minor": 0, "op": op, "value": value});
    json!({
        "id": id,
        "name": name,
        "os_type": "linux",
        "read": now.at,
        "preread": pre.map_or("0001-01-01T00:00:00Z", |p| p.at.as_str()),
        "num_procs": 0,
        "pids_stats": {"current": s.pids},
        "cpu_stats": cpu(Some(s)),
        "precpu_stats": cpu(pre.map(|p| &p.sample)),
        "memory_stats": if s.memory_limit_bytes == 0 { json!({}) } else {
            json!({"usage": s.memory_bytes, "limit": s.memory_limit_bytes, "stats": {}})
        },
        "blkio_stats": {"io_service_bytes_recursive": [blk("read", s.block_read_bytes), blk("write", s.block_write_bytes)]},
        "networks": {"eth0": {
            "rx_bytes": s.net_rx_bytes, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": s.net_tx_bytes, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }},
        "storage_stats": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_what_the_docker_cli_reads() {
        let sample = StatsSample {
            cpu_ns: 2_000,
            system_ns: 10_000,
            online_cpus: 2,
            memory_bytes: 5 << 20,
            memory_limit_bytes: 64 << 20,
            pids: 3,
            block_read_bytes: 7,
            block_write_bytes: 9,
            net_rx_bytes: 11,
            net_tx_bytes: 13,
        };
        let now = Reading {
            sample,
            at: "t2".into(),
        };
        let pre = Reading {
            sample: StatsSample {
                cpu_ns: 1_000,
                system_ns: 5_000,
                ..Default::default()
            },
            at: "t1".into(),
        };
        let d = document("abc", "/web", &now, Some(&pre));
        assert_eq!(d["cpu_stats"]["cpu_usage"]["total_usage"], 2_000);
        assert_eq!(d["precpu_stats"]["system_cpu_usage"], 5_000);
        assert_eq!(d["memory_stats"]["limit"], 64 << 20);
        assert_eq!(d["pids_stats"]["current"], 3);
        assert_eq!(d["blkio_stats"]["io_service_bytes_recursive"][1]["op"], "write");
        assert_eq!(d["networks"]["eth0"]["tx_bytes"], 13);
        assert_eq!(d["preread"], "t1");
        let first = document("abc", "/web", &now, None);
        assert!(first["precpu_stats"]["system_cpu_usage"].is_null());
    }
}
