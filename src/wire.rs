//! Wire types: the request and response bodies of the REST API, shared by
//! `api` (server), `client` and `cli`. A low module: it knows manifests'
//! `Source` and `Diagnostic` and nothing above it. JSON keys are camelCase,
//! as in the manifests and as `kubectl -o json` prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use libcontainer::oci_spec::runtime as oci;

use crate::manifest::{Diagnostic, Kind, Source, Spec};

/// What kind of failure an error is; the API maps each to one HTTP status
/// (`api::status_of`), and the client maps it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The named object, source or container does not exist.
    NotFound,
    /// The request contradicts the current state (in use, already exists).
    Conflict,
    /// The request itself is malformed or names something impossible.
    Invalid,
    /// The engine cannot do it right now (a container failed to start).
    Unavailable,
    /// A bug or a broken host: the state database, the filesystem.
    Internal,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    pub kind: ErrorKind,
}

/// `kind/name`, as kubectl spells object references (`container/web`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, name: impl Into<String>) -> ObjectRef {
        ObjectRef {
            kind,
            name: name.into(),
        }
    }

    /// Parses `kind/name`; the kind is case-insensitive and may be plural.
    pub fn parse(s: &str) -> Option<ObjectRef> {
        let (k, n) = s.split_once('/')?;
        if n.is_empty() {
            return None;
        }
        Some(ObjectRef::new(Kind::parse_loose(k)?, n))
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str().to_ascii_lowercase(), self.name)
    }
}

/// Whether an object is where it should be, for `apply --wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum StatusKind {
    /// Running, Completed, or present (images, volumes).
    Ready,
    /// On its way: pending, restarting, being replaced.
    Progressing,
    /// Failed, or exited for good with an error.
    Failed,
}

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// Exit code, or 128 + signal number.
    pub code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Unix time in milliseconds.
    pub finished_at: i64,
}

/// One object as `get` shows it: desired and live state joined with what the
/// kernel says right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    pub kind: String,
    pub name: String,
    /// The source that defines it (a watched file, an apply set, `run`); none if only live.
    pub source: Option<String>,
    /// `Running`, `Exited(1)`, `Completed`, `Restarting`, `Pending: …`, `Failed: …`, `Ready`, `Deleting`.
    pub status: String,
    pub state: StatusKind,
    pub restarts: u32,
    /// When the live object was made (unix ms); a restart keeps it.
    pub created_at: Option<i64>,
    /// When a running container's init started (unix ms): `ps`'s "Up".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub pid: Option<i32>,
    pub image: Option<String>,
    pub exit: Option<ExitInfo>,
    /// The desired spec, or the live one when it is being deleted.
    pub spec: Option<Spec>,
    /// Where it was defined: file:line.
    pub origin: Option<String>,
    /// Whether the live object was made from the current desired spec.
    pub up_to_date: bool,
    pub detail: Option<String>,
    /// A running container's healthcheck state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
    /// The desired object's `metadata.labels` (`volume ls -f label=…`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A container's health: `starting`, `healthy` or `unhealthy`, with the
/// last checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthLog>,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthLog {
    /// Unix ms.
    pub start: i64,
    pub end: i64,
    /// -1 when it could not run or timed out.
    pub exit_code: i32,
    /// The first 4 KiB of its stdout and stderr.
    pub output: String,
}

/// Something that happened to an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    /// Unix time in milliseconds.
    pub time: i64,
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
}

