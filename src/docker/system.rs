//! `/_ping`, `/version` and `/info`: what a client asks first, to pick the
//! API version and to learn what kind of host it talks to.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{
    LocalNodeState, SwarmInfo, SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemVersion,
    SystemVersionComponents, SystemVersionPlatform,
};

use super::{json, Result, Shared, API_VERSION, MIN_API_VERSION};
use crate::commands;

/// `GET /_ping`: `OK`, with the version headers every answer carries.
pub async fn ping() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
        ],
        "OK",
    )
        .into_response()
}

/// `HEAD /_ping`: headers only. The Go client reads no body here and
/// breaks on one, so this is its own handler rather than GET's body cut.
pub async fn ping_head() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONTENT_LENGTH, "0"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
        ],
    )
        .into_response()
}

/// Go's name for this machine's architecture (`GOARCH`), which clients
/// compare with image platforms.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn kernel_version() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `GET /version`.
pub async fn version() -> Response {
    let engine_version = env!("CARGO_PKG_VERSION").to_string();
    let details = HashMap::from([
        ("ApiVersion".to_string(), API_VERSION.to_string()),
        ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
        ("Os".to_string(), "linux".to_string()),
        ("Arch".to_string(), go_arch().to_string()),
        ("KernelVersion".to_string(), kernel_version()),
        ("Experimental".to_string(), "false".to_string()),
    ]);
    let v = SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: format!("berth {engine_version}"),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: engine_version.clone(),
            details: Some(details),
        }]),
        version: Some(engine_version),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some(go_arch().into()),
        kernel_version: Some(kernel_version()),
        experimental: Some(false),
        build_time: None,
    };
    json(StatusCode::OK, &v)
}

/// `GET /info`: counts from the engine, the host's facts from /proc.
/// `Swarm.LocalNodeState` is `inactive`, which docker-compose checks.
pub async fn info(State(state): State<Shared>) -> Result<Response> {
    let engine = &state.engine;
    let containers = commands::docker_list::list(
        engine,
        &commands::docker_list::ListContainersRequest {
            all: true,
            ..Default::default()
        },
    )?;
    let count = |s: &str| containers.iter().filter(|c| c.state == s).count() as i64;
    let images = commands::images::list(engine, None)?;
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    let info = SystemInfo {
        id: Some(format!("berth:{}", engine.root().display())),
        containers: Some(containers.len() as i64),
        containers_running: Some(count("running")),
        containers_paused: Some(count("paused")),
        containers_stopped: Some(containers.len() as i64 - count("running") - count("paused")),
        images: Some(images.len() as i64),
        // Clients switch on overlay2 (an overlay of layer snapshots, as berth's).
        driver: Some("overlay2".into()),
        docker_root_dir: Some(engine.root().display().to_string()),
        logging_driver: Some("local".into()),
        cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if cgroup_v2 {
            SystemInfoCgroupVersionEnum::_2
        } else {
            SystemInfoCgroupVersionEnum::_1
        }),
        kernel_version: Some(kernel_version()),
        operating_system: Some(pretty),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get()) as i64),
        mem_total: Some(mem_total()),
        name: Some(read_trimmed("/proc/sys/kernel/hostname")),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        experimental_build: Some(false),
        swarm: Some(SwarmInfo {
            local_node_state: Some(LocalNodeState::INACTIVE),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(json(StatusCode::OK, &info))
}

/// Bytes of memory the host has (`MemTotal` of /proc/meminfo).
fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
