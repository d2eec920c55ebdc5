//! The API contract as data: every route with its parameters and bodies. The
//! router is built from this table and `api/openapi.json` is generated from
//! it (`tests/schema.rs` fails when the file is stale), so the documented API
//! is the served one.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::wire::*;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a route answers with.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// One JSON document.
    Json(SchemaFn),
    /// Newline-delimited JSON, one item per line, streamed.
    Ndjson(SchemaFn),
    /// `101 Switching Protocols` to a stdio stream (see `wire::exec_frame`)
    /// ending with this JSON frame; or, without an upgrade, one JSON document.
    Stdio { end: SchemaFn, plain: SchemaFn },
}

/// A path or query parameter: name, where (`path` or `query`), description.
pub type Param = (&'static str, &'static str, &'static str);

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub request: Option<SchemaFn>,
    pub response: Body,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/v1/version",
        summary: "daemon version, pid and root",
        params: &[],
        request: None,
        response: Body::Json(schema::<VersionInfo>),
    },
    Route {
        method: "post",
        path: "/v1/apply",
        summary: "validate manifests, then store them and reconcile (or only plan, with dry_run)",
        params: &[],
        request: Some(schema::<ApplyRequest>),
        response: Body::Json(schema::<ApplyResponse>),
    },
    Route {
        method: "post",
        path: "/v1/delete",
        summary: "delete what manifests define, or kind/name keys",
        params: &[],
        request: Some(schema::<DeleteRequest>),
        response: Body::Json(schema::<DeleteResponse>),
    },
    Route {
        method: "get",
        path: "/v1/objects",
        summary: "objects with their status",
        params: &[
            ("kind", "query", "image, container, network or volume"),
            ("name", "query", "one object's name"),
        ],
        request: None,
        response: Body::Json(schema::<Vec<ObjectView>>),
    },
    Route {
        method: "get",
        path: "/v1/objects/{kind}/{name}",
        summary: "spec, observed state and recent events of one object",
        params: &[("kind", "path", "object kind"), ("name", "path", "object name")],
        request: None,
        response: Body::Json(schema::<Description>),
    },
    Route {
        method: "post",
        path: "/v1/wait",
        summary: "wait until objects are ready, one failed, or the timeout",
        params: &[],
        request: Some(schema::<WaitRequest>),
        response: Body::Json(schema::<WaitResponse>),
    },
    Route {
        method: "get",
        path: "/v1/logs/{name}",
        summary: "a container's log lines; with follow, until it stops",
        params: &[
            ("name", "path", "container name"),
            ("follow", "query", "keep streaming while the container runs"),
            ("tail", "query", "only the last N lines (of the current file)"),
            ("since", "query", "only lines at or after: RFC 3339, unix seconds, or a duration before now (10m)"),
            ("until", "query", "only lines at or before, as since"),
        ],
        request: None,
        response: Body::Ndjson(schema::<LogLine>),
    },
    Route {
        method: "post",
        path: "/v1/run",
        summary: "create and start a container; streams its output and exit unless detached",
        params: &[],
        request: Some(schema::<RunRequest>),
        response: Body::Ndjson(schema::<RunEvent>),
    },
    Route {
        method: "post",
        path: "/v1/create",
        summary: "create a container without starting it (`start` starts it)",
        params: &[],
        request: Some(schema::<RunRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/exec/{name}",
        summary: "run a process in a running container; with `Upgrade: berth-stdio` the connection carries its stdio, else (detach) answers with its pid",
        params: &[("name", "path", "container name")],
        request: Some(schema::<ExecRequest>),
        response: Body::Stdio {
            end: schema::<ExecExit>,
            plain: schema::<ExecStarted>,
        },
    },
    Route {
        method: "post",
        path: "/v1/attach/{name}",
        summary: "with `Upgrade: berth-stdio`, the connection carries the stdio of a running container with a tty; ctrl-p ctrl-q detaches",
        params: &[("name", "path", "container name")],
        request: Some(schema::<AttachRequest>),
        response: Body::Stdio {
            end: schema::<ExecExit>,
            plain: schema::<ExecExit>,
        },
    },
    Route {
        method: "post",
        path: "/v1/stop/{name}",
        summary: "SIGTERM, then SIGKILL after the container's grace period",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<StopResponse>),
    },
    Route {
        method: "post",
        path: "/v1/start/{name}",
        summary: "start a stopped container again (lifts a stop by hand)",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/restart/{name}",
        summary: "stop (grace period, then SIGKILL) and start a container",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/kill/{name}",
        summary: "send a signal to a container's init (KILL and TERM stop it by hand)",
        params: &[("name", "path", "container name")],
        request: Some(schema::<KillRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/networks/connect",
        summary: "join a running container (made by run or create) to a network",
        params: &[],
        request: Some(schema::<NetworkConnectRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/networks/disconnect",
        summary: "take a container (made by run or create) off a network",
        params: &[],
        request: Some(schema::<NetworkDisconnectRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/pause/{name}",
        summary: "freeze a container's processes (cgroup freezer); kept until unpause",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/rename/{name}",
        summary: "rename an imperative container, running or not (its runtime id stays)",
        params: &[("name", "path", "container name")],
        request: Some(schema::<crate::wire::RenameRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/update/{name}",
        summary: "change an imperative container's limits and restart policy in place (same process), as docker update",
        params: &[("name", "path", "container name")],
        request: Some(schema::<crate::wire::UpdateRequest>),
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/unpause/{name}",
        summary: "thaw a paused container",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<VerbResponse>),
    },
    Route {
        method: "post",
        path: "/v1/stats",
        summary: "one reading of the counters of the named containers (every running one when none is named)",
        params: &[],
        request: Some(schema::<StatsRequest>),
        response: Body::Json(schema::<Vec<ContainerStats>>),
    },
    Route {
        method: "post",
        path: "/v1/cp/{name}",
        summary: "copy between a running container and the host (no path can leave the container's root)",
        params: &[("name", "path", "container name")],
        request: Some(schema::<CopyRequest>),
        response: Body::Json(schema::<CopyResponse>),
    },
    Route {
        method: "get",
        path: "/v1/top/{name}",
        summary: "a running container's processes",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<TopResponse>),
    },
    Route {
        method: "get",
        path: "/v1/inspect/{name}",
        summary: "one container in full: state, pid, config, the runtime's process and mounts",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<ContainerInspect>),
    },
    Route {
        method: "get",
        path: "/v1/events",
        summary: "recent events, oldest first",
        params: &[("after", "query", "only events with a larger id")],
        request: None,
        response: Body::Json(schema::<Vec<Event>>),
    },
    Route {
        method: "post",
        path: "/v1/images/pull",
        summary: "pull an image from its registry; streams progress, the last line is done or error",
        params: &[],
        request: Some(schema::<PullRequest>),
        response: Body::Ndjson(schema::<PullProgress>),
    },
    Route {
        method: "get",
        path: "/v1/images",
        summary: "pulled images with their references",
        params: &[(
            "reference",
            "query",
            "only the image this reference or id names (an empty list when none)",
        )],
        request: None,
        response: Body::Json(schema::<Vec<ImageListItem>>),
    },
    Route {
        method: "post",
        path: "/v1/images/remove",
        summary:
            "remove a reference, and the image with its last one (refused while a container uses it, unless force)",
        params: &[],
        request: Some(schema::<RemoveImageRequest>),
        response: Body::Json(schema::<RemoveImageResponse>),
    },
    Route {
        method: "post",
        path: "/v1/images/tag",
        summary: "make a reference name an image",
        params: &[],
        request: Some(schema::<TagRequest>),
        response: Body::Json(schema::<ImageListItem>),
    },
    Route {
        method: "post",
        path: "/v1/images/push",
        summary: "push a local image to a registry",
        params: &[],
        request: Some(schema::<PushRequest>),
        response: Body::Json(schema::<PushResponse>),
    },
    Route {
        method: "post",
        path: "/v1/images/prune",
        summary: "remove images no reference names and no container uses, then unused blobs and snapshots",
        params: &[],
        request: None,
        response: Body::Json(schema::<PruneResponse>),
    },
    Route {
        method: "post",
        path: "/v1/images/save",
        summary: "write images into a tar on the daemon's host (OCI layout plus Docker's manifest.json, or OCI only)",
        params: &[],
        request: Some(schema::<SaveRequest>),
        response: Body::Json(schema::<serde_json::Value>),
    },
    Route {
        method: "post",
        path: "/v1/images/load",
        summary: "load a docker save or OCI archive from the daemon's host",
        params: &[],
        request: Some(schema::<LoadRequest>),
        response: Body::Json(schema::<LoadResponse>),
    },
    Route {
        method: "post",
        path: "/v1/build",
        summary: "build an image from a Dockerfile in a context directory on the daemon's host; streams the steps, the last line is tagged, built or error",
        params: &[],
        request: Some(schema::<BuildRequest>),
        response: Body::Ndjson(schema::<BuildEvent>),
    },
    Route {
        method: "post",
        path: "/v1/builder/prune",
        summary: "remove the build cache and the layers only it kept",
        params: &[],
        request: None,
        response: Body::Json(schema::<BuilderPruneResponse>),
    },
    Route {
        method: "post",
        path: "/v1/images/commit",
        summary: "a container's changes (deletions included) as a new layer on a new image",
        params: &[],
        request: Some(schema::<CommitRequest>),
        response: Body::Json(schema::<ImageListItem>),
    },
    Route {
        method: "post",
        path: "/v1/images/inspect",
        summary: "one image in full: references, config, layers, chain IDs, history",
        params: &[],
        request: Some(schema::<InspectImageRequest>),
        response: Body::Json(schema::<ImageDetail>),
    },
    Route {
        method: "post",
        path: "/v1/login",
        summary: "check credentials against a registry and keep them (in the daemon's docker config.json)",
        params: &[],
        request: Some(schema::<LoginRequest>),
        response: Body::Json(schema::<serde_json::Value>),
    },
    Route {
        method: "post",
        path: "/v1/logout",
        summary: "forget a registry's credentials",
        params: &[],
        request: Some(schema::<LogoutRequest>),
        response: Body::Json(schema::<LogoutResponse>),
    },
    Route {
        method: "post",
        path: "/v1/export",
        summary: "write a container's filesystem (its changes over its image) as a tar on the daemon's host",
        params: &[],
        request: Some(schema::<ExportRequest>),
        response: Body::Json(schema::<serde_json::Value>),
    },
    Route {
        method: "get",
        path: "/v1/system/df",
        summary: "disk use of images, containers' writable layers and volumes",
        params: &[],
        request: None,
        response: Body::Json(schema::<DiskUsage>),
    },
    Route {
        method: "post",
        path: "/v1/images/import",
        summary: "a root filesystem tar on the daemon's host as a one-layer image",
        params: &[],
        request: Some(schema::<ImportImageRequest>),
        response: Body::Json(schema::<ImageListItem>),
    },
    Route {
        method: "post",
        path: "/v1/docker/inspect",
        summary: "one container, image, network or volume as `docker inspect` shows it (Docker's field names)",
        params: &[],
        request: Some(schema::<crate::commands::docker_inspect::InspectRequest>),
        response: Body::Json(schema::<crate::commands::docker_inspect::Document>),
    },
    Route {
        method: "post",
        path: "/v1/docker/containers",
        summary: "containers as `docker ps` lists them (Docker's field names and filters), newest first",
        params: &[],
        request: Some(schema::<crate::commands::docker_list::ListContainersRequest>),
        response: Body::Json(schema::<Vec<crate::commands::docker_list::ContainerSummary>>),
    },
    Route {
        method: "post",
        path: "/v1/docker/wait/{name}",
        summary: "block until a container is not running, then answer its exit code (Docker's wait)",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<crate::commands::docker_ops::WaitExit>),
    },
    Route {
        method: "get",
        path: "/v1/docker/diff/{name}",
        summary: "a container's filesystem changes against its image (Kind 0 changed, 1 added, 2 deleted)",
        params: &[("name", "path", "container name")],
        request: None,
        response: Body::Json(schema::<Vec<crate::commands::docker_ops::Change>>),
    },
    Route {
        method: "post",
        path: "/v1/docker/containers/prune",
        summary: "remove the stopped containers that run and create made",
        params: &[],
        request: None,
        response: Body::Json(schema::<crate::commands::docker_ops::PruneReport>),
    },
    Route {
        method: "post",
        path: "/v1/docker/networks/prune",
        summary: "remove the networks that network create made and no container uses",
        params: &[],
        request: None,
        response: Body::Json(schema::<crate::commands::docker_ops::PruneReport>),
    },
    Route {
        method: "get",
        path: "/v1/revisions",
        summary: "recorded revisions of applies, newest first",
        params: &[("source", "query", "only this source's (e.g. `git:site`, `apply:/srv/stack`)")],
        request: None,
        response: Body::Json(schema::<Vec<RevisionView>>),
    },
    Route {
        method: "post",
        path: "/v1/rollback",
        summary: "apply a recorded revision's manifests again (or, with dryRun, show what that would change)",
        params: &[],
        request: Some(schema::<RollbackRequest>),
        response: Body::Json(schema::<ApplyResponse>),
    },
    Route {
        method: "get",
        path: "/v1/sources",
        summary: "git sources with the commit each runs and its last error",
        params: &[],
        request: None,
        response: Body::Json(schema::<Vec<SourceView>>),
    },
    Route {
        method: "post",
        path: "/v1/sources",
        summary: "add a git source (fetched and applied by the daemon)",
        params: &[],
        request: Some(schema::<GitSourceSpec>),
        response: Body::Json(schema::<SourceView>),
    },
    Route {
        method: "post",
        path: "/v1/sources/{name}/sync",
        summary: "fetch a git source now and apply its commit if new (or failed before)",
        params: &[("name", "path", "the source")],
        request: None,
        response: Body::Json(schema::<SyncResponse>),
    },
    Route {
        method: "post",
        path: "/v1/sources/{name}/suspend",
        summary: "stop following a git source's commits; what runs stays",
        params: &[("name", "path", "the source")],
        request: None,
        response: Body::Json(schema::<SourceView>),
    },
    Route {
        method: "post",
        path: "/v1/sources/{name}/resume",
        summary: "follow a suspended git source again",
        params: &[("name", "path", "the source")],
        request: None,
        response: Body::Json(schema::<SourceView>),
    },
    Route {
        method: "post",
        path: "/v1/sources/{name}/remove",
        summary: "remove a git source (with prune, also what it applied)",
        params: &[
            ("name", "path", "the source"),
            ("prune", "query", "true: delete the objects it applied"),
        ],
        request: None,
        response: Body::Json(schema::<SourceView>),
    },
    Route {
        method: "get",
        path: "/v1/sources/{name}/diff",
        summary: "fetch a git source and show what applying its newest commit would change",
        params: &[("name", "path", "the source")],
        request: None,
        response: Body::Json(schema::<SyncResponse>),
    },
];