/// `describe`: the view plus recent events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub view: ObjectView,
    pub events: Vec<Event>,
    pub source_error: Option<String>,
}

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogLine {
    /// RFC 3339 UTC.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    /// Names the set, so `prune` removes only what this set owned (e.g. `apply:/srv/stack`).
    pub source_id: String,
    pub sources: Vec<Source>,
    #[serde(default)]
    pub prune: bool,
    /// Plan only (`berth diff`).
    #[serde(default)]
    pub dry_run: bool,
    /// The client's working directory: manifest files named relative to it
    /// (and stdin) have their relative paths (an Image's build context)
    /// resolved from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// Manifest problems; when non-empty nothing was changed.
    pub errors: Vec<Diagnostic>,
    /// Planned (dry run) or done actions on this set's objects, one line each with its reason.
    pub actions: Vec<String>,
    /// This set's actions that failed, with the reason (the CLI exits non-zero).
    pub failed: Vec<String>,
    /// This set's actions that wait on another object, with what they wait for.
    #[serde(default)]
    pub pending: Vec<String>,
    pub revision: Option<i64>,
    /// The objects of the set, as `kind/name`, for `--wait`.
    pub objects: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRequest {
    /// Delete what these manifests define.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Or these `kind/name` keys.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResponse {
    pub errors: Vec<Diagnostic>,
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    /// Deletes of these objects that failed, with the reason.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitRequest {
    /// `kind/name` keys; all objects when empty.
    #[serde(default)]
    pub keys: Vec<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitResponse {
    pub ready: bool,
    /// Objects not ready yet, with their status.
    pub waiting: Vec<String>,
    /// Objects that failed, with their status.
    pub failed: Vec<String>,
}

/// The network `berth run` joins when told none, made on first use (as
/// Docker's `bridge`).
pub const DEFAULT_NETWORK: &str = "bridge";

/// `run` and `create`: the container as a spec (the CLI turns Docker's
/// flags into it, as the docker CLI turns them into Config and HostConfig),
/// validated by the daemon as a manifest's is, and how the run is driven.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// A name made up by the daemon when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub spec: crate::manifest::ContainerSpec,
    /// The container's labels (`--label`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Remove the container when it exits (`--rm`).
    #[serde(default)]
    pub rm: bool,
    /// Answer once it started, without its output (`-d`).
    #[serde(default)]
    pub detach: bool,
    /// The client attaches next (`run` without `-d`; without -t/-i the
    /// attach carries the output alone, byte-exact): the init starts once
    /// it did, and its exit waits for it (`--rm` too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach: bool,
    /// The keys the attach will detach with: checked before the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach_keys: Option<String>,
    /// Local driver options of named volumes the run makes on first use
    /// (`--mount …,volume-opt=K=V`), by volume; a volume that exists keeps
    /// its own, as Docker's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_opts: BTreeMap<String, BTreeMap<String, String>>,
}

/// One line of the `run` stream (newline-delimited JSON).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RunEvent {
    Started {
        name: String,
    },
    Log(LogLine),
    Exited {
        code: i32,
        oom_killed: bool,
    },
    Error {
        message: String,
        /// The exit code `berth run` exits with (127: the command was not
        /// found, 126: it cannot be executed); 125 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

/// Body of `POST /v1/exec/{name}`: a process in a running container. Without
/// `detach` the request asks for an upgrade (`Upgrade: berth-stdio`) and the
/// connection then carries stdin from the client (raw bytes; a half-close is
/// EOF) and [`ExecFrame`]s to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// KEY=VALUE, over the container's environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// `USER`, `USER:GROUP`, `uid` or `uid:gid`; names are looked up in
    /// the container's /etc/passwd and /etc/group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Forward stdin.
    #[serde(default)]
    pub interactive: bool,
    /// Start it and answer at once with [`ExecStarted`].
    #[serde(default)]
    pub detach: bool,
    /// Give it a pty. The client's side of the connection is then framed
    /// too: stream 0 is input, [`exec_frame::RESIZE`] a new window size.
    #[serde(default)]
    pub tty: bool,
    /// The pty's first size (rows, columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<u16>,
    /// With a tty: the keys that detach, as Docker's `--detach-keys`
    /// (`ctrl-p,ctrl-q`, the default; `ctrl-<a-z@[\\]^_>` or one character each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach_keys: Option<String>,
}

/// `POST /v1/attach/{name}` (with `Upgrade: berth-stdio`): the stdio of a
/// container with a tty, framed as an exec with a tty (ctrl-p ctrl-q
/// detaches, exit code 0), or of one with an open stdin and no tty, as an
/// `exec -i`: raw stdin up (a half-close is its EOF), stdout and stderr in
/// frames. The end frame has the container's exit code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachRequest {
    /// The pty's size now (rows, columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<u16>,
    /// The keys that detach (see [`ExecRequest::detach_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach_keys: Option<String>,
}

