//! Engine commands: what every front end (the HTTP API, the watcher, later a
//! Docker-compatible API) calls. Each decodes nothing and encodes nothing: it
//! takes wire requests and returns wire replies or a [`CommandError`], and
//! reports on its own objects only.

pub mod apply;
pub mod attach;
pub mod delete;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod query;
pub mod run;

use crate::reconcile::{DriverError, ReconcileError};
use crate::wire::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The named object or container does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A container could not be started.
    #[error("{0}")]
    Unavailable(String),
    /// The state database or a stored row failed.
    #[error(transparent)]
    State(#[from] ReconcileError),
}

impl CommandError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::NotFound(_) => ErrorKind::NotFound,
            CommandError::Conflict(_) => ErrorKind::Conflict,
            CommandError::Invalid(_) => ErrorKind::Invalid,
            CommandError::Unavailable(_) => ErrorKind::Unavailable,
            CommandError::State(_) => ErrorKind::Internal,
        }
    }
}

impl From<DriverError> for CommandError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::State(s) => CommandError::State(s),
            DriverError::Invalid(m) => CommandError::Invalid(m),
            other => CommandError::Unavailable(other.status_message()),
        }
    }
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