/// The OpenAPI 3.0 document of [`ROUTES`].
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error = generator.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for route in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        let params: Vec<Value> = route
            .params
            .iter()
            .map(|(name, place, description)| {
                json!({"name": name, "in": place, "required": *place == "path", "description": description,
                       "schema": {"type": "string"}})
            })
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(request) = route.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": request(&mut generator)}}}),
            );
        }
        let (media, body) = match route.response {
            Body::Json(f) => ("application/json", f(&mut generator)),
            Body::Ndjson(f) => ("application/x-ndjson", f(&mut generator)),
            Body::Stdio { plain, .. } => ("application/json", plain(&mut generator)),
        };
        let mut responses = json!({
            "200": {"description": "success", "content": {media: {"schema": body}}},
            "default": {"description": "an error", "content": {"application/json": {"schema": error}}}
        });
        if let Body::Stdio { end, .. } = route.response {
            responses["101"] = json!({
                "description": "the connection carries stdin to the server and frames to the client: \
                    8 bytes (stream 1 stdout, 2 stderr, 3 end; 0, 0, 0; length, big-endian u32), then the payload; \
                    the end frame holds this JSON",
                "content": {"application/vnd.berth.stdio": {"schema": end(&mut generator)}}
            });
        }
        op.insert("responses".into(), responses);
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.method] = Value::Object(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "berth daemon API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Served on a unix socket (default /run/berth/berth.sock)."},
        "paths": paths,
        "components": {"schemas": generator.take_definitions(true)}
    })
}