/// Answer of a detached exec.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecStarted {
    /// Host pid of the process.
    pub pid: i32,
}

/// The frames of an exec connection, as Docker multiplexes attach streams:
/// an 8-byte header (stream, 0, 0, 0, length as big-endian u32), then the
/// payload. Stream 1 is stdout, 2 stderr, 3 the end: an [`ExecExit`] in JSON.
pub mod exec_frame {
    /// The `Upgrade` protocol name of stdio connections.
    pub const PROTOCOL: &str = "berth-stdio";
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const EXIT: u8 = 3;
    /// Client to server, with a tty: input bytes.
    pub const STDIN: u8 = 0;
    /// Client to server, with a tty: rows and columns, big-endian u16 each.
    pub const RESIZE: u8 = 4;

    pub fn header(stream: u8, len: usize) -> [u8; 8] {
        let n = (len as u32).to_be_bytes();
        [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
    }
}

/// The last frame of an exec connection.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecExit {
    /// The process's exit code (128 + signal); 127/126 when its command is
    /// missing or cannot be run.
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/kill/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KillRequest {
    /// `KILL` (the default), `TERM`, `SIGHUP`, `9`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// Body of `POST /v1/networks/connect`: a container made by `run` or
/// `create` joins a network while it runs (`berth network connect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConnectRequest {
    pub network: String,
    pub container: String,
    /// More names it answers to on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed IPv4 address in the network's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
}

/// Body of `POST /v1/networks/disconnect` (`berth network disconnect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkDisconnectRequest {
    pub network: String,
    pub container: String,
    /// Go on when removing its interface fails.
    #[serde(default)]
    pub force: bool,
}

/// Body of `POST /v1/rename/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameRequest {
    /// The container's new name.
    pub name: String,
}

/// Body of `POST /v1/update/{name}` (`berth update`): the limits to set
/// (each one given replaces the container's; those left out stay) and the
/// restart policy, if given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default)]
    pub resources: crate::manifest::Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<crate::manifest::RestartPolicy>,
}

/// Answer of the lifecycle verbs (`start`, `restart`, `kill`, `pause`, `unpause`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerbResponse {
    pub container: String,
    pub verb: String,
}

/// Body of `POST /v1/stats`: the named containers, or every running one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsRequest {
    #[serde(default)]
    pub names: Vec<String>,
}

/// One reading of a container's counters; CPU % is the difference of two
/// readings (`cpuNs` over `systemNs`, times `onlineCpus`). The runtime reads
/// it from the cgroup and /proc; the API sends it as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsSample {
    /// CPU time the container's processes used, in nanoseconds.
    pub cpu_ns: u64,
    /// CPU time the whole host used (all CPUs, from /proc/stat), in nanoseconds.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use without the reclaimable page cache (as `docker stats`).
    pub memory_bytes: u64,
    /// The limit, or the host's memory when there is none.
    pub memory_limit_bytes: u64,
    pub pids: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    /// Bytes through the container's network interfaces other than `lo`.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// A running container's [`StatsSample`], by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    #[serde(flatten)]
    pub sample: StatsSample,
}

/// Answer of `GET /v1/top/{name}`: the container's processes.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopResponse {
    pub processes: Vec<TopProcess>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopProcess {
    /// Host pid.
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub command: String,
}

/// Answer of `GET /v1/inspect/{name}`: one container, in full.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInspect {
    pub name: String,
    pub image: Option<String>,
    /// As `get` shows it.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    /// Host pid of the init, while it runs.
    pub pid: Option<i32>,
    pub exit: Option<ExitInfo>,
    pub restarts: u32,
    pub created_at: Option<i64>,
    pub source: Option<String>,
    pub log_path: String,
    /// The container's spec as berth was given it.
    pub config: Option<Spec>,
    /// What the runtime runs: the OCI spec's process, hostname, mounts,
    /// namespaces and cgroup path (while the container has a bundle).
    pub runtime: Option<RuntimeView>,
    /// Its labels: the image's, under the manifest's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The image's `ExposedPorts` (`80/tcp`); published only by `ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// The ports its last start published, ephemeral host ports chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published_ports: Vec<crate::manifest::PortMapping>,
    /// Anonymous volumes made for the image's `Volumes`: `{name, path}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<AnonymousVolume>,
}

