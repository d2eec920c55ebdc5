//! Request and response bodies of the REST API, shared by server and client.

use serde::{Deserialize, Serialize};

use crate::manifest::{Diagnostic, Source};
use crate::runtime::logs::LogLine;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Names the set, so `prune` removes only what this set owned (e.g. `apply:/srv/stack`).
    pub source_id: String,
    pub sources: Vec<Source>,
    #[serde(default)]
    pub prune: bool,
    /// Plan only (`berth diff`).
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyResponse {
    /// Manifest problems; when non-empty nothing was changed.
    pub errors: Vec<Diagnostic>,
    /// Planned (dry run) or done actions, one line each with its reason.
    pub actions: Vec<String>,
    /// Actions that failed or wait on something, with the reason.
    pub failed: Vec<String>,
    pub revision: Option<i64>,
    /// The objects of the set, as `kind/name`, for `--wait`.
    pub objects: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Delete what these manifests define.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Or these `kind/name` keys.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    pub errors: Vec<Diagnostic>,
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// `kind/name` keys; all objects when empty.
    #[serde(default)]
    pub keys: Vec<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitResponse {
    pub ready: bool,
    /// Objects not ready yet, with their status.
    pub waiting: Vec<String>,
    /// Objects that failed, with their status.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(default)]
    pub rm: bool,
    #[serde(default)]
    pub detach: bool,
}

/// One line of the `run` stream (newline-delimited JSON).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    Started { name: String },
    Log(LogLine),
    Exited { code: i32, oom_killed: bool },
    Error { message: String },
}

/// Answer of `POST /v1/stop/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StopResponse {
    pub stopped: String,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionInfo {
    pub version: String,
    pub root: String,
    pub pid: u32,
}
