//! Errors of the reconciler: of a pass as a whole ([`ReconcileError`]) and of
//! one driver action ([`DriverError`]).

use crate::image::ImageError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row no longer decodes (written by an incompatible berth, or
    /// edited by hand); it names the row so it can be fixed or deleted.
    #[error("stored {table} row {kind}/{name} is unreadable ({field}): {source}")]
    CorruptRow {
        table: &'static str,
        kind: String,
        name: String,
        field: &'static str,
        source: serde_json::Error,
    },
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// Why one action did not complete. [`DriverError::Waiting`] is not a
/// failure: the action proceeds on a later pass (shown as `Pending`).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// It waits on another object.
    #[error("{0}")]
    Waiting(String),
    /// The spec cannot be carried out as written (no command, a bad user).
    #[error("{0}")]
    Invalid(String),
    /// The kind or verb is not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// The container runtime failed (a setup error names the step).
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// The image store failed.
    #[error("{0}")]
    Image(#[from] ImageError),
    /// A volume directory could not be made or removed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Bridges, namespaces, addresses or NAT failed.
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
    /// The state database or a stored row failed.
    #[error(transparent)]
    State(#[from] ReconcileError),
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Task(String),
    /// It failed on an earlier pass and waits out its backoff.
    #[error("{message} (retrying in {retry_in_ms} ms)")]
    BackingOff { message: String, retry_in_ms: i64 },
}

impl From<StoreError> for DriverError {
    fn from(e: StoreError) -> Self {
        DriverError::State(ReconcileError::Store(e))
    }
}

impl From<tokio::task::JoinError> for DriverError {
    fn from(e: tokio::task::JoinError) -> Self {
        DriverError::Task(e.to_string())
    }
}

impl DriverError {
    pub fn is_waiting(&self) -> bool {
        matches!(self, DriverError::Waiting(_))
    }

    /// Docker's exit code when the container's command cannot be run.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            DriverError::Runtime(RuntimeError::CannotExecute { code, .. }) => Some(*code),
            _ => None,
        }
    }

    /// The message shown in status: a runtime setup error without its prefix.
    pub fn status_message(&self) -> String {
        match self {
            DriverError::Runtime(RuntimeError::Setup { message, .. })
            | DriverError::Runtime(RuntimeError::CannotExecute { message, .. }) => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Why a lifecycle verb cannot act now.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is paused: unpause it first")]
    Paused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {0} is no longer in any manifest")]
    NotDesired(String),
    #[error("container/{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
}