/// An anonymous volume of a container (see [`ContainerInspect`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnonymousVolume {
    pub name: String,
    pub path: String,
}

/// Body of `POST /v1/cp/{name}`: a copy between a running container and the
/// host. Both paths are absolute; the host path is the daemon's (same host).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyRequest {
    /// Host to container when true, container to host otherwise.
    pub into_container: bool,
    pub container_path: String,
    pub host_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyResponse {
    /// Bytes of file content copied.
    pub bytes: u64,
}

/// Answer of `POST /v1/stop/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopResponse {
    pub stopped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub version: String,
    pub root: String,
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_parse_loosely_as_kubectl_does() {
        assert_eq!(
            ObjectRef::parse("containers/web"),
            Some(ObjectRef::new(Kind::Container, "web"))
        );
        assert_eq!(
            ObjectRef::parse("Image/busybox"),
            Some(ObjectRef::new(Kind::Image, "busybox"))
        );
        assert_eq!(ObjectRef::parse("web"), None);
        assert_eq!(ObjectRef::parse("container/"), None);
        assert_eq!(ObjectRef::parse("pod/web"), None);
    }

    #[test]
    fn views_serialize_with_camel_case_keys_as_kubectl_prints_them() {
        let view = ObjectView {
            kind: "Container".into(),
            name: "web".into(),
            source: None,
            status: "Running".into(),
            state: StatusKind::Ready,
            restarts: 0,
            created_at: Some(1),
            started_at: None,
            pid: None,
            image: None,
            exit: None,
            spec: None,
            origin: None,
            up_to_date: true,
            detail: None,
            health: None,
            labels: Default::default(),
        };
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.contains("\"createdAt\":1"), "{json}");
        assert!(json.contains("\"upToDate\":true"), "{json}");
        assert!(!json.contains('_'), "{json}");
    }

    #[test]
    fn a_views_spec_keeps_its_kind_beside_it_as_before() {
        // The shape the CLI and scripts read (`.spec.spec.command`).
        let wire = serde_json::json!({"kind": "Container",
            "spec": {"image": "bb", "command": ["sleep", "1"], "restartPolicy": "always"}});
        let spec: Spec = serde_json::from_value(wire.clone()).unwrap();
        assert!(matches!(&spec, Spec::Container(c) if c.command == ["sleep", "1"]));
        assert_eq!(serde_json::to_value(&spec).unwrap(), wire);
    }

    #[test]
    fn an_image_config_reads_nulls_and_odd_set_values_and_writes_sets_as_docker_does() {
        let blob = serde_json::json!({"Cmd": null, "Env": null, "ExposedPorts": {"80/tcp": {}, "53/udp": null},
            "Volumes": {"/data": {"x": 1}}, "Shell": ["/bin/bash", "-c"], "Hostname": "", "Other": 1});
        let c: ImageConfig = serde_json::from_value(blob).unwrap();
        assert!(c.cmd.is_empty() && c.env.is_empty());
        assert_eq!(c.shell, ["/bin/bash", "-c"]);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"ExposedPorts": {"53/udp": {}, "80/tcp": {}}, "Volumes": {"/data": {}},
                "Shell": ["/bin/bash", "-c"]})
        );
        // Hostile: a set that is not a map is refused, not taken for empty.
        assert!(serde_json::from_value::<ImageConfig>(serde_json::json!({"Volumes": ["/data"]})).is_err());
    }

    #[test]
    fn an_inspect_answer_reads_back_on_the_client_side() {
        // The CLI decodes what the daemon encodes (attach reads `config`),
        // including a runtime view of a spec with nothing in it.
        let spec: oci::Spec = serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2",
            "hostname": "web", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"cgroupsPath": "/berth/web", "namespaces": [{"type": "pid"}]}}))
        .unwrap();
        let inspect = ContainerInspect {
            name: "web".into(),
            image: None,
            status: "Running".into(),
            running: true,
            paused: false,
            pid: Some(7),
            exit: None,
            restarts: 0,
            created_at: None,
            source: None,
            log_path: "/l".into(),
            config: Some(
                serde_json::from_value(serde_json::json!({"kind": "Container", "spec": {"image": "x", "tty": true}}))
                    .unwrap(),
            ),
            runtime: Some(RuntimeView::of(&spec)),
            labels: BTreeMap::new(),
            exposed_ports: vec![],
            anonymous_volumes: vec![],
            published_ports: vec![],
        };
        let json = serde_json::to_value(&inspect).unwrap();
        assert_eq!(json["runtime"]["hostname"], "web");
        assert_eq!(json["runtime"]["cgroupsPath"], "/berth/web");
        assert_eq!(json["runtime"]["namespaces"][0]["type"], "pid");
        assert_eq!(json["runtime"]["process"]["args"][0], "sh");
        let back: ContainerInspect = serde_json::from_value(json).unwrap();
        assert_eq!(back.runtime, inspect.runtime);
        let empty = serde_json::to_value(RuntimeView::of(&oci::Spec::default())).unwrap();
        assert!(serde_json::from_value::<RuntimeView>(empty).is_ok());
    }
}

/// `POST /v1/images/pull`: pull a registry reference.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequest {
    pub reference: String,
    /// `os/arch[/variant]`; default `linux/amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One line of a pull's progress stream; the last is `done` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum PullProgress {
    /// The manifest is resolved: its digest and layers (digest, size).
    Resolved {
        digest: String,
        layers: Vec<PullLayer>,
    },
    /// A layer was already in the store.
    Present {
        digest: String,
    },
    /// Bytes of a layer so far.
    Downloading {
        digest: String,
        done: u64,
        total: u64,
    },
    Downloaded {
        digest: String,
    },
    Unpacked {
        digest: String,
    },
    /// The image is in the store under the normalized reference.
    Done {
        reference: String,
        id: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullLayer {
    pub digest: String,
    pub size: u64,
}

/// One pulled image, as `berth images` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageListItem {
    /// Normalized references naming it (none: dangling).
    pub references: Vec<String>,
    /// `sha256:` digest of its config.
    pub id: String,
    pub manifest_digest: String,
    /// Unpacked size of its layers, as `docker images` shows it: the bytes
    /// of their files (not what a pull downloads, which is compressed).
    pub size: u64,
    /// Of `size`, the layers other images have too.
    #[serde(default)]
    pub shared_size: u64,
    pub layers: usize,
    pub platform: String,
    /// Unix millis when it was pulled.
    pub created_at: i64,
}

/// `POST /v1/images/remove`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveImageRequest {
    /// A reference or an id (12+ hex digits).
    pub name: String,
    /// Remove it even while containers use it.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoveImageResponse {
    pub id: String,
    /// Deleted, not only untagged.
    pub deleted: bool,
}

/// `POST /v1/images/tag`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagRequest {
    pub source: String,
    pub target: String,
}

/// `POST /v1/images/push`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    /// A reference or id of a local image.
    pub source: String,
    /// Where to push it; `source` itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushResponse {
    pub reference: String,
    /// The pushed manifest's digest.
    pub digest: String,
}

/// `POST /v1/images/prune`: what was removed.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneResponse {
    /// Ids of the removed images.
    pub removed: Vec<String>,
}

/// `POST /v1/images/save`: write images into a tar on the daemon's host.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SaveRequest {
    /// References or ids.
    pub names: Vec<String>,
    /// Absolute path of the tar to write.
    pub path: String,
    /// `docker` (an OCI layout plus Docker's manifest.json, the default) or `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `POST /v1/images/load`: load a `docker save` or OCI archive on the daemon's host.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadRequest {
    /// Absolute path of the tar (plain or gzip).
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadResponse {
    pub images: Vec<ImageListItem>,
}

/// `POST /v1/images/commit`: a container's changes as a new image.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitRequest {
    pub container: String,
    /// The new image's reference.
    pub reference: String,
}

/// `POST /v1/images/inspect`: one image in full.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetail {
    pub references: Vec<String>,
    pub id: String,
    pub manifest_digest: String,
    pub platform: String,
    /// Unpacked size of its layers, as `berth images` shows it.
    pub size: u64,
    pub created_at: i64,
    /// The config's `config` object (Cmd, Env, Entrypoint, …).
    pub config: ImageConfig,
    pub layers: Vec<PullLayer>,
    /// Chain IDs of its snapshots, bottom first.
    pub chain_ids: Vec<String>,
    pub history: Vec<HistoryItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

/// An image's `config` object (the OCI/Docker image config's `config`):
/// what a container of it runs with. Unknown fields are ignored; `null`
/// (Docker writes `"Cmd": null`) reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `80/tcp` → `{}`: a set, spelt as the image format spells it.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `/data` → `{}`, as `ExposedPorts`.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// The image's HEALTHCHECK, used when a container has none of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ImageHealthcheck>,
    /// Docker's SHELL; kept so that inspect and commit do not lose it.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// Docker's ONBUILD triggers; kept as `Shell`.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

/// Docker's `Healthcheck` in an image config: `Test` is `["NONE"]`,
/// `["CMD", arg…]` or `["CMD-SHELL", command]`; times in nanoseconds (0 =
/// the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageHealthcheck {
    #[serde(deserialize_with = "null_default")]
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

/// The `{}` of a set spelt as a JSON object (`ExposedPorts`, `Volumes`).
/// Reads any value, so that an odd image (`"80/tcp": null`) still loads;
/// always writes `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct Empty {}

impl Serialize for Empty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Empty {})
    }
}

/// JSON `null` as the type's default (Docker writes `"Cmd": null`).
pub(crate) fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What the runtime runs a container with: the parts of its OCI spec
/// (runtime-spec `config.json`) that `inspect` shows. The OCI types have no
/// JSON Schema of their own; the document names the runtime-spec section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeView {
    /// The runtime-spec's `process`.
    #[schemars(schema_with = "oci_object")]
    pub process: Option<oci::Process>,
    pub hostname: Option<String>,
    /// The runtime-spec's `mounts`.
    #[schemars(schema_with = "oci_array")]
    pub mounts: Option<Vec<oci::Mount>>,
    /// The runtime-spec's `linux.namespaces`.
    #[schemars(schema_with = "oci_array")]
    pub namespaces: Option<Vec<oci::LinuxNamespace>>,
    pub cgroups_path: Option<std::path::PathBuf>,
    /// The runtime-spec's `linux.resources`.
    #[schemars(schema_with = "oci_object")]
    pub resources: Option<oci::LinuxResources>,
}

/// A runtime-spec object, or null before the bundle has it.
fn oci_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": ["object", "null"]})
}

/// A runtime-spec list of objects, or null.
fn oci_array(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": ["array", "null"], "items": {"type": "object"}})
}

impl RuntimeView {
    /// The sections `inspect` shows of a container's OCI spec.
    pub fn of(spec: &oci::Spec) -> Self {
        let linux = spec.linux().as_ref();
        RuntimeView {
            process: spec.process().clone(),
            hostname: spec.hostname().clone(),
            mounts: spec.mounts().clone(),
            namespaces: linux.and_then(|l| l.namespaces().clone()),
            cgroups_path: linux.and_then(|l| l.cgroups_path().clone()),
            resources: linux.and_then(|l| l.resources().clone()),
        }
    }
}

/// `POST /v1/images/inspect`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InspectImageRequest {
    /// A reference or an id.
    pub name: String,
}

/// `POST /v1/login`: check credentials and keep them for the registry.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// `host[:port]`.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/logout`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogoutRequest {
    pub registry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutResponse {
    /// Whether credentials were stored for it.
    pub removed: bool,
}

/// `POST /v1/export`: a container's filesystem as a tar on the daemon's host.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    pub container: String,
    /// Absolute path of the tar to write.
    pub path: String,
}

/// `GET /v1/system/df`: disk use by kind, as `docker system df`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    pub images: UsageLine,
    pub containers: UsageLine,
    pub volumes: UsageLine,
    /// Build cache entries (total = active) and the layers only it keeps
    /// (what `builder prune` frees).
    #[serde(default)]
    pub build_cache: UsageLine,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageLine {
    pub total: usize,
    /// Images a container uses; running containers; volumes a container mounts.
    pub active: usize,
    /// Bytes: distinct layer blobs for images; writable layers; volume data.
    pub size: u64,
    /// Bytes that `image prune`, deleting stopped containers, `volume prune` would free.
    pub reclaimable: u64,
}

/// `POST /v1/images/import`: a root filesystem tar on the daemon's host as a
/// one-layer image.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportImageRequest {
    /// Absolute path of the tar (plain, gzip or zstd).
    pub path: String,
    pub reference: String,
    /// The image's Cmd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
}

/// Body of `POST /v1/build`: a Dockerfile build of a context directory on
/// the daemon's host (the CLI unpacks a context given as a tar first).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRequest {
    /// Absolute path of the context directory.
    pub context: String,
    /// The Dockerfile: absolute, or relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub no_cache: bool,
    #[serde(default)]
    pub pull: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `bridge` (the default), `none` or `host`, for every RUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One line of a build's stream (newline-delimited JSON); the last is
/// `built`-then-`tagged`… or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum BuildEvent {
    /// A step starts: `Step 2/5 : RUN make`.
    Step {
        number: usize,
        total: usize,
        instruction: String,
    },
    /// The step's result came from the build cache.
    Cached,
    /// Output of a RUN step, as it comes.
    Output {
        stream: String,
        text: String,
    },
    /// A warning or a note about the build.
    Note {
        message: String,
    },
    /// The step's image.
    StepDone {
        id: String,
    },
    /// The build's image.
    Built {
        id: String,
    },
    Tagged {
        reference: String,
    },
    /// The build failed; nothing was tagged.
    Error {
        message: String,
    },
}

/// Answer of `POST /v1/builder/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuilderPruneResponse {
    pub entries: usize,
    pub reclaimed_bytes: u64,
}

/// Where a recorded revision's manifests came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionOrigin {
    /// `files` (an apply or a watched file), `git` (a git source's commit)
    /// or `rollback` (another revision's manifests applied again).
    pub kind: String,
    /// `files`: SHA-256 over the files' names and contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// `git`: the commit, its author and subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `rollback`: the revision whose manifests were applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<i64>,
    /// The client's working directory at the apply, for relative build contexts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
}

/// One recorded revision, as `berth revisions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    /// The revision's number (one sequence for every source).
    pub id: i64,
    pub source: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub origin: RevisionOrigin,
    /// `applied`, `failed` (with the reason) or `rolled-back`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The manifest files applied.
    pub files: Vec<String>,
    /// What the apply did, in short.
    pub summary: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// The source (`apply:/srv/stack`, `git:NAME`, `file:/etc/berth/manifests/x.yaml`);
    /// none: the source of the newest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The revision to apply again; none: the last good one before the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// Plan only (`berth diff --to N`).
    #[serde(default)]
    pub dry_run: bool,
    /// Why: recorded on the revision rolled back from, which is marked failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A git source, as `berth source add` makes it (and `kind: Source`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceSpec {
    pub name: String,
    /// `file://`, `git://`, `https://` or `ssh://` URL (or a local path).
    pub url: String,
    /// At most one of branch, tag and commit; none: the remote's HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The directory of the repository whose manifests are applied (default: all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How often to fetch, as `30s`, `1m` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// https: a file holding a token, sent as a bearer-style basic credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// https: take the credential for the URL's host from this Docker
    /// config (`auths`, as `docker login` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config: Option<String>,
    /// ssh: the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_file: Option<String>,
}

/// A git source with what it runs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub spec: GitSourceSpec,
    pub suspended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_reason: Option<String>,
    /// The commit whose manifests run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<i64>,
    /// The last fetch's or apply's error, naming the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `source sync` did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    /// The commit fetched.
    pub commit: String,
    /// False when that commit was already applied (nothing done).
    pub applied: bool,
    /// The apply's report (errors: nothing changed, the previous commit keeps running).
    pub apply: ApplyResponse,
}
